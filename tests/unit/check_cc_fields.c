/*
 * check_cc_fields.c — which caching directives a message carries
 * (src/http/cc_fields.c): a request's Cache-Control lines merged, with
 * Pragma: no-cache only when there is no Cache-Control (RFC 9111 §5.4);
 * for a response the one field this cache obeys (RFC 9213 §2.1): its own
 * Freshcache-Cache-Control, else CDN-Cache-Control, else Surrogate-Control
 * (Edge Architecture 1.0 §2.2, directives aimed at other targets
 * skipped), else Cache-Control.
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/http/cache_control.h"
#include "freshcache/http/cc_fields.h"
#include "freshcache/http/http_msg.h"
#include "unit_msg.h"

typedef void parse_fn(const struct http_msg *m, struct cache_control *cc);

/* `parse` applied to a message with the given fields: pairs of name,
 * value, ending in NULL. */
static struct cache_control parsed(parse_fn *parse, ...)
{
    struct http_msg m;
    http_msg_init(&m);
    va_list ap;
    va_start(ap, parse);
    msg_add_pairs(&m, ap);
    va_end(ap);
    struct cache_control cc;
    memset(&cc, 0xa5, sizeof cc);
    parse(&m, &cc);
    http_msg_free(&m);
    return cc;
}

#define REQ(...) parsed(cc_request_parse, __VA_ARGS__, NULL)
#define RESP(...) parsed(cc_response_parse, __VA_ARGS__, NULL)

/* No directive at all: every slot unset, no flag. */
static void assert_empty(const struct cache_control *cc)
{
    ck_assert_uint_eq(cc->flags, 0);
    ck_assert_int_eq(cc->max_age, CC_UNSET);
    ck_assert_int_eq(cc->s_maxage, CC_UNSET);
    ck_assert_int_eq(cc->max_stale, CC_UNSET);
    ck_assert_int_eq(cc->min_fresh, CC_UNSET);
    ck_assert_int_eq(cc->stale_while_revalidate, CC_UNSET);
    ck_assert_int_eq(cc->stale_if_error, CC_UNSET);
}

/* -------------------------------------------------------------- request */

/* RFC 9110 §5.3: several Cache-Control lines are one list; a directive
 * repeated with a value keeps its first occurrence (RFC 9111 §4.2.1). */
START_TEST(request_cache_control_lines)
{
    struct cache_control cc = REQ("Cache-Control", "max-age=5", "cache-control", "no-cache",
                                  "CACHE-CONTROL", "max-stale, min-fresh=3");
    ck_assert_uint_eq(cc.flags, CC_NO_CACHE);
    ck_assert_int_eq(cc.max_age, 5);
    ck_assert_int_eq(cc.max_stale, CC_MAX_STALE_ANY);
    ck_assert_int_eq(cc.min_fresh, 3);
    ck_assert_int_eq(cc.s_maxage, CC_UNSET);

    cc = REQ("Cache-Control", "max-age=5", "Cache-Control", "max-age=9");
    ck_assert_int_eq(cc.max_age, 5);
    cc = parsed(cc_fields_parse, "Cache-Control", "no-store", "Cache-Control", "only-if-cached",
                "Pragma", "no-cache", NULL);
    ck_assert_uint_eq(cc.flags, CC_NO_STORE | CC_ONLY_IF_CACHED);

    cc = REQ("Accept", "*/*");
    assert_empty(&cc);
}
END_TEST

/* RFC 9111 §5.4: without Cache-Control, Pragma: no-cache is no-cache.
 * Only the bare element counts; the field name is case-insensitive. */
START_TEST(request_pragma)
{
    struct cache_control cc = REQ("Pragma", "no-cache");
    ck_assert_uint_eq(cc.flags, CC_NO_CACHE);
    ck_assert_int_eq(cc.max_age, CC_UNSET);
    cc = REQ("pragma", "x-trace, no-cache");
    ck_assert_uint_eq(cc.flags, CC_NO_CACHE);

    static const char *const not_no_cache[] = { "no-cache=1", "x-no-cache", "cache", "", "no-store" };
    for (size_t i = 0; i < sizeof not_no_cache / sizeof *not_no_cache; i++) {
        cc = REQ("Pragma", not_no_cache[i]);
        ck_assert_msg(cc.flags == 0, "Pragma \"%s\": flags %#x", not_no_cache[i], cc.flags);
    }
}
END_TEST

