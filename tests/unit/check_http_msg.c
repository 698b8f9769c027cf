/*
 * check_http_msg.c — message heads: fields in one buffer, case-insensitive
 * lookups, removal, comma-list tokens, hop-by-hop fields, serialisation,
 * copies.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "freshcache/http/http_msg.h"

/* The value of `name` as a NUL-terminated string in a static buffer, or
 * NULL when absent. */
static const char *get(const struct http_msg *m, const char *name)
{
    static char out[512];
    size_t len = 0;
    const char *v = http_msg_get(m, name, &len);
    if (v == NULL)
        return NULL;
    ck_assert_uint_lt(len, sizeof out);
    memcpy(out, v, len);
    out[len] = '\0';
    return out;
}

/* Everything http_msg_write_fields() produces, NUL-terminated (caller frees). */
static char *written(const struct http_msg *m)
{
    struct evbuffer *b = evbuffer_new();
    ck_assert_ptr_nonnull(b);
    http_msg_write_fields(m, b);
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(evbuffer_remove(b, s, n), (int)n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

/* ------------------------------------------------------------- add / get */

START_TEST(add_and_get)
{
    struct http_msg m;
    http_msg_init(&m);
    ck_assert_uint_eq(m.n_fields, 0);
    ck_assert_ptr_null(get(&m, "Host"));
    ck_assert(!http_msg_has(&m, "Host"));

    http_msg_add_str(&m, "Host", "example.com");
    http_msg_add(&m, "Content-TypeXX", 12, "text/htmlYY", 9);   /* lengths honoured */
    http_msg_add_str(&m, "X-Empty", "");
    ck_assert_uint_eq(m.n_fields, 3);

    ck_assert_str_eq(get(&m, "Host"), "example.com");
    ck_assert_str_eq(get(&m, "host"), "example.com");
    ck_assert_str_eq(get(&m, "HOST"), "example.com");
    ck_assert_str_eq(get(&m, "content-type"), "text/html");
    ck_assert_ptr_null(get(&m, "Content-TypeXX"));
    ck_assert_ptr_null(get(&m, "Content"));
    ck_assert_ptr_null(get(&m, "Hos"));
    ck_assert_ptr_null(get(&m, "Hostx"));
    ck_assert_str_eq(get(&m, "x-empty"), "");
    ck_assert(http_msg_has(&m, "X-EMPTY"));
    ck_assert(!http_msg_has(&m, "X-Other"));

    /* Names keep their original case. */
    ck_assert_uint_eq(m.fields[1].name_len, 12);
    ck_assert_int_eq(memcmp(http_field_name(&m, &m.fields[1]), "Content-Type", 12), 0);
    ck_assert(http_field_is(&m, &m.fields[1], "CONTENT-TYPE"));
    ck_assert(!http_field_is(&m, &m.fields[1], "Content-Typ"));

    /* len may be NULL. */
    ck_assert_ptr_nonnull(http_msg_get(&m, "Host", NULL));
    http_msg_free(&m);
    ck_assert_ptr_null(m.buf);
    ck_assert_ptr_null(m.fields);
}
END_TEST

START_TEST(repeated_fields_and_next)
{
    struct http_msg m;
    http_msg_init(&m);
    http_msg_add_str(&m, "Set-Cookie", "a=1");
    http_msg_add_str(&m, "Host", "h");
    http_msg_add_str(&m, "set-cookie", "b=2");
    http_msg_add_str(&m, "SET-COOKIE", "c=3");

    /* get returns the first */
    ck_assert_str_eq(get(&m, "Set-Cookie"), "a=1");

    uint32_t it = 0;
    const struct http_field *f;
    const char *want[] = { "a=1", "b=2", "c=3" };
    uint32_t want_iter[] = { 1, 3, 4 };
    for (int i = 0; i < 3; i++) {
        f = http_msg_next(&m, "Set-Cookie", &it);
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(f->value_len, strlen(want[i]));
        ck_assert_int_eq(memcmp(http_field_value(&m, f), want[i], f->value_len), 0);
        ck_assert_uint_eq(it, want_iter[i]);
    }
    ck_assert_ptr_null(http_msg_next(&m, "Set-Cookie", &it));
    ck_assert_uint_eq(it, 4);
    ck_assert_ptr_null(http_msg_next(&m, "Set-Cookie", &it));
    http_msg_free(&m);
}
END_TEST

START_TEST(many_fields_grow)
{
    /* Enough fields and text to force both arrays to reallocate: values
     * must survive the moves (fields refer to the buffer by offset). */
    struct http_msg m;
    http_msg_init(&m);
    char name[32], value[64];
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof name, "X-Field-%d", i);
        snprintf(value, sizeof value, "value-%d-%0*d", i, 20, i);
        http_msg_add_str(&m, name, value);
    }
    ck_assert_uint_eq(m.n_fields, 500);
    ck_assert_uint_ge(m.cap_fields, 500);
    ck_assert_uint_ge(m.cap, m.len);
    for (int i = 0; i < 500; i += 7) {
        snprintf(name, sizeof name, "x-field-%d", i);
        snprintf(value, sizeof value, "value-%d-%0*d", i, 20, i);
        ck_assert_str_eq(get(&m, name), value);
    }

    /* reset empties but keeps capacity */
    uint32_t cap = m.cap, capf = m.cap_fields;
    char *buf = m.buf;
    http_msg_reset(&m);
    ck_assert_uint_eq(m.n_fields, 0);
    ck_assert_uint_eq(m.len, 0);
    ck_assert_uint_eq(m.cap, cap);
    ck_assert_uint_eq(m.cap_fields, capf);
    ck_assert_ptr_eq(m.buf, buf);
    ck_assert_ptr_null(get(&m, "X-Field-0"));
    http_msg_add_str(&m, "A", "b");
    ck_assert_str_eq(get(&m, "a"), "b");
    http_msg_free(&m);
}
END_TEST

