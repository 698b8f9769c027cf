/*
 * check_http_date.c — HTTP-date parsing and formatting (RFC 9110 §5.6.7).
 *
 * Expected epoch values were computed independently (Python's
 * calendar.timegm), not with the code under test.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "freshcache/http/http_date.h"

#define T_1994 ((time_t)784111777)      /* Sun, 06 Nov 1994 08:49:37 GMT */
#define NOW_2025 ((time_t)1748736000)   /* 2025-06-01 00:00:00 UTC */
#define NOW_2090 ((time_t)3799958400)   /* 2090-06-01 00:00:00 UTC */

static bool parse(const char *s, time_t *out)
{
    return http_date_parse_at(s, strlen(s), NOW_2025, out);
}

static void assert_parses(const char *s, time_t want)
{
    time_t t = 12345;
    ck_assert_msg(parse(s, &t), "should parse: \"%s\"", s);
    ck_assert_msg(t == want, "\"%s\": got %lld, want %lld", s, (long long)t, (long long)want);
}

static void assert_rejects(const char *s)
{
    time_t t = 12345;
    ck_assert_msg(!parse(s, &t), "should reject: \"%s\"", s);
    ck_assert_msg(t == 12345, "\"%s\": output written on failure", s);
}

START_TEST(imf_fixdate)
{
    assert_parses("Sun, 06 Nov 1994 08:49:37 GMT", T_1994);
    assert_parses("Thu, 01 Jan 1970 00:00:00 GMT", 0);
    assert_parses("Wed, 31 Dec 1969 23:59:59 GMT", -1);   /* timegm's error value, but valid */
    assert_parses("Fri, 01 Jan 2016 00:00:00 GMT", 1451606400);
    assert_parses("Fri, 31 Dec 9999 23:59:59 GMT", (time_t)INT64_C(253402300799));
}
END_TEST

START_TEST(rfc850)
{
    assert_parses("Sunday, 06-Nov-94 08:49:37 GMT", T_1994);
    assert_parses("Tuesday, 01-Jan-80 00:00:00 GMT", 315532800);   /* 2080 is > 50 years on */
    assert_parses("Monday, 01-Jan-24 00:00:00 GMT", 1704067200);
}
END_TEST

START_TEST(asctime_form)
{
    assert_parses("Sun Nov  6 08:49:37 1994", T_1994);
    assert_parses("Sun Nov 06 08:49:37 1994", T_1994);     /* date3 allows 2DIGIT */
    assert_parses("Thu Feb 29 12:00:00 2024", 1709208000);
}
END_TEST

START_TEST(surrounding_whitespace)
{
    assert_parses("  Sun, 06 Nov 1994 08:49:37 GMT", T_1994);
    assert_parses("Sun, 06 Nov 1994 08:49:37 GMT \t ", T_1994);
    assert_parses("\tSun Nov  6 08:49:37 1994\t", T_1994);
    assert_parses(" Sunday, 06-Nov-94 08:49:37 GMT ", T_1994);
}
END_TEST

START_TEST(length_is_respected)
{
    /* Not NUL-terminated where the date ends: trailing bytes are outside len. */
    const char *buf = "Sun, 06 Nov 1994 08:49:37 GMTxyz";
    time_t t = 0;
    ck_assert(http_date_parse_at(buf, HTTP_DATE_LEN, NOW_2025, &t));
    ck_assert_int_eq(t, T_1994);
    ck_assert(!http_date_parse_at(buf, HTTP_DATE_LEN + 1, NOW_2025, &t));
    ck_assert(!http_date_parse_at(buf, HTTP_DATE_LEN - 1, NOW_2025, &t));
    ck_assert(!http_date_parse_at(NULL, 0, NOW_2025, &t));
    ck_assert(!http_date_parse_at("", 0, NOW_2025, &t));
}
END_TEST

