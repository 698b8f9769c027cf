/*
 * exchange.c — one request: lookup, fetch, and what to serve.  See
 * include/freshcache/server/exchange.h.
 *
 *   start ──lookup──▶ deliver (hit) ────────────────────────────┐
 *            │    └─▶ WAIT on a coalesced placeholder ─▶ deliver│
 *            └──────▶ fetch ─▶ WAIT on our placeholder:         │
 *                        stored ─▶ deliver   304 ─▶ deliver merged
 *                        private ─▶ deliver_private (pass-through)
 *                        failed ─▶ stale-if-error, or 502/504   │
 *                                                               ▼
 *                  SEND (the front end pulls the body) ─▶ DONE ─▶ end
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <llhttp.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/decimal.h"
#include "freshcache/base/log.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/freshness.h"
#include "freshcache/cache/generation.h"
#include "freshcache/http/cc_fields.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/http/link_hints.h"
#include "freshcache/server/access_log.h"
#include "freshcache/server/exchange.h"
#include "freshcache/server/fetch.h"
#include "freshcache/server/worker.h"

/* Bodies up to this size are complete before a stored response is
 * answered, so the first answer carries the content-hash ETag too. */
#define DEFER_FOR_ETAG_MAX (64 * 1024)
/* Request body bytes queued toward the origin beyond which the client is
 * paused (resumed when the fetch's upload_drained event says so). */
#define UPLOAD_HIGH (1024 * 1024)

/* The generations a revalidation answers for: the global one, the policy
 * layout and the stale copy's policy's. */
struct reval_gens {
    uint64_t global, layout, policy;
};

/* A revalidation several requests share (see "revalidations shared
 * within one pass of the loop" below). */
struct reval_batch {
#define REVAL_BATCH_MAGIC 0x3e7a1b0du
    unsigned magic;
    struct cache_obj *stale;            /* the copy revalidated (ref) */
    struct cache_obj *ph;               /* what the leader's fetch fills (ref) */
    struct exchange *leader;            /* NULL once it ended before the send */
    bool sent;                          /* on reval_sent, the leader's x->batch */
    /* In force at the send: after a bump it answers for the release
     * before, and no one joins it late. */
    struct reval_gens gens;
    TAILQ_ENTRY(reval_batch) link;
};

static void wake_cb(evutil_socket_t fd, short what, void *arg);
static void upload_cb(evutil_socket_t fd, short what, void *arg);
static void batch_close(struct exchange *x);

void exchange_init(struct exchange *x, struct worker *w, const struct exchange_fe *fe, void *ctx)
{
    memset(x, 0, sizeof *x);
    x->magic = EXCHANGE_MAGIC;
    x->w = w;
    x->fe = fe;
    x->fe_ctx = ctx;
    x->wake = event_new(w->base, -1, 0, wake_cb, x);
    x->upload_ev = event_new(w->base, -1, 0, upload_cb, x);
    AN(x->wake);
    AN(x->upload_ev);
    x->waiter.ev = x->wake;
}

void exchange_fini(struct exchange *x)
{
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    exchange_end(x);
    event_free(x->wake);
    event_free(x->upload_ev);
    x->magic = 0;
}

void exchange_drop_obj(struct exchange *x)
{
    if (x->obj) {
        obj_body_unwait(x->obj, &x->waiter);
        obj_unref(x->obj);
        x->obj = NULL;
    }
    x->obj_ours = false;
}

static void drop_fetch(struct exchange *x)
{
    if (x->fetch) {
        struct fetch *f = x->fetch;
        x->fetch = NULL;
        fetch_detach(f);
    }
    if (x->stale) {
        obj_unref(x->stale);
        x->stale = NULL;
    }
}

static void log_exchange(struct exchange *x)
{
    if (x->w->srv->access_fd < 0)
        return;
    struct access_entry e = {
        .client = x->info.client_addr,
        .req = x->req,
        .status = x->resp_status,
        .bytes = x->resp_bytes,
        .cache_status = x->cs[0] ? x->cs : NULL,
        .generation = generation_global(x->w->srv->gens),
        .origin_ms = x->origin_ms,
        .total_ms = (int64_t)(worker_now_ms(x->w) - x->t_start_ms),
    };
    access_log_write(x->w, &e);
}

void exchange_end(struct exchange *x)
{
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    if (x->state == X_IDLE && !exchange_answered(x))
        return;
    if (exchange_answered(x))
        log_exchange(x);
    if (x->batch) {
        CHECK_OBJ_NOTNULL(x->batch, REVAL_BATCH_MAGIC);
        if (x->batch->sent) {
            batch_close(x);
        } else {
            /* We led a revalidation not sent yet: it goes without us. */
            x->batch->leader = NULL;
            x->batch = NULL;
        }
    }
    exchange_drop_obj(x);
    drop_fetch(x);
    event_del(x->wake);
    event_del(x->upload_ev);
    free(x->key);
    /* The per-request state, in one step. */
    memset(&x->state, 0, sizeof *x - offsetof(struct exchange, state));
}

