/*
 * check_range.c — the Range request field (RFC 9110 §14.1, §14.2) against a
 * representation of known size (src/http/range.c): the three single-range
 * forms, clamping, unsatisfiable ranges (416), and every shape that selects
 * the whole representation instead (several ranges, other units, junk,
 * overflow).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/http/range.h"

struct range_case {
    const char *value;
    uint64_t size;
    enum range_choice want;
    uint64_t first, last;           /* when want == RANGE_ONE */
};

/* Run a table; first/last are checked only for RANGE_ONE. */
static void run_cases(const struct range_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t first = UINT64_MAX, last = UINT64_MAX;
        enum range_choice got =
            range_parse(c[i].value, strlen(c[i].value), c[i].size, &first, &last);
        ck_assert_msg(got == c[i].want, "\"%s\" of %llu: choice %d, expected %d", c[i].value,
                      (unsigned long long)c[i].size, (int)got, (int)c[i].want);
        if (c[i].want != RANGE_ONE)
            continue;
        ck_assert_msg(first == c[i].first && last == c[i].last,
                      "\"%s\" of %llu: bytes %llu-%llu, expected %llu-%llu", c[i].value,
                      (unsigned long long)c[i].size, (unsigned long long)first,
                      (unsigned long long)last, (unsigned long long)c[i].first,
                      (unsigned long long)c[i].last);
    }
}

#define RUN(table) run_cases(table, sizeof table / sizeof table[0])

/* ---------------------------------------------------------- satisfiable */

/* §14.1.2 int-range "a-b": bytes a..b; a last-pos at or past the end means
 * the rest of the representation. */
START_TEST(first_last)
{
    static const struct range_case c[] = {
        { "bytes=0-4", 10, RANGE_ONE, 0, 4 },
        { "bytes=0-0", 10, RANGE_ONE, 0, 0 },
        { "bytes=3-3", 10, RANGE_ONE, 3, 3 },
        { "bytes=9-9", 10, RANGE_ONE, 9, 9 },
        { "bytes=0-9", 10, RANGE_ONE, 0, 9 },
        { "bytes=2-10", 10, RANGE_ONE, 2, 9 },          /* one past the end */
        { "bytes=2-99999", 10, RANGE_ONE, 2, 9 },
        { "bytes=0-9223372036854775807", 10, RANGE_ONE, 0, 9 },
        { "bytes=0-0", 1, RANGE_ONE, 0, 0 },
        { "bytes=007-08", 10, RANGE_ONE, 7, 8 },        /* leading zeros are digits */
    };
    RUN(c);
}
END_TEST

/* §14.1.2 "a-": from a to the end. */
START_TEST(open_ended)
{
    static const struct range_case c[] = {
        { "bytes=0-", 10, RANGE_ONE, 0, 9 },
        { "bytes=5-", 10, RANGE_ONE, 5, 9 },
        { "bytes=9-", 10, RANGE_ONE, 9, 9 },
        { "bytes=0-", 1, RANGE_ONE, 0, 0 },
        { "bytes=4294967296-", UINT64_C(8589934592), RANGE_ONE, UINT64_C(4294967296),
          UINT64_C(8589934591) },                       /* past 32 bits */
    };
    RUN(c);
}
END_TEST

/* §14.1.2 suffix-range "-n": the last n bytes; a suffix longer than the
 * representation selects all of it. */
START_TEST(suffix)
{
    static const struct range_case c[] = {
        { "bytes=-3", 10, RANGE_ONE, 7, 9 },
        { "bytes=-1", 10, RANGE_ONE, 9, 9 },
        { "bytes=-9", 10, RANGE_ONE, 1, 9 },
        { "bytes=-10", 10, RANGE_ONE, 0, 9 },
        { "bytes=-11", 10, RANGE_ONE, 0, 9 },
        { "bytes=-9223372036854775807", 10, RANGE_ONE, 0, 9 },
        { "bytes=-1", 1, RANGE_ONE, 0, 0 },
    };
    RUN(c);
}
END_TEST

/* §14.1: the range unit is case-insensitive. */
START_TEST(unit_case_insensitive)
{
    static const struct range_case c[] = {
        { "BYTES=0-4", 10, RANGE_ONE, 0, 4 },
        { "Bytes=5-", 10, RANGE_ONE, 5, 9 },
        { "bYtEs=-2", 10, RANGE_ONE, 8, 9 },
    };
    RUN(c);
}
END_TEST