START_TEST(append_offsets)
{
    struct http_msg m;
    http_msg_init(&m);
    ck_assert_uint_eq(http_msg_append(&m, "abc", 3), 0);
    ck_assert_uint_eq(http_msg_append(&m, "", 0), 3);
    ck_assert_uint_eq(http_msg_append(&m, "de", 2), 3);
    ck_assert_uint_eq(m.len, 5);
    ck_assert_int_eq(memcmp(m.buf, "abcde", 5), 0);
    http_msg_free(&m);
}
END_TEST

/* ---------------------------------------------------------------- remove */

START_TEST(remove_fields)
{
    struct http_msg m;
    http_msg_init(&m);
    http_msg_add_str(&m, "A", "1");
    http_msg_add_str(&m, "Via", "1.0 x");
    http_msg_add_str(&m, "B", "2");
    http_msg_add_str(&m, "VIA", "1.1 y");

    ck_assert_uint_eq(http_msg_remove(&m, "via"), 2);
    ck_assert(!http_msg_has(&m, "Via"));
    ck_assert_ptr_null(get(&m, "VIA"));
    uint32_t it = 0;
    ck_assert_ptr_null(http_msg_next(&m, "Via", &it));
    /* indices stay valid: the fields are still there, marked dead */
    ck_assert_uint_eq(m.n_fields, 4);
    ck_assert(m.fields[1].dead);
    ck_assert(m.fields[3].dead);
    ck_assert(!m.fields[0].dead);
    ck_assert(!m.fields[2].dead);
    ck_assert(!http_field_is(&m, &m.fields[1], "Via"));
    ck_assert_str_eq(get(&m, "A"), "1");
    ck_assert_str_eq(get(&m, "B"), "2");

    /* nothing left to remove */
    ck_assert_uint_eq(http_msg_remove(&m, "Via"), 0);
    ck_assert_uint_eq(http_msg_remove(&m, "Nope"), 0);

    /* a field added again after removal is live */
    http_msg_add_str(&m, "Via", "1.1 z");
    ck_assert_str_eq(get(&m, "via"), "1.1 z");

    char *s = written(&m);
    ck_assert_str_eq(s, "A: 1\r\nB: 2\r\nVia: 1.1 z\r\n");
    free(s);
    http_msg_free(&m);
}
END_TEST

/* ------------------------------------------------------------- has_token */

