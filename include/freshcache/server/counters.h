/*
 * counters.h — the request counters: one set per worker, written only by
 * that worker (relaxed atomics), summed when /stats or /metrics read them.
 */
#ifndef FRESHCACHE_COUNTERS_H
#define FRESHCACHE_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

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
    X(connections)     \
    X(connections_handed_off) \
    X(tls_handshakes)  \
    X(tls_handshake_failures) \
    X(kept_after_deploy)      \
    X(early_hints)            \
    X(deception_refused)

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

#define COUNT(c, name, n) atomic_fetch_add_explicit(&(c)->name, (n), memory_order_relaxed)

/* Count one origin response head `ms` after its request was sent. */
void counters_origin_latency(struct counters *c, uint64_t ms);
/* out += in (a snapshot of another worker's counters). */
void counters_add(struct counters *out, const struct counters *in);

#endif
