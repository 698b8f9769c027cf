/*
 * check_conditional.c — client preconditions (src/http/conditional.c):
 * entity-tag comparison (RFC 9110 §8.8.3.2), If-Match, If-Unmodified-Since,
 * If-None-Match and If-Modified-Since evaluated in the §13.2.2 order, and
 * If-Range (§13.1.5).
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/http/conditional.h"
#include "freshcache/http/http_date.h"
#include "freshcache/http/http_msg.h"
#include "unit_msg.h"

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
    msg_add_pairs(&req, ap);
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


/* §5.3: several lines of a list field are one comma-separated list, so a
 * tag on the second If-None-Match / If-Match line counts as much as one on
 * the first. */
START_TEST(cond_several_field_lines)
{
    struct validators v = val(200, "\"v1\"", true, T0);
    ck_assert_int_eq(eval(&v, "If-None-Match", "\"v0\"", "If-None-Match", "\"v1\"", NULL),
                     COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&v, "If-None-Match", "\"v0\"", "if-none-match", "*", NULL),
                     COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&v, "If-None-Match", "\"v0\"", "If-None-Match", "\"v2\"", NULL),
                     COND_NONE);
    ck_assert_int_eq(eval(&v, "If-Match", "\"v0\"", "If-Match", "\"v1\"", NULL), COND_NONE);
    ck_assert_int_eq(eval(&v, "If-Match", "\"v0\"", "IF-MATCH", "\"v2\"", NULL),
                     COND_PRECONDITION_FAILED);
    /* a second If-Match line that passes lets If-None-Match decide */
    ck_assert_int_eq(eval(&v, "If-Match", "\"v0\"", "If-Match", "\"v1\"",
                          "If-None-Match", "\"v1\"", NULL), COND_NOT_MODIFIED);
}
END_TEST

/* §13.1.3, §13.1.4: a recipient MUST ignore If-Modified-Since /
 * If-Unmodified-Since whose value is not one valid HTTP-date: two lines
 * (or a list on one line) are ignored, not read by their first date. */
START_TEST(cond_date_lists_ignored)
{
    struct validators v = val(200, NULL, true, T0);
    const char *later = date_str(T0 + 60), *earlier = date_str(T0 - 60);
    char list[2 * HTTP_DATE_LEN + 3];
    snprintf(list, sizeof list, "%s, %s", later, later);

    ck_assert_int_eq(eval(&v, "If-Modified-Since", later, NULL), COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&v, "If-Modified-Since", later, "If-Modified-Since", later, NULL),
                     COND_NONE);
    ck_assert_int_eq(eval(&v, "If-Modified-Since", list, NULL), COND_NONE);

    ck_assert_int_eq(eval(&v, "If-Unmodified-Since", earlier, NULL), COND_PRECONDITION_FAILED);
    ck_assert_int_eq(eval(&v, "If-Unmodified-Since", earlier, "If-Unmodified-Since", earlier,
                          NULL), COND_NONE);
    /* the ignored IUS leaves If-Modified-Since to decide */
    ck_assert_int_eq(eval(&v, "If-Unmodified-Since", earlier, "if-unmodified-since", earlier,
                          "If-Modified-Since", later, NULL), COND_NOT_MODIFIED);
}
END_TEST

/* §5.1: field names are case-insensitive; an empty If-Match list names no
 * current tag (412), an empty If-None-Match none either (no 304). */
START_TEST(cond_names_and_empty_values)
{
    struct validators v = val(200, "\"v1\"", true, T0);
    ck_assert_int_eq(eval(&v, "IF-MATCH", "\"v2\"", NULL), COND_PRECONDITION_FAILED);
    ck_assert_int_eq(eval(&v, "if-match", "\"v1\"", NULL), COND_NONE);
    ck_assert_int_eq(eval(&v, "IF-UNMODIFIED-SINCE", date_str(T0 - 1), NULL),
                     COND_PRECONDITION_FAILED);
    ck_assert_int_eq(eval(&v, "if-modified-since", T0_STR, NULL), COND_NOT_MODIFIED);
    ck_assert_int_eq(eval(&v, "If-Match", "", NULL), COND_PRECONDITION_FAILED);
    ck_assert_int_eq(eval(&v, "If-None-Match", "", NULL), COND_NONE);
    /* an empty If-None-Match still stands in for If-Modified-Since */
    ck_assert_int_eq(eval(&v, "If-None-Match", "", "If-Modified-Since", T0_STR, NULL),
                     COND_NONE);
}
END_TEST

/* ------------------------------------------------------------- If-Range */

static bool if_range(const char *ir, const struct validators *v)
{
    return if_range_matches(ir, strlen(ir), v);
}

/* §13.1.5: an entity-tag If-Range selects the representation only when it
 * matches the current one by the strong comparison: a weak tag, on either
 * side, never does. */
