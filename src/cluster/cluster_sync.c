/*
 * cluster_sync.c — joining the cluster at the start of each session.
 *
 * One round trip: the scripts are loaded and the join script runs, all
 * pipelined on the command link.  The join raises the cluster's numbers to
 * this node's (its state file is the floor: a Redis that lost its data
 * never takes a generation back) and returns the cluster's, which this node
 * then raises its own to.  It also says where the events stream ends, so
 * the feed can replay what this node missed, and whether that is possible:
 *
 *   - a new `run` token: Redis lost its data (restart without persistence,
 *     another instance): events may be lost;
 *   - max-deleted-entry-id beyond our last event: the stream was trimmed
 *     past what we had read (away longer than the stream holds);
 *   - the stream ends before our last event: Redis went back to an older
 *     copy of its data.
 *
 * In those cases the generations are still right (they are in the hash and
 * the floors), but URL, prefix and tag purges may be lost, so everything
 * this node holds is marked for revalidation (sync_distrust_store).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/generation.h"
#include "freshcache/cache/purge.h"
#include "freshcache/server/runtime.h"
#include "cluster_int.h"

void sync_distrust_store(struct cluster *cl, const char *why)
{
    unsigned n = purge_apply(cl->srv->store, PURGE_ALL, NULL, true);
    if (n > 0)
        log_warn("cluster: %s: purges may have been missed, so the %u stored response%s will "
                 "be revalidated with the origin before being served", why, n, n == 1 ? "" : "s");
    else
        log_info("cluster: %s (nothing stored here, nothing to revalidate)", why);
}

static void on_script_loaded(struct redis_link *l, struct redisReply *r, void *arg)
{
    (void)l;
    struct cluster *cl = arg;
    CHECK_OBJ_NOTNULL(cl, CLUSTER_MAGIC);
    if (r == NULL || cl->session != SESSION_SYNCING)
        return;
    const char *sha;
    if (!reply_string(r, &sha) || r->type == REDIS_REPLY_ERROR) {
        char why[300];
        snprintf(why, sizeof why, "SCRIPT LOAD failed: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected answer");
        cluster_session_fail(cl, why);
    }
}

/* Raise the local generations to the cluster's: {field, value, ...}. */
static void raise_local(struct cluster *cl, const struct redisReply *gens)
{
    for (size_t i = 0; i + 1 < gens->elements; i += 2) {
        const char *field;
        uint64_t v;
        if (!reply_string(gens->element[i], &field) || !reply_u64(gens->element[i + 1], &v))
            continue;
        const char *policy = NULL;
        if (strncmp(field, "policy:", 7) == 0)
            policy = field + 7;
        else if (strcmp(field, "global") != 0)
            continue;
        bool raised = false;
        char err[256] = "";
        if (generation_raise(cl->srv->gens, policy, v, &raised, err, sizeof err) != 0)
            log_error("cluster: generation %" PRIu64 "%s%s applied but not saved: %s", v,
                      policy ? " of policy " : "", policy ? policy : "", err);
        if (raised)
            log_info("cluster: caught up to the cluster's generation %" PRIu64 "%s%s", v,
                     policy ? " of policy " : "", policy ? policy : "");
    }
}

