/*
 * admin.c — the admin API: HTTP/1.1 with JSON bodies on a Unix socket.
 * See include/freshcache/admin.h and docs/admin-api.md.
 *
 * Everything here runs on the main thread's event loop.  This file only
 * parses requests and formats answers; every effect goes through
 * admin_ops.h.  Requests on one connection are answered one at a time, in
 * order (the parser is not fed while a request is being answered), which is
 * what keep-alive and pipelining need.
 *
 *   READ ──request──▶ route ──▶ reply ──keep-alive──▶ READ
 *                       │                 └─────────▶ CLOSING ──flushed──▶ free
 *                       └──▶ (POST /verify) PENDING ──done──▶ reply
 *
 * POST /verify is asynchronous: the connection keeps a struct verify_pending
 * that the ops layer calls back.  If the connection goes away first, the
 * pending object outlives it with `conn` set to NULL ("connection gone"),
 * and the callback only frees it.  As in proxy.c, closing is deferred to an
 * event so no callback frees a connection under its caller's feet.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>

#include "build_config.h"
#include "freshcache/admin/admin.h"
#include "freshcache/admin/admin_body.h"
#include "freshcache/admin/admin_ops.h"
#include "freshcache/admin/sitemap.h"
#include "freshcache/admin/warm.h"
#include "freshcache/server/tls.h"
#include "freshcache/base/assert.h"
#include "freshcache/config/config_check.h"
#include "freshcache/http/http_parse.h"
#include "freshcache/base/log.h"
#include "freshcache/cluster/cluster.h"
#include "freshcache/server/server.h"

#define ADMIN_MAX_HEAD (16 * 1024)
#define ADMIN_MAX_BODY (1024 * 1024)
#define ADMIN_MAX_CONNS 64
#define ADMIN_MAX_VERIFY_URLS 256
#define ADMIN_BACKLOG 16
/* Stop reading from a connection whose unparsed input exceeds this (only
 * happens while a /verify is pending, the parser being paused then). */
#define ADMIN_READ_HIGH (256 * 1024)
#define ADMIN_TIMEOUT_MS_DEFAULT 30000

struct admin_conn;

/* A purge sent to the cluster, waiting for the nodes' acknowledgements.
 * Like verify_pending, it outlives its connection if the client leaves. */
struct cluster_pending {
#define CLUSTER_PENDING_MAGIC 0x7e21f0a2u
    unsigned magic;
    struct admin_conn *conn;        /* NULL once the connection is gone */
    bool generation;
    char *policy;                   /* the policy bumped, or NULL */
    char *what;                     /* for the log line */
};

struct verify_pending {
#define VERIFY_PENDING_MAGIC 0x7e21f0a1u
    unsigned magic;
    struct admin_conn *conn;        /* NULL once the connection is gone */
    char **paths;
    size_t n;
};

/* A POST /warm streaming its progress.  Unlike verify, a warm whose
 * client left is cancelled (warm_cancel): nobody would see the rest. */
struct warm_pending {
#define WARM_PENDING_MAGIC 0x7e21f0a3u
    unsigned magic;
    struct admin_conn *conn;
    struct warm_job *job;
    char host[256];
    size_t n_urls;                  /* given, for the log */
    char *sitemap;                  /* or NULL */
    unsigned concurrency;
};

struct admin_conn {
#define ADMIN_CONN_MAGIC 0xad317c00u
    unsigned magic;
    struct admin *a;
    struct bufferevent *bev;
    struct event *kick;             /* deferred: free when closing, or parse on */
    struct http_parser parser;
    struct http_msg req;
    struct evbuffer *body;          /* the current request's body */
    struct verify_pending *pending; /* a /verify in progress */
    struct cluster_pending *cpending;   /* a purge waiting for the cluster */
    struct warm_pending *wpending;  /* a /warm streaming its progress */
    char who[48];                   /* "pid N, uid N" of the peer, for the log */
    bool body_overflow;
    bool head_req;                  /* the current request is a HEAD */
    bool keep_alive;
    bool peer_eof;                  /* the client shut down its sending side */
    bool closing;
    bool metrics_only;              /* accepted on metrics.listen: GET /metrics only */
    LIST_ENTRY(admin_conn) link;
};

struct admin {
#define ADMIN_MAGIC 0xad3100aau
    unsigned magic;
    struct server *srv;
    struct event_base *base;
    struct evconnlistener *listener;
    struct evconnlistener *metrics_listener;    /* metrics.listen (loopback TCP), or NULL */
    struct cluster *cluster;        /* with cluster: in the config, else NULL */
    struct event *accept_retry;     /* re-enable accepting after EMFILE & co */
    char *path;
    dev_t dev;                      /* of the socket we created, so admin_stop */
    ino_t ino;                      /* never unlinks someone else's */
    struct timeval timeout;
    LIST_HEAD(, admin_conn) conns;
    unsigned n_conns;
    time_t refused_logged;          /* rate limit for the "too many" warning */
    unsigned refused;
    /* POST /warm, for /stats and /metrics (this loop's only) */
    uint64_t warm_runs;
    uint64_t warm_urls[WARM_FAILED + 1];    /* by enum warm_outcome */
};

static void conn_process(struct admin_conn *c);
static void conn_close(struct admin_conn *c);

/* ---- replies ---------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* Write one response, then either get ready for the next request or close.
 * `extra` is more header lines ("Name: value\r\n"...) or NULL. */
static void reply(struct admin_conn *c, int status, const char *ctype, const char *body, size_t len,
                  const char *extra)
{
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    FC_ASSERT(!c->closing);
    /* After the client's EOF, answer what it sent completely, then close. */
    bool close = !c->keep_alive ||
                 (c->peer_eof && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\n"
                        "Content-Type: %s\r\n"
                        "Content-Length: %zu\r\n"
                        "Cache-Control: no-store\r\n"
                        "%s%s"
                        "\r\n",
                        status, reason_phrase(status), ctype, len, extra ? extra : "",
                        close ? "Connection: close\r\n" : "");
    if (!c->head_req && len > 0)
        evbuffer_add(out, body, len);
    c->head_req = false;
    evbuffer_drain(c->body, evbuffer_get_length(c->body));
    if (close)
        conn_close(c);
    else
        http_parser_next(&c->parser);
}

