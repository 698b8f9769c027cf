/*
 * check_poison_config.c — the config keys of issue 17 (src/config/config.c):
 * trusted_proxies (a list of CIDRs, or one; default none), a policy's
 * negative_ttl (default 10s) and extension_types (web cache deception
 * overrides), with each error at its FILE:LINE:COLUMN.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "freshcache/base/assert.h"
#include "freshcache/config/config.h"

#define ORIGIN "origin:\n  url: http://127.0.0.1:8000\n"

static struct fc_config *load(const char *yaml, struct config_errors *errs)
{
    return config_load_string("t.yaml", yaml, strlen(yaml), errs);
}

static const char *joined(const struct config_errors *errs)
{
    static char all[4096];
    all[0] = '\0';
    for (size_t i = 0; i < errs->n; i++) {
        size_t len = strlen(all);
        snprintf(all + len, sizeof all - len, "\n  %s", errs->lines[i]);
    }
    return all;
}

static struct fc_config *load_ok(const char *yaml)
{
    struct config_errors errs = { 0 };
    struct fc_config *cfg = load(yaml, &errs);
    ck_assert_msg(cfg != NULL && errs.n == 0, "unexpected errors:%s", joined(&errs));
    config_errors_free(&errs);
    return cfg;
}

static void expect_errors(const char *yaml, const char *const *want, size_t n)
{
    struct config_errors errs = { 0 };
    struct fc_config *cfg = load(yaml, &errs);
    ck_assert_msg(cfg == NULL, "config loaded but errors were expected");
    ck_assert_msg(errs.n == n, "expected %zu errors, got %zu:%s", n, errs.n, joined(&errs));
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(errs.lines[i], want[i]);
    config_errors_free(&errs);
}

#define EXPECT_ERRORS(yaml, ...)                                     \
    do {                                                             \
        const char *const want_[] = { __VA_ARGS__ };                 \
        expect_errors(yaml, want_, FC_ARRAY_LEN(want_));             \
    } while (0)

/* ------------------------------------------------------- trusted_proxies */

START_TEST(trusted_proxies_default_none)
{
    struct fc_config *cfg = load_ok(ORIGIN);
    ck_assert_uint_eq(cfg->n_trusted_proxies, 0);
    config_free(cfg);
    cfg = load_ok(ORIGIN "trusted_proxies: []\n");
    ck_assert_uint_eq(cfg->n_trusted_proxies, 0);
    config_free(cfg);
    cfg = load_ok(ORIGIN "trusted_proxies:\n");
    ck_assert_uint_eq(cfg->n_trusted_proxies, 0);
    config_free(cfg);
}
END_TEST

START_TEST(trusted_proxies_forms)
{
    struct fc_config *cfg =
        load_ok(ORIGIN "trusted_proxies: [10.0.0.0/8, \"2001:db8::/32\", 192.0.2.7, \"::1\"]\n");
    ck_assert_uint_eq(cfg->n_trusted_proxies, 4);
    ck_assert_int_eq(cfg->trusted_proxies[0].family, AF_INET);
    ck_assert_uint_eq(cfg->trusted_proxies[0].prefix, 8);
    ck_assert_int_eq(cfg->trusted_proxies[1].family, AF_INET6);
    ck_assert_uint_eq(cfg->trusted_proxies[1].prefix, 32);
    ck_assert_uint_eq(cfg->trusted_proxies[2].prefix, 32);
    ck_assert_uint_eq(cfg->trusted_proxies[3].prefix, 128);
    ck_assert(cidr_list_contains(cfg->trusted_proxies, cfg->n_trusted_proxies, "10.9.8.7"));
    ck_assert(!cidr_list_contains(cfg->trusted_proxies, cfg->n_trusted_proxies, "127.0.0.1"));
    config_free(cfg);
    /* one as a plain string */
    cfg = load_ok(ORIGIN "trusted_proxies: 127.0.0.1\n");
    ck_assert_uint_eq(cfg->n_trusted_proxies, 1);
    ck_assert(cidr_list_contains(cfg->trusted_proxies, 1, "127.0.0.1"));
    config_free(cfg);
}
END_TEST

START_TEST(trusted_proxies_errors)
{
    EXPECT_ERRORS(ORIGIN "trusted_proxies: [10.0.0.1/8, proxy.example, 10.0.0.0/40]\n",
        "t.yaml:3:19: trusted_proxies[0]: \"10.0.0.1/8\": bits are set past the /8 prefix; "
        "the range is 10.0.0.0/8",
        "t.yaml:3:31: trusted_proxies[1]: \"proxy.example\": not an IPv4 or IPv6 address (a "
        "numeric address, optionally /PREFIX: 10.0.0.0/8, 2001:db8::/32)",
        "t.yaml:3:46: trusted_proxies[2]: \"10.0.0.0/40\": invalid prefix length after '/' "
        "(0 to 32)");
    EXPECT_ERRORS(ORIGIN "trusted_proxies: { a: 1 }\n",
        "t.yaml:3:18: trusted_proxies: expected a list of addresses or CIDR ranges "
        "([10.0.0.0/8, \"::1\"]), got a mapping");
    EXPECT_ERRORS(ORIGIN "trusted_proxies:\n  - [10.0.0.0/8]\n",
        "t.yaml:4:5: trusted_proxies[0]: expected a single value, got a list");
}
END_TEST

