/*
 * check_access_log.c — the JSON access log line (src/server/access_log_json.c):
 * every field of the text line, typed, in a fixed order; null for what is
 * absent; one line per entry whatever the client sent (quotes, backslashes,
 * control bytes, newlines); bytes that are not UTF-8 replaced so the line
 * always parses.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>
#include <llhttp.h>

#include "freshcache/http/http_msg.h"
#include "freshcache/server/access_log.h"

#define T0 1777885964       /* 2026-05-04T09:12:44Z */

/* A GET request for `url` with optional Referer and User-Agent (any bytes). */
static void make_request(struct http_msg *m, const char *url, size_t url_len, const char *referer,
                         const char *ua, size_t ua_len)
{
    http_msg_init(m);
    m->method = HTTP_GET;
    m->url_off = http_msg_append(m, url, url_len);
    m->url_len = (uint32_t)url_len;
    m->http_major = 1;
    m->http_minor = 1;
    if (referer)
        http_msg_add_str(m, "Referer", referer);
    if (ua)
        http_msg_add(m, "User-Agent", 10, ua, ua_len);
}

/* The formatted line, NUL-terminated, in a static buffer. */
static const char *format(const struct access_entry *e)
{
    static char line[8192];
    struct evbuffer *b = evbuffer_new();
    ck_assert_ptr_nonnull(b);
    access_log_format_json(e, T0, b);
    size_t n = evbuffer_get_length(b);
    ck_assert_uint_lt(n, sizeof line);
    evbuffer_remove(b, line, n);
    line[n] = '\0';
    evbuffer_free(b);
    return line;
}

/* The line parsed; it must be exactly one JSON object and one newline. */
static json_t *parse(const char *line)
{
    size_t len = strlen(line);
    ck_assert_msg(len > 0 && line[len - 1] == '\n', "no final newline: %s", line);
    ck_assert_msg(memchr(line, '\n', len - 1) == NULL, "a newline inside the line: %s", line);
    json_error_t err;
    json_t *j = json_loadb(line, len - 1, 0, &err);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", err.text, line);
    ck_assert(json_is_object(j));
    return j;
}

static void expect_str(const json_t *o, const char *key, const char *want)
{
    const json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_string(v), "%s is not a string", key);
    ck_assert_str_eq(json_string_value(v), want);
}

static void expect_int(const json_t *o, const char *key, json_int_t want)
{
    const json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_integer(v), "%s is not an integer", key);
    ck_assert_int_eq(json_integer_value(v), want);
}

static void expect_null(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    ck_assert_msg(v != NULL && json_is_null(v), "%s is not null", key);
}

START_TEST(every_field)
{
    struct http_msg m;
    make_request(&m, "/app.3f9a2c1d.js?v=1", 20, "https://example.com/", "Mozilla/5.0", 11);
    struct access_entry e = {
        .client = "203.0.113.7", .req = &m, .status = 200, .bytes = 48213,
        .cache_status = "fwd=miss; stored", .generation = 42, .origin_ms = 12, .total_ms = 13,
    };
    const char *line = format(&e);
    /* compact, in this order: what log tools show first comes first */
    ck_assert_str_eq(line,
        "{\"time\":\"2026-05-04T09:12:44Z\",\"client\":\"203.0.113.7\",\"method\":\"GET\","
        "\"uri\":\"/app.3f9a2c1d.js?v=1\",\"protocol\":\"HTTP/1.1\",\"status\":200,"
        "\"bytes\":48213,\"referer\":\"https://example.com/\",\"user_agent\":\"Mozilla/5.0\","
        "\"cache_status\":\"fwd=miss; stored\",\"generation\":42,\"origin_ms\":12,"
        "\"total_ms\":13}\n");
    json_decref(parse(line));
    http_msg_free(&m);
}
END_TEST

/* What the text line writes as "-" (and origin_ms -1) is null. */
START_TEST(absent_fields_are_null)
{
    struct http_msg m;
    make_request(&m, "/", 1, NULL, NULL, 0);
    m.method = HTTP_HEAD;
    m.http_minor = 0;
    struct access_entry e = {
        .client = "::1", .req = &m, .status = 304, .bytes = 0, .cache_status = NULL,
        .generation = 1, .origin_ms = -1, .total_ms = 0,
    };
    json_t *j = parse(format(&e));
    expect_str(j, "method", "HEAD");
    expect_str(j, "protocol", "HTTP/1.0");
    expect_null(j, "referer");
    expect_null(j, "user_agent");
    expect_null(j, "cache_status");
    expect_null(j, "origin_ms");
    expect_int(j, "total_ms", 0);
    expect_int(j, "bytes", 0);
    json_decref(j);

    /* origin_ms 0 is a real (fast) origin exchange, not "not asked" */
    e.origin_ms = 0;
    j = parse(format(&e));
    expect_int(j, "origin_ms", 0);
    json_decref(j);
    http_msg_free(&m);
}
END_TEST

/* An unreadable request (no request line, or none at all): its three
 * fields are null, the rest is there. */