START_TEST(leap_years_and_month_lengths)
{
    assert_parses("Thu, 29 Feb 2024 12:00:00 GMT", 1709208000);
    assert_parses("Tue, 29 Feb 2000 00:00:00 GMT", 951782400);   /* divisible by 400 */
    assert_rejects("Wed, 29 Feb 2023 00:00:00 GMT");
    assert_rejects("Thu, 29 Feb 1900 00:00:00 GMT");             /* divisible by 100 */
    assert_rejects("Thu, 30 Feb 2024 00:00:00 GMT");
    assert_rejects("Thu, 31 Apr 2024 00:00:00 GMT");
    assert_rejects("Thu, 31 Jun 2024 00:00:00 GMT");
    assert_rejects("Thu, 31 Sep 2024 00:00:00 GMT");
    assert_rejects("Thu, 31 Nov 2024 00:00:00 GMT");
    assert_parses("Tue, 31 Dec 2024 00:00:00 GMT", 1735603200);
    assert_rejects("Thu, 00 Jan 2024 00:00:00 GMT");
    assert_rejects("Thu, 32 Jan 2024 00:00:00 GMT");
    assert_rejects("Sun Feb 29 00:00:00 2023");
    assert_rejects("Sunday, 29-Feb-23 00:00:00 GMT");
}
END_TEST

START_TEST(time_ranges)
{
    assert_parses("Sun, 06 Nov 1994 23:59:59 GMT", 784166399);
    assert_parses("Sun, 06 Nov 1994 00:00:00 GMT", 784080000);
    /* A leap second is allowed by the grammar and lands on the next minute. */
    assert_parses("Sun, 06 Nov 1994 23:59:60 GMT", 784166400);
    assert_rejects("Sun, 06 Nov 1994 24:00:00 GMT");
    assert_rejects("Sun, 06 Nov 1994 25:00:00 GMT");
    assert_rejects("Sun, 06 Nov 1994 08:60:00 GMT");
    assert_rejects("Sun, 06 Nov 1994 08:49:61 GMT");
    assert_rejects("Sun Nov  6 25:00:00 1994");
    assert_rejects("Sunday, 06-Nov-94 25:00:00 GMT");
}
END_TEST

START_TEST(names)
{
    /* Every day and month name, each in its proper place. */
    assert_parses("Mon, 07 Nov 1994 08:49:37 GMT", T_1994 + 86400);
    assert_parses("Sat, 01 Feb 2025 00:00:00 GMT", 1738368000);
    assert_parses("Sat, 01 Mar 2025 00:00:00 GMT", 1740787200);
    assert_parses("Tue, 01 Apr 2025 00:00:00 GMT", 1743465600);
    assert_parses("Thu, 01 May 2025 00:00:00 GMT", 1746057600);
    assert_parses("Sun, 01 Jun 2025 00:00:00 GMT", 1748736000);
    assert_parses("Tue, 01 Jul 2025 00:00:00 GMT", 1751328000);
    assert_parses("Fri, 01 Aug 2025 00:00:00 GMT", 1754006400);
    assert_parses("Mon, 01 Sep 2025 00:00:00 GMT", 1756684800);
    assert_parses("Wed, 01 Oct 2025 00:00:00 GMT", 1759276800);
    assert_parses("Sat, 01 Nov 2025 00:00:00 GMT", 1761955200);
    assert_parses("Mon, 01 Dec 2025 00:00:00 GMT", 1764547200);
    assert_parses("Tuesday, 01-Apr-25 00:00:00 GMT", 1743465600);
    assert_parses("Wednesday, 01-Oct-25 00:00:00 GMT", 1759276800);
    assert_parses("Thursday, 01-May-25 00:00:00 GMT", 1746057600);
    assert_parses("Friday, 01-Aug-25 00:00:00 GMT", 1754006400);
    assert_parses("Saturday, 01-Nov-25 00:00:00 GMT", 1761955200);

    assert_rejects("Sun, 06 Foo 1994 08:49:37 GMT");
    /* names in any case (RFC 9110 §5.6.7: recipients are robust) */
    assert_parses("Sun, 06 nov 1994 08:49:37 GMT", T_1994);
    assert_parses("Sun, 06 NOV 1994 08:49:37 GMT", T_1994);
    assert_parses("sun, 06 Nov 1994 08:49:37 gmt", T_1994);
    assert_parses("SUNDAY, 06-nov-94 08:49:37 Gmt", T_1994);
    assert_parses("sUN nOV  6 08:49:37 1994", T_1994);
    assert_rejects("Sux, 06 Nov 1994 08:49:37 GMT");
    assert_rejects("Sunday, 06 Nov 1994 08:49:37 GMT"); /* long name in IMF-fixdate */
    assert_rejects("Sun, 06-Nov-94 08:49:37 GMT");      /* short name in RFC 850 */
    assert_rejects("Sunny, 06-Nov-94 08:49:37 GMT");
    assert_rejects("Sunday Nov  6 08:49:37 1994");      /* long name in asctime */
    assert_rejects("Sun November 6 08:49:37 1994");
}
END_TEST

