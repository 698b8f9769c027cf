/*
 * server.c — starting, reloading and stopping the server.  See
 * include/freshcache/server/server.h.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/config/config_check.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/etag.h"
#include "freshcache/cache/generation.h"
#include "freshcache/server/access_log.h"
#include "freshcache/server/exchange.h"
#include "freshcache/server/fetch.h"
#include "freshcache/server/h2.h"
#include "freshcache/server/http1.h"
#include "freshcache/server/internal_request.h"
#include "freshcache/server/listener.h"
#include "freshcache/server/server.h"
#include "freshcache/server/tls.h"
#include "freshcache/server/upstream.h"
#include "freshcache/server/worker.h"

/* 64 shards: with a handful of workers two lookups rarely meet on a lock. */
#define STORE_SHARDS 64

/* Objects remembered for content-hash first-seen times, at most: a
 * sparse file of 4 MiB in state_dir (16 bytes an entry), none of it in the
 * process's memory (etag_history.c). */
#define ETAG_HISTORY_SLOTS (256 * 1024)
/* Objects examined per sweep call (every SWEEP_INTERVAL in main.c). */
#define SWEEP_BUDGET 50000
/* The store shrinking by this much makes the sweep give memory back.
 * Small enough that a purge of a modest cache shows in RSS (20 000 1 KiB
 * objects are ~30 MiB of store), large enough that ordinary churn does
 * not trim: malloc_trim() locks each arena while it walks it. */
#define TRIM_MIN (8ull * 1024 * 1024)

static const char **policy_names(const struct fc_config *cfg)
{
    const char **names = calloc(cfg->n_policies + 1, sizeof *names);
    AN(names);
    for (size_t i = 0; i < cfg->n_policies; i++)
        names[i] = cfg->policies[i].name;
    return names;
}

/* After the worker's loop ended: what the drain timeout cut short goes
 * (clients first: a passing fetch ends with its client; then the fetches
 * left, then idle origin connections), then the worker itself. */
static void free_worker(struct worker *w)
{
    if (w->magic != WORKER_MAGIC)
        return;
    listeners_close(w);
    listeners_free_handoffs(w);
    listeners_free_handshakes(w);
    http1_free_all(w);
    h2_free_all(w);
    internal_free_all(w);
    exchange_free_batches(w);
    fetch_free_all(w);
    upstream_close_idle(w);
    access_log_detach(w);
    worker_free(w);
}

/* Warnings a start and every reload repeat: insecure origin TLS, and
 * certificates about to expire. */
static void tls_warnings(const struct fc_config *cfg, const struct tls_config *tc)
{
    if (cfg->origin.https && !cfg->origin.tls_verify)
        log_warn("origin.tls.verify is false: the origin's certificate is not checked; "
                 "anyone on the path to %s can impersonate it", cfg->origin.host);
    const struct tls_cert_info *ci;
    size_t n = tls_config_certs(tc, &ci);
    time_t now = time(NULL);
    for (size_t i = 0; i < n; i++) {
        double days = difftime(ci[i].not_after, now) / 86400.0;
        if (days < 0)
            log_warn("TLS certificate %s (%s) has expired", ci[i].name, ci[i].file);
        else if (days < TLS_EXPIRY_WARN_DAYS)
            log_warn("TLS certificate %s (%s) expires in %.1f days", ci[i].name, ci[i].file, days);
    }
}

/* The TLS contexts `cfg` needs; NULL with the first problem in err (each
 * logged). */
static struct tls_config *build_tls(struct server *srv, const struct fc_config *cfg, char *err,
                                    size_t errlen)
{
    struct config_errors errs = { 0 };
    struct tls_config *tc = tls_config_new(cfg, srv->tickets, &errs);
    if (tc == NULL) {
        for (size_t i = 0; i < errs.n; i++)
            log_error("%s", errs.lines[i]);
        snprintf(err, errlen, "%s", errs.n ? errs.lines[0] : "TLS setup failed");
        config_errors_free(&errs);
        return NULL;
    }
    tls_warnings(cfg, tc);
    return tc;
}

