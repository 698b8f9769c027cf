/*
 * check_policy.c — which policy a response falls under (src/policy.c), with
 * configs built by config_load_string: the spec's three policies on paths
 * and content types, first match wins, path + content_type together,
 * "type/ *" wildcards, no policies at all, and policy_is_hashed_assets.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/config/config.h"
#include "freshcache/cache/policy.h"

#define ORIGIN "origin:\n  url: http://127.0.0.1:8000\n"

/* The spec's (and conf/freshcache.yaml's) three policies. */
#define SPEC_POLICIES                                                                         \
    "policies:\n"                                                                             \
    "  - name: hashed-assets\n"                                                               \
    "    match: { path: '[.-][0-9a-f]{8,}\\.(js|mjs|css|map|png|jpe?g|gif|svg|webp|avif|"       \
    "woff2?|ttf)$' }\n"                                                                       \
    "    ttl: 365d\n"                                                                         \
    "    response_cache_control: \"public, max-age=31536000, immutable\"\n"                   \
    "  - name: html\n"                                                                        \
    "    match: { content_type: [text/html] }\n"                                              \
    "    ttl: 0s\n"                                                                           \
    "    stale_if_error: 1h\n"                                                                \
    "    response_cache_control: \"no-cache\"\n"                                              \
    "  - name: default\n"                                                                     \
    "    ttl: origin\n"

enum { HASHED = 0, HTML = 1, DEFAULT = 2 };

static struct fc_config *load_ok(const char *yaml)
{
    struct config_errors errs = { 0 };
    struct fc_config *cfg = config_load_string("t.yaml", yaml, strlen(yaml), &errs);
    char all[4096] = "";
    for (size_t i = 0; i < errs.n; i++) {
        size_t len = strlen(all);
        snprintf(all + len, sizeof all - len, "\n  %s", errs.lines[i]);
    }
    ck_assert_msg(cfg != NULL && errs.n == 0, "config rejected:%s", all);
    config_errors_free(&errs);
    return cfg;
}

static struct fc_config *spec_config(void)
{
    struct fc_config *cfg = load_ok(ORIGIN SPEC_POLICIES);
    ck_assert_uint_eq(cfg->n_policies, 3);
    ck_assert_str_eq(cfg->policies[HASHED].name, "hashed-assets");
    ck_assert_str_eq(cfg->policies[HTML].name, "html");
    ck_assert_str_eq(cfg->policies[DEFAULT].name, "default");
    return cfg;
}

/* policy_match with NUL-terminated strings; ct NULL = not known yet. */
static int match(const struct fc_config *cfg, const char *path, const char *ct)
{
    return policy_match(cfg, path, strlen(path), ct, ct ? strlen(ct) : 0);
}

#define EXPECT(cfg, path, ct, want)                                                          \
    do {                                                                                     \
        int got_ = match(cfg, path, ct);                                                     \
        ck_assert_msg(got_ == (want), "%s (%s): policy %d, expected %d", path,               \
                      (ct) ? (const char *)(ct) : "no content type", got_, (want));           \
    } while (0)

/* ----------------------------------------------------------------- paths */

START_TEST(hashed_paths)
{
    struct fc_config *cfg = spec_config();
    const char *js = "application/javascript";
    EXPECT(cfg, "/assets/app.3f9a2c1d.js", js, HASHED);
    EXPECT(cfg, "/assets/style.8b7e6d5c.css", "text/css", HASHED);
    EXPECT(cfg, "/app-3f9a2c1d.js", js, HASHED);                    /* '-' separator */
    EXPECT(cfg, "/img/logo.0123456789abcdef.png", "image/png", HASHED);
    EXPECT(cfg, "/f.deadbeef.woff2", "font/woff2", HASHED);
    EXPECT(cfg, "/f.deadbeef.woff", "font/woff", HASHED);
    EXPECT(cfg, "/p.deadbeef.jpg", "image/jpeg", HASHED);
    EXPECT(cfg, "/p.deadbeef.jpeg", "image/jpeg", HASHED);
    EXPECT(cfg, "/a.deadbeef.mjs", js, HASHED);
    EXPECT(cfg, "/a.deadbeef.js.map", "application/json", DEFAULT); /* ".js.map": no hash before .map */
    EXPECT(cfg, "/a.js.deadbeef.map", "application/json", HASHED);
    /* the path decides even before the content type is known */
    EXPECT(cfg, "/assets/app.3f9a2c1d.js", NULL, HASHED);
    /* first match wins: a hashed name served as text/html is still an asset */
    EXPECT(cfg, "/assets/app.3f9a2c1d.js", "text/html", HASHED);
    config_free(cfg);
}
END_TEST

