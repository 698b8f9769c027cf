/*
 * upstream.c — origin connection pool.  See include/freshcache/server/upstream.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "freshcache/base/assert.h"
#include "freshcache/server/conn.h"
#include "freshcache/server/tls.h"
#include "freshcache/server/upstream.h"
#include "freshcache/server/worker.h"

/* Idle connections beyond this many per worker are closed, not pooled. */
#define IDLE_MAX 256
/* Bytes asked per read from an origin: bodies move in large reads. */
#define ORIGIN_READ_CHUNK (64 * 1024)

static void conn_close(struct upstream_conn *uc)
{
    CHECK_OBJ_NOTNULL(uc, UPSTREAM_MAGIC);
    if (uc->idle) {
        TAILQ_REMOVE(&uc->w->idle_upstreams, uc, idle_link);
        uc->w->n_idle_upstreams--;
        uc->idle = false;
    }
    conn_free(uc->conn);
    uc->magic = 0;
    free(uc);
}

/* While idle, anything from the origin (EOF, an error, stray bytes) means
 * the connection cannot carry another exchange. */
static void idle_read(void *arg)
{
    conn_close(arg);
}

static void idle_event(void *arg, enum conn_event ev)
{
    (void)ev;
    conn_close(arg);
}

static const struct conn_cb idle_cb = {
    .on_read = idle_read,
    .on_event = idle_event,
};

/* A pooled connection is reused only for the origin and the TLS settings
 * in force: after a reload that changed origin.tls (verify, a CA, a
 * client certificate) a connection made under the old ones is closed. */
static bool same_origin(const struct upstream_conn *uc, const struct fc_origin *o,
                        const struct tls_config *tls)
{
    return uc->addrlen == o->addrlen && memcmp(&uc->addr, &o->addr, o->addrlen) == 0 &&
           (!o->https || uc->tls == tls);
}

struct upstream_conn *upstream_acquire(struct worker *w, const struct conn_cb *cb, void *arg,
                                       bool *reused)
{
    const struct fc_origin *o = &worker_cfg(w)->origin;
    struct upstream_conn *uc = TAILQ_FIRST(&w->idle_upstreams);
    /* After a reload changed the origin, pooled connections go elsewhere. */
    const struct tls_config *tls = w->srv->tls;
    while (uc && !same_origin(uc, o, tls)) {
        conn_close(uc);
        uc = TAILQ_FIRST(&w->idle_upstreams);
    }
    if (uc) {
        TAILQ_REMOVE(&w->idle_upstreams, uc, idle_link);
        w->n_idle_upstreams--;
        uc->idle = false;
        conn_set_owner(uc->conn, cb, arg);
        *reused = true;
        return uc;
    }
    *reused = false;
    /* https://: the handshake runs before CONN_CONNECTED, resuming this
     * worker's last session with the origin when it has one. */
    SSL *ssl = tls_origin_ssl(w->srv->tls, &w->origin_tls);
    struct conn *c = conn_connect(w->base, (const struct sockaddr *)&o->addr, o->addrlen,
                                  o->connect_timeout_ms, ssl, cb, arg);
    if (c == NULL) {
        if (errno == 0)
            errno = ECONNREFUSED;
        return NULL;
    }
    c->read_chunk = ORIGIN_READ_CHUNK;
    uc = calloc(1, sizeof *uc);
    AN(uc);
    uc->magic = UPSTREAM_MAGIC;
    uc->w = w;
    uc->conn = c;
    memcpy(&uc->addr, &o->addr, o->addrlen);
    uc->addrlen = o->addrlen;
    uc->tls = tls;
    return uc;
}

void upstream_release(struct upstream_conn *uc, bool reusable)
{
    CHECK_OBJ_NOTNULL(uc, UPSTREAM_MAGIC);
    struct worker *w = uc->w;
    /* The fetch leaves a reusable connection's read event armed (no
     * epoll_ctl per exchange): an EOF or error it saw since, or bytes it
     * read, rule the connection out here. */
    struct conn *c = uc->conn;
    if (!reusable || w->n_idle_upstreams >= IDLE_MAX || c->eof || c->failed ||
        evbuffer_get_length(c->in) > 0 || conn_pending(c) > 0 || atomic_load(&w->srv->stopping)) {
        conn_close(uc);
        return;
    }
    conn_set_timeouts(c, 0, 0);
    conn_set_owner(c, &idle_cb, uc);
    conn_read_enable(c, true);      /* already armed after a clean exchange */
    uc->idle = true;
    /* Most recently used first: it is the least likely to have been closed
     * by the origin's keep-alive timeout. */
    TAILQ_INSERT_HEAD(&w->idle_upstreams, uc, idle_link);
    w->n_idle_upstreams++;
}

void upstream_close_idle(struct worker *w)
{
    struct upstream_conn *uc;
    while ((uc = TAILQ_FIRST(&w->idle_upstreams)) != NULL)
        conn_close(uc);
}
