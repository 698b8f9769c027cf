/*
 * fetch.c — origin exchange and cache fill.  See include/freshcache/server/fetch.h.
 *
 *   CONNECTING ──▶ WAIT_HEAD ──head──▶ BODY ──end──▶ DONE ──(event)──▶ freed
 *        └────────────┴── failure ───────┴──────────────▲
 *
 * What the head makes of the placeholder is one function per outcome:
 * head_merge (a 304 refreshing the stale copy), head_store, head_pass.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/base/warn_once.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/etag.h"
#include "freshcache/cache/obj_policy.h"
#include "freshcache/cache/policy.h"
#include "freshcache/cache/revalidate.h"
#include "freshcache/http/cc_fields.h"
#include "freshcache/http/http_parse.h"
#include "freshcache/http/http_status.h"
#include "freshcache/server/conn.h"
#include "freshcache/server/fetch.h"
#include "freshcache/server/upstream.h"
#include "freshcache/server/worker.h"

/* Request bodies: the requester is told to send more when what waits for
 * the origin falls to this. */
#define UPLOAD_LOW (256 * 1024)
/* Pass-through: stop reading from the origin while the reader has this
 * much not taken yet; go on once it is down to PASS_LOW. */
#define PASS_HIGH (1024 * 1024)
#define PASS_LOW (256 * 1024)
/* Origin response heads larger than this are refused (502). */
#define ORIGIN_HEAD_MAX (64 * 1024)
/* Ended fetches kept per worker for the next ones (their events, buffers
 * and message buffers: ~3 k instructions of allocation and freeing per
 * fetch otherwise, callgrind, docs/performance.md); a message grown past
 * FETCH_MSG_KEEP bytes gives its buffers back on the way in. */
#define FETCH_POOL_MAX 64
#define FETCH_MSG_KEEP 4096

enum fetch_state {
    FS_CONNECTING = 0,
    FS_WAIT_HEAD,           /* request sent (or being sent), no response head yet */
    FS_BODY,                /* reading the response body */
    FS_DONE,                /* ended: only the deferred free is left */
};

struct fetch {
#define FETCH_MAGIC 0xfe7c4000u
    unsigned magic;
    struct worker *w;
    LIST_ENTRY(fetch) link;         /* in w->fetches */
    enum fetch_kind kind;
    enum fetch_state state;
    unsigned refs;                  /* its own until it ends, its requester's until detached */
    struct event *reap;             /* deferred release of its own reference (fetch_end) */

    struct http_msg req;            /* the client's request, copied */
    struct cache_key *key;          /* NULL for a PASS */
    struct cache_obj *ph;           /* the placeholder (ref) */
    bool ph_busy;                   /* linked as BUSY in the store */
    bool filling;                   /* ph's body takes the response body */
    bool discard;                   /* the response body goes nowhere (a 304's) */
    struct cache_obj *stale;        /* being revalidated (ref) */

    struct upstream_conn *uc;
    bool reused;                    /* uc came from the pool */
    bool retried;
    bool uc_reusable;               /* give uc back to the pool when freed */
    struct evbuffer *head_out;      /* serialised request head, kept for a retry */
    struct evbuffer *body_out;      /* request body not yet handed to uc */

    struct http_msg resp;
    struct http_parser parser;
    bool interim;                   /* skipping a 1xx response */
    bool got_bytes;                 /* any byte of a response arrived */

    time_t response_time;
    uint64_t sent_ms;
    bool client_head;
    bool req_body;
    bool req_chunked;
    bool req_body_done;
    bool store_allowed;
    bool unsafe;                    /* method invalidates on success */
    bool background;                /* a stale-while-revalidate refresh */
    bool paused;                    /* origin reading stopped: the reader lags */
    uint64_t body_len;
    struct etag_hasher *hasher;     /* content-hash mode, storing */
    struct event *upload_drained;   /* the requester's, see fetch_params */
    fetch_interim_fn interim_cb;    /* the requester's, until fetch_detach */
    void *interim_arg;
    struct body_waiter drain;       /* private body: waiting for the reader */
    struct event *drain_ev;

    struct gen_stamp stamp;         /* generations in force when it began */
};

static void read_cb(void *arg);
static void reap_cb(evutil_socket_t fd, short what, void *arg);
static void drain_cb(evutil_socket_t fd, short what, void *arg);
static void retry_or_fail(struct fetch *f, int status, const char *why);
static void conn_event_cb(void *arg, enum conn_event ev);
static void upload_drained_cb(void *arg);

static const struct conn_cb fetch_conn_cb = {
    .on_read = read_cb,
    .on_drain = upload_drained_cb,
    .on_event = conn_event_cb,
};

static struct cache_store *store_of(struct fetch *f) { return f->w->srv->store; }

