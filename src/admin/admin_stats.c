/*
 * admin_stats.c — GET /stats (JSON), GET /metrics (Prometheus text
 * exposition 0.0.4) and GET /nodes (the cluster's members as this node
 * sees them).  The counters come from server.h's X-macro, so a new counter
 * appears in both without an edit here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "build_config.h"
#include "freshcache/admin/admin_ops.h"
#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/cluster/cluster.h"
#include "freshcache/server/server.h"
#include "freshcache/server/tls.h"
#include "admin_int.h"

/* Counters, from server.h's X-macro so none is ever forgotten; the table
 * below only gives names and help texts (a counter missing from it still
 * appears, under its own name). */
static const struct {
    const char *name;
    size_t off;
} counter_fields[] = {
#define X(n) { #n, offsetof(struct counters, n) },
    FC_COUNTERS(X)
#undef X
};

static const struct counter_meta {
    const char *counter;    /* name in FC_COUNTERS */
    const char *json;       /* key in GET /stats */
    const char *metric;     /* Prometheus name */
    const char *help;
} counter_meta[] = {
    { "requests", "requests", "freshcache_requests_total", "Client requests received." },
    { "hits", "hits", "freshcache_cache_hits_total", "Requests answered from the cache." },
    { "misses", "misses", "freshcache_cache_misses_total",
      "Requests for which nothing usable was stored (fetched from the origin)." },
    { "revalidations", "revalidations", "freshcache_cache_revalidations_total",
      "Stored responses revalidated with the origin." },
    { "stale", "stale", "freshcache_cache_stale_total",
      "Stale responses served (stale-while-revalidate, stale-if-error)." },
    { "passes", "passes", "freshcache_cache_passes_total",
      "Requests passed to the origin without using the cache." },
    { "collapsed", "collapsed", "freshcache_cache_collapsed_total",
      "Requests that waited for another request's origin fetch." },
    { "origin_requests", "origin_requests", "freshcache_origin_requests_total",
      "Requests sent to the origin." },
    { "origin_errors", "origin_errors", "freshcache_origin_errors_total",
      "Origin fetches that failed (connect, timeout, malformed response)." },
    { "client_errors", "client_errors", "freshcache_client_errors_total",
      "Malformed or refused client requests." },
    { "bytes_sent", "bytes_sent", "freshcache_bytes_sent_total", "Response bytes sent to clients." },
    /* "connections" in /stats is the number open now (a gauge). */
    { "connections", "connections_accepted", "freshcache_connections_accepted_total",
      "Client connections accepted." },
    { "connections_handed_off", "connections_handed_off",
      "freshcache_connections_handed_off_total",
      "Accepted connections handed to a less loaded worker (accept balancing)." },
    { "tls_handshakes", "tls_handshakes", "freshcache_tls_handshakes_total",
      "TLS handshakes completed with clients." },
    { "tls_handshake_failures", "tls_handshake_failures", "freshcache_tls_handshake_failures_total",
      "TLS handshakes with clients that failed or timed out." },
    { "kept_after_deploy", "kept_after_deploy", "freshcache_kept_after_deploy_total",
      "Stored copies served because the origin answered 404/410 (keep_after_deploy)." },
    { "early_hints", "early_hints", "freshcache_early_hints_total",
      "103 Early Hints sent from a stored copy's Link fields (early_hints)." },
    { "deception_refused", "deception_refused", "freshcache_deception_refused_total",
      "Responses not stored because their Content-Type disagreed with the extension of a "
      "path-matched policy's path (web cache deception)." },
};

static const struct counter_meta *meta_for(const char *counter)
{
    for (size_t i = 0; i < FC_ARRAY_LEN(counter_meta); i++)
        if (strcmp(counter_meta[i].counter, counter) == 0)
            return &counter_meta[i];
    return NULL;
}

static uint64_t counter_value(struct counters *cs, size_t off)
{
    return atomic_load_explicit((_Atomic uint64_t *)((char *)cs + off), memory_order_relaxed);
}

