/*
 * check_obj_policy.c — what a policy and the deploy generations make of a
 * new object (src/cache/obj_policy.c): the generation stamp taken when a
 * fetch begins, the head rewrite (the policy's response_cache_control,
 * validators dropped under cache.etag: content-hash), and the lifetime,
 * stale-while-revalidate / stale-if-error (RFC 5861 §3, §4) and generations
 * an object is stored with.  Configs come from config_load_string, as in
 * check_policy.c.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/cache/cache_obj.h"
#include "freshcache/cache/generation.h"
#include "freshcache/cache/obj_policy.h"
#include "freshcache/config/config.h"

#define T0 ((time_t)1420070400)                 /* Thu, 01 Jan 2015 00:00:00 GMT */

#define ORIGIN "origin:\n  url: http://127.0.0.1:8000\n"
#define POLICIES                                                                              \
    "policies:\n"                                                                             \
    "  - name: assets\n"                                                                      \
    "    match: { path: '^/a/' }\n"                                                           \
    "    ttl: 10m\n"                                                                          \
    "    response_cache_control: \"public, max-age=600\"\n"                                   \
    "    stale_while_revalidate: 30s\n"                                                       \
    "    stale_if_error: 1h\n"                                                                \
    "  - name: zero\n"                                                                        \
    "    match: { path: '^/z/' }\n"                                                           \
    "    ttl: 0s\n"                                                                           \
    "    stale_while_revalidate: 0s\n"                                                        \
    "    stale_if_error: 0s\n"                                                                \
    "  - name: short\n"                                                                       \
    "    match: { path: '^/s/' }\n"                                                           \
    "    ttl: 1500ms\n"                                                                       \
    "  - name: default\n"                                                                     \
    "    ttl: origin\n"

enum { ASSETS = 0, ZERO = 1, SHORT = 2, DEFAULT = 3, N_POLICIES = 4 };

static struct fc_config *load_ok(const char *yaml)
{
    struct config_errors errs = { 0 };
    struct fc_config *cfg = config_load_string("t.yaml", yaml, strlen(yaml), &errs);
    ck_assert_msg(cfg != NULL && errs.n == 0, "config rejected: %s",
                  errs.n ? errs.lines[0] : "(no message)");
    config_errors_free(&errs);
    return cfg;
}

static struct fc_config *policies_config(void)
{
    struct fc_config *cfg = load_ok(ORIGIN POLICIES);
    ck_assert_uint_eq(cfg->n_policies, N_POLICIES);
    ck_assert_int_eq(cfg->cache.etag, ETAG_CONTENT_HASH);
    return cfg;
}

/* A 200 object with Cache-Control `cc` (NULL: none), Date T0, received at
 * T0, Last-Modified `lm` (0: none). */
static struct cache_obj *obj_with_lm(const char *cc, time_t lm)
{
    struct cache_obj *o = obj_new(NULL);
    o->status = 200;
    struct cache_control c;
    cc_init(&c);
    if (cc)
        cc_parse(&c, cc, strlen(cc));
    struct resp_timing t = {
        .request_time = T0, .response_time = T0, .has_date = true, .date = T0,
        .has_last_modified = lm != 0, .last_modified = lm,
    };
    obj_set_cc_timing(o, &c, &t);
    return o;
}

static struct cache_obj *obj_with(const char *cc)
{
    return obj_with_lm(cc, 0);
}

/* What obj_apply_policy decided. */
struct applied {
    int policy;
    int64_t lifetime, swr, sie;
    bool sie_from_policy;
    unsigned flags;
};

static struct applied apply(const struct fc_config *cfg, int pi, const char *cc)
{
    static const struct gen_stamp stamp = { .global = 1, .layout = 1 };
    struct cache_obj *o = obj_with(cc);
    obj_apply_policy(o, cfg, pi, &stamp);
    struct applied a = {
        .policy = o->policy, .lifetime = o->lifetime, .swr = o->stale_while_revalidate,
        .sie = o->stale_if_error, .sie_from_policy = o->sie_from_policy, .flags = o->cc.flags,
    };
    obj_unref(o);
    return a;
}

#define ORIGIN_CC "max-age=60, no-cache, public, stale-while-revalidate=5, stale-if-error=7"

