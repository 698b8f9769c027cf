/*
 * cluster_purge.c — a purge asked of this node, for the whole cluster.
 *
 *   cluster_purge ──EVALSHA purge──▶ reply: event id, new generation,
 *        │                           live nodes ──▶ WAITING
 *        │ (not in touch: UNREACHABLE, nothing sent)     │
 *        ▼                                               ▼
 *   answered once: every live node acked (this one too), or ack_timeout
 *   from the start
 *
 * This node applies its own purge like every other node, when the event
 * comes in on the feed, and that counts as its acknowledgement: so events
 * are applied in the stream's order, once, whichever of the two
 * connections is read first.  The script is the only step that can make a
 * purge happen anywhere, so a purge refused before it (no session) has
 * purged nothing.  A script whose answer does not come in time may or may
 * not have run: the answer says so.
 *
 * An op outlives its answer while its script's reply is still due (hiredis
 * holds a pointer to it), and is freed when both are done.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/cache/generation.h"
#include "freshcache/cache/purge.h"
#include "freshcache/server/runtime.h"
#include "cluster_int.h"

struct cluster_op {
#define CLUSTER_OP_MAGIC 0xc1095e00u
    unsigned magic;
    TAILQ_ENTRY(cluster_op) link;   /* in cl->ops until answered */
    struct cluster *cl;
    cluster_done_fn done;
    void *arg;
    enum cluster_purge_what what;
    char kind;                      /* the event's: g p u x t */
    char *arg_copy;                 /* policy (p), url/prefix/tag (u x t), or NULL */
    bool soft;
    bool script_pending;            /* hiredis still holds us */
    bool answered;
    struct stream_id id;
    uint64_t generation, previous, purged;
    char **live;                    /* node names, this one included */
    bool *acked;
    size_t n_live;
    struct event *timer;            /* ack_timeout from the start */
};

static void op_free(struct cluster_op *op)
{
    CHECK_OBJ_NOTNULL(op, CLUSTER_OP_MAGIC);
    FC_ASSERT(op->answered && !op->script_pending);
    for (size_t i = 0; i < op->n_live; i++)
        free(op->live[i]);
    free(op->live);
    free(op->acked);
    free(op->arg_copy);
    event_free(op->timer);
    op->magic = 0;
    free(op);
}

static void finish(struct cluster_op *op, enum cluster_status status, const char *error)
{
    if (op->answered)
        return;
    op->answered = true;
    event_del(op->timer);
    TAILQ_REMOVE(&op->cl->ops, op, link);
    struct cluster_result r;
    memset(&r, 0, sizeof r);
    r.status = status;
    snprintf(r.error, sizeof r.error, "%s", error ? error : "");
    r.generation = op->generation;
    r.previous = op->previous;
    r.purged = op->purged;
    const char **missing = calloc(op->n_live ? op->n_live : 1, sizeof *missing);
    AN(missing);
    if (status == CLUSTER_OK) {
        r.live = (unsigned)op->n_live;
        for (size_t i = 0; i < op->n_live; i++) {
            if (op->acked[i])
                r.acked++;
            else
                missing[r.n_missing++] = op->live[i];
        }
    }
    r.missing = missing;
    op->done(op->arg, &r);
    free(missing);
    if (!op->script_pending)
        op_free(op);
}

static void add_live(struct cluster_op *op, const char *name, bool acked)
{
    op->live = realloc(op->live, (op->n_live + 1) * sizeof *op->live);
    op->acked = realloc(op->acked, (op->n_live + 1) * sizeof *op->acked);
    AN(op->live);
    AN(op->acked);
    op->live[op->n_live] = strdup(name);
    AN(op->live[op->n_live]);
    op->acked[op->n_live++] = acked;
}

static bool all_acked(const struct cluster_op *op)
{
    for (size_t i = 0; i < op->n_live; i++)
        if (!op->acked[i])
            return false;
    return true;
}