/* Only `len` bytes of the value are read: it need not end in a NUL. */
START_TEST(respects_len)
{
    uint64_t first = 0, last = 0;
    ck_assert_int_eq(range_parse("bytes=0-4junk", 9, 10, &first, &last), RANGE_ONE);
    ck_assert_uint_eq(first, 0);
    ck_assert_uint_eq(last, 4);
    ck_assert_int_eq(range_parse("bytes=2-,3-4", 8, 10, &first, &last), RANGE_ONE);
    ck_assert_uint_eq(first, 2);
    ck_assert_uint_eq(last, 9);
    ck_assert_int_eq(range_parse("bytes=0-4", 6, 10, &first, &last), RANGE_NONE);
    ck_assert_int_eq(range_parse("bytes=0-4", 0, 10, &first, &last), RANGE_NONE);
}
END_TEST

/* -------------------------------------------------------- unsatisfiable */

/* §14.1.1: a first-pos at or past the end, or a zero suffix-length, is
 * unsatisfiable; a range set of only such ranges gets a 416 (§15.5.17). */
START_TEST(unsatisfiable)
{
    static const struct range_case c[] = {
        { "bytes=10-", 10, RANGE_UNSATISFIABLE, 0, 0 },
        { "bytes=10-20", 10, RANGE_UNSATISFIABLE, 0, 0 },
        { "bytes=11-", 10, RANGE_UNSATISFIABLE, 0, 0 },
        { "bytes=1000-1000", 10, RANGE_UNSATISFIABLE, 0, 0 },
        { "bytes=9223372036854775808-", 10, RANGE_UNSATISFIABLE, 0, 0 },
        { "bytes=-0", 10, RANGE_UNSATISFIABLE, 0, 0 },
        { "bytes=-000", 10, RANGE_UNSATISFIABLE, 0, 0 },
        { "bytes=1-", 1, RANGE_UNSATISFIABLE, 0, 0 },
    };
    RUN(c);
}
END_TEST

/*
 * Regression (fixed; src/http/range.c, range_parse): "bytes=-n" on an empty
 * representation was a 416.  RFC 9110 §14.1.1: with a zero-length
 * representation no first-pos is satisfiable (416), but "the only
 * satisfiable form of range-spec is a suffix-range with a non-zero
 * suffix-length": it is not a 416.  A 206 cannot carry zero bytes
 * (Content-Range needs last-pos >= first-pos), so the Range is ignored and
 * the whole, empty, representation is sent (§14.2).
 */
START_TEST(zero_length_representation)
{
    static const struct range_case c[] = {
        { "bytes=0-", 0, RANGE_UNSATISFIABLE, 0, 0 },
        { "bytes=0-0", 0, RANGE_UNSATISFIABLE, 0, 0 },
        { "bytes=0-10", 0, RANGE_UNSATISFIABLE, 0, 0 },
        { "bytes=5-", 0, RANGE_UNSATISFIABLE, 0, 0 },
        { "bytes=-0", 0, RANGE_UNSATISFIABLE, 0, 0 },
        { "bytes=-1", 0, RANGE_NONE, 0, 0 },
        { "bytes=-500", 0, RANGE_NONE, 0, 0 },
    };
    RUN(c);
}
END_TEST

/* --------------------------------------------------- whole representation */

/* §14.2: a server MAY ignore Range; freshcache serves one range only, so a
 * set of several (even overlapping or one satisfiable) is answered whole. */
START_TEST(several_ranges)
{
    static const struct range_case c[] = {
        { "bytes=0-1,3-4", 10, RANGE_NONE, 0, 0 },
        { "bytes=0-1, 3-4", 10, RANGE_NONE, 0, 0 },
        { "bytes=0-4,0-4", 10, RANGE_NONE, 0, 0 },
        { "bytes=-1,0-0", 10, RANGE_NONE, 0, 0 },
        { "bytes=50-60,0-1", 10, RANGE_NONE, 0, 0 },   /* not a 416: 0-1 is satisfiable */
        { "bytes=0-4,", 10, RANGE_NONE, 0, 0 },
        { "bytes=,0-4", 10, RANGE_NONE, 0, 0 },
    };
    RUN(c);
}
END_TEST

/* §14.1: only the "bytes" unit is known; any other is ignored. */
START_TEST(other_units)
{
    static const struct range_case c[] = {
        { "items=0-4", 10, RANGE_NONE, 0, 0 },
        { "byte=0-4", 10, RANGE_NONE, 0, 0 },
        { "bytesx=0-4", 10, RANGE_NONE, 0, 0 },
        { "bits=0-4", 10, RANGE_NONE, 0, 0 },
        { "none", 10, RANGE_NONE, 0, 0 },
        { "=0-4", 10, RANGE_NONE, 0, 0 },
        { "0-4", 10, RANGE_NONE, 0, 0 },
    };
    RUN(c);
}
END_TEST

