/*
 * check_cache_key.c — the primary cache key: host + path + query.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/cache/cache_key.h"

static struct cache_key kb;

/* Build from NUL-terminated host and target; the key text or NULL. */
static const char *key(const char *host, const char *target)
{
    memset(&kb, 0x5a, sizeof kb);
    if (cache_key_build(&kb, host, strlen(host), target, strlen(target)) != 0)
        return NULL;
    ck_assert_uint_eq(strlen(kb.buf), kb.len);      /* NUL-terminated, no NULs */
    ck_assert_uint_le(kb.host_len, kb.len);
    ck_assert_uint_eq(kb.hash, cache_key_hash(kb.buf, kb.len));
    return kb.buf;
}

static const char *host_part(void)
{
    static char h[256];
    ck_assert_uint_lt(kb.host_len, sizeof h);
    memcpy(h, kb.buf, kb.host_len);
    h[kb.host_len] = '\0';
    return h;
}

static const char *path_part(void)
{
    size_t len;
    const char *p = cache_key_path(&kb, &len);
    ck_assert_uint_eq(len, kb.len - kb.host_len);
    ck_assert_ptr_eq(p, kb.buf + kb.host_len);
    return p;   /* NUL-terminated by the key */
}

START_TEST(origin_form)
{
    ck_assert_str_eq(key("example.com", "/"), "example.com/");
    ck_assert_str_eq(host_part(), "example.com");
    ck_assert_str_eq(path_part(), "/");
    ck_assert_uint_eq(kb.host_len, 11);
    ck_assert_uint_eq(kb.len, 12);

    ck_assert_str_eq(key("example.com", "/a/b.html"), "example.com/a/b.html");
    ck_assert_str_eq(path_part(), "/a/b.html");
}
END_TEST

START_TEST(host_lower_cased)
{
    ck_assert_str_eq(key("ExAmPlE.CoM", "/Path/To/File"), "example.com/Path/To/File");
    ck_assert_str_eq(host_part(), "example.com");
    /* the path is case-sensitive and kept as is */
    ck_assert_str_eq(path_part(), "/Path/To/File");
    ck_assert_str_eq(key("WWW.EXAMPLE.ORG:8080", "/X"), "www.example.org:8080/X");
}
END_TEST

START_TEST(default_port_stripped)
{
    ck_assert_str_eq(key("example.com:80", "/p"), "example.com/p");
    ck_assert_str_eq(host_part(), "example.com");
    ck_assert_str_eq(key("Example.com:80", "/p"), "example.com/p");
    /* other ports are part of the key */
    ck_assert_str_eq(key("example.com:8080", "/p"), "example.com:8080/p");
    /* :443 too: a site's HTTP and HTTPS listeners share one cache */
    ck_assert_str_eq(key("example.com:443", "/p"), "example.com/p");
    ck_assert_str_eq(key("example.com:4430", "/p"), "example.com:4430/p");
    ck_assert_str_eq(key("example.com:180", "/p"), "example.com:180/p");
    ck_assert_str_eq(key("example.com:800", "/p"), "example.com:800/p");
    ck_assert_str_eq(key("[::1]:80", "/p"), "[::1]/p");
    ck_assert_str_eq(key("[::1]:8080", "/p"), "[::1]:8080/p");

    /* "Example.com:80" and "example.com" share entries */
    struct cache_key a, b;
    ck_assert_int_eq(cache_key_build(&a, "Example.com:80", 14, "/x?y", 4), 0);
    ck_assert_int_eq(cache_key_build(&b, "example.com", 11, "/x?y", 4), 0);
    ck_assert_uint_eq(a.len, b.len);
    ck_assert_uint_eq(a.host_len, b.host_len);
    ck_assert_int_eq(memcmp(a.buf, b.buf, a.len), 0);
    ck_assert_uint_eq(a.hash, b.hash);
}
END_TEST

