/*
 * deliver.c — the responses an exchange sends: what goes in the head
 * (status after the client's conditionals and Range, Age, Cache-Status,
 * the content-hash validators) and the body read from the object.  The
 * front end turns a struct resp_head into its protocol's bytes.
 */
#include <stdio.h>
#include <string.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/decimal.h"
#include "freshcache/cache/cache_obj.h"
#include "freshcache/cache/etag.h"
#include "freshcache/cache/freshness.h"
#include "freshcache/http/conditional.h"
#include "freshcache/http/http_date.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/http/http_status.h"
#include "freshcache/http/range.h"
#include "freshcache/server/exchange.h"
#include "freshcache/server/worker.h"

/* Per-response fields: Age, Cache-Status, our validators, Content-Range. */
#define EXTRA_MAX 512

/* The per-response fields, appended without printf.  What does not fit
 * is cut, as snprintf would (EXTRA_MAX is far more than they take). */
struct extra {
    size_t n;
    char buf[EXTRA_MAX];
};

static void extra_add(struct extra *e, const char *p, size_t len)
{
    if (len > sizeof e->buf - 1 - e->n)
        len = sizeof e->buf - 1 - e->n;
    memcpy(e->buf + e->n, p, len);
    e->n += len;
    e->buf[e->n] = '\0';
}

#define EXTRA_LIT(e, lit) extra_add((e), (lit), sizeof(lit) - 1)

static void extra_u64(struct extra *e, uint64_t v)
{
    char d[DECIMAL_U64_MAX];
    extra_add(e, d, decimal_u64(d, v));
}

static bool bodyless_status(int status)
{
    return status == 304 || status == 204 || (status >= 100 && status < 200);
}

/* The body's length when it is known: declared by the origin, or counted
 * once complete. */
static uint64_t obj_length(const struct cache_obj *o)
{
    uint64_t expected = obj_body_expected(o);
    if (expected != UINT64_MAX)
        return expected;
    return obj_body_state(o) == BODY_COMPLETE ? obj_body_total(o) : UINT64_MAX;
}

/* What clients see as the object's validators. */
static void obj_validators(const struct exchange *x, const struct cache_obj *o,
                           struct validators *v, char etag_buf[67])
{
    memset(v, 0, sizeof *v);
    v->status = o->status;
    v->has_date = o->timing.flags & STORED_HAS_DATE;
    v->date = stored_date(&o->timing);
    if (worker_cfg(x->w)->cache.etag == ETAG_CONTENT_HASH) {
        /* Only a complete body has a hash; until then, no validators. */
        if (obj_body_state(o) == BODY_COMPLETE && o->has_chash) {
            etag_format(obj_chash(o), etag_buf);
            v->etag = etag_buf;
            v->etag_len = 66;
            v->has_last_modified = true;
            v->last_modified = o->chash_first_seen;
        }
    } else {
        v->etag = obj_etag(o);
        v->etag_len = o->etag_len;
        v->has_last_modified = stored_has_last_modified(&o->timing);
        v->last_modified = o->timing.last_modified;
    }
}

/* Hold `o` as the object whose body this response sends. */
static void serve_from(struct exchange *x, struct cache_obj *o)
{
    obj_ref(o);
    exchange_drop_obj(x);
    x->obj = o;
    memset(&x->cur, 0, sizeof x->cur);
}

static void send_resp(struct exchange *x, const struct resp_head *h)
{
    x->resp_status = h->status;
    x->state = h->body ? X_SEND : X_DONE;
    x->fe->send_head(x, h);
}

/* A response whose head is the object's stored head, as `status`, with
 * `extra` fields. */
static void send_from_obj(struct exchange *x, const struct cache_obj *o, int status,
                          const char *extra, size_t extra_len, uint64_t length, bool body)
{
    struct resp_head h = {
        .status = status,
        .stored = obj_head(o),
        .stored_len = o->head_len,
        .fields_off = o->fields_off,
        .stored_status = o->status,
        .extra = extra,
        .extra_len = extra_len,
        .content_length = length,
        .body = body,
    };
    send_resp(x, &h);
}

/* A response the proxy makes, with `fields` besides the usual ones. */
static void respond_made(struct exchange *x, int status, const char *fields, const char *msg,
                         bool close)
{
    char body[256];
    int bl = 0;
    if (msg)
        bl = snprintf(body, sizeof body, "%d %s: %s\n", status, http_status_reason(status), msg);
    if (bl < 0 || (size_t)bl >= sizeof body)
        bl = (int)sizeof body - 1;
    char extra[EXTRA_MAX];
    int n = snprintf(extra, sizeof extra,
                     "%s%sCache-Control: no-store\r\nCache-Status: freshcache; %s\r\nDate: %s\r\n",
                     msg ? "Content-Type: text/plain; charset=utf-8\r\n" : "", fields ? fields : "",
                     x->cs, worker_date(x->w));
    struct resp_head h = {
        .status = status,
        .extra = extra,
        .extra_len = (size_t)n < sizeof extra ? (size_t)n : sizeof extra - 1,
        .content_length = (uint64_t)bl,
        .inline_body = x->head_req ? NULL : body,
        .inline_len = x->head_req ? 0 : (size_t)bl,
        .close = close,
    };
    send_resp(x, &h);
}

void deliver_error(struct exchange *x, int status, const char *msg, bool close)
{
    exchange_drop_obj(x);
    respond_made(x, status, NULL, msg, close);
}