/* §5.4: "When the Cache-Control header field is also present and understood
 * in a request, Pragma is ignored", wherever the lines stand. */
START_TEST(request_cache_control_wins)
{
    struct cache_control cc = REQ("Pragma", "no-cache", "Cache-Control", "max-age=5");
    ck_assert_uint_eq(cc.flags, 0);
    ck_assert_int_eq(cc.max_age, 5);
    cc = REQ("Cache-Control", "max-stale=10", "Pragma", "no-cache");
    ck_assert_uint_eq(cc.flags, 0);
    ck_assert_int_eq(cc.max_stale, 10);
    cc = REQ("Cache-Control", "no-store", "Pragma", "no-cache");
    ck_assert_uint_eq(cc.flags, CC_NO_STORE);
}
END_TEST

/*
 * Regression (fixed; src/http/cc_fields.c, cc_request_parse): only the
 * first Pragma line was read, so "Pragma: x-trace" followed by "Pragma:
 * no-cache" was no no-cache at all.  Pragma is a list (RFC 9111 §5.4) and
 * several lines are one list (RFC 9110 §5.3).
 */
START_TEST(request_pragma_lines)
{
    struct cache_control cc = REQ("Pragma", "x-trace", "Pragma", "no-cache");
    ck_assert_uint_eq(cc.flags, CC_NO_CACHE);
    cc = REQ("Pragma", "x-trace", "PRAGMA", "x-other");
    ck_assert_uint_eq(cc.flags, 0);
    cc = REQ("Pragma", "x-trace", "Pragma", "no-cache", "Cache-Control", "max-age=1");
    ck_assert_uint_eq(cc.flags, 0);
}
END_TEST

/* ------------------------------------------------------------- response */

#define FC_CC "Freshcache-Cache-Control"

/* RFC 9213 §2.1: the most specific field present is used alone: its
 * directives are not merged with any other field's. */
START_TEST(response_precedence)
{
    struct cache_control cc = RESP("Cache-Control", "no-store, max-age=4",
                                   "Surrogate-Control", "max-age=3",
                                   "CDN-Cache-Control", "max-age=2", FC_CC, "max-age=1");
    ck_assert_int_eq(cc.max_age, 1);
    ck_assert_uint_eq(cc.flags, 0);

    cc = RESP("Cache-Control", "no-store, max-age=4", "Surrogate-Control", "max-age=3",
              "CDN-Cache-Control", "max-age=2, public");
    ck_assert_int_eq(cc.max_age, 2);
    ck_assert_uint_eq(cc.flags, CC_PUBLIC);

    cc = RESP("Cache-Control", "no-store, max-age=4", "Surrogate-Control", "max-age=3");
    ck_assert_int_eq(cc.max_age, 3);
    ck_assert_uint_eq(cc.flags, 0);

    cc = RESP("Cache-Control", "no-store, max-age=4");
    ck_assert_int_eq(cc.max_age, 4);
    ck_assert_uint_eq(cc.flags, CC_NO_STORE);

    cc = RESP(FC_CC, "s-maxage=1");
    ck_assert_int_eq(cc.s_maxage, 1);
    ck_assert_int_eq(cc.max_age, CC_UNSET);

    cc = RESP("Content-Type", "text/html", "Pragma", "no-cache");
    assert_empty(&cc);                 /* Pragma means nothing in a response */
}
END_TEST

/* Field names are case-insensitive; several lines of the field used are
 * merged as one list. */
START_TEST(response_names_and_lines)
{
    struct cache_control cc = RESP("Cache-Control", "max-age=4", "freshcache-cache-control",
                                   "max-age=1", "FRESHCACHE-CACHE-CONTROL", "public");
    ck_assert_int_eq(cc.max_age, 1);
    ck_assert_uint_eq(cc.flags, CC_PUBLIC);
    cc = RESP("cdn-cache-control", "no-store", "Cdn-Cache-Control", "max-age=2");
    ck_assert_int_eq(cc.max_age, 2);
    ck_assert_uint_eq(cc.flags, CC_NO_STORE);
    cc = RESP("surrogate-control", "max-age=3", "SURROGATE-CONTROL", "must-revalidate");
    ck_assert_int_eq(cc.max_age, 3);
    ck_assert_uint_eq(cc.flags, CC_MUST_REVALIDATE);
    cc = RESP("cache-control", "max-age=4", "Cache-control", "max-age=8, private");
    ck_assert_int_eq(cc.max_age, 4);
    ck_assert_uint_eq(cc.flags, CC_PRIVATE);
}
END_TEST

