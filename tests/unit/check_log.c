/*
 * check_log.c — log_escape() (src/base/log.c): what a client or a peer
 * sent, made safe for one log line.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/base/log.h"

START_TEST(escape_plain_and_special)
{
    char out[64];
    ck_assert_str_eq(log_escape("/p?q=1", out, sizeof out), "/p?q=1");
    ck_assert_str_eq(log_escape("a\"b\\c\nd\x7f", out, sizeof out), "a\\x22b\\x5cc\\x0ad\\x7f");
    ck_assert_str_eq(log_escape("", out, sizeof out), "");
}
END_TEST

START_TEST(escape_cut_to_fit)
{
    char out[16];
    ck_assert_str_eq(log_escape("0123456789abcdefghij", out, sizeof out), "0123456789a...");
    ck_assert_uint_lt(strlen(out), sizeof out);
    ck_assert_str_eq(log_escape("\n\n\n\n\n", out, sizeof out), "\\x0a\\x0a\\x0a...");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("escape");
    tcase_add_test(tc, escape_plain_and_special);
    tcase_add_test(tc, escape_cut_to_fit);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
