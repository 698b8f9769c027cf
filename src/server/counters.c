/*
 * counters.c — see include/freshcache/server/counters.h.
 */
#include "freshcache/server/counters.h"

void counters_origin_latency(struct counters *c, uint64_t ms)
{
    static const uint64_t bounds[ORIGIN_LATENCY_N_BUCKETS] = ORIGIN_LATENCY_BUCKETS_MS;
    int b = 0;
    while (b < ORIGIN_LATENCY_N_BUCKETS && ms > bounds[b])
        b++;
    atomic_fetch_add_explicit(&c->origin_latency_bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->origin_latency_sum_ms, ms, memory_order_relaxed);
}

void counters_add(struct counters *out, const struct counters *in)
{
#define X(name) out->name += atomic_load_explicit(&in->name, memory_order_relaxed);
    FC_COUNTERS(X)
#undef X
    for (int b = 0; b <= ORIGIN_LATENCY_N_BUCKETS; b++)
        out->origin_latency_bucket[b] +=
            atomic_load_explicit(&in->origin_latency_bucket[b], memory_order_relaxed);
    out->origin_latency_sum_ms += atomic_load_explicit(&in->origin_latency_sum_ms,
                                                       memory_order_relaxed);
}
