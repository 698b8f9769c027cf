/*
 * check_revalidate.c — entity-tag comparison, client preconditions in
 * RFC 9110 §13.2.2 order, validators sent to the origin, and the 304 merge
 * of RFC 9111 §4.3.4 / §3.2.
 */
#include <check.h>
#include <stdarg.h>
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
#include "freshcache/http/conditional.h"

#define T0 ((time_t)1420070400)                 /* Thu, 01 Jan 2015 00:00:00 GMT */
#define T0_STR "Thu, 01 Jan 2015 00:00:00 GMT"

/* ---------------------------------------------------------------- etags */

static bool weak(const char *list, const char *etag)
{
    return etag_list_match_weak(list, strlen(list), etag, strlen(etag));
}

static bool strong(const char *list, const char *etag)
{
    return etag_list_match_strong(list, strlen(list), etag, strlen(etag));
}

START_TEST(etag_weak_comparison)
{
    ck_assert(weak("\"a\"", "\"a\""));
    ck_assert(weak("W/\"a\"", "\"a\""));
    ck_assert(weak("\"a\"", "W/\"a\""));
    ck_assert(weak("W/\"a\"", "W/\"a\""));
    ck_assert(!weak("\"b\"", "\"a\""));
    ck_assert(!weak("W/\"b\"", "W/\"a\""));
    ck_assert(!weak("\"A\"", "\"a\""));             /* opaque-tags are case-sensitive */
    ck_assert(!weak("\"a\"", "\"ab\""));
    ck_assert(!weak("\"ab\"", "\"a\""));
    /* "W/" is case-sensitive: w/"a" is not a weak "a" */
    ck_assert(!weak("w/\"a\"", "\"a\""));
    /* lists */
    ck_assert(weak("\"x\", \"y\", \"a\"", "\"a\""));
    ck_assert(weak("\"x\",W/\"a\"", "\"a\""));
    ck_assert(weak(" \"x\" ,\t\"a\"\t", "W/\"a\""));
    ck_assert(!weak("\"x\", \"y\"", "\"a\""));
    /* a comma inside a tag does not split it */
    ck_assert(weak("\"x\", \"a,b\"", "\"a,b\""));
    ck_assert(!weak("\"a,b\"", "\"a\""));
    ck_assert(!weak("\"a,b\"", "\"b\""));
    /* * matches any current representation */
    ck_assert(weak("*", "\"a\""));
    ck_assert(weak("*", "W/\"zzz\""));
    /* empty */
    ck_assert(!weak("", "\"a\""));
    ck_assert(!weak(" , ", "\"a\""));
}
END_TEST

START_TEST(etag_strong_comparison)
{
    ck_assert(strong("\"a\"", "\"a\""));
    ck_assert(!strong("W/\"a\"", "\"a\""));         /* a weak tag never matches strongly */
    ck_assert(!strong("\"a\"", "W/\"a\""));
    ck_assert(!strong("W/\"a\"", "W/\"a\""));
    ck_assert(!strong("\"b\"", "\"a\""));
    ck_assert(!strong("\"A\"", "\"a\""));
    ck_assert(strong("W/\"a\", \"a\"", "\"a\""));
    ck_assert(strong("\"x\",\"a\"", "\"a\""));
    ck_assert(!strong("\"x\", W/\"a\"", "\"a\""));
    ck_assert(strong("*", "\"a\""));
    ck_assert(strong("\"a,b\"", "\"a,b\""));
    ck_assert(!strong("", "\"a\""));
}
END_TEST

/* ---------------------------------------------------------- preconditions */

static struct validators val(int status, const char *etag, bool has_lm, time_t lm)
{
    struct validators v = { 0 };
    v.status = status;
    v.etag = etag;
    v.etag_len = etag ? strlen(etag) : 0;
    v.has_last_modified = has_lm;
    v.last_modified = lm;
    return v;
}

/* A request with the given fields: pairs of name, value, ending in NULL. */
static enum cond_result eval(const struct validators *v, ...)
{
    struct http_msg req;
    http_msg_init(&req);
    req.method = 1;     /* GET */
    va_list ap;
    va_start(ap, v);
    const char *n;
    while ((n = va_arg(ap, const char *)) != NULL)
        http_msg_add_str(&req, n, va_arg(ap, const char *));
    va_end(ap);
    enum cond_result r = cond_evaluate(&req, v);
    http_msg_free(&req);
    return r;
}