/* Start the clock for a request (or for a refusal made before one). */
static void begin(struct exchange *x, const struct http_msg *req,
                  const struct exchange_request *info)
{
    FC_ASSERT(x->state == X_IDLE);
    x->req = req;
    if (info)
        x->info = *info;
    x->t_start_ms = worker_now_ms(x->w);
    x->origin_ms = -1;
    x->send_end = UINT64_MAX;
    x->state = X_WAIT;
}

/* Cache-Status parameters "fwd=FWD[; fwd-status=N][TAIL]" into cs (cut
 * to cap, NUL-terminated), without printf: one is written for every
 * forwarded request (callgrind: snprintf was ~700 instructions of a
 * revalidated request, docs/performance.md). */
static void cs_build(char *cs, size_t cap, const char *fwd, int status, const char *tail)
{
    char digits[DECIMAL_U64_MAX];
    size_t nd = status > 0 ? decimal_u64(digits, (uint64_t)status) : 0;
    const struct { const char *p; size_t n; } parts[] = {
        { "fwd=", 4 },
        { fwd, strlen(fwd) },
        { "; fwd-status=", nd ? 13 : 0 },
        { digits, nd },
        { tail ? tail : "", tail ? strlen(tail) : 0 },
    };
    size_t n = 0;
    for (size_t i = 0; i < FC_ARRAY_LEN(parts); i++) {
        size_t k = parts[i].n < cap - 1 - n ? parts[i].n : cap - 1 - n;
        memcpy(cs + n, parts[i].p, k);
        n += k;
    }
    cs[n] = '\0';
}

#define CS_SET(cs, lit) memcpy((cs), (lit), sizeof(lit))

void exchange_respond(struct exchange *x, int status, const char *cache_status, const char *msg,
                      bool close)
{
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    if (x->state == X_IDLE)
        begin(x, x->req, NULL);     /* a refusal: the front end may have set req */
    if (cache_status)
        snprintf(x->cs, sizeof x->cs, "%s", cache_status);
    else if (!x->cs[0])
        CS_SET(x->cs, "fwd=miss");
    deliver_error(x, status, msg, close);
}

void exchange_refuse(struct exchange *x, const struct exchange_request *info, int status,
                     const char *cache_status, const char *msg, bool close)
{
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    AN(info);
    if (x->state == X_IDLE)
        begin(x, x->req, info);
    exchange_respond(x, status, cache_status, msg, close);
}

void exchange_send_interim(struct exchange *x, int status, const char *lines, size_t len)
{
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    FC_ASSERT(status >= 100 && status < 200 && status != 101);
    /* Only while the final answer is still awaited: after it, a 1xx would
     * be read as the start of the next response. */
    if (x->state != X_WAIT || x->resp_status != 0)
        return;
    x->fe->send_interim(x, status, lines, len);
}

/* ---- fetches ----------------------------------------------------------- */

/* Early Hints: room for the Link lines of one 103. */
#define EARLY_HINTS_MAX 4096

static bool any_early_hints(const struct fc_config *cfg)
{
    for (size_t i = 0; i < cfg->n_policies; i++)
        if (cfg->policies[i].early_hints)
            return true;
    return false;
}

/* A copy of the current generation under a policy with early_hints: its
 * links name this release's assets.  One a bump invalidated names the
 * previous release's and must never be hinted. */
static bool hints_source(const struct cache_obj *o, const void *arg)
{
    const struct exchange *x = arg;
    const struct fc_config *cfg = worker_cfg(x->w);
    return !o->private && o->policy >= 0 && (size_t)o->policy < cfg->n_policies &&
           cfg->policies[o->policy].early_hints && obj_current(o, x->w->srv->gens);
}

/* The request waits for the origin (a revalidation, or a miss for a URL of
 * which another copy is stored): send 103 Early Hints at once with the
 * preloads of the stored copy, so the browser fetches the page's assets
 * while the origin thinks (RFC 8297).  `stale` is the copy revalidated,
 * else any variant stored for the key is looked up. */