/* Keys that outlive a request are allocated to their size. */
START_TEST(made_and_duplicated)
{
    struct cache_key *k = cache_key_make("Example.com:443", 15, "/a?b", 4);
    ck_assert_ptr_nonnull(k);
    ck_assert_str_eq(k->buf, "example.com/a?b");
    ck_assert_uint_eq(k->len, 15);
    ck_assert_uint_eq(k->host_len, 11);
    ck_assert_uint_eq(k->hash, cache_key_hash("example.com/a?b", 15));
    struct cache_key *d = cache_key_dup(k);
    ck_assert_str_eq(d->buf, k->buf);
    ck_assert_uint_eq(d->len, k->len);
    ck_assert_uint_eq(d->host_len, k->host_len);
    ck_assert_uint_eq(d->hash, k->hash);
    free(k);
    free(d);
    /* absolute-form with an empty path needs the "/" the bound allows */
    k = cache_key_make("", 0, "http://h?q", 10);
    ck_assert_ptr_nonnull(k);
    ck_assert_str_eq(k->buf, "h/?q");
    free(k);
    /* invalid and too long: NULL, nothing allocated */
    ck_assert_ptr_null(cache_key_make("h", 1, "p", 1));
    static char huge[CACHE_KEY_MAX];
    memset(huge, 'a', sizeof huge);
    huge[0] = '/';
    ck_assert_ptr_null(cache_key_make("h", 1, huge, sizeof huge));
}
END_TEST

START_TEST(query_kept)
{
    ck_assert_str_eq(key("h", "/search?q=a%20b&lang=EN"), "h/search?q=a%20b&lang=EN");
    ck_assert_str_eq(path_part(), "/search?q=a%20b&lang=EN");
    /* byte for byte: no percent-decoding, no reordering */
    ck_assert_str_eq(key("h", "/a%2Fb?x=1&y=2"), "h/a%2Fb?x=1&y=2");
    ck_assert_str_ne(key("h", "/p?a=1&b=2"), "h/p?b=2&a=1");
    ck_assert_str_eq(key("h", "/p?"), "h/p?");
    ck_assert_str_eq(key("h", "/?q"), "h/?q");
}
END_TEST

START_TEST(absolute_form)
{
    ck_assert_str_eq(key("ignored.example", "http://Origin.Example/a/b?c=d"),
                     "origin.example/a/b?c=d");
    ck_assert_str_eq(host_part(), "origin.example");
    ck_assert_str_eq(path_part(), "/a/b?c=d");

    ck_assert_str_eq(key("", "HTTP://Origin.Example:80/x"), "origin.example/x");
    ck_assert_str_eq(key("", "http://origin.example:8080/x"), "origin.example:8080/x");
    ck_assert_str_eq(key("", "https://secure.example/x"), "secure.example/x");
    /* an empty path is "/" */
    ck_assert_str_eq(key("", "http://origin.example"), "origin.example/");
    ck_assert_str_eq(path_part(), "/");

    /* absolute-form and origin-form of one URI share the key */
    struct cache_key a, b;
    const char *abs = "http://Example.com:80/p?q=1";
    ck_assert_int_eq(cache_key_build(&a, "whatever", 8, abs, strlen(abs)), 0);
    ck_assert_int_eq(cache_key_build(&b, "example.com", 11, "/p?q=1", 6), 0);
    ck_assert_uint_eq(a.len, b.len);
    ck_assert_uint_eq(a.host_len, b.host_len);
    ck_assert_int_eq(memcmp(a.buf, b.buf, a.len + 1), 0);
    ck_assert_uint_eq(a.hash, b.hash);
}
END_TEST

/*
 * Regression (fixed; src/cache_key.c, cache_key_build): an absolute-form target
 * with an empty path and a query, "http://h?q", yields key "h?q" (the "/"
 * is only supplied when nothing follows the authority), while the
 * equivalent origin-form "/?q" (RFC 9112 §3.2.1: an empty path is sent as
 * "/") yields "h/?q": two keys for one URI.
 */
START_TEST(absolute_form_empty_path_with_query)
{
    ck_assert_str_eq(key("", "http://h.example?q=1"), "h.example/?q=1");
}
END_TEST

/*
 * Regression (found by fuzz-cache-key; fixed in src/cache/cache_key.c): an
 * absolute-form target with a default port and an empty path,
 * "http://h:80?q", kept the port ("h:80/?q") while every other form drops
 * it ("http://h:80/?q" and Host "h:80" with "/?q" give "h/?q").
 */
START_TEST(absolute_form_empty_path_default_port)
{
    ck_assert_str_eq(key("", "http://H.example:80?q=1"), "h.example/?q=1");
    ck_assert_str_eq(key("", "https://h.example:443"), "h.example/");
    ck_assert_str_eq(key("h.example:80", "/?q=1"), "h.example/?q=1");
    ck_assert_str_eq(key("", "http://h.example:8080"), "h.example:8080/");
    ck_assert_str_eq(host_part(), "h.example:8080");
}
END_TEST