/* Reply with `obj` (a reference is stolen) as one line of JSON. */
static void reply_json(struct admin_conn *c, int status, json_t *obj, const char *extra)
{
    AN(obj);
    char *text = json_dumps(obj, JSON_INDENT(0) | JSON_ENCODE_ANY);
    json_decref(obj);
    if (text == NULL) {
        static const char oom[] = "{\"error\": \"out of memory\"}\n";
        reply(c, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    size_t len = strlen(text);
    char *line = malloc(len + 2);
    AN(line);
    memcpy(line, text, len);
    line[len++] = '\n';
    free(text);
    reply(c, status, "application/json", line, len, extra);
    free(line);
}

static void reply_error(struct admin_conn *c, int status, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void reply_error(struct admin_conn *c, int status, const char *extra, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(msg));
    reply_json(c, status, o, extra);
}

/* An error that ends the connection (the request could not be framed). */
static void reply_fatal(struct admin_conn *c, int status, const char *msg)
{
    c->keep_alive = false;
    reply_error(c, status, NULL, "%s", msg);
}

/* ---- request bodies ---------------------------------------------------- */

/* The current request's body, contiguous.  Read and checked by
 * admin_body.c; a refusal is answered here. */
static const char *body_text(struct admin_conn *c, size_t *len)
{
    *len = evbuffer_get_length(c->body);
    return (const char *)evbuffer_pullup(c->body, -1);
}

static void reply_body_error(struct admin_conn *c, const struct admin_body_error *e)
{
    reply_error(c, e->status, NULL, "%s", e->msg);
}

/* ---- endpoints ---------------------------------------------------------- */

static bool policy_exists(const struct fc_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_policies; i++)
        if (strcmp(cfg->policies[i].name, name) == 0)
            return true;
    return false;
}

/* ---- purges through the cluster ----------------------------------------- */

static void cluster_pending_free(struct cluster_pending *cp)
{
    CHECK_OBJ_NOTNULL(cp, CLUSTER_PENDING_MAGIC);
    free(cp->policy);
    free(cp->what);
    cp->magic = 0;
    free(cp);
}

static json_t *nodes_summary(const struct cluster_result *r)
{
    json_t *missing = json_array();
    for (size_t i = 0; i < r->n_missing; i++)
        json_array_append_new(missing, json_string(r->missing[i]));
    return json_pack("{s:I, s:I, s:o}", "live", (json_int_t)r->live, "acked", (json_int_t)r->acked,
                     "missing", missing);
}

/* Called once by the cluster, on our loop, possibly from inside
 * ops_cluster_purge() itself. */
static void cluster_purge_done(void *arg, const struct cluster_result *r)
{
    struct cluster_pending *cp = arg;
    CHECK_OBJ_NOTNULL(cp, CLUSTER_PENDING_MAGIC);
    struct admin_conn *c = cp->conn;
    const char *who = c ? c->who : "client gone";
    char missing[512] = "";
    for (size_t i = 0, o = 0; i < r->n_missing && o < sizeof missing; i++)
        o += (size_t)snprintf(missing + o, sizeof missing - o, "%s%s", i ? ", " : "; missing: ",
                              r->missing[i]);
    if (r->status != CLUSTER_OK)
        log_error("admin: %s not done: %s [%s]", cp->what, r->error, who);
    else if (cp->generation)
        log_info("admin: %s bumped %" PRIu64 " -> %" PRIu64 ", %u/%u nodes%s [%s]", cp->what,
                 r->previous, r->generation, r->acked, r->live, missing, who);
    else
        log_info("admin: %s: %" PRIu64 " object%s, %u/%u nodes%s [%s]", cp->what, r->purged,
                 r->purged == 1 ? "" : "s", r->acked, r->live, missing, who);
    if (c == NULL) {
        cluster_pending_free(cp);
        return;
    }
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    FC_ASSERT(c->cpending == cp);
    c->cpending = NULL;
    cp->conn = NULL;
    struct timeval *t = &c->a->timeout;
    bufferevent_set_timeouts(c->bev, t, t);
    if (r->status == CLUSTER_UNREACHABLE) {
        reply_error(c, 503, NULL, "%s", r->error);
    } else if (r->status != CLUSTER_OK) {
        reply_error(c, 500, NULL, "%s", r->error);
    } else {
        json_t *o = json_object();
        if (cp->generation) {
            json_object_set_new(o, "generation", json_integer((json_int_t)r->generation));
            json_object_set_new(o, "previous", json_integer((json_int_t)r->previous));
            if (cp->policy)
                json_object_set_new(o, "policy", json_string(cp->policy));
        } else {
            json_object_set_new(o, "purged", json_integer((json_int_t)r->purged));
        }
        json_object_set_new(o, "nodes", nodes_summary(r));
        reply_json(c, 200, o, NULL);
    }
    cluster_pending_free(cp);
    event_active(c->kick, EV_WRITE, 0);
}

/* Hand the purge to the cluster; the answer comes from cluster_purge_done. */
static void cluster_purge_start(struct admin_conn *c, const struct cluster_purge *p,
                                const char *what)
{
    struct cluster_pending *cp = calloc(1, sizeof *cp);
    AN(cp);
    cp->magic = CLUSTER_PENDING_MAGIC;
    cp->conn = c;
    cp->generation = p->what == CLUSTER_GENERATION;
    if (p->policy) {
        cp->policy = strdup(p->policy);
        AN(cp->policy);
    }
    cp->what = strdup(what);
    AN(cp->what);
    /* No idle timeout while the nodes answer (ack_timeout bounds it). */
    bufferevent_set_timeouts(c->bev, NULL, &c->a->timeout);
    c->cpending = cp;
    ops_cluster_purge(c->a->srv, c->a->cluster, p, cluster_purge_done, cp);
}

/* POST /purge/generation  [{"policy": "html"}] */
static void do_purge_generation(struct admin_conn *c)
{
    struct server *srv = c->a->srv;
    struct admin_generation_body b;
    struct admin_body_error e;
    size_t len;
    const char *text = body_text(c, &len);
    if (admin_body_generation(text, len, &b, &e) != 0) {
        reply_body_error(c, &e);
        return;
    }
    json_t *o = b.root;
    const char *policy = b.policy;
    if (policy != NULL && !policy_exists(srv->cfg, policy)) {
        reply_error(c, 404, NULL, "unknown policy \"%s\"", policy);
        json_decref(o);
        return;
    }
    if (c->a->cluster) {
        struct cluster_purge p = { .what = CLUSTER_GENERATION, .policy = policy };
        char what[200];
        snprintf(what, sizeof what, "generation%s%s%s of cluster %s", policy ? " of policy \"" : "",
                 policy ? policy : "", policy ? "\"" : " (all policies)",
                 cluster_name(c->a->cluster));
        cluster_purge_start(c, &p, what);
        json_decref(o);
        return;
    }
    uint64_t now = 0, prev = 0;
    char err[512] = "";
    if (ops_purge_generation(srv, policy, &now, &prev, err, sizeof err) != 0) {
        log_error("admin: generation bump%s%s%s failed: %s [%s]", policy ? " of policy \"" : "",
                  policy ? policy : "", policy ? "\"" : "", err[0] ? err : "unknown error", c->who);
        reply_error(c, 500, NULL, "generation bump failed: %s", err[0] ? err : "unknown error");
        json_decref(o);
        return;
    }
    if (policy)
        log_info("admin: generation of policy \"%s\" bumped %" PRIu64 " -> %" PRIu64 " [%s]", policy,
                 prev, now, c->who);
    else
        log_info("admin: generation bumped %" PRIu64 " -> %" PRIu64 " (all policies) [%s]", prev, now,
                 c->who);
    json_t *r = json_object();
    json_object_set_new(r, "generation", json_integer((json_int_t)now));
    json_object_set_new(r, "previous", json_integer((json_int_t)prev));
    if (policy)
        json_object_set_new(r, "policy", json_string(policy));
    json_decref(o);
    reply_json(c, 200, r, NULL);
}

/* GET /generation  {"generation": N, "policies": {"html": N, ...}} */
static void do_generation(struct admin_conn *c)
{
    struct gen_state *st = malloc(sizeof *st);    /* 8 KiB: not on the stack */
    AN(st);
    ops_generation(c->a->srv, st);
    json_t *r = json_object();
    json_t *policies = json_object();
    json_object_set_new(r, "generation", json_integer((json_int_t)st->global));
    for (size_t i = 0; i < st->n_policies; i++)
        json_object_set_new(policies, st->policies[i].name,
                            json_integer((json_int_t)st->policies[i].gen));
    json_object_set_new(r, "policies", policies);
    free(st);
    reply_json(c, 200, r, NULL);
}

/* POST /purge  {"url"|"prefix"|"tag": STR [, "soft": BOOL]} */
static void do_purge(struct admin_conn *c)
{
    struct admin_purge_body b;
    struct admin_body_error e;
    size_t len;
    const char *text = body_text(c, &len);
    if (admin_body_purge(text, len, &b, &e) != 0) {
        reply_body_error(c, &e);
        return;
    }
    json_t *o = b.root;
    const char *key = b.key, *arg = b.arg;
    enum purge_kind kind = b.kind;
    bool soft = b.soft;
    char safe[256];
    if (c->a->cluster) {
        struct cluster_purge p = { .what = CLUSTER_PURGE, .kind = kind, .arg = arg, .soft = soft };
        char what[400];
        snprintf(what, sizeof what, "%s purge of %s \"%s\" in cluster %s", soft ? "soft" : "hard",
                 key, log_escape(arg, safe, sizeof safe), cluster_name(c->a->cluster));
        cluster_purge_start(c, &p, what);
        json_decref(o);
        return;
    }
    unsigned purged = ops_purge(c->a->srv, kind, arg, soft);
    log_info("admin: %s purge of %s \"%s\": %u object%s [%s]", soft ? "soft" : "hard", key,
             log_escape(arg, safe, sizeof safe), purged, purged == 1 ? "" : "s", c->who);
    json_t *r = json_object();
    json_object_set_new(r, "purged", json_integer((json_int_t)purged));
    json_decref(o);
    reply_json(c, 200, r, NULL);
}

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
static void do_stats(struct admin_conn *c)
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
static void do_metrics(struct admin_conn *c)
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

/* POST /reload */
static void do_reload(struct admin_conn *c)
{
    struct admin_body_error e;
    size_t len;
    const char *text = body_text(c, &len);
    if (admin_body_reload(text, len, &e) != 0) {
        reply_body_error(c, &e);
        return;
    }
    char err[1024] = "";
    json_t *r = json_object();
    if (ops_reload(c->a->srv, err, sizeof err) != 0) {
        if (err[0] == '\0')
            snprintf(err, sizeof err, "reload failed");
        log_warn("admin: reload refused, the old config keeps serving: %s [%s]", err, c->who);
        json_object_set_new(r, "ok", json_false());
        json_object_set_new(r, "error", json_string(err));
        reply_json(c, 422, r, NULL);
        return;
    }
    log_info("admin: config reloaded [%s]", c->who);
    /* Applied, except what only a restart can change: name it, so the
     * operator is not told "OK" about a setting still not in force. */
    const char *restart[CONFIG_RESTART_KEYS_MAX];
    size_t n = ops_restart_pending(c->a->srv, restart, FC_ARRAY_LEN(restart));
    json_object_set_new(r, "ok", json_true());
    /* Only when there is something to say: the answer stays the spec's
     * {"ok": true} otherwise. */
    if (n > 0) {
        json_t *pending = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(pending, json_string(restart[i]));
        json_object_set_new(r, "restart_required", pending);
    }
    reply_json(c, 200, r, NULL);
}

static void verify_pending_free(struct verify_pending *vp)
{
    CHECK_OBJ_NOTNULL(vp, VERIFY_PENDING_MAGIC);
    for (size_t i = 0; i < vp->n; i++)
        free(vp->paths[i]);
    free(vp->paths);
    vp->magic = 0;
    free(vp);
}

/* Called once by ops_verify on our event loop (possibly from inside the
 * ops_verify call itself). */
static void verify_done(void *arg, struct verify_result *results, size_t n)
{
    struct verify_pending *vp = arg;
    CHECK_OBJ_NOTNULL(vp, VERIFY_PENDING_MAGIC);
    struct admin_conn *c = vp->conn;
    if (c == NULL) {
        log_debug("admin: verify finished after its client left");
        verify_pending_free(vp);
        return;
    }
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    FC_ASSERT(c->pending == vp);
    c->pending = NULL;
    vp->conn = NULL;

    json_t *list = json_array();
    unsigned stale = 0;
    for (size_t i = 0; i < n; i++) {
        const struct verify_result *vr = &results[i];
        json_t *e = json_object();
        json_object_set_new(e, "url", json_stringn(vr->path, strnlen(vr->path, sizeof vr->path)));
        json_object_set_new(e, "proxy_sha256", json_string(vr->proxy_sha256));
        json_object_set_new(e, "origin_sha256", json_string(vr->origin_sha256));
        json_object_set_new(e, "proxy_status", json_integer(vr->proxy_status));
        json_object_set_new(e, "origin_status", json_integer(vr->origin_status));
        json_object_set_new(e, "stored", json_boolean(vr->proxy_sha256[0] != '\0'));
        json_object_set_new(e, "stale", json_boolean(vr->stale));
        if (vr->error[0])
            json_object_set_new(e, "error", json_string(vr->error));
        json_array_append_new(list, e);
        if (vr->stale)
            stale++;
    }
    log_info("admin: verified %zu url%s: %u stale [%s]", n, n == 1 ? "" : "s", stale, c->who);
    json_t *r = json_object();
    json_object_set_new(r, "results", list);
    json_object_set_new(r, "stale", json_integer(stale));
    verify_pending_free(vp);

    /* The read timeout was lifted while waiting; parse on from the loop. */
    struct timeval *t = &c->a->timeout;
    bufferevent_set_timeouts(c->bev, t, t);
    reply_json(c, 200, r, NULL);
    event_active(c->kick, EV_WRITE, 0);
}

/* POST /verify  {"urls": ["/", "/app.js"]} */
static void do_verify(struct admin_conn *c)
{
    struct admin_verify_body b;
    struct admin_body_error e;
    size_t len;
    const char *text = body_text(c, &len);
    if (admin_body_verify(text, len, ADMIN_MAX_VERIFY_URLS,
                          sizeof ((struct verify_result *)0)->path, &b, &e) != 0) {
        reply_body_error(c, &e);
        return;
    }
    json_t *o = b.root;
    size_t n = b.n;
    struct verify_pending *vp = calloc(1, sizeof *vp);
    AN(vp);
    vp->magic = VERIFY_PENDING_MAGIC;
    vp->conn = c;
    vp->n = n;
    vp->paths = calloc(n, sizeof *vp->paths);
    AN(vp->paths);
    for (size_t i = 0; i < n; i++) {
        vp->paths[i] = strdup(admin_verify_path(&b, i));
        AN(vp->paths[i]);
    }
    json_decref(o);

    /* While the origin is asked: no idle timeout, but keep reading so a
     * client that leaves is noticed (conn_event). */
    struct timeval *t = &c->a->timeout;
    bufferevent_set_timeouts(c->bev, NULL, t);
    c->pending = vp;
    log_debug("admin: verifying %zu url%s [%s]", n, n == 1 ? "" : "s", c->who);
    int rc = ops_verify(c->a->srv, c->a->base, (const char *const *)vp->paths, n, verify_done, vp);
    if (rc != 0 && c->pending == vp) {
        /* Not started, and the callback will not come. */
        c->pending = NULL;
        verify_pending_free(vp);
        bufferevent_set_timeouts(c->bev, t, t);
        log_error("admin: verify could not be started [%s]", c->who);
        reply_error(c, 500, NULL, "verify could not be started");
    }
}

/* ---- POST /warm --------------------------------------------------------- */

static void warm_pending_free(struct warm_pending *wp)
{
    CHECK_OBJ_NOTNULL(wp, WARM_PENDING_MAGIC);
    free(wp->sitemap);
    wp->magic = 0;
    free(wp);
}

/* The client is gone, or the admin stops (`why`): no one reads the rest. */
static void warm_abandon(struct admin_conn *c, const char *why)
{
    struct warm_pending *wp = c->wpending;
    CHECK_OBJ_NOTNULL(wp, WARM_PENDING_MAGIC);
    log_info("admin: warm cancelled, %s [%s]", why, c->who);
    warm_cancel(wp->job);
    c->wpending = NULL;
    warm_pending_free(wp);
}

/* One line of the streamed answer, as one chunk. */
static void stream_line(struct admin_conn *c, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    AN(text);
    size_t len = strlen(text);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out, "%zx\r\n", len + 1);
    evbuffer_add(out, text, len);
    evbuffer_add(out, "\n\r\n", 3);
    free(text);
}