START_TEST(wrong_weekday_is_accepted)
{
    /* Decision: the day name is syntax only.  It is redundant with the date
     * and §5.6.7 asks recipients to be robust, so a mismatch is ignored and
     * the numeric date wins. */
    assert_parses("Mon, 06 Nov 1994 08:49:37 GMT", T_1994);
    assert_parses("Friday, 06-Nov-94 08:49:37 GMT", T_1994);
    assert_parses("Wed Nov  6 08:49:37 1994", T_1994);
}
END_TEST

START_TEST(zone_and_trailing_garbage)
{
    assert_rejects("Sun, 06 Nov 1994 08:49:37");
    assert_rejects("Sun, 06 Nov 1994 08:49:37 UTC");
    assert_rejects("Sun, 06 Nov 1994 08:49:37 +0000");
    assert_rejects("Sun, 06 Nov 1994 08:49:37 GMT+1");
    assert_rejects("Sun, 06 Nov 1994 08:49:37 GMT x");
    assert_rejects("Sun, 06 Nov 1994 08:49:37 GMTGMT");
    assert_rejects("x Sun, 06 Nov 1994 08:49:37 GMT");
    assert_rejects("Sunday, 06-Nov-94 08:49:37");
    assert_rejects("Sunday, 06-Nov-94 08:49:37 EST");
    assert_rejects("Sun Nov  6 08:49:37 1994 GMT");     /* asctime has no zone */
    assert_rejects("Sun Nov  6 08:49:37 1994x");
    /* NUL inside the counted bytes is garbage too. */
    time_t t;
    ck_assert(!http_date_parse_at("Sun, 06 Nov 1994 08:49:37 GMT\0", HTTP_DATE_LEN + 1,
                                  NOW_2025, &t));
}
END_TEST

START_TEST(layout)
{
    assert_rejects("Sun,06 Nov 1994 08:49:37 GMT");
    assert_rejects("Sun 06 Nov 1994 08:49:37 GMT");
    assert_rejects("Sun,  06 Nov 1994 08:49:37 GMT");
    assert_rejects("Sun, 6 Nov 1994 08:49:37 GMT");      /* IMF needs 2DIGIT day */
    assert_rejects("Sun, 06 Nov 94 08:49:37 GMT");       /* IMF needs 4DIGIT year */
    assert_rejects("Sun, 06 Nov 01994 08:49:37 GMT");
    assert_rejects("Sun, 06 Nov 1994 8:49:37 GMT");
    assert_rejects("Sun, 06 Nov 1994 08:49 GMT");
    assert_rejects("Sun, 06 Nov 1994 08.49.37 GMT");
    assert_rejects("Sun, 06-Nov-1994 08:49:37 GMT");
    assert_rejects("Sun, +6 Nov 1994 08:49:37 GMT");
    assert_rejects("Sun, 0a Nov 1994 08:49:37 GMT");
    assert_rejects("Sun, 06 Nov 1994  08:49:37 GMT");
    assert_rejects("Sunday, 06-Nov-1994 08:49:37 GMT");  /* RFC 850 needs 2DIGIT year */
    assert_rejects("Sunday, 6-Nov-94 08:49:37 GMT");
    assert_rejects("Sunday, 06 Nov 94 08:49:37 GMT");
    assert_rejects("Sunday,06-Nov-94 08:49:37 GMT");
    assert_rejects("Sun Nov 6 08:49:37 1994");           /* single digit needs SP pad */
    assert_rejects("Sun Nov   6 08:49:37 1994");
    assert_rejects("Sun Nov  6 08:49:37 94");
    assert_rejects("Sun, Nov  6 08:49:37 1994");
    assert_rejects("");
    assert_rejects("   ");
    assert_rejects("GMT");
    assert_rejects("0");   /* "Expires: 0" — invalid; the caller treats it as expired */
    assert_rejects("-1");
}
END_TEST

