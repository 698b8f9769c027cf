/*
 * cluster.c — the cluster's lifecycle: the session with Redis, the
 * max_disconnect rule, heartbeats and the node table.  See
 * include/freshcache/cluster/cluster.h and cluster_int.h.
 *
 *   DOWN ──back-off──▶ CONNECTING ──both links up──▶ SYNCING ──joined──▶ READY
 *    ▲                      │                           │                  │
 *    └──────────────────────┴──── a link fails ─────────┴──────────────────┘
 *
 * Serving never waits for any of this.  What changes with the session is
 * whether this node revalidates what it serves ("catching up",
 * generation.h): at start until the first attempt to join has an outcome,
 * and, with on_disconnect: revalidate, from `max_disconnect` after it was
 * last in touch until it has caught up again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/cache/generation.h"
#include "freshcache/server/runtime.h"
#include "cluster_int.h"

/* ---- small helpers ------------------------------------------------------- */

int stream_id_parse(const char *s, struct stream_id *out)
{
    char *end;
    errno = 0;
    unsigned long long ms = strtoull(s, &end, 10);
    if (errno || end == s || *end != '-')
        return -1;
    const char *q = end + 1;
    unsigned long long seq = strtoull(q, &end, 10);
    if (errno || end == q || *end != '\0')
        return -1;
    out->ms = ms;
    out->seq = seq;
    return 0;
}

int stream_id_cmp(const struct stream_id *a, const struct stream_id *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

void stream_id_format(const struct stream_id *id, char out[48])
{
    snprintf(out, 48, "%" PRIu64 "-%" PRIu64, id->ms, id->seq);
}

bool reply_string(const struct redisReply *r, const char **s)
{
    if (r == NULL || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS))
        return false;
    *s = r->str;
    return true;
}

bool reply_u64(const struct redisReply *r, uint64_t *out)
{
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
        *out = (uint64_t)r->integer;
        return true;
    }
    const char *s;
    if (!reply_string(r, &s) || s[0] < '0' || s[0] > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return false;
    *out = v;
    return true;
}

uint64_t cluster_realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void cluster_random_hex(char *out, size_t nbytes)
{
    unsigned char buf[32];
    FC_ASSERT(nbytes <= sizeof buf);
    if (getrandom(buf, nbytes, 0) != (ssize_t)nbytes) {
        /* No entropy source: unique enough for telling processes apart. */
        uint64_t x = cluster_realtime_ms() ^ ((uint64_t)getpid() << 32) ^ redis_link_now_ms();
        for (size_t i = 0; i < nbytes; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
            buf[i] = (unsigned char)(x >> 56);
    }
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", buf[i]);
}

void cluster_note_error(struct cluster *cl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cl->last_error, sizeof cl->last_error, fmt, ap);
    va_end(ap);
}

void cluster_cmd_script(struct cluster *cl, struct redis_cmd *c, enum cluster_script s,
                        int nkeys)
{
    redis_cmd_init(c);
    redis_cmd_arg(c, "EVALSHA");
    redis_cmd_arg(c, cl->sha[s]);
    redis_cmd_argf(c, "%d", nkeys);
}

void cluster_info_string(struct cluster *cl, char *out, size_t outlen)
{
    struct gen_state st;
    generation_saved_state(cl->srv->gens, &st);
    size_t o = (size_t)snprintf(out, outlen, "%" PRIu64, st.global);
    for (size_t i = 0; i < st.n_policies && o < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, " %s=%" PRIu64, st.policies[i].name,
                              st.policies[i].gen);
}

/* ---- catching up ----------------------------------------------------------- */

/* Revalidate what is served while this node may have missed purges: from
 * start until the first attempt to join has an outcome (joined, or
 * failed: then the rule below), and, with on_disconnect: revalidate, once
 * it has been out of touch for max_disconnect, until it has caught up. */