static void warm_item(void *arg, const struct warm_item *it)
{
    struct warm_pending *wp = arg;
    CHECK_OBJ_NOTNULL(wp, WARM_PENDING_MAGIC);
    struct admin_conn *c = wp->conn;
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    json_t *o = json_object();
    json_object_set_new(o, it->sitemap ? "sitemap" : "url", json_string(it->url));
    if (it->status)
        json_object_set_new(o, "status", json_integer(it->status));
    if (it->cache_status[0])
        json_object_set_new(o, "cache_status", json_string(it->cache_status));
    if (it->sitemap) {
        json_object_set_new(o, "result", json_string(it->outcome == WARM_FAILED ? "failed" : "ok"));
        if (it->outcome != WARM_FAILED)
            json_object_set_new(o, "listed", json_integer((json_int_t)it->listed));
    } else {
        json_object_set_new(o, "result", json_string(warm_outcome_name(it->outcome)));
        c->a->warm_urls[it->outcome]++;
    }
    if (it->error)
        json_object_set_new(o, "error", json_string(it->error));
    stream_line(c, o);
}

static void warm_done(void *arg, const struct warm_summary *s)
{
    struct warm_pending *wp = arg;
    CHECK_OBJ_NOTNULL(wp, WARM_PENDING_MAGIC);
    struct admin_conn *c = wp->conn;
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    FC_ASSERT(c->wpending == wp);
    char safe[256] = "";
    if (wp->sitemap)
        log_escape(wp->sitemap, safe, sizeof safe);
    log_info("admin: warmed %zu url%s for host %s (%zu given%s%s, -j %u): %zu stored, %zu fresh, "
             "%zu not stored, %zu failed, in %" PRIu64 " ms [%s]", s->urls, s->urls == 1 ? "" : "s",
             wp->host, wp->n_urls, wp->sitemap ? ", sitemap " : "", safe, wp->concurrency,
             s->stored, s->fresh, s->not_stored, s->failed, s->elapsed_ms, c->who);
    json_t *o = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "summary", 1, "host",
                          wp->host, "urls", (json_int_t)s->urls, "stored", (json_int_t)s->stored,
                          "fresh", (json_int_t)s->fresh, "not_stored", (json_int_t)s->not_stored,
                          "failed", (json_int_t)s->failed, "sitemaps", (json_int_t)s->sitemaps,
                          "elapsed_ms", (json_int_t)s->elapsed_ms);
    stream_line(c, o);
    evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
    c->wpending = NULL;
    warm_pending_free(wp);

    struct timeval *t = &c->a->timeout;
    bufferevent_set_timeouts(c->bev, t, t);
    evbuffer_drain(c->body, evbuffer_get_length(c->body));
    if (!c->keep_alive || (c->peer_eof && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)) {
        conn_close(c);
        return;
    }
    http_parser_next(&c->parser);
    event_active(c->kick, EV_WRITE, 0);
}

