/*
 * listener.c — see include/freshcache/server/listener.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/base/peer_addr.h"
#include "freshcache/server/conn.h"
#include "freshcache/server/h2.h"
#include "freshcache/server/http1.h"
#include "freshcache/server/listener.h"
#include "freshcache/server/tls.h"
#include "freshcache/server/transport.h"
#include "freshcache/server/worker.h"

/*
 * How many connections a listener accepts per turn of the event loop.
 * libevent's evconnlistener accepts until the backlog is empty, and during
 * a storm of new connections that put every waiting TLS handshake (a
 * quarter of a millisecond of CPU each) ahead of the requests of clients
 * already connected: TLS 1.3 resumptions from 64 wrk connections waited
 * 8 ms at the median for their response, against nginx's 2 ms (nginx
 * accepts one per turn unless multi_accept is on; HAProxy bounds it with
 * tune.maxaccept).  After ACCEPTS_PER_TURN the listener pauses until the
 * next turn (a zero timeout), so what is already waiting is served in
 * between: 1.9 ms at the median and 8 % more handshakes per second with 4,
 * the same plain connections per second (docs/performance.md).
 */
#define ACCEPTS_PER_TURN 4

struct listener {
#define LISTENER_MAGIC 0x115e4e70u
    unsigned magic;
    struct worker *w;
    char address[64];               /* as written in the config */
    bool tls;
    bool h2c;                       /* cleartext HTTP/2 with prior knowledge too */
    struct evconnlistener *el;
    struct event *resume;           /* re-enables el on the next turn */
    unsigned accepted_this_turn;
};

/* A connection that has no front end yet: a TLS handshake (ALPN will
 * choose the protocol), or on a cleartext listener with http2: true the
 * first bytes, which tell the HTTP/2 preface from an HTTP/1.1 request.
 * Bounded (limits.handshake_timeout, client_timeout) and counted against
 * max_connections like any connection. */
struct handshake {
#define HANDSHAKE_MAGIC 0x4a4d5a4bu
    unsigned magic;
    LIST_ENTRY(handshake) link;
    struct worker *w;
    struct conn *conn;
    struct event *reap;
    bool done;
    bool sniff;                     /* cleartext: waiting for the first bytes */
    uint64_t accept_ms;
    struct peer_addr peer;
};

static void handshake_free(struct handshake *h, bool keep_conn)
{
    CHECK_OBJ_NOTNULL(h, HANDSHAKE_MAGIC);
    LIST_REMOVE(h, link);
    if (!keep_conn) {
        conn_free(h->conn);
        worker_client_gone(h->w);
    }
    event_free(h->reap);
    h->magic = 0;
    free(h);
}

/* Deferred: the handshake failed or timed out; the connection goes. */
static void handshake_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    handshake_free(arg, false);
}

/* One best-effort write on the raw socket: the TLS layer never started.
 * Reading what else the request sent before closing makes the close a FIN,
 * not an RST that could destroy the answer in flight. */