static void send_early_hints(struct exchange *x, struct cache_obj *stale)
{
    const struct fc_config *cfg = worker_cfg(x->w);
    const struct http_msg *req = x->req;
    const struct generations *gens = x->w->srv->gens;
    if (x->key == NULL || req->method != HTTP_GET || !any_early_hints(cfg) ||
        (req->http_major == 1 && req->http_minor == 0) || generation_catching_up(gens))
        return;
    struct cache_obj *o = NULL;
    if (stale && hints_source(stale, x)) {
        o = stale;
        obj_ref(o);
    } else if (stale == NULL) {
        o = store_find_key(x->w->srv->store, x->key, hints_source, x);
    }
    if (o == NULL)
        return;
    char lines[EARLY_HINTS_MAX];
    size_t used = 0, it = 0, vlen, n = 0;
    const char *v;
    while (obj_field_next(o, "Link", &it, &v, &vlen))
        n += link_hints_filter(v, vlen, lines, sizeof lines, &used);
    obj_unref(o);
    if (n == 0)
        return;
    COUNT(&x->w->counters, early_hints, 1);
    exchange_send_interim(x, 103, lines, used);
}

/* Our fetch's origin sent a 1xx: pass it to our client. */
static void on_fetch_interim(void *arg, int status, const char *lines, size_t len)
{
    struct exchange *x = arg;
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    exchange_send_interim(x, status, lines, len);
}

/* Our fetch of `ph` (our reference), revalidating `stale` (NULL: none),
 * is about to start: wait on it. */
static void prepare_fetch(struct exchange *x, enum fetch_kind kind, struct cache_obj *ph,
                          struct cache_obj *stale, const char *fwd)
{
    if (stale) {
        obj_ref(stale);
        x->stale = stale;
    }
    /* An error answer before any head still says why we went forward
     * (RFC 9211: fwd=stale for a failed revalidation, not miss). */
    cs_build(x->cs, sizeof x->cs, fwd, 0, NULL);
    x->fwd = fwd;
    x->fetch_kind = kind;
    x->obj = ph;
    x->obj_ours = true;
    x->state = X_WAIT;
}

/* Start the fetch prepare_fetch() made ready.  `busy`: ph is linked as
 * BUSY in the store (coalesced misses wait on it). */
static void launch_fetch(struct exchange *x, bool busy, bool store_allowed)
{
    struct cache_obj *ph = x->obj;
    enum fetch_kind kind = x->fetch_kind;
    struct fetch_params p = {
        .kind = kind,
        .req = x->req,
        .key = kind == FETCH_PASS ? NULL : x->key,
        .ph = ph,
        .ph_busy = busy,
        .stale = x->stale,
        .client_addr = x->info.client_addr,
        .scheme = x->info.scheme,
        .client_head = x->head_req,
        .req_body = x->info.has_body,
        .req_content_length = x->info.body_length,
        .store_allowed = store_allowed,
        .upload_drained = x->upload_ev,
        .interim = on_fetch_interim,
        .interim_arg = x,
    };
    x->fetch = fetch_start(x->w, &p);
    if (x->fetch && kind != FETCH_PASS)
        send_early_hints(x, x->stale);
    /* A fetch that could not start failed the placeholder already: the
     * wake-up below answers 502 like any other failure. */
    if (!obj_body_wait(ph, &x->waiter, 0, BODY_PENDING))
        event_active(x->wake, EV_READ, 0);
}

/* Start our fetch and wait on its placeholder.  `busy` is a BUSY object we
 * hold (coalescing) or NULL for a new private-until-decided one. */
static void start_fetch(struct exchange *x, enum fetch_kind kind, struct cache_obj *busy,
                        struct cache_obj *stale, bool store_allowed, const char *fwd)
{
    struct cache_obj *ph = busy;
    if (ph)
        obj_ref(ph);
    else
        ph = obj_new(kind == FETCH_PASS ? NULL : x->key);
    prepare_fetch(x, kind, ph, stale, fwd);
    launch_fetch(x, busy != NULL, store_allowed);
}

/* ---- revalidations shared within one pass of the loop -------------------
 *
 * Requests that must revalidate the same stored copy (no-cache HTML, a
 * stale copy, a bumped generation) and are read in the same pass of the
 * worker's loop share one conditional request.  It is sent at the end of
 * the pass, after every request that joined it arrived, so each answer
 * was validated by the origin after its own request came (RFC 9111
 * §5.2.2.4: never reused without validation; the collapsing of §4).  The
 * first request leads with its own fetch; the others wait on its
 * placeholder like coalesced misses and get the refreshed copy, or the
 * origin's new response when it is stored.  Whatever cannot be shared (a
 * response not stored, a leader gone before the send) sends them to the
 * origin on their own.  A request with credentials never joins: its own
 * must be checked.  (struct reval_batch is at the top of the file.)
 *
 * Once sent, a revalidation whose outcome will be fresh (a copy with a
 * lifetime and no no-cache: one that merely expired, or a bumped
 * generation's) stays open to later requests until its outcome, as a
 * miss's fetch does (Varnish's waiting list, nginx's proxy_cache_lock):
 * a crowd arriving during the origin round trip sends one request, not
 * one per pass.  A late joiner serves the outcome only if it is fresh for
 * its own request, else it revalidates on its own; a request with
 * no-cache never joins late (it asks for a validation after it came).
 * Per worker: the list is the worker's. */
