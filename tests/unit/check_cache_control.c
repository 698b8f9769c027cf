/*
 * check_cache_control.c — Cache-Control (RFC 9111 §5.2) and Pragma parsing.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/http/cache_control.h"

static struct cache_control cc_of(const char *s)
{
    struct cache_control cc;
    cc_init(&cc);
    cc_parse(&cc, s, strlen(s));
    return cc;
}

static bool pragma(const char *s) { return cc_pragma_no_cache(s, strlen(s)); }

START_TEST(init_is_empty)
{
    struct cache_control cc = cc_of("");
    ck_assert_uint_eq(cc.flags, 0);
    ck_assert_int_eq(cc.max_age, CC_UNSET);
    ck_assert_int_eq(cc.s_maxage, CC_UNSET);
    ck_assert_int_eq(cc.max_stale, CC_UNSET);
    ck_assert_int_eq(cc.min_fresh, CC_UNSET);
    ck_assert_int_eq(cc.stale_while_revalidate, CC_UNSET);
    ck_assert_int_eq(cc.stale_if_error, CC_UNSET);
    cc_parse(&cc, NULL, 0);
    ck_assert_uint_eq(cc.flags, 0);
    cc = cc_of(" , ,\t,, ");
    ck_assert_uint_eq(cc.flags, 0);
    ck_assert_int_eq(cc.max_age, CC_UNSET);
}
END_TEST

static const struct { const char *name; unsigned flag; } flag_directives[] = {
    { "no-store", CC_NO_STORE },
    { "no-cache", CC_NO_CACHE },
    { "private", CC_PRIVATE },
    { "public", CC_PUBLIC },
    { "must-revalidate", CC_MUST_REVALIDATE },
    { "proxy-revalidate", CC_PROXY_REVALIDATE },
    { "no-transform", CC_NO_TRANSFORM },
    { "immutable", CC_IMMUTABLE },
    { "only-if-cached", CC_ONLY_IF_CACHED },
    { "must-understand", CC_MUST_UNDERSTAND },
};

START_TEST(each_flag_directive)
{
    const char *name = flag_directives[_i].name;
    unsigned flag = flag_directives[_i].flag;
    struct cache_control cc = cc_of(name);
    ck_assert_msg(cc.flags == flag, "%s: flags %#x, want %#x", name, cc.flags, flag);
    ck_assert_int_eq(cc.max_age, CC_UNSET);

    /* Case-insensitive (§5.2: "compared case-insensitively"). */
    char upper[32];
    size_t n = strlen(name);
    for (size_t i = 0; i <= n; i++)
        upper[i] = (name[i] >= 'a' && name[i] <= 'z') ? (char)(name[i] - 32) : name[i];
    cc = cc_of(upper);
    ck_assert_msg(cc.flags == flag, "%s: flags %#x, want %#x", upper, cc.flags, flag);

    /* Among others, with OWS. */
    char list[96];
    snprintf(list, sizeof list, "max-age=5 ,\t%s\t, x-ext", name);
    cc = cc_of(list);
    ck_assert_msg(cc.flags == (flag | CC_UNKNOWN), "%s: flags %#x", list, cc.flags);
    ck_assert_int_eq(cc.max_age, 5);
}
END_TEST

START_TEST(delta_directives)
{
    struct cache_control cc = cc_of("max-age=60");
    ck_assert_int_eq(cc.max_age, 60);
    ck_assert_uint_eq(cc.flags, 0);
    cc = cc_of("s-maxage=30");
    ck_assert_int_eq(cc.s_maxage, 30);
    ck_assert_int_eq(cc.max_age, CC_UNSET);
    cc = cc_of("max-stale=10");
    ck_assert_int_eq(cc.max_stale, 10);
    cc = cc_of("min-fresh=5");
    ck_assert_int_eq(cc.min_fresh, 5);
    cc = cc_of("stale-while-revalidate=30");
    ck_assert_int_eq(cc.stale_while_revalidate, 30);
    cc = cc_of("stale-if-error=600");
    ck_assert_int_eq(cc.stale_if_error, 600);
    cc = cc_of("max-age=0");
    ck_assert_int_eq(cc.max_age, 0);
    cc = cc_of("max-age=007");
    ck_assert_int_eq(cc.max_age, 7);
    cc = cc_of("Max-Age=11, S-MAXAGE=12, MIN-FRESH=13, Stale-If-Error=14");
    ck_assert_int_eq(cc.max_age, 11);
    ck_assert_int_eq(cc.s_maxage, 12);
    ck_assert_int_eq(cc.min_fresh, 13);
    ck_assert_int_eq(cc.stale_if_error, 14);
    ck_assert_uint_eq(cc.flags, 0);
}
END_TEST