static void update_revalidating(struct cluster *cl, uint64_t now)
{
    const struct fc_cluster *cfg = cl->cfg;
    bool want;
    if (cl->caught_up)
        want = false;
    else if (!cl->first_attempt_done)
        want = true;
    else
        want = cfg->on_disconnect == ON_DISCONNECT_REVALIDATE &&
               now - cl->in_touch_ms >= cfg->max_disconnect_ms;
    if (want == cl->revalidating)
        return;
    cl->revalidating = want;
    generation_set_catching_up(cl->srv->gens, want);
    if (want && cl->first_attempt_done) {
        cl->cut_off = true;
        log_warn("cluster: out of touch with the cluster for more than %" PRIu64 " ms: every "
                 "stored response is revalidated with the origin until this node has caught up "
                 "(cluster.on_disconnect: revalidate)", cfg->max_disconnect_ms);
    } else if (!want && cl->cut_off) {
        cl->cut_off = false;
        log_info("cluster: caught up; serving from the cache again");
    }
}

/* ---- the session --------------------------------------------------------- */

static void session_connect(struct cluster *cl)
{
    cl->session = SESSION_CONNECTING;
    redis_link_connect(cl->cmd);
    redis_link_connect(cl->feed);
}

void cluster_session_fail(struct cluster *cl, const char *why)
{
    if (cl->session == SESSION_DOWN)
        return;                     /* the other link's report of the same end */
    uint64_t now = redis_link_now_ms();
    bool was_ready = cl->session == SESSION_READY;
    cluster_note_error(cl, "%s", why);
    if (cl->caught_up)
        cl->in_touch_ms = now;
    cl->caught_up = false;
    cl->session = SESSION_DOWN;
    cl->feed_inflight = false;
    cl->heartbeat_inflight = false;
    cl->first_attempt_done = true;
    redis_link_drop(cl->cmd, why);
    redis_link_drop(cl->feed, why);
    cl->next_attempt_ms = now + cl->backoff_ms;
    cl->backoff_ms = cl->backoff_ms * 2 > CLUSTER_BACKOFF_MAX_MS ? CLUSTER_BACKOFF_MAX_MS
                                                                 : cl->backoff_ms * 2;
    if (was_ready) {
        cl->stats.disconnects++;
        log_warn("cluster: lost Redis at %s: %s; serving from the cache, reconnecting",
                 cl->cfg->redis_display, why);
        cl->quiet = true;
    } else if (!cl->quiet) {
        log_warn("cluster: cannot reach Redis at %s: %s; serving from the cache, retrying",
                 cl->cfg->redis_display, why);
        cl->quiet = true;
    } else {
        log_debug("cluster: Redis at %s: %s", cl->cfg->redis_display, why);
    }
    update_revalidating(cl, now);
}

void cluster_joined(struct cluster *cl)
{
    cl->session = SESSION_READY;
    cl->first_attempt_done = true;
    cl->backoff_ms = CLUSTER_BACKOFF_MIN_MS;
    cl->quiet = false;
    cl->last_error[0] = '\0';
    log_info("cluster: node %s joined cluster %s through Redis at %s (generation %" PRIu64 ")",
             cl->cfg->node, cl->cfg->name, cl->cfg->redis_display,
             generation_global(cl->srv->gens));
    cluster_heartbeat(cl);
    feed_read(cl);
    if (stream_id_cmp(&cl->ev_last, &cl->sync_target) >= 0)
        cluster_caught_up(cl);
    else
        update_revalidating(cl, redis_link_now_ms());
}

void cluster_caught_up(struct cluster *cl)
{
    if (cl->caught_up || cl->session != SESSION_READY)
        return;
    cl->caught_up = true;
    cl->in_touch_ms = redis_link_now_ms();
    update_revalidating(cl, cl->in_touch_ms);
}

static void on_link(void *arg, struct redis_link *l, bool up, const char *why)
{
    struct cluster *cl = arg;
    CHECK_OBJ_NOTNULL(cl, CLUSTER_MAGIC);
    (void)l;
    if (cl->stopping)
        return;
    if (!up) {
        cluster_session_fail(cl, why);
        return;
    }
    if (cl->session == SESSION_CONNECTING && redis_link_up(cl->cmd) && redis_link_up(cl->feed)) {
        cl->session = SESSION_SYNCING;
        sync_begin(cl);
    }
}

/* ---- heartbeats and the node table -------------------------------------- */

