/*
 * check_freshness.c — RFC 9111 storability (§3), freshness lifetime
 * (§4.2.1/§4.2.2), age (§4.2.3) and serve verdicts (§4.2.4, §5.2) for a
 * shared cache.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/http/cache_control.h"
#include "freshcache/cache/freshness.h"
#include "freshcache/http/http_date.h"

static struct cache_control cc_of(const char *s)
{
    struct cache_control cc;
    cc_init(&cc);
    cc_parse(&cc, s, strlen(s));
    return cc;
}

/* ---------------------------------------------------------------- status */

START_TEST(heuristically_cacheable_statuses)
{
    static const int yes[] = { 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501 };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        ck_assert_msg(status_heuristically_cacheable(yes[i]), "%d", yes[i]);
    int n = 0;
    for (int s = 100; s < 600; s++)
        n += status_heuristically_cacheable(s);
    ck_assert_int_eq(n, 12);    /* exactly the list above */
    ck_assert(!status_heuristically_cacheable(302));
    ck_assert(!status_heuristically_cacheable(307));
    ck_assert(!status_heuristically_cacheable(500));
    ck_assert(!status_heuristically_cacheable(0));
    ck_assert(!status_heuristically_cacheable(-200));
}
END_TEST

START_TEST(understood_statuses)
{
    static const int yes[] = { 200, 203, 204, 206, 300, 301, 302, 303, 304, 307, 308,
                               400, 403, 404, 405, 410, 414, 500, 501, 502, 503, 504 };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        ck_assert_msg(status_understood(yes[i]), "%d", yes[i]);
    int n = 0;
    for (int s = 0; s < 1000; s++)
        n += status_understood(s);
    ck_assert_int_eq(n, (int)(sizeof yes / sizeof yes[0]));
    ck_assert(!status_understood(100));
    ck_assert(!status_understood(201));
    ck_assert(!status_understood(401));
    ck_assert(!status_understood(407));
    ck_assert(!status_understood(299));
    /* Every heuristically cacheable status is understood. */
    for (int s = 100; s < 600; s++)
        if (status_heuristically_cacheable(s))
            ck_assert_msg(status_understood(s), "%d", s);
}
END_TEST

/* ------------------------------------------------------------ storability */

struct storable_case {
    int status;
    bool get;
    const char *req_cc;
    const char *resp_cc;
    bool auth;
    bool expires;
    bool want;
    const char *why;
};

