/*
 * listener.c — see include/freshcache/server/listener.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/listener.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/server/conn.h"
#include "freshcache/server/http1.h"
#include "freshcache/server/listener.h"
#include "freshcache/server/transport.h"
#include "freshcache/server/worker.h"

struct listener {
#define LISTENER_MAGIC 0x115e4e70u
    unsigned magic;
    struct worker *w;
    char address[64];               /* as written in the config */
    struct evconnlistener *el;
};

static void accept_cb(struct evconnlistener *el, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)el;
    (void)salen;
    struct listener *l = arg;
    CHECK_OBJ_NOTNULL(l, LISTENER_MAGIC);
    struct worker *w = l->w;
    unsigned n = atomic_fetch_add(&w->srv->n_clients, 1);
    if (n >= worker_cfg(w)->limits.max_connections || atomic_load(&w->srv->stopping)) {
        atomic_fetch_sub(&w->srv->n_clients, 1);
        evutil_closesocket(fd);
        return;
    }
    char addr[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
    else
        snprintf(addr, sizeof addr, "unknown");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    COUNT(&w->counters, connections, 1);
    struct conn *c = conn_new(w->base, transport_tcp_new(fd), NULL, NULL);
    http1_serve(w, c, addr);
}

static void accept_error_cb(struct evconnlistener *el, void *arg)
{
    (void)el;
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
int listener_probe(const struct fc_listen *l)
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

static int listener_open(struct worker *w, const struct fc_listen *fl)
{
    if (fl->tls_certificate) {
        log_error("listen %s: TLS listeners are not supported yet", fl->address);
        return -1;
    }
    struct listener *l = calloc(1, sizeof *l);
    AN(l);
    l->magic = LISTENER_MAGIC;
    l->w = w;
    snprintf(l->address, sizeof l->address, "%s", fl->address);
    /* libevent makes accepted sockets non-blocking. */
    l->el = evconnlistener_new_bind(
        w->base, accept_cb, l,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_EXEC,
        1024, (const struct sockaddr *)&fl->addr, (int)fl->addrlen);
    if (l->el == NULL) {
        log_error("listen %s: %s", fl->address, strerror(errno));
        free(l);
        return -1;
    }
    evconnlistener_set_error_cb(l->el, accept_error_cb);
    if (w->n_listeners == w->cap_listeners) {
        w->cap_listeners = w->cap_listeners ? w->cap_listeners * 2 : 4;
        w->listeners = realloc(w->listeners, w->cap_listeners * sizeof *w->listeners);
        AN(w->listeners);
    }
    w->listeners[w->n_listeners++] = l;
    return 0;
}

static void listener_free(struct listener *l)
{
    CHECK_OBJ_NOTNULL(l, LISTENER_MAGIC);
    evconnlistener_free(l->el);
    l->magic = 0;
    free(l);
}

int listeners_open(struct worker *w)
{
    const struct fc_config *cfg = worker_cfg(w);
    for (size_t i = 0; i < cfg->n_listen; i++) {
        const struct fc_listen *l = &cfg->listen[i];
        if (w->id == 0 && listener_probe(l) != 0) {
            log_error("listen %s: %s", l->address, strerror(errno));
            return -1;
        }
        if (listener_open(w, l) != 0)
            return -1;
    }
    return 0;
}

void listeners_sync(struct worker *w)
{
    const struct fc_config *cfg = worker_cfg(w);
    /* close what the config dropped (in-flight connections stay) */
    for (size_t i = 0; i < w->n_listeners;) {
        bool kept = false;
        for (size_t j = 0; j < cfg->n_listen && !kept; j++)
            kept = strcmp(w->listeners[i]->address, cfg->listen[j].address) == 0;
        if (kept) {
            i++;
            continue;
        }
        if (w->id == 0)
            log_info("listen %s: closed (reload)", w->listeners[i]->address);
        listener_free(w->listeners[i]);
        w->listeners[i] = w->listeners[--w->n_listeners];
    }
    /* open what it added */
    for (size_t j = 0; j < cfg->n_listen; j++) {
        bool have = false;
        for (size_t i = 0; i < w->n_listeners && !have; i++)
            have = strcmp(w->listeners[i]->address, cfg->listen[j].address) == 0;
        if (!have && listener_open(w, &cfg->listen[j]) == 0 && w->id == 0)
            log_info("listen %s: opened (reload)", cfg->listen[j].address);
    }
}

void listeners_close(struct worker *w)
{
    for (size_t i = 0; i < w->n_listeners; i++)
        listener_free(w->listeners[i]);
    w->n_listeners = 0;
}