static void nodes_free(struct cluster *cl)
{
    free(cl->nodes);
    free(cl->nodes_age);
    cl->nodes = NULL;
    cl->nodes_age = NULL;
    cl->n_nodes = 0;
}

/* "7 html=3 default=1" */
static void parse_info(const char *s, struct gen_state *st)
{
    memset(st, 0, sizeof *st);
    char *end;
    st->global = strtoull(s, &end, 10);
    while (*end == ' ' && st->n_policies < GEN_MAX_POLICIES) {
        const char *name = end + 1;
        const char *eq = strchr(name, '=');
        if (eq == NULL || eq == name || (size_t)(eq - name) >= GEN_POLICY_NAME_MAX)
            break;
        memcpy(st->policies[st->n_policies].name, name, (size_t)(eq - name));
        st->policies[st->n_policies].name[eq - name] = '\0';
        st->policies[st->n_policies].gen = strtoull(eq + 1, &end, 10);
        st->n_policies++;
    }
}

static void on_heartbeat(struct redis_link *l, struct redisReply *r, void *arg)
{
    (void)l;
    struct cluster *cl = arg;
    CHECK_OBJ_NOTNULL(cl, CLUSTER_MAGIC);
    cl->heartbeat_inflight = false;
    if (r == NULL || cl->session != SESSION_READY)
        return;
    uint64_t now;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || (r->elements - 1) % 3 != 0 ||
        !reply_u64(r->element[0], &now)) {
        const char *e = r->type == REDIS_REPLY_ERROR ? r->str : "unexpected answer";
        char why[300];
        snprintf(why, sizeof why, "heartbeat failed: %s", e);
        cluster_session_fail(cl, why);
        return;
    }
    nodes_free(cl);
    size_t n = (r->elements - 1) / 3;
    cl->nodes = calloc(n ? n : 1, sizeof *cl->nodes);
    cl->nodes_age = calloc(n ? n : 1, sizeof *cl->nodes_age);
    AN(cl->nodes);
    AN(cl->nodes_age);
    unsigned live = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name, *info;
        uint64_t seen;
        if (!reply_string(r->element[1 + 3 * i], &name) ||
            !reply_u64(r->element[2 + 3 * i], &seen) ||
            !reply_string(r->element[3 + 3 * i], &info))
            continue;
        struct cluster_node *nd = &cl->nodes[cl->n_nodes];
        snprintf(nd->name, sizeof nd->name, "%s", name);
        cl->nodes_age[cl->n_nodes] = now > seen ? now - seen : 0;
        nd->self = strcmp(name, cl->cfg->node) == 0;
        parse_info(info, &nd->gens);
        if (cl->nodes_age[cl->n_nodes] <= CLUSTER_LIVE_MS)
            live++;
        cl->n_nodes++;
    }
    cl->view_ms = redis_link_now_ms();
    cl->stats.live_nodes = live;
}

void cluster_heartbeat(struct cluster *cl)
{
    char info[GEN_MAX_POLICIES * (GEN_POLICY_NAME_MAX + 24) + 32];
    cluster_info_string(cl, info, sizeof info);
    struct redis_cmd c;
    cluster_cmd_script(cl, &c, SCRIPT_HEARTBEAT, 3);
    redis_cmd_arg(&c, cl->key_nodes);
    redis_cmd_arg(&c, cl->key_info);
    redis_cmd_arg(&c, cl->key_inst);
    redis_cmd_arg(&c, cl->cfg->node);
    redis_cmd_arg(&c, cl->instance);
    redis_cmd_arg(&c, info);
    redis_cmd_argf(&c, "%d", CLUSTER_FORGET_MS);
    cl->last_heartbeat_ms = redis_link_now_ms();
    if (redis_link_command(cl->cmd, &c, on_heartbeat, cl) == 0)
        cl->heartbeat_inflight = true;
}