/* ------------------------------------------------------------- lifetime */

/* A policy's ttl is the lifetime, whatever the origin said; a positive one
 * also lifts the origin's no-cache (the operator decided how long the copy
 * may be used), and leaves every other directive as it was. */
START_TEST(policy_ttl_overrides)
{
    struct fc_config *cfg = policies_config();
    struct applied a = apply(cfg, ASSETS, ORIGIN_CC);
    ck_assert_int_eq(a.policy, ASSETS);
    ck_assert_int_eq(a.lifetime, 600);
    ck_assert_uint_eq(a.flags, CC_PUBLIC);

    a = apply(cfg, SHORT, ORIGIN_CC);           /* whole seconds: 1500ms is 1 s */
    ck_assert_int_eq(a.policy, SHORT);
    ck_assert_int_eq(a.lifetime, 1);
    ck_assert_uint_eq(a.flags, CC_PUBLIC);

    a = apply(cfg, ASSETS, "no-cache, must-revalidate, private");
    ck_assert_int_eq(a.lifetime, 600);
    ck_assert_uint_eq(a.flags, CC_MUST_REVALIDATE | CC_PRIVATE);
    config_free(cfg);
}
END_TEST

/* ttl: 0s is a lifetime of 0: always revalidate.  It lifts nothing. */
START_TEST(policy_ttl_zero)
{
    struct fc_config *cfg = policies_config();
    struct applied a = apply(cfg, ZERO, ORIGIN_CC);
    ck_assert_int_eq(a.policy, ZERO);
    ck_assert_int_eq(a.lifetime, 0);
    ck_assert_uint_eq(a.flags, CC_NO_CACHE | CC_PUBLIC);
    a = apply(cfg, ZERO, "max-age=86400");
    ck_assert_int_eq(a.lifetime, 0);
    config_free(cfg);
}
END_TEST

/* ttl: origin, no policy (-1) and an index past the policies all take the
 * RFC 9111 §4.2.1 lifetime from the origin's fields (s-maxage first for a
 * shared cache, then max-age, then the §4.2.2 heuristic), and keep
 * no-cache. */
START_TEST(origin_lifetime)
{
    struct fc_config *cfg = policies_config();
    static const int pis[] = { DEFAULT, -1, N_POLICIES, 1000, -7 };
    for (size_t i = 0; i < sizeof pis / sizeof *pis; i++) {
        int pi = pis[i];
        int want_policy = pi == DEFAULT ? DEFAULT : -1;
        struct applied a = apply(cfg, pi, "max-age=60, no-cache");
        ck_assert_msg(a.policy == want_policy, "pi %d: policy %d", pi, a.policy);
        ck_assert_msg(a.lifetime == 60, "pi %d: lifetime %lld", pi, (long long)a.lifetime);
        ck_assert_msg(a.flags == CC_NO_CACHE, "pi %d: flags %#x", pi, a.flags);
        a = apply(cfg, pi, "max-age=60, s-maxage=90");
        ck_assert_msg(a.lifetime == 90, "pi %d: lifetime %lld", pi, (long long)a.lifetime);
        a = apply(cfg, pi, NULL);
        ck_assert_msg(a.lifetime == 0, "pi %d: lifetime %lld", pi, (long long)a.lifetime);
    }

    /* the heuristic: 10% of Date - Last-Modified */
    struct gen_stamp stamp = { 0 };
    struct cache_obj *o = obj_with_lm(NULL, T0 - 1000);
    obj_apply_policy(o, cfg, DEFAULT, &stamp);
    ck_assert_int_eq(o->lifetime, 100);
    obj_unref(o);
    config_free(cfg);
}
END_TEST

/* ------------------------------------------- status classes (issue 17) */

/* The spec's split: the policy's ttl is for 200 203 204 206 300 301 308;
 * 404 405 410 414 501 get negative_ttl; anything else is RFC 9111's. */