/* `node` applied op's event.  true if that was news. */
static bool op_ack(struct cluster_op *op, const char *node, uint64_t purged)
{
    for (size_t i = 0; i < op->n_live; i++) {
        if (strcmp(op->live[i], node) == 0) {
            if (op->acked[i])
                return false;
            op->acked[i] = true;
            op->purged += purged;
            return true;
        }
    }
    /* It was not live when the purge was sent (it just joined) but applied
     * it: it counts. */
    add_live(op, node, true);
    op->purged += purged;
    return true;
}

void purge_on_ack(struct cluster *cl, const struct stream_id *event, const char *node,
                  uint64_t purged)
{
    struct cluster_op *op;
    TAILQ_FOREACH(op, &cl->ops, link) {
        if (op->script_pending || stream_id_cmp(&op->id, event) != 0)
            continue;
        if (op_ack(op, node, purged) && all_acked(op))
            finish(op, CLUSTER_OK, NULL);
        return;
    }
    /* Maybe an ack of a purge whose own answer has not been read yet. */
    unsigned i = cl->early_next++ % CLUSTER_EARLY_ACKS;
    cl->early_acks[i].event = *event;
    snprintf(cl->early_acks[i].node, sizeof cl->early_acks[i].node, "%s", node);
    cl->early_acks[i].purged = purged;
}

void purge_fail_all(struct cluster *cl, const char *why)
{
    struct cluster_op *op;
    while ((op = TAILQ_FIRST(&cl->ops)) != NULL)
        finish(op, CLUSTER_FAILED, why);
}

static void on_purge_reply(struct redis_link *l, struct redisReply *r, void *arg)
{
    (void)l;
    struct cluster_op *op = arg;
    CHECK_OBJ_NOTNULL(op, CLUSTER_OP_MAGIC);
    struct cluster *cl = op->cl;
    op->script_pending = false;
    if (op->answered) {
        /* Answered as unreachable meanwhile: if the script ran after all,
         * the feed applies the event here as everywhere. */
        op_free(op);
        return;
    }
    char msg[512];
    if (r == NULL) {
        snprintf(msg, sizeof msg, "lost Redis at %s before it answered (%s); the purge may "
                 "or may not have been recorded: check with `proxyctl nodes` and purge again",
                 cl->cfg->redis_display, cl->last_error[0] ? cl->last_error : "disconnected");
        finish(op, CLUSTER_UNREACHABLE, msg);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(msg, sizeof msg, "Redis at %s refused the purge: %s; nothing was purged",
                 cl->cfg->redis_display, r->str);
        finish(op, CLUSTER_FAILED, msg);
        return;
    }
    const char *id_s, *gen_s, *prev_s;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 || !reply_string(r->element[0], &id_s) ||
        stream_id_parse(id_s, &op->id) != 0 || !reply_string(r->element[1], &gen_s) ||
        !reply_string(r->element[2], &prev_s) || r->element[3]->type != REDIS_REPLY_ARRAY) {
        snprintf(msg, sizeof msg, "unexpected answer from Redis at %s to the purge",
                 cl->cfg->redis_display);
        finish(op, CLUSTER_FAILED, msg);
        return;
    }
    op->generation = strtoull(gen_s, NULL, 10);
    op->previous = strtoull(prev_s, NULL, 10);

    const struct redisReply *live = r->element[3];
    bool self_listed = false;
    for (size_t i = 0; i < live->elements; i++) {
        const char *name;
        if (!reply_string(live->element[i], &name))
            continue;
        self_listed = self_listed || strcmp(name, cl->cfg->node) == 0;
        add_live(op, name, false);
    }
    if (!self_listed)
        add_live(op, cl->cfg->node, false);
    for (unsigned i = 0; i < CLUSTER_EARLY_ACKS; i++)
        if (stream_id_cmp(&cl->early_acks[i].event, &op->id) == 0)
            op_ack(op, cl->early_acks[i].node, cl->early_acks[i].purged);
    if (all_acked(op))
        finish(op, CLUSTER_OK, NULL);
}