/* The "urls" member: paths or URLs on `host`.  false after replying 400. */
static bool warm_urls(struct admin_conn *c, json_t *urls, const char *host)
{
    if (urls == NULL)
        return true;
    if (!json_is_array(urls)) {
        reply_error(c, 400, NULL, "\"urls\" must be an array of paths");
        return false;
    }
    if (json_array_size(urls) > WARM_MAX_URLS) {
        reply_error(c, 400, NULL, "at most %d urls per warm", WARM_MAX_URLS);
        return false;
    }
    size_t i;
    json_t *u;
    json_array_foreach(urls, i, u) {
        const char *s = json_string_value(u);
        char target[1024], why[200];
        if (!json_is_string(u) || strlen(s) != json_string_length(u)) {
            reply_error(c, 400, NULL, "urls[%zu] must be a string (a path or an http(s) URL)", i);
            return false;
        }
        if (url_to_target(s, host, target, sizeof target, why, sizeof why) != 0) {
            reply_error(c, 400, NULL, "urls[%zu]: %s", i, why);
            return false;
        }
    }
    return true;
}

/* A Host value we can send: a name or address, optionally ":port". */
static bool host_ok(const char *h, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("/?#@\\\"<>{}|^`", ch))
            return false;
    }
    return true;
}

/* POST /warm  {"urls": [...], "sitemap": "/sitemap.xml", "concurrency": N,
 *              "host": "www.example.com"} */
