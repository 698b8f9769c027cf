/*
 * check_sitemap.c — sitemap XML to URLs and URLs to warm targets
 * (src/admin/sitemap.c): urlset and sitemapindex, trimming and entities,
 * entries without <loc>, the max_locs bound, what is not a sitemap, no
 * external entity ever read (XXE), and url_to_target's host rules; the
 * error paths: a length past what libxml2 takes, the line of a syntax
 * error, an error message never left over from an earlier parse, empty
 * sitemaps and empty <loc>s, and each way url_to_target refuses a URL.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/admin/sitemap.h"

static void parse_ok(const char *xml, size_t max, struct sitemap *sm)
{
    char err[256] = "";
    int rc = sitemap_parse(xml, strlen(xml), max, sm, err, sizeof err);
    ck_assert_msg(rc == 0, "parse failed: %s", err);
}

START_TEST(urlset)
{
    static const char xml[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n"
        "  <url><loc>\n   https://example.com/a?x=1&amp;y=2\n  </loc><lastmod>2024-01-01</lastmod></url>\n"
        "  <url><priority>0.5</priority></url>\n"
        "  <url><loc>https://example.com/b</loc></url>\n"
        "  <other><loc>https://example.com/not-an-entry</loc></other>\n"
        "</urlset>\n";
    struct sitemap sm;
    parse_ok(xml, 100, &sm);
    ck_assert_int_eq(sm.kind, SITEMAP_URLSET);
    ck_assert_uint_eq(sm.n, 2);
    ck_assert_str_eq(sm.locs[0], "https://example.com/a?x=1&y=2");
    ck_assert_str_eq(sm.locs[1], "https://example.com/b");
    ck_assert(!sm.truncated);
    sitemap_free(&sm);
    ck_assert_uint_eq(sm.n, 0);
}
END_TEST

START_TEST(sitemap_index)
{
    static const char xml[] =
        "<sitemapindex><sitemap><loc>http://h/s1.xml</loc></sitemap>"
        "<sitemap><loc>http://h/s2.xml</loc></sitemap></sitemapindex>";
    struct sitemap sm;
    parse_ok(xml, 100, &sm);
    ck_assert_int_eq(sm.kind, SITEMAP_INDEX);
    ck_assert_uint_eq(sm.n, 2);
    ck_assert_str_eq(sm.locs[1], "http://h/s2.xml");
    sitemap_free(&sm);
}
END_TEST

START_TEST(bounded)
{
    char xml[64 * 1024] = "<urlset>";
    for (int i = 0; i < 200; i++) {
        char e[64];
        snprintf(e, sizeof e, "<url><loc>/p%d</loc></url>", i);
        strcat(xml, e);
    }
    strcat(xml, "</urlset>");
    struct sitemap sm;
    parse_ok(xml, 150, &sm);
    ck_assert_uint_eq(sm.n, 150);
    ck_assert(sm.truncated);
    ck_assert_str_eq(sm.locs[149], "/p149");
    sitemap_free(&sm);
}
END_TEST

START_TEST(not_sitemaps)
{
    static const char *const bad[] = {
        "<html><body>hello</body></html>",
        "<urlset><url><loc>x</loc>",        /* not well-formed */
        "",
        "just text",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sitemap sm;
        char err[256] = "";
        ck_assert_int_eq(sitemap_parse(bad[i], strlen(bad[i]), 10, &sm, err, sizeof err), -1);
        ck_assert_msg(strncmp(err, "not a sitemap", 13) == 0, "%zu: %s", i, err);
        ck_assert_uint_eq(sm.n, 0);
    }
    char err[256];
    struct sitemap sm;
    sitemap_parse("<html/>", 7, 10, &sm, err, sizeof err);
    ck_assert_str_eq(err, "not a sitemap: the root element is <html>, not <urlset> or "
                          "<sitemapindex>");
}
END_TEST