static void answer_plain_http(int fd)
{
    static const char msg[] =
        "HTTP/1.1 400 Bad Request\r\n"
        "Content-Type: text/plain\r\n"
        "Content-Length: 46\r\n"
        "Connection: close\r\n"
        "\r\n"
        "The plain HTTP request was sent to HTTPS port\n";
    if (send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        return;
    shutdown(fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
        ;
}

static void handshake_event(void *arg, enum conn_event ev)
{
    struct handshake *h = arg;
    CHECK_OBJ_NOTNULL(h, HANDSHAKE_MAGIC);
    if (h->done)
        return;
    h->done = true;
    struct worker *w = h->w;
    if (ev == CONN_CONNECTED) {
        COUNT(&w->counters, tls_handshakes, 1);
        struct conn *c = h->conn;
        SSL *ssl = transport_tls_ssl(c->t);
        if (ssl && tls_alpn_is_h2(ssl))
            h2_serve(w, c, &h->peer, true);
        else
            http1_serve(w, c, &h->peer, true);
        handshake_free(h, true);
        return;
    }
    if (h->sniff) {         /* a cleartext client that never spoke */
        event_active(h->reap, EV_WRITE, 0);
        return;
    }
    /* Plain HTTP to a TLS port: say so in plain HTTP, as nginx does (a
     * browser shows it), then close. */
    if (transport_tls_plain_http(h->conn->t))
        answer_plain_http(h->conn->t->fd);
    /* Garbage, an unknown CA at the client, a stall: closed without a
     * word, counted, logged for debugging. */
    COUNT(&w->counters, tls_handshake_failures, 1);
    const char *why = conn_error(h->conn);
    char text[PEER_ADDR_TEXT];
    log_debug("TLS handshake with %s failed: %s", peer_addr_format(&h->peer, text),
              ev == CONN_READ_TIMEOUT || ev == CONN_WRITE_TIMEOUT ? "timed out"
              : why ? why : "connection closed");
    event_active(h->reap, EV_WRITE, 0);
}

/* Cleartext with http2: true: the first bytes choose the front end.  The
 * bytes stay in the conn's input for it. */
static void sniff_read(void *arg)
{
    struct handshake *h = arg;
    CHECK_OBJ_NOTNULL(h, HANDSHAKE_MAGIC);
    if (h->done || !h->sniff)
        return;
    struct evbuffer *in = h->conn->in;
    size_t have = evbuffer_get_length(in);
    size_t n = have < H2_PREFACE_LEN ? have : H2_PREFACE_LEN;
    unsigned char buf[H2_PREFACE_LEN];
    evbuffer_copyout(in, buf, n);
    bool prefix = memcmp(buf, H2_PREFACE, n) == 0;
    if (prefix && n < H2_PREFACE_LEN) {
        /* Could still be either: wait for more, but not for a preface
         * trickled a byte at a time (each byte restarts the read timeout). */
        if (worker_now_ms(h->w) - h->accept_ms >= worker_cfg(h->w)->limits.header_timeout_ms) {
            char text[PEER_ADDR_TEXT];
            log_debug("client %s: no preface or request within header_timeout",
                      peer_addr_format(&h->peer, text));
            h->done = true;
            event_active(h->reap, EV_WRITE, 0);
        }
        return;
    }
    h->done = true;
    if (prefix)
        h2_serve(h->w, h->conn, &h->peer, false);
    else
        http1_serve(h->w, h->conn, &h->peer, false);
    handshake_free(h, true);
}

static const struct conn_cb handshake_cb = {
    .on_read = sniff_read,
    .on_event = handshake_event,
};

static struct handshake *pending_new(struct worker *w, struct conn *c,
                                     const struct peer_addr *peer)
{
    struct handshake *h = calloc(1, sizeof *h);
    AN(h);
    h->magic = HANDSHAKE_MAGIC;
    h->w = w;
    h->conn = c;
    h->peer = *peer;
    h->accept_ms = worker_now_ms(w);
    h->reap = event_new(w->base, -1, 0, handshake_reap, h);
    AN(h->reap);
    conn_set_owner(c, &handshake_cb, h);
    LIST_INSERT_HEAD(&w->handshakes, h, link);
    return h;
}

static void start_handshake(struct worker *w, const char *address, evutil_socket_t fd,
                            const struct peer_addr *peer)
{
    SSL *ssl = tls_accept_ssl(w->srv->tls, address);
    if (ssl == NULL) {      /* the listener lost its TLS in a reload */
        worker_client_gone(w);
        evutil_closesocket(fd);
        return;
    }
    struct handshake *h = pending_new(w, conn_new(w->base, transport_tls_new(fd, ssl), NULL, NULL),
                                      peer);
    uint64_t t = worker_cfg(w)->limits.handshake_timeout_ms;
    conn_set_timeouts(h->conn, t, t);
    conn_start_handshake(h->conn);
}

void listeners_free_handshakes(struct worker *w)
{
    struct handshake *h;
    while ((h = LIST_FIRST(&w->handshakes)) != NULL)
        handshake_free(h, false);
}

/* What a socket accepted on a listener becomes on worker `w` (which
 * accepted it, or was handed it): the listener's settings at accept time,
 * since a reload may change them before a handed socket is taken. */
struct accepted {
    evutil_socket_t fd;
    bool tls;
    bool h2c;
    char address[64];
    struct peer_addr peer;
};

static void serve_accepted(struct worker *w, const struct accepted *a)
{
    COUNT(&w->counters, connections, 1);
    if (a->tls) {
        start_handshake(w, a->address, a->fd, &a->peer);
        return;
    }
    struct conn *c = conn_new(w->base, transport_tcp_new(a->fd), NULL, NULL);
    if (a->h2c) {
        struct handshake *h = pending_new(w, c, &a->peer);
        h->sniff = true;
        /* Silent: the front end's header_timeout would have cut it. */
        const struct fc_config *cfg = worker_cfg(w);
        uint64_t t = cfg->limits.client_timeout_ms;
        uint64_t r = t < cfg->limits.header_timeout_ms ? t : cfg->limits.header_timeout_ms;
        conn_set_timeouts(c, r, t);
        conn_read_enable(c, true);
        return;
    }
    http1_serve(w, c, &a->peer, false);
}

/*
 * Accept balancing.  Each worker has its own socket per address
 * (SO_REUSEPORT) and the kernel picks one by a hash of the client's
 * address and port: with 64 keep-alive clients on two workers, a split of
 * 26 / 39 is common (strace of accept4 per thread), and the busier
 * worker's clients wait half again as long for their turn — a tail the
 * other worker's idle time cannot absorb, since a connection never moves.
 * So, as HAProxy does between its threads, a worker that accepts a
 * connection while holding clearly more connections than the least loaded
 * worker (2 plus an eighth of that worker's) hands the socket to it: a
 * mutex-guarded queue and an event made active across threads (the bases
 * are made thread-aware for cache bodies already).  The margin keeps
 * hand-offs, which cost both threads a wake-up, to real imbalance: with
 * 64 clients reconnecting for every request (full TLS handshakes), a
 * margin of 2 alone handed off 37 % of connections, this one few.  The
 * loads read are relaxed and may be a moment old: two workers may pick
 * the same target at once, which the next accepts even out.
 */
static bool imbalanced(unsigned mine, unsigned least)
{
    return mine >= least + 2 + least / 8;
}

struct handoff {
    struct handoff *next;
    struct accepted a;
};

struct handoff_queue {
    pthread_mutex_t mu;
    struct handoff *head;
    struct handoff **tail;
    struct event *ev;               /* on the owning worker's base */
};

/* The worker the next connection accepted by `w` goes to. */
static struct worker *balance_target(struct worker *w)
{
    struct server *srv = w->srv;
    unsigned mine = atomic_load_explicit(&w->n_conns, memory_order_relaxed);
    struct worker *best = w;
    unsigned best_n = mine;
    for (unsigned i = 0; i < srv->n_workers; i++) {
        struct worker *o = &srv->workers[i];
        unsigned n = atomic_load_explicit(&o->n_conns, memory_order_relaxed);
        if (n < best_n && o->handoff != NULL) {
            best = o;
            best_n = n;
        }
    }
    return imbalanced(mine, best_n) ? best : w;
}

static void handoff_push(struct worker *to, const struct accepted *a)
{
    struct handoff *h = malloc(sizeof *h);
    AN(h);
    h->next = NULL;
    h->a = *a;
    struct handoff_queue *q = to->handoff;
    pthread_mutex_lock(&q->mu);
    *q->tail = h;
    q->tail = &h->next;
    pthread_mutex_unlock(&q->mu);
    event_active(q->ev, EV_READ, 0);
}

/* Take every queued socket off `q`, in order. */
static struct handoff *handoff_take(struct handoff_queue *q)
{
    pthread_mutex_lock(&q->mu);
    struct handoff *list = q->head;
    q->head = NULL;
    q->tail = &q->head;
    pthread_mutex_unlock(&q->mu);
    return list;
}

/* On the receiving worker's thread: serve what other workers handed us
 * (or, stopping, close it as an accept would have refused it). */
static void handoff_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    CHECK_OBJ_NOTNULL(w, WORKER_MAGIC);
    struct handoff *h = handoff_take(w->handoff);
    while (h != NULL) {
        struct handoff *next = h->next;
        if (atomic_load(&w->srv->stopping)) {
            evutil_closesocket(h->a.fd);
            worker_client_gone(w);
        } else {
            serve_accepted(w, &h->a);
        }
        free(h);
        h = next;
    }
}

static void handoff_init(struct worker *w)
{
    struct handoff_queue *q = calloc(1, sizeof *q);
    AN(q);
    AZ(pthread_mutex_init(&q->mu, NULL));
    q->tail = &q->head;
    q->ev = event_new(w->base, -1, 0, handoff_cb, w);
    AN(q->ev);
    w->handoff = q;
}

void listeners_free_handoffs(struct worker *w)
{
    struct handoff_queue *q = w->handoff;
    if (q == NULL)
        return;
    struct handoff *h = handoff_take(q);
    while (h != NULL) {
        struct handoff *next = h->next;
        evutil_closesocket(h->a.fd);
        worker_client_gone(w);
        free(h);
        h = next;
    }
    event_free(q->ev);
    AZ(pthread_mutex_destroy(&q->mu));
    free(q);
    w->handoff = NULL;
}

/* The next turn after ACCEPTS_PER_TURN, or the end of an accept error's
 * pause: listen again. */
static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct listener *l = arg;
    CHECK_OBJ_NOTNULL(l, LISTENER_MAGIC);
    l->accepted_this_turn = 0;
    AZ(evconnlistener_enable(l->el));
}

