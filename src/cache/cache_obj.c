/*
 * cache_obj.c — a stored response: reference counting, and turning an
 * origin response head into the pre-serialised head the hit path sends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/hex.h"
#include "freshcache/cache/cache_obj.h"
#include "freshcache/cache/generation.h"
#include "freshcache/http/http_date.h"
#include "freshcache/http/http_msg.h"

struct cache_obj *obj_new(const struct cache_key *k)
{
    size_t klen = k ? k->len : 0;
    struct cache_obj *o = calloc(1, OBJ_FILL_SIZE(klen));
    AN(o);
    o->magic = OBJ_MAGIC;
    atomic_init(&o->refcnt, 1);
    atomic_init(&o->aflags, 0);         /* BUSY */
    if (k)
        memcpy(o->key, k->buf, klen);
    o->key_len = (uint32_t)klen;
    o->hash = k ? k->hash : 0;
    o->policy = -1;
    obj_fill(o)->origin_ms = -1;
    o->body = body_new();
    return o;
}

struct cache_obj *obj_new_sharing(const struct cache_obj *stale)
{
    CHECK_OBJ_NOTNULL(stale, OBJ_MAGIC);
    struct cache_obj *o = calloc(1, OBJ_FILL_SIZE(stale->key_len));
    AN(o);
    o->magic = OBJ_MAGIC;
    atomic_init(&o->refcnt, 1);
    atomic_init(&o->aflags, 0);         /* BUSY */
    memcpy(o->key, stale->key, stale->key_len);
    o->key_len = stale->key_len;
    o->hash = stale->hash;
    o->policy = -1;
    obj_fill(o)->origin_ms = -1;
    if (stale->inline_body) {
        /* The bytes stay in the sealed object's block: hold that object. */
        o->inline_body = true;
        o->body_owner = obj_body_owner(stale);
        obj_ref(o->body_owner);
    } else {
        body_ref(stale->body);
        o->body = stale->body;
    }
    if (stale->vary_len) {
        char *v = malloc(stale->vary_len);
        AN(v);
        memcpy(v, obj_vary(stale), stale->vary_len);
        obj_fill(o)->vary = v;
        o->vary_len = stale->vary_len;
    }
    o->policy = stale->policy;
    o->authorized = stale->authorized;
    o->chash_first_seen = stale->chash_first_seen;
    return o;
}

void obj_copy_head(struct cache_obj *o, const struct cache_obj *from)
{
    CHECK_OBJ_NOTNULL(from, OBJ_MAGIC);
    struct obj_fill *fo = obj_fill(o);
    FC_ASSERT(fo->head == NULL);
    /* The block obj_set_head made: head, ETag and NUL, tags, the hash. */
    size_t block = obj_head_block_len(from);
    fo->head = malloc(block);
    AN(fo->head);
    memcpy(fo->head, obj_head(from), block);
    o->head_len = from->head_len;
    o->fields_off = from->fields_off;
    o->status = from->status;
    o->has_etag = from->has_etag;
    o->etag_len = from->etag_len;
    o->tags_len = from->tags_len;
    o->chash_room = from->chash_room;
    o->has_chash = from->has_chash;     /* the bytes came with the block */
}

void obj_publish(struct cache_obj *o)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    FC_ASSERT(!o->linked);
    obj_set_ready(o);
    obj_body_wake(o);
}

void obj_fail(struct cache_obj *o, int status, const char *reason)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    FC_ASSERT(!obj_ready(o));
    FC_ASSERT(!o->inline_body);         /* a placeholder's body is chunked */
    struct obj_fill *fo = obj_fill(o);
    FC_ASSERT(fo->merged == NULL);      /* the same pointer: never both */
    fo->failed = true;
    fo->fail_status = (short)status;
    fo->fail_reason = reason;
    body_finish(o->body, BODY_FAILED);      /* its release store publishes both */
}

void obj_ref(struct cache_obj *o)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    atomic_fetch_add_explicit(&o->refcnt, 1, memory_order_relaxed);
}

void obj_unref(struct cache_obj *o)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    unsigned old = atomic_fetch_sub_explicit(&o->refcnt, 1, memory_order_acq_rel);
    FC_ASSERT(old > 0);
    if (old != 1)
        return;
    FC_ASSERT(!o->linked);
    if (!o->sealed && !obj_fill(o)->failed && obj_fill(o)->merged)
        obj_unref(obj_fill(o)->merged);
    if (o->inline_body) {
        if (!o->sealed)
            obj_unref(o->body_owner);
    } else if (o->body) {
        body_unref(o->body);
    }
    if (!o->sealed) {
        free(obj_fill(o)->vary);
        free(obj_fill(o)->head);    /* with etag and tags */
    }
    o->magic = 0;
    free(o);                /* a sealed object: with all of the above */
}