/* Free what a pooled fetch does not keep. */
static void fetch_destroy(struct fetch *f)
{
    evbuffer_free(f->head_out);
    evbuffer_free(f->body_out);
    http_msg_free(&f->req);
    http_msg_free(&f->resp);
    event_free(f->reap);
    event_free(f->drain_ev);
    f->magic = 0;
    free(f);
}

/* A message kept for the next fetch: emptied, its buffers kept unless
 * this one grew them large. */
static void msg_recycle(struct http_msg *m)
{
    if (m->cap > FETCH_MSG_KEEP || m->cap_fields * sizeof *m->fields > FETCH_MSG_KEEP) {
        http_msg_free(m);
        http_msg_init(m);
    } else {
        http_msg_reset(m);
    }
}

static void fetch_free(struct fetch *f)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    LIST_REMOVE(f, link);
    if (f->uc)
        upstream_release(f->uc, f->uc_reusable);
    if (f->filling && f->ph->private) {
        body_unwait_drain(f->ph->body, &f->drain);
        /* made active before it was unhooked: not for the next user */
        event_del(f->drain_ev);
    }
    obj_unref(f->ph);
    if (f->stale) {
        if (f->background)
            obj_revalidate_release(f->stale);
        obj_unref(f->stale);
    }
    etag_hasher_free(f->hasher);
    free(f->key);
    struct worker *w = f->w;
    /* Neither event is pending here: reap ran (its reference is gone),
     * the drain waiter is unhooked and its event deleted.  Freed at
     * shutdown, not pooled. */
    if (w->fetch_pool_n >= FETCH_POOL_MAX || atomic_load(&w->srv->stopping)) {
        fetch_destroy(f);
        return;
    }
    evbuffer_drain(f->head_out, evbuffer_get_length(f->head_out));
    evbuffer_drain(f->body_out, evbuffer_get_length(f->body_out));
    msg_recycle(&f->req);
    msg_recycle(&f->resp);
    LIST_INSERT_HEAD(&w->fetch_pool, f, link);
    w->fetch_pool_n++;
}

/* A fetch from the worker's pool, or a new one: zeroed but for what the
 * pool keeps (events aimed at this very struct, empty buffers, messages). */
static struct fetch *fetch_get(struct worker *w)
{
    struct fetch *f = LIST_FIRST(&w->fetch_pool);
    if (f) {
        CHECK_OBJ(f, FETCH_MAGIC);
        LIST_REMOVE(f, link);
        w->fetch_pool_n--;
        struct event *reap = f->reap, *drain_ev = f->drain_ev;
        struct evbuffer *head_out = f->head_out, *body_out = f->body_out;
        struct http_msg req = f->req, resp = f->resp;
        memset(f, 0, sizeof *f);
        f->reap = reap;
        f->drain_ev = drain_ev;
        f->head_out = head_out;
        f->body_out = body_out;
        f->req = req;
        f->resp = resp;
    } else {
        f = calloc(1, sizeof *f);
        AN(f);
        f->reap = event_new(w->base, -1, 0, reap_cb, f);
        f->drain_ev = event_new(w->base, -1, 0, drain_cb, f);
        AN(f->reap);
        AN(f->drain_ev);
        f->head_out = evbuffer_new();
        f->body_out = evbuffer_new();
        AN(f->head_out);
        AN(f->body_out);
        http_msg_init(&f->req);
        http_msg_init(&f->resp);
    }
    f->magic = FETCH_MAGIC;
    f->w = w;
    return f;
}

static void fetch_unref(struct fetch *f)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    FC_ASSERT(f->refs > 0);
    if (--f->refs == 0)
        fetch_free(f);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fetch *f = arg;
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    FC_ASSERT(f->state == FS_DONE);
    /* The connection is free for the next fetch now, not only when the
     * requester lets go of this one. */
    if (f->uc) {
        upstream_release(f->uc, f->uc_reusable);
        f->uc = NULL;
    }
    fetch_unref(f);
}

/* The fetch is over.  It is freed from an event of its own, never here:
 * this may run inside the origin connection's callbacks or inside llhttp's,
 * whose callers still hold the fetch and its parser.  From now on every
 * entry point returns at once; the origin connection hears nothing more.
 * A connection going back to the pool keeps its read event armed: the
 * pool watches the same event for the origin closing it, and stopping and
 * restarting it cost two epoll_ctl per revalidated request (strace,
 * docs/performance.md).  Whatever arrives before the reap stays in its
 * input (or marks it EOF) and keeps it out of the pool. */
static void fetch_end(struct fetch *f)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    FC_ASSERT(f->state != FS_DONE);
    f->state = FS_DONE;
    if (f->uc && !f->uc_reusable)
        conn_read_enable(f->uc->conn, false);
    event_active(f->reap, EV_WRITE, 0);
}