START_TEST(every_truncation_rejected)
{
    static const char *const forms[] = {
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    };
    for (size_t f = 0; f < 3; f++) {
        size_t n = strlen(forms[f]);
        time_t t;
        for (size_t len = 0; len < n; len++)
            ck_assert_msg(!http_date_parse_at(forms[f], len, NOW_2025, &t),
                          "prefix %zu of \"%s\" accepted", len, forms[f]);
        ck_assert(http_date_parse_at(forms[f], n, NOW_2025, &t));
        ck_assert_int_eq(t, T_1994);
    }
}
END_TEST

START_TEST(rfc850_two_digit_year)
{
    time_t t;
    /* Now is 2025: the window is (1975, 2075]. */
    assert_parses("Tuesday, 01-Jan-75 00:00:00 GMT", 3313526400);     /* 2075: 50 ahead, kept */
    assert_parses("Thursday, 01-Jan-76 00:00:00 GMT", 189302400);     /* 2076 > +50 → 1976 */
    assert_parses("Friday, 01-Jan-99 00:00:00 GMT", 915148800);       /* 1999 */
    assert_parses("Saturday, 01-Jan-00 00:00:00 GMT", 946684800);     /* 2000 */
    assert_parses("Monday, 01-Jan-24 00:00:00 GMT", 1704067200);      /* 2024 */
    assert_parses("Wednesday, 01-Jan-70 00:00:00 GMT", 3155760000);   /* 2070, not 1970 */
    /* Now is 2090: "10" is 2110 (20 years ahead), not 2010. */
    ck_assert(http_date_parse_at("Monday, 03-Mar-10 00:00:00 GMT", 30, NOW_2090, &t));
    ck_assert_int_eq(t, (time_t)INT64_C(4423248000));
    /* The window is (2040, 2140]: "49" stays 2049, "40" becomes 2140. */
    ck_assert(http_date_parse_at("Friday, 01-Jan-49 00:00:00 GMT", 30, NOW_2090, &t));
    ck_assert_int_eq(t, (time_t)INT64_C(2493072000));
    ck_assert(http_date_parse_at("Friday, 01-Jan-40 00:00:00 GMT", 30, NOW_2090, &t));
    ck_assert_int_eq(t, (time_t)INT64_C(5364662400));
    /* The same string through the real-clock entry point also parses. */
    ck_assert(http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT", 30, &t));
}
END_TEST

START_TEST(format_known_values)
{
    char buf[HTTP_DATE_LEN + 1];
    http_date_format(T_1994, buf);
    ck_assert_str_eq(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    http_date_format(0, buf);
    ck_assert_str_eq(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    http_date_format(-1, buf);
    ck_assert_str_eq(buf, "Wed, 31 Dec 1969 23:59:59 GMT");
    http_date_format(1709208000, buf);
    ck_assert_str_eq(buf, "Thu, 29 Feb 2024 12:00:00 GMT");
    ck_assert_uint_eq(strlen(buf), HTTP_DATE_LEN);
    /* Out of the 4-digit-year range: clamped, still a valid date. */
    http_date_format((time_t)INT64_MAX, buf);
    ck_assert_str_eq(buf, "Fri, 31 Dec 9999 23:59:59 GMT");
    http_date_format((time_t)INT64_MIN, buf);
    ck_assert_str_eq(buf, "Sat, 01 Jan 0000 00:00:00 GMT");
}
END_TEST

START_TEST(format_round_trip)
{
    char buf[HTTP_DATE_LEN + 1];
    /* Roughly every 3 months (odd step so all fields vary) from 1900 to 2400. */
    for (int64_t v = INT64_C(-2208988800); v < INT64_C(13569465600); v += 7777777) {
        http_date_format((time_t)v, buf);
        ck_assert_uint_eq(strlen(buf), HTTP_DATE_LEN);
        time_t back;
        ck_assert_msg(parse(buf, &back), "format produced unparseable \"%s\"", buf);
        ck_assert_msg(back == (time_t)v, "\"%s\": %lld != %lld", buf, (long long)back,
                      (long long)v);
    }
    /* The extremes too. */
    time_t back;
    http_date_format((time_t)INT64_MIN, buf);
    ck_assert(parse(buf, &back));
    ck_assert_int_eq(back, (time_t)INT64_C(-62167219200));
}
END_TEST

/* The calendar arithmetic that replaced gmtime_r() and timegm() gives
 * what they give, at day boundaries over four centuries and at seconds
 * spread over the whole range (years 0000 to 9999, negative times
 * included). */
START_TEST(same_as_libc)
{
    const int64_t lo = INT64_C(-62167219200), hi = INT64_C(253402300799);
    uint64_t x = 88172645463325252u;        /* xorshift: reproducible */
    for (int i = 0; i < 60000; i++) {
        int64_t t;
        if (i < 30000) {    /* every 5th day from 1968 to 2378, at both ends */
            t = INT64_C(-400) * 86400 + (int64_t)i * 5 * 86400 + (i % 2 ? 0 : 86399);
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t = lo + (int64_t)(x % (uint64_t)(hi - lo + 1));
        }
        time_t tt = (time_t)t;
        struct tm tm;
        ck_assert_ptr_nonnull(gmtime_r(&tt, &tm));
        char want[64], got[HTTP_DATE_LEN + 1];
        static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
        static const char mons[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
        snprintf(want, sizeof want, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
                 tm.tm_mday, mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        http_date_format(tt, got);
        ck_assert_msg(strcmp(got, want) == 0, "%lld: %s, want %s", (long long)t, got, want);
        time_t back;
        ck_assert_msg(http_date_parse_at(got, HTTP_DATE_LEN, 0, &back), "%s", got);
        ck_assert_msg(back == tt, "%s: %lld, want %lld", got, (long long)back, (long long)t);
        ck_assert(back == timegm(&tm));
    }
    /* a leap second is the next minute's first, as timegm() has it */
    time_t leap, next;
    ck_assert(http_date_parse_at("Sat, 31 Dec 2016 23:59:60 GMT", 29, 0, &leap));
    ck_assert(http_date_parse_at("Sun, 01 Jan 2017 00:00:00 GMT", 29, 0, &next));
    ck_assert_int_eq(leap, next);
    /* names in any case, but only letters fold */
    time_t a;
    ck_assert(http_date_parse_at("sUN, 06 nov 1994 08:49:37 gmt", 29, 0, &a));
    ck_assert_int_eq(a, 784111777);
    ck_assert(!http_date_parse_at("Sun, 06 N\x0ev 1994 08:49:37 GMT", 29, 0, &a));
    ck_assert(!http_date_parse_at("Sun, 06 Nov 1994 08:49:37 G\x0dT", 29, 0, &a));
}
END_TEST

static Suite *http_date_suite(void)
{
    Suite *s = suite_create("http_date");
    TCase *p = tcase_create("parse");
    tcase_add_test(p, imf_fixdate);
    tcase_add_test(p, rfc850);
    tcase_add_test(p, asctime_form);
    tcase_add_test(p, surrounding_whitespace);
    tcase_add_test(p, length_is_respected);
    tcase_add_test(p, leap_years_and_month_lengths);
    tcase_add_test(p, time_ranges);
    tcase_add_test(p, names);
    tcase_add_test(p, wrong_weekday_is_accepted);
    tcase_add_test(p, zone_and_trailing_garbage);
    tcase_add_test(p, layout);
    tcase_add_test(p, every_truncation_rejected);
    tcase_add_test(p, rfc850_two_digit_year);
    suite_add_tcase(s, p);
    TCase *f = tcase_create("format");
    tcase_add_test(f, format_known_values);
    tcase_add_test(f, format_round_trip);
    tcase_add_test(f, same_as_libc);
    suite_add_tcase(s, f);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_date_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