static void batch_free(struct reval_batch *b)
{
    CHECK_OBJ_NOTNULL(b, REVAL_BATCH_MAGIC);
    obj_unref(b->ph);
    obj_unref(b->stale);
    b->magic = 0;
    free(b);
}

static struct reval_gens reval_gens_of(const struct cache_obj *o, const struct generations *g)
{
    return (struct reval_gens){
        .global = generation_global(g),
        .layout = generation_layout(g),
        .policy = o->policy < 0 ? 0 : generation_policy(g, (unsigned)o->policy),
    };
}

/* May a request come now still join `b`?  Not after a bump since its send
 * (docs/deploying.md: a request after a bump never joins a fetch that
 * began before it). */
static bool batch_gens_current(const struct reval_batch *b, const struct generations *g)
{
    struct reval_gens now = reval_gens_of(b->stale, g);
    return b->gens.global == now.global && b->gens.layout == now.layout &&
           b->gens.policy == now.policy;
}

/* The leader's sent revalidation has its outcome, or the leader ended: no
 * one joins it any more (those who did hold their own references). */
static void batch_close(struct exchange *x)
{
    struct reval_batch *b = x->batch;
    CHECK_OBJ_NOTNULL(b, REVAL_BATCH_MAGIC);
    FC_ASSERT(b->sent && b->leader == x);
    TAILQ_REMOVE(&x->w->reval_sent, b, link);
    x->batch = NULL;
    batch_free(b);
}

/* Will a revalidation of `o` give a copy that is fresh when it comes? */
static bool late_joinable(const struct cache_obj *o)
{
    return o->lifetime > 0 && !(o->cc.flags & CC_NO_CACHE);
}

/* End of the pass: every open revalidation goes to the origin. */
static void batches_send_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    struct reval_batch *b;
    while ((b = TAILQ_FIRST(&w->reval_open)) != NULL) {
        TAILQ_REMOVE(&w->reval_open, b, link);
        struct exchange *x = b->leader;
        if (x) {
            CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
            FC_ASSERT(x->batch == b && x->obj == b->ph);
            if (late_joinable(b->stale)) {
                /* Open to later requests until the leader's outcome;
                 * x->batch keeps it, and the leader ending (even inside
                 * launch_fetch) closes it: b is not touched after. */
                b->sent = true;
                b->gens = reval_gens_of(b->stale, w->srv->gens);
                TAILQ_INSERT_TAIL(&w->reval_sent, b, link);
                launch_fetch(x, false, true);
                continue;
            }
            x->batch = NULL;
            launch_fetch(x, false, true);
        } else {
            /* No request left to send: whoever joined goes on its own. */
            obj_fail(b->ph, 0, "the revalidation's leader left");
        }
        batch_free(b);
    }
}

static bool may_share_revalidation(const struct exchange *x)
{
    return worker_cfg(x->w)->cache.coalesce && !http_msg_has(x->req, "Authorization");
}

/* Wait on the revalidation `b` leads instead of sending our own. */
static void join_batch(struct exchange *x, struct reval_batch *b, const char *fwd, bool late)
{
    COUNT(&x->w->counters, collapsed, 1);
    obj_ref(b->stale);
    x->stale = b->stale;
    obj_ref(b->ph);
    x->obj = b->ph;
    x->obj_ours = false;
    x->joined = true;
    x->joined_late = late;
    x->fwd = fwd;
    x->fetch_kind = FETCH_REVALIDATE;
    cs_build(x->cs, sizeof x->cs, fwd, 0, NULL);
    x->state = X_WAIT;
    send_early_hints(x, b->stale);
    if (x->state == X_WAIT && !obj_body_wait(b->ph, &x->waiter, 0, BODY_PENDING))
        event_active(x->wake, EV_READ, 0);
}

