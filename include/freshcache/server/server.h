/*
 * server.h — the process-wide runtime and the worker threads.
 *
 * This is the one documented place for global mutable state: a single
 * struct server owns the config in force, the cache store, the workers and
 * the counters every worker adds to.  Everything else reaches it through
 * the worker it runs on (w->srv), never through a global variable.
 *
 * Each worker is one thread with its own libevent base, its own listening
 * sockets (SO_REUSEPORT on the same addresses, so the kernel spreads
 * connections without a shared accept lock), its own pool of keep-alive
 * connections to the origin, and its own counters.
 */
#ifndef FRESHCACHE_SERVER_H
#define FRESHCACHE_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "freshcache/config/config.h"

struct event_base;
struct evconnlistener;
struct cache_store;
struct generations;
struct etag_history;
struct upstream_conn;
struct client;

/* Counters: one set per worker, summed when read.  Relaxed atomics: each is
 * written by its own worker only, read by the admin/stats path. */
#define FC_COUNTERS(X) \
    X(requests)        \
    X(hits)            \
    X(misses)          \
    X(revalidations)   \
    X(stale)           \
    X(passes)          \
    X(collapsed)       \
    X(origin_requests) \
    X(origin_errors)   \
    X(client_errors)   \
    X(bytes_sent)      \
    X(connections)

/* Origin latency (request sent to response head), upper bounds in ms of
 * the Prometheus histogram buckets; the last bucket is +Inf. */
#define ORIGIN_LATENCY_BUCKETS_MS { 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 }
#define ORIGIN_LATENCY_N_BUCKETS 12

struct counters {
#define X(name) _Atomic uint64_t name;
    FC_COUNTERS(X)
#undef X
    _Atomic uint64_t origin_latency_bucket[ORIGIN_LATENCY_N_BUCKETS + 1];  /* not cumulative */
    _Atomic uint64_t origin_latency_sum_ms;
};

/* Count one origin response head `ms` after its request was sent. */
void counters_origin_latency(struct counters *c, uint64_t ms);

#define COUNT(w, name, n) atomic_fetch_add_explicit(&(w)->counters.name, (n), memory_order_relaxed)

LIST_HEAD(client_list, client);
LIST_HEAD(fetch_list, fetch);

struct worker_listener {
    char address[64];               /* as written in the config */
    struct evconnlistener *el;
};
TAILQ_HEAD(upstream_list, upstream_conn);

struct worker {
#define WORKER_MAGIC 0x30e4e500u
    unsigned magic;
    unsigned id;
    struct server *srv;
    struct event_base *base;
    pthread_t thread;
    struct worker_listener *listeners;  /* this worker's sockets, by address */
    size_t n_listeners, cap_listeners;
    struct client_list clients;
    unsigned n_clients;
    struct fetch_list fetches;      /* in progress, including detached ones */
    struct upstream_list idle_upstreams;
    unsigned n_idle_upstreams;
    struct evbuffer *access_buf;    /* access log lines not yet written */
    struct event *access_flush;     /* timer: flush access_buf */
    struct counters counters __attribute__((aligned(64)));
};

struct server {
#define SERVER_MAGIC 0x5e4fe400u
    unsigned magic;
    /* The config in force.  A reload swaps the pointer; workers load it
     * per use.  Replaced configs are kept until exit (old_cfgs), because a
     * request in flight may still read one. */
    struct fc_config *_Atomic cfg;
    struct fc_config **old_cfgs;
    size_t n_old_cfgs;
    struct cache_store *store;
    struct generations *gens;       /* deploy generations (generation.h) */
    struct etag_history *etag_hist; /* content-hash first-seen times (etag.h) */
    _Atomic uint64_t purges;        /* purge commands served */
    struct worker *workers;
    unsigned n_workers;
    _Atomic unsigned n_clients;     /* across workers, for limits.max_connections */
    time_t started;
    _Atomic bool stopping;
    int access_fd;                  /* log.access destination, -1: off */
};

/* Create the store and workers, bind every listener.  -1 on error (logged). */
int server_start(struct server *srv, struct fc_config *cfg);
/* Stop accepting; let in-flight responses finish up to `drain_ms`; join. */
void server_stop(struct server *srv, uint64_t drain_ms);
void server_free(struct server *srv);
/* Re-read the config file and apply it (see docs/operating.md for what
 * needs a restart).  0, or -1 with the first error in err. */
int server_reload(struct server *srv, char *err, size_t errlen);
/* Reclaim memory of purged generations: called periodically. */
void server_sweep(struct server *srv);
void server_sum_counters(struct server *srv, struct counters *out);

/* worker.c */
int worker_init(struct worker *w, struct server *srv, unsigned id);
int worker_listen(struct worker *w);
/* On the worker's own thread: open the config's new addresses, close the
 * ones it no longer has (a reload). */
void worker_sync_listeners(struct worker *w);
/* Can `l` be bound, or is it held by some other socket?  0 or -1 (errno). */
int worker_probe_listen(const struct fc_listen *l);
void *worker_main(void *arg);
void worker_stop_accepting(struct worker *w);
void worker_free(struct worker *w);

/* The worker's cached clock (event loop time), in seconds and monotonic ms. */
time_t worker_now(struct worker *w);
uint64_t worker_now_ms(struct worker *w);

#endif
