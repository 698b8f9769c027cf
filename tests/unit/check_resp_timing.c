/*
 * check_resp_timing.c — the fields that tell how old a response is and when
 * it expires (src/http/resp_timing.c, RFC 9111 §4.2): the Age value
 * (§5.1) and its untrustworthy shapes, Date (or the response time without
 * one, RFC 9110 §6.6.1), Expires (an invalid one means already expired,
 * §5.3), Last-Modified.
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/http/cache_control.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/http/resp_timing.h"
#include "unit_msg.h"

#define T0 ((time_t)1420070400)                 /* Thu, 01 Jan 2015 00:00:00 GMT */
#define T0_STR "Thu, 01 Jan 2015 00:00:00 GMT"
#define REQ_T ((time_t)1700000000)
#define RESP_T ((time_t)1700000002)

/* A 200 response with the given fields: pairs of name, value, then NULL. */
static void resp_with(struct http_msg *m, ...)
{
    http_msg_init(m);
    m->status = 200;
    va_list ap;
    va_start(ap, m);
    msg_add_pairs(m, ap);
    va_end(ap);
}

/* resp_age_value of a response with one Age line of `value`. */
static int64_t age_of(const char *value)
{
    struct http_msg m;
    resp_with(&m, "Content-Type", "text/plain", "Age", value, NULL);
    int64_t a = resp_age_value(&m);
    http_msg_free(&m);
    return a;
}

/* ------------------------------------------------------------------ Age */

struct age_case {
    const char *value;
    int64_t want;
};

static void run_ages(const struct age_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t got = age_of(c[i].value);
        ck_assert_msg(got == c[i].want, "Age \"%s\": %lld, expected %lld", c[i].value,
                      (long long)got, (long long)c[i].want);
    }
}

#define RUN_AGES(table) run_ages(table, sizeof table / sizeof table[0])

/* §5.1: Age = delta-seconds, 1*DIGIT; no Age at all is age 0. */
START_TEST(age_digits)
{
    static const struct age_case c[] = {
        { "0", 0 }, { "1", 1 }, { "60", 60 }, { "007", 7 }, { "86400", 86400 },
    };
    RUN_AGES(c);

    struct http_msg m;
    resp_with(&m, "Date", T0_STR, NULL);
    ck_assert_int_eq(resp_age_value(&m), 0);
    http_msg_free(&m);
    /* the name is case-insensitive */
    resp_with(&m, "aGe", "42", NULL);
    ck_assert_int_eq(resp_age_value(&m), 42);
    http_msg_free(&m);
}
END_TEST

/* RFC 9111 §5.1: a list-valued Age counts by its first member, with or
 * without spaces. */
START_TEST(age_list_without_spaces)
{
    static const struct age_case c[] = {
        { "0,7200", 0 }, { "60,0", 60 }, { "5,6,7", 5 }, { "0, 7200", 0 }, { "7200, 0", 7200 },
        { "0,x", 0 },    { ",9", 9 },
    };
    RUN_AGES(c);
}
END_TEST

/* §5.1: an invalid value is ignored (age 0: the response stays fresh by
 * its max-age), not read as the largest age as the npm suite 0.4.5 has it. */
START_TEST(age_untrusted_shapes)
{
    static const struct age_case c[] = {
        { "", 0 },     { "0,", 0 },   { "-5", 0 },  { "+5", 0 },     { "1.5", 0 },
        { "5;x=1", 0 }, { "5s", 0 },  { "abc", 0 }, { "0x10", 0 },   { "\"5\"", 0 },
        { "x, 5", 0 }, { "5 ", 5 },   { " 5", 5 },
    };
    RUN_AGES(c);
}
END_TEST

/* Two Age lines are one list: the first member counts. */
START_TEST(age_two_lines)
{
    struct http_msg m;
    resp_with(&m, "Age", "10", "Age", "20", NULL);
    ck_assert_int_eq(resp_age_value(&m), 10);
    http_msg_free(&m);
    resp_with(&m, "Age", "0", "age", "7200", NULL);
    ck_assert_int_eq(resp_age_value(&m), 0);
    http_msg_free(&m);
    /* a removed (dead) second line does not count */
    resp_with(&m, "Age", "10", NULL);
    http_msg_add_str(&m, "X-Other", "1");
    ck_assert_uint_eq(http_msg_remove(&m, "X-Other"), 1);
    ck_assert_int_eq(resp_age_value(&m), 10);
    http_msg_free(&m);
}
END_TEST

/*
 * Regression (fixed; src/http/resp_timing.c, resp_age_value): the clamp was
 * tested before the next digit was added, so every Age from 2147483640 to
 * 2147483647 read as 2^31.  §1.2.2: only a delta-seconds too large to
 * represent is taken as 2^31; values up to it are exact.
 */
START_TEST(age_overflow_clamps)
{
    static const struct age_case c[] = {
        { "2147483639", INT64_C(2147483639) },
        { "2147483640", INT64_C(2147483640) },
        { "2147483647", INT64_C(2147483647) },
        { "2147483648", CC_DELTA_MAX },
        { "2147483649", CC_DELTA_MAX },
        { "9999999999", CC_DELTA_MAX },
        { "99999999999999999999999999999999", CC_DELTA_MAX },
        { "99999999999999999999999999999999,1", CC_DELTA_MAX },
    };
    RUN_AGES(c);
}
END_TEST

/* --------------------------------------------------------------- timing */

/* resp_timing_parse of a response with the given fields (pairs of name,
 * value, then NULL) into a struct full of junk: the request and response
 * times are always kept as given. */