static const char *date_str(time_t t)
{
    static char buf[4][HTTP_DATE_LEN + 1];
    static int i;
    i = (i + 1) % 4;
    http_date_format(t, buf[i]);
    return buf[i];
}

START_TEST(cond_none_without_preconditions)
{
    struct validators v = val(200, "\"a\"", true, T0);
    ck_assert_int_eq(eval(&v, NULL), COND_NONE);
    ck_assert_int_eq(eval(&v, "Accept", "*/*", "Cache-Control", "no-cache", NULL), COND_NONE);
}
END_TEST

START_TEST(cond_if_none_match)
{
    struct validators v = val(200, "\"v1\"", true, T0);
    ck_assert_int_eq(eval(&v, "If-None-Match", "\"v1\"", NULL), COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&v, "If-None-Match", "W/\"v1\"", NULL), COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&v, "If-None-Match", "\"v0\", \"v1\"", NULL), COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&v, "If-None-Match", "*", NULL), COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&v, "If-None-Match", "\"v2\"", NULL), COND_NONE);
    ck_assert_int_eq(eval(&v, "if-none-match", "\"v1\"", NULL), COND_NOT_MODIFIED);

    /* a weak stored tag: weak comparison still matches */
    struct validators w = val(200, "W/\"v1\"", false, 0);
    ck_assert_int_eq(eval(&w, "If-None-Match", "\"v1\"", NULL), COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&w, "If-None-Match", "W/\"v1\"", NULL), COND_NOT_MODIFIED);

    /* no stored ETag: only * matches */
    struct validators n = val(200, NULL, true, T0);
    ck_assert_int_eq(eval(&n, "If-None-Match", "\"v1\"", NULL), COND_NONE);
    ck_assert_int_eq(eval(&n, "If-None-Match", "*", NULL), COND_NOT_MODIFIED);
}
END_TEST

START_TEST(cond_if_none_match_takes_precedence)
{
    struct validators v = val(200, "\"v1\"", true, T0);
    /* IMS alone says "not modified" ... */
    ck_assert_int_eq(eval(&v, "If-Modified-Since", date_str(T0 + 10), NULL), COND_NOT_MODIFIED);
    /* ... but If-None-Match is evaluated instead of it (§13.1.3) */
    ck_assert_int_eq(eval(&v, "If-None-Match", "\"other\"",
                          "If-Modified-Since", date_str(T0 + 10), NULL), COND_NONE);
    ck_assert_int_eq(eval(&v, "If-Modified-Since", date_str(T0 + 10),
                          "If-None-Match", "\"other\"", NULL), COND_NONE);
    /* and the other way round: a matching tag wins over an old date */
    ck_assert_int_eq(eval(&v, "If-None-Match", "\"v1\"",
                          "If-Modified-Since", date_str(T0 - 1000), NULL), COND_NOT_MODIFIED);
}
END_TEST

START_TEST(cond_if_modified_since)
{
    struct validators v = val(200, NULL, true, T0);
    ck_assert_int_eq(eval(&v, "If-Modified-Since", T0_STR, NULL), COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&v, "If-Modified-Since", date_str(T0 + 1), NULL), COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&v, "If-Modified-Since", date_str(T0 - 1), NULL), COND_NONE);
    /* obsolete date formats are accepted */
    ck_assert_int_eq(eval(&v, "If-Modified-Since", "Thursday, 01-Jan-15 00:00:00 GMT", NULL),
                     COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&v, "If-Modified-Since", "Thu Jan  1 00:00:00 2015", NULL),
                     COND_NOT_MODIFIED);
    /* an invalid date is ignored */
    ck_assert_int_eq(eval(&v, "If-Modified-Since", "yesterday", NULL), COND_NONE);
    ck_assert_int_eq(eval(&v, "If-Modified-Since", "", NULL), COND_NONE);

    /* without Last-Modified the Date stands in */
    struct validators d = val(200, "\"e\"", false, 0);
    d.has_date = true;
    d.date = T0 + 100;
    ck_assert_int_eq(eval(&d, "If-Modified-Since", date_str(T0 + 100), NULL), COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&d, "If-Modified-Since", date_str(T0 + 99), NULL), COND_NONE);
    /* and with neither nothing is known */
    struct validators z = val(200, "\"e\"", false, 0);
    ck_assert_int_eq(eval(&z, "If-Modified-Since", date_str(T0 + 1000000), NULL), COND_NONE);
}
END_TEST