static void fail(struct fetch *f, int status, const char *why)
{
    COUNT(&f->w->counters, origin_errors, 1);
    log_debug("origin fetch failed: %s", why);
    struct cache_obj *ph = f->ph;
    if (f->filling) {
        /* A truncated body is never kept nor served as complete: readers
         * see FAILED and cut their responses short. */
        if (!ph->private)
            store_remove(store_of(f), ph);
        body_finish(ph->body, BODY_FAILED);
    } else if (!obj_ready(ph)) {
        /* No head yet: the requester answers `status` (or stale-if-error),
         * coalesced waiters fetch for themselves. */
        if (f->ph_busy)
            store_remove(store_of(f), ph);
        obj_fail(ph, status, why);
    }
    fetch_end(f);
}

/* ---- request ---------------------------------------------------------- */

/* A write to the origin failed at once (the origin reset or closed the
 * connection: EPIPE, ECONNRESET; a TLS 1.3 origin refusing our client
 * certificate after the handshake).  That leaves no event armed to report
 * it, so nothing else would end the fetch: the requester would wait for
 * an answer forever.  Retried where it can be (retry_or_fail: the head
 * alone, on a pooled connection); once body bytes went out the request
 * cannot be sent again.  The placeholder keeps the reason past the
 * connection, so it gets static text; the transport's own (TLS) goes to
 * the log. */
static void write_failed(struct fetch *f)
{
    const char *why = conn_error(f->uc->conn);
    if (why != NULL)
        log_warn("origin connection: %s", why);
    retry_or_fail(f, 502, "origin connection reset");
}

static void send_request(struct fetch *f)
{
    struct conn *c = f->uc->conn;
    size_t n = evbuffer_get_length(f->head_out);
    evbuffer_add(c->out, evbuffer_pullup(f->head_out, -1), n);
    if (evbuffer_get_length(f->body_out))
        evbuffer_add_buffer(c->out, f->body_out);
    if (f->req_body_done && f->req_chunked)
        evbuffer_add(c->out, "0\r\n\r\n", 5);
    f->state = FS_WAIT_HEAD;
    f->sent_ms = worker_now_ms(f->w);
    const struct fc_origin *o = &worker_cfg(f->w)->origin;
    conn_set_timeouts(c, o->read_timeout_ms, o->read_timeout_ms);
    conn_read_enable(c, true);
    /* Written at once: EPOLLOUT is armed only if the socket pushes back. */
    if (conn_flush(c) != 0)
        write_failed(f);
    /* A requester that paused its upload while we connected waits for
     * on_drain, which only a write event calls: if the socket took the
     * queued body at once, there will be none. */
    else if (evbuffer_get_length(c->out) <= c->write_low)
        upload_drained_cb(f);
}

size_t fetch_send_body(struct fetch *f, const char *data, size_t len)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    if (f->state == FS_DONE)
        return 0;
    bool direct = f->state != FS_CONNECTING && f->uc;
    struct evbuffer *dst = direct ? f->uc->conn->out : f->body_out;
    if (f->req_chunked)
        evbuffer_add_printf(dst, "%zx\r\n", len);
    evbuffer_add(dst, data, len);
    if (f->req_chunked)
        evbuffer_add(dst, "\r\n", 2);
    if (direct && conn_flush(f->uc->conn) != 0) {
        write_failed(f);
        return 0;
    }
    return evbuffer_get_length(dst);
}

/* The origin took request body bytes: let a paused requester send more. */
static void upload_drained_cb(void *arg)
{
    struct fetch *f = arg;
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    if (f->state != FS_DONE && f->upload_drained && f->req_body && !f->req_body_done)
        event_active(f->upload_drained, EV_WRITE, 0);
}

void fetch_end_body(struct fetch *f)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    if (f->state == FS_DONE)
        return;
    f->req_body_done = true;
    if (f->req_chunked && f->state != FS_CONNECTING && f->uc) {
        evbuffer_add(f->uc->conn->out, "0\r\n\r\n", 5);
        if (conn_flush(f->uc->conn) != 0)
            write_failed(f);
    }
}

/* ---- response head: one function per outcome -------------------------- */

/* The origin's reason phrase, or the standard one when it sent none. */
static void reason_of(const struct http_msg *m, char *out, size_t cap)
{
    size_t n = m->reason_len < cap - 1 ? m->reason_len : cap - 1;
    if (n == 0) {
        snprintf(out, cap, "%s", http_status_reason(m->status));
        return;
    }
    memcpy(out, m->buf + m->reason_off, n);
    out[n] = '\0';
}

/* RFC 9111 §4.4: a successful unsafe request invalidates the target URI and
 * the same-origin Location / Content-Location. */
