/*
 * check_purge.c — purges by URL, prefix, tag and "everything"
 * (src/cache/purge.c) on a real store, hard and soft, and the lookup while
 * a node is catching up (generation_catching_up): found objects are marked
 * for revalidation, never dropped.
 */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_body.h"
#include "freshcache/cache/cache_key.h"
#include "freshcache/cache/cache_obj.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/generation.h"
#include "freshcache/cache/purge.h"
#include "freshcache/http/http_msg.h"

static struct cache_key key_of(const char *host, const char *path)
{
    struct cache_key k;
    ck_assert_int_eq(cache_key_build(&k, host, strlen(host), path, strlen(path)), 0);
    return k;
}

/* Store a small complete 200 for host+path, tagged with `tags`
 * (a Surrogate-Key value) when not NULL. */
static void put(struct cache_store *s, const char *host, const char *path, const char *tags)
{
    struct cache_key k = key_of(host, path);
    struct cache_obj *o = obj_new(&k);
    struct http_msg resp;
    http_msg_init(&resp);
    resp.status = 200;
    http_msg_add_str(&resp, "Date", "Thu, 01 Jan 2015 00:00:00 GMT");
    if (tags)
        http_msg_add_str(&resp, "Surrogate-Key", tags);
    obj_set_head(o, &resp, "OK", 1420070400, NULL);
    http_msg_free(&resp);
    o->generation = 1;
    o->policy = -1;
    body_start(o->body, 2);
    body_append(o->body, "ok", 2);
    body_finish(o->body, BODY_COMPLETE);
    store_insert(s, o, 0);
    obj_unref(o);
}

/* NULL when absent; else its soft_purged flag in *soft. */
static bool find(struct cache_store *s, const char *host, const char *path, bool *soft,
                 const struct generations *g)
{
    struct cache_key k = key_of(host, path);
    struct cache_obj *o = NULL;
    enum lookup_result r = store_lookup(s, &k, NULL, false, 1, g, false, &o);
    if (r != LOOKUP_FOUND)
        return false;
    *soft = obj_soft_purged(o);
    obj_unref(o);
    return true;
}

static bool present(struct cache_store *s, const char *host, const char *path)
{
    bool soft;
    return find(s, host, path, &soft, NULL);
}

static struct cache_store *sample(void)
{
    struct cache_store *s = store_new(64 << 20, 4);
    put(s, "a.example", "/", "home");
    put(s, "a.example", "/static/app.js", "assets js");
    put(s, "b.example", "/static/app.js", "assets");
    put(s, "a.example", "/static/app.css", NULL);
    put(s, "a.example", "/p?q=1", "product-1 catalog");
    put(s, "a.example", "/staticx", NULL);
    return s;
}

START_TEST(purge_url_any_host)
{
    struct cache_store *s = sample();
    ck_assert_uint_eq(purge_apply(s, PURGE_URL, "/static/app.js", false), 2);
    ck_assert(!present(s, "a.example", "/static/app.js"));
    ck_assert(!present(s, "b.example", "/static/app.js"));
    ck_assert(present(s, "a.example", "/static/app.css"));
    ck_assert_uint_eq(purge_apply(s, PURGE_URL, "/p?q=1", false), 1);
    ck_assert_uint_eq(purge_apply(s, PURGE_URL, "/p", false), 0);
    store_free(s);
}
END_TEST

START_TEST(purge_absolute_url_one_host)
{
    struct cache_store *s = sample();
    ck_assert_uint_eq(purge_apply(s, PURGE_URL, "http://B.example/static/app.js", false), 1);
    ck_assert(present(s, "a.example", "/static/app.js"));
    ck_assert(!present(s, "b.example", "/static/app.js"));
    ck_assert_uint_eq(purge_apply(s, PURGE_URL, "http://a.example", false), 1);   /* "/" */
    ck_assert(!present(s, "a.example", "/"));
    ck_assert_uint_eq(purge_apply(s, PURGE_URL, "no-scheme", false), 0);
    store_free(s);
}
END_TEST

START_TEST(purge_prefix)
{
    struct cache_store *s = sample();
    ck_assert_uint_eq(purge_apply(s, PURGE_PREFIX, "/static/", false), 3);
    ck_assert(present(s, "a.example", "/staticx"));
    ck_assert(present(s, "a.example", "/"));
    store_free(s);
}
END_TEST

START_TEST(purge_tag)
{
    struct cache_store *s = sample();
    ck_assert_uint_eq(purge_apply(s, PURGE_TAG, "assets", false), 2);
    ck_assert_uint_eq(purge_apply(s, PURGE_TAG, "catalog", false), 1);
    ck_assert_uint_eq(purge_apply(s, PURGE_TAG, "asset", false), 0);
    ck_assert(present(s, "a.example", "/"));
    store_free(s);
}
END_TEST