START_TEST(cond_if_match)
{
    struct validators v = val(200, "\"v1\"", true, T0);
    ck_assert_int_eq(eval(&v, "If-Match", "\"v1\"", NULL), COND_NONE);
    ck_assert_int_eq(eval(&v, "If-Match", "\"v0\", \"v1\"", NULL), COND_NONE);
    ck_assert_int_eq(eval(&v, "If-Match", "*", NULL), COND_NONE);
    ck_assert_int_eq(eval(&v, "If-Match", "\"v2\"", NULL), COND_PRECONDITION_FAILED);
    /* strong comparison: a weak tag in If-Match never matches */
    ck_assert_int_eq(eval(&v, "If-Match", "W/\"v1\"", NULL), COND_PRECONDITION_FAILED);
    struct validators w = val(200, "W/\"v1\"", true, T0);
    ck_assert_int_eq(eval(&w, "If-Match", "W/\"v1\"", NULL), COND_PRECONDITION_FAILED);
    ck_assert_int_eq(eval(&w, "If-Match", "\"v1\"", NULL), COND_PRECONDITION_FAILED);
    ck_assert_int_eq(eval(&w, "If-Match", "*", NULL), COND_NONE);
    /* no stored ETag: only * passes */
    struct validators n = val(200, NULL, true, T0);
    ck_assert_int_eq(eval(&n, "If-Match", "\"v1\"", NULL), COND_PRECONDITION_FAILED);
    ck_assert_int_eq(eval(&n, "If-Match", "*", NULL), COND_NONE);
}
END_TEST

START_TEST(cond_if_unmodified_since)
{
    struct validators v = val(200, "\"v1\"", true, T0);
    ck_assert_int_eq(eval(&v, "If-Unmodified-Since", T0_STR, NULL), COND_NONE);
    ck_assert_int_eq(eval(&v, "If-Unmodified-Since", date_str(T0 + 5), NULL), COND_NONE);
    ck_assert_int_eq(eval(&v, "If-Unmodified-Since", date_str(T0 - 5), NULL),
                     COND_PRECONDITION_FAILED);
    /* invalid date, or no Last-Modified: ignored */
    ck_assert_int_eq(eval(&v, "If-Unmodified-Since", "garbage", NULL), COND_NONE);
    struct validators n = val(200, "\"v1\"", false, 0);
    ck_assert_int_eq(eval(&n, "If-Unmodified-Since", date_str(T0 - 5), NULL), COND_NONE);
}
END_TEST

START_TEST(cond_order)
{
    struct validators v = val(200, "\"v1\"", true, T0);
    /* 1 before 3: a failed If-Match is 412 even when If-None-Match matches */
    ck_assert_int_eq(eval(&v, "If-None-Match", "\"v1\"", "If-Match", "\"nope\"", NULL),
                     COND_PRECONDITION_FAILED);
    /* If-Match passes, then If-None-Match decides */
    ck_assert_int_eq(eval(&v, "If-Match", "\"v1\"", "If-None-Match", "\"v1\"", NULL),
                     COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&v, "If-Match", "\"v1\"", "If-None-Match", "\"v9\"", NULL), COND_NONE);
    /* 2 only without If-Match: a passing If-Match overrides a failing IUS */
    ck_assert_int_eq(eval(&v, "If-Match", "\"v1\"",
                          "If-Unmodified-Since", date_str(T0 - 5), NULL), COND_NONE);
    ck_assert_int_eq(eval(&v, "If-Match", "*",
                          "If-Unmodified-Since", date_str(T0 - 5), NULL), COND_NONE);
    /* 2 before 3 and 4 */
    ck_assert_int_eq(eval(&v, "If-Unmodified-Since", date_str(T0 - 5),
                          "If-None-Match", "\"v1\"", NULL), COND_PRECONDITION_FAILED);
    ck_assert_int_eq(eval(&v, "If-Unmodified-Since", date_str(T0 - 5),
                          "If-Modified-Since", date_str(T0 + 5), NULL), COND_PRECONDITION_FAILED);
    /* IUS passes, then 4 */
    ck_assert_int_eq(eval(&v, "If-Unmodified-Since", date_str(T0 + 5),
                          "If-Modified-Since", date_str(T0 + 5), NULL), COND_NOT_MODIFIED);
    /* If-Match passes, then 4 */
    ck_assert_int_eq(eval(&v, "If-Match", "\"v1\"",
                          "If-Modified-Since", date_str(T0), NULL), COND_NOT_MODIFIED);
}
END_TEST