/* A removed (dead) field is not there: the next one in order is used. */
START_TEST(response_removed_field)
{
    struct http_msg m;
    http_msg_init(&m);
    http_msg_add_str(&m, FC_CC, "max-age=1");
    http_msg_add_str(&m, "CDN-Cache-Control", "max-age=2");
    http_msg_add_str(&m, "Cache-Control", "max-age=4");
    ck_assert_uint_eq(http_msg_remove(&m, FC_CC), 1);
    struct cache_control cc;
    cc_response_parse(&m, &cc);
    ck_assert_int_eq(cc.max_age, 2);
    ck_assert_uint_eq(http_msg_remove(&m, "cdn-cache-control"), 1);
    cc_response_parse(&m, &cc);
    ck_assert_int_eq(cc.max_age, 4);
    http_msg_free(&m);
}
END_TEST

/* Edge Architecture 1.0 §2.2: a directive may name its target after ';'.
 * Those aimed at this cache ("freshcache", case-insensitive, OWS allowed)
 * and untargeted ones apply; those aimed at another target are skipped. */
START_TEST(response_surrogate_targets)
{
    static const struct {
        const char *value;
        unsigned flags;
        int64_t max_age;
    } c[] = {
        { "max-age=60;freshcache", 0, 60 },
        { "max-age=60", 0, 60 },
        { "max-age=60;other", 0, CC_UNSET },
        { "max-age=60;other, max-age=30", 0, 30 },
        { "max-age=60;other, max-age=30;freshcache", 0, 30 },
        { "max-age=30, max-age=60;freshcache", 0, 30 },          /* first occurrence wins */
        { "no-store;other, max-age=5;freshcache", 0, 5 },
        { "no-store;freshcache, max-age=5;other", CC_NO_STORE, CC_UNSET },
        { "max-age=5; FreshCache", 0, 5 },
        { "max-age=5;\tfreshcache", 0, 5 },
        { "max-age=5;freshcache2", 0, CC_UNSET },
        { "max-age=5;fresh", 0, CC_UNSET },
        { "no-store;other, public", CC_PUBLIC, CC_UNSET },
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        struct cache_control cc = RESP("Cache-Control", "max-age=999, private",
                                       "Surrogate-Control", c[i].value);
        ck_assert_msg(cc.flags == c[i].flags && cc.max_age == c[i].max_age,
                      "\"%s\": flags %#x max-age %lld, expected %#x %lld", c[i].value, cc.flags,
                      (long long)cc.max_age, c[i].flags, (long long)c[i].max_age);
    }
    /* several lines, each with its own targets */
    struct cache_control cc = RESP("Surrogate-Control", "no-store;freshcache, max-age=1;other",
                                   "Surrogate-Control", "max-age=7");
    ck_assert_uint_eq(cc.flags, CC_NO_STORE);
    ck_assert_int_eq(cc.max_age, 7);
}
END_TEST


/* RFC 9213 §2.1: targeted fields are RFC 8941 Dictionaries.  A field that
 * is not one is ignored whole (the next field decides); a directive with a
 * value of the wrong type is ignored alone. */
