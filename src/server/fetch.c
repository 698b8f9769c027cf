/*
 * fetch.c — origin exchange and cache fill.  See include/freshcache/fetch.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/etag.h"
#include "freshcache/cache/generation.h"
#include "freshcache/server/fetch.h"
#include "freshcache/http/http_date.h"
#include "freshcache/http/http_parse.h"
#include "freshcache/base/log.h"
#include "freshcache/cache/policy.h"
#include "freshcache/server/proxy.h"
#include "freshcache/cache/revalidate.h"
#include "freshcache/server/server.h"
#include "freshcache/server/upstream.h"

/* Bodies up to this size are complete before the client is answered, so
 * its first answer carries the content-hash ETag (see handle_head). */
#define DEFER_FOR_ETAG_MAX (64 * 1024)
/* Request bodies: the client is resumed when what waits for the origin
 * falls to this (proxy.c pauses it above UPLOAD_HIGH). */
#define UPLOAD_LOW (256 * 1024)

#define SURROGATE_CAPABILITY "Surrogate-Capability: freshcache=\"Surrogate/1.0\"\r\n"

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
    struct client *client;          /* NULL once detached */
    enum fetch_kind kind;
    enum fetch_state state;

    struct http_msg req;            /* the client's request, copied */
    struct cache_key key;
    bool has_key;
    struct cache_obj *busy;         /* our coalescing placeholder (ref) */
    struct cache_obj *stale;        /* being revalidated (ref) */
    struct cache_obj *obj;          /* being filled (ref) */

    struct event *reap;             /* deferred free (fetch_end) */

    struct upstream_conn *uc;
    bool reused;                    /* uc came from the pool */
    bool uc_reusable;               /* give uc back to the pool when freed */
    bool retried;
    struct evbuffer *head_out;      /* serialised request head, kept for a retry */
    struct evbuffer *body_out;      /* request body not yet handed to uc */

    struct http_msg resp;
    struct http_parser parser;
    bool interim;                   /* skipping a 1xx response */
    bool got_bytes;                 /* any byte of a response arrived */

    time_t request_time;
    time_t response_time;
    uint64_t sent_ms;
    bool client_head;
    bool req_body;
    bool req_chunked;
    bool req_body_done;
    bool store_allowed;
    bool passing;
    bool unsafe;                    /* method invalidates on success */
    bool paused;
    uint64_t body_len;
    const char *fwd;
    bool background;                /* a stale-while-revalidate refresh */
    bool discard;                   /* reading a response nobody will get */
    struct etag_hasher *hasher;     /* content-hash mode, storing */
    bool defer_client;              /* answer the client when the hash is known */

    /* Generations in force when the fetch began: what it stores is stamped
     * with these, so a bump during the fetch is never undone by it. */
    uint64_t gen_global;
    uint64_t gen_layout;
    uint64_t gen_policy[GEN_MAX_POLICIES];
};

static void fetch_free(struct fetch *f)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    LIST_REMOVE(f, link);
    if (f->uc)
        upstream_release(f->uc, f->uc_reusable);
    event_free(f->reap);
    if (f->busy)
        obj_unref(f->busy);
    if (f->stale) {
        if (f->background)
            atomic_store(&f->stale->revalidating, false);
        obj_unref(f->stale);
    }
    if (f->obj)
        obj_unref(f->obj);
    etag_hasher_free(f->hasher);
    evbuffer_free(f->head_out);
    evbuffer_free(f->body_out);
    http_msg_free(&f->req);
    http_msg_free(&f->resp);
    f->magic = 0;
    free(f);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fetch *f = arg;
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    FC_ASSERT(f->state == FS_DONE);
    fetch_free(f);
}

/* The fetch is over.  It is freed from an event of its own, never here:
 * this may run inside the origin connection's callbacks or inside llhttp's
 * (a client that leaves while its response body is parsed), whose callers
 * still hold the fetch and its parser.  From now on every entry point
 * returns at once; the origin connection hears nothing more. */
static void fetch_end(struct fetch *f)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    FC_ASSERT(f->state != FS_DONE);
    f->state = FS_DONE;
    f->client = NULL;
    if (f->uc)
        bufferevent_disable(f->uc->bev, EV_READ | EV_WRITE);
    event_active(f->reap, EV_WRITE, 0);
}

static struct cache_store *store_of(struct fetch *f) { return f->w->srv->store; }

/* Give up on a placeholder: waiters will fetch for themselves. */
static void abandon_busy(struct fetch *f)
{
    if (f->busy == NULL)
        return;
    store_remove(store_of(f), f->busy);
    body_finish(f->busy->body, BODY_ABANDONED);
    obj_unref(f->busy);
    f->busy = NULL;
}