static const struct storable_case storable_cases[] = {
    /* method and status */
    { 200, true,  "", "", false, false, true,  "200 is heuristically cacheable" },
    { 200, false, "", "max-age=60", false, false, false, "not GET/HEAD" },
    { 404, true,  "", "", false, false, true,  "404 is heuristically cacheable" },
    { 302, true,  "", "", false, false, false, "302 without explicit freshness" },
    { 302, true,  "", "max-age=60", false, false, true,  "302 with max-age" },
    { 302, true,  "", "s-maxage=60", false, false, true,  "302 with s-maxage" },
    { 302, true,  "", "public", false, false, true,  "302 with public" },
    { 302, true,  "", "", false, true,  true,  "302 with Expires" },
    { 500, true,  "", "", false, false, false, "500 without freshness" },
    { 500, true,  "", "max-age=10", false, false, true,  "500 with max-age" },
    { 299, true,  "", "max-age=10", false, false, true,  "unknown final status with max-age" },
    { 299, true,  "", "", false, false, false, "unknown status, nothing explicit" },
    { 100, true,  "", "max-age=60", false, false, false, "1xx is not final" },
    { 199, true,  "", "max-age=60", false, false, false, "1xx is not final" },
    { 600, true,  "", "max-age=60", false, false, false, "out of range" },
    { 206, true,  "", "max-age=60", false, false, false, "no partial storage" },
    { 304, true,  "", "max-age=60", false, false, false, "304 updates, not stored" },
    /* no-store */
    { 200, true,  "", "no-store", false, false, false, "response no-store" },
    { 200, true,  "no-store", "max-age=60", false, false, false, "request no-store" },
    { 200, true,  "", "max-age=60, no-store", false, false, false, "no-store beats max-age" },
    /* private (shared cache) */
    { 200, true,  "", "private", false, false, false, "private" },
    { 200, true,  "", "private, max-age=60", false, false, false, "private beats max-age" },
    { 200, true,  "", "public, private", false, false, false, "private beats public" },
    { 200, true,  "", "private=\"Set-Cookie\"", false, false, false, "qualified private" },
    { 200, true,  "", "private=Set-Cookie, public", false, false, false, "qualified private" },
    /* no-cache is storable: it only forces validation */
    { 200, true,  "", "no-cache", false, false, true,  "no-cache on 200" },
    { 302, true,  "", "no-cache", false, false, false, "no-cache on 302, nothing else" },
    { 302, true,  "", "no-cache, max-age=0", false, false, true,  "no-cache + max-age=0" },
    { 200, true,  "no-cache", "", false, false, true,  "request no-cache is storable" },
    /* Authorization (§3.5) */
    { 200, true,  "", "", true, false, false, "Authorization, no permission" },
    { 200, true,  "", "max-age=60", true, false, false, "max-age does not permit" },
    { 200, true,  "", "public", true, false, true,  "public permits" },
    { 200, true,  "", "must-revalidate", true, false, true,  "must-revalidate permits" },
    { 200, true,  "", "s-maxage=10", true, false, true,  "s-maxage permits" },
    { 200, true,  "", "s-maxage=x", true, false, true,  "invalid s-maxage still present" },
    { 302, true,  "", "must-revalidate", true, false, false, "permitted but no freshness" },
    { 200, true,  "", "public, private", true, false, false, "private still wins" },
    /* must-understand (§5.2.2.3) */
    { 200, true,  "", "must-understand, no-store", false, false, true,  "understood: no-store ignored" },
    { 302, true,  "", "must-understand, no-store, max-age=60", false, false, true,
      "understood 302 with max-age" },
    { 302, true,  "", "must-understand, no-store", false, false, false,
      "understood 302, but no freshness" },
    { 299, true,  "", "must-understand, no-store, max-age=60", false, false, false,
      "status not understood" },
    { 299, true,  "", "must-understand, max-age=60", false, false, false,
      "not understood even without no-store" },
    { 200, true,  "no-store", "must-understand, no-store", false, false, false,
      "request no-store still applies" },
    { 200, true,  "", "must-understand, no-store, private", false, false, false,
      "private still applies" },
    { 206, true,  "", "must-understand, max-age=60", false, false, false, "206 never stored" },
    /* other directives don't matter */
    { 200, true,  "", "immutable, no-transform, x-ext", false, false, true,  "harmless" },
};

START_TEST(storability_table)
{
    const struct storable_case *c = &storable_cases[_i];
    struct cache_control req = cc_of(c->req_cc), resp = cc_of(c->resp_cc);
    struct storable_input in = {
        .status = c->status,
        .method_is_get_or_head = c->get,
        .req_cc = &req,
        .resp_cc = &resp,
        .req_has_authorization = c->auth,
        .resp_has_expires = c->expires,
    };
    ck_assert_msg(response_storable(&in) == c->want, "case %d (%s): %d req \"%s\" resp \"%s\"",
                  _i, c->why, c->status, c->req_cc, c->resp_cc);
}
END_TEST

/* ------------------------------------------------------- freshness lifetime */

#define T0 ((time_t)1700000000)

static struct resp_timing timing(void)
{
    struct resp_timing t;
    memset(&t, 0, sizeof t);
    t.request_time = T0;
    t.response_time = T0;
    t.has_date = true;
    t.date = T0;
    return t;
}

START_TEST(lifetime_precedence)
{
    struct resp_timing t = timing();
    t.has_expires = true;
    t.expires_valid = true;
    t.expires = T0 + 1000;
    t.has_last_modified = true;
    t.last_modified = T0 - 10 * 86400;

    struct cache_control cc = cc_of("max-age=100, s-maxage=50");
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 50);     /* s-maxage first */
    cc = cc_of("s-maxage=500, max-age=100");
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 500);
    cc = cc_of("max-age=100");
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 100);    /* beats Expires */
    cc = cc_of("max-age=0");
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 0);
    cc = cc_of("max-age=bogus");
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 0);      /* invalid → stale */
    cc = cc_of("");
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 1000);   /* Expires - Date */
    t.has_expires = false;
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 86400);  /* heuristic */
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, false), 0);     /* not allowed */
    t.has_last_modified = false;
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 0);      /* nothing at all */
}
END_TEST

