/*
 * worker.h — one worker thread: an event loop and what lives on it.
 *
 * Each worker is one thread with its own libevent base, its own listening
 * sockets (SO_REUSEPORT on the same addresses, so the kernel spreads
 * connections without a shared accept lock), its own client connections,
 * fetches and pool of keep-alive origin connections, and its own counters.
 * Nothing here is touched by another thread, except the counters (read
 * with relaxed atomics), events made active by cache bodies filled on
 * other workers, and accept balancing: every worker reads the others'
 * n_conns, and hands sockets to the least loaded one through its
 * handoff queue (listener.c).
 */
#ifndef FRESHCACHE_WORKER_H
#define FRESHCACHE_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "freshcache/server/counters.h"
#include "freshcache/server/runtime.h"
#include "freshcache/server/tls.h"

struct event_base;
struct evbuffer;
struct event;
struct handoff_queue;
struct listener;
struct h2_mem_pool;

LIST_HEAD(h1_list, h1_conn);
LIST_HEAD(h2_list, h2_conn);
LIST_HEAD(handshake_list, handshake);
LIST_HEAD(fetch_list, fetch);
LIST_HEAD(internal_list, internal_req);
TAILQ_HEAD(upstream_list, upstream_conn);
TAILQ_HEAD(reval_list, reval_batch);

struct worker {
#define WORKER_MAGIC 0x30e4e500u
    unsigned magic;
    unsigned id;
    struct server *srv;
    struct event_base *base;
    pthread_t thread;
    struct listener **listeners;    /* this worker's sockets (listener.h) */
    size_t n_listeners, cap_listeners;
    struct handshake_list handshakes;   /* TLS connections not up yet (listener.c) */
    struct h1_list h1_conns;        /* HTTP/1.1 client connections (http1.h) */
    struct h1_active *h1_pool;      /* their per-request parts, given back when idle */
    unsigned h1_pool_n;
    struct h2_list h2_conns;        /* HTTP/2 client connections (h2.h) */
    struct h2_mem_pool *h2_pool;    /* their sessions' memory (h2_mem.h) */
    unsigned n_clients;             /* client connections on this worker */
    /* Accept balancing (listener.c): the client connections this worker
     * holds or was handed, handshakes included — what other workers read
     * to choose where a new one goes — and its queue of handed sockets. */
    _Atomic unsigned n_conns;
    struct handoff_queue *handoff;
    struct fetch_list fetches;      /* in progress, including detached ones */
    struct fetch_list fetch_pool;   /* ended ones kept for reuse (fetch.c) */
    unsigned fetch_pool_n;
    struct internal_list internals; /* the daemon's own requests (internal_request.h) */
    struct reval_list reval_open;   /* revalidations to send at the pass's end (exchange.c) */
    struct reval_list reval_sent;   /* sent, outcome awaited, later requests may join */
    struct event *reval_send;       /* sends them: activated when the first one opens */
    struct upstream_list idle_upstreams;
    unsigned n_idle_upstreams;
    struct tls_session_slot origin_tls; /* resumed by the next origin connection */
    struct evbuffer *access_buf;    /* access log lines not yet written */
    struct event *access_flush;     /* timer: flush access_buf */
    time_t date_sec;                /* second date_buf was formatted for */
    char date_buf[32];              /* "Date: ..." value for generated responses */
    struct counters counters __attribute__((aligned(64)));
};

/* Make the worker's event loop; its threads and listeners come later. */
int worker_init(struct worker *w, struct server *srv, unsigned id);
/* The thread's body: run the loop until broken. */
void *worker_main(void *arg);
/* Free the loop and what worker_init made (connections, fetches and
 * listeners are freed by their owners first: server.c). */
void worker_free(struct worker *w);

/* A client connection of `w` is gone: one less against
 * limits.max_connections and in accept balancing. */
static inline void worker_client_gone(struct worker *w)
{
    atomic_fetch_sub_explicit(&w->n_conns, 1, memory_order_relaxed);
    atomic_fetch_sub(&w->srv->n_clients, 1);
}

/* The worker's cached clock (event loop time), in seconds and monotonic ms. */
time_t worker_now(struct worker *w);
uint64_t worker_now_ms(struct worker *w);
/* Now as an IMF-fixdate (RFC 9110 §5.6.7), formatted once a second. */
const char *worker_date(struct worker *w);
/* The config in force (a reload may swap it between two calls). */
static inline const struct fc_config *worker_cfg(const struct worker *w)
{
    return w->srv->cfg;
}

#endif