/* ---- the body, chunked or inline ------------------------------------- */

static void owner_ref_cleanup(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    obj_unref(arg);
}

size_t obj_body_read(struct cache_obj *o, struct body_cursor *cur, struct evbuffer *out,
                     size_t max)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    if (!o->inline_body)
        return body_read_into(o->body, cur, out, max);
    struct cache_obj *w = obj_body_owner(o);
    size_t total = w->sealed_len;
    FC_ASSERT(cur->pos <= total);
    size_t n = total - cur->pos;
    if (n > max)
        n = max;
    if (n == 0)
        return 0;
    obj_ref(w);
    if (evbuffer_add_reference(out, obj_inline_data(o) + cur->pos, n, owner_ref_cleanup, w) !=
        0) {
        obj_unref(w);
        return 0;
    }
    cur->pos += n;
    return n;
}

void obj_body_seek(struct cache_obj *o, struct body_cursor *cur, size_t pos)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    if (!o->inline_body) {
        body_cursor_seek(o->body, cur, pos);
        return;
    }
    FC_ASSERT(pos <= obj_body_owner(o)->sealed_len);
    cur->chunk = NULL;
    cur->off = 0;
    cur->pos = pos;
}

bool obj_body_wait(struct cache_obj *o, struct body_waiter *w, size_t pos, enum body_state seen)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    return !o->inline_body && body_wait(o->body, w, pos, seen);
}

void obj_body_unwait(struct cache_obj *o, struct body_waiter *w)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    if (!o->inline_body)
        body_unwait(o->body, w);
}

void obj_body_wake(struct cache_obj *o)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    if (!o->inline_body)
        body_wake(o->body);
}

struct cache_obj *obj_seal(const struct cache_obj *o)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    if (o->sealed || o->inline_body || o->private || obj_fill(o)->failed ||
        obj_fill(o)->head == NULL || !obj_ready(o))
        return NULL;
    const struct cache_body *b = o->body;
    if (b->transient || body_state(b) != BODY_COMPLETE)
        return NULL;
    size_t total = body_total(b);
    if (total > OBJ_SEAL_MAX)
        return NULL;
    size_t hb = obj_head_block_len(o);
    size_t key_sz = (size_t)o->key_len + 1;
    struct cache_obj *n = malloc(OBJ_SIZE(o->key_len) + o->vary_len + hb + total);
    AN(n);
    /* Every stored field as it is; then what belongs to the copy. */
    memcpy(n, o, OBJ_SIZE(o->key_len));
    atomic_init(&n->refcnt, 1);
    /* READY, soft-purged as o is (store_seal copies it again under the
     * lock); not revalidating: o's refresh, if any, clears o's flag. */
    atomic_init(&n->aflags, (uint8_t)(OBJ_READY | (obj_soft_purged(o) ? OBJ_SOFT_PURGED : 0)));
    n->hash_next = NULL;
    memset(&n->lru, 0, sizeof n->lru);
    n->linked = false;
    n->sealed_away = false;
    n->charged = 0;
    /* Key, Vary, head block, body: where obj_head and obj_vary look. */
    char *p = n->key + key_sz;
    if (o->vary_len) {
        memcpy(p, obj_fill(o)->vary, o->vary_len);
        p += o->vary_len;
    }
    memcpy(p, obj_fill(o)->head, hb);
    p += hb;
    /* The body: complete, so every chunk is final. */
    size_t left = total;
    for (const struct body_chunk *c = b->head; left > 0; c = c->next) {
        FC_ASSERT(c != NULL);
        size_t len = atomic_load_explicit(&c->len, memory_order_acquire);
        if (len > left)
            len = left;
        memcpy(p, c->data, len);
        p += len;
        left -= len;
    }
    n->sealed = true;
    FC_ASSERT(obj_head(n) == n->key + key_sz + o->vary_len);
    n->inline_body = true;
    n->sealed_len = total;
    return n;
}

/* Fields never kept in a head: framing, hop-by-hop, ours.  A stored
 * response also loses Age and Cache-Status (both are recomputed when it
 * is served); a pass-through keeps them as the origin sent them. */
