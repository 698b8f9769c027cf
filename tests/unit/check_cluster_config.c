/*
 * check_cluster_config.c — the `cluster:` section (src/config/config.c) and
 * its Redis address (src/config/redis_url.c): every URL form, defaults,
 * password_file, and each error with its FILE:LINE:COLUMN.  No message may
 * ever show a password.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freshcache/base/assert.h"
#include "freshcache/config/config.h"
#include "freshcache/config/redis_url.h"

#define NAME "t.yaml"
#define ORIGIN "origin:\n  url: http://127.0.0.1:8000\n"

static struct fc_config *load(const char *yaml, struct config_errors *errs)
{
    return config_load_string(NAME, yaml, strlen(yaml), errs);
}

static char *joined(const struct config_errors *errs)
{
    static char all[4096];
    all[0] = '\0';
    for (size_t i = 0; i < errs->n; i++) {
        size_t len = strlen(all);
        snprintf(all + len, sizeof all - len, "\n  %s", errs->lines[i]);
    }
    return all;
}

static struct fc_config *load_ok(const char *yaml)
{
    struct config_errors errs = { 0 };
    struct fc_config *cfg = load(yaml, &errs);
    ck_assert_msg(cfg != NULL && errs.n == 0, "unexpected errors:%s", joined(&errs));
    config_errors_free(&errs);
    return cfg;
}

/* Exactly one error, `want`. */
static void expect_error(const char *yaml, const char *want)
{
    struct config_errors errs = { 0 };
    struct fc_config *cfg = load(yaml, &errs);
    ck_assert_msg(cfg == NULL, "config loaded but an error was expected: %s", want);
    ck_assert_msg(errs.n == 1, "expected 1 error, got %zu:%s", errs.n, joined(&errs));
    ck_assert_str_eq(errs.lines[0], want);
    config_errors_free(&errs);
}

/* ------------------------------------------------------------ URLs */

START_TEST(url_forms)
{
    static const struct {
        const char *url;
        const char *host;
        unsigned port;
        const char *unix_path;
        unsigned db;
        const char *user, *password;
        const char *display;
    } cases[] = {
        { "redis://127.0.0.1:6379/0", "127.0.0.1", 6379, NULL, 0, NULL, NULL,
          "redis://127.0.0.1:6379/0" },
        { "redis://cache.internal", "cache.internal", 6379, NULL, 0, NULL, NULL,
          "redis://cache.internal:6379/0" },
        { "redis://cache.internal/", "cache.internal", 6379, NULL, 0, NULL, NULL,
          "redis://cache.internal:6379/0" },
        { "REDIS://10.0.0.5:6380/12", "10.0.0.5", 6380, NULL, 12, NULL, NULL,
          "redis://10.0.0.5:6380/12" },
        { "redis://[::1]:7000/3", "::1", 7000, NULL, 3, NULL, NULL, "redis://[::1]:7000/3" },
        { "redis://[::1]", "::1", 6379, NULL, 0, NULL, NULL, "redis://[::1]:6379/0" },
        { "redis://:s3cret@127.0.0.1:6379/0", "127.0.0.1", 6379, NULL, 0, NULL, "s3cret",
          "redis://:***@127.0.0.1:6379/0" },
        { "redis://s3cret@127.0.0.1", "127.0.0.1", 6379, NULL, 0, NULL, "s3cret",
          "redis://:***@127.0.0.1:6379/0" },
        { "redis://fc:p%40ss%2Fw@h:1/2", "h", 1, NULL, 2, "fc", "p@ss/w",
          "redis://fc:***@h:1/2" },
        { "redis://:a@b@h", "h", 6379, NULL, 0, NULL, "a@b", "redis://:***@h:6379/0" },
        { "unix:///run/redis/redis.sock", NULL, 0, "/run/redis/redis.sock", 0, NULL, NULL,
          "unix:///run/redis/redis.sock?db=0" },
        { "unix:///tmp/r.sock?db=4", NULL, 0, "/tmp/r.sock", 4, NULL, NULL,
          "unix:///tmp/r.sock?db=4" },
        { "unix://:pw@/tmp/r.sock", NULL, 0, "/tmp/r.sock", 0, NULL, "pw",
          "unix://:***@/tmp/r.sock?db=0" },
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(cases); i++) {
        struct redis_url u;
        char why[128];
        const char *err = redis_url_parse(cases[i].url, &u, why, sizeof why);
        ck_assert_msg(err == NULL, "%s: %s", cases[i].url, err);
        if (cases[i].host)
            ck_assert_str_eq(u.host, cases[i].host);
        else
            ck_assert_ptr_null(u.host);
        if (cases[i].unix_path)
            ck_assert_str_eq(u.unix_path, cases[i].unix_path);
        else
            ck_assert_ptr_null(u.unix_path);
        if (cases[i].host)
            ck_assert_uint_eq(u.port, cases[i].port);
        ck_assert_uint_eq(u.db, cases[i].db);
        if (cases[i].user)
            ck_assert_str_eq(u.username, cases[i].user);
        else
            ck_assert_ptr_null(u.username);
        if (cases[i].password)
            ck_assert_str_eq(u.password, cases[i].password);
        else
            ck_assert_ptr_null(u.password);
        char *d = redis_url_display(&u);
        ck_assert_str_eq(d, cases[i].display);
        free(d);
        redis_url_free(&u);
    }
}
END_TEST