int server_check_config(const struct fc_config *cfg, struct config_errors *errs)
{
    struct tls_tickets *tk = tls_tickets_new();
    struct tls_config *tc = tls_config_new(cfg, tk, errs);
    int rc = tc ? 0 : -1;
    tls_config_free(tc);
    tls_tickets_free(tk);
    return rc;
}

void server_rotate_tickets(struct server *srv)
{
    tls_tickets_rotate(srv->tickets);
}

/* The deploy timeline's first entry: the numbers in force at start (from
 * state_dir), in the shape of the "generation changed" lines. */
static void log_generations(struct generations *g, const char *state_dir)
{
    struct gen_state st;
    generation_snapshot(g, &st);
    char pol[512] = "";
    size_t n = 0;
    for (size_t i = 0; i < st.n_policies && n < sizeof pol; i++)
        if (st.policies[i].gen > 1)
            n += (size_t)snprintf(pol + n, sizeof pol - n, ", policy %s %llu",
                                  st.policies[i].name, (unsigned long long)st.policies[i].gen);
    int64_t ms = generation_changed_ms(g);
    char when[32] = "never";
    if (ms > 0) {
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    log_info("generation: global %llu%s (source: startup, from %s; last changed %s)",
             (unsigned long long)st.global, pol, state_dir, when);
}

int server_start(struct server *srv, struct fc_config *cfg)
{
    memset(srv, 0, sizeof *srv);
    srv->magic = SERVER_MAGIC;
    srv->access_fd = -1;
    srv->cfg = cfg;
    srv->started = time(NULL);
    char err[512];
    struct generation_backend be;
    if (generation_file_backend(cfg->state_dir, &be, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    const char **names = policy_names(cfg);
    srv->gens = generations_open(&be, names, cfg->n_policies, err, sizeof err);
    free(names);
    if (srv->gens == NULL) {
        log_error("generation state: %s", err);
        return -1;
    }
    log_generations(srv->gens, cfg->state_dir);
    srv->tickets = tls_tickets_new();
    struct tls_config *tc = build_tls(srv, cfg, err, sizeof err);
    if (tc == NULL)
        return -1;
    srv->tls = tc;
    if (access_log_open(srv, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    /* Fatal like an unusable generation file: state_dir is mandatory,
     * and a daemon that cannot keep the history would give every URL a
     * new Last-Modified on each restart without saying so. */
    srv->etag_hist = etag_history_new(cfg->state_dir, ETAG_HISTORY_SLOTS, err, sizeof err);
    if (srv->etag_hist == NULL) {
        log_error("Last-Modified history: %s", err);
        return -1;
    }
    log_info("Last-Modified history: %zu of %zu entries remembered from before (%s)",
             etag_history_used(srv->etag_hist), etag_history_slots(srv->etag_hist),
             cfg->state_dir);
    srv->store = store_new(cfg->cache.memory, STORE_SHARDS);
    srv->n_workers = cfg->workers ? cfg->workers : 1;
    srv->workers = calloc(srv->n_workers, sizeof *srv->workers);
    AN(srv->workers);
    for (unsigned i = 0; i < srv->n_workers; i++) {
        if (worker_init(&srv->workers[i], srv, i) != 0)
            goto fail;
        access_log_attach(&srv->workers[i]);
        if (listeners_open(&srv->workers[i]) != 0)
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
        free_worker(&srv->workers[i]);
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
    listeners_close(w);
    http1_close_idle(w);
    h2_goaway_all(w);
    upstream_close_idle(w);
}

static void drain_check_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    http1_close_idle(w);
    if (w->n_clients == 0)
        event_base_loopexit(w->base, NULL);
}

/* Break a worker's loop from inside it: event_base_loopbreak() called
 * from another thread before the loop has started is forgotten, an event
 * queued on the base is not. */
static void break_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
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
        event_base_once(srv->workers[i].base, -1, EV_TIMEOUT, break_cb, srv->workers[i].base, NULL);
    for (unsigned i = 0; i < srv->n_workers; i++)
        pthread_join(srv->workers[i].thread, NULL);
}

void server_free(struct server *srv)
{
    for (unsigned i = 0; i < srv->n_workers; i++)
        free_worker(&srv->workers[i]);
    free(srv->workers);
    if (srv->store)
        store_free(srv->store);
    generations_close(srv->gens);
    etag_history_free(srv->etag_hist);
    access_log_close(srv);
    tls_config_free(srv->tls);
    for (size_t i = 0; i < srv->n_old_tls; i++)
        tls_config_free(srv->old_tls[i]);
    free(srv->old_tls);
    tls_tickets_free(srv->tickets);
    for (size_t i = 0; i < srv->n_old_cfgs; i++)
        config_free(srv->old_cfgs[i]);
    config_free(srv->cfg);
    srv->cfg = NULL;
    free(srv->old_cfgs);
    srv->magic = 0;
}

void server_sum_counters(struct server *srv, struct counters *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < srv->n_workers; i++)
        counters_add(out, &srv->workers[i].counters);
}

/* On each worker's thread, queued by trim_if_shrunk: free what the
 * worker pools for reuse.  Its pools hold as many request parts and ended
 * fetches as it had at once (32 connections filling a cache: ~250 KiB of
 * parts, message buffers and events), allocated among the objects the
 * purge freed: live, they keep their pages and the partly used pages
 * around them out of the trim (bench/run rss, docs/performance.md).  The
 * next requests allocate anew, as after a start. */
static void shed_pools_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    http1_shed_pool(w);
    fetch_shed_pool(w);
    upstream_close_idle(w);
    atomic_fetch_add_explicit(&w->srv->trim_shed, 1, memory_order_release);
}

/* Memory the store gave back (a sweep after a bump, a purge): hand it to
 * the system.  glibc keeps freed memory in its arenas, and after a deploy
 * freed a full cache an operator would see no change in RSS.  Once the
 * store has shrunk by TRIM_MIN bytes from its high mark (taken on every
 * sweep call) and the sweep has caught up, the index's bucket arrays
 * shrink to the objects left (a million objects grew them to 8 MiB), each
 * worker sheds its pools (shed_pools_cb), and once every one has, on a
 * later sweep call, malloc_trim() releases the free pages of every arena
 * (madvise), which the hit path never calls into. */
static void trim_if_shrunk(struct server *srv, bool caught_up)
{
    struct store_stats st;
    store_get_stats(srv->store, &st);
    if (srv->trim_pending) {
        if (atomic_load_explicit(&srv->trim_shed, memory_order_acquire) < srv->n_workers)
            return;
        malloc_trim(0);
        log_debug("released freed memory to the system (the store shrank by %llu MiB)",
                  (unsigned long long)((srv->trim_mark > st.bytes ? srv->trim_mark - st.bytes : 0) >> 20));
        srv->trim_mark = st.bytes;
        srv->trim_pending = false;
        return;
    }
    if (st.bytes > srv->trim_mark) {
        srv->trim_mark = st.bytes;          /* growing: remember the high mark */
        return;
    }
    if (!caught_up || srv->trim_mark - st.bytes < TRIM_MIN)
        return;
    size_t index = store_shrink_index(srv->store);
    log_debug("sweep caught up: the store's index shrank by %zu KiB; workers shed their pools "
              "before freed memory goes back to the system", index >> 10);
    atomic_store_explicit(&srv->trim_shed, 0, memory_order_relaxed);
    srv->trim_pending = true;
    for (unsigned i = 0; i < srv->n_workers; i++)
        AZ(event_base_once(srv->workers[i].base, -1, EV_TIMEOUT, shed_pools_cb, &srv->workers[i],
                           NULL));
}

void server_sweep(struct server *srv)
{
    /* With after_purge: revalidate, older generations are what the next
     * request revalidates against: they leave by LRU, not by sweep. */
    if (srv->cfg->cache.after_purge == AFTER_PURGE_REFETCH) {
        size_t n = store_sweep(srv->store, srv->gens, SWEEP_BUDGET);
        if (n)
            log_debug("sweep: reclaimed %zu objects of older generations", n);
    }
    /* Trim once the sweep has caught up (a whole pass since the bump):
     * a pass spans several calls (64 shards of at least 1024 buckets are
     * more than one call's budget), and trimming after the first of them
     * (then measuring the shrink from there) left what the others freed
     * in the arenas. */
    trim_if_shrunk(srv, srv->cfg->cache.after_purge != AFTER_PURGE_REFETCH ||
                        store_sweep_caught_up(srv->store, srv->gens));
}

/* On each worker's thread: its listeners follow the new config, and idle
 * origin connections go if the origin changed (new ones use the new
 * address; those in use finish their exchange and are not pooled). */
static void sync_listeners_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    listeners_sync(arg);
    upstream_close_idle(arg);
    /* HTTP/2 clients reconnect and meet the new settings and certificates
     * (the streams under way finish first). */
    h2_goaway_all(arg);
}

static bool policies_same(const struct fc_config *a, const struct fc_config *b)
{
    if (a->n_policies != b->n_policies)
        return false;
    for (size_t i = 0; i < a->n_policies; i++)
        if (strcmp(a->policies[i].name, b->policies[i].name) != 0)
            return false;
    return true;
}

int server_reload(struct server *srv, char *err, size_t errlen)
{
    struct fc_config *old = srv->cfg;
    struct config_errors errs = { 0 };
    struct fc_config *cfg = config_load(old->path, &errs);
    if (cfg == NULL) {
        for (size_t i = 0; i < errs.n; i++)
            log_error("reload refused: %s", errs.lines[i]);
        snprintf(err, errlen, "%s", errs.n ? errs.lines[0] : "invalid configuration");
        config_errors_free(&errs);
        return -1;
    }
    /* New listen addresses must be free before anything changes: a reload
     * is applied whole or not at all. */
    for (size_t i = 0; i < cfg->n_listen; i++) {
        const struct fc_listen *l = &cfg->listen[i];
        bool had = false;
        for (size_t j = 0; j < old->n_listen && !had; j++)
            had = strcmp(l->address, old->listen[j].address) == 0;
        if (had)
            continue;
        const char *why = listener_probe(l) != 0 ? strerror(errno) : NULL;
        if (why) {
            snprintf(err, errlen, "%s: listen %s: %s", cfg->path, l->address, why);
            log_error("reload refused: %s", err);
            config_free(cfg);
            return -1;
        }
    }
    /* Certificates and keys are re-read on every reload: new connections
     * get the new ones, open ones finish on the old (each SSL holds its
     * context).  One that does not load refuses the reload whole. */
    struct tls_config *tc = build_tls(srv, cfg, err, errlen);
    if (tc == NULL) {
        log_error("reload refused: %s", err);
        config_free(cfg);
        return -1;
    }
    /* What threads, memory or sockets set up at start depend on stays
     * until a restart; say so rather than pretend.  Compared with the
     * config the daemon started with (the first one kept), so a setting
     * changed two reloads ago is still reported. */
    const char *keys[CONFIG_RESTART_KEYS_MAX];
    size_t n_keys = config_restart_keys(srv->n_old_cfgs ? srv->old_cfgs[0] : old, cfg, keys,
                                        FC_ARRAY_LEN(keys));
    for (size_t i = 0; i < n_keys; i++)
        log_warn("reload: %s changed; takes effect on restart", keys[i]);
    if (!policies_same(cfg, old)) {
        const char **names = policy_names(cfg);
        generations_reindex(srv->gens, names, cfg->n_policies);
        free(names);
    }
    srv->old_cfgs = realloc(srv->old_cfgs, (srv->n_old_cfgs + 1) * sizeof *srv->old_cfgs);
    AN(srv->old_cfgs);
    srv->old_cfgs[srv->n_old_cfgs++] = old;
    srv->old_tls = realloc(srv->old_tls, (srv->n_old_tls + 1) * sizeof *srv->old_tls);
    AN(srv->old_tls);
    srv->old_tls[srv->n_old_tls++] = srv->tls;
    srv->tls = tc;
    srv->cfg = cfg;
    log_set_level(cfg->log.level);
    for (unsigned i = 0; i < srv->n_workers; i++)
        event_base_once(srv->workers[i].base, -1, EV_TIMEOUT, sync_listeners_cb,
                        &srv->workers[i], NULL);
    log_info("reloaded %s", cfg->path);
    return 0;
}