static bool dropped_from_head(const struct http_msg *m, const struct http_field *f,
                              bool passthrough)
{
    if (f->dead || http_is_hop_by_hop(m, f))
        return true;
    const char *n = http_field_name(m, f);
    if (http_token_eq(n, f->name_len, "Content-Length") || obj_field_internal(n, f->name_len))
        return true;
    return !passthrough && (http_token_eq(n, f->name_len, "Age") ||
                            http_token_eq(n, f->name_len, "Cache-Status"));
}

bool obj_field_internal(const char *n, size_t len)
{
    /* Tags are for purging here, not for clients (like Fastly and Varnish);
     * our targeted field was for us.  CDN-Cache-Control goes on: a CDN
     * further down may obey it (RFC 9213 §2.1). */
    return http_token_eq(n, len, "Surrogate-Key") || http_token_eq(n, len, "Cache-Tag") ||
           http_token_eq(n, len, "Freshcache-Cache-Control") ||
           http_token_eq(n, len, "Surrogate-Control");
}

/* Surrogate-Key / Cache-Tag values of `resp`, each NUL-terminated, back to
 * back, into *out (malloc'd, NULL when none).  Returns their length. */
static size_t collect_tags(const struct http_msg *resp, char **out)
{
    static const char *const fields[] = { "Surrogate-Key", "Cache-Tag" };
    size_t cap = 0, len = 0;
    char *buf = NULL;
    for (size_t k = 0; k < FC_ARRAY_LEN(fields); k++) {
        uint32_t it = 0;
        const struct http_field *f;
        while ((f = http_msg_next(resp, fields[k], &it)) != NULL) {
            const char *v = http_field_value(resp, f), *end = v + f->value_len;
            while (v < end) {
                while (v < end && (*v == ' ' || *v == ',' || *v == '\t'))
                    v++;
                const char *s = v;
                while (v < end && *v != ' ' && *v != ',' && *v != '\t')
                    v++;
                if (v == s)
                    continue;
                size_t n = (size_t)(v - s);
                if (len + n + 1 > cap) {
                    cap = (len + n + 1) * 2;
                    buf = realloc(buf, cap);
                    AN(buf);
                }
                memcpy(buf + len, s, n);
                buf[len + n] = '\0';
                len += n + 1;
            }
        }
    }
    *out = buf;
    return len;
}

bool obj_current(const struct cache_obj *o, const struct generations *g)
{
    /* the low 32 bits each (cache_obj.h) */
    if (o->generation != (uint32_t)generation_global(g))
        return false;
    return o->policy < 0 ||
           (o->policy_layout == (uint32_t)generation_layout(g) &&
            o->policy_gen == (uint32_t)generation_policy(g, (unsigned)o->policy));
}

void obj_chash_hex(const struct cache_obj *o, char out[65])
{
    hex_encode(obj_chash(o), OBJ_CHASH_LEN, out);
}