static void revalidate(struct exchange *x, struct cache_obj *o, const char *fwd)
{
    struct worker *w = x->w;
    if (!may_share_revalidation(x)) {
        start_fetch(x, FETCH_REVALIDATE, NULL, o, true, fwd);
        return;
    }
    struct reval_batch *b;
    TAILQ_FOREACH(b, &w->reval_open, link) {
        if (b->stale == o) {
            join_batch(x, b, fwd, false);
            return;
        }
    }
    if (!(x->req_cc.flags & CC_NO_CACHE)) {
        TAILQ_FOREACH(b, &w->reval_sent, link) {
            if (b->stale == o && batch_gens_current(b, w->srv->gens)) {
                join_batch(x, b, fwd, true);
                return;
            }
        }
    }
    /* Lead: our fetch waits for the end of the pass. */
    if (w->reval_send == NULL) {
        w->reval_send = event_new(w->base, -1, 0, batches_send_cb, w);
        AN(w->reval_send);
    }
    b = calloc(1, sizeof *b);
    AN(b);
    b->magic = REVAL_BATCH_MAGIC;
    obj_ref(o);
    b->stale = o;
    b->ph = obj_new(x->key);
    b->leader = x;
    obj_ref(b->ph);
    prepare_fetch(x, FETCH_REVALIDATE, b->ph, o, fwd);
    x->batch = b;
    if (TAILQ_EMPTY(&w->reval_open))
        event_active(w->reval_send, EV_WRITE, 0);   /* after the events this pass has */
    TAILQ_INSERT_TAIL(&w->reval_open, b, link);
    if (!obj_body_wait(b->ph, &x->waiter, 0, BODY_PENDING))
        event_active(x->wake, EV_READ, 0);
}

void exchange_free_batches(struct worker *w)
{
    FC_ASSERT(TAILQ_EMPTY(&w->reval_sent));     /* every leader ended before */
    struct reval_batch *b;
    while ((b = TAILQ_FIRST(&w->reval_open)) != NULL) {
        TAILQ_REMOVE(&w->reval_open, b, link);
        FC_ASSERT(b->leader == NULL);   /* every request ended before */
        batch_free(b);
    }
    if (w->reval_send) {
        event_free(w->reval_send);
        w->reval_send = NULL;
    }
}

/* RFC 5861 stale-if-error (or the policy's): may the copy we revalidated
 * stand in for an origin that failed? */
static bool stale_usable_on_error(struct exchange *x)
{
    const struct cache_obj *o = x->stale;
    if (o == NULL || x->fetch_kind != FETCH_REVALIDATE || o->stale_if_error <= 0)
        return false;
    /* must-revalidate, proxy-revalidate and s-maxage forbid serving stale
     * without validation (RFC 9111 §5.2.2.2, .8, .10), whoever asked for
     * stale-if-error.  So does no-cache (§5.2.2.4), except to a policy
     * that has taken the copy's freshness from the origin with a ttl of
     * its own and asks for stale_if_error too (the spec's HTML policy:
     * ttl 0s, stale_if_error 1h); the origin's own stale-if-error, or a
     * policy's with ttl: origin, yields to it. */
    if ((o->cc.flags & (CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE)) || o->cc.s_maxage != CC_PACKED_UNSET)
        return false;
    if ((o->cc.flags & CC_NO_CACHE) && !(o->sie_from_policy && o->policy_ttl))
        return false;
    if (!obj_current(o, x->w->srv->gens))
        return false;
    int64_t staleness = obj_age(o, worker_now(x->w)) - (int64_t)o->lifetime;
    return staleness <= (int64_t)o->stale_if_error;
}

static void serve_stale_on_error(struct exchange *x, int status)
{
    char cs[96];
    if (status)
        cs_build(cs, sizeof cs, x->fwd, status, "; detail=stale-if-error");
    else
        cs_build(cs, sizeof cs, x->fwd, 0, "; detail=stale-if-error");
    COUNT(&x->w->counters, stale, 1);
    struct cache_obj *s = x->stale;
    x->stale = NULL;
    exchange_drop_obj(x);
    drop_fetch(x);          /* a private 5xx left unread ends its fetch */
    deliver_obj(x, s, cs);
    obj_unref(s);
}

/* keep_after_deploy: the origin no longer has the URL, the copy it
 * served before stands in (fetch.c head_keep). */
static void serve_kept(struct exchange *x, struct cache_obj *ph)
{
    struct cache_obj *k = obj_merged(ph);
    int status = ph->status;
    obj_ref(k);
    exchange_drop_obj(x);       /* may free ph: a waiter's reference was the last */
    COUNT(&x->w->counters, kept_after_deploy, 1);
    log_info("kept-after-deploy: the origin answered %d for %s; served the copy stored "
             "%llds ago%s", status, k->key,
             (long long)(worker_now(x->w) - k->timing.response_time),
             obj_current(k, x->w->srv->gens) ? "" : ", before the last deploy");
    deliver_obj(x, k, "hit; detail=kept-after-deploy");
    obj_unref(k);
}

/* The fetch of `ph` (ours, or the revalidation we joined) failed before a
 * head: the stale copy where stale-if-error allows it, else its error. */