START_TEST(response_targeted_structured)
{
    static const char *const not_dictionaries[] = {
        "Max-Age=60",            /* keys are lowercase */
        "max-age=60,",           /* trailing comma */
        "max-age=60 no-store",   /* members need commas */
        "max-age=\"60",          /* unterminated string */
        "max-age=60;",           /* empty parameter */
        "max-age=1234567890123456",  /* integers have at most 15 digits */
        "max-age=?2",
        ", max-age=60",
        "max-age=(1 2",
    };
    for (size_t i = 0; i < sizeof not_dictionaries / sizeof *not_dictionaries; i++) {
        struct cache_control cc = RESP("Cache-Control", "max-age=4", "CDN-Cache-Control",
                                       not_dictionaries[i]);
        ck_assert_msg(cc.max_age == 4, "%s: max_age %lld", not_dictionaries[i],
                      (long long)cc.max_age);
        /* ours too, falling back to CDN-Cache-Control */
        cc = RESP("CDN-Cache-Control", "max-age=2", FC_CC, not_dictionaries[i]);
        ck_assert_int_eq(cc.max_age, 2);
    }
    /* wrong types: ignored alone, the rest of the field counts */
    struct cache_control cc = RESP("Cache-Control", "max-age=4",
                                   "CDN-Cache-Control", "max-age=\"60\", no-store");
    ck_assert_int_eq(cc.max_age, CC_UNSET);
    ck_assert_uint_eq(cc.flags, CC_NO_STORE);
    cc = RESP("CDN-Cache-Control", "max-age=1.5, s-maxage=-1, public=?0, private=1");
    ck_assert_int_eq(cc.max_age, CC_UNSET);
    ck_assert_int_eq(cc.s_maxage, CC_UNSET);
    ck_assert_uint_eq(cc.flags, 0);
    /* valid Dictionary forms */
    cc = RESP("CDN-Cache-Control", "max-age=60;a=1;b=?0, no-store=?1, x=(1 \"a\" tok);p, y=:AAE=:");
    ck_assert_int_eq(cc.max_age, 60);
    ck_assert_uint_eq(cc.flags, CC_NO_STORE);
    cc = RESP("CDN-Cache-Control", "max-age=60", "CDN-Cache-Control", "max-age=90,  public");
    ck_assert_int_eq(cc.max_age, 90);     /* the last member of a key wins */
    ck_assert_uint_eq(cc.flags, CC_PUBLIC);
    cc = RESP("Cache-Control", "max-age=4", "CDN-Cache-Control", "");
    assert_empty(&cc);                    /* an empty Dictionary is one */
}
END_TEST

/* cc_response_has_fields: true exactly when one of the four fields read
 * by cc_response_parse is present (live), whatever its case. */
START_TEST(response_has_fields)
{
    static const struct {
        const char *name;
        bool has;
    } c[] = {
        { "Cache-Control", true },      { "cache-control", true },
        { FC_CC, true },                { "freshcache-cache-control", true },
        { "CDN-Cache-Control", true },  { "CDN-CACHE-CONTROL", true },
        { "Surrogate-Control", true },  { "surrogate-control", true },
        { "Pragma", false },            { "Expires", false },
        { "Other-Cache-Control", false }, { "Cache-Controls", false },
        { "Surrogate-Key", false },
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        struct http_msg m;
        http_msg_init(&m);
        http_msg_add_str(&m, "Content-Type", "text/plain");
        http_msg_add_str(&m, c[i].name, "max-age=1");
        ck_assert_msg(cc_response_has_fields(&m) == c[i].has, "%s", c[i].name);
        if (c[i].has) {
            http_msg_remove(&m, c[i].name);
            ck_assert_msg(!cc_response_has_fields(&m), "%s removed", c[i].name);
        }
        http_msg_free(&m);
    }
    struct http_msg m;
    http_msg_init(&m);
    ck_assert(!cc_response_has_fields(&m));
    http_msg_add_str(&m, "Cache-Control", "");
    ck_assert(cc_response_has_fields(&m));          /* present, if empty */
    http_msg_free(&m);
}
END_TEST

static Suite *cc_fields_suite(void)
{
    Suite *s = suite_create("cc_fields");

    TCase *rq = tcase_create("request");
    tcase_add_test(rq, request_cache_control_lines);
    tcase_add_test(rq, request_pragma);
    tcase_add_test(rq, request_cache_control_wins);
    suite_add_tcase(s, rq);

    TCase *rs = tcase_create("response");
    tcase_add_test(rs, response_precedence);
    tcase_add_test(rs, response_names_and_lines);
    tcase_add_test(rs, response_removed_field);
    tcase_add_test(rs, response_surrogate_targets);
    tcase_add_test(rs, response_has_fields);
    tcase_add_test(rs, response_targeted_structured);
    suite_add_tcase(s, rs);

    /* Regression tests for bugs these suites found in src/ (see their
     * comments). */
    TCase *kb = tcase_create("regressions");
    tcase_set_tags(kb, "regression");
    tcase_add_test(kb, request_pragma_lines);
    suite_add_tcase(s, kb);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cc_fields_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
