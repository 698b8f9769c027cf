/*
 * check_generation.c — deploy generations (src/generation.c): the state-file
 * backend in a temporary directory, persistence and monotonicity across
 * reopen, per-policy numbers, atomic replacement of the state file, refused
 * bumps (unknown policy, failed save), epoch and layout, and concurrent bumps.
 */
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "freshcache/cache/generation.h"
#include "tmpdir.h"

/* The spec's three policies, in config order. */
static const char *const NAMES[] = { "hashed-assets", "html", "default" };
#define N_NAMES 3
#define HASHED 0
#define HTML 1
#define DEFAULT 2

/* ------------------------------------------------------------- helpers */

static void path_in_dir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", tmp_dir, name);
}

static bool exists_in_dir(const char *name)
{
    char p[1024];
    struct stat st;
    path_in_dir(p, sizeof p, name);
    return stat(p, &st) == 0;
}

/* The whole state file, NUL-terminated, in a static buffer. */
static const char *read_state(void)
{
    static char buf[8192];
    char p[1024];
    path_in_dir(p, sizeof p, "generation");
    FILE *f = fopen(p, "r");
    ck_assert_msg(f != NULL, "cannot open %s: %s", p, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_state(const char *text)
{
    char p[1024];
    path_in_dir(p, sizeof p, "generation");
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* Open the file backend on `tmp_dir` with `names`; fail the test on error. */
static struct generations *open_names(const char *const *names, size_t n)
{
    struct generation_backend be;
    char err[512] = "";
    ck_assert_msg(generation_file_backend(tmp_dir, &be, err, sizeof err) == 0, "backend: %s", err);
    struct generations *g = generations_open(&be, names, n, err, sizeof err);
    ck_assert_msg(g != NULL, "generations_open: %s", err);
    return g;
}

static struct generations *open_default(void)
{
    return open_names(NAMES, N_NAMES);
}

/* Try to open; NULL with the message in err. */
static struct generations *try_open(char *err, size_t errlen)
{
    struct generation_backend be;
    ck_assert_int_eq(generation_file_backend(tmp_dir, &be, err, errlen), 0);
    return generations_open(&be, NAMES, N_NAMES, err, errlen);
}

static void bump_ok(struct generations *g, const char *policy, uint64_t want_now,
                    uint64_t want_prev)
{
    uint64_t now = 0, prev = 0;
    char err[512] = "";
    int rc = generation_bump(g, policy, &now, &prev, err, sizeof err);
    ck_assert_msg(rc == 0, "bump %s failed: %s", policy ? policy : "(global)", err);
    ck_assert_uint_eq(now, want_now);
    ck_assert_uint_eq(prev, want_prev);
}

static void expect_numbers(struct generations *g, uint64_t global, uint64_t hashed,
                           uint64_t html, uint64_t dflt)
{
    ck_assert_uint_eq(generation_global(g), global);
    ck_assert_uint_eq(generation_policy(g, HASHED), hashed);
    ck_assert_uint_eq(generation_policy(g, HTML), html);
    ck_assert_uint_eq(generation_policy(g, DEFAULT), dflt);
}

/* ------------------------------------------------------------- fresh state */

START_TEST(fresh_dir_starts_at_one)
{
    struct generations *g = open_default();
    expect_numbers(g, 1, 1, 1, 1);
    /* an index past the configured policies is 0, never a real number */
    ck_assert_uint_eq(generation_policy(g, N_NAMES), 0);
    ck_assert_uint_eq(generation_policy(g, 1000), 0);
    /* opening writes nothing: the file appears with the first bump */
    ck_assert(!exists_in_dir("generation"));
    generations_close(g);
}
END_TEST

START_TEST(state_dir_created)
{
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/state", tmp_dir);
    struct generation_backend be;
    char err[512] = "";
    ck_assert_int_eq(generation_file_backend(sub, &be, err, sizeof err), 0);
    struct generations *g = generations_open(&be, NAMES, N_NAMES, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    bump_ok(g, NULL, 2, 1);
    generations_close(g);
    struct stat st;
    char file[1100];
    snprintf(file, sizeof file, "%s/generation", sub);
    ck_assert_int_eq(stat(file, &st), 0);
    unlink(file);
    rmdir(sub);
}
END_TEST

START_TEST(state_dir_parent_missing)
{
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/no/such/dir", tmp_dir);
    struct generation_backend be;
    char err[512] = "";
    ck_assert_int_eq(generation_file_backend(sub, &be, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "cannot create state_dir") != NULL, "err: %s", err);
    ck_assert_msg(strstr(err, sub) != NULL, "err does not name the dir: %s", err);
}
END_TEST

/* ------------------------------------------------------------- global bumps */

START_TEST(global_bump_persists)
{
    struct generations *g = open_default();
    bump_ok(g, NULL, 2, 1);
    expect_numbers(g, 2, 1, 1, 1);
    ck_assert_str_eq(read_state(), "generation 2\n");
    generations_close(g);

    g = open_default();
    expect_numbers(g, 2, 1, 1, 1);
    bump_ok(g, NULL, 3, 2);
    generations_close(g);

    g = open_default();
    ck_assert_uint_eq(generation_global(g), 3);
    generations_close(g);
}
END_TEST

/* --------------------------------------------------------- per-policy bumps */

START_TEST(policy_bump_persists_alone)
{
    struct generations *g = open_default();
    bump_ok(g, "html", 2, 1);
    expect_numbers(g, 1, 1, 2, 1);
    bump_ok(g, "html", 3, 2);
    expect_numbers(g, 1, 1, 3, 1);
    ck_assert_str_eq(read_state(), "generation 1\npolicy html 3\n");
    generations_close(g);

    g = open_default();
    expect_numbers(g, 1, 1, 3, 1);
    /* a global bump leaves the policy's own number alone */
    bump_ok(g, NULL, 2, 1);
    expect_numbers(g, 2, 1, 3, 1);
    bump_ok(g, "hashed-assets", 2, 1);
    expect_numbers(g, 2, 2, 3, 1);
    generations_close(g);

    g = open_default();
    expect_numbers(g, 2, 2, 3, 1);
    generations_close(g);
}
END_TEST

/* Numbers are kept by name: a reopen with the policies in another order (a
 * config edit) finds each policy's own number. */
START_TEST(policy_numbers_by_name_on_reopen)
{
    struct generations *g = open_default();
    bump_ok(g, "html", 2, 1);
    bump_ok(g, "default", 2, 1);
    bump_ok(g, "default", 3, 2);
    generations_close(g);

    static const char *const reordered[] = { "default", "api", "html" };
    g = open_names(reordered, 3);
    ck_assert_uint_eq(generation_policy(g, 0), 3);      /* default */
    ck_assert_uint_eq(generation_policy(g, 1), 1);      /* api: new */
    ck_assert_uint_eq(generation_policy(g, 2), 2);      /* html */
    generations_close(g);
}
END_TEST

/* A policy dropped from the config keeps its number in the state file, so
 * re-adding it later cannot take it back to an older number. */
START_TEST(removed_policy_number_kept)
{
    struct generations *g = open_default();
    bump_ok(g, "html", 2, 1);
    bump_ok(g, "html", 3, 2);
    generations_close(g);

    static const char *const without_html[] = { "hashed-assets", "default" };
    g = open_names(without_html, 2);
    bump_ok(g, NULL, 2, 1);
    bump_ok(g, "default", 2, 1);
    generations_close(g);
    ck_assert_str_eq(read_state(), "generation 2\npolicy html 3\npolicy default 2\n");

    g = open_default();
    expect_numbers(g, 2, 1, 3, 2);
    bump_ok(g, "html", 4, 3);
    generations_close(g);
}
END_TEST

START_TEST(unknown_policy_refused)
{
    struct generations *g = open_default();
    bump_ok(g, NULL, 2, 1);
    bump_ok(g, "html", 2, 1);
    const char *before = strdup(read_state());
    uint64_t epoch = generation_epoch(g);

    uint64_t now = 77, prev = 77;
    char err[512] = "";
    ck_assert_int_eq(generation_bump(g, "nosuch", &now, &prev, err, sizeof err), -1);
    ck_assert_str_eq(err, "unknown policy \"nosuch\"");
    ck_assert_uint_eq(now, 77);                         /* outputs untouched */
    ck_assert_uint_eq(prev, 77);
    expect_numbers(g, 2, 1, 2, 1);
    ck_assert_uint_eq(generation_epoch(g), epoch);
    ck_assert_str_eq(read_state(), before);
    /* a name only differing in case is another name */
    ck_assert_int_eq(generation_bump(g, "HTML", &now, &prev, err, sizeof err), -1);
    ck_assert_int_eq(generation_bump(g, "", &now, &prev, err, sizeof err), -1);
    expect_numbers(g, 2, 1, 2, 1);
    ck_assert_str_eq(read_state(), before);
    generations_close(g);
    free((void *)before);

    g = open_default();
    expect_numbers(g, 2, 1, 2, 1);
    generations_close(g);
}
END_TEST

/* ------------------------------------------------------------ monotonicity */

START_TEST(never_decreasing_across_reopen)
{
    uint64_t last_global = 0, last_html = 0;
    for (int round = 0; round < 5; round++) {
        struct generations *g = open_default();
        ck_assert_uint_ge(generation_global(g), last_global);
        ck_assert_uint_ge(generation_policy(g, HTML), last_html);
        ck_assert_uint_eq(generation_global(g), (uint64_t)(1 + 3 * round));
        ck_assert_uint_eq(generation_policy(g, HTML), (uint64_t)(1 + round));
        for (int i = 0; i < 3; i++) {
            uint64_t before = generation_global(g);
            bump_ok(g, NULL, before + 1, before);
            ck_assert_uint_gt(generation_global(g), before);
        }
        uint64_t h = generation_policy(g, HTML);
        bump_ok(g, "html", h + 1, h);
        last_global = generation_global(g);
        last_html = generation_policy(g, HTML);
        generations_close(g);
    }
    struct generations *g = open_default();
    expect_numbers(g, 16, 1, 6, 1);
    generations_close(g);
}
END_TEST

/* A state file from a long-running proxy: big numbers survive exactly. */
START_TEST(large_numbers_kept)
{
    write_state("generation 18446744073709551000\npolicy html 4294967297\n");
    struct generations *g = open_default();
    expect_numbers(g, UINT64_C(18446744073709551000), 1, UINT64_C(4294967297), 1);
    bump_ok(g, NULL, UINT64_C(18446744073709551001), UINT64_C(18446744073709551000));
    generations_close(g);
    ck_assert_str_eq(read_state(), "generation 18446744073709551001\npolicy html 4294967297\n");
}
END_TEST

/* An operator may annotate the file; comments and blank lines are skipped. */
START_TEST(comments_and_blank_lines)
{
    write_state("# written by freshcached\n\ngeneration 5\n\npolicy html 2\n");
    struct generations *g = open_default();
    expect_numbers(g, 5, 1, 2, 1);
    generations_close(g);
}
END_TEST

/* ------------------------------------------------------ atomic replacement */

START_TEST(state_file_replaced_atomically)
{
    struct generations *g = open_default();
    char p[1024];
    path_in_dir(p, sizeof p, "generation");
    for (int i = 0; i < 5; i++) {
        uint64_t before = generation_global(g);
        struct stat old_st = { 0 };
        bool had = stat(p, &old_st) == 0;
        bump_ok(g, NULL, before + 1, before);
        ck_assert(!exists_in_dir("generation.tmp"));
        struct stat new_st;
        ck_assert_int_eq(stat(p, &new_st), 0);
        /* a rename puts a new inode in place; an in-place rewrite would not */
        if (had)
            ck_assert_msg(new_st.st_ino != old_st.st_ino,
                          "state file rewritten in place (inode %ju kept)",
                          (uintmax_t)new_st.st_ino);
    }
    ck_assert_str_eq(read_state(), "generation 6\n");
    generations_close(g);

    /* the directory holds the state file and nothing else */
    DIR *d = opendir(tmp_dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        ck_assert_str_eq(e->d_name, "generation");
        n++;
    }
    closedir(d);
    ck_assert_int_eq(n, 1);
}
END_TEST

/* A leftover temp file from a crash mid-save is not the state: the numbers
 * come from the last renamed file, and the next save replaces the temp. */
START_TEST(leftover_tmp_ignored)
{
    struct generations *g = open_default();
    bump_ok(g, NULL, 2, 1);
    generations_close(g);
    char p[1024];
    path_in_dir(p, sizeof p, "generation.tmp");
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("generation 99\n", f);
    fclose(f);

    g = open_default();
    ck_assert_uint_eq(generation_global(g), 2);
    bump_ok(g, NULL, 3, 2);
    ck_assert(!exists_in_dir("generation.tmp"));
    ck_assert_str_eq(read_state(), "generation 3\n");
    generations_close(g);
}
END_TEST

static void expect_open_error(const char *content, const char *want_in_err)
{
    write_state(content);
    char err[512] = "";
    struct generations *g = try_open(err, sizeof err);
    ck_assert_msg(g == NULL, "corrupt state file %s accepted (global %" PRIu64 ")",
                  content, g ? generation_global(g) : 0);
    ck_assert_msg(strstr(err, want_in_err) != NULL, "error \"%s\" lacks \"%s\"", err,
                  want_in_err);
    char p[1024];
    path_in_dir(p, sizeof p, "generation");
    ck_assert_msg(strstr(err, p) != NULL, "error \"%s\" does not name %s", err, p);
}

START_TEST(corrupt_state_file_is_an_error)
{
    char want[1100];
    snprintf(want, sizeof want, "%s/generation:1: unreadable line", tmp_dir);
    expect_open_error("garbage\n", "unreadable line");
    {
        char err[512] = "";
        write_state("garbage\n");
        ck_assert_ptr_null(try_open(err, sizeof err));
        ck_assert_str_eq(err, want);
    }
    /* the line number points at the bad line */
    expect_open_error("generation 4\npolicy html\n", "generation:2: unreadable line");
    /* 0 is not a generation (they start at 1): not silently 1 */
    expect_open_error("generation 0\n", "generation:1: unreadable line");
    expect_open_error("policy html 0\n", "generation:1: unreadable line");
    /* the file is left as it was for the operator to look at */
    ck_assert_str_eq(read_state(), "policy html 0\n");
}
END_TEST

/* A state file that exists but cannot be read (here: a directory in its
 * place; in production an I/O error) must stop the open: reading it as
 * "no lines" would restart the generation at 1, going backwards. */
/* sscanf's %lu takes "-3" and wraps it to 2^64-3: a hand-edited or damaged
 * file must not turn into a huge generation (one bump from wrapping to 0). */
START_TEST(negative_generation_is_an_error)
{
    expect_open_error("generation -3\n", "generation:1: unreadable line");
}
END_TEST

START_TEST(negative_policy_generation_is_an_error)
{
    expect_open_error("generation 2\npolicy html -1\n", "generation:2: unreadable line");
}
END_TEST

START_TEST(unreadable_state_file_is_an_error)
{
    char p[1024];
    path_in_dir(p, sizeof p, "generation");
    ck_assert_int_eq(mkdir(p, 0700), 0);
    char err[512] = "";
    struct generations *g = try_open(err, sizeof err);
    ck_assert_msg(g == NULL, "an unreadable state file was read as generation %" PRIu64,
                  g ? generation_global(g) : 0);
    ck_assert_msg(strstr(err, p) != NULL, "error \"%s\" does not name %s", err, p);
    rmdir(p);
}
END_TEST

/* freshcached -t: the same verdict as an open, without creating anything. */
START_TEST(file_check_reads_without_creating)
{
    char err[512] = "";
    /* no file yet: fine, and still none afterwards */
    ck_assert_int_eq(generation_file_check(tmp_dir, err, sizeof err), 0);
    ck_assert(!exists_in_dir("generation"));
    /* a state_dir that does not exist: nothing to read, nothing created */
    char missing[1100];
    snprintf(missing, sizeof missing, "%s/not-yet", tmp_dir);
    ck_assert_int_eq(generation_file_check(missing, err, sizeof err), 0);
    struct stat st;
    ck_assert_int_eq(stat(missing, &st), -1);
    /* a good file */
    write_state("generation 7\npolicy html 3\n");
    ck_assert_int_eq(generation_file_check(tmp_dir, err, sizeof err), 0);
    /* a damaged one: the message an open would give */
    write_state("generation 4\npolicy html\n");
    ck_assert_int_eq(generation_file_check(tmp_dir, err, sizeof err), -1);
    char want[1100];
    snprintf(want, sizeof want, "%s/generation:2: unreadable line", tmp_dir);
    ck_assert_str_eq(err, want);
    ck_assert_str_eq(read_state(), "generation 4\npolicy html\n");
}
END_TEST

/* -------------------------------------------------------- failing backend */

struct fake_backend {
    struct gen_state st;            /* what load returns */
    int saves;                      /* save calls */
    int fail_from;                  /* saves numbered >= this fail (1-based), 0: never */
    struct gen_state saved;         /* last successful save */
    bool closed;
};

static int fake_load(void *ctx, struct gen_state *st, char *err, size_t errlen)
{
    struct fake_backend *fb = ctx;
    (void)err;
    (void)errlen;
    *st = fb->st;
    return 0;
}

static int fake_save(void *ctx, const struct gen_state *st, char *err, size_t errlen)
{
    struct fake_backend *fb = ctx;
    fb->saves++;
    if (fb->fail_from && fb->saves >= fb->fail_from) {
        snprintf(err, errlen, "disk full");
        return -1;
    }
    fb->saved = *st;
    return 0;
}

static void fake_close(void *ctx)
{
    struct fake_backend *fb = ctx;
    fb->closed = true;
}

static struct generations *open_fake(struct fake_backend *fb)
{
    struct generation_backend be = {
        .load = fake_load, .save = fake_save, .close = fake_close, .ctx = fb,
    };
    char err[256] = "";
    struct generations *g = generations_open(&be, NAMES, N_NAMES, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    return g;
}

START_TEST(save_failure_publishes_nothing)
{
    struct fake_backend fb = { .st = { .global = 7 }, .fail_from = 2 };
    struct generations *g = open_fake(&fb);
    expect_numbers(g, 7, 1, 1, 1);

    bump_ok(g, NULL, 8, 7);                 /* save 1 succeeds */
    ck_assert_uint_eq(fb.saved.global, 8);
    uint64_t epoch = generation_epoch(g);

    uint64_t now = 0, prev = 0;
    char err[256] = "";
    ck_assert_int_eq(generation_bump(g, NULL, &now, &prev, err, sizeof err), -1);
    ck_assert_str_eq(err, "disk full");
    ck_assert_uint_eq(now, 0);
    ck_assert_uint_eq(prev, 0);
    expect_numbers(g, 8, 1, 1, 1);
    ck_assert_uint_eq(generation_epoch(g), epoch);

    err[0] = '\0';
    ck_assert_int_eq(generation_bump(g, "html", &now, &prev, err, sizeof err), -1);
    ck_assert_str_eq(err, "disk full");
    expect_numbers(g, 8, 1, 1, 1);
    ck_assert_uint_eq(generation_epoch(g), epoch);
    ck_assert_int_eq(fb.saves, 3);

    /* once saving works again, the bump continues from the published number
     * (the failed attempt did not consume one) */
    fb.fail_from = 0;
    bump_ok(g, NULL, 9, 8);
    bump_ok(g, "html", 2, 1);
    ck_assert_uint_eq(fb.saved.global, 9);
    ck_assert_uint_eq(fb.saved.n_policies, 1);
    ck_assert_str_eq(fb.saved.policies[0].name, "html");
    ck_assert_uint_eq(fb.saved.policies[0].gen, 2);
    generations_close(g);
    ck_assert(fb.closed);
}
END_TEST

/* The first bump of a policy fails to save: the state does not remember a
 * half-added policy entry. */
START_TEST(save_failure_first_policy_bump)
{
    struct fake_backend fb = { .st = { .global = 1 }, .fail_from = 1 };
    struct generations *g = open_fake(&fb);
    uint64_t now = 0, prev = 0;
    char err[256];
    ck_assert_int_eq(generation_bump(g, "default", &now, &prev, err, sizeof err), -1);
    fb.fail_from = 0;
    bump_ok(g, NULL, 2, 1);
    ck_assert_uint_eq(fb.saved.n_policies, 0);
    expect_numbers(g, 2, 1, 1, 1);
    generations_close(g);
}
END_TEST

static int failing_load(void *ctx, struct gen_state *st, char *err, size_t errlen)
{
    (void)ctx;
    (void)st;
    snprintf(err, errlen, "backend unreachable");
    return -1;
}

START_TEST(load_failure_closes_backend)
{
    struct fake_backend fb = { 0 };
    struct generation_backend be = {
        .load = failing_load, .save = fake_save, .close = fake_close, .ctx = &fb,
    };
    char err[256] = "";
    ck_assert_ptr_null(generations_open(&be, NAMES, N_NAMES, err, sizeof err));
    ck_assert_str_eq(err, "backend unreachable");
    ck_assert(fb.closed);
}
END_TEST

START_TEST(too_many_policies_refused)
{
    static char names_buf[GEN_MAX_POLICIES + 1][16];
    const char *names[GEN_MAX_POLICIES + 1];
    for (int i = 0; i <= GEN_MAX_POLICIES; i++) {
        snprintf(names_buf[i], sizeof names_buf[i], "p%d", i);
        names[i] = names_buf[i];
    }
    struct fake_backend fb = { .st = { .global = 1 } };
    struct generation_backend be = {
        .load = fake_load, .save = fake_save, .close = fake_close, .ctx = &fb,
    };
    char err[256] = "";
    ck_assert_ptr_null(generations_open(&be, names, GEN_MAX_POLICIES + 1, err, sizeof err));
    ck_assert_str_eq(err, "at most 64 policies");
    ck_assert(fb.closed);

    /* exactly the maximum is fine, and each is bumpable */
    fb.closed = false;
    struct generations *g = generations_open(&be, names, GEN_MAX_POLICIES, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    bump_ok(g, "p63", 2, 1);
    ck_assert_uint_eq(generation_policy(g, 63), 2);
    generations_close(g);
}
END_TEST

/* --------------------------------------------------------- epoch, layout */

START_TEST(epoch_changes_on_every_bump)
{
    struct generations *g = open_default();
    uint64_t e = generation_epoch(g);
    const char *seq[] = { NULL, "html", "html", NULL, "hashed-assets", "default" };
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        uint64_t now, prev;
        char err[256];
        ck_assert_int_eq(generation_bump(g, seq[i], &now, &prev, err, sizeof err), 0);
        uint64_t e2 = generation_epoch(g);
        ck_assert_msg(e2 != e, "epoch unchanged by bump %zu (%s)", i, seq[i] ? seq[i] : "global");
        e = e2;
    }
    /* reads do not change it */
    (void)generation_global(g);
    (void)generation_policy(g, HTML);
    ck_assert_uint_eq(generation_epoch(g), e);
    generations_close(g);
}
END_TEST

START_TEST(reindex_keeps_numbers_by_name)
{
    struct generations *g = open_default();
    bump_ok(g, "html", 2, 1);
    bump_ok(g, "default", 2, 1);
    bump_ok(g, "default", 3, 2);
    bump_ok(g, NULL, 2, 1);
    uint64_t layout = generation_layout(g);
    uint64_t epoch = generation_epoch(g);

    static const char *const next[] = { "default", "api", "html" };
    generations_reindex(g, next, 3);
    ck_assert_uint_ne(generation_layout(g), layout);
    ck_assert_uint_ne(generation_epoch(g), epoch);
    ck_assert_uint_eq(generation_global(g), 2);       /* global untouched */
    ck_assert_uint_eq(generation_policy(g, 0), 3);    /* default */
    ck_assert_uint_eq(generation_policy(g, 1), 1);    /* api, new */
    ck_assert_uint_eq(generation_policy(g, 2), 2);    /* html */
    ck_assert_uint_eq(generation_policy(g, 3), 0);    /* past the end */

    /* bumps follow the new names and indexes */
    bump_ok(g, "api", 2, 1);
    ck_assert_uint_eq(generation_policy(g, 1), 2);
    bump_ok(g, "html", 3, 2);
    ck_assert_uint_eq(generation_policy(g, 2), 3);
    uint64_t now, prev;
    char err[256];
    ck_assert_int_eq(generation_bump(g, "hashed-assets", &now, &prev, err, sizeof err), -1);

    /* and every reindex is a new layout, even with the same names */
    layout = generation_layout(g);
    generations_reindex(g, next, 3);
    ck_assert_uint_ne(generation_layout(g), layout);
    ck_assert_uint_eq(generation_policy(g, 2), 3);
    generations_close(g);

    g = open_names(next, 3);
    ck_assert_uint_eq(generation_policy(g, 0), 3);
    ck_assert_uint_eq(generation_policy(g, 1), 2);
    ck_assert_uint_eq(generation_policy(g, 2), 3);
    generations_close(g);
}
END_TEST

/* GET /generation: the configured policies by name, in config order. */
START_TEST(snapshot_by_name)
{
    struct generations *g = open_default();
    bump_ok(g, "html", 2, 1);
    bump_ok(g, "html", 3, 2);
    bump_ok(g, NULL, 2, 1);
    struct gen_state st;
    generation_snapshot(g, &st);
    ck_assert_uint_eq(st.global, 2);
    ck_assert_uint_eq(st.n_policies, N_NAMES);
    for (size_t i = 0; i < N_NAMES; i++)
        ck_assert_str_eq(st.policies[i].name, NAMES[i]);
    ck_assert_uint_eq(st.policies[HASHED].gen, 1);
    ck_assert_uint_eq(st.policies[HTML].gen, 3);
    ck_assert_uint_eq(st.policies[DEFAULT].gen, 1);

    /* after a reload's reindex: the new list, numbers kept by name, and
     * not the names the state file still remembers */
    static const char *const next[] = { "html", "api" };
    generations_reindex(g, next, 2);
    generation_snapshot(g, &st);
    ck_assert_uint_eq(st.n_policies, 2);
    ck_assert_str_eq(st.policies[0].name, "html");
    ck_assert_uint_eq(st.policies[0].gen, 3);
    ck_assert_str_eq(st.policies[1].name, "api");
    ck_assert_uint_eq(st.policies[1].gen, 1);
    generations_close(g);
}
END_TEST

START_TEST(reindex_fewer_policies)
{
    struct generations *g = open_default();
    static const char *const one[] = { "html" };
    generations_reindex(g, one, 1);
    ck_assert_uint_eq(generation_policy(g, 0), 1);
    ck_assert_uint_eq(generation_policy(g, 1), 0);
    ck_assert_uint_eq(generation_policy(g, 2), 0);
    uint64_t now, prev;
    char err[256];
    ck_assert_int_eq(generation_bump(g, "default", &now, &prev, err, sizeof err), -1);
    bump_ok(g, "html", 2, 1);
    generations_close(g);
}
END_TEST

/* -------------------------------------------------------------- threads */

#define THREADS 4
#define BUMPS 1000

struct bumper {
    struct generations *g;
    const char *policy;
    int failures;
    uint64_t max_seen;
    bool monotonic;
};

static void *bump_many(void *arg)
{
    struct bumper *b = arg;
    b->monotonic = true;
    uint64_t last = 0;
    for (int i = 0; i < BUMPS; i++) {
        uint64_t now = 0, prev = 0;
        char err[256];
        if (generation_bump(b->g, b->policy, &now, &prev, err, sizeof err) != 0 ||
            now != prev + 1) {
            b->failures++;
            continue;
        }
        /* each thread sees its own bumps in increasing order */
        if (now <= last)
            b->monotonic = false;
        last = now;
        /* the published number is never behind an acknowledged bump */
        uint64_t pub = b->policy ? generation_policy(b->g, HTML) : generation_global(b->g);
        if (pub < now)
            b->monotonic = false;
    }
    b->max_seen = last;
    return NULL;
}

START_TEST(concurrent_bumps)
{
    struct generations *g = open_default();
    uint64_t epoch = generation_epoch(g);
    pthread_t th[THREADS];
    struct bumper b[THREADS];
    for (int i = 0; i < THREADS; i++) {
        b[i] = (struct bumper){ .g = g };
        ck_assert_int_eq(pthread_create(&th[i], NULL, bump_many, &b[i]), 0);
    }
    uint64_t max = 0;
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(b[i].failures, 0);
        ck_assert(b[i].monotonic);
        if (b[i].max_seen > max)
            max = b[i].max_seen;
    }
    ck_assert_uint_eq(generation_global(g), 1 + THREADS * BUMPS);
    ck_assert_uint_eq(max, 1 + THREADS * BUMPS);
    ck_assert_uint_eq(generation_epoch(g) - epoch, THREADS * BUMPS);
    expect_numbers(g, 4001, 1, 1, 1);
    ck_assert(!exists_in_dir("generation.tmp"));
    generations_close(g);
    ck_assert_str_eq(read_state(), "generation 4001\n");

    g = open_default();
    ck_assert_uint_eq(generation_global(g), 4001);
    generations_close(g);
}
END_TEST

/* Global and per-policy bumps racing: each count comes out exact. */
START_TEST(concurrent_mixed_bumps)
{
    struct generations *g = open_default();
    pthread_t th[THREADS];
    struct bumper b[THREADS];
    for (int i = 0; i < THREADS; i++) {
        b[i] = (struct bumper){ .g = g, .policy = (i % 2) ? "html" : NULL };
        ck_assert_int_eq(pthread_create(&th[i], NULL, bump_many, &b[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(b[i].failures, 0);
        ck_assert(b[i].monotonic);
    }
    expect_numbers(g, 2001, 1, 2001, 1);
    generations_close(g);
    ck_assert_str_eq(read_state(), "generation 2001\npolicy html 2001\n");
}
END_TEST

/* ------------------------------------------------------- last change time */

static int64_t wall_ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Never bumped: 0.  Each bump, global or per policy, stamps the wall clock,
 * and a reopen finds the stamp again in the state file's mtime. */
START_TEST(changed_time_follows_bumps)
{
    struct generations *g = open_default();
    ck_assert_int_eq(generation_changed_ms(g), 0);

    int64_t before = wall_ms_now();
    bump_ok(g, NULL, 2, 1);
    int64_t t1 = generation_changed_ms(g);
    ck_assert_int_ge(t1, before);
    ck_assert_int_le(t1, wall_ms_now());

    /* a read or a reindex is not a change */
    (void)generation_global(g);
    generations_reindex(g, NAMES, N_NAMES);
    ck_assert_int_eq(generation_changed_ms(g), t1);

    usleep(20 * 1000);
    bump_ok(g, "html", 2, 1);
    int64_t t2 = generation_changed_ms(g);
    ck_assert_int_gt(t2, t1);
    generations_close(g);

    /* the mtime is kept to the second at least, whatever the file system */
    g = open_default();
    ck_assert_int_le(generation_changed_ms(g), wall_ms_now());
    ck_assert_int_ge(generation_changed_ms(g), t2 / 1000 * 1000 - 1000);
    generations_close(g);
}
END_TEST

/* A failed save changes nothing, the time included. */
START_TEST(changed_time_not_moved_by_failed_save)
{
    struct fake_backend fb = { .st = { .global = 3, .changed_ms = 1700000000123 },
                               .fail_from = 1 };
    struct generations *g = open_fake(&fb);
    ck_assert_int_eq(generation_changed_ms(g), 1700000000123);
    uint64_t now, prev;
    char err[256];
    ck_assert_int_eq(generation_bump(g, NULL, &now, &prev, err, sizeof err), -1);
    ck_assert_int_eq(generation_changed_ms(g), 1700000000123);
    fb.fail_from = 0;
    bump_ok(g, NULL, 4, 3);
    ck_assert_int_gt(generation_changed_ms(g), 1700000000123);
    ck_assert_int_eq(fb.saved.changed_ms, generation_changed_ms(g));
    generations_close(g);
}
END_TEST

/* ------------------------------------------------------------------ suite */


/* ---------------------------------------------------------- cluster raise */

static void raise_ok(struct generations *g, const char *policy, uint64_t value, bool want_raised)
{
    bool raised = !want_raised;
    char err[256] = "";
    ck_assert_msg(generation_raise(g, policy, value, &raised, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(raised, want_raised);
}

/* A number decided elsewhere only ever moves a generation up, persists, and
 * changes the epoch (a placeholder from before must not gather requests). */
START_TEST(raise_only_up_and_persists)
{
    struct generations *g = open_default();
    uint64_t epoch = generation_epoch(g);
    raise_ok(g, NULL, 7, true);
    expect_numbers(g, 7, 1, 1, 1);
    ck_assert_uint_gt(generation_epoch(g), epoch);
    epoch = generation_epoch(g);
    raise_ok(g, NULL, 5, false);            /* lower: nothing */
    raise_ok(g, NULL, 7, false);            /* equal: nothing */
    ck_assert_uint_eq(generation_epoch(g), epoch);
    raise_ok(g, "html", 4, true);
    expect_numbers(g, 7, 1, 4, 1);
    ck_assert_str_eq(read_state(), "generation 7\npolicy html 4\n");
    /* a bump after a raise continues from the raised number */
    bump_ok(g, NULL, 8, 7);
    generations_close(g);
    g = open_default();
    expect_numbers(g, 8, 1, 4, 1);
    generations_close(g);
}
END_TEST

/* A policy this node does not have (another node's config) is kept in the
 * state, and a reload that adds it starts from that number. */
START_TEST(raise_unknown_policy_recorded)
{
    struct generations *g = open_default();
    raise_ok(g, "api", 3, true);
    expect_numbers(g, 1, 1, 1, 1);
    struct gen_state st;
    generation_saved_state(g, &st);
    ck_assert_uint_eq(st.global, 1);
    ck_assert_uint_eq(st.n_policies, 1);
    ck_assert_str_eq(st.policies[0].name, "api");
    ck_assert_uint_eq(st.policies[0].gen, 3);
    static const char *const more[] = { "api", "default" };
    generations_reindex(g, more, 2);
    ck_assert_uint_eq(generation_policy(g, 0), 3);
    ck_assert_uint_eq(generation_policy(g, 1), 1);
    generations_close(g);
}
END_TEST

/* Persisting fails: the number is published all the same, and the error
 * reported (serving the old release would be worse). */
START_TEST(raise_save_failure_still_publishes)
{
    struct fake_backend fb = { .st = { .global = 3 }, .fail_from = 1 };
    struct generations *g = open_fake(&fb);
    bool raised = false;
    char err[256] = "";
    ck_assert_int_eq(generation_raise(g, NULL, 9, &raised, err, sizeof err), -1);
    ck_assert(raised);
    ck_assert_str_eq(err, "disk full");
    expect_numbers(g, 9, 1, 1, 1);
    fb.fail_from = 0;
    bump_ok(g, NULL, 10, 9);
    ck_assert_uint_eq(fb.saved.global, 10);
    generations_close(g);
}
END_TEST

START_TEST(raise_state_full)
{
    struct fake_backend fb = { .st = { .global = 1, .n_policies = GEN_MAX_POLICIES } };
    for (size_t i = 0; i < GEN_MAX_POLICIES; i++) {
        snprintf(fb.st.policies[i].name, GEN_POLICY_NAME_MAX, "p%zu", i);
        fb.st.policies[i].gen = 1;
    }
    struct generations *g = open_fake(&fb);
    bool raised = true;
    char err[256] = "";
    ck_assert_int_eq(generation_raise(g, "one-too-many", 2, &raised, err, sizeof err), -1);
    ck_assert(!raised);
    ck_assert_str_eq(err, "too many policies in the state");
    raise_ok(g, "p3", 2, true);
    generations_close(g);
}
END_TEST

START_TEST(catching_up_flag)
{
    struct generations *g = open_default();
    ck_assert(!generation_catching_up(g));
    generation_set_catching_up(g, true);
    ck_assert(generation_catching_up(g));
    generation_set_catching_up(g, false);
    ck_assert(!generation_catching_up(g));
    generations_close(g);
}
END_TEST

static Suite *generation_suite(void)
{
    Suite *s = suite_create("generation");
    TCase *tc;

    tc = tcase_create("file");
    tcase_add_unchecked_fixture(tc, tmp_base_make, tmp_base_remove);
    tcase_add_checked_fixture(tc, tmp_dir_make, NULL);
    tcase_add_test(tc, fresh_dir_starts_at_one);
    tcase_add_test(tc, state_dir_created);
    tcase_add_test(tc, state_dir_parent_missing);
    tcase_add_test(tc, global_bump_persists);
    tcase_add_test(tc, policy_bump_persists_alone);
    tcase_add_test(tc, policy_numbers_by_name_on_reopen);
    tcase_add_test(tc, removed_policy_number_kept);
    tcase_add_test(tc, unknown_policy_refused);
    tcase_add_test(tc, never_decreasing_across_reopen);
    tcase_add_test(tc, large_numbers_kept);
    tcase_add_test(tc, comments_and_blank_lines);
    tcase_add_test(tc, state_file_replaced_atomically);
    tcase_add_test(tc, leftover_tmp_ignored);
    tcase_add_test(tc, corrupt_state_file_is_an_error);
    tcase_add_test(tc, negative_generation_is_an_error);
    tcase_add_test(tc, negative_policy_generation_is_an_error);
    tcase_add_test(tc, unreadable_state_file_is_an_error);
    tcase_add_test(tc, file_check_reads_without_creating);
    suite_add_tcase(s, tc);

    tc = tcase_create("backend");
    tcase_add_test(tc, save_failure_publishes_nothing);
    tcase_add_test(tc, save_failure_first_policy_bump);
    tcase_add_test(tc, load_failure_closes_backend);
    tcase_add_test(tc, too_many_policies_refused);
    tcase_add_test(tc, changed_time_not_moved_by_failed_save);
    suite_add_tcase(s, tc);

    tc = tcase_create("epoch");
    tcase_add_unchecked_fixture(tc, tmp_base_make, tmp_base_remove);
    tcase_add_checked_fixture(tc, tmp_dir_make, NULL);
    tcase_add_test(tc, epoch_changes_on_every_bump);
    tcase_add_test(tc, reindex_keeps_numbers_by_name);
    tcase_add_test(tc, snapshot_by_name);
    tcase_add_test(tc, reindex_fewer_policies);
    tcase_add_test(tc, changed_time_follows_bumps);
    suite_add_tcase(s, tc);

    tc = tcase_create("raise");
    tcase_add_unchecked_fixture(tc, tmp_base_make, tmp_base_remove);
    tcase_add_checked_fixture(tc, tmp_dir_make, NULL);
    tcase_add_test(tc, raise_only_up_and_persists);
    tcase_add_test(tc, raise_unknown_policy_recorded);
    tcase_add_test(tc, raise_save_failure_still_publishes);
    tcase_add_test(tc, raise_state_full);
    tcase_add_test(tc, catching_up_flag);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_unchecked_fixture(tc, tmp_base_make, tmp_base_remove);
    tcase_add_checked_fixture(tc, tmp_dir_make, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, concurrent_bumps);
    tcase_add_test(tc, concurrent_mixed_bumps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(generation_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