/* RFC 5861 stale-if-error (or the policy's): may the stale object stand in
 * for an origin that failed? */
static bool stale_usable_on_error(struct fetch *f)
{
    const struct cache_obj *o = f->stale;
    if (o == NULL || f->kind != FETCH_REVALIDATE || o->stale_if_error <= 0)
        return false;
    /* must-revalidate, proxy-revalidate and s-maxage forbid serving stale
     * without validation (RFC 9111 §5.2.2.2, .8, .10), whoever asked for
     * stale-if-error.  no-cache yields to a policy's: its ttl already
     * overrides the origin's freshness (the spec's HTML policy is
     * exactly that); the origin's own stale-if-error yields to it. */
    if ((o->cc.flags & (CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE)) || o->cc.s_maxage != CC_UNSET)
        return false;
    if (!o->sie_from_policy && (o->cc.flags & CC_NO_CACHE))
        return false;
    if (!obj_current(o, f->w->srv->gens))
        return false;
    int64_t staleness = current_age(&o->timing, worker_now(f->w)) - o->lifetime;
    return staleness <= o->stale_if_error;
}

static void fail(struct fetch *f, int status, const char *why)
{
    COUNT(f->w, origin_errors, 1);
    log_debug("origin fetch failed: %s", why);
    abandon_busy(f);
    if (f->client && !f->obj && !f->passing && stale_usable_on_error(f)) {
        struct client *c = f->client;
        f->client = NULL;
        char cs[96];
        snprintf(cs, sizeof cs, "fwd=%s; detail=stale-if-error", f->fwd);
        COUNT(f->w, stale, 1);
        client_on_fetch_obj(c, f->stale, cs);
    }
    if (f->obj) {
        /* A truncated body is never kept nor served as complete: readers
         * see FAILED and close their connections. */
        store_remove(store_of(f), f->obj);
        body_finish(f->obj->body, BODY_FAILED);
    }
    if (f->client) {
        struct client *c = f->client;
        f->client = NULL;
        client_on_fetch_error(c, status, why);
    }
    fetch_end(f);
}

/* ---- request ---------------------------------------------------------- */

/* Fields the cache answers itself on a cacheable fetch: the origin must
 * send the full response so it can be stored. */
static bool cache_owned_request_field(const char *n, size_t len)
{
    return http_token_eq(n, len, "If-None-Match") || http_token_eq(n, len, "If-Modified-Since") ||
           http_token_eq(n, len, "If-Match") || http_token_eq(n, len, "If-Unmodified-Since") ||
           http_token_eq(n, len, "If-Range") || http_token_eq(n, len, "Range");
}

static void build_request(struct fetch *f, const struct fetch_params *p)
{
    const struct http_msg *r = &f->req;
    const struct fc_config *cfg = f->w->srv->cfg;
    struct evbuffer *b = f->head_out;
    const char *method = llhttp_method_name((llhttp_method_t)r->method);
    if (f->kind != FETCH_PASS && r->method == HTTP_HEAD)
        method = "GET";   /* fetch the body too, so the object can be stored */
    size_t plen;
    const char *path = cache_key_path(&f->key, &plen);
    if (!f->has_key) {
        path = http_msg_url(r);
        plen = r->url_len;
    }
    evbuffer_add_printf(b, "%s %.*s HTTP/1.1\r\n", method, (int)plen, path);

    size_t hl = 0;
    const char *host = http_msg_get(r, "Host", &hl);
    if (cfg->origin.host_header == HOST_HEADER_ORIGIN || host == NULL)
        evbuffer_add_printf(b, "Host: %s\r\n", cfg->origin.authority);
    else
        evbuffer_add_printf(b, "Host: %.*s\r\n", (int)hl, host);

    const char *via = NULL, *xff = NULL;
    size_t via_len = 0, xff_len = 0;
    for (uint32_t i = 0; i < r->n_fields; i++) {
        const struct http_field *fl = &r->fields[i];
        if (fl->dead || http_is_hop_by_hop(r, fl))
            continue;
        const char *n = http_field_name(r, fl);
        size_t nl = fl->name_len;
        if (http_token_eq(n, nl, "Host") || http_token_eq(n, nl, "Expect") ||
            http_token_eq(n, nl, "X-Forwarded-Proto") || http_token_eq(n, nl, "Content-Length"))
            continue;
        if (http_token_eq(n, nl, "Via")) {
            via = http_field_value(r, fl);
            via_len = fl->value_len;
            continue;
        }
        if (http_token_eq(n, nl, "X-Forwarded-For")) {
            xff = http_field_value(r, fl);
            xff_len = fl->value_len;
            continue;
        }
        if (f->kind != FETCH_PASS && cache_owned_request_field(n, nl))
            continue;
        evbuffer_add(b, n, nl);
        evbuffer_add(b, ": ", sizeof(": ") - 1);
        evbuffer_add(b, http_field_value(r, fl), fl->value_len);
        evbuffer_add(b, "\r\n", sizeof("\r\n") - 1);
    }
    if (via)
        evbuffer_add_printf(b, "Via: %.*s, 1.1 freshcache\r\n", (int)via_len, via);
    else
        evbuffer_add(b, "Via: 1.1 freshcache\r\n", sizeof("Via: 1.1 freshcache\r\n") - 1);
    if (xff)
        evbuffer_add_printf(b, "X-Forwarded-For: %.*s, %s\r\n", (int)xff_len, xff, p->client_addr);
    else
        evbuffer_add_printf(b, "X-Forwarded-For: %s\r\n", p->client_addr);
    evbuffer_add(b, "X-Forwarded-Proto: http\r\n", sizeof("X-Forwarded-Proto: http\r\n") - 1);
    /* Edge Architecture 1.0: lets the origin aim Surrogate-Control
     * directives at us with ";freshcache" (parse_surrogate). */
    evbuffer_add(b, SURROGATE_CAPABILITY, sizeof(SURROGATE_CAPABILITY) - 1);
    if (f->kind == FETCH_REVALIDATE && f->stale)
        revalidate_add_validators(b, f->stale);
    if (f->req_body) {
        if (f->req_chunked)
            evbuffer_add(b, "Transfer-Encoding: chunked\r\n", sizeof("Transfer-Encoding: chunked\r\n") - 1);
        else
            evbuffer_add_printf(b, "Content-Length: %llu\r\n",
                                (unsigned long long)p->req_content_length);
    }
    evbuffer_add(b, "\r\n", sizeof("\r\n") - 1);
}