static void do_warm(struct admin_conn *c)
{
    static const char usage[] = "{\"urls\": [\"/path\", ...]} and/or {\"sitemap\": \"/sitemap.xml\"}, "
                                "optionally \"concurrency\": N and \"host\": NAME";
    static const char *const keys[] = { "urls", "sitemap", "concurrency", "host", NULL };
    struct admin_body_error e;
    size_t len;
    const char *text = body_text(c, &len);
    json_t *o = admin_body_object(text, len, true, usage, keys, &e);
    if (o == NULL) {
        reply_body_error(c, &e);
        return;
    }
    char host[256];
    const char *scheme = "http";
    json_t *hv = json_object_get(o, "host");
    if (hv) {
        if (!json_is_string(hv) || !host_ok(json_string_value(hv), json_string_length(hv))) {
            json_decref(o);
            reply_error(c, 400, NULL, "\"host\" must be a host name or address, optionally "
                        "with \":port\" (the Host clients send)");
            return;
        }
        snprintf(host, sizeof host, "%s", json_string_value(hv));
        const struct fc_config *cfg = c->a->srv->cfg;
        scheme = cfg->n_listen && cfg->listen[0].tls ? "https" : "http";
    } else {
        char err[300];
        if (warm_default_host(c->a->srv->cfg, host, sizeof host, &scheme, err, sizeof err) != 0) {
            json_decref(o);
            reply_error(c, 400, NULL, "%s", err);
            return;
        }
    }
    json_t *urls = json_object_get(o, "urls");
    json_t *sv = json_object_get(o, "sitemap");
    json_t *jv = json_object_get(o, "concurrency");
    if (!warm_urls(c, urls, host)) {
        json_decref(o);
        return;
    }
    char target[1024], why[200];
    if (sv && (!json_is_string(sv) || strlen(json_string_value(sv)) != json_string_length(sv) ||
               url_to_target(json_string_value(sv), host, target, sizeof target, why,
                             sizeof why) != 0)) {
        json_decref(o);
        reply_error(c, 400, NULL, "\"sitemap\" must be a path or an http(s) URL on %s", host);
        return;
    }
    if ((urls == NULL || json_array_size(urls) == 0) && sv == NULL) {
        json_decref(o);
        reply_error(c, 400, NULL, "nothing to warm: %s", usage);
        return;
    }
    json_int_t conc = WARM_DEFAULT_CONCURRENCY;
    if (jv) {
        conc = json_is_integer(jv) ? json_integer_value(jv) : 0;
        if (conc < 1 || conc > WARM_MAX_CONCURRENCY) {
            json_decref(o);
            reply_error(c, 400, NULL, "\"concurrency\" must be an integer from 1 to %d",
                        WARM_MAX_CONCURRENCY);
            return;
        }
    }
    size_t n = urls ? json_array_size(urls) : 0;
    const char **list = calloc(n ? n : 1, sizeof *list);
    AN(list);
    for (size_t i = 0; i < n; i++)
        list[i] = json_string_value(json_array_get(urls, i));

    struct warm_pending *wp = calloc(1, sizeof *wp);
    AN(wp);
    wp->magic = WARM_PENDING_MAGIC;
    wp->conn = c;
    snprintf(wp->host, sizeof wp->host, "%s", host);
    wp->n_urls = n;
    wp->concurrency = (unsigned)conc;
    if (sv) {
        wp->sitemap = strdup(json_string_value(sv));
        AN(wp->sitemap);
    }
    struct warm_params p = {
        .host = host,
        .scheme = scheme,
        .urls = list,
        .n_urls = n,
        .sitemap = wp->sitemap,
        .concurrency = (unsigned)conc,
    };
    c->a->warm_runs++;
    log_debug("admin: warming %zu url%s%s for host %s [%s]", n, n == 1 ? "" : "s",
              sv ? " and a sitemap" : "", host, c->who);
    /* The head now; a line per URL as it finishes, the summary last. */
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 200 OK\r\n"
                        "Content-Type: application/x-ndjson\r\n"
                        "Transfer-Encoding: chunked\r\n"
                        "Cache-Control: no-store\r\n"
                        "%s\r\n",
                        c->keep_alive ? "" : "Connection: close\r\n");
    /* No idle timeout while warming: the client only listens. */
    bufferevent_set_timeouts(c->bev, NULL, &c->a->timeout);
    c->wpending = wp;
    wp->job = warm_start(c->a->srv, c->a->base, &p, warm_item, warm_done, wp);
    free(list);
    json_decref(o);
}