START_TEST(max_stale_without_value)
{
    struct cache_control cc = cc_of("max-stale");
    ck_assert_int_eq(cc.max_stale, CC_MAX_STALE_ANY);
    cc = cc_of("max-stale , max-age=3");
    ck_assert_int_eq(cc.max_stale, CC_MAX_STALE_ANY);
    ck_assert_int_eq(cc.max_age, 3);
    /* With "=" but nothing usable it is an invalid value, not "any". */
    cc = cc_of("max-stale=");
    ck_assert_int_eq(cc.max_stale, 0);
    cc = cc_of("max-stale=abc");
    ck_assert_int_eq(cc.max_stale, 0);
    cc = cc_of("max-stale junk");
    ck_assert_int_eq(cc.max_stale, 0);
}
END_TEST

START_TEST(whitespace)
{
    struct cache_control cc = cc_of("  max-age=5 ,  no-store\t");
    ck_assert_int_eq(cc.max_age, 5);
    ck_assert_uint_eq(cc.flags, CC_NO_STORE);
    /* OWS around "=" is tolerated. */
    cc = cc_of("max-age = 5, s-maxage\t=\t6");
    ck_assert_int_eq(cc.max_age, 5);
    ck_assert_int_eq(cc.s_maxage, 6);
    cc = cc_of(",,,max-age=9,,,public,,");
    ck_assert_int_eq(cc.max_age, 9);
    ck_assert_uint_eq(cc.flags, CC_PUBLIC);
}
END_TEST

START_TEST(quoted_values)
{
    /* Recipients accept quoted-string even where token is required (§5.2). */
    struct cache_control cc = cc_of("max-age=\"60\"");
    ck_assert_int_eq(cc.max_age, 60);
    cc = cc_of("max-age=\"6\\0\"");             /* quoted-pair: \0 is '0' */
    ck_assert_int_eq(cc.max_age, 60);
    cc = cc_of("max-age=\"\"");
    ck_assert_int_eq(cc.max_age, 0);
    cc = cc_of("max-age=\" 60\"");
    ck_assert_int_eq(cc.max_age, 0);
    cc = cc_of("max-stale=\"15\"");
    ck_assert_int_eq(cc.max_stale, 15);
}
END_TEST

START_TEST(quoted_commas_do_not_split)
{
    struct cache_control cc = cc_of("no-cache=\"Set-Cookie, X-Foo\", max-age=60");
    ck_assert_uint_eq(cc.flags, CC_NO_CACHE_FIELDS);
    ck_assert_int_eq(cc.max_age, 60);

    cc = cc_of("private=\"a, b\", public");
    ck_assert_uint_eq(cc.flags, CC_PRIVATE_FIELDS | CC_PUBLIC);

    /* A directive-looking text inside a quoted value is not a directive. */
    cc = cc_of("x-ext=\"a, max-age=5, no-store\", max-age=7");
    ck_assert_int_eq(cc.max_age, 7);
    ck_assert_uint_eq(cc.flags, CC_UNKNOWN);

    /* Escaped DQUOTE does not end the string. */
    cc = cc_of("x-ext=\"a\\\", max-age=1\", max-age=2");
    ck_assert_int_eq(cc.max_age, 2);
    cc = cc_of("x-ext=\"\\\\\", max-age=3");   /* "\\" is a complete string */
    ck_assert_int_eq(cc.max_age, 3);
}
END_TEST