static void invalidate_unsafe(struct fetch *f)
{
    struct cache_store *s = store_of(f);
    size_t hl = 0;
    const char *host = http_msg_get(&f->req, "Host", &hl);
    struct cache_key k;
    if (cache_key_build(&k, host ? host : "", hl, http_msg_url(&f->req), f->req.url_len) == 0)
        store_remove_key(s, &k);
    static const char *const fields[] = { "Location", "Content-Location" };
    for (size_t i = 0; i < FC_ARRAY_LEN(fields); i++) {
        size_t len;
        const char *v = http_msg_get(&f->resp, fields[i], &len);
        if (v == NULL || len == 0)
            continue;
        if (v[0] == '/') {
            if (cache_key_build(&k, host ? host : "", hl, v, len) == 0)
                store_remove_key(s, &k);
        } else if (cache_key_build(&k, "", 0, v, len) == 0 && host &&
                   k.host_len == hl && strncasecmp(k.buf, host, hl) == 0) {
            store_remove_key(s, &k);   /* absolute, same host only */
        }
    }
}

/* The policy a storable response falls under (its path, its type). */
static int response_policy(struct fetch *f)
{
    size_t plen, ctl = 0;
    const char *path = cache_key_path(f->key, &plen);
    const char *ct = http_msg_get(&f->resp, "Content-Type", &ctl);
    return policy_match(worker_cfg(f->w), path, plen, ct, ctl);
}

/* RFC 9111 §3 and our own limits: may the response be stored at all? */
static bool response_cacheable(struct fetch *f, const struct cache_control *resp_cc,
                               const struct resp_timing *t)
{
    if (!f->store_allowed || f->key == NULL)
        return false;
    const struct fc_config *cfg = worker_cfg(f->w);
    struct cache_control req_cc;
    cc_fields_parse(&f->req, &req_cc);
    struct storable_input in = {
        .status = f->resp.status,
        .method_is_get_or_head = true,
        .req_cc = &req_cc,
        .resp_cc = resp_cc,
        .req_has_authorization = http_msg_has(&f->req, "Authorization"),
        .resp_has_expires = t->has_expires,
    };
    if (!response_storable(&in))
        return false;
    /* set_cookie: pass (the default), like nginx and Varnish: a response
     * setting a cookie is someone's session unless the origin explicitly
     * marked it shareable.  store follows RFC 9111 alone; strip stores it
     * and never serves the cookie (obj_policy_rewrite). */
    if (http_msg_has(&f->resp, "Set-Cookie")) {
        int pi = response_policy(f);
        bool pass = pi < 0 || cfg->policies[pi].set_cookie == SET_COOKIE_PASS;
        if (pass && !(resp_cc->flags & CC_PUBLIC) && resp_cc->s_maxage == CC_UNSET)
            return false;
    }
    uint64_t cl = http_parser_content_length(&f->parser);
    if (cl != UINT64_MAX && cl > cfg->cache.max_object_size)
        return false;
    return true;
}

static uint64_t response_length(struct fetch *f)
{
    if (!http_parser_has_body(&f->parser))
        return 0;
    return http_parser_content_length(&f->parser);
}

/* Web cache deception refused: counted, and logged once per URL (a
 * small set of recent URLs shared by the workers bounds the memory; a URL
 * pushed out of it may be logged again). */
static void deception_refused(struct fetch *f, const struct fc_policy *pol, const char *ct,
                              size_t ctl)
{
    COUNT(&f->w->counters, deception_refused, 1);
    if (!warn_once_first(&f->w->srv->deception_warned, f->key->hash))
        return;
    size_t plen;
    const char *path = cache_key_path(f->key, &plen);
    char path_esc[512], ct_esc[128], ct_buf[96];
    char pbuf[256];
    snprintf(pbuf, sizeof pbuf, "%.*s", (int)(plen < 255 ? plen : 255), path);
    snprintf(ct_buf, sizeof ct_buf, "%.*s", (int)(ctl < 95 ? ctl : 95), ct ? ct : "");
    log_warn("not storing %s under policy %s: the path claims a type its Content-Type \"%s\" "
             "is not (web cache deception?); passed through uncached",
             log_escape(pbuf, path_esc, sizeof path_esc), pol->name,
             ct ? log_escape(ct_buf, ct_esc, sizeof ct_esc) : "(none)");
}

/* Which policy the response falls under (*pi, -1: none), and whether that
 * policy lets it be stored: the Content-Type agrees with the extension a
 * path-matched policy's path claims, and its status gets a lifetime the
 * policy keeps (negative_ttl 0 keeps no 404). */
static bool policy_allows(struct fetch *f, const struct cache_control *cc,
                          const struct resp_timing *t, bool authorized, int *pi)
{
    const struct fc_config *cfg = worker_cfg(f->w);
    size_t plen, ctl = 0;
    const char *path = cache_key_path(f->key, &plen);
    const char *ct = http_msg_get(&f->resp, "Content-Type", &ctl);
    *pi = policy_match(cfg, path, plen, ct, ctl);
    if (*pi < 0)
        return true;
    const struct fc_policy *pol = &cfg->policies[*pi];
    if (!policy_type_agrees(pol, path, plen, ct, ctl)) {
        deception_refused(f, pol, ct, ctl);
        return false;
    }
    return policy_lifetime(pol, f->resp.status, cc, t, authorized).store;
}

/* A 304 answering our revalidation: the stale copy's head, refreshed, in
 * a new stored object sharing its body. */