/* GET /stats */
void do_stats(struct admin_conn *c)
{
    struct ops_stats st;
    memset(&st, 0, sizeof st);
    ops_stats(c->a->srv, &st);
    json_t *r = json_object();
    for (size_t i = 0; i < FC_ARRAY_LEN(counter_fields); i++) {
        const struct counter_meta *m = meta_for(counter_fields[i].name);
        json_object_set_new(r, m ? m->json : counter_fields[i].name,
                            json_integer((json_int_t)counter_value(&st.counters, counter_fields[i].off)));
    }
    json_object_set_new(r, "objects", json_integer((json_int_t)st.objects));
    json_object_set_new(r, "bytes", json_integer((json_int_t)st.bytes));
    json_object_set_new(r, "max_bytes", json_integer((json_int_t)st.max_bytes));
    json_object_set_new(r, "evictions", json_integer((json_int_t)st.evictions));
    json_object_set_new(r, "purges", json_integer((json_int_t)st.purges));
    json_object_set_new(r, "generation", json_integer((json_int_t)st.generation));
    /* Unix seconds of the last bump (global or a policy's), 0: never. */
    json_object_set_new(r, "last_bump", json_integer((json_int_t)(st.generation_changed_ms / 1000)));
    json_object_set_new(r, "uptime", json_integer((json_int_t)st.uptime_seconds));
    json_object_set_new(r, "connections", json_integer((json_int_t)st.connections));
    uint64_t warmed = 0;
    for (size_t i = 0; i < FC_ARRAY_LEN(c->a->warm_urls); i++)
        warmed += c->a->warm_urls[i];
    json_object_set_new(r, "warm_runs", json_integer((json_int_t)c->a->warm_runs));
    json_object_set_new(r, "warm_urls", json_integer((json_int_t)warmed));
    reply_json(c, 200, r, NULL);
}

static void metric(struct evbuffer *out, const char *name, const char *type, const char *help,
                   uint64_t value)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type,
                        name, value);
}

/* The cluster's part of /metrics (cluster: in the config). */
static void cluster_metrics(struct evbuffer *b, struct cluster *cl)
{
    struct cluster_stats cs;
    cluster_get_stats(cl, &cs);
    metric(b, "freshcache_cluster_connected", "gauge",
           "1 when this node is in touch with the cluster's Redis and caught up.", cs.connected);
    metric(b, "freshcache_cluster_catching_up", "gauge",
           "1 while every stored response is revalidated (out of touch past max_disconnect).",
           cs.catching_up);
    metric(b, "freshcache_cluster_nodes_live", "gauge",
           "Nodes of the cluster heard from within the liveness window.", cs.live_nodes);
    metric(b, "freshcache_cluster_events_applied_total", "counter",
           "Purges and generation bumps from other nodes applied here.", cs.events_applied);
    metric(b, "freshcache_cluster_disconnects_total", "counter",
           "Times the connection to the cluster's Redis was lost.", cs.disconnects);
    static const uint64_t bounds[CLUSTER_LAG_N_BUCKETS] = CLUSTER_LAG_BUCKETS_MS;
    evbuffer_add_printf(b, "# HELP freshcache_cluster_purge_lag_seconds Time from a purge sent "
                           "by another node to its application here.\n"
                           "# TYPE freshcache_cluster_purge_lag_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < CLUSTER_LAG_N_BUCKETS; i++) {
        cum += cs.lag_bucket[i];
        evbuffer_add_printf(b, "freshcache_cluster_purge_lag_seconds_bucket{le=\"%g\"} %" PRIu64
                               "\n", (double)bounds[i] / 1000.0, cum);
    }
    cum += cs.lag_bucket[CLUSTER_LAG_N_BUCKETS];
    evbuffer_add_printf(b, "freshcache_cluster_purge_lag_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                           "freshcache_cluster_purge_lag_seconds_sum %.3f\n"
                           "freshcache_cluster_purge_lag_seconds_count %" PRIu64 "\n",
                        cum, (double)cs.lag_sum_ms / 1000.0, cs.lag_count);
}