/* GET /nodes */
static void do_nodes(struct admin_conn *c)
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

/* ---- routing ------------------------------------------------------------ */

enum route_methods { R_GET, R_POST };

static const struct route {
    const char *path;
    enum route_methods methods;
    void (*fn)(struct admin_conn *c);
} routes[] = {
    { "/purge/generation", R_POST, do_purge_generation },
    { "/generation", R_GET, do_generation },
    { "/purge", R_POST, do_purge },
    { "/stats", R_GET, do_stats },
    { "/metrics", R_GET, do_metrics },
    { "/reload", R_POST, do_reload },
    { "/verify", R_POST, do_verify },
    { "/warm", R_POST, do_warm },
    { "/nodes", R_GET, do_nodes },
};

static void on_request(struct admin_conn *c)
{
    struct http_msg *m = &c->req;
    /* Upgrade is ignored (RFC 9110 §7.8 allows it): the parser reads what
     * follows as HTTP, as for any request. */
    c->keep_alive = http_parser_keep_alive(&c->parser) && !c->parser.upgrade &&
                    m->method != HTTP_CONNECT;

    /* origin-form "/stats?x", or absolute-form "http://localhost/stats" */
    const char *u = http_msg_url(m);
    size_t ulen = m->url_len;
    size_t scheme = 0;
    if (ulen >= 7 && strncasecmp(u, "http://", 7) == 0)
        scheme = 7;
    else if (ulen >= 8 && strncasecmp(u, "https://", 8) == 0)
        scheme = 8;
    if (scheme) {
        const char *p = memchr(u + scheme, '/', ulen - scheme);
        size_t skip = p ? (size_t)(p - u) : ulen;
        u += skip;
        ulen -= skip;
    }
    size_t plen = 0;
    while (plen < ulen && u[plen] != '?' && u[plen] != '#')
        plen++;

    for (size_t i = 0; i < FC_ARRAY_LEN(routes); i++) {
        const struct route *r = &routes[i];
        if (strlen(r->path) != plen || memcmp(r->path, u, plen) != 0)
            continue;
        /* The TCP metrics listener has no credentials to check: it serves
         * the counters and nothing that changes anything. */
        if (c->metrics_only && r->fn != do_metrics)
            break;
        bool ok = r->methods == R_GET ? (m->method == HTTP_GET || m->method == HTTP_HEAD)
                                      : m->method == HTTP_POST;
        if (!ok) {
            const char *allow = r->methods == R_GET ? "GET, HEAD" : "POST";
            char extra[64];
            snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
            reply_error(c, 405, extra, "method %s not allowed for %s (allowed: %s)",
                        llhttp_method_name((llhttp_method_t)m->method), r->path, allow);
            return;
        }
        r->fn(c);
        return;
    }
    reply_error(c, 404, NULL, "no such endpoint: %.*s", (int)(plen > 200 ? 200 : plen), u);
}

static void on_head(struct admin_conn *c)
{
    evbuffer_drain(c->body, evbuffer_get_length(c->body));
    c->body_overflow = false;
    c->head_req = c->req.method == HTTP_HEAD;
    if (c->parser.upgrade) {
        reply_fatal(c, 501, "CONNECT is not supported");
        return;
    }
    uint64_t cl = http_parser_content_length(&c->parser);
    if (cl != UINT64_MAX && cl > ADMIN_MAX_BODY) {
        reply_fatal(c, 413, "request body larger than 1 MiB");
        return;
    }
    if (http_parser_has_body(&c->parser) && c->req.http_minor >= 1 &&
        http_msg_has_token(&c->req, "Expect", "100-continue"))
        evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

static void on_body(void *owner, const char *at, size_t len)
{
    struct admin_conn *c = owner;
    if (c->body_overflow)
        return;
    if (evbuffer_get_length(c->body) + len > ADMIN_MAX_BODY) {
        c->body_overflow = true;
        evbuffer_drain(c->body, evbuffer_get_length(c->body));
        return;
    }
    evbuffer_add(c->body, at, len);
}

/* http_parser_feed(), but never on an empty input: a read of 0 bytes at
 * EOF can leave one empty chain in the evbuffer, which evbuffer_peek()
 * still reports, and feeding that would make no progress forever. */
static enum http_parse_event feed(struct admin_conn *c, struct evbuffer *in)
{
    if (evbuffer_get_length(in) == 0 && !c->parser.pending_done)
        return HTTP_PARSE_NEED_MORE;
    return http_parser_feed(&c->parser, in);
}

static void conn_process(struct admin_conn *c)
{
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->closing && c->pending == NULL && c->cpending == NULL && c->wpending == NULL) {
        enum http_parse_event ev = feed(c, in);
        if (c->body_overflow) {
            reply_fatal(c, 413, "request body larger than 1 MiB");
            return;
        }
        switch (ev) {
        case HTTP_PARSE_NEED_MORE:
            if (c->peer_eof)
                conn_close(c);      /* nothing more will come */
            return;
        case HTTP_PARSE_HEAD:
            on_head(c);
            break;
        case HTTP_PARSE_DONE:
            on_request(c);
            break;
        case HTTP_PARSE_ERROR: {
            char msg[256];
            snprintf(msg, sizeof msg, "malformed request: %s", http_parser_error(&c->parser));
            log_debug("admin: %s [%s]", msg, c->who);
            reply_fatal(c, 400, msg);
            return;
        }
        case HTTP_PARSE_TOO_LARGE:
            reply_fatal(c, 431, "request header section larger than 16 KiB");
            return;
        }
    }
}