START_TEST(qualified_no_cache_and_private)
{
    struct cache_control cc = cc_of("no-cache=\"Set-Cookie\"");
    ck_assert_uint_eq(cc.flags, CC_NO_CACHE_FIELDS);
    cc = cc_of("private=\"Set-Cookie\"");
    ck_assert_uint_eq(cc.flags, CC_PRIVATE_FIELDS);
    /* Token form of the field list (§5.2.2.4: recipients accept it). */
    cc = cc_of("no-cache=Set-Cookie");
    ck_assert_uint_eq(cc.flags, CC_NO_CACHE_FIELDS);
    cc = cc_of("PRIVATE=Authorization");
    ck_assert_uint_eq(cc.flags, CC_PRIVATE_FIELDS);
    /* A list naming nothing reads as the unqualified directive. */
    cc = cc_of("no-cache=\"\"");
    ck_assert_uint_eq(cc.flags, CC_NO_CACHE);
    cc = cc_of("no-cache=\" , \"");
    ck_assert_uint_eq(cc.flags, CC_NO_CACHE);
    cc = cc_of("private=");
    ck_assert_uint_eq(cc.flags, CC_PRIVATE);
    /* Unterminated: unqualified, the safe reading. */
    cc = cc_of("no-cache=\"Set-Cookie");
    ck_assert_uint_eq(cc.flags, CC_NO_CACHE);
    /* Both forms present: both flags. */
    cc = cc_of("no-cache=\"X\", no-cache");
    ck_assert_uint_eq(cc.flags, CC_NO_CACHE | CC_NO_CACHE_FIELDS);
}
END_TEST

START_TEST(duplicates_first_wins)
{
    struct cache_control cc = cc_of("max-age=5, max-age=10");
    ck_assert_int_eq(cc.max_age, 5);
    cc = cc_of("max-age=abc, max-age=10");     /* first is invalid: still first */
    ck_assert_int_eq(cc.max_age, 0);
    cc = cc_of("s-maxage=1, s-maxage=2, min-fresh=3, min-fresh=4");
    ck_assert_int_eq(cc.s_maxage, 1);
    ck_assert_int_eq(cc.min_fresh, 3);
    cc = cc_of("max-stale, max-stale=5");
    ck_assert_int_eq(cc.max_stale, CC_MAX_STALE_ANY);
    cc = cc_of("max-stale=5, max-stale");
    ck_assert_int_eq(cc.max_stale, 5);
    cc = cc_of("public, public");
    ck_assert_uint_eq(cc.flags, CC_PUBLIC);
}
END_TEST

START_TEST(several_field_lines_merge)
{
    struct cache_control cc;
    cc_init(&cc);
    cc_parse(&cc, "max-age=30", 10);
    cc_parse(&cc, "no-cache, max-age=99", 20);
    cc_parse(&cc, "s-maxage=7", 10);
    ck_assert_int_eq(cc.max_age, 30);           /* first line's value wins */
    ck_assert_int_eq(cc.s_maxage, 7);
    ck_assert_uint_eq(cc.flags, CC_NO_CACHE);
}
END_TEST

START_TEST(invalid_delta_is_zero)
{
    static const char *const bad[] = {
        "max-age=abc", "max-age=-1", "max-age=", "max-age", "max-age=1.5", "max-age=5x",
        "max-age=5 6", "max-age=+5", "max-age=0x10", "max-age=5;", "max-age=\"5",
        "max-age==5", "max-age=\"5\"x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cache_control cc = cc_of(bad[i]);
        ck_assert_msg(cc.max_age == 0, "\"%s\": max_age %lld", bad[i], (long long)cc.max_age);
        ck_assert_msg(cc.flags == 0, "\"%s\": flags %#x", bad[i], cc.flags);
    }
    struct cache_control cc = cc_of("s-maxage=soon, public");
    ck_assert_int_eq(cc.s_maxage, 0);
    ck_assert_uint_eq(cc.flags, CC_PUBLIC);
    cc = cc_of("min-fresh=x, stale-while-revalidate=, stale-if-error");
    ck_assert_int_eq(cc.min_fresh, 0);
    ck_assert_int_eq(cc.stale_while_revalidate, 0);
    ck_assert_int_eq(cc.stale_if_error, 0);
    /* A malformed element does not swallow the next one. */
    cc = cc_of("max-age=5 6, no-store");
    ck_assert_int_eq(cc.max_age, 0);
    ck_assert_uint_eq(cc.flags, CC_NO_STORE);
}
END_TEST