static void head_merge(struct fetch *f, const struct resp_timing *t, const struct cache_control *cc)
{
    const struct fc_config *cfg = worker_cfg(f->w);
    const struct http_msg *r = &f->resp;
    struct cache_obj *st = f->stale;
    struct head_rewrite rw;
    obj_policy_rewrite(cfg, st->policy, st->status, st->authorized, &rw);
    struct cache_obj *m = revalidate_merge(st, r, f->response_time, &rw);
    struct resp_timing mt = *t, old;
    obj_timing(st, &old);
    /* a 304 may omit what it does not change */
    if (!t->has_last_modified && old.has_last_modified) {
        mt.has_last_modified = true;
        mt.last_modified = old.last_modified;
    }
    if (!t->has_expires && old.has_expires) {
        mt.has_expires = true;
        mt.expires_valid = old.expires_valid;
        mt.expires = old.expires;
    }
    stored_timing_pack(&mt, &m->timing);
    /* The stored head shows clients the policy's Cache-Control, not the
     * origin's: take directives from the 304, else keep ours. */
    if (cc_response_has_fields(r))
        cc_pack(cc, &m->cc);
    else
        m->cc = st->cc;
    obj_apply_policy(m, cfg, st->policy, &f->stamp);
    store_insert(store_of(f), m, worker_now_ms(f->w));
    obj_fill(f->ph)->merged = m;              /* takes revalidate_merge's reference */
    f->ph->status = 304;
    obj_publish(f->ph);
    f->discard = true;
}

/* keep_after_deploy: the origin answered 404 or 410 for a URL of which
 * the store holds a copy within its keep window, of any generation (a
 * deploy removed the previous release's asset; a page loaded before it
 * still asks).  The copy stands in, like a 304's merge: the placeholder
 * points to it (obj_was_kept) and the origin's body is dropped.  Only when the
 * policy the copy falls under now still has the option: a reload that
 * removed it ends the fallback at once.  A kept copy also wins over
 * storing the 404 (negative caching), which would replace it. */
struct kept_match {
    const struct http_msg *req;
    time_t now;
};

static bool kept_for(const struct cache_obj *o, const void *arg)
{
    const struct kept_match *m = arg;
    return !o->private && obj_kept(o, m->now) && vary_match(o, m->req);
}

static bool head_keep(struct fetch *f)
{
    const struct fc_config *cfg = worker_cfg(f->w);
    int st = f->resp.status;
    if ((st != 404 && st != 410) || f->key == NULL || f->kind == FETCH_PASS)
        return false;
    time_t now = worker_now(f->w);
    struct kept_match km = { .req = &f->req, .now = now };
    struct cache_obj *k = store_find_key(store_of(f), f->key, kept_for, &km);
    if (k == NULL && f->stale && obj_kept(f->stale, now) && vary_match(f->stale, &f->req)) {
        k = f->stale;           /* unlinked meanwhile, still ours */
        obj_ref(k);
    }
    if (k == NULL)
        return false;
    size_t plen, ctl = 0, it = 0;
    const char *path = cache_key_path(f->key, &plen);
    const char *ct = NULL;
    obj_field_next(k, "Content-Type", &it, &ct, &ctl);
    int pi = policy_match(cfg, path, plen, ct, ctl);
    const struct fc_policy *pol = pi >= 0 ? &cfg->policies[pi] : NULL;
    if (pol == NULL || pol->keep_after_deploy_ms == 0 ||
        now - k->timing.response_time > (time_t)(pol->keep_after_deploy_ms / 1000)) {
        obj_unref(k);
        return false;
    }
    struct cache_obj *ph = f->ph;
    if (f->ph_busy)
        store_remove(store_of(f), ph);
    obj_fill(ph)->merged = k;   /* takes store_find_key's reference */
    obj_fill(ph)->kept = true;
    ph->status = st;
    obj_publish(ph);
    f->discard = true;
    return true;
}

/* A storable response under policy `pi`: the placeholder becomes the
 * stored object. */
static void head_store(struct fetch *f, const struct resp_timing *t, const struct cache_control *cc,
                       const char *reason, int pi, bool authorized)
{
    const struct fc_config *cfg = worker_cfg(f->w);
    const struct http_msg *r = &f->resp;
    struct cache_obj *o = f->ph;
    struct head_rewrite rw;
    obj_policy_rewrite(cfg, pi, r->status, authorized, &rw);
    obj_set_head(o, r, reason, f->response_time, &rw);
    obj_set_cc_timing(o, cc, t);
    o->authorized = authorized;
    obj_apply_policy(o, cfg, pi, &f->stamp);
    if (cfg->cache.etag == ETAG_CONTENT_HASH)
        f->hasher = etag_hasher_new();
    body_start(o->body, response_length(f));
    f->filling = true;
    if (f->ph_busy)
        store_publish(store_of(f), o, worker_now_ms(f->w));
    else
        store_insert(store_of(f), o, worker_now_ms(f->w));
}