/* ---- connections -------------------------------------------------------- */

static void conn_free(struct admin_conn *c)
{
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    if (c->pending) {
        /* The ops layer still holds the pending object: it now only frees. */
        CHECK_OBJ_NOTNULL(c->pending, VERIFY_PENDING_MAGIC);
        c->pending->conn = NULL;
        c->pending = NULL;
    }
    if (c->cpending) {
        CHECK_OBJ_NOTNULL(c->cpending, CLUSTER_PENDING_MAGIC);
        c->cpending->conn = NULL;
        c->cpending = NULL;
    }
    if (c->wpending)
        warm_abandon(c, "the daemon is stopping");   /* admin_stop: conn_abort took the others */
    event_free(c->kick);
    bufferevent_free(c->bev);
    evbuffer_free(c->body);
    http_msg_free(&c->req);
    LIST_REMOVE(c, link);
    c->a->n_conns--;
    c->magic = 0;
    free(c);
}

/* Stop reading, flush what is queued, then free (deferred). */
static void conn_close(struct admin_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        event_active(c->kick, EV_WRITE, 0);
    else
        bufferevent_enable(c->bev, EV_WRITE);
}

static void conn_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    if (c->closing) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            conn_free(c);
        return;
    }
    conn_process(c);
}

static void conn_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_process(arg);
}

static void conn_write(struct bufferevent *bev, void *arg)
{
    struct admin_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        event_active(c->kick, EV_WRITE, 0);
}

/* The peer is gone: drop what is queued and free from conn_kick, never
 * inside a callback of the connection itself. */
static void conn_abort(struct admin_conn *c)
{
    if (c->pending) {
        /* A verify still running answers nobody now: its callback only
         * frees (like conn_free); it must not reply on a closing
         * connection. */
        CHECK_OBJ_NOTNULL(c->pending, VERIFY_PENDING_MAGIC);
        c->pending->conn = NULL;
        c->pending = NULL;
    }
    if (c->wpending)
        warm_abandon(c, "its client left");
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_unfreeze(out, 1);
    evbuffer_drain(out, evbuffer_get_length(out));
    evbuffer_freeze(out, 1);
    event_active(c->kick, EV_WRITE, 0);
}

/* After EOF on a Unix socket: did the peer close entirely (POLLHUP), or
 * only shut down its sending side and still wait for an answer? */
static bool peer_hung_up(struct admin_conn *c)
{
    struct pollfd pfd = { .fd = bufferevent_getfd(c->bev), .events = POLLOUT };
    if (pfd.fd < 0)
        return true;
    if (poll(&pfd, 1, 0) < 0)
        return false;
    return (pfd.revents & (POLLHUP | POLLERR)) != 0;
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct admin_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && !c->closing) {
        c->peer_eof = true;
        conn_process(c);        /* answer complete requests still buffered */
        if (c->closing)
            return;
        if (c->pending || c->cpending || c->wpending) {
            if (peer_hung_up(c)) {
                log_debug("admin: client left while its request was pending [%s]", c->who);
                conn_abort(c);
            }
            return;             /* half-closed: answer, then close */
        }
        conn_close(c);
        return;
    }
    /* An error, a timeout, or EOF while flushing: nothing more can be sent. */
    if (what & BEV_EVENT_ERROR)
        log_debug("admin: connection error: %s [%s]", strerror(errno), c->who);
    conn_abort(c);
}

static void accept_conn(struct admin *a, evutil_socket_t fd, bool metrics_only);

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    accept_conn(arg, fd, false);
}

static void on_accept_metrics(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                              int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    accept_conn(arg, fd, true);
}

static void accept_conn(struct admin *a, evutil_socket_t fd, bool metrics_only)
{
    CHECK_OBJ_NOTNULL(a, ADMIN_MAGIC);
    if (a->n_conns >= ADMIN_MAX_CONNS) {
        a->refused++;
        time_t now = time(NULL);
        if (now != a->refused_logged) {
            log_warn("admin: %u connections open, refused %u more", a->n_conns, a->refused);
            a->refused_logged = now;
            a->refused = 0;
        }
        evutil_closesocket(fd);
        return;
    }
    struct admin_conn *c = calloc(1, sizeof *c);
    AN(c);
    c->magic = ADMIN_CONN_MAGIC;
    c->a = a;
    c->metrics_only = metrics_only;
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (metrics_only)
        snprintf(c->who, sizeof c->who, "metrics listener");
    else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
        snprintf(c->who, sizeof c->who, "pid %ld, uid %ld", (long)cred.pid, (long)cred.uid);
    else
        snprintf(c->who, sizeof c->who, "unknown peer");
    evutil_make_socket_nonblocking(fd);
    c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE);
    AN(c->bev);
    c->kick = event_new(a->base, -1, 0, conn_kick, c);
    AN(c->kick);
    c->body = evbuffer_new();
    AN(c->body);
    http_msg_init(&c->req);
    http_parser_init(&c->parser, HTTP_REQUEST, &c->req, ADMIN_MAX_HEAD, on_body, c);
    LIST_INSERT_HEAD(&a->conns, c, link);
    a->n_conns++;
    bufferevent_set_timeouts(c->bev, &a->timeout, &a->timeout);
    bufferevent_setwatermark(c->bev, EV_READ, 0, ADMIN_READ_HIGH);
    bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin *a = arg;
    CHECK_OBJ_NOTNULL(a, ADMIN_MAGIC);
    evconnlistener_enable(a->listener);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct admin *a = arg;
    CHECK_OBJ_NOTNULL(a, ADMIN_MAGIC);
    int e = EVUTIL_SOCKET_ERROR();
    log_error("admin: accept on %s failed: %s; retrying in 1 s", a->path,
              evutil_socket_error_to_string(e));
    /* Out of descriptors and the like: pause instead of spinning. */
    evconnlistener_disable(l);
    struct timeval one = { 1, 0 };
    event_add(a->accept_retry, &one);
}