START_TEST(overflow_clamps_to_2_31)
{
    ck_assert_int_eq(CC_DELTA_MAX, INT64_C(2147483648));
    struct cache_control cc = cc_of("max-age=2147483647");
    ck_assert_int_eq(cc.max_age, INT64_C(2147483647));
    cc = cc_of("max-age=2147483648");
    ck_assert_int_eq(cc.max_age, INT64_C(2147483648));
    cc = cc_of("max-age=2147483649");
    ck_assert_int_eq(cc.max_age, INT64_C(2147483648));
    cc = cc_of("s-maxage=99999999999999999999999999999999999999");
    ck_assert_int_eq(cc.s_maxage, INT64_C(2147483648));
    cc = cc_of("max-stale=\"18446744073709551617\"");
    ck_assert_int_eq(cc.max_stale, INT64_C(2147483648));
    /* Digits are still validated past the clamp. */
    cc = cc_of("max-age=99999999999999999999x");
    ck_assert_int_eq(cc.max_age, 0);
}
END_TEST

START_TEST(unknown_and_garbage)
{
    struct cache_control cc = cc_of("foo, bar=baz, community=\"UCI\"");
    ck_assert_uint_eq(cc.flags, CC_UNKNOWN);
    ck_assert_int_eq(cc.max_age, CC_UNSET);
    /* Near-misses are unknown, not their neighbours. */
    cc = cc_of("no-cachex, max-agex=5, public-");
    ck_assert_uint_eq(cc.flags, CC_UNKNOWN);
    ck_assert_int_eq(cc.max_age, CC_UNSET);
    /* Elements without a name are skipped entirely. */
    cc = cc_of("\"quoted\", =5, @, max-age=3");
    ck_assert_uint_eq(cc.flags, 0);
    ck_assert_int_eq(cc.max_age, 3);
    /* A valueless directive given a value still counts. */
    cc = cc_of("no-store=1, must-revalidate=\"yes\"");
    ck_assert_uint_eq(cc.flags, CC_NO_STORE | CC_MUST_REVALIDATE);
    /* Unterminated quote at the very end, lone backslash. */
    cc = cc_of("x=\"abc\\");
    ck_assert_uint_eq(cc.flags, CC_UNKNOWN);
    cc = cc_of("public, x=\"");
    ck_assert_uint_eq(cc.flags, CC_PUBLIC | CC_UNKNOWN);
}
END_TEST

START_TEST(length_is_respected)
{
    struct cache_control cc;
    cc_init(&cc);
    cc_parse(&cc, "max-age=123, no-store", 9);   /* "max-age=1" */
    ck_assert_int_eq(cc.max_age, 1);
    ck_assert_uint_eq(cc.flags, 0);
    /* A NUL byte inside the counted range is not a separator. */
    cc_init(&cc);
    cc_parse(&cc, "max-age=5\0, no-store", 20);
    ck_assert_int_eq(cc.max_age, 0);
    ck_assert_uint_eq(cc.flags, CC_NO_STORE);
}
END_TEST

START_TEST(realistic_headers)
{
    struct cache_control cc = cc_of("public, max-age=31536000, immutable");
    ck_assert_uint_eq(cc.flags, CC_PUBLIC | CC_IMMUTABLE);
    ck_assert_int_eq(cc.max_age, 31536000);
    cc = cc_of("private, no-cache, no-store, must-revalidate, max-age=0");
    ck_assert_uint_eq(cc.flags, CC_PRIVATE | CC_NO_CACHE | CC_NO_STORE | CC_MUST_REVALIDATE);
    ck_assert_int_eq(cc.max_age, 0);
    cc = cc_of("max-age=600, stale-while-revalidate=30, stale-if-error=86400");
    ck_assert_int_eq(cc.max_age, 600);
    ck_assert_int_eq(cc.stale_while_revalidate, 30);
    ck_assert_int_eq(cc.stale_if_error, 86400);
    cc = cc_of("must-understand, no-store");
    ck_assert_uint_eq(cc.flags, CC_MUST_UNDERSTAND | CC_NO_STORE);
    cc = cc_of("s-maxage=60, proxy-revalidate, no-transform");
    ck_assert_uint_eq(cc.flags, CC_PROXY_REVALIDATE | CC_NO_TRANSFORM);
    ck_assert_int_eq(cc.s_maxage, 60);
}
END_TEST