START_TEST(lifetime_expires)
{
    struct cache_control cc = cc_of("");
    struct resp_timing t = timing();
    t.has_expires = true;
    t.expires_valid = true;
    t.date = T0 - 100;                          /* Date, not response time */
    t.expires = T0 + 500;
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 600);
    t.has_date = false;                         /* no Date: response_time */
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 500);
    t.expires = T0 - 1;                         /* already expired */
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 0);
    t.expires = T0;
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 0);

    /* Invalid Expires ("0", garbage): expired, and no heuristic fallback. */
    t.expires_valid = false;
    t.expires = T0 + 5000;
    t.has_last_modified = true;
    t.last_modified = T0 - 86400;
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 0);

    /* Expires applies to any status; the heuristic restriction does not. */
    t.expires_valid = true;
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 302, true), 5000);

    /* Parsed end to end from real header values. */
    time_t date, expires;
    ck_assert(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", 29, &date));
    ck_assert(http_date_parse("Sun, 06 Nov 1994 09:49:37 GMT", 29, &expires));
    t.has_date = true;
    t.date = date;
    t.expires = expires;
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 3600);

    /* Very far Expires is clamped to 2^31 (§1.2.2). */
    t.expires = (time_t)INT64_C(253402300799);
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), CC_DELTA_MAX);
}
END_TEST

START_TEST(lifetime_heuristic)
{
    struct cache_control cc = cc_of("");
    struct resp_timing t = timing();
    t.has_last_modified = true;

    t.last_modified = T0 - 36000;               /* 10 h old → 1 h */
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 3600);
    t.last_modified = T0 - 9;                   /* 10% of 9 s rounds down */
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 0);
    t.last_modified = T0 - 12345;
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 404, true), 1234);
    t.last_modified = T0 - 864000;              /* exactly at the cap */
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 86400);
    t.last_modified = T0 - 100 * 86400;         /* capped at a day */
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 86400);
    t.last_modified = T0 + 60;                  /* in the future: no evidence */
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 0);
    t.last_modified = T0;
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 0);

    /* Without a Date, measured from the response time. */
    t.has_date = false;
    t.date = 0;
    t.response_time = T0 + 1000;
    t.last_modified = T0 - 9000;
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 1000);

    /* Status not heuristically cacheable: no heuristic unless public. */
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 302, true), 0);
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 500, true), 0);
    struct cache_control pub = cc_of("public");
    ck_assert_int_eq(freshness_lifetime(&pub, &t, 302, true), 1000);
    ck_assert_int_eq(freshness_lifetime(&pub, &t, 302, false), 0);

    /* Directives that are not freshness information don't block it. */
    struct cache_control nc = cc_of("no-cache, must-revalidate");
    ck_assert_int_eq(freshness_lifetime(&nc, &t, 200, true), 1000);
}
END_TEST

START_TEST(lifetime_clamps)
{
    struct resp_timing t = timing();
    struct cache_control cc = cc_of("max-age=99999999999");
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), CC_DELTA_MAX);
    /* A hand-built struct out of range is still clamped. */
    cc_init(&cc);
    cc.s_maxage = INT64_MAX;
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), CC_DELTA_MAX);
    cc.s_maxage = -5;
    ck_assert_int_eq(freshness_lifetime(&cc, &t, 200, true), 0);
}
END_TEST

/* ---------------------------------------------------------------- age */

START_TEST(age_simple)
{
    struct resp_timing t = timing();
    ck_assert_int_eq(current_age(&t, T0), 0);
    ck_assert_int_eq(current_age(&t, T0 + 60), 60);
    ck_assert_int_eq(current_age(&t, T0 + 86400), 86400);
}
END_TEST

START_TEST(age_delayed_response)
{
    /* Sent at T0, Date stamped at T0+2, received at T0+5. */
    struct resp_timing t = timing();
    t.request_time = T0;
    t.date = T0 + 2;
    t.response_time = T0 + 5;
    /* apparent_age = 3; response_delay = 5; corrected_age_value = 0 + 5;
     * corrected_initial_age = max(3, 5) = 5; resident = now - (T0+5). */
    ck_assert_int_eq(current_age(&t, T0 + 5), 5);
    ck_assert_int_eq(current_age(&t, T0 + 10), 10);
    ck_assert_int_eq(current_age(&t, T0 + 105), 105);
}
END_TEST