/* Not storable: the placeholder carries the response to its one reader. */
static void head_pass(struct fetch *f, const struct resp_timing *t, const struct cache_control *cc,
                      const char *reason)
{
    struct cache_obj *o = f->ph;
    if (f->ph_busy)
        store_remove(store_of(f), o);   /* coalesced waiters fetch for themselves */
    if (f->kind == FETCH_REVALIDATE && f->stale && f->resp.status < 500)
        store_remove(store_of(f), f->stale);
    struct head_rewrite rw = { .passthrough = true };
    obj_set_head(o, &f->resp, reason, f->response_time, &rw);
    obj_set_cc_timing(o, cc, t);
    o->private = true;
    body_set_transient(o->body);
    body_start(o->body, response_length(f));
    f->filling = true;
    obj_publish(o);
}

static void handle_head(struct fetch *f)
{
    struct http_msg *r = &f->resp;
    f->response_time = worker_now(f->w);
    f->state = FS_BODY;
    uint64_t origin_ms = worker_now_ms(f->w) - f->sent_ms;
    counters_origin_latency(&f->w->counters, origin_ms);
    obj_fill(f->ph)->origin_ms = (int32_t)(origin_ms > INT32_MAX ? INT32_MAX : origin_ms);
    if (f->unsafe && r->status >= 200 && r->status < 400)
        invalidate_unsafe(f);

    struct resp_timing t;
    time_t request_time = f->response_time - (time_t)(origin_ms / 1000);
    resp_timing_parse(r, request_time, f->response_time, &t);
    struct cache_control cc;
    cc_response_parse(r, &cc);
    char reason[128];
    reason_of(r, reason, sizeof reason);

    if (f->kind == FETCH_REVALIDATE && r->status == 304 && f->stale) {
        head_merge(f, &t, &cc);
        return;
    }
    if (head_keep(f))
        return;
    /* A server error answering the revalidation of a copy that may stand
     * in for one (stale-if-error, RFC 5861 §4) does not replace it, even
     * when it is storable (a 503 with max-age): the requester serves the
     * copy where it may (stale_usable_on_error), and the next request
     * asks the origin again, as nginx's proxy_cache_use_stale does. */
    if (f->kind == FETCH_REVALIDATE && f->stale && r->status >= 500 &&
        f->stale->stale_if_error > 0) {
        head_pass(f, &t, &cc, reason);
        return;
    }
    bool authorized = http_msg_has(&f->req, "Authorization");
    int pi;
    if (response_cacheable(f, &cc, &t) && policy_allows(f, &cc, &t, authorized, &pi)) {
        if (vary_build(f->ph, r, &f->req)) {
            head_store(f, &t, &cc, reason, pi, authorized);
            return;
        }
        /* Vary: * — never served from cache, so not stored. */
    }
    head_pass(f, &t, &cc, reason);
}

/* ---- response body ---------------------------------------------------- */

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fetch *f = arg;
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    if (f->state == FS_DONE || !f->paused)
        return;
    f->paused = false;
    conn_read_enable(f->uc->conn, true);
    /* bytes may already be buffered: parse them now */
    if (evbuffer_get_length(f->uc->conn->in) > 0)
        read_cb(f);
}

/* Private bodies: nobody will ever read what the fetch appends once the
 * placeholder's only other reference is gone. */
static bool unread_forever(const struct cache_obj *o)
{
    return o->private && atomic_load_explicit(&o->refcnt, memory_order_acquire) == 1;
}

static void on_resp_body(void *owner, const char *data, size_t len)
{
    struct fetch *f = owner;
    if (f->state == FS_DONE || f->interim || f->discard || !f->filling)
        return;
    struct cache_obj *o = f->ph;
    f->body_len += len;
    if (o->private) {
        if (unread_forever(o)) {
            fail(f, 502, "nobody reads the response");
            return;
        }
        body_append(o->body, data, len);
        if (!f->paused && body_unread(o->body) > PASS_HIGH &&
            body_wait_drain(o->body, &f->drain, PASS_LOW)) {
            /* The reader is slower than the origin: stop reading from the
             * origin rather than hold the whole response in memory. */
            f->paused = true;
            conn_read_enable(f->uc->conn, false);
        }
        return;
    }
    if (f->hasher)
        etag_hasher_update(f->hasher, data, len);
    size_t grown = body_append(o->body, data, len);
    store_charge(store_of(f), o, grown);
    if (o->body->expected == UINT64_MAX &&
        f->body_len > worker_cfg(f->w)->cache.max_object_size && o->linked) {
        /* Unknown length grew past max_object_size: stop keeping it;
         * readers already attached still get every byte. */
        store_remove(store_of(f), o);
    }
}