START_TEST(pragma_no_cache)
{
    ck_assert(pragma("no-cache"));
    ck_assert(pragma("No-Cache"));
    ck_assert(pragma("  no-cache  "));
    ck_assert(pragma("foo, no-cache"));
    ck_assert(pragma("x=\"a, b\", no-cache"));
    ck_assert(!pragma(""));
    ck_assert(!pragma("foo"));
    ck_assert(!pragma("no-cachex"));
    ck_assert(!pragma("no-cache=1"));           /* an extension-pragma by the grammar */
    ck_assert(!pragma("x=\"no-cache\""));
    ck_assert(!pragma("x=\"a, no-cache\""));
    ck_assert(!cc_pragma_no_cache(NULL, 0));
    ck_assert(!cc_pragma_no_cache("no-cache", 7));
}
END_TEST

/* What a stored object keeps: every response directive, 32-bit values,
 * the request-only ones dropped. */
START_TEST(packed_round_trip)
{
    struct cache_control cc = cc_of("max-age=60, s-maxage=99999999999, must-revalidate, "
                                    "stale-while-revalidate=5, no-cache=\"Set-Cookie\", "
                                    "max-stale=7, min-fresh=3, frobnicate");
    struct cc_packed p;
    cc_pack(&cc, &p);
    ck_assert_uint_le(sizeof p, 20);
    struct cache_control back;
    cc_unpack(&p, &back);
    ck_assert_uint_eq(back.flags, cc.flags);
    ck_assert_uint_eq(back.flags, CC_MUST_REVALIDATE | CC_NO_CACHE_FIELDS | CC_UNKNOWN);
    ck_assert_int_eq(back.max_age, 60);
    ck_assert_int_eq(back.s_maxage, CC_DELTA_MAX);       /* 2^31 fits */
    ck_assert_int_eq(back.stale_while_revalidate, 5);
    ck_assert_int_eq(back.stale_if_error, CC_UNSET);
    ck_assert_int_eq(back.max_stale, CC_UNSET);          /* request-only: not kept */
    ck_assert_int_eq(back.min_fresh, CC_UNSET);

    struct cache_control none = cc_of("");
    cc_pack(&none, &p);
    ck_assert_uint_eq(p.max_age, CC_PACKED_UNSET);
    cc_unpack(&p, &back);
    ck_assert_int_eq(back.max_age, CC_UNSET);
    ck_assert_int_eq(back.s_maxage, CC_UNSET);
    ck_assert_uint_eq(back.flags, 0);

    struct cache_control zero = cc_of("max-age=0, stale-if-error=x");
    cc_pack(&zero, &p);
    cc_unpack(&p, &back);
    ck_assert_int_eq(back.max_age, 0);                  /* 0 is not absent */
    ck_assert_int_eq(back.stale_if_error, 0);           /* invalid reads as 0 */
}
END_TEST

static Suite *cache_control_suite(void)
{
    Suite *s = suite_create("cache_control");
    TCase *t = tcase_create("parse");
    tcase_add_test(t, init_is_empty);
    tcase_add_loop_test(t, each_flag_directive, 0,
                        (int)(sizeof flag_directives / sizeof flag_directives[0]));
    tcase_add_test(t, delta_directives);
    tcase_add_test(t, max_stale_without_value);
    tcase_add_test(t, whitespace);
    tcase_add_test(t, quoted_values);
    tcase_add_test(t, quoted_commas_do_not_split);
    tcase_add_test(t, qualified_no_cache_and_private);
    tcase_add_test(t, duplicates_first_wins);
    tcase_add_test(t, several_field_lines_merge);
    tcase_add_test(t, invalid_delta_is_zero);
    tcase_add_test(t, overflow_clamps_to_2_31);
    tcase_add_test(t, unknown_and_garbage);
    tcase_add_test(t, length_is_respected);
    tcase_add_test(t, realistic_headers);
    tcase_add_test(t, packed_round_trip);
    suite_add_tcase(s, t);
    TCase *p = tcase_create("pragma");
    tcase_add_test(p, pragma_no_cache);
    suite_add_tcase(s, p);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cache_control_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