/* §14.1.1: an int-range whose last-pos is below its first-pos is invalid,
 * and so is every value that is not the grammar: ignored, never a 416. */
START_TEST(malformed)
{
    static const struct range_case c[] = {
        { "", 10, RANGE_NONE, 0, 0 },
        { "bytes", 10, RANGE_NONE, 0, 0 },
        { "bytes=", 10, RANGE_NONE, 0, 0 },
        { "bytes=-", 10, RANGE_NONE, 0, 0 },
        { "bytes=5", 10, RANGE_NONE, 0, 0 },
        { "bytes=5-3", 10, RANGE_NONE, 0, 0 },
        { "bytes=20-15", 10, RANGE_NONE, 0, 0 },        /* invalid before unsatisfiable */
        { "bytes=--5", 10, RANGE_NONE, 0, 0 },
        { "bytes=1--5", 10, RANGE_NONE, 0, 0 },
        { "bytes=1-2-3", 10, RANGE_NONE, 0, 0 },
        { "bytes=+1-2", 10, RANGE_NONE, 0, 0 },
        { "bytes=1-+2", 10, RANGE_NONE, 0, 0 },
        { "bytes=-+2", 10, RANGE_NONE, 0, 0 },
        { "bytes=a-b", 10, RANGE_NONE, 0, 0 },
        { "bytes=1-b", 10, RANGE_NONE, 0, 0 },
        { "bytes=0x1-2", 10, RANGE_NONE, 0, 0 },
        { "bytes=1.5-2", 10, RANGE_NONE, 0, 0 },
        { "bytes=-1e3", 10, RANGE_NONE, 0, 0 },
        { "bytes=\"0-4\"", 10, RANGE_NONE, 0, 0 },
        { "bytes=0-4;x=1", 10, RANGE_NONE, 0, 0 },
    };
    RUN(c);
}
END_TEST

/* Whitespace is not part of a range-spec; the plain form is the only one
 * served, anything else is ignored (always a valid answer, §14.2). */
START_TEST(spaces)
{
    static const struct range_case c[] = {
        { "bytes =0-4", 10, RANGE_NONE, 0, 0 },
        { "bytes= 0-4", 10, RANGE_NONE, 0, 0 },
        { "bytes=0 -4", 10, RANGE_NONE, 0, 0 },
        { "bytes=0- 4", 10, RANGE_NONE, 0, 0 },
        { "bytes=0-4 ", 10, RANGE_NONE, 0, 0 },
        { "bytes=- 3", 10, RANGE_NONE, 0, 0 },
        { "bytes=0-\t4", 10, RANGE_NONE, 0, 0 },
    };
    RUN(c);
}
END_TEST

/* A number that does not fit in 64 bits is not read modulo 2^64: the
 * value is ignored (never a wrapped small range). */
START_TEST(overflow)
{
    static const struct range_case c[] = {
        { "bytes=18446744073709551616-", 10, RANGE_NONE, 0, 0 },        /* 2^64 */
        { "bytes=18446744073709551617-18446744073709551618", 10, RANGE_NONE, 0, 0 },
        { "bytes=0-18446744073709551616", 10, RANGE_NONE, 0, 0 },
        { "bytes=-18446744073709551616", 10, RANGE_NONE, 0, 0 },
        { "bytes=-99999999999999999999999999", 10, RANGE_NONE, 0, 0 },
        { "bytes=99999999999999999999999999-", 10, RANGE_NONE, 0, 0 },
    };
    RUN(c);
}
END_TEST

static Suite *range_suite(void)
{
    Suite *s = suite_create("range");

    TCase *ok = tcase_create("satisfiable");
    tcase_add_test(ok, first_last);
    tcase_add_test(ok, open_ended);
    tcase_add_test(ok, suffix);
    tcase_add_test(ok, unit_case_insensitive);
    tcase_add_test(ok, respects_len);
    suite_add_tcase(s, ok);

    TCase *un = tcase_create("unsatisfiable");
    tcase_add_test(un, unsatisfiable);
    suite_add_tcase(s, un);

    TCase *wh = tcase_create("whole");
    tcase_add_test(wh, several_ranges);
    tcase_add_test(wh, other_units);
    tcase_add_test(wh, malformed);
    tcase_add_test(wh, spaces);
    tcase_add_test(wh, overflow);
    suite_add_tcase(s, wh);

    /* Regression tests for bugs these suites found in src/ (see their
     * comments). */
    TCase *kb = tcase_create("regressions");
    tcase_set_tags(kb, "regression");
    tcase_add_test(kb, zero_length_representation);
    suite_add_tcase(s, kb);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(range_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
