/*
 * check_lockfile.c — src/base/lockfile.c: one holder at a time, the
 * holder's pid named to the next, the lock gone with its holder (however
 * it exits), and the error paths.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "freshcache/base/lockfile.h"
#include "tmpdir.h"

static char path[192];

static void setup(void)
{
    tmp_dir_make();
    snprintf(path, sizeof path, "%s/freshcached.lock", tmp_dir);
}

static const char *contents(void)
{
    static char buf[64];
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* In a child process: try to take the lock; exit 0 taken, 1 held by
 * `want_holder`, 2 anything else. */
static int try_in_child(pid_t want_holder)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        pid_t holder = -1;
        char err[1024];
        int fd = lockfile_acquire(path, &holder, err, sizeof err);
        if (fd >= 0)
            _exit(0);
        _exit(errno == EWOULDBLOCK && holder == want_holder && strstr(err, path) ? 1 : 2);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Take the lock in this process; it must work, and leave our pid alone
 * in the file.  The descriptor. */
static int take_lock(void)
{
    pid_t holder;
    char err[1024] = "";
    int fd = lockfile_acquire(path, &holder, err, sizeof err);
    ck_assert_msg(fd >= 0, "%s", err);
    char want[32];
    snprintf(want, sizeof want, "%ld\n", (long)getpid());
    ck_assert_str_eq(contents(), want);
    return fd;
}

START_TEST(one_holder_named)
{
    int fd = take_lock();
    /* another process is refused and told who holds it */
    ck_assert_int_eq(try_in_child(getpid()), 1);
    /* released: the next one takes it (and writes its own pid) */
    lockfile_release(fd);
    ck_assert_int_eq(try_in_child(0), 0);
    lockfile_release(-1);       /* nothing to release: harmless */
}
END_TEST

/* A holder that dies without cleaning up leaves the file and its pid, but
 * no lock: the kernel drops a flock with its last descriptor. */
START_TEST(dead_holder_does_not_block)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        pid_t h;
        char err[1024];
        if (lockfile_acquire(path, &h, err, sizeof err) < 0)
            _exit(2);
        kill(getpid(), SIGKILL);
        _exit(3);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));
    char was[32];
    snprintf(was, sizeof was, "%ld\n", (long)pid);
    ck_assert_str_eq(contents(), was);
    /* ours now, and nothing of the old pid is left (it may be longer) */
    lockfile_release(take_lock());
}
END_TEST

/* A holder whose pid cannot be read (not written yet, or a damaged file)
 * is still a holder: refused, with holder 0. */
START_TEST(unreadable_pid_still_refused)
{
    int fd = take_lock();
    ck_assert_int_eq(ftruncate(fd, 0), 0);
    ck_assert_int_eq(try_in_child(0), 1);
    ck_assert_int_eq(pwrite(fd, "12ab\n", 5, 0), 5);
    ck_assert_int_eq(try_in_child(0), 1);
    lockfile_release(fd);
}
END_TEST

START_TEST(error_paths)
{
    pid_t holder = 7;
    char err[1024] = "";
    char bad[600];
    /* a directory that does not exist */
    snprintf(bad, sizeof bad, "%s/no-such-dir/freshcached.lock", tmp_dir);
    errno = 0;
    ck_assert_int_eq(lockfile_acquire(bad, &holder, err, sizeof err), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(holder, 0);
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
    ck_assert_ptr_nonnull(strstr(err, bad));
    /* a symlink in its place is not followed */
    ck_assert_int_eq(symlink("/etc/passwd", path), 0);
    ck_assert_int_eq(lockfile_acquire(path, &holder, err, sizeof err), -1);
    ck_assert_int_ne(errno, EWOULDBLOCK);
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
    unlink(path);
    /* a directory in its place */
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(lockfile_acquire(path, &holder, err, sizeof err), -1);
    ck_assert_int_ne(errno, EWOULDBLOCK);
    rmdir(path);
}
END_TEST

static Suite *lockfile_suite(void)
{
    Suite *s = suite_create("lockfile");
    TCase *tc = tcase_create("lock");
    tcase_add_unchecked_fixture(tc, tmp_base_make, tmp_base_remove);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, one_holder_named);
    tcase_add_test(tc, dead_holder_does_not_block);
    tcase_add_test(tc, unreadable_pid_still_refused);
    tcase_add_test(tc, error_paths);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lockfile_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
