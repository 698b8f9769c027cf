/*
 * tmpdir.h — temporary directories for the Check suites that touch files.
 *
 * Each test case gets a base directory, made and removed in the parent
 * process (an unchecked fixture), so it goes even when a test fails in its
 * forked child; each test gets a fresh directory inside it (a checked
 * fixture):
 *
 *     tcase_add_unchecked_fixture(tc, tmp_base_make, tmp_base_remove);
 *     tcase_add_checked_fixture(tc, tmp_dir_make, NULL);
 */
#ifndef FRESHCACHE_TEST_TMPDIR_H
#define FRESHCACHE_TEST_TMPDIR_H

extern char tmp_base[64];   /* the test case's */
extern char tmp_dir[128];   /* the test's, inside tmp_base */

void tmp_base_make(void);
void tmp_base_remove(void);
void tmp_dir_make(void);

#endif