START_TEST(url_errors)
{
    static const struct { const char *url, *why; } cases[] = {
        { "http://127.0.0.1:6379", "must start with redis:// or unix://" },
        { "127.0.0.1:6379", "must start with redis:// or unix://" },
        { "rediss://h:6379", "rediss:// (TLS) is not supported; reach a remote Redis through a "
                             "TLS tunnel (stunnel, spiped) or use a Unix socket" },
        { "redis://", "missing host" },
        { "redis://:6379", "missing host" },
        { "redis://h:0", "the port must be a number from 1 to 65535" },
        { "redis://h:65536", "the port must be a number from 1 to 65535" },
        { "redis://h:x", "the port must be a number from 1 to 65535" },
        { "redis://h/x", "the database must be a number (e.g. /0)" },
        { "redis://h/0/1", "the database must be a number (e.g. /0)" },
        { "redis://h?db=1", "a query or fragment is not allowed (give the database as /DB)" },
        { "redis://h!x", "invalid host name" },
        { "redis://[::1", "missing ']' after the IPv6 address" },
        { "redis://[zz]:1", "invalid IPv6 address" },
        { "redis://[::1]x", "unexpected text after the IPv6 address" },
        { "redis://:@h", "empty password after ':' (leave out \"user:password@\" when there is "
                         "none)" },
        { "redis://:pw%zz@h", "bad percent-encoding in the password" },
        { "redis://:pw%00@h", "bad percent-encoding in the password" },
        { "redis://u%g:pw@h", "bad percent-encoding in the user name" },
        { "unix://", "expected unix:///path/to/redis.sock (three slashes: an absolute path)" },
        { "unix://relative.sock", "expected unix:///path/to/redis.sock (three slashes: an "
                                  "absolute path)" },
        { "unix://:pw@relative", "the socket path must be absolute (unix:///path/to/redis.sock)" },
        { "unix:///", "missing socket path" },
        { "unix:///r.sock?database=1", "the only query allowed is ?db=N" },
        { "unix:///r.sock?db=", "the database must be a number (e.g. /0)" },
        { "unix:///r.sock#x", "a fragment is not allowed" },
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(cases); i++) {
        struct redis_url u;
        char why[128];
        const char *err = redis_url_parse(cases[i].url, &u, why, sizeof why);
        ck_assert_msg(err != NULL, "%s accepted", cases[i].url);
        ck_assert_str_eq(err, cases[i].why);
        ck_assert_ptr_null(u.host);
        ck_assert_ptr_null(u.password);
    }
    char longpath[200] = "unix:///";
    memset(longpath + 8, 'a', 150);
    longpath[158] = '\0';
    struct redis_url u;
    char why[128];
    ck_assert_str_eq(redis_url_parse(longpath, &u, why, sizeof why),
                     "the socket path is too long for a Unix socket");
}
END_TEST

/* ---------------------------------------------------------- the section */

START_TEST(no_cluster_by_default)
{
    struct fc_config *cfg = load_ok(ORIGIN);
    ck_assert(!cfg->cluster.enabled);
    config_free(cfg);
}
END_TEST