static struct resp_timing timing_of(const char *name, ...)
{
    struct http_msg m;
    http_msg_init(&m);
    m.status = 200;
    va_list ap;
    va_start(ap, name);
    for (const char *n = name; n != NULL; n = va_arg(ap, const char *))
        http_msg_add_str(&m, n, va_arg(ap, const char *));
    va_end(ap);
    struct resp_timing t;
    memset(&t, 0xa5, sizeof t);
    resp_timing_parse(&m, REQ_T, RESP_T, &t);
    http_msg_free(&m);
    ck_assert_int_eq(t.request_time, REQ_T);
    ck_assert_int_eq(t.response_time, RESP_T);
    return t;
}

/* Every field is read. */
START_TEST(timing_all_fields)
{
    struct resp_timing t = timing_of("Date", "Thu, 01 Jan 2015 00:01:00 GMT", "Age", "30",
                                     "Expires", "Thu, 01 Jan 2015 01:00:00 GMT",
                                     "Last-Modified", "Wed, 31 Dec 2014 00:00:00 GMT", NULL);
    ck_assert(t.has_date);
    ck_assert_int_eq(t.date, T0 + 60);
    ck_assert_int_eq(t.age_value, 30);
    ck_assert(t.has_expires);
    ck_assert(t.expires_valid);
    ck_assert_int_eq(t.expires, T0 + 3600);
    ck_assert(t.has_last_modified);
    ck_assert_int_eq(t.last_modified, T0 - 86400);
}
END_TEST

/* Nothing but the times: Date becomes the response time (RFC 9110 §6.6.1,
 * the cache adds that Date when it forwards), the rest absent, whatever
 * the struct held before. */
START_TEST(timing_no_fields)
{
    struct resp_timing t = timing_of("Content-Type", "text/plain", NULL);
    ck_assert(t.has_date);
    ck_assert_int_eq(t.date, RESP_T);
    ck_assert_int_eq(t.age_value, 0);
    ck_assert(!t.has_expires);
    ck_assert(!t.expires_valid);
    ck_assert_int_eq(t.expires, 0);
    ck_assert(!t.has_last_modified);
    ck_assert_int_eq(t.last_modified, 0);
}
END_TEST

/* An invalid Date is as good as none: the response time stands in. */
START_TEST(timing_invalid_date)
{
    static const char *const bad[] = { "", "yesterday", "0", "Thu, 32 Jan 2015 00:00:00 GMT" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct resp_timing t = timing_of("Date", bad[i], NULL);
        ck_assert_msg(t.has_date && t.date == RESP_T, "Date \"%s\"", bad[i]);
    }
}
END_TEST

/* RFC 9111 §5.3: an invalid Expires ("0", "-1", junk) is present but
 * means "already expired": has_expires with expires_valid false. */
START_TEST(timing_invalid_expires)
{
    static const char *const bad[] = { "0", "-1", "", "never", "Thu, 01 Jan 2015" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct resp_timing t = timing_of("Date", T0_STR, "expires", bad[i], NULL);
        ck_assert_msg(t.has_expires && !t.expires_valid, "Expires \"%s\"", bad[i]);
        ck_assert_int_eq(t.date, T0);
    }
}
END_TEST

/* Every date format of RFC 9110 §5.6.7 is read; an invalid Last-Modified
 * counts as none (no validator, no heuristic). */
START_TEST(timing_last_modified)
{
    static const struct {
        const char *value;
        bool has;
        time_t want;
    } c[] = {
        { T0_STR, true, T0 },
        { "Thursday, 01-Jan-15 00:00:00 GMT", true, T0 },
        { "Thu Jan  1 00:00:00 2015", true, T0 },
        { "", false, 0 },
        { "last week", false, 0 },
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        struct resp_timing t = timing_of("LAST-MODIFIED", c[i].value, "Expires", c[i].value, NULL);
        ck_assert_msg(t.has_last_modified == c[i].has, "Last-Modified \"%s\"", c[i].value);
        ck_assert_msg(t.expires_valid == c[i].has, "Expires \"%s\"", c[i].value);
        if (c[i].has) {
            ck_assert_int_eq(t.last_modified, c[i].want);
            ck_assert_int_eq(t.expires, c[i].want);
        }
    }
}
END_TEST

/* The Age read by resp_timing_parse is resp_age_value's. */
START_TEST(timing_age_value)
{
    ck_assert_int_eq(timing_of("Age", "1, 2", NULL).age_value, 1);
    ck_assert_int_eq(timing_of("Age", "120,5", NULL).age_value, 120);
    ck_assert_int_eq(timing_of("Age", "120", "Age", "5", NULL).age_value, 120);
    ck_assert_int_eq(timing_of("Age", "1.5", NULL).age_value, 0);
}
END_TEST

static Suite *resp_timing_suite(void)
{
    Suite *s = suite_create("resp_timing");

    TCase *a = tcase_create("age");
    tcase_add_test(a, age_digits);
    tcase_add_test(a, age_list_without_spaces);
    tcase_add_test(a, age_untrusted_shapes);
    tcase_add_test(a, age_two_lines);
    suite_add_tcase(s, a);

    TCase *t = tcase_create("timing");
    tcase_add_test(t, timing_all_fields);
    tcase_add_test(t, timing_no_fields);
    tcase_add_test(t, timing_invalid_date);
    tcase_add_test(t, timing_invalid_expires);
    tcase_add_test(t, timing_last_modified);
    tcase_add_test(t, timing_age_value);
    suite_add_tcase(s, t);

    /* Regression tests for bugs these suites found in src/ (see their
     * comments). */
    TCase *kb = tcase_create("regressions");
    tcase_set_tags(kb, "regression");
    tcase_add_test(kb, age_overflow_clamps);
    suite_add_tcase(s, kb);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(resp_timing_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