START_TEST(unhashed_paths)
{
    struct fc_config *cfg = spec_config();
    const char *js = "application/javascript";
    EXPECT(cfg, "/app.js", js, DEFAULT);
    EXPECT(cfg, "/assets/app.js", js, DEFAULT);
    EXPECT(cfg, "/app.3f9a2c1.js", js, DEFAULT);                    /* 7 hex digits */
    EXPECT(cfg, "/app.3F9A2C1D.js", js, DEFAULT);                   /* upper case is not [0-9a-f] */
    EXPECT(cfg, "/app.3f9a2c1g.js", js, DEFAULT);
    EXPECT(cfg, "/app_3f9a2c1d.js", js, DEFAULT);                   /* '_' is no separator */
    EXPECT(cfg, "/app.3f9a2c1d.js.gz", "application/gzip", DEFAULT);
    EXPECT(cfg, "/app.3f9a2c1d.html", "text/html", HTML);
    EXPECT(cfg, "/app.3f9a2c1d.txt", "text/plain", DEFAULT);
    EXPECT(cfg, "/", NULL, DEFAULT);
    config_free(cfg);
}
END_TEST

/* The regex sees the path only: a query neither makes nor breaks a match. */
START_TEST(query_ignored)
{
    struct fc_config *cfg = spec_config();
    EXPECT(cfg, "/x.3f9a2c1d.css?v=2", "text/css", HASHED);
    EXPECT(cfg, "/x.3f9a2c1d.css?", "text/css", HASHED);
    EXPECT(cfg, "/x.3f9a2c1d.css?a=b?c", "text/css", HASHED);
    EXPECT(cfg, "/x.css?v=.3f9a2c1d.css", "text/css", DEFAULT);
    EXPECT(cfg, "/x.php?file=app.3f9a2c1d.js", "application/javascript", DEFAULT);
    config_free(cfg);
}
END_TEST

/* path_len is honoured: the bytes after it are not part of the path. */
START_TEST(path_len_honoured)
{
    struct fc_config *cfg = spec_config();
    const char *p = "/app.3f9a2c1d.js.bak";
    ck_assert_int_eq(policy_match(cfg, p, strlen("/app.3f9a2c1d.js"), NULL, 0), HASHED);
    ck_assert_int_eq(policy_match(cfg, p, strlen(p), NULL, 0), DEFAULT);
    config_free(cfg);
}
END_TEST

/* Paths longer than any stack buffer still match. */
START_TEST(long_path)
{
    struct fc_config *cfg = spec_config();
    size_t n = 10000;
    char *p = malloc(n + 32);
    ck_assert_ptr_nonnull(p);
    p[0] = '/';
    memset(p + 1, 'a', n);
    strcpy(p + 1 + n, ".3f9a2c1d.js");
    EXPECT(cfg, p, NULL, HASHED);
    strcpy(p + 1 + n, ".js?x=.3f9a2c1d.js");
    EXPECT(cfg, p, NULL, DEFAULT);
    free(p);
    config_free(cfg);
}
END_TEST

/* --------------------------------------------------------- content types */

START_TEST(content_types)
{
    struct fc_config *cfg = spec_config();
    EXPECT(cfg, "/", "text/html", HTML);
    EXPECT(cfg, "/", "text/html; charset=utf-8", HTML);
    EXPECT(cfg, "/", "text/html;charset=utf-8", HTML);
    EXPECT(cfg, "/", "TEXT/HTML", HTML);
    EXPECT(cfg, "/", "Text/Html; Charset=UTF-8", HTML);
    EXPECT(cfg, "/", "  text/html  ; charset=utf-8", HTML);
    EXPECT(cfg, "/about.html", "text/html", HTML);
    EXPECT(cfg, "/", "text/plain", DEFAULT);
    EXPECT(cfg, "/", "text/htmlx", DEFAULT);
    EXPECT(cfg, "/", "text/htm", DEFAULT);
    EXPECT(cfg, "/", "application/xhtml+xml", DEFAULT);
    EXPECT(cfg, "/", "", DEFAULT);
    /* at request time the type is unknown: a content_type policy cannot match */
    EXPECT(cfg, "/index.html", NULL, DEFAULT);
    config_free(cfg);
}
END_TEST