START_TEST(invalid_targets)
{
    ck_assert_ptr_null(key("h", ""));
    ck_assert_ptr_null(key("h", "*"));                  /* asterisk-form */
    ck_assert_ptr_null(key("h", "h.example:443"));      /* authority-form */
    ck_assert_ptr_null(key("h", "p/q"));
    ck_assert_ptr_null(key("h", "?q"));
    ck_assert_ptr_null(key("h", "ftp://h/p"));
    ck_assert_ptr_null(key("h", "http://"));
    ck_assert_ptr_null(key("h", "http:/x"));
}
END_TEST

START_TEST(too_long)
{
    size_t n = CACHE_KEY_MAX + 10;
    char *t = malloc(n + 1);
    ck_assert_ptr_nonnull(t);
    memset(t, 'a', n);
    t[0] = '/';
    t[n] = '\0';
    struct cache_key k;
    /* host + target + NUL must fit */
    ck_assert_int_eq(cache_key_build(&k, "h", 1, t, CACHE_KEY_MAX - 2), 0);
    ck_assert_uint_eq(k.len, CACHE_KEY_MAX - 1);
    ck_assert_int_eq(cache_key_build(&k, "h", 1, t, CACHE_KEY_MAX - 1), -1);
    ck_assert_int_eq(cache_key_build(&k, "h", 1, t, n), -1);
    ck_assert_int_eq(cache_key_build(&k, "hh", 2, t, CACHE_KEY_MAX - 2), -1);
    free(t);
}
END_TEST

START_TEST(hash_equal_for_equal_keys)
{
    struct cache_key a, b, c;
    ck_assert_int_eq(cache_key_build(&a, "Example.COM", 11, "/x?y=1", 6), 0);
    ck_assert_int_eq(cache_key_build(&b, "example.com:80", 14, "/x?y=1", 6), 0);
    ck_assert_int_eq(cache_key_build(&c, "example.com", 11, "/x?y=2", 6), 0);
    ck_assert_uint_eq(a.hash, b.hash);
    ck_assert_uint_ne(a.hash, c.hash);
    ck_assert_uint_eq(a.hash, cache_key_hash("example.com/x?y=1", 17));

    /* deterministic, and depends on every byte */
    ck_assert_uint_eq(cache_key_hash("abc", 3), cache_key_hash("abc", 3));
    ck_assert_uint_ne(cache_key_hash("abc", 3), cache_key_hash("abd", 3));
    ck_assert_uint_ne(cache_key_hash("abc", 3), cache_key_hash("abc", 2));
    ck_assert_uint_ne(cache_key_hash("", 0), cache_key_hash("a", 1));
}
END_TEST

START_TEST(hash_spreads_low_and_high_bits)
{
    /* Shards use the high bits, buckets the low bits: both must vary over
     * keys differing in one trailing byte. */
    unsigned lo_seen = 0, hi_seen = 0;
    char k[16] = "h/p";
    for (int i = 0; i < 64; i++) {
        k[3] = (char)('0' + i);
        uint64_t h = cache_key_hash(k, 4);
        lo_seen |= 1u << (h & 15);
        hi_seen |= 1u << ((h >> 48) & 15);
    }
    ck_assert_uint_ge((unsigned)__builtin_popcount(lo_seen), 12);
    ck_assert_uint_ge((unsigned)__builtin_popcount(hi_seen), 12);
}
END_TEST

static Suite *cache_key_suite(void)
{
    Suite *s = suite_create("cache_key");
    TCase *t = tcase_create("build");
    tcase_add_test(t, origin_form);
    tcase_add_test(t, host_lower_cased);
    tcase_add_test(t, default_port_stripped);
    tcase_add_test(t, query_kept);
    tcase_add_test(t, made_and_duplicated);
    tcase_add_test(t, absolute_form);
    tcase_add_test(t, invalid_targets);
    tcase_add_test(t, too_long);
    suite_add_tcase(s, t);

    TCase *h = tcase_create("hash");
    tcase_add_test(h, hash_equal_for_equal_keys);
    tcase_add_test(h, hash_spreads_low_and_high_bits);
    suite_add_tcase(s, h);

    /* Regression tests for bugs these suites found in src/ (see their
     * comments). */
    TCase *kb = tcase_create("regressions");
    tcase_set_tags(kb, "regression");
    tcase_add_test(kb, absolute_form_empty_path_with_query);
    tcase_add_test(kb, absolute_form_empty_path_default_port);
    suite_add_tcase(s, kb);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cache_key_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