START_TEST(status_classes)
{
    static const int ttl[] = { 200, 203, 204, 206, 300, 301, 308 };
    static const int neg[] = { 404, 405, 410, 414, 501 };
    static const int other[] = { 100, 201, 202, 205, 302, 303, 304, 307, 400, 401, 403,
                                 406, 408, 429, 451, 500, 502, 503, 504, 599, 0, -1, 999 };
    for (size_t i = 0; i < sizeof ttl / sizeof *ttl; i++)
        ck_assert_msg(policy_status_class(ttl[i]) == STATUS_CLASS_TTL, "%d", ttl[i]);
    for (size_t i = 0; i < sizeof neg / sizeof *neg; i++)
        ck_assert_msg(policy_status_class(neg[i]) == STATUS_CLASS_NEGATIVE, "%d", neg[i]);
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        ck_assert_msg(policy_status_class(other[i]) == STATUS_CLASS_OTHER, "%d", other[i]);
}
END_TEST

#define NEG_POLICIES                                                                          \
    "policies:\n"                                                                             \
    "  - name: assets\n"                                                                      \
    "    match: { path: '^/a/' }\n"                                                           \
    "    ttl: 365d\n"                                                                         \
    "  - name: neg60\n"                                                                       \
    "    match: { path: '^/n/' }\n"                                                           \
    "    ttl: 1h\n"                                                                           \
    "    negative_ttl: 60s\n"                                                                 \
    "  - name: neg0\n"                                                                        \
    "    match: { path: '^/z/' }\n"                                                           \
    "    ttl: 1h\n"                                                                           \
    "    negative_ttl: 0s\n"                                                                  \
    "  - name: short\n"                                                                       \
    "    match: { path: '^/s/' }\n"                                                           \
    "    ttl: 5s\n"                                                                           \
    "  - name: pages\n"                                                                       \
    "    match: { path: '^/p/' }\n"                                                           \
    "    ttl: 0s\n"                                                                           \
    "  - name: default\n"                                                                     \
    "    ttl: origin\n"

enum { N_ASSETS = 0, N_NEG60, N_NEG0, N_SHORT, N_PAGES, N_DEFAULT };

struct lifetime_case {
    int pi;                 /* -1: no policy */
    int status;
    const char *cc;         /* NULL: none */
    bool expires;           /* Expires: Date + 120 s */
    bool lm;                /* Last-Modified: Date - 10 days (heuristic: 1 day) */
    bool authorized;
    bool store;
    int64_t lifetime;       /* when stored */
    bool policy_ttl;
};

static void run_lifetime_cases(const struct lifetime_case *c, size_t n)
{
    struct fc_config *cfg = load_ok(ORIGIN NEG_POLICIES);
    ck_assert_int_eq(cfg->policies[N_ASSETS].negative_ttl_ms, 10000);    /* the default */
    for (size_t i = 0; i < n; i++) {
        struct cache_control cc;
        cc_init(&cc);
        if (c[i].cc)
            cc_parse(&cc, c[i].cc, strlen(c[i].cc));
        struct resp_timing t = { .request_time = T0, .response_time = T0, .has_date = true,
                                 .date = T0 };
        if (c[i].expires) {
            t.has_expires = t.expires_valid = true;
            t.expires = T0 + 120;
        }
        if (c[i].lm) {
            t.has_last_modified = true;
            t.last_modified = T0 - 10 * 86400;
        }
        const struct fc_policy *pol = c[i].pi >= 0 ? &cfg->policies[c[i].pi] : NULL;
        struct lifetime_verdict v = policy_lifetime(pol, c[i].status, &cc, &t, c[i].authorized);
        ck_assert_msg(v.store == c[i].store, "case %zu (%s, %d, %s): store %d", i,
                      pol ? pol->name : "none", c[i].status, c[i].cc ? c[i].cc : "-", v.store);
        if (v.store)
            ck_assert_msg(v.lifetime == c[i].lifetime, "case %zu (%s, %d, %s): lifetime %lld, "
                          "expected %lld", i, pol ? pol->name : "none", c[i].status,
                          c[i].cc ? c[i].cc : "-", (long long)v.lifetime,
                          (long long)c[i].lifetime);
        ck_assert_msg(v.policy_ttl == c[i].policy_ttl, "case %zu: policy_ttl %d", i,
                      v.policy_ttl);
    }
    config_free(cfg);
}

#define YEAR (365 * 86400)

/* A policy's ttl is for the statuses the spec names, whatever the origin
 * says; the other statuses never get it. */