/* ct_len is honoured: the bytes after it are not part of the header. */
START_TEST(ct_len_honoured)
{
    struct fc_config *cfg = spec_config();
    const char *ct = "text/htmlXYZ";
    ck_assert_int_eq(policy_match(cfg, "/", 1, ct, 9), HTML);
    ck_assert_int_eq(policy_match(cfg, "/", 1, ct, strlen(ct)), DEFAULT);
    ck_assert_int_eq(policy_match(cfg, "/", 1, ct, 0), DEFAULT);
    config_free(cfg);
}
END_TEST

START_TEST(content_type_list)
{
    struct fc_config *cfg = load_ok(ORIGIN
        "policies:\n"
        "  - name: docs\n"
        "    match: { content_type: [text/html, application/xhtml+xml, Text/Markdown] }\n"
        "  - name: default\n");
    EXPECT(cfg, "/", "text/html", 0);
    EXPECT(cfg, "/", "application/xhtml+xml; charset=utf-8", 0);
    EXPECT(cfg, "/", "text/markdown", 0);          /* the config's case does not matter */
    EXPECT(cfg, "/", "TEXT/MARKDOWN", 0);
    EXPECT(cfg, "/", "text/plain", 1);
    config_free(cfg);
}
END_TEST

START_TEST(wildcard)
{
    struct fc_config *cfg = load_ok(ORIGIN
        "policies:\n"
        "  - name: text\n"
        "    match: { content_type: ['text/*'] }\n"
        "  - name: default\n");
    EXPECT(cfg, "/", "text/plain", 0);
    EXPECT(cfg, "/", "text/css; charset=utf-8", 0);
    EXPECT(cfg, "/", "TEXT/CSS", 0);
    EXPECT(cfg, "/", "text/html", 0);
    EXPECT(cfg, "/", "application/json", 1);
    EXPECT(cfg, "/", "textual/plain", 1);          /* the prefix is "text/", not "text" */
    EXPECT(cfg, "/", "text", 1);
    EXPECT(cfg, "/", "image/text", 1);
    EXPECT(cfg, "/", NULL, 1);
    config_free(cfg);
}
END_TEST

/* ------------------------------------------------------------- combining */

START_TEST(first_match_wins)
{
    struct fc_config *cfg = load_ok(ORIGIN
        "policies:\n"
        "  - name: api\n"
        "    match: { path: '^/api/' }\n"
        "  - name: api-v2\n"
        "    match: { path: '^/api/v2/' }\n"
        "  - name: json\n"
        "    match: { content_type: [application/json] }\n"
        "  - name: default\n");
    EXPECT(cfg, "/api/v2/users", "application/json", 0);
    EXPECT(cfg, "/api/v1/users", "application/json", 0);
    EXPECT(cfg, "/v2/api/", "application/json", 2);
    EXPECT(cfg, "/data", "application/json", 2);
    EXPECT(cfg, "/data", "text/plain", 3);
    config_free(cfg);
}
END_TEST

START_TEST(path_and_content_type_need_both)
{
    struct fc_config *cfg = load_ok(ORIGIN
        "policies:\n"
        "  - name: doc-pages\n"
        "    match: { path: '^/docs/', content_type: [text/html] }\n"
        "  - name: default\n");
    EXPECT(cfg, "/docs/intro", "text/html; charset=utf-8", 0);
    EXPECT(cfg, "/docs/intro.pdf", "application/pdf", 1);      /* path only */
    EXPECT(cfg, "/blog/post", "text/html", 1);                 /* type only */
    EXPECT(cfg, "/docs/intro", NULL, 1);                       /* type not known yet */
    EXPECT(cfg, "/blog/post", "text/plain", 1);
    config_free(cfg);
}
END_TEST

START_TEST(no_policies)
{
    struct fc_config *cfg = load_ok(ORIGIN);
    ck_assert_uint_eq(cfg->n_policies, 0);
    EXPECT(cfg, "/", "text/html", -1);
    EXPECT(cfg, "/assets/app.3f9a2c1d.js", NULL, -1);
    config_free(cfg);
}
END_TEST