START_TEST(has_token_lists)
{
    struct http_msg m;
    http_msg_init(&m);
    http_msg_add_str(&m, "Connection", "keep-alive, Upgrade");
    http_msg_add_str(&m, "Accept-Encoding", "gzip;q=1.0 , deflate ;q=0.5,br");
    http_msg_add_str(&m, "Cache-Control", "no-cache=\"a,b\"");
    http_msg_add_str(&m, "TE", "");
    http_msg_add_str(&m, "connection", " ,  Close\t");
    http_msg_add_str(&m, "X-List", "  ,, ,");

    ck_assert(http_msg_has_token(&m, "Connection", "keep-alive"));
    ck_assert(http_msg_has_token(&m, "connection", "KEEP-ALIVE"));
    ck_assert(http_msg_has_token(&m, "Connection", "upgrade"));
    /* second Connection field line */
    ck_assert(http_msg_has_token(&m, "Connection", "close"));
    ck_assert(!http_msg_has_token(&m, "Connection", "keep"));
    ck_assert(!http_msg_has_token(&m, "Connection", "alive"));
    ck_assert(!http_msg_has_token(&m, "Connection", "keep-alive, Upgrade"));
    ck_assert(!http_msg_has_token(&m, "Connection", ""));

    /* parameters after ';' are ignored, with or without OWS before ';' */
    ck_assert(http_msg_has_token(&m, "Accept-Encoding", "gzip"));
    ck_assert(http_msg_has_token(&m, "Accept-Encoding", "deflate"));
    ck_assert(http_msg_has_token(&m, "Accept-Encoding", "BR"));
    ck_assert(!http_msg_has_token(&m, "Accept-Encoding", "gzip;q=1.0"));
    ck_assert(!http_msg_has_token(&m, "Accept-Encoding", "q=0.5"));
    ck_assert(!http_msg_has_token(&m, "Accept-Encoding", "identity"));

    /* a comma inside a quoted string does not split the list */
    ck_assert(!http_msg_has_token(&m, "Cache-Control", "b\""));
    ck_assert(!http_msg_has_token(&m, "Cache-Control", "no-cache=\"a"));
    ck_assert(http_msg_has_token(&m, "Cache-Control", "no-cache=\"a,b\""));

    /* empty fields, empty lists, absent fields */
    ck_assert(!http_msg_has_token(&m, "TE", "trailers"));
    ck_assert(!http_msg_has_token(&m, "X-List", ""));
    ck_assert(!http_msg_has_token(&m, "Upgrade", "h2c"));

    /* dead fields are not searched */
    http_msg_remove(&m, "Connection");
    ck_assert(!http_msg_has_token(&m, "Connection", "close"));
    http_msg_free(&m);
}
END_TEST

/* ------------------------------------------------------------ list_next */

/* Split s into elements joined by '|'. */
static const char *split(const char *s)
{
    static char out[512];
    const char *p = s, *end = s + strlen(s), *e = NULL;
    size_t el = 0, o = 0;
    out[0] = '\0';
    while (http_list_next(&p, end, &e, &el)) {
        ck_assert_uint_gt(el, 0);
        ck_assert(e >= s && e + el <= end);
        if (o)
            out[o++] = '|';
        memcpy(out + o, e, el);
        o += el;
        out[o] = '\0';
    }
    ck_assert_ptr_eq(p, end);
    /* exhausted stays exhausted */
    ck_assert(!http_list_next(&p, end, &e, &el));
    return out;
}

START_TEST(list_next_elements)
{
    ck_assert_str_eq(split(""), "");
    ck_assert_str_eq(split("a"), "a");
    ck_assert_str_eq(split("a,b"), "a|b");
    ck_assert_str_eq(split(" a , b\t,\tc "), "a|b|c");
    ck_assert_str_eq(split(",,a,,,b,,"), "a|b");
    ck_assert_str_eq(split(" , \t, "), "");
    ck_assert_str_eq(split("a b, c"), "a b|c");               /* inner space kept */
    ck_assert_str_eq(split("W/\"x\", \"y\""), "W/\"x\"|\"y\"");
}
END_TEST