START_TEST(ttl_for_its_statuses_only)
{
    static const struct lifetime_case c[] = {
        { N_ASSETS, 200, NULL, false, false, false, true, YEAR, true },
        { N_ASSETS, 203, "max-age=5", false, false, false, true, YEAR, true },
        { N_ASSETS, 204, NULL, false, false, false, true, YEAR, true },
        { N_ASSETS, 300, NULL, false, false, false, true, YEAR, true },
        { N_ASSETS, 301, "max-age=5", false, false, false, true, YEAR, true },
        { N_ASSETS, 308, NULL, false, false, false, true, YEAR, true },
        /* other statuses: RFC 9111 from the origin (these are storable
         * only with explicit freshness or public) */
        { N_ASSETS, 302, "max-age=60", false, false, false, true, 60, false },
        { N_ASSETS, 307, "s-maxage=30, max-age=60", false, false, false, true, 30, false },
        { N_ASSETS, 500, "max-age=5", false, false, false, true, 5, false },
        { N_ASSETS, 503, NULL, true, false, false, true, 120, false },
        { N_ASSETS, 403, "public", false, true, false, true, 86400, false },
        { N_ASSETS, 302, "public", false, false, false, true, 0, false },
        /* ... and never past the policy's ttl */
        { N_SHORT, 302, "max-age=60", false, false, false, true, 5, false },
        { N_PAGES, 500, "max-age=60", false, false, false, true, 0, false },
        { N_PAGES, 200, "max-age=60", false, false, false, true, 0, true },
        /* ttl: origin and no policy: RFC 9111 for every status */
        { N_DEFAULT, 200, "max-age=60", false, false, false, true, 60, false },
        { N_DEFAULT, 302, "max-age=60", false, false, false, true, 60, false },
        { -1, 404, NULL, false, false, false, true, 0, false },
        { -1, 200, NULL, false, true, false, true, 86400, false },
    };
    run_lifetime_cases(c, sizeof c / sizeof *c);
}
END_TEST

/* 404 405 410 414 501: negative_ttl unless the origin gives explicit
 * freshness (s-maxage, max-age, Expires), never past the ttl; 0 keeps
 * none.  The cache-poisoned DoS of issue 17: a 405 for a method override
 * or a 404 from before a deploy kept for a year. */
START_TEST(negative_ttl)
{
    static const struct lifetime_case c[] = {
        { N_ASSETS, 404, NULL, false, false, false, true, 10, false },
        { N_ASSETS, 405, NULL, false, false, false, true, 10, false },
        { N_ASSETS, 410, NULL, false, false, false, true, 10, false },
        { N_ASSETS, 414, NULL, false, false, false, true, 10, false },
        { N_ASSETS, 501, NULL, false, false, false, true, 10, false },
        { N_ASSETS, 404, "public", false, false, false, true, 10, false },
        { N_ASSETS, 404, "no-cache", false, false, false, true, 10, false },
        /* a heuristic is no explicit freshness: negative_ttl */
        { N_ASSETS, 404, NULL, false, true, false, true, 10, false },
        { N_NEG60, 410, NULL, false, false, false, true, 60, false },
        /* the origin's own explicit freshness wins ... */
        { N_ASSETS, 404, "max-age=300", false, false, false, true, 300, false },
        { N_ASSETS, 405, "s-maxage=2, max-age=300", false, false, false, true, 2, false },
        { N_ASSETS, 410, NULL, true, false, false, true, 120, false },
        { N_ASSETS, 404, "max-age=0", false, false, false, true, 0, false },
        { N_NEG0, 404, "max-age=30", false, false, false, true, 30, false },
        /* ... but never past the ttl */
        { N_SHORT, 404, "max-age=300", false, false, false, true, 5, false },
        { N_SHORT, 404, NULL, false, false, false, true, 5, false },
        /* 0 (or a ttl of 0) stores none without the origin's word */
        { N_NEG0, 404, NULL, false, false, false, false, 0, false },
        { N_NEG0, 405, "public", false, false, false, false, 0, false },
        { N_PAGES, 404, NULL, false, false, false, false, 0, false },
        /* ttl: origin: negative_ttl replaces the heuristic too */
        { N_DEFAULT, 404, NULL, false, false, false, true, 10, false },
        { N_DEFAULT, 404, NULL, false, true, false, true, 10, false },
        { N_DEFAULT, 404, "max-age=3600", false, false, false, true, 3600, false },
    };
    run_lifetime_cases(c, sizeof c / sizeof *c);
}
END_TEST