static void send_request(struct fetch *f)
{
    struct bufferevent *bev = f->uc->bev;
    struct evbuffer *out = bufferevent_get_output(bev);
    /* A request without a body is written at once (as proxy.c does for
     * responses): EPOLLOUT is armed only if the socket pushes back, not
     * armed and disarmed around every request.  Bodies keep EV_WRITE on:
     * their write callback paces the client (UPLOAD_LOW). */
    bool optimistic = !f->req_body;
    if (optimistic)
        bufferevent_disable(bev, EV_WRITE);
    size_t n = evbuffer_get_length(f->head_out);
    evbuffer_add(out, evbuffer_pullup(f->head_out, -1), n);
    if (evbuffer_get_length(f->body_out))
        evbuffer_add_buffer(out, f->body_out);
    if (f->req_body_done && f->req_chunked)
        evbuffer_add(out, "0\r\n\r\n", sizeof("0\r\n\r\n") - 1);
    f->state = FS_WAIT_HEAD;
    f->request_time = worker_now(f->w);
    f->sent_ms = worker_now_ms(f->w);
    const struct fc_origin *o = &f->w->srv->cfg->origin;
    struct timeval rt = { (time_t)(o->read_timeout_ms / 1000),
                          (suseconds_t)(o->read_timeout_ms % 1000) * 1000 };
    bufferevent_set_timeouts(bev, &rt, &rt);
    if (optimistic) {
        evbuffer_unfreeze(out, 1);
        evbuffer_write(out, bufferevent_getfd(bev));
        evbuffer_freeze(out, 1);
        /* an error shows as EOF or an error event on the read side */
        bufferevent_enable(bev, evbuffer_get_length(out) ? EV_READ | EV_WRITE : EV_READ);
    } else {
        bufferevent_enable(bev, EV_READ | EV_WRITE);
    }
}

size_t fetch_send_body(struct fetch *f, const char *data, size_t len)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    if (f->state == FS_DONE)
        return 0;
    struct evbuffer *dst = (f->state != FS_CONNECTING && f->uc)
                               ? bufferevent_get_output(f->uc->bev) : f->body_out;
    if (f->req_chunked)
        evbuffer_add_printf(dst, "%zx\r\n", len);
    evbuffer_add(dst, data, len);
    if (f->req_chunked)
        evbuffer_add(dst, "\r\n", sizeof("\r\n") - 1);
    return evbuffer_get_length(dst);
}

/* The origin took request body bytes: let a paused client send more. */
static void write_cb(struct bufferevent *bev, void *arg)
{
    struct fetch *f = arg;
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    if (f->state == FS_DONE)
        return;
    if (f->client && f->req_body && !f->req_body_done &&
        evbuffer_get_length(bufferevent_get_output(bev)) <= UPLOAD_LOW)
        client_on_fetch_upload_drained(f->client);
}

