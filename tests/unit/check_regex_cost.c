/*
 * check_regex_cost.c — the bound on glibc's expansion of a config regex
 * (src/config/regex_cost.c), and the config refusing a pattern over it
 * instead of letting regcomp() take all the memory (found by fuzz-config).
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "freshcache/config/config.h"
#include "freshcache/config/regex_cost.h"

START_TEST(ordinary_patterns_are_cheap)
{
    ck_assert_uint_eq(regex_cost(""), 0);
    ck_assert_uint_eq(regex_cost("abc"), 3);
    ck_assert_uint_le(regex_cost("^/static/"), 20);
    ck_assert_uint_le(regex_cost("[.-][0-9a-f]{8,}\\.(js|mjs|css|map|png|jpe?g|gif|svg|webp|avif|woff2?|ttf)$"),
                      200);
    ck_assert_uint_le(regex_cost("(/[^/]{1,100}){1,10}"), 2000);
    ck_assert_uint_le(regex_cost("[]a]+[[:alpha:]]*\\{x\\}"), 20);
}
END_TEST

START_TEST(repetition_multiplies)
{
    ck_assert_uint_ge(regex_cost("a{100}"), 100);
    ck_assert_uint_ge(regex_cost("(a{100}){100}"), 10000);
    ck_assert_uint_gt(regex_cost("((a{255}){255}){255}"), REGEX_COST_MAX);
    /* each stacked '+' doubles: glibc copies the subtree */
    ck_assert_uint_gt(regex_cost("a+++++++++++++++++++++"), REGEX_COST_MAX);
    ck_assert_uint_le(regex_cost("a+"), 4);
    /* far past the cap: saturates, never wraps */
    ck_assert_uint_gt(regex_cost("((((((a{9999}){9999}){9999}){9999}){9999}){9999})"),
                      REGEX_COST_MAX);
}
END_TEST

START_TEST(malformed_patterns_do_not_matter)
{
    /* left to regcomp(): only a bound is asked for, without crashing */
    ck_assert_uint_le(regex_cost("(((("), 10);
    ck_assert_uint_le(regex_cost("))a"), 10);
    ck_assert_uint_le(regex_cost("[abc"), 10);
    ck_assert_uint_le(regex_cost("a{,}{"), 10);
    ck_assert_uint_le(regex_cost("\\"), 2);
}
END_TEST

START_TEST(config_refuses_costly_pattern)
{
    static const char yaml[] =
        "listen: [{address: 127.0.0.1:8080}]\n"
        "origin: {url: http://127.0.0.1:8000}\n"
        "policies:\n"
        "  - name: a\n"
        "    match: { path: 'a+++++++++++++++++++++' }\n";
    struct config_errors errs = { 0 };
    struct fc_config *cfg = config_load_string("t.yaml", yaml, strlen(yaml), &errs);
    ck_assert_ptr_null(cfg);
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_ptr_nonnull(strstr(errs.lines[0], "t.yaml:5:"));
    ck_assert_ptr_nonnull(strstr(errs.lines[0], "repeats too much"));
    config_errors_free(&errs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("regex_cost");
    TCase *t = tcase_create("cost");
    tcase_add_test(t, ordinary_patterns_are_cheap);
    tcase_add_test(t, repetition_multiplies);
    tcase_add_test(t, malformed_patterns_do_not_matter);
    tcase_add_test(t, config_refuses_costly_pattern);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