void obj_set_head(struct cache_obj *o, const struct http_msg *resp, const char *reason,
                  time_t response_time, const struct head_rewrite *rw)
{
    FC_ASSERT(!o->sealed);          /* its head is in its block */
    struct evbuffer *b = evbuffer_new();
    AN(b);
    o->status = resp->status;
    /* The reason: at most 127 bytes (the callers' buffers), so the status
     * line's length fits o->fields_off. */
    evbuffer_add_printf(b, "HTTP/1.1 %d %.127s\r\n", resp->status, reason);
    size_t fields_off = evbuffer_get_length(b);
    bool has_date = false, has_via = false;
    for (uint32_t i = 0; i < resp->n_fields; i++) {
        const struct http_field *f = &resp->fields[i];
        if (dropped_from_head(resp, f, rw && rw->passthrough))
            continue;
        const char *n = http_field_name(resp, f);
        if (rw && rw->cache_control && http_token_eq(n, f->name_len, "Cache-Control"))
            continue;
        if (rw && rw->drop_validators && (http_token_eq(n, f->name_len, "ETag") ||
                                          http_token_eq(n, f->name_len, "Last-Modified")))
            continue;
        if (rw && rw->drop_set_cookie && http_token_eq(n, f->name_len, "Set-Cookie"))
            continue;
        evbuffer_add(b, n, f->name_len);
        evbuffer_add(b, ": ", sizeof(": ") - 1);
        evbuffer_add(b, http_field_value(resp, f), f->value_len);
        if (http_token_eq(n, f->name_len, "Via")) {
            if (!(rw && rw->via_done))
                evbuffer_add(b, ", 1.1 freshcache", sizeof(", 1.1 freshcache") - 1);
            has_via = true;
        }
        evbuffer_add(b, "\r\n", sizeof("\r\n") - 1);
        if (http_token_eq(n, f->name_len, "Date"))
            has_date = true;
    }
    /* RFC 9110 §6.6.1: a cache forwarding a response without Date adds one. */
    if (!has_date) {
        char d[HTTP_DATE_LEN + 1];
        http_date_format(response_time, d);
        evbuffer_add_printf(b, "Date: %s\r\n", d);
    }
    if (!has_via)
        evbuffer_add(b, "Via: 1.1 freshcache\r\n", sizeof("Via: 1.1 freshcache\r\n") - 1);
    if (rw && rw->cache_control)
        evbuffer_add_printf(b, "Cache-Control: %s\r\n", rw->cache_control);
    /* One allocation: head, ETag and NUL, tags.  A 304 merge keeps the
     * stored ETag and tags when the 304 repeats neither (content-hash mode
     * drops the origin's ETag from the head, and tags never are in it). */
    char *tags;
    size_t tags_len = collect_tags(resp, &tags);
    const char *tags_src = tags;
    if (tags_len == 0 && rw && rw->inherit && rw->inherit->tags_len) {
        tags_src = obj_tags(rw->inherit);
        tags_len = rw->inherit->tags_len;
    }
    size_t el = 0;
    const char *etag = http_msg_get(resp, "ETag", &el);
    if (etag == NULL && rw && rw->inherit && rw->inherit->has_etag) {
        etag = obj_etag(rw->inherit);
        el = rw->inherit->etag_len;
    }
    size_t len = evbuffer_get_length(b);
    bool room = rw && rw->drop_validators;
    size_t block = len + (etag ? el + 1 : 0) + tags_len + (room ? OBJ_CHASH_LEN : 0);
    /* The hash of a body shared with the object inherited from (a 304
     * merge) is that body's hash; read before o's fields change (inherit
     * may be o). */
    const struct cache_obj *from = rw ? rw->inherit : NULL;
    const unsigned char *hash =
        room && from && from->chash_room && from->has_chash ? obj_chash(from) : NULL;
    struct obj_fill *fo = obj_fill(o);
    char *old = fo->head;
    fo->head = malloc(block);
    AN(fo->head);
    evbuffer_remove(b, fo->head, len);
    evbuffer_free(b);
    o->head_len = (uint32_t)len;
    FC_ASSERT(fields_off <= UINT8_MAX);
    o->fields_off = (uint8_t)fields_off;
    char *p = fo->head + len;
    o->has_etag = etag != NULL;
    o->etag_len = 0;
    if (etag) {
        memcpy(p, etag, el);
        p[el] = '\0';
        o->etag_len = (uint32_t)el;
        p += el + 1;
    }
    o->tags_len = (uint32_t)tags_len;
    if (tags_len)
        memcpy(p, tags_src, tags_len);
    o->chash_room = room;
    o->has_chash = hash != NULL;
    if (hash)
        memcpy(obj_chash(o), hash, OBJ_CHASH_LEN);  /* from the old block, freed below */
    free(tags);
    free(old);              /* after: rw->inherit may be o itself */
}

void obj_head_to_msg(const struct cache_obj *o, struct http_msg *m)
{
    http_msg_reset(m);
    m->status = o->status;
    const char *head = obj_head(o);
    const char *p = head + o->fields_off, *end = head + o->head_len;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        FC_ASSERT(eol != NULL);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        FC_ASSERT(colon != NULL);
        const char *v = colon + 1;
        while (v < eol && *v == ' ')
            v++;
        http_msg_add(m, p, (size_t)(colon - p), v, (size_t)(eol - v));
        p = eol + 2;
    }
}

const char *obj_reason(const struct cache_obj *o, size_t *len)
{
    /* "HTTP/1.1 200 OK\r\n": the reason starts after the 13th byte */
    *len = o->fields_off - 2 - 13;
    return obj_head(o) + 13;
}

bool obj_field_next(const struct cache_obj *o, const char *name, size_t *iter,
                    const char **value, size_t *vlen)
{
    size_t pos = *iter > o->fields_off ? *iter : o->fields_off;
    const char *head = obj_head(o);
    const char *end = head + o->head_len;
    for (const char *p = head + pos; p < end;) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        FC_ASSERT(eol != NULL);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        FC_ASSERT(colon != NULL);
        const char *next = eol + 2;
        if (http_token_eq(p, (size_t)(colon - p), name)) {
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            *value = v;
            *vlen = (size_t)(eol - v);
            *iter = (size_t)(next - head);
            return true;
        }
        p = next;
    }
    *iter = o->head_len;
    return false;
}