/* Without a catch-all, what matches nothing has no policy. */
START_TEST(no_catch_all)
{
    struct fc_config *cfg = load_ok(ORIGIN
        "policies:\n"
        "  - name: hashed-assets\n"
        "    match: { path: '[.-][0-9a-f]{8,}\\.(js|css)$' }\n"
        "    ttl: 365d\n"
        "  - name: html\n"
        "    match: { content_type: [text/html] }\n"
        "    ttl: 0s\n");
    EXPECT(cfg, "/assets/app.3f9a2c1d.js", NULL, 0);
    EXPECT(cfg, "/", "text/html", 1);
    EXPECT(cfg, "/app.js", "application/javascript", -1);
    EXPECT(cfg, "/", NULL, -1);
    config_free(cfg);
}
END_TEST

/* ------------------------------------------------------ hashed-assets test */

START_TEST(is_hashed_assets)
{
    struct fc_config *cfg = spec_config();
    ck_assert(policy_is_hashed_assets(&cfg->policies[HASHED]));
    ck_assert(!policy_is_hashed_assets(&cfg->policies[HTML]));
    ck_assert(!policy_is_hashed_assets(&cfg->policies[DEFAULT]));
    config_free(cfg);

    cfg = load_ok(ORIGIN
        "policies:\n"
        "  - name: by-path-origin-ttl\n"      /* path, but freshness from the origin */
        "    match: { path: '\\.js$' }\n"
        "    ttl: origin\n"
        "  - name: by-path-short\n"           /* path, under a day */
        "    match: { path: '\\.css$' }\n"
        "    ttl: 23h\n"
        "  - name: by-path-one-day\n"         /* path, exactly a day */
        "    match: { path: '\\.png$' }\n"
        "    ttl: 1d\n"
        "  - name: by-type-long\n"            /* long ttl but not by path */
        "    match: { content_type: [image/svg+xml] }\n"
        "    ttl: 365d\n"
        "  - name: by-both-long\n"
        "    match: { path: '\\.woff2$', content_type: [font/woff2] }\n"
        "    ttl: 30d\n"
        "  - name: default\n"
        "    ttl: 365d\n");                  /* long ttl, no match at all */
    ck_assert_uint_eq(cfg->n_policies, 6);
    ck_assert(!policy_is_hashed_assets(&cfg->policies[0]));
    ck_assert(!policy_is_hashed_assets(&cfg->policies[1]));
    ck_assert(policy_is_hashed_assets(&cfg->policies[2]));
    ck_assert(!policy_is_hashed_assets(&cfg->policies[3]));
    ck_assert(policy_is_hashed_assets(&cfg->policies[4]));
    ck_assert(!policy_is_hashed_assets(&cfg->policies[5]));
    config_free(cfg);
}
END_TEST

/* The shipped config's policies behave as the spec's. */
START_TEST(shipped_config)
{
    struct config_errors errs = { 0 };
    struct fc_config *cfg = config_load(SOURCE_ROOT "/conf/freshcache.yaml", &errs);
    ck_assert_msg(cfg != NULL, "conf/freshcache.yaml: %s", errs.n ? errs.lines[0] : "?");
    config_errors_free(&errs);
    ck_assert_uint_eq(cfg->n_policies, 3);
    EXPECT(cfg, "/assets/app.3f9a2c1d.js", NULL, HASHED);
    EXPECT(cfg, "/app.js", "application/javascript", DEFAULT);
    EXPECT(cfg, "/", "text/html; charset=utf-8", HTML);
    ck_assert(policy_is_hashed_assets(&cfg->policies[HASHED]));
    config_free(cfg);
}
END_TEST

/* ------------------------------------------------------------------ suite */

/* ----------------------------------------------- web cache deception */

static bool agrees(const struct fc_policy *p, const char *path, const char *ct)
{
    return policy_type_agrees(p, path, strlen(path), ct, ct ? strlen(ct) : 0);
}

/* Under the shipped hashed-assets policy a response is stored only when
 * its Content-Type is one the path's extension claims: issue 17's
 * /account/settings/x-12345678.css answered with the account page is
 * refused, the real stylesheet is not.  Policies not matched on path
 * make no claim. */