static void answer_failed_fetch(struct exchange *x, struct cache_obj *ph)
{
    if (stale_usable_on_error(x)) {
        serve_stale_on_error(x, 0);
        return;
    }
    const struct obj_fill *fill = obj_fill(ph);
    int status = fill->fail_status ? fill->fail_status : 502;
    const char *why = fill->fail_reason ? fill->fail_reason : "origin fetch failed";
    exchange_drop_obj(x);
    /* An upload cut short leaves its rest unread: close after. */
    exchange_respond(x, status, NULL, why, x->info.has_body && !x->upload_done);
}

/* Our fetch's placeholder has an outcome. */
static void on_our_outcome(struct exchange *x)
{
    struct cache_obj *ph = x->obj;
    if (x->batch && x->batch->sent)
        batch_close(x);
    x->origin_ms = obj_fill(ph)->origin_ms;
    if (!obj_ready(ph)) {       /* failed before a head */
        answer_failed_fetch(x, ph);
        return;
    }
    if (obj_was_kept(ph)) {
        serve_kept(x, ph);
        return;
    }
    if (obj_merged(ph)) {           /* a 304 refreshed the stale copy */
        struct cache_obj *m = obj_merged(ph);
        obj_ref(m);
        exchange_drop_obj(x);
        char cs[96];
        cs_build(cs, sizeof cs, x->fwd, 304, NULL);
        deliver_obj(x, m, cs);
        obj_unref(m);
        return;
    }
    if (ph->private) {
        if (ph->status >= 500 && stale_usable_on_error(x)) {
            serve_stale_on_error(x, ph->status);
            return;
        }
        cs_build(x->cs, sizeof x->cs, x->fwd, ph->status, NULL);
        deliver_private(x, ph);
        return;
    }
    /* Stored.  A small body is here in a moment: wait for it, so the
     * content-hash ETag goes out with this first answer too. */
    enum body_state st = obj_body_state(ph);
    if (st == BODY_STREAMING && worker_cfg(x->w)->cache.etag == ETAG_CONTENT_HASH &&
        obj_body_expected(ph) <= DEFER_FOR_ETAG_MAX) {
        if (obj_body_wait(ph, &x->waiter, UINT64_MAX, BODY_STREAMING))
            return;
        st = obj_body_state(ph);
        if (st == BODY_STREAMING) {
            event_active(x->wake, EV_READ, 0);
            return;
        }
    }
    char cs[96];
    if (x->fetch_kind == FETCH_REVALIDATE)
        cs_build(cs, sizeof cs, x->fwd, ph->status, "; stored");
    else
        cs_build(cs, sizeof cs, x->fwd, 0, "; stored");
    obj_ref(ph);
    exchange_drop_obj(x);
    deliver_obj(x, ph, cs);
    obj_unref(ph);
}

/* What RFC 9111 §4.2 lets the stored copy `o` do for this request; `in`
 * and `resp_cc` are filled for the caller's own checks.  From a
 * generation bump or a soft purge on, the copy is stale whatever its
 * freshness says (`current` false). */
static enum serve_verdict copy_verdict(struct exchange *x, struct cache_obj *o,
                                       struct cache_control *resp_cc, struct serve_input *in,
                                       bool *current)
{
    obj_cc(o, resp_cc);
    *in = (struct serve_input){
        .req_cc = &x->req_cc,
        .resp_cc = resp_cc,
        .lifetime = o->lifetime,
        .age = obj_age(o, worker_now(x->w)),
    };
    *current = obj_current(o, x->w->srv->gens) && !obj_soft_purged(o);
    return *current ? freshness_can_serve(in) : SERVE_MUST_VALIDATE;
}

/* A revalidation joined after it was sent was validated before our
 * request came: its copy serves us only if fresh for our request. */
static bool joined_outcome_fresh(struct exchange *x, struct cache_obj *o)
{
    struct cache_control resp_cc;
    struct serve_input in;
    bool current;
    return copy_verdict(x, o, &resp_cc, &in, &current) != SERVE_MUST_VALIDATE;
}