START_TEST(spec_cluster_section)
{
    struct fc_config *cfg = load_ok(ORIGIN
        "cluster:                             # optional: nodes that share generations and purges\n"
        "  redis: redis://127.0.0.1:6379/0    # redis://[:password@]host:port/db or unix:///path/redis.sock\n"
        "  name: www-prod                     # nodes with the same name form one cluster\n"
        "  node: edge-1                       # this node's name; default: the host name\n"
        "  ack_timeout: 2s                    # how long a purge waits for every live node to apply it\n"
        "  max_disconnect: 10s                # cut off from Redis longer than this: a deploy may be missed\n"
        "  on_disconnect: revalidate          # revalidate (every stored response, until caught up) | serve\n");
    const struct fc_cluster *c = &cfg->cluster;
    ck_assert(c->enabled);
    ck_assert_str_eq(c->redis, "redis://127.0.0.1:6379/0");
    ck_assert_str_eq(c->redis_display, "redis://127.0.0.1:6379/0");
    ck_assert_str_eq(c->url.host, "127.0.0.1");
    ck_assert_uint_eq(c->url.port, 6379);
    ck_assert_str_eq(c->name, "www-prod");
    ck_assert_str_eq(c->node, "edge-1");
    ck_assert_uint_eq(c->ack_timeout_ms, 2000);
    ck_assert_uint_eq(c->max_disconnect_ms, 10000);
    ck_assert_int_eq(c->on_disconnect, ON_DISCONNECT_REVALIDATE);
    config_free(cfg);
}
END_TEST

START_TEST(cluster_defaults)
{
    struct fc_config *cfg = load_ok(ORIGIN "cluster:\n  redis: unix:///run/redis.sock\n"
                                           "  on_disconnect: serve\n  max_disconnect: 0s\n");
    const struct fc_cluster *c = &cfg->cluster;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    ck_assert_str_eq(c->name, "freshcache");
    ck_assert_str_eq(c->node, host);
    ck_assert_uint_eq(c->ack_timeout_ms, 2000);
    ck_assert_uint_eq(c->max_disconnect_ms, 0);
    ck_assert_int_eq(c->on_disconnect, ON_DISCONNECT_SERVE);
    ck_assert_str_eq(c->url.unix_path, "/run/redis.sock");
    config_free(cfg);
}
END_TEST

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(password_file)
{
    char dir[] = "/tmp/fc-cluster-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char pw[300], yaml[1024];
    snprintf(pw, sizeof pw, "%s/pw", dir);
    snprintf(yaml, sizeof yaml, ORIGIN "cluster:\n  redis: redis://h:1/0\n  password_file: %s\n",
             pw);

    write_file(pw, "hunter2\n");
    struct fc_config *cfg = load_ok(yaml);
    ck_assert_str_eq(cfg->cluster.url.password, "hunter2");
    ck_assert_str_eq(cfg->cluster.redis_display, "redis://:***@h:1/0");
    config_free(cfg);

    write_file(pw, "hunter2\r\n");
    cfg = load_ok(yaml);
    ck_assert_str_eq(cfg->cluster.url.password, "hunter2");
    config_free(cfg);

    char want[512];
    write_file(pw, "");
    snprintf(want, sizeof want, "t.yaml:5:18: cluster.password_file: \"%s\" is empty", pw);
    expect_error(yaml, want);

    write_file(pw, "one\ntwo\n");
    snprintf(want, sizeof want,
             "t.yaml:5:18: cluster.password_file: \"%s\" must hold the password alone on one line",
             pw);
    expect_error(yaml, want);

    /* In the URL too: which one would win is a guess we do not make. */
    write_file(pw, "hunter2\n");
    snprintf(yaml, sizeof yaml, ORIGIN "cluster:\n  redis: redis://:other@h:1/0\n"
                                       "  password_file: %s\n", pw);
    expect_error(yaml, "t.yaml:5:18: cluster.password_file: the password is also in "
                       "cluster.redis; give it in one place");

    unlink(pw);
    snprintf(yaml, sizeof yaml, ORIGIN "cluster:\n  redis: redis://h:1/0\n  password_file: %s\n",
             pw);
    snprintf(want, sizeof want, "t.yaml:5:18: cluster.password_file: cannot read \"%s\": "
                                "No such file or directory", pw);
    expect_error(yaml, want);
    rmdir(dir);
}
END_TEST