/* A response stored because the origin allowed sharing an authorised
 * one (RFC 9111 §3.5: public, s-maxage, must-revalidate) keeps the
 * origin's freshness: no policy ttl, no negative_ttl, never past the ttl. */
START_TEST(authorized_keeps_origin_lifetime)
{
    static const struct lifetime_case c[] = {
        { N_ASSETS, 200, "must-revalidate", false, false, true, true, 0, false },
        { N_ASSETS, 200, "public, max-age=60", false, false, true, true, 60, false },
        { N_ASSETS, 200, "s-maxage=30", false, false, true, true, 30, false },
        { N_ASSETS, 404, "public", false, false, true, true, 0, false },
        { N_SHORT, 200, "public, max-age=60", false, false, true, true, 5, false },
        { N_PAGES, 200, "public, max-age=60", false, false, true, true, 0, false },
        { N_DEFAULT, 200, "public, max-age=60", false, false, true, true, 60, false },
        { -1, 200, "s-maxage=7", false, false, true, true, 7, false },
    };
    run_lifetime_cases(c, sizeof c / sizeof *c);
}
END_TEST

/* obj_apply_policy takes its lifetime from policy_lifetime: a 404 under
 * the assets policy gets negative_ttl and keeps the origin's no-cache; an
 * authorised 200 keeps the origin's. */
START_TEST(apply_uses_status_and_authorization)
{
    struct fc_config *cfg = policies_config();
    static const struct gen_stamp stamp = { .global = 1, .layout = 1 };
    struct cache_obj *o = obj_with("no-cache");
    o->status = 404;
    obj_apply_policy(o, cfg, ASSETS, &stamp);
    ck_assert_int_eq(o->lifetime, 10);
    ck_assert_uint_eq(o->cc.flags, CC_NO_CACHE);
    obj_unref(o);

    o = obj_with("must-revalidate, no-cache");
    o->authorized = true;
    obj_apply_policy(o, cfg, ASSETS, &stamp);
    ck_assert_int_eq(o->lifetime, 0);
    ck_assert_uint_eq(o->cc.flags, CC_MUST_REVALIDATE | CC_NO_CACHE);
    obj_unref(o);
    config_free(cfg);
}
END_TEST

/* -------------------------------------------------- stale allowances */

/* RFC 5861: the policy's stale_while_revalidate / stale_if_error when it
 * sets them (0s included: the operator turned them off), else the
 * origin's directives, else none. */
START_TEST(stale_allowances)
{
    struct fc_config *cfg = policies_config();
    static const struct {
        int pi;
        const char *cc;
        int64_t swr, sie;
        bool sie_from_policy;
    } c[] = {
        { ASSETS, ORIGIN_CC, 30, 3600, true },
        { ASSETS, NULL, 30, 3600, true },
        { ZERO, ORIGIN_CC, 0, 0, true },
        { SHORT, ORIGIN_CC, 5, 7, false },
        { SHORT, NULL, 0, 0, false },
        { DEFAULT, ORIGIN_CC, 5, 7, false },
        { DEFAULT, "stale-while-revalidate=0, stale-if-error=0", 0, 0, false },
        { DEFAULT, "stale-if-error=86400", 0, 86400, false },
        { -1, ORIGIN_CC, 5, 7, false },
        { -1, "max-age=1", 0, 0, false },
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        struct applied a = apply(cfg, c[i].pi, c[i].cc);
        ck_assert_msg(a.swr == c[i].swr && a.sie == c[i].sie &&
                          a.sie_from_policy == c[i].sie_from_policy,
                      "case %zu: swr %lld sie %lld from policy %d", i, (long long)a.swr,
                      (long long)a.sie, a.sie_from_policy);
    }
    config_free(cfg);
}
END_TEST

/* ---------------------------------------------------------- generations */

/* The object carries the stamp's generations: the global and layout ones
 * always, its own policy's only when it has a policy. */