/* POST /warm's part of /metrics. */
static void warm_metrics(struct evbuffer *b, const struct admin *a)
{
    metric(b, "freshcache_warm_runs_total", "counter", "Warm runs started (POST /warm).",
           a->warm_runs);
    evbuffer_add_printf(b, "# HELP freshcache_warm_urls_total URLs warmed, by result.\n"
                           "# TYPE freshcache_warm_urls_total counter\n");
    for (int i = WARM_STORED; i <= WARM_FAILED; i++)
        evbuffer_add_printf(b, "freshcache_warm_urls_total{result=\"%s\"} %" PRIu64 "\n",
                            warm_outcome_name((enum warm_outcome)i), a->warm_urls[i]);
}

/* GET /metrics — Prometheus text exposition format 0.0.4. */
void do_metrics(struct admin_conn *c)
{
    struct ops_stats st;
    memset(&st, 0, sizeof st);
    ops_stats(c->a->srv, &st);
    struct evbuffer *b = evbuffer_new();
    AN(b);
    for (size_t i = 0; i < FC_ARRAY_LEN(counter_fields); i++) {
        const char *name = counter_fields[i].name;
        const struct counter_meta *m = meta_for(name);
        uint64_t v = counter_value(&st.counters, counter_fields[i].off);
        if (m) {
            metric(b, m->metric, "counter", m->help, v);
        } else {
            char mname[128];
            snprintf(mname, sizeof mname, "freshcache_%s_total", name);
            metric(b, mname, "counter", name, v);
        }
    }
    /* The same counts as one family labelled by cache outcome, the shape
     * dashboards group by. */
    evbuffer_add_printf(b, "# HELP freshcache_responses_total Client requests by cache outcome.\n"
                           "# TYPE freshcache_responses_total counter\n");
    const struct { const char *label; uint64_t v; } by_status[] = {
        { "hit", st.counters.hits },
        { "miss", st.counters.misses },
        { "revalidated", st.counters.revalidations },
        { "collapsed", st.counters.collapsed },
        { "pass", st.counters.passes },
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(by_status); i++)
        evbuffer_add_printf(b, "freshcache_responses_total{cache=\"%s\"} %" PRIu64 "\n",
                            by_status[i].label, by_status[i].v);
    metric(b, "freshcache_cache_evictions_total", "counter",
           "Stored objects evicted to stay within cache.memory.", st.evictions);
    metric(b, "freshcache_purges_total", "counter", "Purge requests and generation bumps.", st.purges);
    metric(b, "freshcache_objects", "gauge", "Objects stored in the cache.", st.objects);
    metric(b, "freshcache_bytes", "gauge", "Bytes stored in the cache.", st.bytes);
    metric(b, "freshcache_max_bytes", "gauge", "The cache's memory bound (cache.memory).", st.max_bytes);
    metric(b, "freshcache_generation", "gauge", "The global deploy generation.", st.generation);
    evbuffer_add_printf(b, "# HELP freshcache_generation_changed_timestamp_seconds When a generation "
                           "(global or a policy's) last changed, Unix time; 0: never.\n"
                           "# TYPE freshcache_generation_changed_timestamp_seconds gauge\n"
                           "freshcache_generation_changed_timestamp_seconds %.3f\n",
                        (double)st.generation_changed_ms / 1000.0);
    metric(b, "freshcache_uptime_seconds", "gauge", "Seconds since the daemon started.",
           st.uptime_seconds);
    metric(b, "freshcache_connections", "gauge", "Client connections open now.", st.connections);
    evbuffer_add_printf(b, "# HELP freshcache_worker_connections Client connections each worker "
                           "holds, TLS handshakes included.\n"
                           "# TYPE freshcache_worker_connections gauge\n");
    for (unsigned i = 0; i < ops_workers(c->a->srv); i++)
        evbuffer_add_printf(b, "freshcache_worker_connections{worker=\"%u\"} %u\n", i,
                            ops_worker_connections(c->a->srv, i));
    static const uint64_t bounds[ORIGIN_LATENCY_N_BUCKETS] = ORIGIN_LATENCY_BUCKETS_MS;
    evbuffer_add_printf(b, "# HELP freshcache_origin_latency_seconds Time from sending a request "
                           "to the origin to its response head.\n"
                           "# TYPE freshcache_origin_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < ORIGIN_LATENCY_N_BUCKETS; i++) {
        cum += st.counters.origin_latency_bucket[i];
        evbuffer_add_printf(b, "freshcache_origin_latency_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                            (double)bounds[i] / 1000.0, cum);
    }
    cum += st.counters.origin_latency_bucket[ORIGIN_LATENCY_N_BUCKETS];
    evbuffer_add_printf(b, "freshcache_origin_latency_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                           "freshcache_origin_latency_seconds_sum %.3f\n"
                           "freshcache_origin_latency_seconds_count %" PRIu64 "\n",
                        cum, (double)st.counters.origin_latency_sum_ms / 1000.0, cum);
    const struct tls_cert_info *certs;
    size_t n_certs = ops_tls_certs(c->a->srv, &certs);
    /* The family is announced even without TLS listeners, so a dashboard
     * or an alert rule finds it. */
    evbuffer_add_printf(b, "# HELP freshcache_tls_certificate_expiry_timestamp_seconds When "
                               "each listener certificate expires (Unix time).\n"
                               "# TYPE freshcache_tls_certificate_expiry_timestamp_seconds gauge\n");
    for (size_t i = 0; i < n_certs; i++)
        evbuffer_add_printf(b, "freshcache_tls_certificate_expiry_timestamp_seconds{name=\"%s\"} "
                               "%lld\n", certs[i].name, (long long)certs[i].not_after);
    warm_metrics(b, c->a);
    if (c->a->cluster)
        cluster_metrics(b, c->a->cluster);
    evbuffer_add_printf(b,
                        "# HELP freshcache_build_info The running version.\n"
                        "# TYPE freshcache_build_info gauge\n"
                        "freshcache_build_info{version=\"%s\"} 1\n",
                        FRESHCACHE_VERSION);
    size_t len = evbuffer_get_length(b);
    reply(c, 200, "text/plain; version=0.0.4", (const char *)evbuffer_pullup(b, -1), len, NULL);
    evbuffer_free(b);
}

/* GET /nodes */
void do_nodes(struct admin_conn *c)
{
    struct cluster *cl = c->a->cluster;
    if (cl == NULL) {
        reply_error(c, 404, NULL, "this node is not in a cluster (no cluster: in its config)");
        return;
    }
    const struct cluster_node *nodes;
    size_t n;
    char err[512];
    if (ops_nodes(cl, &nodes, &n, err, sizeof err) != 0) {
        reply_error(c, 503, NULL, "%s", err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *pol = json_object();
        for (size_t j = 0; j < nodes[i].gens.n_policies; j++)
            json_object_set_new(pol, nodes[i].gens.policies[j].name,
                                json_integer((json_int_t)nodes[i].gens.policies[j].gen));
        json_array_append_new(list, json_pack("{s:s, s:I, s:I, s:b, s:b, s:o}", "node",
                                              nodes[i].name, "generation",
                                              (json_int_t)nodes[i].gens.global, "last_seen_ms",
                                              (json_int_t)nodes[i].last_seen_ms, "live",
                                              nodes[i].live, "self", nodes[i].self, "policies",
                                              pol));
    }
    reply_json(c, 200, json_pack("{s:s, s:s, s:o}", "cluster", cluster_name(cl), "node",
                                 cluster_node_name(cl), "nodes", list), NULL);
}
