/*
 * check_warn_once.c — "log once per URL" in bounded memory
 * (src/base/warn_once.c): the first offer of a hash says log, the next
 * ones do not; a hash pushed out of its slot says log again; many hashes
 * never grow anything (the struct is the memory); workers offering the
 * same hashes at once log each once between them.
 */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/base/warn_once.h"

START_TEST(once_then_quiet)
{
    struct warn_once w;
    memset(&w, 0, sizeof w);
    ck_assert(warn_once_first(&w, 0x1234567890abcdefULL));
    ck_assert(!warn_once_first(&w, 0x1234567890abcdefULL));
    ck_assert(!warn_once_first(&w, 0x1234567890abcdefULL));
    ck_assert(warn_once_first(&w, 0x1234567890abcdeeULL));
    ck_assert(!warn_once_first(&w, 0x1234567890abcdeeULL));
    ck_assert(!warn_once_first(&w, 0x1234567890abcdefULL));    /* another slot: still known */
}
END_TEST

START_TEST(evicted_reported_again)
{
    struct warn_once w;
    memset(&w, 0, sizeof w);
    /* Same low bits, same high half: the same slot. */
    uint64_t a = 5, b = 5 + WARN_ONCE_SLOTS;
    ck_assert(warn_once_first(&w, a));
    ck_assert(warn_once_first(&w, b));
    ck_assert(warn_once_first(&w, a));          /* pushed out by b: logged again */
    ck_assert(!warn_once_first(&w, a));
}
END_TEST

START_TEST(bounded)
{
    struct warn_once w;
    memset(&w, 0, sizeof w);
    ck_assert_uint_eq(sizeof w, WARN_ONCE_SLOTS * sizeof(uint64_t));
    unsigned quiet = 0;
    for (uint64_t h = 1; h <= 100000; h++)
        quiet += !warn_once_first(&w, h * 0x9e3779b97f4a7c15ULL);
    ck_assert_uint_eq(quiet, 0);                /* all distinct: each logged once */
    ck_assert(warn_once_first(&w, 0));          /* 0 is never remembered */
    ck_assert(warn_once_first(&w, 0));
}
END_TEST

/* WARN_ONCE_SLOTS hashes, one per slot: what every thread offers. */
static struct warn_once shared;
static _Atomic unsigned firsts;

static void *offer_all(void *arg)
{
    (void)arg;
    for (int round = 0; round < 50; round++)
        for (uint64_t i = 1; i <= WARN_ONCE_SLOTS; i++)
            if (warn_once_first(&shared, i == WARN_ONCE_SLOTS ? (uint64_t)WARN_ONCE_SLOTS << 40
                                                              : i))
                atomic_fetch_add(&firsts, 1);
    return NULL;
}

START_TEST(shared_by_threads)
{
    memset(&shared, 0, sizeof shared);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, offer_all, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    /* each hash has its own slot: logged once, whoever offered it first */
    ck_assert_uint_eq(atomic_load(&firsts), WARN_ONCE_SLOTS);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("warn_once");
    TCase *tc = tcase_create("warn_once");
    tcase_add_test(tc, once_then_quiet);
    tcase_add_test(tc, evicted_reported_again);
    tcase_add_test(tc, bounded);
    tcase_add_test(tc, shared_by_threads);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