START_TEST(list_next_quoted_commas)
{
    ck_assert_str_eq(split("\"a,b\""), "\"a,b\"");
    ck_assert_str_eq(split("x, \"a,b\", y"), "x|\"a,b\"|y");
    ck_assert_str_eq(split("no-cache=\"set-cookie, x-foo\", max-age=5"),
                     "no-cache=\"set-cookie, x-foo\"|max-age=5");
    /* an escaped quote does not end the quoted string */
    ck_assert_str_eq(split("\"a\\\",b\", c"), "\"a\\\",b\"|c");
    /* an escaped backslash does */
    ck_assert_str_eq(split("\"a\\\\\",b"), "\"a\\\\\"|b");
    /* an unterminated quote runs to the end */
    ck_assert_str_eq(split("a, \"b,c"), "a|\"b,c");
}
END_TEST

START_TEST(list_next_respects_end)
{
    /* Only s[0..len) is looked at. */
    const char *s = "a, b, c";
    const char *p = s, *e;
    size_t el;
    ck_assert(http_list_next(&p, s + 4, &e, &el));
    ck_assert_ptr_eq(e, s);
    ck_assert_uint_eq(el, 1);
    ck_assert(http_list_next(&p, s + 4, &e, &el));
    ck_assert_ptr_eq(e, s + 3);
    ck_assert_uint_eq(el, 1);
    ck_assert(!http_list_next(&p, s + 4, &e, &el));
}
END_TEST

/* ------------------------------------------------------------ hop-by-hop */

static bool hop(const struct http_msg *m, const char *name)
{
    for (uint32_t i = 0; i < m->n_fields; i++)
        if (http_field_is(m, &m->fields[i], name))
            return http_is_hop_by_hop(m, &m->fields[i]);
    ck_abort_msg("no field %s", name);
    return false;
}

START_TEST(hop_by_hop_fixed)
{
    struct http_msg m;
    http_msg_init(&m);
    static const char *const yes[] = {
        "Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
        "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "proxy-x-anything",
        "keep-alive", "transfer-encoding", "TRAILER",
        /* Proxy-* of the lengths the fixed names have */
        "Proxy-X", "Proxy-Abcd", "proxy-abcdefghijk",
    };
    static const char *const no[] = {
        "Content-Length", "Host", "Cache-Control", "Via", "Trailers", "Proxy", "X-Proxy-Id",
        "Upgrade-Insecure-Requests", "Date", "ETag", "Connectionx", "T",
    };
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        http_msg_add_str(&m, yes[i], "v");
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        http_msg_add_str(&m, no[i], "v");
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        ck_assert_msg(http_is_hop_by_hop(&m, &m.fields[i]), "%s", yes[i]);
    size_t base = sizeof yes / sizeof *yes;
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        ck_assert_msg(!http_is_hop_by_hop(&m, &m.fields[base + i]), "%s", no[i]);
    http_msg_free(&m);
}
END_TEST

START_TEST(hop_by_hop_named_by_connection)
{
    struct http_msg m;
    http_msg_init(&m);
    http_msg_add_str(&m, "Connection", "close, X-Private ;p=1");
    http_msg_add_str(&m, "X-Private", "secret");
    http_msg_add_str(&m, "x-other", "1");
    http_msg_add_str(&m, "connection", "X-OTHER");
    http_msg_add_str(&m, "X-Public", "2");
    http_msg_add_str(&m, "Close", "not really a field");

    ck_assert(hop(&m, "Connection"));
    ck_assert(hop(&m, "X-Private"));
    ck_assert(hop(&m, "x-other"));          /* named in a second Connection line */
    ck_assert(hop(&m, "Close"));            /* any name listed counts */
    ck_assert(!hop(&m, "X-Public"));

    /* A removed Connection field no longer names anything. */
    http_msg_remove(&m, "Connection");
    ck_assert(!hop(&m, "X-Private"));
    ck_assert(!hop(&m, "x-other"));
    http_msg_free(&m);
}
END_TEST

/* Connection naming only keep-alive (or close) leaves every other field
 * end-to-end without looking each name up in it; a later Connection line
 * naming a field still counts, when added or when the parser's fields are
 * done. */