START_TEST(apply_stamps_generations)
{
    struct fc_config *cfg = policies_config();
    struct gen_stamp stamp = { .global = 7, .layout = 3 };
    for (unsigned i = 0; i < GEN_MAX_POLICIES; i++)
        stamp.policy[i] = 100 + i;
    static const struct {
        int pi;
        int policy;
        uint64_t policy_gen;
    } c[] = {
        { ASSETS, ASSETS, 100 }, { ZERO, ZERO, 101 }, { DEFAULT, DEFAULT, 103 },
        { -1, -1, 0 },           { N_POLICIES, -1, 0 }, { GEN_MAX_POLICIES, -1, 0 },
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        struct cache_obj *o = obj_with("max-age=60");
        o->generation = 99;
        o->policy_gen = 99;
        o->policy_layout = 99;
        obj_apply_policy(o, cfg, c[i].pi, &stamp);
        ck_assert_int_eq(o->policy, c[i].policy);
        ck_assert_uint_eq(o->generation, 7);
        ck_assert_uint_eq(o->policy_layout, 3);
        ck_assert_msg(o->policy_gen == c[i].policy_gen, "pi %d: policy_gen %llu", c[i].pi,
                      (unsigned long long)o->policy_gen);
        obj_unref(o);
    }
    config_free(cfg);
}
END_TEST

/* A backend whose state is given: global 7, "b" at 5, "a" at 3. */
static int given_load(void *ctx, struct gen_state *st, char *err, size_t errlen)
{
    (void)ctx;
    (void)err;
    (void)errlen;
    memset(st, 0, sizeof *st);
    st->global = 7;
    st->n_policies = 2;
    snprintf(st->policies[0].name, GEN_POLICY_NAME_MAX, "b");
    st->policies[0].gen = 5;
    snprintf(st->policies[1].name, GEN_POLICY_NAME_MAX, "a");
    st->policies[1].gen = 3;
    return 0;
}

static int given_save(void *ctx, const struct gen_state *st, char *err, size_t errlen)
{
    (void)ctx;
    (void)st;
    (void)err;
    (void)errlen;
    return 0;
}

static void given_close(void *ctx) { (void)ctx; }

static const char *const NAMES[] = { "a", "b", "c" };

/* The numbers in force, per policy index in config order (a policy the
 * state does not know is at 1), and nothing for indices past those asked
 * for or past the policies indexed. */
