/*
 * cluster_feed.c — the events stream, read on its own connection with a
 * blocking XREAD that also covers this node's acks stream.
 *
 * Every purge event is applied here, in the stream's order: another
 * node's is then acknowledged on the origin's acks stream; this node's own
 * counts as its acknowledgement of the purge it is waiting for
 * (cluster_purge.c).  Reading resumes after the last event applied, so a
 * node that was away replays what it missed (cluster_sync.c decides when
 * that is not enough).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/cache/generation.h"
#include "freshcache/cache/purge.h"
#include "freshcache/server/runtime.h"
#include "cluster_int.h"

static void on_feed(struct redis_link *l, struct redisReply *r, void *arg);

void feed_read(struct cluster *cl)
{
    if (cl->feed_inflight || cl->session != SESSION_READY)
        return;
    char ev[48], ack[48];
    stream_id_format(&cl->ev_last, ev);
    stream_id_format(&cl->ack_last, ack);
    struct redis_cmd c;
    redis_cmd_init(&c);
    redis_cmd_arg(&c, "XREAD");
    redis_cmd_arg(&c, "COUNT");
    redis_cmd_argf(&c, "%d", CLUSTER_FEED_COUNT);
    redis_cmd_arg(&c, "BLOCK");
    redis_cmd_argf(&c, "%d", CLUSTER_FEED_BLOCK_MS);
    redis_cmd_arg(&c, "STREAMS");
    redis_cmd_arg(&c, cl->key_events);
    redis_cmd_arg(&c, cl->key_acks_self);
    redis_cmd_arg(&c, ev);
    redis_cmd_arg(&c, ack);
    if (redis_link_command(cl->feed, &c, on_feed, cl) == 0)
        cl->feed_inflight = true;
}

/* The field `name` of an entry's [field, value, ...] array, or NULL. */
static const char *field(const struct redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const char *k, *v;
        if (reply_string(fields->element[i], &k) && strcmp(k, name) == 0 &&
            reply_string(fields->element[i + 1], &v))
            return v;
    }
    return NULL;
}

static void on_ack_sent(struct redis_link *l, struct redisReply *r, void *arg)
{
    (void)l;
    (void)arg;
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        log_warn("cluster: an acknowledgement was refused by Redis: %s", r->str);
}

static void send_ack(struct cluster *cl, const char *origin, const char *id, uint64_t purged)
{
    struct redis_cmd c;
    cluster_cmd_script(cl, &c, SCRIPT_ACK, 1);
    redis_cmd_argf(&c, "freshcache:{%s}:acks:%s", cl->cfg->name, origin);
    redis_cmd_arg(&c, id);
    redis_cmd_arg(&c, cl->cfg->node);
    redis_cmd_argf(&c, "%" PRIu64, purged);
    redis_cmd_argf(&c, "%d", CLUSTER_ACKS_MAXLEN);
    redis_cmd_argf(&c, "%d", CLUSTER_ACKS_TTL_MS);
    /* Not sent: the session is ending; the origin counts us as missing. */
    redis_link_command(cl->cmd, &c, on_ack_sent, cl);
}

static void count_lag(struct cluster *cl, uint64_t sent_ms)
{
    static const uint64_t bounds[CLUSTER_LAG_N_BUCKETS] = CLUSTER_LAG_BUCKETS_MS;
    uint64_t now = cluster_realtime_ms();
    uint64_t lag = now > sent_ms ? now - sent_ms : 0;   /* clocks a little apart */
    size_t b = 0;
    while (b < CLUSTER_LAG_N_BUCKETS && lag > bounds[b])
        b++;
    cl->stats.lag_bucket[b]++;
    cl->stats.lag_sum_ms += lag;
    cl->stats.lag_count++;
}

static void describe(char kind, const char *arg, bool soft, uint64_t gen, uint64_t purged,
                     char *out, size_t outlen)
{
    char safe[256];
    switch (kind) {
    case 'g':
        snprintf(out, outlen, "generation %" PRIu64, gen);
        break;
    case 'p':
        snprintf(out, outlen, "generation %" PRIu64 " of policy \"%s\"", gen,
                 log_escape(arg, safe, sizeof safe));
        break;
    default:
        snprintf(out, outlen, "%s purge of %s \"%s\" (%" PRIu64 " object%s)", soft ? "soft" : "hard",
                 kind == 'u' ? "url" : kind == 'x' ? "prefix" : "tag",
                 log_escape(arg, safe, sizeof safe), purged, purged == 1 ? "" : "s");
        break;
    }
}

/* One event of a batch, read; its strings point into the reply. */
struct event {
    struct stream_id id;
    const char *id_s, *origin, *arg;
    char kind;                  /* g p u x t */
    bool soft;
    uint64_t gen, sent;
    size_t item;                /* u x t: its place in the batch's purge items */
};

/* false (logged) when the entry is skipped: unreadable, or from a newer
 * version (not applied, so not acknowledged either: its origin names us). */