START_TEST(cluster_errors)
{
    expect_error(ORIGIN "cluster:\n  name: x\n",
                 "t.yaml:4:3: cluster.redis is required: the Redis address, e.g. "
                 "redis://127.0.0.1:6379/0");
    expect_error(ORIGIN "cluster:\n",
                 "t.yaml:3:9: cluster.redis is required: the Redis address, e.g. "
                 "redis://127.0.0.1:6379/0");
    expect_error(ORIGIN "cluster:\n  redis: redis://h:99999/0\n",
                 "t.yaml:4:10: cluster.redis: invalid Redis address: the port must be a number "
                 "from 1 to 65535 (use e.g. redis://127.0.0.1:6379/0 or "
                 "unix:///run/redis/redis.sock)");
    expect_error(ORIGIN "cluster:\n  redis: redis://h\n  name: 'www prod'\n",
                 "t.yaml:5:9: cluster.name: invalid name \"www prod\" (use up to 64 letters, "
                 "digits, '-', '_' and '.')");
    expect_error(ORIGIN "cluster:\n  redis: redis://h\n  node: '{edge}'\n",
                 "t.yaml:5:9: cluster.node: invalid name \"{edge}\" (use up to 64 letters, "
                 "digits, '-', '_' and '.')");
    expect_error(ORIGIN "cluster:\n  redis: redis://h\n  ack_timeout: 0s\n",
                 "t.yaml:5:16: cluster.ack_timeout: must be greater than 0");
    expect_error(ORIGIN "cluster:\n  redis: redis://h\n  max_disconnect: soon\n",
                 "t.yaml:5:19: cluster.max_disconnect: invalid duration \"soon\" (use e.g. "
                 "250ms, 30s, 5m, 1h or 365d)");
    expect_error(ORIGIN "cluster:\n  redis: redis://h\n  on_disconnect: stop\n",
                 "t.yaml:5:18: cluster.on_disconnect: invalid value \"stop\" (expected "
                 "revalidate or serve)");
    expect_error(ORIGIN "cluster:\n  redis: redis://h\n  acktimeout: 1s\n",
                 "t.yaml:5:3: unknown key \"acktimeout\" in cluster (valid keys: redis, "
                 "password_file, name, node, ack_timeout, max_disconnect, on_disconnect)");
    expect_error(ORIGIN "cluster: redis://h\n",
                 "t.yaml:3:10: cluster: expected a mapping (key: value), got the value "
                 "\"redis://h\"");
}
END_TEST

/* A password must not appear in any message, even about its own URL. */
START_TEST(password_never_in_errors)
{
    static const char *const yamls[] = {
        ORIGIN "cluster:\n  redis: redis://:TOPSECRET@h:0/0\n",
        ORIGIN "cluster:\n  redis: redis://:TOPSECRET@h/zz\n",
        ORIGIN "cluster:\n  redis: rediss://:TOPSECRET@h\n",
        ORIGIN "cluster:\n  redis: redis://:TOPSECRET%zz@h\n",
        ORIGIN "cluster:\n  redis: [redis://:TOPSECRET@h]\n",
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(yamls); i++) {
        struct config_errors errs = { 0 };
        ck_assert_ptr_null(load(yamls[i], &errs));
        ck_assert_uint_ge(errs.n, 1);
        for (size_t j = 0; j < errs.n; j++)
            ck_assert_msg(strstr(errs.lines[j], "TOPSECRET") == NULL, "leaked: %s",
                          errs.lines[j]);
        config_errors_free(&errs);
    }
}
END_TEST

static Suite *cluster_config_suite(void)
{
    Suite *s = suite_create("cluster_config");
    TCase *tc = tcase_create("redis_url");
    tcase_add_test(tc, url_forms);
    tcase_add_test(tc, url_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("section");
    tcase_add_test(tc, no_cluster_by_default);
    tcase_add_test(tc, spec_cluster_section);
    tcase_add_test(tc, cluster_defaults);
    tcase_add_test(tc, password_file);
    tcase_add_test(tc, cluster_errors);
    tcase_add_test(tc, password_never_in_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cluster_config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