/* --------------------------------------------------------- negative_ttl */

#define POLICY_HEAD "policies:\n  - name: assets\n    match: { path: '\\.css$' }\n"

START_TEST(negative_ttl_values)
{
    struct fc_config *cfg = load_ok(ORIGIN POLICY_HEAD "    ttl: 1h\n"
                                    "  - name: default\n    negative_ttl: 0s\n");
    ck_assert_uint_eq(cfg->policies[0].negative_ttl_ms, 10000);     /* the default */
    ck_assert_uint_eq(cfg->policies[1].negative_ttl_ms, 0);
    config_free(cfg);
    cfg = load_ok(ORIGIN POLICY_HEAD "    negative_ttl: 90s\n");
    ck_assert_uint_eq(cfg->policies[0].negative_ttl_ms, 90000);
    config_free(cfg);
    EXPECT_ERRORS(ORIGIN POLICY_HEAD "    negative_ttl: soon\n",
        "t.yaml:6:19: policies[0].negative_ttl: invalid duration \"soon\" (use e.g. 250ms, "
        "30s, 5m, 1h or 365d)");
}
END_TEST

/* ------------------------------------------------------ extension_types */

START_TEST(extension_types_values)
{
    struct fc_config *cfg = load_ok(ORIGIN POLICY_HEAD
        "    extension_types: { CSS: [text/css, Text/Plain], .map: application/octet-stream, "
        "php: [], woff2: [font/*] }\n");
    const struct fc_policy *p = &cfg->policies[0];
    ck_assert_uint_eq(p->n_ext_types, 4);
    ck_assert_str_eq(p->ext_types[0].ext, "css");
    ck_assert_uint_eq(p->ext_types[0].n_types, 2);
    ck_assert_str_eq(p->ext_types[0].types[0], "text/css");
    ck_assert_str_eq(p->ext_types[0].types[1], "text/plain");
    ck_assert_str_eq(p->ext_types[1].ext, "map");
    ck_assert_uint_eq(p->ext_types[1].n_types, 1);
    ck_assert_str_eq(p->ext_types[1].types[0], "application/octet-stream");
    ck_assert_str_eq(p->ext_types[2].ext, "php");
    ck_assert_uint_eq(p->ext_types[2].n_types, 0);
    ck_assert_str_eq(p->ext_types[3].types[0], "font/*");
    config_free(cfg);
}
END_TEST

START_TEST(extension_types_errors)
{
    EXPECT_ERRORS(ORIGIN POLICY_HEAD
        "    extension_types: { css: [text/css, html], \"a.b\": [text/x], css: [] , "
        "js: [\"*/*\"] }\n",
        "t.yaml:6:40: policies[0].extension_types.css[1]: invalid media type \"html\" (use "
        "e.g. text/css, or image/* for any image; [] turns the check off for this extension)",
        "t.yaml:6:47: policies[0].extension_types: invalid extension \"a.b\" (letters and "
        "digits, at most 16, e.g. css or woff2)",
        "t.yaml:6:64: policies[0].extension_types: extension \"css\" given twice",
        "t.yaml:6:79: policies[0].extension_types.js[0]: invalid media type \"*/*\" (use e.g. "
        "text/css, or image/* for any image; [] turns the check off for this extension)");
    EXPECT_ERRORS(ORIGIN POLICY_HEAD "    extension_types: [css]\n",
        "t.yaml:6:22: policies[0].extension_types: expected a mapping of extensions to media "
        "types ({ css: [text/css] }), got a list");
    /* only a path claims an extension */
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: html\n    match: { content_type: text/html }\n"
                  "    extension_types: { html: [text/html] }\n",
        "t.yaml:6:5: policies[0].extension_types: only a policy that matches on path checks "
        "extensions; add match.path or remove it");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("poison_config");
    TCase *tc = tcase_create("trusted_proxies");
    tcase_add_test(tc, trusted_proxies_default_none);
    tcase_add_test(tc, trusted_proxies_forms);
    tcase_add_test(tc, trusted_proxies_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("policies");
    tcase_add_test(tc, negative_ttl_values);
    tcase_add_test(tc, extension_types_values);
    tcase_add_test(tc, extension_types_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