static void handle_done(struct fetch *f)
{
    struct cache_obj *o = f->ph;
    if (f->filling && f->hasher && obj_content_etag_applies(o)) {
        etag_hasher_final(f->hasher, obj_chash(o));
        bool changed = false;
        o->chash_first_seen = obj_time32(etag_history_note(
            f->w->srv->etag_hist, o->hash ^ cache_key_hash(obj_vary(o) ? obj_vary(o) : "", o->vary_len),
            obj_chash(o), f->response_time, &changed));
        o->has_chash = true;    /* published by body_finish's release store */
        const struct fc_config *cfg = worker_cfg(f->w);
        if (changed && o->policy >= 0 && (size_t)o->policy < cfg->n_policies &&
            policy_is_hashed_assets(&cfg->policies[o->policy]))
            log_warn("asset %s changed content under the same name (policy %s): "
                     "content-hashed names must change when content does",
                     o->key, cfg->policies[o->policy].name);
    }
    if (f->filling) {
        body_finish(o->body, BODY_COMPLETE);
        /* A small stored object moves into one allocation (obj_seal). */
        if (!o->private)
            store_seal(store_of(f), o);
    }
    f->uc->requests++;
    f->uc_reusable = http_parser_keep_alive(&f->parser) && f->req_body_done;
    fetch_end(f);
}

static void retry_or_fail(struct fetch *f, int status, const char *why);

/* The interim head just parsed, to the requester only: coalesced waiters
 * and background refreshes have nobody to show it to. */
static void forward_interim(struct fetch *f)
{
    if (f->interim_cb == NULL)
        return;
    const struct http_msg *r = &f->resp;
    struct evbuffer *lines = evbuffer_new();
    AN(lines);
    for (uint32_t i = 0; i < r->n_fields; i++) {
        const struct http_field *fl = &r->fields[i];
        if (fl->dead || http_is_hop_by_hop(r, fl))
            continue;
        evbuffer_add(lines, http_field_name(r, fl), fl->name_len);
        evbuffer_add(lines, ": ", 2);
        evbuffer_add(lines, http_field_value(r, fl), fl->value_len);
        evbuffer_add(lines, "\r\n", 2);
    }
    size_t len = evbuffer_get_length(lines);
    const char *text = len ? (const char *)evbuffer_pullup(lines, -1) : "";
    f->interim_cb(f->interim_arg, r->status, text, len);
    evbuffer_free(lines);
}

static void read_cb(void *arg)
{
    struct fetch *f = arg;
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    if (f->state == FS_DONE)
        return;
    struct evbuffer *in = f->uc->conn->in;
    if (evbuffer_get_length(in) > 0)
        f->got_bytes = true;
    for (;;) {
        enum http_parse_event ev = http_parser_feed(&f->parser, in);
        /* A callback inside the parse may have ended the fetch: nothing
         * more to do with these bytes. */
        if (f->state == FS_DONE)
            return;
        switch (ev) {
        case HTTP_PARSE_NEED_MORE:
            return;
        case HTTP_PARSE_HEAD:
            if (f->resp.status == 101) {
                /* We never asked to switch protocols (Upgrade is not
                 * forwarded): whatever follows is not a response. */
                fail(f, 502, "origin switched protocols");
                return;
            }
            if (f->resp.status >= 100 && f->resp.status < 200) {
                /* 100 Continue, 102 Processing, 103 Early Hints: handed to
                 * the requester (RFC 9110 §15.2), never stored; the final
                 * response follows on the same connection. */
                f->interim = true;
                forward_interim(f);
                if (f->state == FS_DONE)
                    return;     /* the requester went away meanwhile */
                continue;
            }
            handle_head(f);
            if (f->state == FS_DONE || f->paused)
                return;
            continue;
        case HTTP_PARSE_DONE:
            if (f->interim) {
                f->interim = false;
                http_parser_next(&f->parser);
                continue;
            }
            handle_done(f);
            return;
        case HTTP_PARSE_ERROR:
        case HTTP_PARSE_TOO_LARGE:
            fail(f, 502, http_parser_error(&f->parser));
            return;
        }
    }
}

static void conn_event_cb(void *arg, enum conn_event ev)
{
    struct fetch *f = arg;
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    if (f->state == FS_DONE)
        return;
    switch (ev) {
    case CONN_CONNECTED:
        f->uc->connected = true;
        send_request(f);
        return;
    case CONN_READ_TIMEOUT:
    case CONN_WRITE_TIMEOUT:
        fail(f, 504, f->state == FS_CONNECTING ? "origin connect timeout" : "origin read timeout");
        return;
    case CONN_EOF:
        if (f->state == FS_BODY) {
            /* parse what is left, then a close-delimited body ends here */
            read_cb(f);
            if (f->state == FS_DONE)
                return;
            if (http_parser_eof(&f->parser) == HTTP_PARSE_DONE) {
                f->req_body_done = false;   /* never reuse a closed connection */
                handle_done(f);
                return;
            }
        }
        retry_or_fail(f, 502, f->state == FS_BODY ? "origin closed mid-body"
                                                  : "origin closed the connection");
        return;
    case CONN_ERROR: {
        const char *why = conn_error(f->uc->conn);
        if (why && f->state == FS_CONNECTING) {
            /* A TLS failure says why: verification, protocol, ...  Never
             * silently insecure, never silent. */
            log_warn("origin TLS: %s", why);
            fail(f, 502, "origin TLS handshake failed");
            return;
        }
        retry_or_fail(f, 502, f->state == FS_CONNECTING ? "cannot connect to origin"
                                                        : "origin connection error");
        return;
    }
    }
}

