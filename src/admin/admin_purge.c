/*
 * admin_purge.c — POST /purge/generation, GET /generation and POST /purge:
 * the invalidations a deploy runs.  With a cluster, a purge goes through
 * Redis to every node and is answered once the nodes acknowledged it (a
 * cluster_pending that outlives its connection if the client leaves).
 * Every effect goes through admin_ops.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "freshcache/admin/admin_body.h"
#include "freshcache/admin/admin_ops.h"
#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/cluster/cluster.h"
#include "freshcache/server/server.h"
#include "admin_int.h"

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
void do_purge_generation(struct admin_conn *c)
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
void do_generation(struct admin_conn *c)
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
void do_purge(struct admin_conn *c)
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