START_TEST(deception_shipped_policy)
{
    struct fc_config *cfg = spec_config();
    const struct fc_policy *h = &cfg->policies[HASHED];
    static const struct {
        const char *path, *ct;
        bool ok;
    } c[] = {
        { "/account/settings/x-12345678.css", "text/html; charset=utf-8", false },
        { "/account/settings/x-12345678.css", NULL, false },      /* no type: no agreement */
        { "/account/settings/x-12345678.css", "text/css", true },
        { "/app.3f9a2c1d.js", "application/javascript; charset=utf-8", true },
        { "/app.3f9a2c1d.js", "text/html", false },
        { "/app.3f9a2c1d.mjs", "text/javascript", true },
        { "/app.3f9a2c1d.js.map", "application/json", true },
        { "/app.3f9a2c1d.js.map", "text/html", false },
        { "/logo.3f9a2c1d.png", "image/png", true },
        { "/logo.3f9a2c1d.png", "application/json", false },
        { "/logo.3f9a2c1d.svg", "image/svg+xml", true },
        { "/logo.3f9a2c1d.svg", "text/html", false },
        { "/f.3f9a2c1d.woff2", "font/woff2", true },
        { "/f.3f9a2c1d.ttf", "application/x-font-ttf", true },
        { "/f.3f9a2c1d.woff2", "text/html", false },
        { "/app.3f9a2c1d.css?v=1", "text/html", false },          /* the query is no path */
        { "/x.3f9a2c1d.css;jsessionid=1", "text/html", false },   /* path parameters */
        { "/account;x.css", "text/html", false },
        { "/assets/unknown.3f9a2c1d.php", "text/html", true },    /* claims nothing known */
        { "/assets/dir", "text/html", true },
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        ck_assert_msg(agrees(h, c[i].path, c[i].ct) == c[i].ok, "%s as %s: %s", c[i].path,
                      c[i].ct ? c[i].ct : "(no type)", c[i].ok ? "refused" : "stored");
    /* path_len is honoured */
    ck_assert(!policy_type_agrees(h, "/a.3f9a2c1d.css.js", 15, "text/javascript", 15));
    /* not matched on path: no claim, whatever the type */
    ck_assert(agrees(&cfg->policies[HTML], "/x-12345678.css", "text/html"));
    ck_assert(agrees(&cfg->policies[DEFAULT], "/x-12345678.css", "text/html"));
    config_free(cfg);
}
END_TEST

/* extension_types replaces the built-in entries it names ([] : no
 * check), leaving the others. */
START_TEST(deception_policy_overrides)
{
    struct fc_config *cfg = load_ok(ORIGIN "policies:\n"
        "  - name: static\n"
        "    match: { path: '^/static/' }\n"
        "    ttl: 1d\n"
        "    extension_types: { map: [application/json, application/octet-stream], "
        "php: [text/html], css: [], foo: [image/*] }\n"
        "  - name: default\n");
    const struct fc_policy *p = &cfg->policies[0];
    ck_assert(agrees(p, "/static/a.map", "application/octet-stream"));
    ck_assert(agrees(p, "/static/a.map", "application/json"));
    ck_assert(!agrees(p, "/static/a.map", "text/html"));
    ck_assert(agrees(p, "/static/a.php", "text/html"));
    ck_assert(!agrees(p, "/static/a.PHP", "application/json"));
    ck_assert(agrees(p, "/static/a.css", "text/html"));             /* turned off */
    ck_assert(agrees(p, "/static/a.FOO", "image/gif"));
    ck_assert(!agrees(p, "/static/a.foo", "text/html"));
    ck_assert(!agrees(p, "/static/a.js", "text/html"));             /* the built-in entry */
    ck_assert(agrees(p, "/static/a.js", "text/javascript"));
    config_free(cfg);
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc;

    tc = tcase_create("path");
    tcase_add_test(tc, hashed_paths);
    tcase_add_test(tc, unhashed_paths);
    tcase_add_test(tc, query_ignored);
    tcase_add_test(tc, path_len_honoured);
    tcase_add_test(tc, long_path);
    suite_add_tcase(s, tc);

    tc = tcase_create("content_type");
    tcase_add_test(tc, content_types);
    tcase_add_test(tc, ct_len_honoured);
    tcase_add_test(tc, content_type_list);
    tcase_add_test(tc, wildcard);
    suite_add_tcase(s, tc);

    tc = tcase_create("order");
    tcase_add_test(tc, first_match_wins);
    tcase_add_test(tc, path_and_content_type_need_both);
    tcase_add_test(tc, no_policies);
    tcase_add_test(tc, no_catch_all);
    suite_add_tcase(s, tc);

    tc = tcase_create("deception");
    tcase_add_test(tc, deception_shipped_policy);
    tcase_add_test(tc, deception_policy_overrides);
    suite_add_tcase(s, tc);

    tc = tcase_create("hashed");
    tcase_add_test(tc, is_hashed_assets);
    tcase_add_test(tc, shipped_config);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(policy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