START_TEST(if_range_etag)
{
    struct validators v = val(200, "\"v1\"", true, T0);
    ck_assert(if_range("\"v1\"", &v));
    ck_assert(!if_range("\"v2\"", &v));
    ck_assert(!if_range("\"V1\"", &v));
    ck_assert(!if_range("\"v\"", &v));
    ck_assert(!if_range("\"v1", &v));
    ck_assert(!if_range("W/\"v1\"", &v));

    struct validators w = val(200, "W/\"v1\"", true, T0);
    ck_assert(!if_range("W/\"v1\"", &w));
    ck_assert(!if_range("\"v1\"", &w));

    /* no stored tag: no entity-tag matches */
    struct validators n = val(200, NULL, true, T0);
    ck_assert(!if_range("\"v1\"", &n));
}
END_TEST

/*
 * Regression (fixed; src/http/conditional.c, if_range_matches): an If-Range
 * entity-tag was compared as an If-Match list, so '"v0", "v1"' or '"v0", *'
 * selected the representation tagged "v1" (or any).  If-Range =
 * entity-tag / HTTP-date (RFC 9110 §13.1.5): one validator, never a list
 * and never "*"; a malformed value must not send a part of the wrong
 * representation.
 */
START_TEST(if_range_not_a_list)
{
    struct validators v = val(200, "\"v1\"", true, T0);
    ck_assert(!if_range("*", &v));
    ck_assert(!if_range("\"v0\", \"v1\"", &v));
    ck_assert(!if_range("\"v1\", \"v0\"", &v));
    ck_assert(!if_range("\"v0\", *", &v));
}
END_TEST

/* §13.1.5: an HTTP-date If-Range selects the representation only when it
 * is exactly its Last-Modified: neither earlier nor later dates, nor the
 * Date field without a Last-Modified. */
START_TEST(if_range_date)
{
    struct validators v = val(200, "\"v1\"", true, T0);
    ck_assert(if_range(T0_STR, &v));
    ck_assert(if_range("Thursday, 01-Jan-15 00:00:00 GMT", &v));
    ck_assert(if_range("Thu Jan  1 00:00:00 2015", &v));
    ck_assert(!if_range(date_str(T0 + 1), &v));
    ck_assert(!if_range(date_str(T0 - 1), &v));

    struct validators d = val(200, "\"v1\"", false, 0);
    d.has_date = true;
    d.date = T0;
    ck_assert(!if_range(T0_STR, &d));
}
END_TEST

/* Anything that is neither a quoted entity-tag nor an HTTP-date matches
 * nothing: the Range is then ignored and the whole representation sent. */
START_TEST(if_range_garbage)
{
    struct validators v = val(200, "\"v1\"", true, T0);
    static const char *const junk[] = {
        "", " ", "v1", "W", "W/", "Wed", "\"", "yesterday", "1420070400", "Thu, 01 Jan 2015",
        "Thu, 01 Jan 2015 00:00:00 GMT, Thu, 01 Jan 2015 00:00:00 GMT",
    };
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++)
        ck_assert_msg(!if_range(junk[i], &v), "\"%s\" matched", junk[i]);
    /* only `len` bytes are read */
    ck_assert(if_range_matches("\"v1\"junk", 4, &v));
    ck_assert(!if_range_matches("\"v1\"", 3, &v));
}
END_TEST

/*
 * Regression (fixed; src/http/conditional.c, if_range_matches): any value
 * starting with 'W' was taken for a weak entity-tag, so an If-Range date on
 * a Wednesday ("Wed, 31 Dec 2014 00:00:00 GMT") never matched and the
 * client was sent the whole representation instead of its range.  RFC 9110
 * §13.1.5 tells the two apart by the DQUOTE.
 */
START_TEST(if_range_wednesday)
{
    struct validators v = val(200, "\"v1\"", true, T0 - 86400);
    ck_assert_str_eq(date_str(T0 - 86400), "Wed, 31 Dec 2014 00:00:00 GMT");
    ck_assert(if_range("Wed, 31 Dec 2014 00:00:00 GMT", &v));
    ck_assert(if_range("Wednesday, 31-Dec-14 00:00:00 GMT", &v));
    ck_assert(!if_range("Wed, 31 Dec 2014 00:00:01 GMT", &v));
}
END_TEST

static Suite *conditional_suite(void)
{
    Suite *s = suite_create("conditional");
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
    tcase_add_test(c, cond_names_and_empty_values);
    suite_add_tcase(s, c);

    TCase *r = tcase_create("if_range");
    tcase_add_test(r, if_range_etag);
    tcase_add_test(r, if_range_date);
    tcase_add_test(r, if_range_garbage);
    suite_add_tcase(s, r);

    /* Regression tests for bugs these suites found in src/ (see their
     * comments). */
    TCase *kb = tcase_create("regressions");
    tcase_set_tags(kb, "regression");
    tcase_add_test(kb, cond_several_field_lines);
    tcase_add_test(kb, cond_date_lists_ignored);
    tcase_add_test(kb, if_range_wednesday);
    tcase_add_test(kb, if_range_not_a_list);
    suite_add_tcase(s, kb);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conditional_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