/* The revalidation we joined has an outcome. */
static void on_joined_outcome(struct exchange *x)
{
    struct cache_obj *ph = x->obj;
    char cs[96];
    x->origin_ms = obj_fill(ph)->origin_ms;
    if (obj_ready(ph) && obj_was_kept(ph)) {
        serve_kept(x, ph);
        return;
    }
    struct cache_obj *merged = obj_ready(ph) ? obj_merged(ph) : NULL;
    if (obj_ready(ph) && (merged || (!ph->private && vary_match(ph, x->req))) &&
        (!x->joined_late || joined_outcome_fresh(x, merged ? merged : ph))) {
        /* The refreshed copy (a 304), or the new response, stored. */
        struct cache_obj *o = merged ? merged : ph;
        cs_build(cs, sizeof cs, x->fwd, merged ? 304 : ph->status, "; collapsed");
        obj_ref(o);
        exchange_drop_obj(x);
        deliver_obj(x, o, cs);
        obj_unref(o);
        return;
    }
    if (!obj_ready(ph) && obj_fill(ph)->fail_status) {
        /* The origin failed the revalidation: as for its leader. */
        answer_failed_fetch(x, ph);
        return;
    }
    if (obj_ready(ph) && ph->private && ph->status >= 500 && stale_usable_on_error(x)) {
        /* It answered the revalidation with a server error (its leader's
         * alone: never stored over the copy): the copy stands in for us
         * too, rather than each waiter asking a failing origin again. */
        serve_stale_on_error(x, ph->status);
        return;
    }
    /* Not shareable (not stored, another variant) or never sent: our own. */
    struct cache_obj *stale = x->stale;
    x->stale = NULL;
    exchange_drop_obj(x);
    x->joined = false;
    x->joined_late = false;
    start_fetch(x, FETCH_REVALIDATE, NULL, stale, true, x->fwd);
    obj_unref(stale);
}

/* A placeholder another request's fetch fills has an outcome. */
static void on_coalesced_outcome(struct exchange *x)
{
    if (x->joined) {
        on_joined_outcome(x);
        return;
    }
    struct cache_obj *o = x->obj;
    if (obj_ready(o) && obj_was_kept(o) && vary_match(obj_merged(o), x->req)) {
        serve_kept(x, o);
        return;
    }
    if (obj_ready(o) && !o->private && !obj_merged(o)) {
        obj_ref(o);
        exchange_drop_obj(x);
        if (vary_match(o, x->req))
            deliver_obj(x, o, "fwd=uri-miss; collapsed");
        else
            start_fetch(x, FETCH_MISS, NULL, NULL, true, "vary-miss");
        obj_unref(o);
        return;
    }
    /* The leader's response was not stored, or its fetch failed: fetch for
     * ourselves. */
    exchange_drop_obj(x);
    start_fetch(x, FETCH_MISS, NULL, NULL, true, "miss");
}

/* Progress on what we wait on or stream from (any thread may fire it). */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct exchange *x = arg;
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    if (x->state == X_SEND) {
        x->fe->body_ready(x);
        return;
    }
    if (x->state != X_WAIT || x->obj == NULL)
        return;
    struct cache_obj *o = x->obj;
    enum body_state st = obj_body_state(o);
    if (!obj_ready(o) && st == BODY_PENDING) {
        if (!obj_body_wait(o, &x->waiter, 0, BODY_PENDING))
            event_active(x->wake, EV_READ, 0);
        return;
    }
    obj_body_unwait(o, &x->waiter);
    if (x->obj_ours)
        on_our_outcome(x);
    else
        on_coalesced_outcome(x);
}

/* ---- request bodies ----------------------------------------------------- */

size_t exchange_upload(struct exchange *x, const char *data, size_t len)
{
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    if (x->fetch == NULL)
        return 0;
    size_t queued = fetch_send_body(x->fetch, data, len);
    if (queued > UPLOAD_HIGH && !x->upload_paused) {
        /* The origin is slower than the client: stop taking bytes until it
         * catches up, rather than hold the whole upload in memory. */
        x->upload_paused = true;
        x->fe->upload_pause(x, true);
    }
    return queued;
}

void exchange_upload_end(struct exchange *x)
{
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    x->upload_done = true;
    if (x->fetch)
        fetch_end_body(x->fetch);
    /* The origin's drain resumes only unfinished uploads: a front end
     * paused for this one would stay so (HTTP/1.1: reading the next
     * request; HTTP/2: the held-back window). */
    if (x->upload_paused) {
        x->upload_paused = false;
        x->fe->upload_pause(x, false);
    }
}

static void upload_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct exchange *x = arg;
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    if (!x->upload_paused)
        return;
    x->upload_paused = false;
    x->fe->upload_pause(x, false);
}

/* ---- the lookup ------------------------------------------------------- */

static void only_if_cached_miss(struct exchange *x)
{
    exchange_respond(x, 504, "fwd=miss; detail=only-if-cached", "not in cache (only-if-cached)",
                     false);
}