START_TEST(unreadable_request)
{
    struct http_msg m;
    http_msg_init(&m);      /* nothing parsed: url_len 0, http_major 0 */
    struct access_entry e = {
        .client = "198.51.100.1", .req = &m, .status = 400, .bytes = 11,
        .cache_status = "fwd=bypass", .generation = 3, .origin_ms = -1, .total_ms = 1,
    };
    json_t *j = parse(format(&e));
    expect_null(j, "method");
    expect_null(j, "uri");
    expect_null(j, "protocol");
    expect_int(j, "status", 400);
    expect_str(j, "cache_status", "fwd=bypass");
    json_decref(j);
    http_msg_free(&m);

    e.req = NULL;
    e.client = NULL;
    j = parse(format(&e));
    expect_null(j, "method");
    expect_null(j, "referer");
    expect_null(j, "user_agent");
    expect_null(j, "client");
    json_decref(j);
}
END_TEST

/* Whatever a client sends stays inside its string: one line, one object,
 * the exact text back after decoding. */
START_TEST(hostile_text_stays_in_its_field)
{
    static const char ua[] = "a\"b\\c\nd\re\tf\x01g\x7fh\"}, \"status\": 500, \"x\":\"";
    struct http_msg m;
    make_request(&m, "/p?q=\"\\", 7, "x\"\n{\"forged\": 1}", ua, sizeof ua - 1);
    struct access_entry e = {
        .client = "10.0.0.1", .req = &m, .status = 200, .bytes = 1, .cache_status = "hit",
        .generation = 9, .origin_ms = -1, .total_ms = 0,
    };
    const char *line = format(&e);
    json_t *j = parse(line);
    expect_str(j, "user_agent", ua);
    expect_str(j, "referer", "x\"\n{\"forged\": 1}");
    expect_str(j, "uri", "/p?q=\"\\");
    expect_int(j, "status", 200);
    ck_assert_ptr_null(json_object_get(j, "forged"));
    ck_assert_ptr_null(json_object_get(j, "x"));
    ck_assert_uint_eq(json_object_size(j), 13);
    json_decref(j);
    http_msg_free(&m);
}
END_TEST

/* Bytes that are not UTF-8 each become U+FFFD; valid UTF-8 is kept. */
START_TEST(invalid_utf8_replaced)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
        { "a\xff" "b", "a\xef\xbf\xbd" "b" },                           /* never UTF-8 */
        { "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },                     /* overlong '/' */
        { "\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },     /* overlong */
        { "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },     /* a surrogate */
        { "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },  /* > U+10FFFF */
        { "x\xe2\x82", "x\xef\xbf\xbd\xef\xbf\xbd" },                   /* cut short */
        { "\xe2(\xa1", "\xef\xbf\xbd(\xef\xbf\xbd" },                   /* bad continuation */
        { "\xf0\x90\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },     /* cut 4-byte */
        { "\xf0\x90\x28\xbc", "\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd" },
        { "\xf5\x80\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
        { "\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf" },                     /* U+10FFFF itself */
        { "\xed\x9f\xbf", "\xed\x9f\xbf" },                             /* U+D7FF */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_msg m;
        make_request(&m, "/", 1, NULL, cases[i].in, strlen(cases[i].in));
        struct access_entry e = { .client = "c", .req = &m, .status = 200, .origin_ms = -1 };
        json_t *j = parse(format(&e));
        const json_t *v = json_object_get(j, "user_agent");
        ck_assert_msg(json_is_string(v), "case %zu", i);
        ck_assert_msg(strcmp(json_string_value(v), cases[i].out) == 0, "case %zu: got %s", i,
                      json_string_value(v));
        json_decref(j);
        http_msg_free(&m);
    }
}
END_TEST

/* Appended after what the buffer holds: lines accumulate. */
START_TEST(appends_lines)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "before\n", 7);
    struct access_entry e = { .client = "c", .status = 200, .origin_ms = -1 };
    access_log_format_json(&e, T0, b);
    access_log_format_json(&e, T0 + 1, b);
    size_t n = evbuffer_get_length(b);
    char *all = calloc(1, n + 1);
    evbuffer_remove(b, all, n);
    ck_assert(strncmp(all, "before\n{\"time\":\"2026-05-04T09:12:44Z\"", 37) == 0);
    ck_assert_ptr_nonnull(strstr(all, "}\n{\"time\":\"2026-05-04T09:12:45Z\""));
    ck_assert_int_eq(all[n - 1], '\n');
    free(all);
    evbuffer_free(b);
}
END_TEST

static Suite *access_log_suite(void)
{
    Suite *s = suite_create("access_log");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, every_field);
    tcase_add_test(tc, absent_fields_are_null);
    tcase_add_test(tc, unreadable_request);
    tcase_add_test(tc, hostile_text_stays_in_its_field);
    tcase_add_test(tc, invalid_utf8_replaced);
    tcase_add_test(tc, appends_lines);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(access_log_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