START_TEST(purge_soft_marks_only)
{
    struct cache_store *s = sample();
    ck_assert_uint_eq(purge_apply(s, PURGE_PREFIX, "/static/", true), 3);
    bool soft = false;
    ck_assert(find(s, "a.example", "/static/app.js", &soft, NULL));
    ck_assert(soft);
    ck_assert(find(s, "a.example", "/", &soft, NULL));
    ck_assert(!soft);
    store_free(s);
}
END_TEST

START_TEST(purge_all)
{
    struct cache_store *s = sample();
    ck_assert_uint_eq(purge_apply(s, PURGE_ALL, NULL, true), 6);
    bool soft = false;
    ck_assert(find(s, "a.example", "/staticx", &soft, NULL));
    ck_assert(soft);
    ck_assert_uint_eq(purge_apply(s, PURGE_ALL, NULL, false), 6);
    ck_assert(!present(s, "a.example", "/"));
    struct store_stats st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.objects, 0);
    store_free(s);
}
END_TEST

/* Several purges in one batch: the same outcome as one by one, counts
 * per item, hard winning over soft for an object both reach. */
START_TEST(purge_batch)
{
    struct cache_store *s = sample();
    struct purge_item items[] = {
        { PURGE_URL, "/", false, 99 },
        { PURGE_PREFIX, "/static/", true, 99 },
        { PURGE_TAG, "js", false, 99 },             /* a.example/static/app.js, hard */
        { PURGE_TAG, "nothing", false, 99 },
        { PURGE_URL, "/p?q=1", true, 99 },
    };
    purge_apply_batch(s, items, FC_ARRAY_LEN(items));
    ck_assert_uint_eq(items[0].count, 1);
    ck_assert_uint_eq(items[1].count, 2);           /* app.js was removed already */
    ck_assert_uint_eq(items[2].count, 1);
    ck_assert_uint_eq(items[3].count, 0);
    ck_assert_uint_eq(items[4].count, 1);
    bool soft = false;
    ck_assert(!present(s, "a.example", "/"));
    ck_assert(!present(s, "a.example", "/static/app.js"));
    ck_assert(find(s, "b.example", "/static/app.js", &soft, NULL));
    ck_assert(soft);
    ck_assert(find(s, "a.example", "/static/app.css", &soft, NULL));
    ck_assert(soft);
    ck_assert(find(s, "a.example", "/p?q=1", &soft, NULL));
    ck_assert(soft);
    ck_assert(find(s, "a.example", "/staticx", &soft, NULL));
    ck_assert(!soft);
    /* only soft items: one walk, nothing removed */
    struct purge_item only_soft[] = { { PURGE_PREFIX, "/staticx", true, 0 } };
    purge_apply_batch(s, only_soft, 1);
    ck_assert_uint_eq(only_soft[0].count, 1);
    ck_assert(present(s, "a.example", "/staticx"));
    store_free(s);
}
END_TEST

/* ------------------------------------------------------ catching up */

static char dir[] = "/tmp/fc-check-purge-XXXXXX";

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

START_TEST(catching_up_lookup_marks_for_revalidation)
{
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct generation_backend be;
    char err[256];
    ck_assert_int_eq(generation_file_backend(dir, &be, err, sizeof err), 0);
    struct generations *g = generations_open(&be, NULL, 0, err, sizeof err);
    ck_assert_ptr_nonnull(g);
    struct cache_store *s = sample();

    bool soft = true;
    ck_assert(find(s, "a.example", "/", &soft, g));
    ck_assert(!soft);                       /* in touch: served as stored */

    generation_set_catching_up(g, true);
    ck_assert(find(s, "a.example", "/", &soft, g));
    ck_assert(soft);                        /* revalidate before serving */
    ck_assert(find(s, "a.example", "/", &soft, g));
    ck_assert(soft);                        /* kept, not dropped */

    generation_set_catching_up(g, false);
    ck_assert(find(s, "b.example", "/static/app.js", &soft, g));
    ck_assert(!soft);                       /* only what was looked up meanwhile */

    store_free(s);
    generations_close(g);
    nftw(dir, remove_one, 4, FTW_DEPTH | FTW_PHYS);
}
END_TEST

static Suite *purge_suite(void)
{
    Suite *s = suite_create("purge");
    TCase *tc = tcase_create("purge");
    tcase_add_test(tc, purge_url_any_host);
    tcase_add_test(tc, purge_absolute_url_one_host);
    tcase_add_test(tc, purge_prefix);
    tcase_add_test(tc, purge_tag);
    tcase_add_test(tc, purge_soft_marks_only);
    tcase_add_test(tc, purge_all);
    tcase_add_test(tc, purge_batch);
    tcase_add_test(tc, catching_up_lookup_marks_for_revalidation);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(purge_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