START_TEST(age_clock_skew)
{
    /* Origin clock 100 s behind: Date T0-100, round trip 2 s. */
    struct resp_timing t = timing();
    t.date = T0 - 100;
    t.request_time = T0;
    t.response_time = T0 + 2;
    /* apparent 102 vs corrected 2: the larger wins. */
    ck_assert_int_eq(current_age(&t, T0 + 2), 102);
    ck_assert_int_eq(current_age(&t, T0 + 12), 112);

    /* Origin clock ahead: apparent age floors at 0, the delay remains. */
    t.date = T0 + 500;
    ck_assert_int_eq(current_age(&t, T0 + 2), 2);
    ck_assert_int_eq(current_age(&t, T0 + 32), 32);
}
END_TEST

START_TEST(age_with_age_header)
{
    /* An upstream cache already held it 30 s. */
    struct resp_timing t = timing();
    t.request_time = T0;
    t.date = T0 + 3;
    t.response_time = T0 + 4;
    t.age_value = 30;
    /* apparent = 1; corrected_age_value = 30 + 4 = 34; initial = 34. */
    ck_assert_int_eq(current_age(&t, T0 + 4), 34);
    ck_assert_int_eq(current_age(&t, T0 + 100), 130);

    /* Age smaller than a skewed Date: the apparent age wins. */
    t.date = T0 - 200;
    ck_assert_int_eq(current_age(&t, T0 + 4), 204);
    ck_assert_int_eq(current_age(&t, T0 + 14), 214);

    /* A negative age_value from a careless caller counts as 0. */
    t.date = T0 + 4;
    t.age_value = -50;
    ck_assert_int_eq(current_age(&t, T0 + 4), 4);
}
END_TEST

START_TEST(age_without_date)
{
    struct resp_timing t = timing();
    t.has_date = false;
    t.date = T0 - 99999;                        /* ignored */
    t.request_time = T0;
    t.response_time = T0 + 3;
    t.age_value = 7;
    ck_assert_int_eq(current_age(&t, T0 + 3), 10);
    ck_assert_int_eq(current_age(&t, T0 + 53), 60);
}
END_TEST

START_TEST(age_bounds)
{
    struct resp_timing t = timing();
    /* The clock stepped back after receipt: no negative ages. */
    ck_assert_int_eq(current_age(&t, T0 - 1000), 0);
    /* Overflowing terms saturate at 2^31 (§1.2.2, §5.1). */
    t.age_value = CC_DELTA_MAX;
    ck_assert_int_eq(current_age(&t, T0 + 10), CC_DELTA_MAX);
    t.age_value = INT64_MAX;
    ck_assert_int_eq(current_age(&t, (time_t)INT64_MAX), CC_DELTA_MAX);
    t.age_value = 0;
    t.request_time = (time_t)INT64_MIN;
    ck_assert_int_eq(current_age(&t, T0), CC_DELTA_MAX);
}
END_TEST

/* -------------------------------------------------------------- serving */

static enum serve_verdict serve(const char *req, const char *resp, int64_t lifetime, int64_t age)
{
    struct cache_control rq = cc_of(req), rs = cc_of(resp);
    struct serve_input in = { .req_cc = &rq, .resp_cc = &rs, .lifetime = lifetime, .age = age };
    return freshness_can_serve(&in);
}

START_TEST(serve_fresh_and_stale)
{
    ck_assert_int_eq(serve("", "max-age=100", 100, 0), SERVE_FRESH);
    ck_assert_int_eq(serve("", "max-age=100", 100, 50), SERVE_FRESH);
    ck_assert_int_eq(serve("", "max-age=100", 100, 99), SERVE_FRESH);
    /* §4.2: fresh only while lifetime > age. */
    ck_assert_int_eq(serve("", "max-age=100", 100, 100), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("", "max-age=100", 100, 101), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("", "max-age=0", 0, 0), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("", "", 0, 0), SERVE_MUST_VALIDATE);
}
END_TEST

