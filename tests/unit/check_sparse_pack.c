/*
 * check_sparse_pack.c — words that differ from a reference, packed and
 * restored (src/base/sparse_pack.c): a round trip restores every word,
 * against zeros and against a reference, whose pointers into itself are
 * expected moved with the region; a region equal to its reference
 * packs to one word; the size said is the size written and read; the
 * restore writes no zero word, so a given-back page it leaves zero stays
 * given back (mincore).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "freshcache/base/sparse_pack.h"

#define WORDS 500       /* an odd bitmap: 7 full uint64s and part of an 8th */

static size_t page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Pack `src` against `ref`, restore into zeros, compare. */
static size_t round_trip(const uint64_t *src, const struct sparse_ref *ref, size_t words)
{
    size_t len = sparse_pack_size(src, ref, words);
    uint64_t *packed = malloc(len);
    ck_assert_ptr_nonnull(packed);
    ck_assert_uint_eq(sparse_pack(packed, src, ref, words), len);
    uint64_t *dst = calloc(words, sizeof *dst);
    ck_assert_uint_eq(sparse_unpack(dst, ref, words, packed), len);
    ck_assert_mem_eq(dst, src, words * sizeof *src);
    free(dst);
    free(packed);
    return len;
}

START_TEST(round_trips)
{
    uint64_t src[WORDS] = { 0 }, ref[WORDS] = { 0 };
    /* All zeros: the count alone. */
    ck_assert_uint_eq(round_trip(src, NULL, WORDS), 8);
    /* A few words, the first and the last among them. */
    src[0] = 1;
    src[63] = UINT64_MAX;
    src[64] = 0x8000000000000000u;
    src[WORDS - 1] = 42;
    ck_assert_uint_eq(round_trip(src, NULL, WORDS), 8 + 8 * 8 + 4 * 8);
    /* Against a reference: only what differs, including a word the
     * reference has and the region does not (zero). */
    struct sparse_ref r = { .words = ref };
    for (size_t i = 0; i < WORDS; i++)
        ref[i] = src[i] = 0x1000 + i;
    ck_assert_uint_eq(round_trip(src, &r, WORDS), 8);
    src[10] = 0;
    src[499] = 7;
    ck_assert_uint_eq(round_trip(src, &r, WORDS), 8 + 8 * 8 + 2 * 8);
    /* Every word differs: the bitmap costs an eighth more than a copy. */
    for (size_t i = 0; i < WORDS; i++)
        src[i] = ~ref[i];
    ck_assert_uint_eq(round_trip(src, &r, WORDS), 8 + 8 * 8 + WORDS * 8);
    /* A region that holds pointers into itself, against a copy taken
     * where it was: its pointers moved with it and are expected so; a
     * pointer elsewhere, and one just past the range, are not. */
    static uint64_t at_a[WORDS], at_b[WORDS];
    uintptr_t pa = (uintptr_t)at_a, pb = (uintptr_t)at_b;
    at_a[0] = pa + 16;
    at_a[1] = pa + 8 * WORDS - 8;
    at_a[2] = 0x7777;
    at_a[3] = pa + 8 * WORDS;
    memcpy(ref, at_a, sizeof at_a);
    at_b[0] = pb + 16;
    at_b[1] = pb + 8 * WORDS - 8;
    at_b[2] = 0x7777;
    at_b[3] = pa + 8 * WORDS;
    struct sparse_ref moved = { .words = ref, .lo = pa, .hi = pa + 8 * WORDS, .delta = pb - pa };
    ck_assert_uint_eq(round_trip(at_b, &moved, WORDS), 8);
    at_b[1] = pb;        /* a pointer into itself, but not the reference's */
    ck_assert_uint_eq(round_trip(at_b, &moved, WORDS), 8 + 8 * 8 + 8);
    /* Packed ones follow each other: each unpack says where the next is. */
    uint64_t a[3] = { 0, 5, 0 }, b[70] = { 0 };
    b[69] = 9;
    size_t la = sparse_pack_size(a, NULL, 3), lb = sparse_pack_size(b, NULL, 70);
    uint64_t *packed = malloc(la + lb);
    ck_assert_uint_eq(sparse_pack(packed, a, NULL, 3), la);
    ck_assert_uint_eq(sparse_pack((char *)packed + la, b, NULL, 70), lb);
    uint64_t a2[3] = { 0 }, b2[70] = { 0 };
    size_t used = sparse_unpack(a2, NULL, 3, packed);
    ck_assert_uint_eq(used, la);
    ck_assert_uint_eq(sparse_unpack(b2, NULL, 70, (char *)packed + used), lb);
    ck_assert_mem_eq(a2, a, sizeof a);
    ck_assert_mem_eq(b2, b, sizeof b);
    free(packed);
}
END_TEST

static size_t resident(void *p, size_t pages)
{
    unsigned char vec[8];
    ck_assert_int_eq(mincore(p, pages * page(), vec), 0);
    size_t n = 0;
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n;
}

START_TEST(restore_leaves_zero_pages_alone)
{
    size_t pg = page(), words = 3 * pg / 8;
    uint64_t *region = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    ck_assert_ptr_ne(region, MAP_FAILED);
    memset(region, 0, 3 * pg);
    region[pg / 8 + 3] = 77;                        /* data in the middle page only */
    size_t len = sparse_pack_size(region, NULL, words);
    uint64_t *packed = malloc(len);
    sparse_pack(packed, region, NULL, words);
    ck_assert_int_eq(madvise(region, 3 * pg, MADV_DONTNEED), 0);
    ck_assert_uint_eq(resident(region, 3), 0);
    sparse_unpack(region, NULL, words, packed);
    ck_assert_uint_eq(resident(region, 3), 1);      /* the middle page, written */
    ck_assert_uint_eq(region[pg / 8 + 3], 77);
    free(packed);
    munmap(region, 3 * pg);
}
END_TEST

static Suite *sparse_pack_suite(void)
{
    Suite *s = suite_create("sparse_pack");
    TCase *t = tcase_create("pack");
    tcase_add_test(t, round_trips);
    tcase_add_test(t, restore_leaves_zero_pages_alone);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sparse_pack_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
