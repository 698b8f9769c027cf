/*
 * revalidate.c — see include/freshcache/revalidate.h.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_obj.h"
#include "freshcache/http/http_date.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/cache/revalidate.h"

/* Fields a 304 must not overwrite in the stored head (RFC 9111 §3.2: the
 * ones describing the stored body's framing). */
static bool keep_stored(const char *name, size_t len)
{
    /* ...and the validators: the 304 selected the stored response by
     * them, they still describe its body. */
    return http_token_eq(name, len, "Content-Length") ||
           http_token_eq(name, len, "Content-Encoding") ||
           http_token_eq(name, len, "Transfer-Encoding") ||
           http_token_eq(name, len, "Content-Range") || http_token_eq(name, len, "ETag") ||
           http_token_eq(name, len, "Content-MD5");
}

void revalidate_add_validators(struct evbuffer *out, const struct cache_obj *stale)
{
    if (stale->etag)
        evbuffer_add_printf(out, "If-None-Match: %s\r\n", stale->etag);
    if (stale->timing.has_last_modified) {
        char d[HTTP_DATE_LEN + 1];
        http_date_format(stale->timing.last_modified, d);
        evbuffer_add_printf(out, "If-Modified-Since: %s\r\n", d);
    }
}

struct cache_obj *revalidate_merge(const struct cache_obj *stale, const struct http_msg *resp304,
                                   time_t response_time, const struct head_rewrite *rw)
{
    struct http_msg merged;
    http_msg_init(&merged);
    obj_head_to_msg(stale, &merged);
    merged.status = stale->status;
    /* Replace every stored field that the 304 carries (all its lines). */
    for (uint32_t i = 0; i < resp304->n_fields; i++) {
        const struct http_field *f = &resp304->fields[i];
        const char *n = http_field_name(resp304, f);
        if (http_is_hop_by_hop(resp304, f) || keep_stored(n, f->name_len))
            continue;
        for (uint32_t j = 0; j < merged.n_fields; j++) {
            struct http_field *g = &merged.fields[j];
            if (!g->dead && http_token_eq(http_field_name(&merged, g), g->name_len, "") == false &&
                g->name_len == f->name_len &&
                strncasecmp(http_field_name(&merged, g), n, f->name_len) == 0)
                g->dead = true;
        }
    }
    for (uint32_t i = 0; i < resp304->n_fields; i++) {
        const struct http_field *f = &resp304->fields[i];
        const char *n = http_field_name(resp304, f);
        if (f->dead || http_is_hop_by_hop(resp304, f) || keep_stored(n, f->name_len) ||
            http_token_eq(n, f->name_len, "Age"))
            continue;
        http_msg_add(&merged, n, f->name_len, http_field_value(resp304, f), f->value_len);
    }
    struct cache_key k;
    memcpy(k.buf, stale->key, stale->key_len + 1);
    k.len = stale->key_len;
    k.host_len = 0;
    k.hash = stale->hash;
    struct cache_obj *o = obj_new(&k);
    /* share the stored body */
    body_unref(o->body);
    body_ref(stale->body);
    o->body = stale->body;
    size_t rl;
    const char *reason = obj_reason(stale, &rl);
    char rbuf[128];
    if (rl >= sizeof rbuf)
        rl = sizeof rbuf - 1;
    memcpy(rbuf, reason, rl);
    rbuf[rl] = '\0';
    /* The stored Via already names us (and the hops before us). */
    struct head_rewrite rw2 = rw ? *rw : (struct head_rewrite){ 0 };
    rw2.via_done = true;
    obj_set_head(o, &merged, rbuf, response_time, &rw2);
    /* What the stored head no longer shows (content-hash mode drops the
     * origin's validators; tags are never in it) carries over. */
    if (o->etag == NULL && stale->etag) {
        o->etag = strdup(stale->etag);
        AN(o->etag);
        o->etag_len = stale->etag_len;
    }
    if (o->tags == NULL && stale->tags) {
        o->tags = malloc(stale->tags_len);
        AN(o->tags);
        memcpy(o->tags, stale->tags, stale->tags_len);
        o->tags_len = stale->tags_len;
    }
    o->policy = stale->policy;
    o->authorized = stale->authorized;
    o->has_chash = stale->has_chash;
    memcpy(o->chash, stale->chash, sizeof o->chash);
    o->chash_first_seen = stale->chash_first_seen;
    if (stale->vary_len) {
        o->vary = malloc(stale->vary_len);
        AN(o->vary);
        memcpy(o->vary, stale->vary, stale->vary_len);
        o->vary_len = stale->vary_len;
    }
    http_msg_free(&merged);
    return o;
}