START_TEST(serve_no_cache)
{
    /* Request no-cache: validate even when fresh (§5.2.1.4). */
    ck_assert_int_eq(serve("no-cache", "max-age=100", 100, 1), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("no-cache, max-stale", "", 100, 500), SERVE_MUST_VALIDATE);
    /* Pragma folded in by the caller ends up as the same flag. */
    struct cache_control rq, rs = cc_of("max-age=100");
    cc_init(&rq);
    if (cc_pragma_no_cache("no-cache", 8))
        rq.flags |= CC_NO_CACHE;
    struct serve_input in = { .req_cc = &rq, .resp_cc = &rs, .lifetime = 100, .age = 1 };
    ck_assert_int_eq(freshness_can_serve(&in), SERVE_MUST_VALIDATE);
    /* Response no-cache: validate even when fresh (§5.2.2.4). */
    ck_assert_int_eq(serve("", "no-cache, max-age=100", 100, 1), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("max-stale", "no-cache", 0, 5), SERVE_MUST_VALIDATE);
    /* Qualified no-cache is treated as unqualified (fields are not kept). */
    ck_assert_int_eq(serve("", "no-cache=\"Set-Cookie\", max-age=100", 100, 1),
                     SERVE_MUST_VALIDATE);
}
END_TEST

START_TEST(serve_request_max_age)
{
    ck_assert_int_eq(serve("max-age=30", "max-age=100", 100, 30), SERVE_FRESH);
    ck_assert_int_eq(serve("max-age=30", "max-age=100", 100, 31), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("max-age=0", "max-age=100", 100, 0), SERVE_FRESH);
    ck_assert_int_eq(serve("max-age=0", "max-age=100", 100, 1), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("max-age=junk", "max-age=100", 100, 1), SERVE_MUST_VALIDATE);
    /* A large request max-age does not make a stale response usable... */
    ck_assert_int_eq(serve("max-age=1000", "max-age=100", 100, 200), SERVE_MUST_VALIDATE);
    /* ...unless max-stale says so too (§5.2.1.1 with §5.2.1.2). */
    ck_assert_int_eq(serve("max-age=1000, max-stale=150", "max-age=100", 100, 200),
                     SERVE_STALE_OK);
    ck_assert_int_eq(serve("max-age=150, max-stale", "max-age=100", 100, 200),
                     SERVE_MUST_VALIDATE);
}
END_TEST

START_TEST(serve_min_fresh)
{
    ck_assert_int_eq(serve("min-fresh=20", "", 100, 70), SERVE_FRESH);        /* 30 left */
    ck_assert_int_eq(serve("min-fresh=20", "", 100, 80), SERVE_FRESH);        /* 20 left */
    ck_assert_int_eq(serve("min-fresh=20", "", 100, 81), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("min-fresh=0", "", 100, 99), SERVE_FRESH);
    /* min-fresh and max-stale together: min-fresh can't be met by a stale one. */
    ck_assert_int_eq(serve("min-fresh=0, max-stale", "", 100, 150), SERVE_MUST_VALIDATE);
}
END_TEST

START_TEST(serve_max_stale)
{
    ck_assert_int_eq(serve("max-stale=10", "max-age=100", 100, 105), SERVE_STALE_OK);
    ck_assert_int_eq(serve("max-stale=10", "max-age=100", 100, 110), SERVE_STALE_OK);
    ck_assert_int_eq(serve("max-stale=10", "max-age=100", 100, 111), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("max-stale=0", "max-age=100", 100, 100), SERVE_STALE_OK);
    ck_assert_int_eq(serve("max-stale=0", "max-age=100", 100, 101), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("max-stale", "max-age=100", 100, 1000000), SERVE_STALE_OK);
    ck_assert_int_eq(serve("max-stale", "", 0, CC_DELTA_MAX), SERVE_STALE_OK);
    ck_assert_int_eq(serve("max-stale=bad", "max-age=100", 100, 101), SERVE_MUST_VALIDATE);
    /* max-stale never turns a fresh verdict into a stale one. */
    ck_assert_int_eq(serve("max-stale=10", "max-age=100", 100, 5), SERVE_FRESH);
    /* No max-stale: stale means validate. */
    ck_assert_int_eq(serve("", "max-age=100", 100, 101), SERVE_MUST_VALIDATE);
}
END_TEST