static void on_op_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cluster_op *op = arg;
    CHECK_OBJ_NOTNULL(op, CLUSTER_OP_MAGIC);
    if (!op->script_pending) {
        finish(op, CLUSTER_OK, NULL);   /* with the missing ones named */
        return;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "Redis at %s did not answer within %" PRIu64 " ms; the purge may "
             "or may not have been recorded: check with `proxyctl nodes` and purge again",
             op->cl->cfg->redis_display, op->cl->cfg->ack_timeout_ms);
    finish(op, CLUSTER_UNREACHABLE, msg);
}

static void unreachable(struct cluster *cl, cluster_done_fn done, void *arg)
{
    struct cluster_result r;
    memset(&r, 0, sizeof r);
    r.status = CLUSTER_UNREACHABLE;
    snprintf(r.error, sizeof r.error, "cannot reach Redis at %s (%s): nothing was purged",
             cl->cfg->redis_display, cl->last_error[0] ? cl->last_error : "not connected yet");
    done(arg, &r);
}

/* The number this node has seen for what is bumped: Redis never hands out
 * less than this + 1. */
static uint64_t floor_of(struct cluster *cl, const char *policy)
{
    struct gen_state st;
    generation_saved_state(cl->srv->gens, &st);
    if (policy == NULL)
        return st.global;
    for (size_t i = 0; i < st.n_policies; i++)
        if (strcmp(st.policies[i].name, policy) == 0)
            return st.policies[i].gen;
    return 1;
}

void cluster_purge(struct cluster *cl, const struct cluster_purge *p, cluster_done_fn done,
                   void *arg)
{
    CHECK_OBJ_NOTNULL(cl, CLUSTER_MAGIC);
    if (cl->session != SESSION_READY) {
        unreachable(cl, done, arg);
        return;
    }
    struct cluster_op *op = calloc(1, sizeof *op);
    AN(op);
    op->magic = CLUSTER_OP_MAGIC;
    op->cl = cl;
    op->done = done;
    op->arg = arg;
    op->what = p->what;
    op->soft = p->soft;
    const char *a = "";
    uint64_t floor = 0;
    if (p->what == CLUSTER_GENERATION) {
        op->kind = p->policy ? 'p' : 'g';
        a = p->policy ? p->policy : "";
        floor = floor_of(cl, p->policy);
    } else {
        static const char kinds[] = { [PURGE_URL] = 'u', [PURGE_PREFIX] = 'x', [PURGE_TAG] = 't' };
        FC_ASSERT(p->kind == PURGE_URL || p->kind == PURGE_PREFIX || p->kind == PURGE_TAG);
        op->kind = kinds[p->kind];
        a = p->arg;
    }
    op->arg_copy = strdup(a);
    AN(op->arg_copy);
    op->timer = evtimer_new(cl->base, on_op_timeout, op);
    AN(op->timer);

    struct redis_cmd c;
    cluster_cmd_script(cl, &c, SCRIPT_PURGE, 3);
    redis_cmd_arg(&c, cl->key_gen);
    redis_cmd_arg(&c, cl->key_events);
    redis_cmd_arg(&c, cl->key_nodes);
    redis_cmd_arg(&c, cl->cfg->node);
    redis_cmd_argf(&c, "%c", op->kind);
    redis_cmd_arg(&c, op->arg_copy);
    redis_cmd_arg(&c, op->soft ? "1" : "0");
    redis_cmd_argf(&c, "%" PRIu64, floor);
    redis_cmd_argf(&c, "%d", CLUSTER_EVENTS_MAXLEN);
    redis_cmd_argf(&c, "%d", CLUSTER_LIVE_MS);
    if (redis_link_command(cl->cmd, &c, on_purge_reply, op) != 0) {
        op->answered = true;
        op_free(op);
        unreachable(cl, done, arg);
        return;
    }
    op->script_pending = true;
    TAILQ_INSERT_TAIL(&cl->ops, op, link);
    uint64_t ms = cl->cfg->ack_timeout_ms;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    evtimer_add(op->timer, &tv);
}
