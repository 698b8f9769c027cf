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
    ck_assert_uint_ge(regex_cost("(a{50}){50}"), 2500);
    ck_assert_uint_gt(regex_cost("((a{100}){100}){100}"), REGEX_COST_MAX);
    /* nested "(x*)+": each level doubles (and glibc's closures grow faster) */
    ck_assert_uint_gt(regex_cost("(((((((((((((a*)+)+)+)+)+)+)+)+)+)+)+)+)+"), REGEX_COST_MAX);
    ck_assert_uint_le(regex_cost("a+"), 4);
    ck_assert_uint_le(regex_cost("(ab)+c*d?e{2,3}"), 20);
}
END_TEST

/* A repetition of a repetition is undefined in POSIX ERE; glibc took 700 MB
 * for 20 stacked '+' and over 25 s for "+***...++++". */
START_TEST(stacked_repetition_refused)
{
    ck_assert_uint_gt(regex_cost("a++"), REGEX_COST_MAX);
    ck_assert_uint_gt(regex_cost("a**"), REGEX_COST_MAX);
    ck_assert_uint_gt(regex_cost("a{2}?"), REGEX_COST_MAX);
    ck_assert_uint_gt(regex_cost("x(a+*)"), REGEX_COST_MAX);
    ck_assert_uint_gt(regex_cost("a+++++++++++++++++++++"), REGEX_COST_MAX);
    /* repeating what can match "": "((a*)+){1,1000}" took 33 s in regcomp */
    ck_assert_uint_gt(regex_cost("((a*)+){1,1000}"), REGEX_COST_MAX);
    ck_assert_uint_gt(regex_cost("(a|b*){1,100}"), REGEX_COST_MAX);
    ck_assert_uint_gt(regex_cost("(a*)+"), REGEX_COST_MAX);
    ck_assert_uint_le(regex_cost("(a?){2}"), 20);
    ck_assert_uint_le(regex_cost("(/[^/]*){1,10}"), 100);
    ck_assert_uint_le(regex_cost("([a-z]*-)+"), 20);
    /* not stacked: a group in between, an escaped or bracketed '+' */
    ck_assert_uint_le(regex_cost("(a+)*"), 10);
    ck_assert_uint_le(regex_cost("a\\+"), 10);
    ck_assert_uint_le(regex_cost("a+[+]+"), 10);
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
    /* nothing to repeat: regcomp() refuses it, with the glob hint */
    ck_assert_uint_eq(regex_cost("**/*.png"), 0);
    ck_assert_uint_eq(regex_cost("a|*b"), 0);
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
    tcase_add_test(t, stacked_repetition_refused);
    tcase_add_test(t, malformed_patterns_do_not_matter);
    tcase_add_test(t, config_refuses_costly_pattern);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