/* An external entity naming a local file is neither read nor expanded. */
START_TEST(no_external_entities)
{
    static const char xml[] =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE urlset [ <!ENTITY secret SYSTEM \"file:///etc/hostname\"> ]>\n"
        "<urlset><url><loc>http://h/&secret;</loc></url></urlset>";
    struct sitemap sm;
    parse_ok(xml, 10, &sm);
    ck_assert_uint_eq(sm.n, 1);
    ck_assert_str_eq(sm.locs[0], "http://h/");
    sitemap_free(&sm);
}
END_TEST

/* libxml2 takes an int length: one past INT_MAX is refused before any byte
 * is read.  Cast instead, 4 GiB + 9 bytes would be parsed as their first
 * 9 — a valid, empty sitemap. */
START_TEST(too_large_refused_before_parsing)
{
#if SIZE_MAX > 0xffffffffu
    static const char xml[] = "<urlset/>";
    size_t len = ((size_t)1 << 32) + (sizeof xml - 1);
    struct sitemap sm;
    char err[256] = "";
    ck_assert_int_eq(sitemap_parse(xml, len, 10, &sm, err, sizeof err), -1);
    ck_assert_str_eq(err, "too large to parse");
    ck_assert_uint_eq(sm.n, 0);
    ck_assert_ptr_null(sm.locs);
#endif
}
END_TEST

/* A syntax error says where it is, one line of text. */
START_TEST(malformed_names_the_line)
{
    static const char xml[] = "<urlset>\n<url>\n<loc>/a</lo>\n</url></urlset>\n";
    struct sitemap sm;
    char err[256] = "";
    ck_assert_int_eq(sitemap_parse(xml, strlen(xml), 10, &sm, err, sizeof err), -1);
    ck_assert_msg(strncmp(err, "not a sitemap: line 3: ", 23) == 0, "%s", err);
    ck_assert_msg(strstr(err, "mismatch") != NULL, "%s", err);
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_uint_eq(sm.n, 0);
    ck_assert_ptr_null(sm.locs);
    /* A truncated document is as bad as a wrong one. */
    static const char cut[] = "<urlset><url><loc>/a</loc></url>";
    ck_assert_int_eq(sitemap_parse(cut, strlen(cut), 10, &sm, err, sizeof err), -1);
    ck_assert_msg(strncmp(err, "not a sitemap: line 1: ", 23) == 0, "%s", err);
}
END_TEST

/* libxml2 keeps its last error per thread, and a parse that succeeds can
 * leave one (a namespace error it recovers from).  A later failure that
 * sets none of its own (an empty body) must not be reported with that
 * earlier sitemap's error. */
START_TEST(error_not_left_over_from_an_earlier_parse)
{
    static const char recovered[] =
        "<urlset><c:d/><url><loc>/x</loc></url></urlset>";    /* prefix c undeclared */
    struct sitemap sm;
    parse_ok(recovered, 10, &sm);
    ck_assert_uint_eq(sm.n, 1);
    sitemap_free(&sm);
    char err[256] = "";
    ck_assert_int_eq(sitemap_parse("", 0, 10, &sm, err, sizeof err), -1);
    ck_assert_str_eq(err, "not a sitemap: not well-formed XML");
}
END_TEST

/* An empty sitemap lists nothing, which is no error; a <loc> of blanks
 * names nothing and is skipped like a missing one. */
START_TEST(empty_sitemaps_and_locs)
{
    struct sitemap sm;
    parse_ok("<urlset/>", 10, &sm);
    ck_assert_int_eq(sm.kind, SITEMAP_URLSET);
    ck_assert_uint_eq(sm.n, 0);
    ck_assert(!sm.truncated);
    sitemap_free(&sm);
    parse_ok("<sitemapindex></sitemapindex>", 10, &sm);
    ck_assert_int_eq(sm.kind, SITEMAP_INDEX);
    ck_assert_uint_eq(sm.n, 0);
    sitemap_free(&sm);
    parse_ok("<urlset><url><loc> \n\t </loc></url><url><loc/></url><url/>"
             "<url><loc>/a</loc></url></urlset>", 1, &sm);
    ck_assert_uint_eq(sm.n, 1);
    ck_assert_str_eq(sm.locs[0], "/a");
    ck_assert(!sm.truncated);       /* the blanks took no room */
    sitemap_free(&sm);
    /* The entries of the other kind of sitemap are not ours. */
    parse_ok("<sitemapindex><url><loc>/page</loc></url></sitemapindex>", 10, &sm);
    ck_assert_uint_eq(sm.n, 0);
    sitemap_free(&sm);
}
END_TEST

/* Exactly max_locs entries is all of them; one more is truncated. */
START_TEST(bound_is_exact)
{
    static const char two[] = "<urlset><url><loc>/a</loc></url><url><loc>/b</loc></url></urlset>";
    struct sitemap sm;
    parse_ok(two, 2, &sm);
    ck_assert_uint_eq(sm.n, 2);
    ck_assert(!sm.truncated);
    sitemap_free(&sm);
    parse_ok(two, 1, &sm);
    ck_assert_uint_eq(sm.n, 1);
    ck_assert_str_eq(sm.locs[0], "/a");
    ck_assert(sm.truncated);
    sitemap_free(&sm);
    parse_ok(two, 0, &sm);
    ck_assert_uint_eq(sm.n, 0);
    ck_assert(sm.truncated);
    sitemap_free(&sm);
}
END_TEST

static void target_ok(const char *url, const char *host, const char *want)
{
    char out[64], err[200] = "";
    int rc = url_to_target(url, host, out, sizeof out, err, sizeof err);
    ck_assert_msg(rc == 0, "%s: %s", url, err);
    ck_assert_str_eq(out, want);
}

static void target_bad(const char *url, const char *host, const char *why)
{
    char out[64], err[200] = "";
    ck_assert_int_eq(url_to_target(url, host, out, sizeof out, err, sizeof err), -1);
    ck_assert_msg(strstr(err, why) != NULL, "%s: %s", url, err);
}

START_TEST(targets)
{
    target_ok("/a/b?c=1", "h", "/a/b?c=1");
    target_ok("/a#frag", "h", "/a");
    target_ok("http://Example.COM/x?y#z", "example.com", "/x?y");
    target_ok("https://example.com:443/x", "example.com", "/x");
    target_ok("http://example.com/x", "example.com:80", "/x");
    target_ok("http://example.com", "example.com", "/");
    target_ok("http://example.com?q=1", "example.com", "/?q=1");
    target_ok("http://127.0.0.1:8080/p", "127.0.0.1:8080", "/p");
    target_bad("http://other.example/x", "example.com", "host other.example is not the warm host");
    target_bad("http://example.com:8080/x", "example.com", "not the warm host");
    target_bad("http://user@example.com/x", "example.com", "user information");
    target_bad("ftp://example.com/x", "example.com", "not a path or an http(s) URL");
    target_bad("relative/path", "example.com", "not a path");
    target_bad("/a b", "h", "control character or space");
    target_bad("/a\tb", "h", "control character");
    char longp[80];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    target_bad(longp, "h", "longer than 63 bytes");
}
END_TEST

/* Each way a URL is refused, at the edges of each rule. */
START_TEST(targets_refused)
{
    target_bad("http:///x", "h", "no host");
    target_bad("https://", "h", "no host");
    target_bad("http://?q", "h", "no host");
    target_bad("http://h@/x", "h", "user information");
    target_bad("mailto:someone@h", "h", "not a path or an http(s) URL");
    target_bad("javascript:alert(1)", "h", "not a path or an http(s) URL");
    target_bad("#top", "h", "not a path");
    target_bad("", "h", "not a path");
    target_bad("http://h/a\x7f" "b", "h", "control character");
    target_bad("http://h/a\nb", "h", "control character");
    target_ok("HTTPS://H/x", "h", "/x");
    /* What follows a fragment is not looked at. */
    target_ok("/a#b c", "h", "/a");
    /* The room for the slash put before a bare query counts: 63 bytes
     * fit in 64, 64 do not. */
    char q[80] = "http://h?";
    memset(q + 9, 'q', 61);
    q[9 + 61] = '\0';
    target_ok(q, "h", "/?qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq");
    q[9 + 61] = 'q';
    q[9 + 62] = '\0';
    target_bad(q, "h", "longer than 63 bytes");
}
END_TEST

/* Hosts are compared whole: one longer than the buffers they are
 * lower-cased into is another host, not its first 255 bytes. */
START_TEST(long_host_is_not_its_prefix)
{
    char host[256], u[400];
    memset(host, 'a', 255);
    host[255] = '\0';
    snprintf(u, sizeof u, "http://%sevil.example/x", host);
    target_bad(u, host, "is not the warm host");
    snprintf(u, sizeof u, "http://%s/x", host);
    target_ok(u, host, "/x");
    /* And the warm host's ":80" does not make room for more. */
    char host80[260];
    snprintf(host80, sizeof host80, "%s:80", host);
    snprintf(u, sizeof u, "http://%s/x", host);
    target_ok(u, host80, "/x");
}
END_TEST

static Suite *sitemap_suite(void)
{
    Suite *s = suite_create("sitemap");
    TCase *t = tcase_create("parse");
    tcase_add_test(t, urlset);
    tcase_add_test(t, sitemap_index);
    tcase_add_test(t, bounded);
    tcase_add_test(t, not_sitemaps);
    tcase_add_test(t, no_external_entities);
    tcase_add_test(t, too_large_refused_before_parsing);
    tcase_add_test(t, malformed_names_the_line);
    tcase_add_test(t, error_not_left_over_from_an_earlier_parse);
    tcase_add_test(t, empty_sitemaps_and_locs);
    tcase_add_test(t, bound_is_exact);
    suite_add_tcase(s, t);
    TCase *u = tcase_create("targets");
    tcase_add_test(u, targets);
    tcase_add_test(u, targets_refused);
    tcase_add_test(u, long_host_is_not_its_prefix);
    suite_add_tcase(s, u);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sitemap_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