/* A stored copy found: serve it, or revalidate it. */
static void handle_found(struct exchange *x, struct cache_obj *o)
{
    bool only_cached = x->req_cc.flags & CC_ONLY_IF_CACHED;
    struct cache_control resp_cc;
    struct serve_input in;
    bool current;
    enum serve_verdict v = copy_verdict(x, o, &resp_cc, &in, &current);
    if (v != SERVE_MUST_VALIDATE) {
        COUNT(&x->w->counters, hits, 1);
        if (v == SERVE_STALE_OK)
            COUNT(&x->w->counters, stale, 1);
        deliver_obj(x, o, "hit");
    } else if (current && !only_cached && !(x->req_cc.flags & CC_NO_CACHE) &&
               !(o->cc.flags & (CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE | CC_NO_CACHE)) &&
               o->stale_while_revalidate > 0 &&
               in.age - in.lifetime <= (int64_t)o->stale_while_revalidate) {
        /* stale-while-revalidate: answer now, refresh in the background
         * with a single request. */
        COUNT(&x->w->counters, hits, 1);
        COUNT(&x->w->counters, stale, 1);
        if (obj_revalidate_claim(o)) {
            struct cache_obj *ph = obj_new(x->key);
            struct fetch_params p = {
                .kind = FETCH_REVALIDATE,
                .req = x->req,
                .key = x->key,
                .ph = ph,
                .stale = o,
                .client_addr = x->info.client_addr,
                .scheme = x->info.scheme,
                .store_allowed = true,
                .background = true,
            };
            struct fetch *f = fetch_start(x->w, &p);
            if (f == NULL)
                obj_revalidate_release(o);
            else
                fetch_detach(f);    /* it goes on alone */
            obj_unref(ph);
        }
        deliver_obj(x, o, "hit; detail=stale-while-revalidate");
    } else if (only_cached) {
        only_if_cached_miss(x);
    } else {
        COUNT(&x->w->counters, revalidations, 1);
        revalidate(x, o, (x->req_cc.flags & CC_NO_CACHE) ? "request" : "stale");
    }
}

static void handle_cacheable(struct exchange *x)
{
    const struct fc_config *cfg = worker_cfg(x->w);
    size_t hl = 0;
    const char *host = http_msg_get(x->req, "Host", &hl);
    x->key = cache_key_make(host ? host : "", hl, http_msg_url(x->req), x->req->url_len);
    if (x->key == NULL) {
        exchange_respond(x, 400, NULL, "bad request target", true);
        return;
    }
    cc_request_parse(x->req, &x->req_cc);
    bool only_cached = x->req_cc.flags & CC_ONLY_IF_CACHED;
    if (x->req_cc.flags & CC_NO_STORE) {
        if (only_cached) {
            only_if_cached_miss(x);
            return;
        }
        start_fetch(x, FETCH_MISS, NULL, NULL, false, "request");
        return;
    }
    bool coalesce = cfg->cache.coalesce && !(x->req_cc.flags & CC_NO_CACHE) && !only_cached;
    struct cache_obj *o = NULL;
    enum lookup_result r = store_lookup(x->w->srv->store, x->key, x->req, coalesce,
                                        worker_now_ms(x->w), x->w->srv->gens,
                                        cfg->cache.after_purge == AFTER_PURGE_REFETCH, &o);
    switch (r) {
    case LOOKUP_FOUND:
        handle_found(x, o);
        obj_unref(o);
        return;
    case LOOKUP_BUSY:
        COUNT(&x->w->counters, collapsed, 1);
        x->obj = o;     /* keep the reference while waiting */
        x->obj_ours = false;
        x->state = X_WAIT;
        if (!obj_body_wait(o, &x->waiter, 0, BODY_PENDING))
            event_active(x->wake, EV_READ, 0);
        return;
    case LOOKUP_CREATED:
        COUNT(&x->w->counters, misses, 1);
        start_fetch(x, FETCH_MISS, o, NULL, true, "miss");
        obj_unref(o);
        return;
    case LOOKUP_MISS:
    case LOOKUP_VARY_MISS:
        if (only_cached) {
            only_if_cached_miss(x);
            return;
        }
        COUNT(&x->w->counters, misses, 1);
        start_fetch(x, FETCH_MISS, NULL, NULL, true, r == LOOKUP_MISS ? "miss" : "vary-miss");
        return;
    }
}

void exchange_start(struct exchange *x, const struct http_msg *req,
                    const struct exchange_request *info)
{
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    begin(x, req, info);
    COUNT(&x->w->counters, requests, 1);
    x->head_req = req->method == HTTP_HEAD;
    if ((req->method == HTTP_GET || req->method == HTTP_HEAD) && !info->has_body) {
        handle_cacheable(x);
        return;
    }
    COUNT(&x->w->counters, passes, 1);
    start_fetch(x, FETCH_PASS, NULL, NULL, false, "method");
}