START_TEST(cond_only_for_2xx)
{
    static const int non2xx[] = { 100, 199, 300, 301, 304, 404, 410, 500 };
    for (size_t i = 0; i < sizeof non2xx / sizeof *non2xx; i++) {
        struct validators v = val(non2xx[i], "\"v1\"", true, T0);
        ck_assert_msg(eval(&v, "If-None-Match", "\"v1\"", NULL) == COND_NONE, "%d", non2xx[i]);
        ck_assert_msg(eval(&v, "If-None-Match", "*", NULL) == COND_NONE, "%d", non2xx[i]);
        ck_assert_msg(eval(&v, "If-Match", "\"x\"", NULL) == COND_NONE, "%d", non2xx[i]);
        ck_assert_msg(eval(&v, "If-Modified-Since", date_str(T0 + 9), NULL) == COND_NONE, "%d",
                      non2xx[i]);
        ck_assert_msg(eval(&v, "If-Unmodified-Since", date_str(T0 - 9), NULL) == COND_NONE, "%d",
                      non2xx[i]);
    }
    static const int ok[] = { 200, 203, 204, 206, 299 };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        struct validators v = val(ok[i], "\"v1\"", true, T0);
        ck_assert_msg(eval(&v, "If-None-Match", "\"v1\"", NULL) == COND_NOT_MODIFIED, "%d", ok[i]);
        ck_assert_msg(eval(&v, "If-Match", "\"x\"", NULL) == COND_PRECONDITION_FAILED, "%d",
                      ok[i]);
    }
}
END_TEST

/* ------------------------------------------------------------- objects */

/* Text of o's head, NUL-terminated, in a static buffer. */
static const char *head_of(const struct cache_obj *o)
{
    static char buf[4096];
    ck_assert_uint_lt(o->head_len, sizeof buf);
    memcpy(buf, o->head, o->head_len);
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
    o->timing.has_last_modified = true;
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
    ck_assert_str_eq(o->etag, "\"v1\"");
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
    ck_assert_ptr_null(o->etag);
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
    ck_assert_ptr_ne(o->vary, stale->vary);
    ck_assert_int_eq(memcmp(o->vary, stale->vary, o->vary_len), 0);
    ck_assert(vary_match(o, &req));
    /* generations are stamped by the policy step (obj_apply_policy), not
     * copied from the stale copy */
    ck_assert_uint_eq(o->generation, 0);
    /* the stored ETag stays when the 304 has none */
    ck_assert_str_eq(o->etag, "\"v1\"");
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
    ck_assert_str_eq(o->etag, "\"v1\"");
    obj_unref(o);
    obj_unref(stale);
}
END_TEST

static Suite *revalidate_suite(void)
{
    Suite *s = suite_create("revalidate");
    TCase *e = tcase_create("etag");
    tcase_add_test(e, etag_weak_comparison);
    tcase_add_test(e, etag_strong_comparison);
    suite_add_tcase(s, e);

    TCase *c = tcase_create("conditions");
    tcase_add_test(c, cond_none_without_preconditions);
    tcase_add_test(c, cond_if_none_match);
    tcase_add_test(c, cond_if_none_match_takes_precedence);
    tcase_add_test(c, cond_if_modified_since);
    tcase_add_test(c, cond_if_match);
    tcase_add_test(c, cond_if_unmodified_since);
    tcase_add_test(c, cond_order);
    tcase_add_test(c, cond_only_for_2xx);
    suite_add_tcase(s, c);

    TCase *m = tcase_create("merge");
    tcase_add_test(m, add_validators);
    tcase_add_test(m, merge_replaces_fields);
    tcase_add_test(m, merge_keeps_framing_fields);
    tcase_add_test(m, merge_shares_body_and_copies_vary);
    tcase_add_test(m, merge_with_rewrite);
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