START_TEST(hop_by_hop_keep_alive_only)
{
    for (int parsed = 0; parsed < 2; parsed++) {
        struct http_msg m;
        http_msg_init(&m);
        http_msg_add_str(&m, "Connection", "Keep-Alive");
        http_msg_add_str(&m, "X-A", "1");
        http_msg_add_str(&m, "Close", "1");
        http_msg_add_str(&m, "Keep-Alive", "timeout=5");
        if (parsed)
            http_msg_fields_done(&m);
        ck_assert(!m.connection_names);
        ck_assert(hop(&m, "Connection"));
        ck_assert(hop(&m, "Keep-Alive"));
        ck_assert(!hop(&m, "X-A"));
        ck_assert(!hop(&m, "Close"));
        http_msg_add_str(&m, "Connection", "close, upgrade");
        if (parsed)
            http_msg_fields_done(&m);
        ck_assert(!m.connection_names);
        ck_assert(hop(&m, "Close"));        /* a field named by the close token */
        ck_assert(!hop(&m, "X-A"));
        http_msg_add_str(&m, "connection", "x-a");
        if (parsed)
            http_msg_fields_done(&m);
        ck_assert(m.connection_names);
        ck_assert(hop(&m, "X-A"));
        http_msg_free(&m);
    }
}
END_TEST

START_TEST(hop_by_hop_long_name)
{
    /* A field name too long for a Connection token buffer is simply not
     * named by Connection (and does not overflow anything). */
    struct http_msg m;
    http_msg_init(&m);
    char name[300];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    http_msg_add_str(&m, "Connection", "close");
    http_msg_add_str(&m, name, "v");
    ck_assert(!http_is_hop_by_hop(&m, &m.fields[1]));
    http_msg_free(&m);
}
END_TEST

/* ------------------------------------------------------------ serialise */

START_TEST(write_fields_bytes)
{
    struct http_msg m;
    http_msg_init(&m);
    char *s = written(&m);
    ck_assert_str_eq(s, "");
    free(s);

    http_msg_add_str(&m, "Host", "example.com");
    http_msg_add_str(&m, "x-MiXeD", "Value With  Spaces");
    http_msg_add_str(&m, "Empty", "");
    http_msg_add_str(&m, "Set-Cookie", "a=1");
    http_msg_add_str(&m, "Set-Cookie", "b=2");
    s = written(&m);
    ck_assert_str_eq(s, "Host: example.com\r\n"
                        "x-MiXeD: Value With  Spaces\r\n"
                        "Empty: \r\n"
                        "Set-Cookie: a=1\r\n"
                        "Set-Cookie: b=2\r\n");
    free(s);

    /* Appends to what is already in the buffer. */
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "GET / HTTP/1.1\r\n", 16);
    http_msg_remove(&m, "Set-Cookie");
    http_msg_write_fields(&m, b);
    ck_assert_uint_eq(evbuffer_get_length(b), 16 + 19 + 29 + 9);
    char out[128];
    size_t n = evbuffer_get_length(b);
    evbuffer_remove(b, out, n);
    out[n] = '\0';
    ck_assert_str_eq(out, "GET / HTTP/1.1\r\nHost: example.com\r\n"
                          "x-MiXeD: Value With  Spaces\r\nEmpty: \r\n");
    evbuffer_free(b);
    http_msg_free(&m);
}
END_TEST

START_TEST(token_eq)
{
    ck_assert(http_token_eq("gzip", 4, "GZIP"));
    ck_assert(http_token_eq("gzipX", 4, "gzip"));
    ck_assert(!http_token_eq("gzip", 4, "gzi"));
    ck_assert(!http_token_eq("gzi", 3, "gzip"));
    ck_assert(http_token_eq("", 0, ""));
    ck_assert(!http_token_eq("a", 1, ""));
    ck_assert(!http_token_eq("a-b", 3, "a_b"));
}
END_TEST

/* ------------------------------------------------------------------ copy */

/* Set the request line's URL or the status line's reason of `m`. */
static void set_url(struct http_msg *m, const char *url)
{
    m->url_len = (uint32_t)strlen(url);
    m->url_off = http_msg_append(m, url, m->url_len);
}