START_TEST(serve_stale_forbidden_by_response)
{
    ck_assert_int_eq(serve("max-stale", "max-age=100, must-revalidate", 100, 101),
                     SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("max-stale", "max-age=100, proxy-revalidate", 100, 101),
                     SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("max-stale", "s-maxage=100", 100, 101), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("max-stale=50", "s-maxage=x", 0, 1), SERVE_MUST_VALIDATE);
    /* While fresh they change nothing. */
    ck_assert_int_eq(serve("", "max-age=100, must-revalidate", 100, 99), SERVE_FRESH);
    ck_assert_int_eq(serve("", "s-maxage=100", 100, 99), SERVE_FRESH);
    ck_assert_int_eq(serve("", "proxy-revalidate, max-age=5", 5, 4), SERVE_FRESH);
}
END_TEST

START_TEST(serve_extremes)
{
    ck_assert_int_eq(serve("", "", INT64_MAX, 0), SERVE_FRESH);
    ck_assert_int_eq(serve("", "", INT64_MAX, INT64_MAX), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("max-stale=5", "", INT64_MIN, INT64_MAX), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("min-fresh=5", "", INT64_MIN, INT64_MAX), SERVE_MUST_VALIDATE);
    ck_assert_int_eq(serve("max-stale", "", 0, INT64_MAX), SERVE_STALE_OK);
}
END_TEST

/* The pieces together, from header strings to a verdict. */
START_TEST(end_to_end)
{
    struct cache_control resp = cc_of("public, max-age=60");
    struct resp_timing t = timing();
    t.request_time = T0;
    t.date = T0;
    t.response_time = T0 + 1;
    t.age_value = 10;
    int64_t life = freshness_lifetime(&resp, &t, 200, true);
    ck_assert_int_eq(life, 60);
    /* age at receipt = 10 + 1 = 11; fresh until now - (T0+1) reaches 49. */
    struct cache_control req = cc_of("");
    struct serve_input in = { &req, &resp, life, current_age(&t, T0 + 49) };
    ck_assert_int_eq(in.age, 59);
    ck_assert_int_eq(freshness_can_serve(&in), SERVE_FRESH);
    in.age = current_age(&t, T0 + 50);
    ck_assert_int_eq(in.age, 60);
    ck_assert_int_eq(freshness_can_serve(&in), SERVE_MUST_VALIDATE);
    req = cc_of("max-stale=5");
    in.age = current_age(&t, T0 + 55);
    ck_assert_int_eq(freshness_can_serve(&in), SERVE_STALE_OK);
    in.age = current_age(&t, T0 + 56);
    ck_assert_int_eq(freshness_can_serve(&in), SERVE_MUST_VALIDATE);
}
END_TEST

/* ---------------------------------------------------------------- stored */

/* What a stored object keeps of its timing gives the same ages and
 * lifetimes as the parsed fields. */
START_TEST(stored_timing_same_age_and_lifetime)
{
    const time_t T = 1700000000;
    struct resp_timing cases[] = {
        { .request_time = T - 2, .response_time = T, .has_date = true, .date = T - 1 },
        { .request_time = T, .response_time = T, .has_date = true, .date = T - 500,
          .age_value = 30 },
        { .request_time = T - 10, .response_time = T, .has_date = true, .date = T + 100,
          .age_value = 7 },     /* a Date ahead of our clock */
        { .request_time = T, .response_time = T, .has_date = false },
        { .request_time = T, .response_time = T, .has_date = true, .date = T,
          .has_expires = true, .expires_valid = true, .expires = T + 3600,
          .has_last_modified = true, .last_modified = T - 86400 * 400 },
        { .request_time = T, .response_time = T, .has_date = true, .date = T,
          .has_expires = true, .expires_valid = false },
        { .request_time = T, .response_time = T, .has_date = true, .date = T,
          .has_last_modified = true, .last_modified = T - 5000 },
        { .request_time = T, .response_time = T, .has_date = true, .date = T,
          .age_value = CC_DELTA_MAX },
    };
    struct cache_control none = cc_of("");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct resp_timing *t = &cases[i];
        struct stored_timing s;
        stored_timing_pack(t, &s);
        struct resp_timing u;
        stored_timing_unpack(&s, &u);
        for (time_t now = T; now < T + 100000; now += 7777) {
            ck_assert_msg(stored_age(&s, now) == current_age(t, now), "case %zu", i);
            ck_assert_msg(current_age(&u, now) == current_age(t, now), "case %zu", i);
        }
        ck_assert_msg(freshness_lifetime(&none, &u, 200, true) ==
                          freshness_lifetime(&none, t, 200, true), "case %zu", i);
        ck_assert_int_eq(u.has_expires, t->has_expires);
        ck_assert_int_eq(u.expires_valid, t->expires_valid);
        ck_assert_int_eq(u.has_last_modified, t->has_last_modified);
        if (t->has_last_modified)
            ck_assert_int_eq(u.last_modified, t->last_modified);    /* exact */
        if (t->has_date)
            ck_assert_int_eq(u.date, t->date);
    }
}
END_TEST