START_TEST(stamp_takes_numbers_in_force)
{
    struct generation_backend be = {
        .load = given_load, .save = given_save, .close = given_close, .ctx = NULL,
    };
    char err[128] = "";
    struct generations *g = generations_open(&be, NAMES, 3, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    generations_reindex(g, NAMES, 3);
    ck_assert_uint_ne(generation_layout(g), 0);

    struct gen_stamp s;
    memset(&s, 0xa5, sizeof s);
    gen_stamp_take(&s, g, 3);
    ck_assert_uint_eq(s.global, 7);
    ck_assert_uint_eq(s.layout, generation_layout(g));
    ck_assert_uint_eq(s.policy[0], 3);
    ck_assert_uint_eq(s.policy[1], 5);
    ck_assert_uint_eq(s.policy[2], 1);
    for (unsigned i = 3; i < GEN_MAX_POLICIES; i++)
        ck_assert_uint_eq(s.policy[i], 0);

    /* only n_policies are read */
    memset(&s, 0xa5, sizeof s);
    gen_stamp_take(&s, g, 1);
    ck_assert_uint_eq(s.policy[0], 3);
    ck_assert_uint_eq(s.policy[1], 0);

    /* more than can be stamped: GEN_MAX_POLICIES, no more */
    gen_stamp_take(&s, g, GEN_MAX_POLICIES + 10);
    ck_assert_uint_eq(s.policy[1], 5);
    ck_assert_uint_eq(s.policy[GEN_MAX_POLICIES - 1], 0);

    /* a bump after the stamp does not change it; the next stamp sees it */
    struct gen_stamp before = s;
    uint64_t now = 0, prev = 0;
    ck_assert_int_eq(generation_bump(g, "b", &now, &prev, err, sizeof err), 0);
    ck_assert_uint_eq(now, 6);
    ck_assert_uint_eq(before.policy[1], 5);
    ck_assert_int_eq(generation_bump(g, NULL, &now, &prev, err, sizeof err), 0);
    gen_stamp_take(&s, g, 3);
    ck_assert_uint_eq(s.global, 8);
    ck_assert_uint_eq(s.policy[1], 6);
    ck_assert_uint_eq(s.policy[0], 3);
    generations_close(g);
}
END_TEST

/* -------------------------------------------------------------- rewrite */

/* The stored head gets the policy's response_cache_control (none without
 * a policy), and loses the origin's validators exactly when the cache
 * makes its own (cache.etag: content-hash, the default). */
START_TEST(rewrite_from_policy)
{
    struct fc_config *cfg = policies_config();
    struct fc_config *origin_etags = load_ok(ORIGIN "cache:\n  etag: origin\n" POLICIES);
    ck_assert_int_eq(origin_etags->cache.etag, ETAG_ORIGIN);
    static const struct {
        int pi;
        const char *cc;
    } c[] = {
        { ASSETS, "public, max-age=600" }, { ZERO, NULL }, { DEFAULT, NULL },
        { -1, NULL },                       { N_POLICIES, NULL },
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        for (int hashed = 0; hashed < 2; hashed++) {
            struct head_rewrite rw;
            memset(&rw, 0xff, sizeof rw);
            obj_policy_rewrite(hashed ? cfg : origin_etags, c[i].pi, 200, false, &rw);
            if (c[i].cc)
                ck_assert_str_eq(rw.cache_control, c[i].cc);
            else
                ck_assert_ptr_null(rw.cache_control);
            ck_assert(rw.drop_validators == (hashed == 1));
            ck_assert(!rw.via_done);
            ck_assert(!rw.passthrough);
            /* An authorised response keeps the origin's Cache-Control
             * (RFC 9111 §3.5); validators as for any other. */
            memset(&rw, 0xff, sizeof rw);
            obj_policy_rewrite(hashed ? cfg : origin_etags, c[i].pi, 200, true, &rw);
            ck_assert_ptr_null(rw.cache_control);
            ck_assert(rw.drop_validators == (hashed == 1));
            /* Statuses the ttl is not for keep the origin's too: a 405
             * sent on as the assets' "max-age=600" would outlive it. */
            static const int statuses[] = { 404, 405, 410, 302, 500, 203, 308 };
            for (size_t k = 0; k < sizeof statuses / sizeof *statuses; k++) {
                memset(&rw, 0xff, sizeof rw);
                obj_policy_rewrite(hashed ? cfg : origin_etags, c[i].pi, statuses[k], false, &rw);
                bool ttl_status = statuses[k] == 203 || statuses[k] == 308;
                if (c[i].cc && ttl_status)
                    ck_assert_str_eq(rw.cache_control, c[i].cc);
                else
                    ck_assert_ptr_null(rw.cache_control);
                ck_assert(rw.drop_validators == (hashed == 1));
            }
        }
    }
    config_free(origin_etags);
    config_free(cfg);
}
END_TEST

static Suite *obj_policy_suite(void)
{
    Suite *s = suite_create("obj_policy");

    TCase *l = tcase_create("lifetime");
    tcase_add_test(l, policy_ttl_overrides);
    tcase_add_test(l, policy_ttl_zero);
    tcase_add_test(l, origin_lifetime);
    suite_add_tcase(s, l);

    TCase *sc = tcase_create("status");
    tcase_add_test(sc, status_classes);
    tcase_add_test(sc, ttl_for_its_statuses_only);
    tcase_add_test(sc, negative_ttl);
    tcase_add_test(sc, authorized_keeps_origin_lifetime);
    tcase_add_test(sc, apply_uses_status_and_authorization);
    suite_add_tcase(s, sc);

    TCase *st = tcase_create("stale");
    tcase_add_test(st, stale_allowances);
    suite_add_tcase(s, st);

    TCase *g = tcase_create("generations");
    tcase_add_test(g, apply_stamps_generations);
    tcase_add_test(g, stamp_takes_numbers_in_force);
    suite_add_tcase(s, g);

    TCase *r = tcase_create("rewrite");
    tcase_add_test(r, rewrite_from_policy);
    suite_add_tcase(s, r);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(obj_policy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