static void accept_cb(struct evconnlistener *el, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)salen;
    struct listener *l = arg;
    CHECK_OBJ_NOTNULL(l, LISTENER_MAGIC);
    /* libevent's accept loop stops when the callback disabled the
     * listener; the rest of the backlog waits for the next turn. */
    if (++l->accepted_this_turn == ACCEPTS_PER_TURN) {
        static const struct timeval next_turn = { 0, 0 };
        AZ(evconnlistener_disable(el));
        AZ(evtimer_add(l->resume, &next_turn));
    }
    struct worker *w = l->w;
    unsigned n = atomic_fetch_add(&w->srv->n_clients, 1);
    if (n >= worker_cfg(w)->limits.max_connections || atomic_load(&w->srv->stopping)) {
        atomic_fetch_sub(&w->srv->n_clients, 1);
        evutil_closesocket(fd);
        return;
    }
    struct accepted a = { .fd = fd, .tls = l->tls, .h2c = l->h2c };
    snprintf(a.address, sizeof a.address, "%s", l->address);
    peer_addr_set(&a.peer, sa);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct worker *to = w->handoff ? balance_target(w) : w;
    atomic_fetch_add_explicit(&to->n_conns, 1, memory_order_relaxed);
    if (to != w) {
        COUNT(&w->counters, connections_handed_off, 1);
        handoff_push(to, &a);
        return;
    }
    serve_accepted(w, &a);
}