/* Times too far apart for 32-bit offsets clamp on the side the 2^31
 * bound of §1.2.2 puts them anyway. */
START_TEST(stored_timing_extremes)
{
    const time_t T = 1700000000;
    struct cache_control none = cc_of("");
    struct resp_timing far = {
        .request_time = T, .response_time = T, .has_date = true, .date = T,
        .has_expires = true, .expires_valid = true, .expires = T + ((time_t)1 << 40),
    };
    struct stored_timing s;
    struct resp_timing u;
    stored_timing_pack(&far, &s);
    stored_timing_unpack(&s, &u);
    ck_assert_int_ge(freshness_lifetime(&none, &u, 200, true), CC_DELTA_MAX - 1);
    far.expires = T - ((time_t)1 << 40);
    stored_timing_pack(&far, &s);
    stored_timing_unpack(&s, &u);
    ck_assert_int_eq(freshness_lifetime(&none, &u, 200, true), 0);

    struct resp_timing old_date = {
        .request_time = T, .response_time = T, .has_date = true, .date = -((time_t)1 << 40),
    };
    stored_timing_pack(&old_date, &s);
    ck_assert_int_eq(stored_age(&s, T), CC_DELTA_MAX);
    ck_assert_int_eq(stored_age(&s, T + 1000), CC_DELTA_MAX);
    ck_assert_int_eq(stored_age(&s, T), current_age(&old_date, T));
}
END_TEST

static Suite *freshness_suite(void)
{
    Suite *s = suite_create("freshness");

    TCase *st = tcase_create("status");
    tcase_add_test(st, heuristically_cacheable_statuses);
    tcase_add_test(st, understood_statuses);
    suite_add_tcase(s, st);

    TCase *sto = tcase_create("storable");
    tcase_add_loop_test(sto, storability_table, 0,
                        (int)(sizeof storable_cases / sizeof storable_cases[0]));
    suite_add_tcase(s, sto);

    TCase *lt = tcase_create("lifetime");
    tcase_add_test(lt, lifetime_precedence);
    tcase_add_test(lt, lifetime_expires);
    tcase_add_test(lt, lifetime_heuristic);
    tcase_add_test(lt, lifetime_clamps);
    suite_add_tcase(s, lt);

    TCase *ag = tcase_create("age");
    tcase_add_test(ag, age_simple);
    tcase_add_test(ag, age_delayed_response);
    tcase_add_test(ag, age_clock_skew);
    tcase_add_test(ag, age_with_age_header);
    tcase_add_test(ag, age_without_date);
    tcase_add_test(ag, age_bounds);
    suite_add_tcase(s, ag);

    TCase *sv = tcase_create("serve");
    tcase_add_test(sv, serve_fresh_and_stale);
    tcase_add_test(sv, serve_no_cache);
    tcase_add_test(sv, serve_request_max_age);
    tcase_add_test(sv, serve_min_fresh);
    tcase_add_test(sv, serve_max_stale);
    tcase_add_test(sv, serve_stale_forbidden_by_response);
    tcase_add_test(sv, serve_extremes);
    tcase_add_test(sv, end_to_end);
    suite_add_tcase(s, sv);

    TCase *sd = tcase_create("stored");
    tcase_add_test(sd, stored_timing_same_age_and_lifetime);
    tcase_add_test(sd, stored_timing_extremes);
    suite_add_tcase(s, sd);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(freshness_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
