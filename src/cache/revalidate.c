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

void revalidate_fields(const struct cache_obj *stale, struct revalidate_fields *out)
{
    out->etag = obj_etag(stale);
    out->etag_len = stale->etag_len;
    out->ims_len = 0;
    if (stored_has_last_modified(&stale->timing)) {
        _Static_assert(sizeof out->ims == sizeof "If-Modified-Since: " - 1 + HTTP_DATE_LEN + 1,
                       "ims holds the value and a NUL");
        memcpy(out->ims, "If-Modified-Since: ", sizeof "If-Modified-Since: " - 1);
        http_date_format(stale->timing.last_modified,
                         out->ims + sizeof "If-Modified-Since: " - 1);
        out->ims_len = sizeof out->ims - 1;
    }
}

void revalidate_add_validators(struct evbuffer *out, const struct cache_obj *stale)
{
    struct revalidate_fields v;
    revalidate_fields(stale, &v);
    if (v.etag) {
        evbuffer_add(out, "If-None-Match: ", sizeof "If-None-Match: " - 1);
        evbuffer_add(out, v.etag, v.etag_len);
        evbuffer_add(out, "\r\n", 2);
    }
    if (v.ims_len) {
        evbuffer_add(out, v.ims, v.ims_len);
        evbuffer_add(out, "\r\n", 2);
    }
}

/* How many lines named `name` the stored head has; *value, *vlen: the
 * last one's value. */
static unsigned stored_lines(const struct cache_obj *o, const char *name, size_t nlen,
                             const char **value, size_t *vlen)
{
    const char *p = obj_head(o) + o->fields_off, *end = obj_head(o) + o->head_len;
    unsigned n = 0;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        FC_ASSERT(eol != NULL);
        if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            while (v < eol && *v == ' ')
                v++;
            *value = v;
            *vlen = (size_t)(eol - v);
            n++;
        }
        p = eol + 2;
    }
    return n;
}

/* The value of the stored head's only `name` line, or NULL (none, or more
 * than one). */
static const char *stored_value(const struct cache_obj *o, const char *name, size_t nlen,
                                size_t *vlen)
{
    const char *v = NULL;
    return stored_lines(o, name, nlen, &v, vlen) == 1 ? v : NULL;
}

/* Was the stored head made under the rewrite in force now?  (A reload may
 * have changed the policy since.) */
static bool same_rewrite(const struct cache_obj *stale, const struct head_rewrite *rw)
{
    const char *v;
    size_t vl;
    if (rw && rw->cache_control) {
        v = stored_value(stale, "Cache-Control", 13, &vl);
        if (v == NULL || vl != strlen(rw->cache_control) || memcmp(v, rw->cache_control, vl) != 0)
            return false;
    }
    if (rw && rw->drop_validators &&
        (stored_lines(stale, "ETag", 4, &v, &vl) || stored_lines(stale, "Last-Modified", 13, &v, &vl)))
        return false;
    return true;
}

static bool one_line(const struct http_msg *m, const struct http_field *f)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->n_fields; i++) {
        const struct http_field *g = &m->fields[i];
        if (!g->dead && g->name_len == f->name_len &&
            strncasecmp(http_field_name(m, g), http_field_name(m, f), f->name_len) == 0)
            n++;
    }
    return n == 1;
}

/* Does the 304 leave the stored head as it is, but for its Date?  That is
 * the usual answer to a revalidation (nginx's 304 carries Server, Date,
 * Last-Modified and ETag; a policy replaces Cache-Control anyway), and
 * then the merged head is a copy of the stored one with the new Date
 * written over the old (HTTP-dates are fixed-length), instead of parsing
 * the stored head, merging and serialising it again (callgrind: ~18 k
 * instructions of the ~65 k a revalidated request cost, docs/performance.md).
 * Anything else (a changed or new field, a repeated one, Via, tags)
 * takes the general merge. */
static bool head_unchanged(const struct cache_obj *stale, const struct http_msg *r,
                           const struct head_rewrite *rw, const char **date)
{
    *date = NULL;
    if (!same_rewrite(stale, rw))
        return false;
    for (uint32_t i = 0; i < r->n_fields; i++) {
        const struct http_field *f = &r->fields[i];
        const char *n = http_field_name(r, f);
        size_t nl = f->name_len;
        if (f->dead || http_is_hop_by_hop(r, f) || keep_stored(n, nl) ||
            http_token_eq(n, nl, "Age"))
            continue;
        if (rw && rw->cache_control && http_token_eq(n, nl, "Cache-Control"))
            continue;       /* the policy's replaces it in the head */
        if (rw && rw->drop_validators && http_token_eq(n, nl, "Last-Modified"))
            continue;       /* content-hash mode: not in the head */
        if (http_token_eq(n, nl, "Via") || http_token_eq(n, nl, "Cache-Status") ||
            obj_field_internal(n, nl) || !one_line(r, f))
            return false;
        size_t sl;
        const char *sv = stored_value(stale, n, nl, &sl);
        if (sv == NULL || sl != f->value_len)
            return false;
        if (http_token_eq(n, nl, "Date")) {
            *date = http_field_value(r, f);
            continue;
        }
        if (memcmp(sv, http_field_value(r, f), sl) != 0)
            return false;
    }
    return true;
}

struct cache_obj *revalidate_merge(const struct cache_obj *stale, const struct http_msg *resp304,
                                   time_t response_time, const struct head_rewrite *rw)
{
    struct cache_obj *o = obj_new_sharing(stale);
    const char *date;
    if (head_unchanged(stale, resp304, rw, &date)) {
        obj_copy_head(o, stale);
        if (date) {
            size_t dl;
            const char *sv = stored_value(stale, "Date", 4, &dl);
            memcpy(obj_head(o) + (sv - obj_head(stale)), date, dl);
        }
        return o;
    }
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
            if (!g->dead && g->name_len == f->name_len &&
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
    /* What the stored head no longer shows (content-hash mode drops the
     * origin's validators; tags are never in it) carries over. */
    rw2.inherit = stale;
    obj_set_head(o, &merged, rbuf, response_time, &rw2);
    http_msg_free(&merged);
    return o;
}
