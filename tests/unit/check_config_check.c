/*
 * check_config_check.c — src/config/config_check.c: settings this version
 * cannot serve, directories a start needs (in a temporary directory), and
 * which changes a reload cannot apply; every problem at its position.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "freshcache/base/assert.h"
#include "freshcache/config/config.h"
#include "freshcache/config/config_check.h"
#include "tmpdir.h"

#define NAME "t.yaml"
#define ORIGIN "origin:\n  url: http://127.0.0.1:8000\n"

static struct fc_config *load_ok(const char *yaml)
{
    struct config_errors errs = { 0 };
    struct fc_config *cfg = config_load_string(NAME, yaml, strlen(yaml), &errs);
    ck_assert_msg(cfg != NULL, "config refused: %s", errs.n ? errs.lines[0] : "?");
    return cfg;
}

/* A config whose state_dir, admin.socket and log.access are under tmp_dir
 * (each "" leaves the key out). */
static struct fc_config *load_paths(const char *state, const char *sock, const char *access)
{
    char yaml[2048];
    int n = snprintf(yaml, sizeof yaml, "%s", ORIGIN);
    if (*state)
        n += snprintf(yaml + n, sizeof yaml - (size_t)n, "state_dir: %s/%s\n", tmp_dir, state);
    if (*sock)
        n += snprintf(yaml + n, sizeof yaml - (size_t)n, "admin:\n  socket: %s/%s\n", tmp_dir, sock);
    if (*access)
        n += snprintf(yaml + n, sizeof yaml - (size_t)n, "log:\n  access: %s\n", access);
    return load_ok(yaml);
}

static void touch(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp_dir, rel);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
}

static void mkdir_in_tmp(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp_dir, rel);
    ck_assert_int_eq(mkdir(p, 0700), 0);
}

/* Run config_check_paths and compare with the expected lines, each with
 * "TMP" standing for the temporary directory. */
static void expect_paths(const struct fc_config *cfg, const char *const *want, size_t n)
{
    struct config_errors errs = { 0 };
    size_t got = config_check_paths(cfg, &errs);
    char all[4096] = "";
    for (size_t i = 0; i < errs.n; i++) {
        size_t len = strlen(all);
        snprintf(all + len, sizeof all - len, "\n  %s", errs.lines[i]);
    }
    ck_assert_msg(got == n && errs.n == n, "expected %zu problems, got %zu:%s", n, got, all);
    for (size_t i = 0; i < n; i++) {
        char line[2048] = "";
        const char *w = want[i];
        for (const char *t; (t = strstr(w, "TMP")) != NULL; w = t + 3)
            snprintf(line + strlen(line), sizeof line - strlen(line), "%.*s%s", (int)(t - w), w,
                     tmp_dir);
        snprintf(line + strlen(line), sizeof line - strlen(line), "%s", w);
        ck_assert_str_eq(errs.lines[i], line);
    }
    config_errors_free(&errs);
}

#define EXPECT_PATHS(cfg, ...)                                        \
    do {                                                              \
        const char *const want_[] = { __VA_ARGS__ };                  \
        expect_paths(cfg, want_, FC_ARRAY_LEN(want_));                \
    } while (0)
#define EXPECT_PATHS_OK(cfg) expect_paths(cfg, NULL, 0)

/* ---------------------------------------------------------------- paths */