/* Out of descriptors (EMFILE, ENFILE) or kernel memory (ENOBUFS, ENOMEM):
 * the connection stays in the backlog and the socket stays readable, so
 * listening on would fail again at once, every turn, a busy loop and a
 * log line each time until a descriptor frees up.  The listener pauses
 * instead, as nginx's does (500 ms there); the backlog keeps the clients
 * meanwhile. */
#define ACCEPT_ERROR_PAUSE_MS 100

static void accept_error_cb(struct evconnlistener *el, void *arg)
{
    struct listener *l = arg;
    CHECK_OBJ_NOTNULL(l, LISTENER_MAGIC);
    int e = EVUTIL_SOCKET_ERROR();
    log_warn("accept on %s: %s; not accepting there for %d ms", l->address,
             evutil_socket_error_to_string(e), ACCEPT_ERROR_PAUSE_MS);
    static const struct timeval pause = { 0, ACCEPT_ERROR_PAUSE_MS * 1000 };
    AZ(evconnlistener_disable(el));
    AZ(evtimer_add(l->resume, &pause));
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
    struct listener *l = calloc(1, sizeof *l);
    AN(l);
    l->magic = LISTENER_MAGIC;
    l->w = w;
    l->tls = fl->tls != NULL;
    l->h2c = fl->http2 && !l->tls;
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
    l->resume = evtimer_new(w->base, resume_cb, l);
    AN(l->resume);
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
    event_free(l->resume);
    evconnlistener_free(l->el);
    l->magic = 0;
    free(l);
}

int listeners_open(struct worker *w)
{
    const struct fc_config *cfg = worker_cfg(w);
    if (w->srv->n_workers > 1 && w->handoff == NULL)
        handoff_init(w);
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
        for (size_t j = 0; j < cfg->n_listen && !kept; j++) {
            kept = strcmp(w->listeners[i]->address, cfg->listen[j].address) == 0;
            if (kept) {     /* the same address may turn TLS or HTTP/2 on or off */
                w->listeners[i]->tls = cfg->listen[j].tls != NULL;
                w->listeners[i]->h2c = cfg->listen[j].http2 && !w->listeners[i]->tls;
            }
        }
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
