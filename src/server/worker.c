/*
 * worker.c — one worker thread: an event loop, its listeners and clients.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "freshcache/server/access_log.h"
#include "freshcache/server/fetch.h"
#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/server/proxy.h"
#include "freshcache/server/server.h"
#include "freshcache/server/upstream.h"

time_t worker_now(struct worker *w)
{
    struct timeval tv;
    event_base_gettimeofday_cached(w->base, &tv);
    return tv.tv_sec;
}

uint64_t worker_now_ms(struct worker *w)
{
    struct timeval tv;
    event_base_gettimeofday_cached(w->base, &tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void access_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    access_log_flush(arg);
}

int worker_init(struct worker *w, struct server *srv, unsigned id)
{
    memset(w, 0, sizeof *w);
    w->magic = WORKER_MAGIC;
    w->id = id;
    w->srv = srv;
    struct event_config *ec = event_config_new();
    AN(ec);
    /* One thread per base: libevent needs no locking of its own here, but
     * bodies written on other threads wake our clients with event_active,
     * which is why the base is made after evthread_use_pthreads(). */
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (w->base == NULL)
        return -1;
    LIST_INIT(&w->clients);
    LIST_INIT(&w->fetches);
    TAILQ_INIT(&w->idle_upstreams);
    if (srv->access_fd >= 0) {
        w->access_buf = evbuffer_new();
        w->access_flush = event_new(w->base, -1, EV_PERSIST, access_flush_cb, w);
        AN(w->access_buf);
        AN(w->access_flush);
        struct timeval tv = { 0, ACCESS_LOG_FLUSH_MS * 1000 };
        event_add(w->access_flush, &tv);
    }
    return 0;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    client_accept(arg, fd, sa, salen);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    int e = EVUTIL_SOCKET_ERROR();
    /* EMFILE and friends: log and keep listening; connections wait in the
     * backlog until descriptors free up. */
    log_warn("accept: %s", evutil_socket_error_to_string(e));
}

/* SO_REUSEPORT lets any process of ours bind a port we listen on, so a
 * second daemon would silently share it.  Bind once without it first: a
 * port some other socket holds fails here, clearly, like nginx's
 * "Address already in use". */
static int probe_address(const struct fc_listen *l)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, (const struct sockaddr *)&l->addr, l->addrlen);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static int listener_open(struct worker *w, const struct fc_listen *l)
{
    if (l->tls_certificate) {
        log_error("listen %s: TLS listeners are not supported yet", l->address);
        return -1;
    }
    /* SO_REUSEPORT: every worker binds its own socket to the address and
     * the kernel balances connections between them. */
    struct evconnlistener *el = evconnlistener_new_bind(
        w->base, accept_cb, w,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_EXEC,
        1024, (const struct sockaddr *)&l->addr, (int)l->addrlen);
    if (el == NULL) {
        log_error("listen %s: %s", l->address, strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(el, accept_error_cb);
    if (w->n_listeners == w->cap_listeners) {
        w->cap_listeners = w->cap_listeners ? w->cap_listeners * 2 : 4;
        w->listeners = realloc(w->listeners, w->cap_listeners * sizeof *w->listeners);
        AN(w->listeners);
    }
    struct worker_listener *wl = &w->listeners[w->n_listeners++];
    snprintf(wl->address, sizeof wl->address, "%s", l->address);
    wl->el = el;
    return 0;
}

int worker_probe_listen(const struct fc_listen *l)
{
    return probe_address(l);
}

int worker_listen(struct worker *w)
{
    const struct fc_config *cfg = w->srv->cfg;
    for (size_t i = 0; i < cfg->n_listen; i++) {
        const struct fc_listen *l = &cfg->listen[i];
        if (w->id == 0 && probe_address(l) != 0) {
            log_error("listen %s: %s", l->address, strerror(errno));
            return -1;
        }
        if (listener_open(w, l) != 0)
            return -1;
    }
    return 0;
}

void worker_sync_listeners(struct worker *w)
{
    const struct fc_config *cfg = w->srv->cfg;
    /* close what the config dropped (in-flight connections stay) */
    for (size_t i = 0; i < w->n_listeners;) {
        bool kept = false;
        for (size_t j = 0; j < cfg->n_listen && !kept; j++)
            kept = strcmp(w->listeners[i].address, cfg->listen[j].address) == 0;
        if (kept) {
            i++;
            continue;
        }
        if (w->id == 0)
            log_info("listen %s: closed (reload)", w->listeners[i].address);
        evconnlistener_free(w->listeners[i].el);
        w->listeners[i] = w->listeners[--w->n_listeners];
    }
    /* open what it added */
    for (size_t j = 0; j < cfg->n_listen; j++) {
        bool have = false;
        for (size_t i = 0; i < w->n_listeners && !have; i++)
            have = strcmp(w->listeners[i].address, cfg->listen[j].address) == 0;
        if (!have && listener_open(w, &cfg->listen[j]) == 0 && w->id == 0)
            log_info("listen %s: opened (reload)", cfg->listen[j].address);
    }
}

void *worker_main(void *arg)
{
    struct worker *w = arg;
    CHECK_OBJ_NOTNULL(w, WORKER_MAGIC);
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

void worker_stop_accepting(struct worker *w)
{
    for (size_t i = 0; i < w->n_listeners; i++)
        evconnlistener_free(w->listeners[i].el);
    w->n_listeners = 0;
}

void worker_free(struct worker *w)
{
    if (w->magic != WORKER_MAGIC)
        return;
    worker_stop_accepting(w);
    free(w->listeners);
    /* What the drain timeout cut short: clients first (a passing fetch
     * ends with its client), then the fetches left, then idle origin
     * connections. */
    client_free_all(w);
    fetch_free_all(w);
    upstream_close_idle(w);
    if (w->access_buf) {
        access_log_flush(w);
        evbuffer_free(w->access_buf);
        event_free(w->access_flush);
    }
    if (w->base)
        event_base_free(w->base);
    w->magic = 0;
}