static void set_reason(struct http_msg *m, const char *reason)
{
    m->reason_len = (uint32_t)strlen(reason);
    m->reason_off = http_msg_append(m, reason, m->reason_len);
}

/* http_msg_copy: the start line and every live field in order, in the
 * copy's own buffer (the source can go). */
START_TEST(copy_request)
{
    struct http_msg src, dst;
    http_msg_init(&src);
    http_msg_init(&dst);
    src.method = 6;                     /* llhttp's HTTP_OPTIONS */
    src.http_major = 1;
    src.http_minor = 0;
    http_msg_add_str(&src, "Host", "h.example");
    set_url(&src, "/a?b=c");
    http_msg_add_str(&src, "Accept", "*/*");
    http_msg_add_str(&src, "accept", "text/html");
    http_msg_add_str(&src, "X-Empty", "");

    http_msg_copy(&dst, &src);
    http_msg_free(&src);
    ck_assert_int_eq(dst.method, 6);
    ck_assert_uint_eq(dst.http_major, 1);
    ck_assert_uint_eq(dst.http_minor, 0);
    ck_assert_uint_eq(dst.url_len, 6);
    ck_assert_int_eq(memcmp(http_msg_url(&dst), "/a?b=c", 6), 0);
    ck_assert_uint_eq(dst.reason_len, 0);
    ck_assert_uint_eq(dst.n_fields, 4);
    ck_assert(!dst.has_connection);
    char *w = written(&dst);
    ck_assert_str_eq(w, "Host: h.example\r\nAccept: */*\r\naccept: text/html\r\nX-Empty: \r\n");
    free(w);
    http_msg_free(&dst);
}
END_TEST

START_TEST(copy_response)
{
    struct http_msg src, dst;
    http_msg_init(&src);
    http_msg_init(&dst);
    src.status = 404;
    src.http_major = 1;
    src.http_minor = 1;
    set_reason(&src, "Not Here");
    http_msg_add_str(&src, "Connection", "close");
    http_msg_add_str(&src, "Content-Length", "0");

    http_msg_copy(&dst, &src);
    ck_assert_int_eq(dst.status, 404);
    ck_assert_uint_eq(dst.http_minor, 1);
    ck_assert_uint_eq(dst.reason_len, 8);
    ck_assert_int_eq(memcmp(dst.buf + dst.reason_off, "Not Here", 8), 0);
    ck_assert(dst.has_connection);
    ck_assert_str_eq(get(&dst, "content-length"), "0");
    /* separate buffers: changing one leaves the other */
    ck_assert_ptr_ne(dst.buf, src.buf);
    http_msg_add_str(&src, "X-Late", "1");
    ck_assert_ptr_null(get(&dst, "X-Late"));
    http_msg_free(&src);
    http_msg_free(&dst);
}
END_TEST

/* Removed (dead) fields are not copied, and a dead Connection does not
 * make the copy think it has one. */
START_TEST(copy_skips_dead_fields)
{
    struct http_msg src, dst;
    http_msg_init(&src);
    http_msg_init(&dst);
    src.status = 200;
    http_msg_add_str(&src, "A", "1");
    http_msg_add_str(&src, "Connection", "x-hop");
    http_msg_add_str(&src, "X-Hop", "h");
    http_msg_add_str(&src, "B", "2");
    ck_assert_uint_eq(http_msg_remove(&src, "Connection"), 1);
    ck_assert_uint_eq(http_msg_remove(&src, "x-hop"), 1);
    ck_assert(src.has_connection);      /* http_msg_remove leaves the flag */

    http_msg_copy(&dst, &src);
    ck_assert_uint_eq(dst.n_fields, 2);
    ck_assert(!dst.fields[0].dead);
    ck_assert(!dst.fields[1].dead);
    ck_assert(!dst.has_connection);
    ck_assert_ptr_null(get(&dst, "Connection"));
    ck_assert_ptr_null(get(&dst, "X-Hop"));
    char *w = written(&dst);
    ck_assert_str_eq(w, "A: 1\r\nB: 2\r\n");
    free(w);
    http_msg_free(&src);
    http_msg_free(&dst);
}
END_TEST