static void on_sync(struct redis_link *l, struct redisReply *r, void *arg)
{
    (void)l;
    struct cluster *cl = arg;
    CHECK_OBJ_NOTNULL(cl, CLUSTER_MAGIC);
    if (r == NULL || cl->session != SESSION_SYNCING)
        return;                     /* the session is ending anyway */
    char why[400];
    const char *tag, *run, *elast_s, *edel_s, *alast_s;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof why, "joining failed: %s", r->str);
        cluster_session_fail(cl, why);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !reply_string(r->element[0], &tag)) {
        cluster_session_fail(cl, "joining failed: unexpected answer");
        return;
    }
    if (strcmp(tag, "dup") == 0) {
        const char *ago = "?";
        reply_string(r->element[1], &ago);
        snprintf(why, sizeof why, "another freshcached uses the node name \"%s\" in cluster %s "
                 "(heard from %s ms ago); give each node its own cluster.node",
                 cl->cfg->node, cl->cfg->name, ago);
        cluster_session_fail(cl, why);
        return;
    }
    struct stream_id elast, edel, alast;
    if (strcmp(tag, "ok") != 0 || r->elements != 6 || !reply_string(r->element[1], &run) ||
        r->element[2]->type != REDIS_REPLY_ARRAY || !reply_string(r->element[3], &elast_s) ||
        !reply_string(r->element[4], &edel_s) || !reply_string(r->element[5], &alast_s) ||
        stream_id_parse(elast_s, &elast) != 0 || stream_id_parse(edel_s, &edel) != 0 ||
        stream_id_parse(alast_s, &alast) != 0) {
        cluster_session_fail(cl, "joining failed: unexpected answer");
        return;
    }
    raise_local(cl, r->element[2]);

    struct store_stats st;
    store_get_stats(cl->srv->store, &st);
    if (!cl->ever_joined) {
        /* Whatever was stored before was fetched since start, but purges
         * made meanwhile are not known: check those objects. */
        if (st.objects > 0)
            sync_distrust_store(cl, "objects were stored before this node first reached the "
                                    "cluster");
        cl->ev_last = elast;
        cl->ack_last = alast;
    } else if (strcmp(run, cl->run) != 0) {
        sync_distrust_store(cl, "Redis lost its data since this node last saw it (a restart "
                                "without persistence, or another Redis)");
        cl->ev_last = elast;
        cl->ack_last = alast;
    } else if (stream_id_cmp(&edel, &cl->ev_last) > 0) {
        sync_distrust_store(cl, "purge events this node had not read were trimmed from the "
                                "stream while it was away");
        cl->ev_last = edel;         /* replay what is left */
    } else if (stream_id_cmp(&elast, &cl->ev_last) < 0) {
        sync_distrust_store(cl, "Redis went back to an older copy of its data");
        cl->ev_last = elast;
        cl->ack_last = alast;
    }
    snprintf(cl->run, sizeof cl->run, "%s", run);
    cl->sync_target = elast;
    cl->ever_joined = true;
    cluster_joined(cl);
}

void sync_begin(struct cluster *cl)
{
    struct redis_cmd c;
    for (int s = 0; s < N_SCRIPTS; s++) {
        redis_cmd_init(&c);
        redis_cmd_arg(&c, "SCRIPT");
        redis_cmd_arg(&c, "LOAD");
        redis_cmd_arg(&c, cluster_script_source((enum cluster_script)s));
        if (redis_link_command(cl->cmd, &c, on_script_loaded, cl) != 0)
            return;                 /* the link just went: its report ends the session */
    }
    struct gen_state st;
    generation_saved_state(cl->srv->gens, &st);
    char info[GEN_MAX_POLICIES * (GEN_POLICY_NAME_MAX + 24) + 32];
    cluster_info_string(cl, info, sizeof info);
    char run[33];
    cluster_random_hex(run, 16);
    cluster_cmd_script(cl, &c, SCRIPT_SYNC, 7);
    redis_cmd_arg(&c, cl->key_gen);
    redis_cmd_arg(&c, cl->key_events);
    redis_cmd_arg(&c, cl->key_run);
    redis_cmd_arg(&c, cl->key_nodes);
    redis_cmd_arg(&c, cl->key_inst);
    redis_cmd_arg(&c, cl->key_info);
    redis_cmd_arg(&c, cl->key_acks_self);
    redis_cmd_arg(&c, cl->cfg->node);
    redis_cmd_arg(&c, cl->instance);
    redis_cmd_arg(&c, run);
    redis_cmd_argf(&c, "%d", CLUSTER_LIVE_MS);
    redis_cmd_arg(&c, info);
    /* The floors: everything this node has ever seen. */
    redis_cmd_arg(&c, "global");
    redis_cmd_argf(&c, "%" PRIu64, st.global);
    for (size_t i = 0; i < st.n_policies; i++) {
        redis_cmd_argf(&c, "policy:%s", st.policies[i].name);
        redis_cmd_argf(&c, "%" PRIu64, st.policies[i].gen);
    }
    if (redis_link_command(cl->cmd, &c, on_sync, cl) != 0)
        cluster_session_fail(cl, "joining failed: the command could not be sent");
}
