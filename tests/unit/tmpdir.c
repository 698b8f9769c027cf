/*
 * tmpdir.c — temporary directories for the Check suites.  See tmpdir.h.
 */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmpdir.h"

char tmp_base[64];
char tmp_dir[128];

void tmp_base_make(void)
{
    /* tmpfs when there is one: the generation suite saves its state file
     * (fsync, rename, fsync) thousands of times, a minute on a slow disk
     * and nothing the tests could observe. */
    snprintf(tmp_base, sizeof tmp_base, "/dev/shm/fc-check-XXXXXX");
    if (mkdtemp(tmp_base) != NULL)
        return;
    snprintf(tmp_base, sizeof tmp_base, "/tmp/fc-check-XXXXXX");
    if (mkdtemp(tmp_base) == NULL) {
        perror("mkdtemp");
        exit(EXIT_FAILURE);
    }
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void tmp_base_remove(void)
{
    nftw(tmp_base, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

void tmp_dir_make(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "%s/t-XXXXXX", tmp_base);
    ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
}