/* The copy replaces whatever dst held (a reused message), and an empty
 * source gives an empty message. */
START_TEST(copy_into_used_message)
{
    struct http_msg src, dst;
    http_msg_init(&src);
    http_msg_init(&dst);
    dst.status = 500;
    dst.method = 3;
    set_url(&dst, "/old");
    set_reason(&dst, "Old");
    http_msg_add_str(&dst, "Connection", "close");
    http_msg_add_str(&dst, "X-Old", "1");

    src.method = 1;
    set_url(&src, "/new");
    http_msg_add_str(&src, "X-New", "2");
    http_msg_copy(&dst, &src);
    ck_assert_int_eq(dst.status, 0);
    ck_assert_int_eq(dst.method, 1);
    ck_assert_uint_eq(dst.url_len, 4);
    ck_assert_int_eq(memcmp(http_msg_url(&dst), "/new", 4), 0);
    ck_assert_uint_eq(dst.reason_len, 0);
    ck_assert(!dst.has_connection);
    ck_assert_uint_eq(dst.n_fields, 1);
    ck_assert_ptr_null(get(&dst, "X-Old"));
    ck_assert_str_eq(get(&dst, "X-New"), "2");

    struct http_msg empty;
    http_msg_init(&empty);
    http_msg_copy(&dst, &empty);
    ck_assert_uint_eq(dst.n_fields, 0);
    ck_assert_uint_eq(dst.url_len, 0);
    ck_assert_int_eq(dst.method, 0);
    char *w = written(&dst);
    ck_assert_str_eq(w, "");
    free(w);
    http_msg_free(&src);
    http_msg_free(&dst);
}
END_TEST

/* Found by fuzz-http-request: "CONNECT \r\n\r\n" leaves a head with no
 * text at all, so no buffer; its target must still be a valid (empty)
 * string, not NULL + 0 (undefined behaviour, and a NULL key source). */
START_TEST(url_of_empty_head)
{
    struct http_msg m;
    http_msg_init(&m);
    ck_assert_ptr_null(m.buf);
    ck_assert_ptr_nonnull(http_msg_url(&m));
    ck_assert_str_eq(http_msg_url(&m), "");
    struct http_msg copy;
    http_msg_init(&copy);
    http_msg_copy(&copy, &m);
    ck_assert_uint_eq(copy.url_len, 0);
    ck_assert_ptr_nonnull(http_msg_url(&copy));
    http_msg_free(&copy);
    http_msg_free(&m);
}
END_TEST

static Suite *http_msg_suite(void)
{
    Suite *s = suite_create("http_msg");

    TCase *f = tcase_create("fields");
    tcase_add_test(f, add_and_get);
    tcase_add_test(f, repeated_fields_and_next);
    tcase_add_test(f, many_fields_grow);
    tcase_add_test(f, append_offsets);
    tcase_add_test(f, remove_fields);
    tcase_add_test(f, token_eq);
    suite_add_tcase(s, f);

    TCase *l = tcase_create("lists");
    tcase_add_test(l, has_token_lists);
    tcase_add_test(l, list_next_elements);
    tcase_add_test(l, list_next_quoted_commas);
    tcase_add_test(l, list_next_respects_end);
    suite_add_tcase(s, l);

    TCase *h = tcase_create("hop_by_hop");
    tcase_add_test(h, hop_by_hop_fixed);
    tcase_add_test(h, hop_by_hop_named_by_connection);
    tcase_add_test(h, hop_by_hop_keep_alive_only);
    tcase_add_test(h, hop_by_hop_long_name);
    suite_add_tcase(s, h);

    TCase *w = tcase_create("write");
    tcase_add_test(w, write_fields_bytes);
    suite_add_tcase(s, w);

    TCase *c = tcase_create("copy");
    tcase_add_test(c, copy_request);
    tcase_add_test(c, copy_response);
    tcase_add_test(c, copy_skips_dead_fields);
    tcase_add_test(c, copy_into_used_message);
    tcase_add_test(c, url_of_empty_head);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_msg_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