/* ---- the socket ---------------------------------------------------------- */

/* Make way for bind(): nothing there, or a stale socket nobody answers on
 * (removed).  -1 with a message when the path must not be taken over. */
static int clear_stale_socket(const char *path, const struct sockaddr_un *sun, char *err,
                              size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot stat admin socket %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "admin socket path %s exists and is not a socket; not replacing it",
                 path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    int rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
    int e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN || e == EINPROGRESS || e == EPROTOTYPE) {
        /* Answered, or its backlog is full, or a live non-stream socket. */
        snprintf(err, errlen, "admin socket %s is in use by another process", path);
        return -1;
    }
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "cannot check whether admin socket %s is in use: %s", path,
                 strerror(e));
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove stale admin socket %s: %s", path, strerror(errno));
        return -1;
    }
    log_info("admin: removed stale socket %s", path);
    return 0;
}

/* The socket's directory, created (0750, like systemd's RuntimeDirectory=)
 * when it is missing, so a start by hand needs no preparation and -t can
 * tell in advance whether it will work: only a missing parent fails. */
static int make_socket_dir(const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL || slash == path)
        return 0;                   /* the working directory, or "/" */
    char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (mkdir(dir, 0750) == 0) {
        log_info("admin: created directory %s for the socket", dir);
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    if (errno == ENOENT)
        snprintf(err, errlen, "cannot create %s, the admin socket's directory: its parent does "
                 "not exist", dir);
    else
        snprintf(err, errlen, "cannot create %s, the admin socket's directory: %s", dir,
                 strerror(errno));
    return -1;
}

struct admin *admin_start(struct server *srv, struct event_base *base, char *err, size_t errlen)
{
    CHECK_OBJ_NOTNULL(srv, SERVER_MAGIC);
    AN(base);
    const struct fc_config *cfg = srv->cfg;
    const char *path = cfg->admin.socket;
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "admin.socket is empty");
        return NULL;
    }
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "admin socket path %s is too long (at most %zu bytes)", path,
                 sizeof sun.sun_path - 1);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path));

    if (make_socket_dir(path, err, errlen) != 0 || clear_stale_socket(path, &sun, err, errlen) != 0)
        return NULL;

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create the admin socket: %s", strerror(errno));
        return NULL;
    }
    /* bind() creates the file with 0777 & ~umask: make it owner-only until
     * the chmod below gives it admin.mode, so there is no moment at which
     * it is more open than configured. */
    mode_t old_umask = umask(0177);
    int rc = bind(fd, (const struct sockaddr *)&sun, sizeof sun);
    int e = errno;
    umask(old_umask);
    if (rc != 0) {
        if (e == ENOENT)
            snprintf(err, errlen, "cannot bind admin socket %s: its directory does not exist", path);
        else
            snprintf(err, errlen, "cannot bind admin socket %s: %s", path, strerror(e));
        close(fd);
        return NULL;
    }
    struct stat st;
    if (chmod(path, (mode_t)cfg->admin.mode) != 0 || stat(path, &st) != 0) {
        snprintf(err, errlen, "cannot set mode %04o on admin socket %s: %s", cfg->admin.mode, path,
                 strerror(errno));
        close(fd);
        unlink(path);
        return NULL;
    }

    struct admin *a = calloc(1, sizeof *a);
    AN(a);
    a->magic = ADMIN_MAGIC;
    a->srv = srv;
    a->base = base;
    a->path = strdup(path);
    AN(a->path);
    a->dev = st.st_dev;
    a->ino = st.st_ino;
    LIST_INIT(&a->conns);
    uint64_t ms = cfg->limits.client_timeout_ms ? cfg->limits.client_timeout_ms : ADMIN_TIMEOUT_MS_DEFAULT;
    a->timeout.tv_sec = (time_t)(ms / 1000);
    a->timeout.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    a->accept_retry = evtimer_new(base, accept_retry, a);
    AN(a->accept_retry);
    a->listener = evconnlistener_new(base, on_accept, a, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                     ADMIN_BACKLOG, fd);
    if (a->listener == NULL) {
        snprintf(err, errlen, "cannot listen on admin socket %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        event_free(a->accept_retry);
        free(a->path);
        free(a);
        return NULL;
    }
    evconnlistener_set_error_cb(a->listener, on_accept_error);
    log_info("admin: listening on %s (mode %04o)", path, cfg->admin.mode);
    if (cfg->metrics.listen) {
        a->metrics_listener = evconnlistener_new_bind(
            base, on_accept_metrics, a,
            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, ADMIN_BACKLOG,
            (const struct sockaddr *)&cfg->metrics.addr, (int)cfg->metrics.addrlen);
        if (a->metrics_listener == NULL) {
            snprintf(err, errlen, "metrics.listen %s: %s", cfg->metrics.listen, strerror(errno));
            admin_stop(a);
            return NULL;
        }
        log_info("metrics: GET /metrics on http://%s", cfg->metrics.listen);
    }
    return a;
}

void admin_set_cluster(struct admin *a, struct cluster *cl)
{
    CHECK_OBJ_NOTNULL(a, ADMIN_MAGIC);
    a->cluster = cl;
}

void admin_stop(struct admin *a)
{
    if (a == NULL)
        return;
    CHECK_OBJ_NOTNULL(a, ADMIN_MAGIC);
    while (!LIST_EMPTY(&a->conns))
        conn_free(LIST_FIRST(&a->conns));
    evconnlistener_free(a->listener);
    if (a->metrics_listener)
        evconnlistener_free(a->metrics_listener);
    event_free(a->accept_retry);
    /* Only our own socket: a newer instance may already have replaced it. */
    struct stat st;
    if (lstat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
        unlink(a->path);
    free(a->path);
    a->magic = 0;
    free(a);
}