/* ---- connecting ------------------------------------------------------- */

static int connect_origin(struct fetch *f)
{
    bool reused = false;
    f->uc = upstream_acquire(f->w, &fetch_conn_cb, f, &reused);
    if (f->uc == NULL)
        return -1;
    f->reused = reused;
    f->got_bytes = false;
    http_parser_init(&f->parser, HTTP_RESPONSE, &f->resp, ORIGIN_HEAD_MAX, on_resp_body, f);
    f->parser.no_body = f->client_head && f->kind == FETCH_PASS;
    f->uc->conn->write_low = f->req_body ? UPLOAD_LOW : 0;
    COUNT(&f->w->counters, origin_requests, 1);
    if (reused)
        send_request(f);
    else
        f->state = FS_CONNECTING;
    return 0;
}

/* A pooled connection may have been closed by the origin just as we sent on
 * it: retry once on a fresh one if nothing of a response came back and the
 * request can be sent again. */
static void retry_or_fail(struct fetch *f, int status, const char *why)
{
    if (f->reused && !f->retried && !f->got_bytes && f->state == FS_WAIT_HEAD && !f->req_body) {
        f->retried = true;
        upstream_release(f->uc, false);
        f->uc = NULL;
        if (connect_origin(f) == 0)
            return;
    }
    fail(f, status, why);
}

struct fetch *fetch_start(struct worker *w, const struct fetch_params *p)
{
    CHECK_OBJ_NOTNULL(p->ph, OBJ_MAGIC);
    struct fetch *f = fetch_get(w);
    f->refs = 2;                    /* its own, and the caller's */
    f->drain.ev = f->drain_ev;
    LIST_INSERT_HEAD(&w->fetches, f, link);
    f->kind = p->kind;
    http_msg_copy(&f->req, p->req);
    if (p->key)
        f->key = cache_key_dup(p->key);
    obj_ref(p->ph);
    f->ph = p->ph;
    f->ph_busy = p->ph_busy;
    if (p->stale) {
        obj_ref(p->stale);
        f->stale = p->stale;
    }
    f->client_head = p->client_head;
    f->req_body = p->req_body;
    f->req_chunked = p->req_body && p->req_content_length == UINT64_MAX;
    f->req_body_done = !p->req_body;
    f->store_allowed = p->store_allowed;
    f->background = p->background;
    f->upload_drained = p->upload_drained;
    f->interim_cb = p->interim;
    f->interim_arg = p->interim_arg;
    const struct http_msg *r = p->req;
    f->unsafe = !(r->method == HTTP_GET || r->method == HTTP_HEAD || r->method == HTTP_OPTIONS ||
                  r->method == HTTP_TRACE);
    const struct fc_config *cfg = worker_cfg(w);
    gen_stamp_take(&f->stamp, w->srv->gens, cfg->n_policies);
    fetch_request_build(f->head_out, cfg, p, &f->req);
    if (connect_origin(f) != 0) {
        if (f->ph_busy)
            store_remove(store_of(f), f->ph);
        obj_fail(f->ph, 502, "cannot connect to origin");
        fetch_free(f);
        return NULL;
    }
    return f;
}

void fetch_free_all(struct worker *w)
{
    /* Every requester is gone by now (their connections were freed
     * first): only the fetches' own references are left. */
    struct fetch *f;
    while ((f = LIST_FIRST(&w->fetches)) != NULL) {
        FC_ASSERT(f->refs == 1);
        if (f->state != FS_DONE)
            fail(f, 502, "shutting down");
        fetch_free(f);
    }
    fetch_shed_pool(w);
}

void fetch_shed_pool(struct worker *w)
{
    struct fetch *f;
    while ((f = LIST_FIRST(&w->fetch_pool)) != NULL) {
        LIST_REMOVE(f, link);
        w->fetch_pool_n--;
        fetch_destroy(f);
    }
}

void fetch_detach(struct fetch *f)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    f->upload_drained = NULL;
    f->interim_cb = NULL;
    f->interim_arg = NULL;
    /* Passing: nobody else wants the bytes.  Storing (or about to decide):
     * finish, others may be waiting and the cache gains the object. */
    if (f->state != FS_DONE &&
        ((f->filling && f->ph->private) || f->kind == FETCH_PASS || !f->req_body_done))
        fail(f, 502, "client gone");
    fetch_unref(f);
}