START_TEST(paths_that_exist_or_can_be_created)
{
    /* state_dir and the socket's directory do not exist yet, their parent
     * does: the daemon creates them */
    char access[512];
    snprintf(access, sizeof access, "%s/access.log", tmp_dir);
    struct fc_config *cfg = load_paths("state", "run/admin.sock", access);
    EXPECT_PATHS_OK(cfg);
    config_free(cfg);
    /* existing ones, and a stale socket (replaced at start) */
    mkdir_in_tmp("state");
    mkdir_in_tmp("run");
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    ck_assert_int_lt(snprintf(sun.sun_path, sizeof sun.sun_path, "%.80s/run/admin.sock", tmp_dir),
                     (int)sizeof sun.sun_path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    close(fd);
    cfg = load_paths("state", "run/admin.sock", "stdout");
    EXPECT_PATHS_OK(cfg);
    config_free(cfg);
    cfg = load_paths("state", "run/admin.sock", "off");
    EXPECT_PATHS_OK(cfg);
    config_free(cfg);
}
END_TEST

START_TEST(missing_parents)
{
    struct fc_config *cfg = load_paths("a/state", "b/run/admin.sock", "/nonexistent-fc/x.log");
    EXPECT_PATHS(cfg,
        "t.yaml:3:12: state_dir: TMP/a/state cannot be created: its parent TMP/a does not exist",
        "t.yaml:5:11: admin.socket: TMP/b/run/admin.sock: its directory TMP/b/run cannot be "
        "created: its parent TMP/b does not exist",
        "t.yaml:7:11: log.access: /nonexistent-fc/x.log: its directory /nonexistent-fc does not "
        "exist");
    config_free(cfg);
}
END_TEST

START_TEST(files_in_the_way)
{
    touch("file");
    mkdir_in_tmp("run");
    touch("run/admin.sock");        /* precious: never replaced */
    char access[512];
    snprintf(access, sizeof access, "%s/run", tmp_dir);     /* a directory */
    struct fc_config *cfg = load_paths("file", "run/admin.sock", access);
    EXPECT_PATHS(cfg,
        "t.yaml:3:12: state_dir: TMP/file is not a directory",
        "t.yaml:5:11: admin.socket: TMP/run/admin.sock exists and is not a socket; "
        "freshcached does not replace it",
        "t.yaml:7:11: log.access: TMP/run is a directory; give a file name");
    config_free(cfg);
    /* a file where a parent should be */
    cfg = load_paths("file/state", "file/run/admin.sock", "");
    EXPECT_PATHS(cfg,
        "t.yaml:3:12: state_dir: TMP/file/state has a part that is not a directory",
        "t.yaml:5:11: admin.socket: TMP/file/run/admin.sock: its directory TMP/file/run has "
        "a part that is not a directory");
    config_free(cfg);
    snprintf(access, sizeof access, "%s/file/access.log", tmp_dir);
    cfg = load_paths("state", "admin.sock", access);
    EXPECT_PATHS(cfg,
        "t.yaml:7:11: log.access: TMP/file/access.log: its directory TMP/file is not a "
        "directory");
    config_free(cfg);
}
END_TEST

/* A key left out is reported with its default, where it would be added. */
START_TEST(defaults_named)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, ORIGIN "admin:\n  mode: \"0600\"\n");
    struct fc_config *cfg = load_ok(yaml);
    free(cfg->state_dir);
    free(cfg->admin.socket);
    ck_assert_int_ge(asprintf(&cfg->state_dir, "%s/x/state", tmp_dir), 0);
    ck_assert_int_ge(asprintf(&cfg->admin.socket, "%s/y/run/admin.sock", tmp_dir), 0);
    EXPECT_PATHS(cfg,
        "t.yaml:5:1: state_dir: TMP/x/state (the default) cannot be created: its parent TMP/x "
        "does not exist",
        "t.yaml:3:1: admin.socket: TMP/y/run/admin.sock (the default): its directory TMP/y/run "
        "cannot be created: its parent TMP/y does not exist");
    config_free(cfg);
}
END_TEST

/* -------------------------------------------------------- restart keys */

START_TEST(restart_keys)
{
    struct fc_config *a = load_ok(ORIGIN "workers: 2\n");
    struct fc_config *b = load_ok(ORIGIN "workers: 2\nlog: { level: debug }\n"
                                  "limits: { max_connections: 5 }\n"
                                  "policies:\n  - name: x\n");
    const char *keys[CONFIG_RESTART_KEYS_MAX];
    /* live settings only: nothing to restart for */
    ck_assert_uint_eq(config_restart_keys(a, b, keys, FC_ARRAY_LEN(keys)), 0);
    config_free(b);

    b = load_ok(ORIGIN "workers: 3\ncache: { memory: 1MiB }\nstate_dir: /x\n"
                "admin: { socket: /y.sock, mode: \"0600\" }\nlog: { access: off }\n"
                "metrics: { listen: 127.0.0.1:9101 }\n");
    size_t n = config_restart_keys(a, b, keys, FC_ARRAY_LEN(keys));
    static const char *const want[] = { "workers", "cache.memory", "state_dir", "admin.socket",
                                        "admin.mode", "log.access", "metrics.listen" };
    ck_assert_uint_eq(n, FC_ARRAY_LEN(want));
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(keys[i], want[i]);
    /* at most `max`; and back to the running values: nothing */
    ck_assert_uint_eq(config_restart_keys(a, b, keys, 2), 2);
    ck_assert_uint_eq(config_restart_keys(b, b, keys, FC_ARRAY_LEN(keys)), 0);
    /* metrics.listen turned off is a change too */
    ck_assert_uint_eq(config_restart_keys(b, a, keys, FC_ARRAY_LEN(keys)), FC_ARRAY_LEN(want));
    config_free(a);
    config_free(b);
}
END_TEST

static Suite *config_check_suite(void)
{
    Suite *s = suite_create("config_check");
    TCase *tc = tcase_create("paths");
    tcase_add_unchecked_fixture(tc, tmp_base_make, tmp_base_remove);
    tcase_add_checked_fixture(tc, tmp_dir_make, NULL);
    tcase_add_test(tc, paths_that_exist_or_can_be_created);
    tcase_add_test(tc, missing_parents);
    tcase_add_test(tc, files_in_the_way);
    tcase_add_test(tc, defaults_named);
    suite_add_tcase(s, tc);

    tc = tcase_create("restart");
    tcase_add_test(tc, restart_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_check_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
