/*
 * server.c — the process-wide runtime: store, workers, counters, stop.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "freshcache/assert.h"
#include "freshcache/cache_store.h"
#include "freshcache/log.h"
#include "freshcache/proxy.h"
#include "freshcache/server.h"
#include "freshcache/upstream.h"

/* 64 shards: with a handful of workers two lookups rarely meet on a lock. */
#define STORE_SHARDS 64

int server_start(struct server *srv, struct fc_config *cfg)
{
    memset(srv, 0, sizeof *srv);
    srv->magic = SERVER_MAGIC;
    srv->cfg = cfg;
    srv->started = time(NULL);
    srv->store = store_new(cfg->cache.memory, STORE_SHARDS);
    srv->n_workers = cfg->workers ? cfg->workers : 1;
    srv->workers = calloc(srv->n_workers, sizeof *srv->workers);
    AN(srv->workers);
    for (unsigned i = 0; i < srv->n_workers; i++) {
        if (worker_init(&srv->workers[i], srv, i) != 0 || worker_listen(&srv->workers[i]) != 0)
            goto fail;
    }
    for (unsigned i = 0; i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            log_error("cannot start worker thread %u", i);
            /* threads already running are stopped by server_stop */
            srv->n_workers = i;
            return -1;
        }
    }
    return 0;
fail:
    for (unsigned i = 0; i < srv->n_workers; i++)
        worker_free(&srv->workers[i]);
    free(srv->workers);
    srv->workers = NULL;
    srv->n_workers = 0;
    return -1;
}

/* Runs on each worker's own thread (queued with event_base_once). */
static void stop_accepting_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    worker_stop_accepting(w);
    client_close_idle(w);
    upstream_close_idle(w);
}

static void drain_check_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    client_close_idle(w);
    if (w->n_clients == 0)
        event_base_loopexit(w->base, NULL);
}

void server_stop(struct server *srv, uint64_t drain_ms)
{
    atomic_store(&srv->stopping, true);
    for (unsigned i = 0; i < srv->n_workers; i++) {
        struct worker *w = &srv->workers[i];
        event_base_once(w->base, -1, EV_TIMEOUT, stop_accepting_cb, w, NULL);
    }
    /* Poll for in-flight exchanges to finish, up to drain_ms. */
    struct timespec step = { 0, 50 * 1000 * 1000 };
    for (uint64_t waited = 0; waited < drain_ms; waited += 50) {
        if (atomic_load(&srv->n_clients) == 0)
            break;
        for (unsigned i = 0; i < srv->n_workers; i++)
            event_base_once(srv->workers[i].base, -1, EV_TIMEOUT, drain_check_cb,
                            &srv->workers[i], NULL);
        nanosleep(&step, NULL);
    }
    for (unsigned i = 0; i < srv->n_workers; i++)
        event_base_loopbreak(srv->workers[i].base);
    for (unsigned i = 0; i < srv->n_workers; i++)
        pthread_join(srv->workers[i].thread, NULL);
}

void server_free(struct server *srv)
{
    for (unsigned i = 0; i < srv->n_workers; i++)
        worker_free(&srv->workers[i]);
    free(srv->workers);
    if (srv->store)
        store_free(srv->store);
    srv->magic = 0;
}

void server_sum_counters(struct server *srv, struct counters *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < srv->n_workers; i++) {
        struct counters *c = &srv->workers[i].counters;
#define X(name) out->name += atomic_load_explicit(&c->name, memory_order_relaxed);
        FC_COUNTERS(X)
#undef X
    }
}