void fetch_end_body(struct fetch *f)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    if (f->state == FS_DONE)
        return;
    f->req_body_done = true;
    if (f->req_chunked && f->state != FS_CONNECTING && f->uc)
        evbuffer_add(bufferevent_get_output(f->uc->bev), "0\r\n\r\n", sizeof("0\r\n\r\n") - 1);
}

/* ---- response --------------------------------------------------------- */

static void fill_timing(struct fetch *f, struct resp_timing *t)
{
    const struct http_msg *r = &f->resp;
    size_t len;
    const char *v;
    memset(t, 0, sizeof *t);
    t->response_time = f->response_time;
    /* response_delay from the millisecond clock, floored: whole-second
     * stamps would add a second to Age whenever a fast exchange straddles
     * a second boundary. */
    t->request_time = f->response_time - (time_t)((worker_now_ms(f->w) - f->sent_ms) / 1000);
    if ((v = http_msg_get(r, "Date", &len)) != NULL)
        t->has_date = http_date_parse(v, len, &t->date);
    if (!t->has_date) {
        /* we add a Date of our own (RFC 9110 §6.6.1): it is the date */
        t->has_date = true;
        t->date = t->response_time;
    }
    /* Age: one line of digits.  A list written without spaces ("0,7200")
     * counts by its first member, as the conformance suite expects; any
     * other shape (two lines, "0, 0", a sign, a fraction, parameters)
     * cannot be trusted to be small, so the response counts as stale. */
    unsigned age_lines = 0;
    uint32_t it = 0;
    const struct http_field *af;
    while ((af = http_msg_next(r, "Age", &it)) != NULL)
        age_lines++;
    if ((v = http_msg_get(r, "Age", &len)) != NULL) {
        int64_t a = 0;
        size_t i = 0;
        for (; i < len && v[i] >= '0' && v[i] <= '9'; i++)
            a = a >= CC_DELTA_MAX / 10 ? CC_DELTA_MAX : a * 10 + (v[i] - '0');
        bool ok = age_lines == 1 && i > 0 &&
                  (i == len || (v[i] == ',' && i + 1 < len && v[i + 1] >= '0' && v[i + 1] <= '9'));
        t->age_value = ok ? a : CC_DELTA_MAX;
    }
    if ((v = http_msg_get(r, "Expires", &len)) != NULL) {
        t->has_expires = true;
        t->expires_valid = http_date_parse(v, len, &t->expires);
    }
    if ((v = http_msg_get(r, "Last-Modified", &len)) != NULL)
        t->has_last_modified = http_date_parse(v, len, &t->last_modified);
}

static void parse_cc(const struct http_msg *m, struct cache_control *cc)
{
    cc_init(cc);
    uint32_t it = 0;
    const struct http_field *fl;
    while ((fl = http_msg_next(m, "Cache-Control", &it)) != NULL)
        cc_parse(cc, http_field_value(m, fl), fl->value_len);
}

/* Surrogate-Control (Edge Architecture 1.0): directives may name a target
 * after ';'; those for another cache are skipped. */
static void parse_surrogate(const struct http_msg *m, struct cache_control *cc)
{
    uint32_t it = 0;
    const struct http_field *fl;
    while ((fl = http_msg_next(m, "Surrogate-Control", &it)) != NULL) {
        const char *s = http_field_value(m, fl), *end = s + fl->value_len, *e;
        size_t el;
        while (http_list_next(&s, end, &e, &el)) {
            const char *semi = memchr(e, ';', el);
            if (semi) {
                const char *t = semi + 1;
                size_t tl = (size_t)(e + el - t);
                while (tl && (*t == ' ' || *t == '\t')) {
                    t++;
                    tl--;
                }
                if (!http_token_eq(t, tl, "freshcache"))
                    continue;
                el = (size_t)(semi - e);
            }
            cc_parse(cc, e, el);
        }
    }
}

/* The directives this cache obeys (RFC 9213): our own targeted field,
 * else CDN-Cache-Control, else Surrogate-Control, else Cache-Control.
 * None of the targeted ones reaches clients (obj_field_internal). */
static void parse_response_cc(const struct http_msg *m, struct cache_control *cc)
{
    static const char *const targeted[] = { "Freshcache-Cache-Control", "CDN-Cache-Control" };
    for (size_t i = 0; i < FC_ARRAY_LEN(targeted); i++) {
        if (http_msg_has(m, targeted[i])) {
            cc_init(cc);
            uint32_t it = 0;
            const struct http_field *fl;
            while ((fl = http_msg_next(m, targeted[i], &it)) != NULL)
                cc_parse(cc, http_field_value(m, fl), fl->value_len);
            return;
        }
    }
    if (http_msg_has(m, "Surrogate-Control")) {
        cc_init(cc);
        parse_surrogate(m, cc);
        return;
    }
    parse_cc(m, cc);
}

