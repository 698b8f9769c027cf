/*
 * check_admin_body.c — the admin API's request bodies read without a
 * connection (src/admin/admin_body.c): what is accepted, the messages of
 * refusals, and that a message is always valid UTF-8.
 */
#include <check.h>
#include <string.h>

#include <jansson.h>

#include "freshcache/admin/admin_body.h"

#define B(s) s, strlen(s)

START_TEST(purge_accepted)
{
    struct admin_purge_body b;
    struct admin_body_error e;
    ck_assert_int_eq(admin_body_purge(B("{\"prefix\": \"/static/\", \"soft\": true}"), &b, &e), 0);
    ck_assert_int_eq(b.kind, PURGE_PREFIX);
    ck_assert_str_eq(b.key, "prefix");
    ck_assert_str_eq(b.arg, "/static/");
    ck_assert(b.soft);
    json_decref(b.root);
    ck_assert_int_eq(admin_body_purge(B("{\"url\": \"https://h/a\"}"), &b, &e), 0);
    ck_assert_int_eq(b.kind, PURGE_URL);
    ck_assert(!b.soft);
    json_decref(b.root);
}
END_TEST

START_TEST(purge_refused)
{
    struct admin_purge_body b;
    struct admin_body_error e;
    ck_assert_int_eq(admin_body_purge(B(" \r\n"), &b, &e), -1);
    ck_assert_int_eq(e.status, 400);
    ck_assert_ptr_nonnull(strstr(e.msg, "request body required"));
    ck_assert_int_eq(admin_body_purge(B("{\"url\": \"/a\", \"tag\": \"t\"}"), &b, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "exactly one of"));
    /* jansson itself refuses \u0000 (no JSON_ALLOW_NUL) */
    ck_assert_int_eq(admin_body_purge(B("{\"tag\": \"a\\u0000b\"}"), &b, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "invalid JSON"));
    ck_assert_int_eq(admin_body_purge(B("{\"url\": \"ftp://h/\"}"), &b, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "absolute http(s) URL"));
    ck_assert_int_eq(admin_body_purge(B("{\"url\": \"/a\", \"soft\": 1}"), &b, &e), -1);
    ck_assert_str_eq(e.msg, "\"soft\" must be true or false");
    ck_assert_int_eq(admin_body_purge(B("{\"url\": \"/a\", \"url\": \"/b\"}"), &b, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "invalid JSON"));
}
END_TEST

START_TEST(generation_and_reload)
{
    struct admin_generation_body g;
    struct admin_body_error e;
    ck_assert_int_eq(admin_body_generation(B(""), &g, &e), 0);
    ck_assert_ptr_null(g.policy);
    json_decref(g.root);
    ck_assert_int_eq(admin_body_generation(B("{\"policy\": \"html\"}"), &g, &e), 0);
    ck_assert_str_eq(g.policy, "html");
    json_decref(g.root);
    ck_assert_int_eq(admin_body_generation(B("{\"polcy\": \"html\"}"), &g, &e), -1);
    ck_assert_str_eq(e.msg, "unknown field \"polcy\"");
    ck_assert_int_eq(admin_body_reload(B("{}"), &e), 0);
    ck_assert_int_eq(admin_body_reload(B("[]"), &e), -1);
    ck_assert_str_eq(e.msg, "request body must be a JSON object: none");
}
END_TEST

START_TEST(verify_limits)
{
    struct admin_verify_body v;
    struct admin_body_error e;
    ck_assert_int_eq(admin_body_verify(B("{\"urls\": [\"/\", \"/a\"]}"), 2, 8, &v, &e), 0);
    ck_assert_uint_eq(v.n, 2);
    ck_assert_str_eq(admin_verify_path(&v, 1), "/a");
    json_decref(v.root);
    ck_assert_int_eq(admin_body_verify(B("{\"urls\": [\"/\", \"/a\", \"/b\"]}"), 2, 8, &v, &e), -1);
    ck_assert_str_eq(e.msg, "at most 2 urls per request");
    ck_assert_int_eq(admin_body_verify(B("{\"urls\": [\"/12345678\"]}"), 2, 8, &v, &e), -1);
    ck_assert_str_eq(e.msg, "urls[0] must be a path starting with \"/\" (at most 7 bytes)");
}
END_TEST

/* A long member name cut in the middle of a character used to make the
 * message invalid UTF-8, and the 400 answer lost its "error". */
START_TEST(message_stays_utf8)
{
    char body[2000] = "{\"x";
    size_t len = strlen(body);
    for (int i = 0; i < 600; i++) {
        memcpy(body + len, "\xc3\xa9", 2);
        len += 2;
    }
    memcpy(body + len, "\": 1}", 6);
    struct admin_body_error e;
    ck_assert_int_eq(admin_body_reload(B(body), &e), -1);
    ck_assert_uint_gt(strlen(e.msg), 1000);
    json_t *s = json_string(e.msg);
    ck_assert_ptr_nonnull(s);
    json_decref(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin_body");
    TCase *t = tcase_create("bodies");
    tcase_add_test(t, purge_accepted);
    tcase_add_test(t, purge_refused);
    tcase_add_test(t, generation_and_reload);
    tcase_add_test(t, verify_limits);
    tcase_add_test(t, message_stays_utf8);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