static bool read_event(struct cluster *cl, const struct redisReply *entry, struct event *ev)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        !reply_string(entry->element[0], &ev->id_s) || stream_id_parse(ev->id_s, &ev->id) != 0 ||
        entry->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    cl->ev_last = ev->id;
    const struct redisReply *f = entry->element[1];
    const char *kind = field(f, "k"), *soft = field(f, "s"), *gen = field(f, "g");
    const char *sent = field(f, "t");
    ev->origin = field(f, "o");
    ev->arg = field(f, "a");
    if (ev->origin == NULL || kind == NULL || ev->arg == NULL || strlen(kind) != 1) {
        log_warn("cluster: unreadable event %s in the stream, skipped", ev->id_s);
        return false;
    }
    if (strchr("gpuxt", kind[0]) == NULL) {
        log_warn("cluster: event %s from %s has an unknown kind \"%c\"; not applied", ev->id_s,
                 ev->origin, kind[0]);
        return false;
    }
    ev->kind = kind[0];
    ev->soft = soft != NULL && strcmp(soft, "1") == 0;
    ev->gen = gen ? strtoull(gen, NULL, 10) : 0;
    ev->sent = sent ? strtoull(sent, NULL, 10) : 0;
    return true;
}

/* A generation from the stream: raised here (only ever up). */
static void apply_generation(struct cluster *cl, const struct event *ev)
{
    bool raised = false;
    char err[256] = "";
    const char *policy = ev->kind == 'p' ? ev->arg : NULL;
    if (generation_raise(cl->srv->gens, policy, ev->gen, &raised, err, sizeof err) != 0)
        log_error("cluster: generation %" PRIu64 "%s%s applied but not saved: %s", ev->gen,
                  policy ? " of policy " : "", policy ? policy : "", err);
    if (raised)
        cl->last_heartbeat_ms = 0;      /* the node table shows it at the next tick */
}

/* Applied: acknowledge (our own: to the purge waiting here), count, log. */
static void applied(struct cluster *cl, const struct event *ev, uint64_t purged)
{
    char what[400];
    describe(ev->kind, ev->arg, ev->soft, ev->gen, purged, what, sizeof what);
    if (strcmp(ev->origin, cl->cfg->node) == 0) {
        log_debug("cluster: %s (sent from here) applied", what);
        purge_on_ack(cl, &ev->id, cl->cfg->node, purged);
        return;
    }
    cl->stats.events_applied++;
    count_lag(cl, ev->sent);
    send_ack(cl, ev->origin, ev->id_s, purged);
    log_info("cluster: %s from %s applied", what, ev->origin);
}

/* A batch of events, in the stream's order.  Generations are raised one by
 * one (O(1) each); the URL, prefix and tag purges of the batch share one
 * walk of the store (two with soft ones), not one each: a node replaying
 * hundreds of purges, or a CMS purging many tags at once, costs a walk. */
static void apply_events(struct cluster *cl, const struct redisReply *entries)
{
    size_t n = entries->elements, ne = 0, ni = 0;
    struct event *evs = calloc(n ? n : 1, sizeof *evs);
    struct purge_item *items = calloc(n ? n : 1, sizeof *items);
    AN(evs);
    AN(items);
    static const enum purge_kind kinds[] = { ['u'] = PURGE_URL, ['x'] = PURGE_PREFIX,
                                             ['t'] = PURGE_TAG };
    for (size_t i = 0; i < n; i++) {
        struct event *ev = &evs[ne];
        if (!read_event(cl, entries->element[i], ev))
            continue;
        if (ev->kind == 'g' || ev->kind == 'p') {
            apply_generation(cl, ev);
        } else {
            items[ni] = (struct purge_item){ kinds[(unsigned char)ev->kind], ev->arg, ev->soft, 0 };
            ev->item = ni++;
        }
        ne++;
    }
    if (ni > 0)
        purge_apply_batch(cl->srv->store, items, ni);
    for (size_t i = 0; i < ne; i++) {
        bool gen = evs[i].kind == 'g' || evs[i].kind == 'p';
        applied(cl, &evs[i], gen ? 0 : items[evs[i].item].count);
    }
    free(items);
    free(evs);
}

static void read_ack(struct cluster *cl, const struct redisReply *entry)
{
    const char *id_s, *event_s, *node, *purged_s;
    struct stream_id id, event;
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        !reply_string(entry->element[0], &id_s) || stream_id_parse(id_s, &id) != 0 ||
        entry->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    cl->ack_last = id;
    const struct redisReply *f = entry->element[1];
    event_s = field(f, "e");
    node = field(f, "n");
    purged_s = field(f, "c");
    if (event_s == NULL || node == NULL || stream_id_parse(event_s, &event) != 0)
        return;
    purge_on_ack(cl, &event, node, purged_s ? strtoull(purged_s, NULL, 10) : 0);
}

static void on_feed(struct redis_link *l, struct redisReply *r, void *arg)
{
    (void)l;
    struct cluster *cl = arg;
    CHECK_OBJ_NOTNULL(cl, CLUSTER_MAGIC);
    cl->feed_inflight = false;
    if (r == NULL || cl->session != SESSION_READY)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char why[300];
        snprintf(why, sizeof why, "reading the events stream failed: %s", r->str);
        cluster_session_fail(cl, why);
        return;
    }
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t s = 0; s < r->elements; s++) {
            const struct redisReply *stream = r->element[s];
            const char *name;
            if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 ||
                !reply_string(stream->element[0], &name) ||
                stream->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            const struct redisReply *entries = stream->element[1];
            if (strcmp(name, cl->key_events) == 0) {
                apply_events(cl, entries);
                continue;
            }
            for (size_t i = 0; i < entries->elements; i++)
                read_ack(cl, entries->element[i]);
        }
    }
    /* A timeout (nil) means nothing is left to replay either. */
    if (r->type == REDIS_REPLY_NIL || stream_id_cmp(&cl->ev_last, &cl->sync_target) >= 0)
        cluster_caught_up(cl);
    feed_read(cl);
}