int cluster_nodes(struct cluster *cl, const struct cluster_node **nodes, size_t *n, char *err,
                  size_t errlen)
{
    CHECK_OBJ_NOTNULL(cl, CLUSTER_MAGIC);
    if (cl->session != SESSION_READY) {
        snprintf(err, errlen, "cannot reach Redis at %s%s%s%s", cl->cfg->redis_display,
                 cl->last_error[0] ? " (" : "", cl->last_error, cl->last_error[0] ? ")" : "");
        return -1;
    }
    if (cl->nodes == NULL) {
        snprintf(err, errlen, "this node has just joined the cluster through Redis at %s and "
                 "has not read the node table yet; try again", cl->cfg->redis_display);
        return -1;
    }
    uint64_t elapsed = redis_link_now_ms() - cl->view_ms;
    for (size_t i = 0; i < cl->n_nodes; i++) {
        cl->nodes[i].last_seen_ms = cl->nodes_age[i] + elapsed;
        cl->nodes[i].live = cl->nodes[i].last_seen_ms <= CLUSTER_LIVE_MS;
    }
    *nodes = cl->nodes;
    *n = cl->n_nodes;
    return 0;
}

const char *cluster_name(const struct cluster *cl) { return cl->cfg->name; }
const char *cluster_node_name(const struct cluster *cl) { return cl->cfg->node; }

void cluster_get_stats(struct cluster *cl, struct cluster_stats *out)
{
    CHECK_OBJ_NOTNULL(cl, CLUSTER_MAGIC);
    *out = cl->stats;
    out->connected = cl->session == SESSION_READY && cl->caught_up;
    out->catching_up = cl->revalidating;
    if (cl->session != SESSION_READY)
        out->live_nodes = 0;
}

/* ---- lifecycle ------------------------------------------------------------- */