void deliver_obj(struct exchange *x, struct cache_obj *o, const char *cache_status)
{
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    size_t csl = strnlen(cache_status, sizeof x->cs - 1);
    memmove(x->cs, cache_status, csl);      /* cache_status may be x->cs */
    x->cs[csl] = '\0';
    char etag[67];
    struct validators v;
    obj_validators(x, o, &v, etag);
    enum cond_result cond = cond_evaluate(x->req, &v);
    if (cond == COND_PRECONDITION_FAILED) {
        deliver_error(x, 412, "precondition failed", false);
        return;
    }
    int status = cond == COND_NOT_MODIFIED ? 304 : o->status;
    uint64_t first = 0, last = 0;
    if (status == 200 && obj_body_state(o) == BODY_COMPLETE) {
        size_t rl;
        const char *r = http_msg_get(x->req, "Range", &rl);
        uint64_t size = obj_body_total(o);
        size_t il;
        const char *ir = r ? http_msg_get(x->req, "If-Range", &il) : NULL;
        if (r && (ir == NULL || if_range_matches(ir, il, &v))) {
            switch (range_parse(r, rl, size, &first, &last)) {
            case RANGE_NONE:
                break;
            case RANGE_ONE:
                status = 206;
                break;
            case RANGE_UNSATISFIABLE: {
                char cr[64];
                snprintf(cr, sizeof cr, "Content-Range: bytes */%llu\r\n",
                         (unsigned long long)size);
                exchange_drop_obj(x);
                respond_made(x, 416, cr, NULL, false);
                return;
            }
            }
        }
    }
    serve_from(x, o);

    /* Written piece by piece, not by snprintf: these lines go out with
     * every answer from the cache, and the printf formatting of them was
     * the largest part of deliver_obj's ~8 k instructions (callgrind,
     * docs/performance.md). */
    struct extra e = { .n = 0 };
    EXTRA_LIT(&e, "Age: ");
    extra_u64(&e, (uint64_t)obj_age(o, worker_now(x->w)));
    EXTRA_LIT(&e, "\r\nCache-Status: freshcache; ");
    extra_add(&e, x->cs, csl);
    EXTRA_LIT(&e, "\r\n");
    if (v.etag && worker_cfg(x->w)->cache.etag == ETAG_CONTENT_HASH) {
        EXTRA_LIT(&e, "ETag: ");
        extra_add(&e, v.etag, v.etag_len);
        EXTRA_LIT(&e, "\r\nLast-Modified: ");
        char lm[HTTP_DATE_LEN + 1];
        http_date_format(v.last_modified, lm);
        extra_add(&e, lm, HTTP_DATE_LEN);
        EXTRA_LIT(&e, "\r\n");
    }
    uint64_t length = obj_length(o);
    if (status == 206) {
        EXTRA_LIT(&e, "Content-Range: bytes ");
        extra_u64(&e, first);
        EXTRA_LIT(&e, "-");
        extra_u64(&e, last);
        EXTRA_LIT(&e, "/");
        extra_u64(&e, obj_body_total(o));
        EXTRA_LIT(&e, "\r\n");
        obj_body_seek(o, &x->cur, (size_t)first);
        x->send_end = last + 1;
        length = last + 1 - first;
    }
    send_from_obj(x, o, status, e.buf, e.n, length, !x->head_req && !bodyless_status(status));
}

void deliver_private(struct exchange *x, struct cache_obj *o)
{
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    FC_ASSERT(o->private);
    serve_from(x, o);
    char extra[EXTRA_MAX];
    int n = snprintf(extra, sizeof extra, "Cache-Status: freshcache; %s\r\n", x->cs);
    uint64_t length = obj_length(o);
    send_from_obj(x, o, o->status, extra, (size_t)n, length,
                  !x->head_req && !bodyless_status(o->status) && length != 0);
}

enum body_read exchange_body_read(struct exchange *x, struct evbuffer *out, size_t max, size_t *n)
{
    CHECK_OBJ_NOTNULL(x, EXCHANGE_MAGIC);
    FC_ASSERT(x->state == X_SEND && x->obj != NULL);
    struct cache_obj *o = x->obj;
    size_t added = 0;
    enum body_read r = BODY_READ_MORE;
    for (;;) {
        /* The state first: if it says COMPLETE, the total read after it
         * is final. */
        enum body_state st = obj_body_state(o);
        uint64_t want = x->send_end - x->cur.pos;
        size_t room = max - added;
        if (want < room)
            room = (size_t)want;
        added += obj_body_read(o, &x->cur, out, room);
        if (x->cur.pos == x->send_end || (st == BODY_COMPLETE && x->cur.pos == obj_body_total(o))) {
            r = BODY_READ_END;
            break;
        }
        if (st == BODY_FAILED || st == BODY_ABANDONED) {
            /* The origin failed mid-body: the client must see a truncated
             * message, never a complete one. */
            r = BODY_READ_FAILED;
            break;
        }
        if (added == max)
            break;          /* the front end comes back when its peer took some */
        if (obj_body_wait(o, &x->waiter, x->cur.pos, st))
            break;          /* woken on progress: body_ready */
    }
    if (r != BODY_READ_MORE) {
        obj_body_unwait(o, &x->waiter);
        x->state = X_DONE;
    }
    COUNT(&x->w->counters, bytes_sent, added);
    x->resp_bytes += added;
    *n = added;
    return r;
}
