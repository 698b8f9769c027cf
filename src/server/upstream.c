/*
 * upstream.c — origin connection pool.  See include/freshcache/upstream.h.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/server/server.h"
#include "freshcache/server/upstream.h"

/* Idle connections beyond this many per worker are closed, not pooled. */
#define IDLE_MAX 256

static void conn_free(struct upstream_conn *uc)
{
    CHECK_OBJ_NOTNULL(uc, UPSTREAM_MAGIC);
    if (uc->idle) {
        TAILQ_REMOVE(&uc->w->idle_upstreams, uc, idle_link);
        uc->w->n_idle_upstreams--;
        uc->idle = false;
    }
    bufferevent_free(uc->bev);
    uc->magic = 0;
    free(uc);
}

/* While idle, anything from the origin (EOF, an error, stray bytes) means
 * the connection cannot carry another exchange. */
static void idle_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_free(arg);
}

static void idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    conn_free(arg);
}

static bool same_origin(const struct upstream_conn *uc, const struct fc_origin *o)
{
    return uc->addrlen == o->addrlen && memcmp(&uc->addr, &o->addr, o->addrlen) == 0;
}

struct upstream_conn *upstream_acquire(struct worker *w, bool *reused)
{
    const struct fc_origin *o = &w->srv->cfg->origin;
    struct upstream_conn *uc = TAILQ_FIRST(&w->idle_upstreams);
    /* After a reload changed the origin, pooled connections go elsewhere. */
    while (uc && !same_origin(uc, o)) {
        conn_free(uc);
        uc = TAILQ_FIRST(&w->idle_upstreams);
    }
    if (uc) {
        TAILQ_REMOVE(&w->idle_upstreams, uc, idle_link);
        w->n_idle_upstreams--;
        uc->idle = false;
        bufferevent_setcb(uc->bev, NULL, NULL, NULL, NULL);
        *reused = true;
        return uc;
    }
    *reused = false;
    uc = calloc(1, sizeof *uc);
    AN(uc);
    uc->magic = UPSTREAM_MAGIC;
    uc->w = w;
    memcpy(&uc->addr, &o->addr, o->addrlen);
    uc->addrlen = o->addrlen;
    uc->bev = bufferevent_socket_new(w->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    AN(uc->bev);
    struct timeval ct = { (time_t)(o->connect_timeout_ms / 1000),
                          (suseconds_t)(o->connect_timeout_ms % 1000) * 1000 };
    /* While connecting, the write timeout is the connect timeout. */
    bufferevent_set_timeouts(uc->bev, NULL, &ct);
    if (bufferevent_socket_connect(uc->bev, (const struct sockaddr *)&o->addr,
                                   (int)o->addrlen) != 0) {
        int e = errno;
        bufferevent_free(uc->bev);
        free(uc);
        errno = e ? e : ECONNREFUSED;
        return NULL;
    }
    evutil_socket_t fd = bufferevent_getfd(uc->bev);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return uc;
}

void upstream_release(struct upstream_conn *uc, bool reusable)
{
    CHECK_OBJ_NOTNULL(uc, UPSTREAM_MAGIC);
    struct worker *w = uc->w;
    if (!reusable || w->n_idle_upstreams >= IDLE_MAX ||
        evbuffer_get_length(bufferevent_get_input(uc->bev)) > 0 ||
        atomic_load(&w->srv->stopping)) {
        conn_free(uc);
        return;
    }
    bufferevent_set_timeouts(uc->bev, NULL, NULL);
    bufferevent_setcb(uc->bev, idle_read_cb, NULL, idle_event_cb, uc);
    bufferevent_enable(uc->bev, EV_READ);
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
        conn_free(uc);
}
