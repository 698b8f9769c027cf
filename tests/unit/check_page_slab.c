/*
 * check_page_slab.c — page-aligned blocks given back while allocated
 * (src/base/page_slab.c): blocks are whole zeroed pages; a discarded
 * block reads zeros and costs no memory until written; only all-zero
 * pages go with discard_zeros, the others keep their bytes; a freed
 * block is handed out again, zeroed, before the range grows; sizes past
 * the largest class and a full range say NULL (the caller's malloc); no
 * pointer but a block is "owned".
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freshcache/base/page_slab.h"

static size_t page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

START_TEST(blocks_are_zeroed_pages)
{
    struct page_slab *s = page_slab_new(64 * page());
    ck_assert_ptr_nonnull(s);
    unsigned char *a = page_slab_alloc(s, 1);
    unsigned char *b = page_slab_alloc(s, 16394);   /* nghttp2's frame buffer */
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq((uintptr_t)a % page(), 0);
    ck_assert_uint_eq((uintptr_t)b % page(), 0);
    ck_assert_uint_eq(page_slab_block_size(s, a), page());
    ck_assert_uint_eq(page_slab_block_size(s, b), 5 * page());
    ck_assert_uint_eq(page_slab_resident_pages(s, b), 0);  /* untouched: free */
    ck_assert(all_zero(b, 5 * page()));
    ck_assert_uint_eq(page_slab_live(s), 2);
    page_slab_free(s, a);
    page_slab_free(s, b);
    ck_assert_uint_eq(page_slab_live(s), 0);
    page_slab_destroy(s);
}
END_TEST

START_TEST(discard_gives_back_and_reads_zero)
{
    struct page_slab *s = page_slab_new(64 * page());
    unsigned char *b = page_slab_alloc(s, 4 * page());
    memset(b, 0xa5, 4 * page());
    ck_assert_uint_eq(page_slab_resident_pages(s, b), 4);
    ck_assert_uint_eq(page_slab_discard(s, b), 4 * page());
    ck_assert_uint_eq(page_slab_resident_pages(s, b), 0);
    ck_assert(all_zero(b, 4 * page()));
    /* Still allocated: written again, it holds what was written. */
    b[7] = 1;
    ck_assert_uint_eq(b[7], 1);
    ck_assert_uint_eq(page_slab_live(s), 1);
    page_slab_free(s, b);
    page_slab_destroy(s);
}
END_TEST

START_TEST(discard_zeros_keeps_data)
{
    struct page_slab *s = page_slab_new(64 * page());
    unsigned char *b = page_slab_alloc(s, 4 * page());
    memset(b, 0, 4 * page());                       /* all four resident, all zero */
    b[page() + 100] = 42;                           /* page 1 holds data */
    b[3 * page()] = 7;                              /* and page 3 */
    ck_assert_uint_eq(page_slab_resident_pages(s, b), 4);
    ck_assert_uint_eq(page_slab_discard_zeros(s, b), 2 * page());
    ck_assert_uint_eq(page_slab_resident_pages(s, b), 2);
    ck_assert_uint_eq(b[page() + 100], 42);
    ck_assert_uint_eq(b[3 * page()], 7);
    ck_assert(all_zero(b, page()));
    b[page() + 100] = 0;
    b[3 * page()] = 0;
    ck_assert_uint_eq(page_slab_discard_zeros(s, b), 4 * page());
    ck_assert_uint_eq(page_slab_resident_pages(s, b), 0);
    page_slab_free(s, b);
    page_slab_destroy(s);
}
END_TEST

START_TEST(freed_block_reused_zeroed)
{
    struct page_slab *s = page_slab_new(64 * page());
    unsigned char *a = page_slab_alloc(s, 2 * page());
    unsigned char *b = page_slab_alloc(s, 2 * page());
    memset(a, 0xff, 2 * page());
    page_slab_free(s, a);
    ck_assert_uint_eq(page_slab_resident_pages(s, b), 0);
    /* A one-page block does not take the two-page hole... */
    unsigned char *c = page_slab_alloc(s, page());
    ck_assert_ptr_ne(c, a);
    /* ...a two-page one does, zeroed. */
    unsigned char *d = page_slab_alloc(s, 2 * page() - 5);
    ck_assert_ptr_eq(d, a);
    ck_assert_uint_eq(page_slab_resident_pages(s, d), 0);
    ck_assert(all_zero(d, 2 * page()));
    page_slab_free(s, b);
    page_slab_free(s, c);
    page_slab_free(s, d);
    page_slab_destroy(s);
}
END_TEST

START_TEST(limits_say_null)
{
    struct page_slab *s = page_slab_new(8 * page());
    ck_assert_ptr_null(page_slab_alloc(s, 0));
    ck_assert_ptr_null(page_slab_alloc(s, PAGE_SLAB_MAX_PAGES * page() + 1));
    void *a = page_slab_alloc(s, 5 * page());
    void *b = page_slab_alloc(s, 3 * page());
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_null(page_slab_alloc(s, 1));      /* full */
    page_slab_free(s, b);
    ck_assert_ptr_null(page_slab_alloc(s, 4 * page()));    /* no 4-page hole */
    void *c = page_slab_alloc(s, 3 * page());
    ck_assert_ptr_eq(c, b);
    page_slab_free(s, a);
    page_slab_free(s, c);
    page_slab_destroy(s);
}
END_TEST

START_TEST(owns_only_blocks)
{
    struct page_slab *s = page_slab_new(8 * page());
    void *m = malloc(64);
    void *a = page_slab_alloc(s, 10);
    ck_assert(page_slab_owns(s, a));
    ck_assert(!page_slab_owns(s, m));
    ck_assert(!page_slab_owns(s, NULL));
    ck_assert(!page_slab_owns(s, (char *)a + 8 * page()));     /* past the range */
    free(m);
    page_slab_free(s, a);
    page_slab_destroy(s);
}
END_TEST

static Suite *page_slab_suite(void)
{
    Suite *s = suite_create("page_slab");
    TCase *t = tcase_create("blocks");
    tcase_add_test(t, blocks_are_zeroed_pages);
    tcase_add_test(t, discard_gives_back_and_reads_zero);
    tcase_add_test(t, discard_zeros_keeps_data);
    tcase_add_test(t, freed_block_reused_zeroed);
    tcase_add_test(t, limits_say_null);
    tcase_add_test(t, owns_only_blocks);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(page_slab_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