static bool same_string(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The cluster settings are read at start only: say so once per reload
 * that changes them, rather than let an operator believe they apply. */
static void check_reload(struct cluster *cl)
{
    const struct fc_config *now = cl->srv->cfg;
    if (now == cl->seen_cfg)
        return;
    cl->seen_cfg = now;
    const struct fc_cluster *a = cl->cfg, *b = &now->cluster;
    if (b->enabled != a->enabled || !same_string(a->redis, b->redis) ||
        !same_string(a->password_file, b->password_file) || !same_string(a->name, b->name) ||
        !same_string(a->node, b->node) || a->ack_timeout_ms != b->ack_timeout_ms ||
        a->max_disconnect_ms != b->max_disconnect_ms || a->on_disconnect != b->on_disconnect)
        log_warn("cluster: the reloaded config changes cluster: settings; they apply at the "
                 "next restart (still node %s of cluster %s through Redis at %s)", a->node,
                 a->name, a->redis_display);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cluster *cl = arg;
    CHECK_OBJ_NOTNULL(cl, CLUSTER_MAGIC);
    uint64_t now = redis_link_now_ms();
    check_reload(cl);
    redis_link_check(cl->cmd, now);
    redis_link_check(cl->feed, now);
    if (cl->session == SESSION_DOWN && now >= cl->next_attempt_ms &&
        redis_link_idle(cl->cmd) && redis_link_idle(cl->feed))
        session_connect(cl);
    if (cl->session == SESSION_READY && !cl->heartbeat_inflight &&
        now - cl->last_heartbeat_ms >= CLUSTER_HEARTBEAT_MS)
        cluster_heartbeat(cl);
    update_revalidating(cl, now);
}

static void script_sha(const char *src, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    AN(EVP_Digest(src, strlen(src), md, &mdlen, EVP_sha1(), NULL));
    FC_ASSERT(mdlen == 20);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

struct cluster *cluster_start(struct server *srv, struct event_base *base, char *err,
                              size_t errlen)
{
    CHECK_OBJ_NOTNULL(srv, SERVER_MAGIC);
    const struct fc_cluster *cfg = &srv->cfg->cluster;
    if (!cfg->enabled) {
        snprintf(err, errlen, "no cluster: section in the config");
        return NULL;
    }
    struct cluster *cl = calloc(1, sizeof *cl);
    AN(cl);
    cl->magic = CLUSTER_MAGIC;
    cl->srv = srv;
    cl->base = base;
    cl->cfg = cfg;
    cl->seen_cfg = srv->cfg;
    TAILQ_INIT(&cl->ops);
    cluster_random_hex(cl->instance, 16);
    for (int s = 0; s < N_SCRIPTS; s++)
        script_sha(cluster_script_source((enum cluster_script)s), cl->sha[s]);
    /* One hash tag for every key: a Redis Cluster keeps them in one slot,
     * which the scripts need. */
#define KEY(field, suffix) snprintf(cl->field, sizeof cl->field, "freshcache:{%s}:%s", cfg->name, suffix)
    KEY(key_gen, "gen");
    KEY(key_events, "events");
    KEY(key_nodes, "nodes");
    KEY(key_info, "info");
    KEY(key_inst, "inst");
    KEY(key_run, "run");
#undef KEY
    snprintf(cl->key_acks_self, sizeof cl->key_acks_self, "freshcache:{%s}:acks:%s", cfg->name,
             cfg->node);
    cl->cmd = redis_link_new(base, &cfg->url, "commands", CLUSTER_LINK_TIMEOUT_MS, on_link, cl);
    cl->feed = redis_link_new(base, &cfg->url, "events",
                              CLUSTER_FEED_BLOCK_MS + CLUSTER_LINK_TIMEOUT_MS, on_link, cl);
    cl->backoff_ms = CLUSTER_BACKOFF_MIN_MS;
    cl->in_touch_ms = redis_link_now_ms();
    /* Until the first attempt to join has an outcome, what is stored (only
     * what was fetched since start) is revalidated before it is served. */
    cl->revalidating = true;
    generation_set_catching_up(srv->gens, true);
    cl->tick = event_new(base, -1, EV_PERSIST, on_tick, cl);
    AN(cl->tick);
    struct timeval tv = { 0, CLUSTER_TICK_MS * 1000 };
    event_add(cl->tick, &tv);
    log_info("cluster: node %s of cluster %s, Redis at %s (ack_timeout %" PRIu64
             " ms, max_disconnect %" PRIu64 " ms, on_disconnect %s)",
             cfg->node, cfg->name, cfg->redis_display, cfg->ack_timeout_ms,
             cfg->max_disconnect_ms,
             cfg->on_disconnect == ON_DISCONNECT_REVALIDATE ? "revalidate" : "serve");
    session_connect(cl);
    return cl;
}

static void on_leave(struct redis_link *l, struct redisReply *r, void *arg)
{
    (void)l;
    (void)r;
    struct cluster *cl = arg;
    CHECK_OBJ_NOTNULL(cl, CLUSTER_MAGIC);
    cl->leave_done = true;
}

void cluster_stop(struct cluster *cl)
{
    if (cl == NULL)
        return;
    CHECK_OBJ_NOTNULL(cl, CLUSTER_MAGIC);
    purge_fail_all(cl, "the daemon is stopping");
    event_del(cl->tick);
    /* Leave, so purges sent meanwhile do not wait for a node that is gone:
     * the loop runs a little longer for the answer. */
    if (cl->session == SESSION_READY) {
        struct redis_cmd c;
        cluster_cmd_script(cl, &c, SCRIPT_LEAVE, 3);
        redis_cmd_arg(&c, cl->key_nodes);
        redis_cmd_arg(&c, cl->key_info);
        redis_cmd_arg(&c, cl->key_inst);
        redis_cmd_arg(&c, cl->cfg->node);
        redis_cmd_arg(&c, cl->instance);
        if (redis_link_command(cl->cmd, &c, on_leave, cl) == 0) {
            uint64_t deadline = redis_link_now_ms() + CLUSTER_LEAVE_WAIT_MS;
            struct timeval tv = { 0, CLUSTER_TICK_MS * 1000 };
            event_add(cl->tick, &tv);   /* wakes the loop: a deadline, not a wait forever */
            while (!cl->leave_done && cl->session == SESSION_READY &&
                   redis_link_now_ms() < deadline)
                event_base_loop(cl->base, EVLOOP_ONCE);
            event_del(cl->tick);
        }
    }
    cl->stopping = true;
    redis_link_free(cl->cmd);
    redis_link_free(cl->feed);
    purge_fail_all(cl, "the daemon is stopping");
    event_free(cl->tick);
    nodes_free(cl);
    cl->magic = 0;
    free(cl);
}
