/*
 * check_revalidate.c — revalidation with the origin (src/cache/revalidate.c):
 * the validators sent on a conditional request (RFC 9110 §13.1.1, §13.1.3)
 * and the 304 merge of RFC 9111 §4.3.4 / §3.2.  Client preconditions are
 * tested in check_conditional.c.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "freshcache/cache/cache_body.h"
#include "freshcache/cache/cache_key.h"
#include "freshcache/cache/cache_obj.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/http/http_date.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/cache/revalidate.h"

#define T0 ((time_t)1420070400)                 /* Thu, 01 Jan 2015 00:00:00 GMT */
#define T0_STR "Thu, 01 Jan 2015 00:00:00 GMT"

/* ------------------------------------------------------------- objects */

/* Text of o's head, NUL-terminated, in a static buffer. */
static const char *head_of(const struct cache_obj *o)
{
    static char buf[4096];
    ck_assert_uint_lt(o->head_len, sizeof buf);
    memcpy(buf, obj_head(o), o->head_len);
    buf[o->head_len] = '\0';
    return buf;
}

static unsigned count_of(const char *hay, const char *needle)
{
    unsigned n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* A stored object from `resp`, with a 5-byte complete body. */
static struct cache_obj *stored(const struct http_msg *resp, const char *reason,
                                const struct http_msg *req)
{
    struct cache_key k;
    ck_assert_int_eq(cache_key_build(&k, "h.example", 9, "/r?x=1", 6), 0);
    struct cache_obj *o = obj_new(&k);
    obj_set_head(o, resp, reason, T0, NULL);
    if (req)
        ck_assert(vary_build(o, resp, req));
    body_start(o->body, 5);
    body_append(o->body, "hello", 5);
    body_finish(o->body, BODY_COMPLETE);
    return o;
}

START_TEST(add_validators)
{
    struct cache_key k;
    ck_assert_int_eq(cache_key_build(&k, "h", 1, "/", 1), 0);
    struct cache_obj *o = obj_new(&k);
    struct evbuffer *b = evbuffer_new();
    revalidate_add_validators(b, o);
    ck_assert_uint_eq(evbuffer_get_length(b), 0);

    struct http_msg resp;
    http_msg_init(&resp);
    resp.status = 200;
    http_msg_add_str(&resp, "ETag", "W/\"abc\"");
    obj_set_head(o, &resp, "OK", T0, NULL);
    http_msg_free(&resp);
    o->timing.flags |= STORED_HAS_LAST_MODIFIED;
    o->timing.last_modified = T0 - 86400;
    revalidate_add_validators(b, o);
    char out[256];
    size_t n = evbuffer_get_length(b);
    ck_assert_uint_lt(n, sizeof out);
    evbuffer_remove(b, out, n);
    out[n] = '\0';
    ck_assert_str_eq(out, "If-None-Match: W/\"abc\"\r\n"
                          "If-Modified-Since: Wed, 31 Dec 2014 00:00:00 GMT\r\n");
    evbuffer_free(b);
    obj_unref(o);
}
END_TEST

START_TEST(merge_replaces_fields)
{
    struct http_msg resp;
    http_msg_init(&resp);
    resp.status = 200;
    http_msg_add_str(&resp, "Date", T0_STR);
    http_msg_add_str(&resp, "Content-Type", "text/plain");
    http_msg_add_str(&resp, "Cache-Control", "max-age=60");
    http_msg_add_str(&resp, "ETag", "\"v1\"");
    http_msg_add_str(&resp, "Link", "</a>; rel=preload");
    http_msg_add_str(&resp, "X-Keep", "kept");
    http_msg_add_str(&resp, "link", "</b>; rel=preload");
    http_msg_add_str(&resp, "Content-Length", "5");
    struct cache_obj *stale = stored(&resp, "Fine", NULL);
    http_msg_free(&resp);
    const char *sh = head_of(stale);
    ck_assert_uint_eq(count_of(sh, "</a>"), 1);
    ck_assert_uint_eq(count_of(sh, "Content-Length"), 0);

    struct http_msg r304;
    http_msg_init(&r304);
    r304.status = 304;
    http_msg_add_str(&r304, "Date", "Fri, 02 Jan 2015 00:00:00 GMT");
    http_msg_add_str(&r304, "Cache-Control", "max-age=120");
    http_msg_add_str(&r304, "ETag", "\"v2\"");
    http_msg_add_str(&r304, "Link", "</c>; rel=preload");
    http_msg_add_str(&r304, "X-New", "one");
    http_msg_add_str(&r304, "X-New", "two");
    http_msg_add_str(&r304, "Content-Length", "0");
    http_msg_add_str(&r304, "Age", "30");
    http_msg_add_str(&r304, "Connection", "close, X-Hop");
    http_msg_add_str(&r304, "X-Hop", "h");
    http_msg_add_str(&r304, "Keep-Alive", "timeout=5");

    struct cache_obj *o = revalidate_merge(stale, &r304, T0 + 86400, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_ptr_ne(o, stale);
    ck_assert(!obj_ready(o));
    const char *h = head_of(o);

    /* the status line is the stored response's */
    ck_assert_int_eq(o->status, 200);
    ck_assert_int_eq(strncmp(h, "HTTP/1.1 200 Fine\r\n", 19), 0);
    size_t rl;
    const char *reason = obj_reason(o, &rl);
    ck_assert_uint_eq(rl, 4);
    ck_assert_int_eq(memcmp(reason, "Fine", 4), 0);

    /* replaced */
    ck_assert_uint_eq(count_of(h, "Date: "), 1);
    ck_assert_ptr_nonnull(strstr(h, "\r\nDate: Fri, 02 Jan 2015 00:00:00 GMT\r\n"));
    ck_assert_uint_eq(count_of(h, "Cache-Control: "), 1);
    ck_assert_ptr_nonnull(strstr(h, "\r\nCache-Control: max-age=120\r\n"));
    /* ...but not the validators: the 304 selected the stored response by
     * them and they still describe its body (http-cache-tests
     * 304-etag-update-response-ETag) */
    ck_assert_uint_eq(count_of(h, "ETag: "), 1);
    ck_assert_ptr_nonnull(strstr(h, "\r\nETag: \"v1\"\r\n"));
    ck_assert_str_eq(obj_etag(o), "\"v1\"");
    ck_assert_uint_eq(o->etag_len, 4);
    /* every stored line of a repeated field goes, whatever its case */
    ck_assert_uint_eq(count_of(h, "</a>"), 0);
    ck_assert_uint_eq(count_of(h, "</b>"), 0);
    ck_assert_uint_eq(count_of(h, "</c>"), 1);
    /* all lines of a repeated 304 field come in, in order */
    ck_assert_ptr_nonnull(strstr(h, "\r\nX-New: one\r\nX-New: two\r\n"));
    /* kept */
    ck_assert_ptr_nonnull(strstr(h, "\r\nContent-Type: text/plain\r\n"));
    ck_assert_ptr_nonnull(strstr(h, "\r\nX-Keep: kept\r\n"));
    /* not taken from the 304 */
    ck_assert_uint_eq(count_of(h, "Content-Length"), 0);
    ck_assert_uint_eq(count_of(h, "Age:"), 0);
    ck_assert_uint_eq(count_of(h, "Connection"), 0);
    ck_assert_uint_eq(count_of(h, "X-Hop"), 0);
    ck_assert_uint_eq(count_of(h, "Keep-Alive"), 0);
    /* one Via, ours */
    ck_assert_uint_eq(count_of(h, "Via: "), 1);
    ck_assert_ptr_nonnull(strstr(h, "\r\nVia: 1.1 freshcache\r\n"));
    /* the head round-trips through obj_head_to_msg */
    struct http_msg back;
    http_msg_init(&back);
    obj_head_to_msg(o, &back);
    size_t vl;
    const char *v = http_msg_get(&back, "cache-control", &vl);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(strncmp(v, "max-age=120", vl), 0);
    ck_assert_uint_eq(vl, 11);
    http_msg_free(&back);

    http_msg_free(&r304);
    obj_unref(o);
    obj_unref(stale);
}
END_TEST

START_TEST(merge_keeps_framing_fields)
{
    struct http_msg resp;
    http_msg_init(&resp);
    resp.status = 200;
    http_msg_add_str(&resp, "Content-Encoding", "gzip");
    http_msg_add_str(&resp, "Content-Type", "text/html");
    struct cache_obj *stale = stored(&resp, "OK", NULL);
    http_msg_free(&resp);

    struct http_msg r304;
    http_msg_init(&r304);
    r304.status = 304;
    http_msg_add_str(&r304, "Content-Encoding", "identity");
    http_msg_add_str(&r304, "Content-Length", "1234");
    http_msg_add_str(&r304, "Transfer-Encoding", "chunked");
    http_msg_add_str(&r304, "Content-Type", "text/plain");
    struct cache_obj *o = revalidate_merge(stale, &r304, T0, NULL);
    const char *h = head_of(o);
    ck_assert_ptr_nonnull(strstr(h, "\r\nContent-Encoding: gzip\r\n"));
    ck_assert_uint_eq(count_of(h, "Content-Encoding"), 1);
    ck_assert_uint_eq(count_of(h, "Content-Length"), 0);
    ck_assert_uint_eq(count_of(h, "Transfer-Encoding"), 0);
    ck_assert_ptr_nonnull(strstr(h, "\r\nContent-Type: text/plain\r\n"));
    ck_assert_uint_eq(count_of(h, "Content-Type"), 1);
    /* an empty 304 keeps the stored ETag-less state and Date */
    ck_assert_ptr_null(obj_etag(o));
    ck_assert_uint_eq(count_of(h, "Date: "), 1);
    http_msg_free(&r304);
    obj_unref(o);
    obj_unref(stale);
}
END_TEST

START_TEST(merge_shares_body_and_copies_vary)
{
    struct http_msg req;
    http_msg_init(&req);
    http_msg_add_str(&req, "Accept-Encoding", "gzip");
    struct http_msg resp;
    http_msg_init(&resp);
    resp.status = 200;
    http_msg_add_str(&resp, "Vary", "Accept-Encoding");
    http_msg_add_str(&resp, "ETag", "\"v1\"");
    struct cache_obj *stale = stored(&resp, "OK", &req);
    http_msg_free(&resp);
    stale->generation = 7;
    ck_assert_uint_gt(stale->vary_len, 0);
    struct cache_body *b = stale->body;
    ck_assert_uint_eq(atomic_load(&b->refcnt), 1);

    struct http_msg r304;
    http_msg_init(&r304);
    r304.status = 304;
    http_msg_add_str(&r304, "Cache-Control", "max-age=5");
    struct cache_obj *o = revalidate_merge(stale, &r304, T0, NULL);
    http_msg_free(&r304);

    /* the same body, one more reference */
    ck_assert_ptr_eq(o->body, b);
    ck_assert_uint_eq(atomic_load(&b->refcnt), 2);
    /* the same key and variant */
    ck_assert_uint_eq(o->key_len, stale->key_len);
    ck_assert_str_eq(o->key, stale->key);
    ck_assert_uint_eq(o->hash, stale->hash);
    ck_assert_uint_eq(o->vary_len, stale->vary_len);
    ck_assert_ptr_ne(obj_vary(o), obj_vary(stale));
    ck_assert_int_eq(memcmp(obj_vary(o), obj_vary(stale), o->vary_len), 0);
    ck_assert(vary_match(o, &req));
    /* generations are stamped by the policy step (obj_apply_policy), not
     * copied from the stale copy */
    ck_assert_uint_eq(o->generation, 0);
    /* the stored ETag stays when the 304 has none */
    ck_assert_str_eq(obj_etag(o), "\"v1\"");
    ck_assert_ptr_nonnull(strstr(head_of(o), "\r\nVary: Accept-Encoding\r\n"));

    /* the old object goes; the body lives on in the new one */
    obj_unref(stale);
    ck_assert_uint_eq(atomic_load(&b->refcnt), 1);
    ck_assert_uint_eq(body_total(o->body), 5);
    ck_assert_int_eq(body_state(o->body), BODY_COMPLETE);
    struct evbuffer *out = evbuffer_new();
    struct body_cursor cur = { 0 };
    ck_assert_uint_eq(body_read_into(o->body, &cur, out, SIZE_MAX), 5);
    char got[6] = { 0 };
    evbuffer_remove(out, got, 5);
    ck_assert_str_eq(got, "hello");
    evbuffer_free(out);
    obj_unref(o);
    http_msg_free(&req);
}
END_TEST

/*
 * Regression (fixed; src/revalidate.c, revalidate_merge): the merge removes every
 * Via line of the stored head ("Via is already in the stored head") and
 * obj_set_head() then adds only "Via: 1.1 freshcache", so the origin-side
 * Via entries of the stored response are lost although the 304 carried no
 * Via: the stored head "Via: 1.1 upstream, 1.1 freshcache" becomes
 * "Via: 1.1 freshcache".
 */
START_TEST(merge_keeps_upstream_via)
{
    struct http_msg resp;
    http_msg_init(&resp);
    resp.status = 200;
    http_msg_add_str(&resp, "Via", "1.1 upstream");
    struct cache_obj *stale = stored(&resp, "OK", NULL);
    http_msg_free(&resp);
    ck_assert_ptr_nonnull(strstr(head_of(stale), "\r\nVia: 1.1 upstream, 1.1 freshcache\r\n"));

    struct http_msg r304;
    http_msg_init(&r304);
    r304.status = 304;
    http_msg_add_str(&r304, "Cache-Control", "max-age=5");
    struct cache_obj *o = revalidate_merge(stale, &r304, T0, NULL);
    http_msg_free(&r304);
    const char *h = head_of(o);
    ck_assert_uint_eq(count_of(h, "freshcache"), 1);
    ck_assert_msg(strstr(h, "\r\nVia: 1.1 upstream, 1.1 freshcache\r\n") != NULL,
                  "upstream Via lost: %s", h);
    obj_unref(o);
    obj_unref(stale);
}
END_TEST

/* A 304 that repeats the stored fields and brings only a new Date (the
 * usual answer) gives a copy of the stored head with that Date; one that
 * changes a field or repeats one gets the general merge. */
START_TEST(merge_unchanged_head_takes_the_new_date)
{
    struct http_msg resp;
    http_msg_init(&resp);
    resp.status = 200;
    http_msg_add_str(&resp, "Server", "origin/1");
    http_msg_add_str(&resp, "Date", "Mon, 02 Nov 2026 10:00:00 GMT");
    http_msg_add_str(&resp, "ETag", "\"v1\"");
    http_msg_add_str(&resp, "Surrogate-Key", "a b");
    struct cache_obj *stale = stored(&resp, "OK", NULL);
    http_msg_free(&resp);
    char before[4096];
    snprintf(before, sizeof before, "%s", head_of(stale));

    struct http_msg r304;
    http_msg_init(&r304);
    r304.status = 304;
    http_msg_add_str(&r304, "Server", "origin/1");
    http_msg_add_str(&r304, "Date", "Mon, 02 Nov 2026 10:00:07 GMT");
    http_msg_add_str(&r304, "ETag", "\"v1\"");
    http_msg_add_str(&r304, "Connection", "keep-alive");
    struct cache_obj *o = revalidate_merge(stale, &r304, T0, NULL);
    http_msg_free(&r304);
    const char *h = head_of(o);
    ck_assert_uint_eq(strlen(h), strlen(before));
    ck_assert_ptr_nonnull(strstr(h, "\r\nDate: Mon, 02 Nov 2026 10:00:07 GMT\r\n"));
    ck_assert_uint_eq(count_of(h, "Date: "), 1);
    ck_assert_ptr_nonnull(strstr(h, "\r\nServer: origin/1\r\n"));
    ck_assert_str_eq(obj_etag(o), "\"v1\"");
    ck_assert_uint_eq(o->tags_len, 4);
    ck_assert_str_eq(obj_tags(o), "a");
    ck_assert_str_eq(obj_tags(o) + 2, "b");
    ck_assert_ptr_eq(o->body, stale->body);
    ck_assert_int_eq(o->status, 200);
    obj_unref(o);

    /* A changed field: the general merge. */
    http_msg_init(&r304);
    r304.status = 304;
    http_msg_add_str(&r304, "Server", "origin/2");
    http_msg_add_str(&r304, "Date", "Mon, 02 Nov 2026 10:00:09 GMT");
    o = revalidate_merge(stale, &r304, T0, NULL);
    http_msg_free(&r304);
    h = head_of(o);
    ck_assert_ptr_nonnull(strstr(h, "\r\nServer: origin/2\r\n"));
    ck_assert_uint_eq(count_of(h, "Server: "), 1);
    ck_assert_ptr_nonnull(strstr(h, "\r\nDate: Mon, 02 Nov 2026 10:00:09 GMT\r\n"));
    ck_assert_str_eq(obj_etag(o), "\"v1\"");
    ck_assert_uint_eq(o->tags_len, 4);
    obj_unref(o);

    /* A field the stored head lacks: added. */
    http_msg_init(&r304);
    r304.status = 304;
    http_msg_add_str(&r304, "X-New", "1");
    o = revalidate_merge(stale, &r304, T0, NULL);
    http_msg_free(&r304);
    h = head_of(o);
    ck_assert_ptr_nonnull(strstr(h, "\r\nX-New: 1\r\n"));
    ck_assert_ptr_nonnull(strstr(h, "\r\nDate: Mon, 02 Nov 2026 10:00:00 GMT\r\n"));
    obj_unref(o);
    obj_unref(stale);
}
END_TEST

START_TEST(merge_with_rewrite)
{
    /* A policy's Cache-Control replaces both the stored and the 304's. */
    struct http_msg resp;
    http_msg_init(&resp);
    resp.status = 200;
    http_msg_add_str(&resp, "Cache-Control", "max-age=60");
    http_msg_add_str(&resp, "ETag", "\"v1\"");
    struct cache_obj *stale = stored(&resp, "OK", NULL);
    http_msg_free(&resp);

    struct http_msg r304;
    http_msg_init(&r304);
    r304.status = 304;
    http_msg_add_str(&r304, "Cache-Control", "no-cache");
    struct head_rewrite rw = { .cache_control = "public, max-age=300", .drop_validators = true };
    struct cache_obj *o = revalidate_merge(stale, &r304, T0, &rw);
    http_msg_free(&r304);
    const char *h = head_of(o);
    ck_assert_uint_eq(count_of(h, "Cache-Control: "), 1);
    ck_assert_ptr_nonnull(strstr(h, "\r\nCache-Control: public, max-age=300\r\n"));
    ck_assert_uint_eq(count_of(h, "ETag"), 0);
    /* the stored validator carries over though the head no longer shows it */
    ck_assert_str_eq(obj_etag(o), "\"v1\"");
    obj_unref(o);
    obj_unref(stale);
}
END_TEST

/* Content-hash mode: the hash lives in the head's allocation (chash_room)
 * and goes with the shared body into the merged object, by the copied
 * head (a 304 that changes nothing) and by the general merge alike. */
START_TEST(merge_carries_the_content_hash)
{
    struct http_msg resp;
    http_msg_init(&resp);
    resp.status = 200;
    http_msg_add_str(&resp, "ETag", "\"v1\"");
    http_msg_add_str(&resp, "Surrogate-Key", "a b");
    http_msg_add_str(&resp, "Date", T0_STR);
    struct head_rewrite rw = { .drop_validators = true };
    struct cache_key k;
    ck_assert_int_eq(cache_key_build(&k, "h.example", 9, "/c", 2), 0);
    struct cache_obj *stale = obj_new(&k);
    obj_set_head(stale, &resp, "OK", T0, &rw);
    http_msg_free(&resp);
    ck_assert(stale->chash_room);
    ck_assert(!stale->has_chash);
    unsigned char *h = obj_chash(stale);
    for (int i = 0; i < OBJ_CHASH_LEN; i++)
        h[i] = (unsigned char)(0xa0 + i);
    stale->has_chash = true;
    /* the hash sits after the ETag and the tags, which stay intact */
    ck_assert_str_eq(obj_etag(stale), "\"v1\"");
    ck_assert_str_eq(obj_tags(stale), "a");
    ck_assert_str_eq(obj_tags(stale) + 2, "b");

    const char *dates[] = { "Fri, 02 Jan 2015 00:00:00 GMT", NULL };
    for (int path = 0; path < 2; path++) {
        struct http_msg r304;
        http_msg_init(&r304);
        r304.status = 304;
        http_msg_add_str(&r304, "Date", dates[0]);
        if (path == 1)
            http_msg_add_str(&r304, "X-New", "1");  /* not in the stored head: general merge */
        struct cache_obj *o = revalidate_merge(stale, &r304, T0 + 86400, &rw);
        http_msg_free(&r304);
        ck_assert_msg(o->chash_room && o->has_chash, "path %d", path);
        ck_assert_msg(memcmp(obj_chash(o), obj_chash(stale), OBJ_CHASH_LEN) == 0, "path %d",
                      path);
        ck_assert_ptr_ne(obj_chash(o), obj_chash(stale));
        ck_assert_str_eq(obj_etag(o), "\"v1\"");
        ck_assert_uint_eq(o->tags_len, 4);
        ck_assert_uint_eq(count_of(head_of(o), dates[0]), 1);
        ck_assert_uint_eq(count_of(head_of(o), "X-New"), (unsigned)path);
        obj_unref(o);
    }
    /* identity mode: no room, no hash */
    struct cache_obj *plain = obj_new(&k);
    http_msg_init(&resp);
    resp.status = 200;
    obj_set_head(plain, &resp, "OK", T0, NULL);
    http_msg_free(&resp);
    ck_assert(!plain->chash_room && !plain->has_chash);
    obj_unref(plain);
    obj_unref(stale);
}
END_TEST


/* A sealed stale copy (one block, obj_seal): the merge gets a head of its
 * own and serves the sealed object's bytes, holding that object. */
START_TEST(merge_of_a_sealed_object)
{
    struct http_msg resp;
    http_msg_init(&resp);
    resp.status = 200;
    http_msg_add_str(&resp, "Cache-Control", "max-age=1");
    http_msg_add_str(&resp, "ETag", "\"v1\"");
    http_msg_add_str(&resp, "Surrogate-Key", "a b");
    struct cache_obj *filled = stored(&resp, "OK", NULL);
    http_msg_free(&resp);
    obj_set_ready(filled);
    struct cache_obj *stale = obj_seal(filled);
    ck_assert_ptr_nonnull(stale);
    obj_unref(filled);
    ck_assert(stale->sealed);
    ck_assert_str_eq(obj_etag(stale), "\"v1\"");
    ck_assert_int_eq(memcmp(obj_tags(stale), "a\0b\0", 4), 0);

    struct http_msg r304;
    http_msg_init(&r304);
    r304.status = 304;
    http_msg_add_str(&r304, "Cache-Control", "max-age=60");
    struct cache_obj *o = revalidate_merge(stale, &r304, T0 + 10, NULL);
    http_msg_free(&r304);
    /* the head is replaced, in the copy's own allocation */
    ck_assert(!o->sealed && o->inline_body);
    ck_assert_ptr_eq(o->body_owner, stale);
    ck_assert_ptr_nonnull(strstr(head_of(o), "Cache-Control: max-age=60\r\n"));
    ck_assert_ptr_null(strstr(head_of(o), "max-age=1\r\n"));
    ck_assert_ptr_nonnull(strstr(head_of(stale), "Cache-Control: max-age=1\r\n"));
    ck_assert_str_eq(obj_etag(o), "\"v1\"");
    ck_assert_int_eq(memcmp(obj_tags(o), "a\0b\0", 4), 0);
    ck_assert_uint_eq(atomic_load(&stale->refcnt), 2);

    /* the stale object goes from the index; its bytes live on */
    obj_unref(stale);
    ck_assert_uint_eq(obj_body_total(o), 5);
    ck_assert_int_eq(obj_body_state(o), BODY_COMPLETE);
    struct evbuffer *out = evbuffer_new();
    struct body_cursor cur = { 0 };
    ck_assert_uint_eq(obj_body_read(o, &cur, out, SIZE_MAX), 5);
    obj_unref(o);           /* the evbuffer's reference holds the block */
    char got[6] = { 0 };
    evbuffer_remove(out, got, 5);
    ck_assert_str_eq(got, "hello");
    evbuffer_free(out);     /* freed now (ASan/LSan check) */
}
END_TEST

static Suite *revalidate_suite(void)
{
    Suite *s = suite_create("revalidate");
    TCase *v = tcase_create("validators");
    tcase_add_test(v, add_validators);
    suite_add_tcase(s, v);

    TCase *m = tcase_create("merge");
    tcase_add_test(m, merge_replaces_fields);
    tcase_add_test(m, merge_keeps_framing_fields);
    tcase_add_test(m, merge_shares_body_and_copies_vary);
    tcase_add_test(m, merge_of_a_sealed_object);
    tcase_add_test(m, merge_carries_the_content_hash);
    tcase_add_test(m, merge_with_rewrite);
    tcase_add_test(m, merge_unchanged_head_takes_the_new_date);
    suite_add_tcase(s, m);

    /* Regression tests for bugs these suites found in src/ (see their
     * comments). */
    TCase *kb = tcase_create("regressions");
    tcase_set_tags(kb, "regression");
    tcase_add_test(kb, merge_keeps_upstream_via);
    suite_add_tcase(s, kb);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(revalidate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