static bool has_cc_fields(const struct http_msg *m)
{
    return http_msg_has(m, "Cache-Control") || http_msg_has(m, "Freshcache-Cache-Control") ||
           http_msg_has(m, "CDN-Cache-Control") || http_msg_has(m, "Surrogate-Control");
}

static void reason_of(const struct http_msg *m, char *out, size_t cap)
{
    size_t n = m->reason_len < cap - 1 ? m->reason_len : cap - 1;
    if (n == 0) {
        const char *s = llhttp_status_name((llhttp_status_t)m->status);
        snprintf(out, cap, "%s", s ? s : "Unknown");
        /* llhttp names are like "NOT_FOUND": make them read as reasons */
        for (char *p = out; *p; p++)
            if (*p == '_')
                *p = ' ';
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

static bool response_cacheable(struct fetch *f, const struct cache_control *resp_cc,
                               const struct resp_timing *t)
{
    if (!f->store_allowed || !f->has_key)
        return false;
    const struct fc_config *cfg = f->w->srv->cfg;
    struct cache_control req_cc;
    parse_cc(&f->req, &req_cc);
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
    /* Like nginx and Varnish: a response setting a cookie is someone's
     * session unless the origin explicitly marked it shareable. */
    if (http_msg_has(&f->resp, "Set-Cookie") &&
        !(resp_cc->flags & CC_PUBLIC) && resp_cc->s_maxage == CC_UNSET)
        return false;
    uint64_t cl = http_parser_content_length(&f->parser);
    if (cl != UINT64_MAX && cl > cfg->cache.max_object_size)
        return false;
    return true;
}

/* Hand the client the object this fetch stores; the fetch goes on alone. */
static void answer_with_stored(struct fetch *f)
{
    if (f->client == NULL)
        return;
    char cs[96];
    if (f->kind == FETCH_REVALIDATE)
        snprintf(cs, sizeof cs, "fwd=%s; fwd-status=%d; stored", f->fwd, f->resp.status);
    else
        snprintf(cs, sizeof cs, "fwd=%s; stored", f->fwd);
    struct client *c = f->client;
    f->client = NULL;
    client_on_fetch_obj(c, f->obj, cs);
}

static void handle_head(struct fetch *f)
{
    struct http_msg *r = &f->resp;
    f->response_time = worker_now(f->w);
    f->state = FS_BODY;
    uint64_t origin_ms = worker_now_ms(f->w) - f->sent_ms;
    counters_origin_latency(&f->w->counters, origin_ms);
    if (f->client)
        client_note_origin_time(f->client, (int64_t)origin_ms);
    char reason[128];
    reason_of(r, reason, sizeof reason);

    if (f->unsafe && r->status >= 200 && r->status < 400)
        invalidate_unsafe(f);

    struct resp_timing t;
    fill_timing(f, &t);
    struct cache_control cc;
    parse_response_cc(r, &cc);

    const struct fc_config *cfg = f->w->srv->cfg;
    if (f->kind == FETCH_REVALIDATE && r->status >= 500 && stale_usable_on_error(f) && f->client) {
        /* The origin answers with an error: keep serving what we have. */
        struct client *c = f->client;
        f->client = NULL;
        char cs[96];
        snprintf(cs, sizeof cs, "fwd=%s; fwd-status=%d; detail=stale-if-error", f->fwd, r->status);
        COUNT(f->w, stale, 1);
        client_on_fetch_obj(c, f->stale, cs);
        f->discard = true;
        return;
    }

    if (f->kind == FETCH_REVALIDATE && r->status == 304 && f->stale) {
        const struct fc_policy *pol =
            f->stale->policy >= 0 && (size_t)f->stale->policy < cfg->n_policies
                ? &cfg->policies[f->stale->policy] : NULL;
        struct head_rewrite rw = {
            .cache_control = pol ? pol->response_cache_control : NULL,
            .drop_validators = cfg->cache.etag == ETAG_CONTENT_HASH,
        };
        struct cache_obj *o = revalidate_merge(f->stale, r, f->response_time, &rw);
        o->generation = f->gen_global;
        o->policy_gen = o->policy >= 0 ? f->gen_policy[o->policy] : 0;
        o->policy_layout = f->gen_layout;
        o->stale_while_revalidate = f->stale->stale_while_revalidate;
        o->stale_if_error = f->stale->stale_if_error;
        o->timing = t;
        /* a 304 may omit what it does not change */
        if (!t.has_last_modified && f->stale->timing.has_last_modified) {
            o->timing.has_last_modified = true;
            o->timing.last_modified = f->stale->timing.last_modified;
        }
        if (!t.has_expires && f->stale->timing.has_expires) {
            o->timing.has_expires = true;
            o->timing.expires_valid = f->stale->timing.expires_valid;
            o->timing.expires = f->stale->timing.expires;
        }
        /* The stored head shows clients the policy's Cache-Control, not
         * the origin's: take directives from the 304, else keep ours. */
        if (has_cc_fields(r))
            o->cc = cc;
        else
            o->cc = f->stale->cc;
        o->sie_from_policy = f->stale->sie_from_policy;
        o->lifetime = (pol && !pol->ttl_origin)
                          ? (int64_t)(pol->ttl_ms / 1000)
                          : freshness_lifetime(&o->cc, &o->timing, o->status, true);
        if (pol && !pol->ttl_origin && o->lifetime > 0)
            o->cc.flags &= ~(unsigned)CC_NO_CACHE;
        store_insert(store_of(f), o, worker_now_ms(f->w));
        if (f->client) {
            struct client *c = f->client;
            f->client = NULL;
            char cs[96];
            snprintf(cs, sizeof cs, "fwd=%s; fwd-status=304", f->fwd);
            client_on_fetch_obj(c, o, cs);
        }
        obj_unref(o);
        return;
    }

    struct cache_obj *o = NULL;
    if (response_cacheable(f, &cc, &t)) {
        o = f->busy ? f->busy : obj_new(&f->key);
        f->busy = NULL;
        if (!vary_build(o, r, &f->req)) {
            /* Vary: * — never served from cache, so not stored. */
            if (o->linked) {
                store_remove(store_of(f), o);
                body_finish(o->body, BODY_ABANDONED);
            }
            obj_unref(o);
            o = NULL;
        }
    }
    if (o) {
        size_t plen, ctl = 0;
        const char *path = cache_key_path(&f->key, &plen);
        const char *ct = http_msg_get(r, "Content-Type", &ctl);
        int pi = policy_match(cfg, path, plen, ct, ctl);
        const struct fc_policy *pol = pi >= 0 ? &cfg->policies[pi] : NULL;
        struct head_rewrite rw = {
            .cache_control = pol ? pol->response_cache_control : NULL,
            .drop_validators = cfg->cache.etag == ETAG_CONTENT_HASH,
        };
        obj_set_head(o, r, reason, f->response_time, &rw);
        o->cc = cc;
        o->timing = t;
        o->policy = pi;
        o->generation = f->gen_global;
        o->policy_gen = pi >= 0 ? f->gen_policy[pi] : 0;
        o->policy_layout = f->gen_layout;
        if (pol && !pol->ttl_origin) {
            /* The policy's TTL overrides the origin's freshness here. */
            o->lifetime = (int64_t)(pol->ttl_ms / 1000);
            if (o->lifetime > 0)
                o->cc.flags &= ~(unsigned)CC_NO_CACHE;
        } else {
            o->lifetime = freshness_lifetime(&cc, &t, r->status, true);
        }
        o->stale_while_revalidate = pol && pol->has_stale_while_revalidate
                                        ? (int64_t)(pol->stale_while_revalidate_ms / 1000)
                                        : (cc.stale_while_revalidate > 0 ? cc.stale_while_revalidate : 0);
        o->sie_from_policy = pol && pol->has_stale_if_error;
        o->stale_if_error = o->sie_from_policy
                                ? (int64_t)(pol->stale_if_error_ms / 1000)
                                : (cc.stale_if_error > 0 ? cc.stale_if_error : 0);
        if (cfg->cache.etag == ETAG_CONTENT_HASH)
            f->hasher = etag_hasher_new();
        uint64_t cl = http_parser_content_length(&f->parser);
        if (!http_parser_has_body(&f->parser))
            cl = 0;
        body_start(o->body, cl);
        /* A small body is here in a moment: let the client wait for it and
         * get the content-hash ETag with its first answer.  Larger ones
         * stream at once, their ETag on later hits. */
        f->defer_client = f->hasher && cl != UINT64_MAX && cl <= DEFER_FOR_ETAG_MAX;
        if (o->linked)
            store_publish(store_of(f), o, worker_now_ms(f->w));
        else
            store_insert(store_of(f), o, worker_now_ms(f->w));
        f->obj = o;
        if (!f->defer_client)
            answer_with_stored(f);
        return;
    }

    abandon_busy(f);
    if (f->kind == FETCH_REVALIDATE && f->stale && r->status < 500)
        store_remove(store_of(f), f->stale);
    f->passing = true;
    if (f->client) {
        char cs[96];
        if (f->kind == FETCH_REVALIDATE)
            snprintf(cs, sizeof cs, "fwd=%s; fwd-status=%d", f->fwd, r->status);
        else
            snprintf(cs, sizeof cs, "fwd=%s; fwd-status=%d", f->fwd, r->status);
        client_on_fetch_pass_head(f->client, f, cs);
    }
}

static void on_resp_body(void *owner, const char *data, size_t len)
{
    struct fetch *f = owner;
    if (f->state == FS_DONE || f->interim || f->discard)
        return;
    f->body_len += len;
    if (f->obj) {
        if (f->hasher)
            etag_hasher_update(f->hasher, data, len);
        size_t grown = body_append(f->obj->body, data, len);
        store_charge(store_of(f), f->obj, grown);
        if (f->obj->body->expected == UINT64_MAX &&
            f->body_len > f->w->srv->cfg->cache.max_object_size && f->obj->linked) {
            /* Unknown length grew past max_object_size: stop keeping it;
             * readers already attached still get every byte. */
            store_remove(store_of(f), f->obj);
        }
    } else if (f->passing && f->client) {
        client_on_fetch_pass_body(f->client, data, len);
    }
}

static void handle_done(struct fetch *f)
{
    bool reusable = http_parser_keep_alive(&f->parser) && f->req_body_done;
    if (f->obj && f->hasher) {
        struct cache_obj *o = f->obj;
        etag_hasher_final(f->hasher, o->chash);
        bool changed = false;
        o->chash_first_seen = etag_history_note(f->w->srv->etag_hist,
                                                o->hash ^ cache_key_hash(o->vary ? o->vary : "",
                                                                         o->vary_len),
                                                o->chash, f->response_time, &changed);
        o->has_chash = true;    /* published by body_finish's release store */
        const struct fc_config *cfg = f->w->srv->cfg;
        if (changed && o->policy >= 0 && (size_t)o->policy < cfg->n_policies &&
            policy_is_hashed_assets(&cfg->policies[o->policy]))
            log_warn("asset %s changed content under the same name (policy %s): "
                     "content-hashed names must change when content does",
                     o->key, cfg->policies[o->policy].name);
    }
    if (f->obj)
        body_finish(f->obj->body, BODY_COMPLETE);
    if (f->obj && f->defer_client)
        answer_with_stored(f);
    if (f->passing && f->client) {
        struct client *c = f->client;
        f->client = NULL;
        client_on_fetch_pass_done(c);
    }
    f->uc->requests++;
    f->uc_reusable = reusable;
    fetch_end(f);
}

static void retry_or_fail(struct fetch *f, int status, const char *why);

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct fetch *f = arg;
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    if (f->state == FS_DONE)
        return;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (evbuffer_get_length(in) > 0)
        f->got_bytes = true;
    for (;;) {
        enum http_parse_event ev = http_parser_feed(&f->parser, in);
        /* A callback inside the parse (a client that left during on_body)
         * may have ended the fetch: nothing more to do with these bytes. */
        if (f->state == FS_DONE)
            return;
        switch (ev) {
        case HTTP_PARSE_NEED_MORE:
            return;
        case HTTP_PARSE_HEAD:
            if (f->resp.status >= 100 && f->resp.status < 200 && f->resp.status != 101) {
                f->interim = true;   /* 100 Continue, 103 Early Hints: skip */
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

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct fetch *f = arg;
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    (void)bev;
    if (f->state == FS_DONE)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        f->uc->connected = true;
        send_request(f);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        fail(f, 504, f->state == FS_CONNECTING ? "origin connect timeout" : "origin read timeout");
        return;
    }
    if (what & BEV_EVENT_EOF) {
        if (f->state == FS_BODY) {
            /* drain what is left, then a close-delimited body ends here */
            read_cb(bev, f);
            if (f->state == FS_DONE)
                return;
        }
        if (f->state == FS_BODY && http_parser_eof(&f->parser) == HTTP_PARSE_DONE) {
            f->req_body_done = false;   /* never reuse a closed connection */
            handle_done(f);
            return;
        }
        retry_or_fail(f, 502, f->state == FS_BODY ? "origin closed mid-body"
                                                  : "origin closed the connection");
        return;
    }
    retry_or_fail(f, 502, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static int connect_origin(struct fetch *f);

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

static int connect_origin(struct fetch *f)
{
    bool reused = false;
    f->uc = upstream_acquire(f->w, &reused);
    if (f->uc == NULL)
        return -1;
    f->reused = reused;
    f->got_bytes = false;
    http_parser_init(&f->parser, HTTP_RESPONSE, &f->resp, 64 * 1024, on_resp_body, f);
    f->parser.no_body = f->client_head && f->kind == FETCH_PASS;
    bufferevent_setcb(f->uc->bev, read_cb, f->req_body ? write_cb : NULL, event_cb, f);
    if (f->req_body)
        bufferevent_setwatermark(f->uc->bev, EV_WRITE, UPLOAD_LOW, 0);
    COUNT(f->w, origin_requests, 1);
    if (reused) {
        send_request(f);
    } else {
        f->state = FS_CONNECTING;
        bufferevent_enable(f->uc->bev, EV_READ | EV_WRITE);
    }
    return 0;
}

struct fetch *fetch_start(struct worker *w, struct client *c, const struct fetch_params *p)
{
    struct fetch *f = calloc(1, sizeof *f);
    AN(f);
    f->magic = FETCH_MAGIC;
    f->w = w;
    f->reap = event_new(w->base, -1, 0, reap_cb, f);
    AN(f->reap);
    LIST_INSERT_HEAD(&w->fetches, f, link);
    f->client = c;
    f->kind = p->kind;
    http_msg_init(&f->req);
    http_msg_init(&f->resp);
    /* copy the request head */
    const struct http_msg *r = p->req;
    f->req.method = r->method;
    f->req.http_major = r->http_major;
    f->req.http_minor = r->http_minor;
    f->req.url_off = http_msg_append(&f->req, http_msg_url(r), r->url_len);
    f->req.url_len = r->url_len;
    for (uint32_t i = 0; i < r->n_fields; i++) {
        const struct http_field *fl = &r->fields[i];
        if (!fl->dead)
            http_msg_add(&f->req, http_field_name(r, fl), fl->name_len, http_field_value(r, fl),
                         fl->value_len);
    }
    if (p->key) {
        f->key = *p->key;
        f->has_key = true;
    }
    if (p->busy) {
        obj_ref(p->busy);
        f->busy = p->busy;
    }
    if (p->stale) {
        obj_ref(p->stale);
        f->stale = p->stale;
    }
    f->client_head = p->client_head;
    f->req_body = p->req_body;
    f->req_chunked = p->req_body && p->req_content_length == UINT64_MAX;
    f->req_body_done = !p->req_body;
    f->store_allowed = p->store_allowed;
    f->fwd = p->status_fwd ? p->status_fwd : "miss";
    f->unsafe = !(r->method == HTTP_GET || r->method == HTTP_HEAD || r->method == HTTP_OPTIONS ||
                  r->method == HTTP_TRACE);
    f->background = c == NULL;
    const struct generations *g = w->srv->gens;
    f->gen_layout = generation_layout(g);
    f->gen_global = generation_global(g);
    for (size_t i = 0; i < w->srv->cfg->n_policies && i < GEN_MAX_POLICIES; i++)
        f->gen_policy[i] = generation_policy(g, (unsigned)i);
    f->head_out = evbuffer_new();
    f->body_out = evbuffer_new();
    AN(f->head_out);
    AN(f->body_out);
    build_request(f, p);
    if (connect_origin(f) != 0) {
        abandon_busy(f);
        f->client = NULL;
        fetch_free(f);
        return NULL;
    }
    return f;
}

void fetch_free_all(struct worker *w)
{
    struct fetch *f;
    while ((f = LIST_FIRST(&w->fetches)) != NULL) {
        if (f->state == FS_DONE) {      /* ended, its free still pending */
            fetch_free(f);
            continue;
        }
        f->client = NULL;
        abandon_busy(f);
        if (f->obj) {
            store_remove(store_of(f), f->obj);
            body_finish(f->obj->body, BODY_FAILED);
        }
        fetch_free(f);
    }
}

void fetch_detach(struct fetch *f)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    f->client = NULL;
    if (f->state == FS_DONE)
        return;
    /* Passing: nobody else wants the bytes.  Storing (or about to decide):
     * finish, others may be waiting and the cache gains the object. */
    if (f->passing || f->kind == FETCH_PASS || !f->req_body_done)
        fail(f, 502, "client gone");
}

void fetch_pause(struct fetch *f)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    if (f->state != FS_DONE && f->uc && !f->paused) {
        bufferevent_disable(f->uc->bev, EV_READ);
        f->paused = true;
    }
}

void fetch_resume(struct fetch *f)
{
    CHECK_OBJ_NOTNULL(f, FETCH_MAGIC);
    if (f->state != FS_DONE && f->uc && f->paused) {
        f->paused = false;
        bufferevent_enable(f->uc->bev, EV_READ);
        /* bytes may already be buffered: parse them now */
        if (evbuffer_get_length(bufferevent_get_input(f->uc->bev)) > 0)
            bufferevent_trigger(f->uc->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
    }
}

const struct http_msg *fetch_response(const struct fetch *f) { return &f->resp; }
bool fetch_response_has_body(const struct fetch *f) { return http_parser_has_body(&f->parser); }
uint64_t fetch_response_length(const struct fetch *f)
{
    return http_parser_content_length(&f->parser);
}
