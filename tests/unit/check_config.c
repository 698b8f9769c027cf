/*
 * check_config.c — unit tests for src/config.c: value syntaxes, the spec's
 * example, defaults, and every class of error with its exact position.
 */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freshcache/base/assert.h"
#include "freshcache/config/config.h"

#define NAME "t.yaml"
/* Two lines that make a config valid, for tests about other keys. */
#define ORIGIN "origin:\n  url: http://127.0.0.1:8000\n"

static struct fc_config *load(const char *yaml, struct config_errors *errs)
{
    return config_load_string(NAME, yaml, strlen(yaml), errs);
}

/* Load `yaml` and fail the test, listing the errors, if it does not load. */
static struct fc_config *load_ok(const char *yaml)
{
    struct config_errors errs = { 0 };
    struct fc_config *cfg = load(yaml, &errs);
    char all[4096] = "";

    for (size_t i = 0; i < errs.n; i++) {
        size_t len = strlen(all);
        snprintf(all + len, sizeof all - len, "\n  %s", errs.lines[i]);
    }
    ck_assert_msg(cfg != NULL && errs.n == 0, "unexpected errors:%s", all);
    config_errors_free(&errs);
    return cfg;
}

/* Load `yaml`, expect it to be rejected with exactly the `want` lines. */
static void expect_errors(const char *yaml, const char *const *want, size_t n)
{
    struct config_errors errs = { 0 };
    struct fc_config *cfg = load(yaml, &errs);
    char all[4096] = "";

    for (size_t i = 0; i < errs.n; i++) {
        size_t len = strlen(all);
        snprintf(all + len, sizeof all - len, "\n  %s", errs.lines[i]);
    }
    ck_assert_msg(cfg == NULL, "config loaded but errors were expected");
    ck_assert_msg(errs.n == n, "expected %zu errors, got %zu:%s", n, errs.n, all);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(errs.lines[i], want[i]);
    config_errors_free(&errs);
}

#define EXPECT_ERRORS(yaml, ...)                                     \
    do {                                                             \
        const char *const want_[] = { __VA_ARGS__ };                 \
        expect_errors(yaml, want_, FC_ARRAY_LEN(want_));             \
    } while (0)

/* ---------------------------------------------------------------- sizes */

START_TEST(size_valid)
{
    static const struct { const char *s; uint64_t v; } cases[] = {
        { "0", 0 },
        { "512", 512 },
        { "1B", 1 },
        { "16KiB", 16384 },
        { "256MiB", 256ULL << 20 },
        { "1GiB", 1ULL << 30 },
        { "007KiB", 7 * 1024 },
        { "18446744073709551615", UINT64_MAX },
        { "17179869183GiB", 17179869183ULL << 30 },
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(cases); i++) {
        uint64_t v = 12345;
        ck_assert_msg(config_parse_size(cases[i].s, &v) == 0, "rejected %s", cases[i].s);
        ck_assert_msg(v == cases[i].v, "%s gave %llu", cases[i].s, (unsigned long long)v);
    }
}
END_TEST

START_TEST(size_invalid)
{
    static const char *const cases[] = {
        "", "-1", "+1", "1.5MiB", "12XB", "1KB", "1MB", "1kib", "1k", " 1", "1 ", "1 MiB",
        "MiB", "1MiBx", "0x10", "1TiB", "18446744073709551616", "17179869184GiB",
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(cases); i++) {
        uint64_t v = 12345;
        ck_assert_msg(config_parse_size(cases[i], &v) == -1, "accepted %s", cases[i]);
        ck_assert_msg(v == 12345, "%s: output written on failure", cases[i]);
    }
    uint64_t v;
    ck_assert_int_eq(config_parse_size(NULL, &v), -1);
}
END_TEST

/* ------------------------------------------------------------ durations */

START_TEST(duration_valid)
{
    static const struct { const char *s; uint64_t ms; } cases[] = {
        { "250ms", 250 },
        { "2s", 2000 },
        { "5m", 300000 },
        { "1h", 3600000 },
        { "365d", 365ULL * 86400000 },
        { "0s", 0 },
        { "0ms", 0 },
        { "30", 30000 },            /* bare number: seconds */
        { "18446744073709551615ms", UINT64_MAX },
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(cases); i++) {
        uint64_t ms = 12345;
        ck_assert_msg(config_parse_duration(cases[i].s, &ms) == 0, "rejected %s", cases[i].s);
        ck_assert_msg(ms == cases[i].ms, "%s gave %llu", cases[i].s, (unsigned long long)ms);
    }
}
END_TEST

START_TEST(duration_invalid)
{
    static const char *const cases[] = {
        "", "-1s", "+1s", "1.5s", "1hr", "s", "ms", "1 s", "1S", "1H", "1h30m", "1w", "1y",
        "1sec", " 1s", "1s ", "1us", "99999999999999999999", "18446744073709551615s",
        "1000000000000000d",
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(cases); i++) {
        uint64_t ms = 12345;
        ck_assert_msg(config_parse_duration(cases[i], &ms) == -1, "accepted %s", cases[i]);
        ck_assert_msg(ms == 12345, "%s: output written on failure", cases[i]);
    }
    uint64_t ms;
    ck_assert_int_eq(config_parse_duration(NULL, &ms), -1);
}
END_TEST

/* --------------------------------------------------------- valid files */

/* The example from the interface spec, verbatim. */
static const char spec_example[] =
    "listen:\n"
    "  - address: 127.0.0.1:8080          # host:port, [v6]:port\n"
    "  - address: 0.0.0.0:8443\n"
    "    tls: { certificate: cert.pem, key: key.pem }\n"
    "workers: auto                        # threads; auto = CPU count\n"
    "origin:\n"
    "  url: http://127.0.0.1:8000         # http:// or https://\n"
    "  host_header: preserve              # preserve (client's Host) | origin\n"
    "  connect_timeout: 2s\n"
    "  read_timeout: 30s\n"
    "  tls: { verify: true, ca_file: /etc/ssl/certs/ca-certificates.crt, server_name: example.com }\n"
    "cache:\n"
    "  memory: 256MiB                     # hard bound on stored bytes; LRU eviction\n"
    "  max_object_size: 16MiB             # larger responses stream through uncached\n"
    "  etag: content-hash                 # content-hash | origin\n"
    "  coalesce: true                     # one origin fetch per key at a time\n"
    "  after_purge: refetch               # refetch | revalidate (see Generations)\n"
    "admin:\n"
    "  socket: /run/freshcache/admin.sock\n"
    "  mode: \"0660\"\n"
    "state_dir: /var/lib/freshcache       # the generation survives restarts here\n"
    "log:\n"
    "  access: stdout                     # path | stdout | off\n"
    "  format: text                       # text | json (one object a line)\n"
    "  level: info\n"
    "limits:\n"
    "  max_header_bytes: 16KiB\n"
    "  max_connections: 10000\n"
    "  client_timeout: 30s\n"
    "policies:                            # first match wins; `default` last\n"
    "  - name: hashed-assets\n"
    "    match: { path: '[.-][0-9a-f]{8,}\\.(js|mjs|css|map|png|jpe?g|gif|svg|webp|avif|woff2?|ttf)$' }\n"
    "    ttl: 365d\n"
    "    response_cache_control: \"public, max-age=31536000, immutable\"\n"
    "  - name: html\n"
    "    match: { content_type: [text/html] }\n"
    "    ttl: 0s                          # revalidate with the origin on every request\n"
    "    stale_if_error: 1h\n"
    "    response_cache_control: \"no-cache\"\n"
    "  - name: default\n"
    "    ttl: origin                      # RFC 9111 from the origin's headers\n";

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void assert_ipv4(const struct sockaddr_storage *ss, socklen_t len, const char *ip,
                        uint16_t port)
{
    char buf[INET_ADDRSTRLEN];
    ck_assert_int_eq(ss->ss_family, AF_INET);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, sizeof buf);
    ck_assert_str_eq(buf, ip);
    ck_assert_uint_eq(port_of(ss), port);
}

static unsigned cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (unsigned)n;
}

START_TEST(spec_example_loads)
{
    struct fc_config *cfg = load_ok(spec_example);

    ck_assert_str_eq(cfg->path, NAME);
    ck_assert_uint_eq(cfg->n_listen, 2);
    ck_assert_str_eq(cfg->listen[0].address, "127.0.0.1:8080");
    assert_ipv4(&cfg->listen[0].addr, cfg->listen[0].addrlen, "127.0.0.1", 8080);
    ck_assert_ptr_null(cfg->listen[0].tls);
    ck_assert_str_eq(cfg->listen[1].address, "0.0.0.0:8443");
    assert_ipv4(&cfg->listen[1].addr, cfg->listen[1].addrlen, "0.0.0.0", 8443);
    ck_assert_ptr_nonnull(cfg->listen[1].tls);
    ck_assert_uint_eq(cfg->listen[1].tls->n_certs, 1);
    ck_assert_str_eq(cfg->listen[1].tls->certs[0].certificate, "cert.pem");
    ck_assert_str_eq(cfg->listen[1].tls->certs[0].key, "key.pem");
    ck_assert_int_eq(cfg->listen[1].tls->min_version, FC_TLS_1_2);
    ck_assert_int_eq(cfg->listen[1].tls->max_version, FC_TLS_1_3);

    ck_assert_uint_eq(cfg->workers, cpus());

    ck_assert_str_eq(cfg->origin.url, "http://127.0.0.1:8000");
    ck_assert(!cfg->origin.https);
    ck_assert_str_eq(cfg->origin.host, "127.0.0.1");
    ck_assert_uint_eq(cfg->origin.port, 8000);
    ck_assert_str_eq(cfg->origin.authority, "127.0.0.1:8000");
    assert_ipv4(&cfg->origin.addr, cfg->origin.addrlen, "127.0.0.1", 8000);
    ck_assert_int_eq(cfg->origin.host_header, HOST_HEADER_PRESERVE);
    ck_assert_uint_eq(cfg->origin.connect_timeout_ms, 2000);
    ck_assert_uint_eq(cfg->origin.read_timeout_ms, 30000);
    ck_assert(cfg->origin.tls_verify);
    ck_assert_str_eq(cfg->origin.tls_ca_file, "/etc/ssl/certs/ca-certificates.crt");
    ck_assert_str_eq(cfg->origin.tls_server_name, "example.com");

    ck_assert_uint_eq(cfg->cache.memory, 256ULL << 20);
    ck_assert_uint_eq(cfg->cache.max_object_size, 16ULL << 20);
    ck_assert_int_eq(cfg->cache.etag, ETAG_CONTENT_HASH);
    ck_assert(cfg->cache.coalesce);
    ck_assert_int_eq(cfg->cache.after_purge, AFTER_PURGE_REFETCH);

    ck_assert_str_eq(cfg->admin.socket, "/run/freshcache/admin.sock");
    ck_assert_uint_eq(cfg->admin.mode, 0660);
    ck_assert_str_eq(cfg->state_dir, "/var/lib/freshcache");
    ck_assert_str_eq(cfg->log.access, "stdout");
    ck_assert_int_eq(cfg->log.format, ACCESS_LOG_TEXT);
    ck_assert_int_eq(cfg->log.level, LOG_LEVEL_INFO);
    ck_assert_uint_eq(cfg->limits.max_header_bytes, 16384);
    ck_assert_uint_eq(cfg->limits.max_connections, 10000);
    ck_assert_uint_eq(cfg->limits.client_timeout_ms, 30000);

    ck_assert_uint_eq(cfg->n_policies, 3);
    const struct fc_policy *p = &cfg->policies[0];
    ck_assert_str_eq(p->name, "hashed-assets");
    ck_assert_str_eq(p->path_pattern,
                     "[.-][0-9a-f]{8,}\\.(js|mjs|css|map|png|jpe?g|gif|svg|webp|avif|woff2?|ttf)$");
    ck_assert_int_eq(regexec(&p->path_re, "/static/app.3f2a9c1d.js", 0, NULL, 0), 0);
    ck_assert_int_eq(regexec(&p->path_re, "/fonts/inter-0123456789abcdef.woff2", 0, NULL, 0), 0);
    ck_assert_int_ne(regexec(&p->path_re, "/static/app.js", 0, NULL, 0), 0);
    ck_assert_int_ne(regexec(&p->path_re, "/index.html", 0, NULL, 0), 0);
    ck_assert_uint_eq(p->n_content_types, 0);
    ck_assert(!p->ttl_origin);
    ck_assert_uint_eq(p->ttl_ms, 365ULL * 86400000);
    ck_assert_str_eq(p->response_cache_control, "public, max-age=31536000, immutable");
    ck_assert(!p->has_stale_while_revalidate);
    ck_assert(!p->has_stale_if_error);

    p = &cfg->policies[1];
    ck_assert_str_eq(p->name, "html");
    ck_assert_ptr_null(p->path_pattern);
    ck_assert_uint_eq(p->n_content_types, 1);
    ck_assert_str_eq(p->content_types[0], "text/html");
    ck_assert(!p->ttl_origin);
    ck_assert_uint_eq(p->ttl_ms, 0);
    ck_assert(p->has_stale_if_error);
    ck_assert_uint_eq(p->stale_if_error_ms, 3600000);
    ck_assert(!p->has_stale_while_revalidate);
    ck_assert_str_eq(p->response_cache_control, "no-cache");

    p = &cfg->policies[2];
    ck_assert_str_eq(p->name, "default");
    ck_assert_ptr_null(p->path_pattern);
    ck_assert_uint_eq(p->n_content_types, 0);
    ck_assert(p->ttl_origin);
    ck_assert_ptr_null(p->response_cache_control);

    config_free(cfg);
}
END_TEST

START_TEST(defaults)
{
    struct fc_config *cfg = load_ok(ORIGIN);

    ck_assert_uint_eq(cfg->n_listen, 1);
    ck_assert_str_eq(cfg->listen[0].address, "127.0.0.1:8080");
    assert_ipv4(&cfg->listen[0].addr, cfg->listen[0].addrlen, "127.0.0.1", 8080);
    ck_assert_ptr_null(cfg->listen[0].tls);
    ck_assert_uint_eq(cfg->workers, cpus());
    ck_assert_int_eq(cfg->origin.host_header, HOST_HEADER_PRESERVE);
    ck_assert_uint_eq(cfg->origin.connect_timeout_ms, 2000);
    ck_assert_uint_eq(cfg->origin.read_timeout_ms, 30000);
    ck_assert(cfg->origin.tls_verify);
    ck_assert_ptr_null(cfg->origin.tls_ca_file);
    ck_assert_ptr_null(cfg->origin.tls_server_name);
    ck_assert_uint_eq(cfg->cache.memory, 256ULL << 20);
    ck_assert_uint_eq(cfg->cache.max_object_size, 16ULL << 20);
    ck_assert_int_eq(cfg->cache.etag, ETAG_CONTENT_HASH);
    ck_assert(cfg->cache.coalesce);
    ck_assert_int_eq(cfg->cache.after_purge, AFTER_PURGE_REFETCH);
    ck_assert_str_eq(cfg->admin.socket, "/run/freshcache/admin.sock");
    ck_assert_uint_eq(cfg->admin.mode, 0660);
    ck_assert_str_eq(cfg->state_dir, "/var/lib/freshcache");
    ck_assert_str_eq(cfg->log.access, "stdout");
    ck_assert_int_eq(cfg->log.format, ACCESS_LOG_TEXT);
    ck_assert_int_eq(cfg->log.level, LOG_LEVEL_INFO);
    ck_assert_uint_eq(cfg->limits.max_header_bytes, 16384);
    ck_assert_uint_eq(cfg->limits.max_connections, 10000);
    ck_assert_uint_eq(cfg->limits.client_timeout_ms, 30000);
    ck_assert_uint_eq(cfg->limits.drain_timeout_ms, 10000);
    ck_assert_uint_eq(cfg->limits.header_timeout_ms, 10000);
    ck_assert_uint_eq(cfg->limits.min_body_rate, 1024);
    ck_assert_ptr_null(cfg->metrics.listen);
    ck_assert_uint_eq(cfg->n_policies, 0);
    ck_assert_ptr_null(cfg->policies);
    config_free(cfg);

    /* The loopback metrics listener and a drain timeout. */
    static const char more[] = ORIGIN "metrics:\n  listen: '[::1]:9101'\nlimits:\n"
                                      "  drain_timeout: 2s\n";
    struct config_errors errs2 = { 0 };
    cfg = config_load_string("t.yaml", more, strlen(more), &errs2);
    ck_assert_msg(cfg != NULL, "%s", errs2.n ? errs2.lines[0] : "");
    config_errors_free(&errs2);
    ck_assert_str_eq(cfg->metrics.listen, "[::1]:9101");
    ck_assert_int_eq(cfg->metrics.addr.ss_family, AF_INET6);
    ck_assert_uint_eq(cfg->limits.drain_timeout_ms, 2000);
    config_free(cfg);

    /* Empty sections are all defaults too. */
    cfg = load_ok(ORIGIN "cache:\nadmin: ~\nlog: null\nlimits:\npolicies:\n");
    ck_assert_uint_eq(cfg->cache.memory, 256ULL << 20);
    ck_assert_uint_eq(cfg->n_policies, 0);
    config_free(cfg);
}
END_TEST

START_TEST(non_default_values)
{
    struct fc_config *cfg = load_ok(
        "listen:\n"
        "  - address: '[::1]:8080'\n"
        "  - address: \"*:80\"\n"
        "workers: 3\n"
        "origin:\n"
        "  url: HTTPS://[::1]/\n"
        "  host_header: origin\n"
        "  connect_timeout: 250ms\n"
        "  tls: { verify: no }\n"
        "cache:\n"
        "  memory: 1GiB\n"
        "  max_object_size: 1GiB\n"
        "  etag: origin\n"
        "  coalesce: false\n"
        "  after_purge: revalidate\n"
        "admin: { socket: ./admin.sock, mode: 0600 }\n"
        "log: { access: off, format: json, level: debug }\n"
        "limits: { max_header_bytes: 1KiB, max_connections: 1, client_timeout: 1,\n"
        "          header_timeout: 2s, min_body_rate: 0 }\n"
        "policies:\n"
        "  - name: api.v1_x\n"
        "    match:\n"
        "      path: ^/api/\n"
        "      content_type: Application/JSON; charset=utf-8\n"
        "    stale_while_revalidate: 10s\n"
        "    stale_if_error: 0s\n"
        "    set_cookie: strip\n");

    ck_assert_uint_eq(cfg->n_listen, 2);
    ck_assert_int_eq(cfg->listen[0].addr.ss_family, AF_INET6);
    ck_assert_uint_eq(cfg->listen[0].addrlen, sizeof(struct sockaddr_in6));
    ck_assert_uint_eq(port_of(&cfg->listen[0].addr), 8080);
    assert_ipv4(&cfg->listen[1].addr, cfg->listen[1].addrlen, "0.0.0.0", 80);
    ck_assert_uint_eq(cfg->workers, 3);
    ck_assert(cfg->origin.https);
    ck_assert_str_eq(cfg->origin.host, "::1");
    ck_assert_uint_eq(cfg->origin.port, 443);
    ck_assert_str_eq(cfg->origin.authority, "[::1]");
    ck_assert_int_eq(cfg->origin.addr.ss_family, AF_INET6);
    ck_assert_uint_eq(port_of(&cfg->origin.addr), 443);
    ck_assert_int_eq(cfg->origin.host_header, HOST_HEADER_ORIGIN);
    ck_assert_uint_eq(cfg->origin.connect_timeout_ms, 250);
    ck_assert(!cfg->origin.tls_verify);
    ck_assert_uint_eq(cfg->cache.memory, 1ULL << 30);
    ck_assert_uint_eq(cfg->cache.max_object_size, 1ULL << 30);
    ck_assert_int_eq(cfg->cache.etag, ETAG_ORIGIN);
    ck_assert(!cfg->cache.coalesce);
    ck_assert_int_eq(cfg->cache.after_purge, AFTER_PURGE_REVALIDATE);
    ck_assert_str_eq(cfg->admin.socket, "./admin.sock");
    ck_assert_uint_eq(cfg->admin.mode, 0600);
    ck_assert_str_eq(cfg->log.access, "off");
    ck_assert_int_eq(cfg->log.level, LOG_LEVEL_DEBUG);
    ck_assert_int_eq(cfg->log.format, ACCESS_LOG_JSON);
    ck_assert_uint_eq(cfg->limits.max_header_bytes, 1024);
    ck_assert_uint_eq(cfg->limits.max_connections, 1);
    ck_assert_uint_eq(cfg->limits.client_timeout_ms, 1000);
    ck_assert_uint_eq(cfg->limits.header_timeout_ms, 2000);
    ck_assert_uint_eq(cfg->limits.min_body_rate, 0);

    ck_assert_uint_eq(cfg->n_policies, 1);
    const struct fc_policy *p = &cfg->policies[0];
    ck_assert_str_eq(p->name, "api.v1_x");
    ck_assert_int_eq(p->set_cookie, SET_COOKIE_STRIP);
    ck_assert_int_eq(regexec(&p->path_re, "/api/users", 0, NULL, 0), 0);
    ck_assert_int_ne(regexec(&p->path_re, "/x/api/", 0, NULL, 0), 0);
    ck_assert_uint_eq(p->n_content_types, 1);
    ck_assert_str_eq(p->content_types[0], "application/json");
    ck_assert(p->ttl_origin);
    ck_assert(p->has_stale_while_revalidate);
    ck_assert_uint_eq(p->stale_while_revalidate_ms, 10000);
    ck_assert(p->has_stale_if_error);
    ck_assert_uint_eq(p->stale_if_error_ms, 0);
    config_free(cfg);
}
END_TEST

START_TEST(origin_url_forms)
{
    static const struct {
        const char *url;
        bool https;
        const char *host;
        uint16_t port;
        const char *authority;
    } cases[] = {
        { "http://127.0.0.1", false, "127.0.0.1", 80, "127.0.0.1" },
        { "http://127.0.0.1:80/", false, "127.0.0.1", 80, "127.0.0.1" },
        { "https://127.0.0.1:8443", true, "127.0.0.1", 8443, "127.0.0.1:8443" },
        { "http://localhost:8000/", false, "localhost", 8000, "localhost:8000" },
        { "http://[::1]:8000", false, "::1", 8000, "[::1]:8000" },
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(cases); i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "origin:\n  url: '%s'\n", cases[i].url);
        struct fc_config *cfg = load_ok(yaml);
        ck_assert_str_eq(cfg->origin.url, cases[i].url);
        ck_assert(cfg->origin.https == cases[i].https);
        ck_assert_str_eq(cfg->origin.host, cases[i].host);
        ck_assert_uint_eq(cfg->origin.port, cases[i].port);
        ck_assert_str_eq(cfg->origin.authority, cases[i].authority);
        ck_assert_uint_gt(cfg->origin.addrlen, 0);
        ck_assert_uint_eq(port_of(&cfg->origin.addr), cases[i].port);
        config_free(cfg);
    }
}
END_TEST

START_TEST(small_memory_shrinks_default_max_object_size)
{
    struct fc_config *cfg = load_ok(ORIGIN "cache: { memory: 1MiB }\n");
    ck_assert_uint_eq(cfg->cache.max_object_size, 1ULL << 20);
    config_free(cfg);
}
END_TEST

START_TEST(content_type_list)
{
    struct fc_config *cfg = load_ok(ORIGIN
        "policies:\n"
        "  - name: text\n"
        "    match:\n"
        "      content_type:\n"
        "        - text/html\n"
        "        - ' TEXT/CSS ; charset=utf-8'\n"
        "        - image/*\n");
    const struct fc_policy *p = &cfg->policies[0];
    ck_assert_uint_eq(p->n_content_types, 3);
    ck_assert_str_eq(p->content_types[0], "text/html");
    ck_assert_str_eq(p->content_types[1], "text/css");
    ck_assert_str_eq(p->content_types[2], "image/*");
    config_free(cfg);
}
END_TEST

START_TEST(shipped_config_loads)
{
    const char *path = SOURCE_ROOT "/conf/freshcache.yaml";
    struct config_errors errs = { 0 };
    struct fc_config *cfg = config_load(path, &errs);
    char all[4096] = "";

    for (size_t i = 0; i < errs.n; i++) {
        size_t len = strlen(all);
        snprintf(all + len, sizeof all - len, "\n  %s", errs.lines[i]);
    }
    ck_assert_msg(cfg != NULL && errs.n == 0, "%s does not load:%s", path, all);
    ck_assert_str_eq(cfg->path, path);
    ck_assert_uint_eq(cfg->n_listen, 1);
    ck_assert_str_eq(cfg->listen[0].address, "127.0.0.1:8080");
    ck_assert_ptr_null(cfg->listen[0].tls);
    ck_assert_str_eq(cfg->origin.url, "http://127.0.0.1:8000");
    ck_assert_str_eq(cfg->state_dir, "/var/lib/freshcache");
    ck_assert_str_eq(cfg->admin.socket, "/run/freshcache/admin.sock");
    ck_assert_uint_eq(cfg->admin.mode, 0660);
    ck_assert_uint_eq(cfg->n_policies, 3);
    ck_assert_str_eq(cfg->policies[0].name, "hashed-assets");
    ck_assert_str_eq(cfg->policies[1].name, "html");
    ck_assert_str_eq(cfg->policies[2].name, "default");
    ck_assert(cfg->policies[2].ttl_origin);
    config_free(cfg);
}
END_TEST

/* The same text from a file and from memory gives the same result. */
START_TEST(load_from_file)
{
    char path[] = "/tmp/check_config_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, spec_example, strlen(spec_example)), (ssize_t)strlen(spec_example));
    close(fd);

    struct config_errors errs = { 0 };
    struct fc_config *cfg = config_load(path, &errs);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(errs.n, 0);
    ck_assert_uint_eq(cfg->n_policies, 3);
    config_free(cfg);

    /* Errors name the file as given. */
    static const char bad[] = ORIGIN "cache:\n  memory: 12XB\n";
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    cfg = config_load(path, &errs);
    ck_assert_ptr_null(cfg);
    ck_assert_uint_eq(errs.n, 1);
    char want[256];
    snprintf(want, sizeof want, "%s:4:11: cache.memory: invalid size \"12XB\" (use e.g. 256MiB)",
             path);
    ck_assert_str_eq(errs.lines[0], want);
    config_errors_free(&errs);
    ck_assert_uint_eq(errs.n, 0);
    ck_assert_ptr_null(errs.lines);
    unlink(path);
}
END_TEST

START_TEST(missing_file)
{
    struct config_errors errs = { 0 };
    ck_assert_ptr_null(config_load("/nonexistent/freshcache.yaml", &errs));
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_str_eq(errs.lines[0], "/nonexistent/freshcache.yaml:1:1: cannot read the config "
                                    "file: No such file or directory");
    config_errors_free(&errs);
}
END_TEST

/* A NULL errs is allowed: the caller only wants to know if it loads. */
START_TEST(null_errs)
{
    ck_assert_ptr_null(config_load_string(NAME, "cache: 1\n", 9, NULL));
    struct fc_config *cfg = config_load_string(NAME, ORIGIN, strlen(ORIGIN), NULL);
    ck_assert_ptr_nonnull(cfg);
    config_free(cfg);
    config_free(NULL);
    config_errors_free(NULL);
}
END_TEST

/* ------------------------------------------------------------- errors */

START_TEST(error_unknown_key)
{
    EXPECT_ERRORS(ORIGIN "cache:\n  memroy: 1GiB\n",
        "t.yaml:4:3: unknown key \"memroy\" in cache (valid keys: memory, max_object_size, "
        "etag, coalesce, after_purge)");
    EXPECT_ERRORS(ORIGIN "colour: blue\n",
        "t.yaml:3:1: unknown key \"colour\" at the top level (valid keys: listen, "
        "trusted_proxies, workers, origin, cache, admin, state_dir, log, limits, metrics, "
        "cluster, policies)");
    EXPECT_ERRORS(ORIGIN "limits:\n  drain_time: 10s\n",
        "t.yaml:4:3: unknown key \"drain_time\" in limits (valid keys: max_header_bytes, "
        "max_connections, client_timeout, drain_timeout, handshake_timeout, "
        "max_concurrent_streams, header_timeout, min_body_rate)");
    EXPECT_ERRORS(ORIGIN "metrics:\n  listen: 0.0.0.0:9101\n",
        "t.yaml:4:11: metrics.listen: \"0.0.0.0:9101\" is not a loopback address: the metrics "
        "endpoint has no authentication (use 127.0.0.1:PORT or [::1]:PORT, or the admin "
        "socket's /metrics)");
    EXPECT_ERRORS(ORIGIN "listen:\n  - address: 127.0.0.1:80\n    port: 80\n",
        "t.yaml:5:5: unknown key \"port\" in listen[0] (valid keys: address, tls, http2)");
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n    match: { host: x }\n",
        "t.yaml:5:14: unknown key \"host\" in policies[0].match (valid keys: path, content_type)");
    EXPECT_ERRORS("origin:\n  url: http://127.0.0.1:8000\n  tls: { verfy: false }\n",
        "t.yaml:3:10: unknown key \"verfy\" in origin.tls (valid keys: verify, ca_file, "
        "server_name, certificate, key)");
}
END_TEST

START_TEST(error_wrong_type)
{
    EXPECT_ERRORS(ORIGIN "cache:\n  memory: { a: 1 }\n",
        "t.yaml:4:11: cache.memory: expected a single value, got a mapping");
    EXPECT_ERRORS(ORIGIN "cache: big\n",
        "t.yaml:3:8: cache: expected a mapping (key: value), got the value \"big\"");
    EXPECT_ERRORS(ORIGIN "state_dir: [a, b]\n",
        "t.yaml:3:12: state_dir: expected a single value, got a list");
    EXPECT_ERRORS(ORIGIN "listen: 127.0.0.1:8080\n",
        "t.yaml:3:9: listen: expected a list of listeners (- address: HOST:PORT), got the "
        "value \"127.0.0.1:8080\"");
    EXPECT_ERRORS(ORIGIN "policies: { name: x }\n",
        "t.yaml:3:11: policies: expected a list of policies (- name: NAME), got a mapping");
    EXPECT_ERRORS("- a\n- b\n",
        "t.yaml:1:1: top level: expected a mapping (key: value), got a list");
    EXPECT_ERRORS(ORIGIN "state_dir:\n",
        "t.yaml:3:11: state_dir: missing value");
    EXPECT_ERRORS(ORIGIN "state_dir: \"\"\n",
        "t.yaml:3:12: state_dir: missing value");
    EXPECT_ERRORS(ORIGIN "state_dir: \"/var/\\0lib\"\n",
        "t.yaml:3:12: state_dir: value contains a NUL byte");
    EXPECT_ERRORS(ORIGIN "[a]: 1\n",
        "t.yaml:3:1: top level: a key must be a plain name, got a list");
    EXPECT_ERRORS(ORIGIN "cache:\n  coalesce: maybe\n",
        "t.yaml:4:13: cache.coalesce: invalid boolean \"maybe\" (expected true or false)");
}
END_TEST

START_TEST(error_bad_size)
{
    EXPECT_ERRORS(ORIGIN "cache:\n  memory: 12XB\n",
        "t.yaml:4:11: cache.memory: invalid size \"12XB\" (use e.g. 256MiB)");
    EXPECT_ERRORS(ORIGIN "cache:\n  memory: 1.5GB\n",
        "t.yaml:4:11: cache.memory: invalid size \"1.5GB\" (use e.g. 256MiB)");
    EXPECT_ERRORS(ORIGIN "cache:\n  memory: 0\n",
        "t.yaml:4:11: cache.memory: \"0\" is too small (at least 1B)");
    EXPECT_ERRORS(ORIGIN "limits:\n  max_header_bytes: 100\n",
        "t.yaml:4:21: limits.max_header_bytes: \"100\" is too small (at least 1KiB)");
    EXPECT_ERRORS(ORIGIN "limits:\n  max_header_bytes: 2MiB\n",
        "t.yaml:4:21: limits.max_header_bytes: \"2MiB\" is too large (at most 1MiB)");
    EXPECT_ERRORS(ORIGIN "cache:\n  memory: 64MiB\n  max_object_size: 128MiB\n",
        "t.yaml:5:20: cache.max_object_size: 128MiB is larger than cache.memory (64MiB)");
    /* A rejected memory value is not compared against. */
    EXPECT_ERRORS(ORIGIN "cache:\n  memory: 1TiB\n  max_object_size: 512MiB\n",
        "t.yaml:4:11: cache.memory: invalid size \"1TiB\" (use e.g. 256MiB)");
}
END_TEST

START_TEST(error_bad_duration)
{
    EXPECT_ERRORS("origin:\n  url: http://127.0.0.1:8000\n  connect_timeout: 2sec\n",
        "t.yaml:3:20: origin.connect_timeout: invalid duration \"2sec\" (use e.g. 250ms, 30s, "
        "5m, 1h or 365d)");
    EXPECT_ERRORS("origin:\n  url: http://127.0.0.1:8000\n  read_timeout: 0s\n",
        "t.yaml:3:17: origin.read_timeout: must be greater than 0");
    EXPECT_ERRORS(ORIGIN "limits: { client_timeout: -5s }\n",
        "t.yaml:3:27: limits.client_timeout: invalid duration \"-5s\" (use e.g. 250ms, 30s, "
        "5m, 1h or 365d)");
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n    set_cookie: keep\n",
        "t.yaml:5:17: policies[0].set_cookie: invalid value \"keep\" (expected pass, store or "
        "strip)");
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n    ttl: forever\n",
        "t.yaml:5:10: policies[0].ttl: invalid ttl \"forever\" (expected origin or a duration "
        "such as 0s, 10m, 365d)");
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n    stale_if_error: 1.5h\n",
        "t.yaml:5:21: policies[0].stale_if_error: invalid duration \"1.5h\" (use e.g. 250ms, "
        "30s, 5m, 1h or 365d)");
}
END_TEST

START_TEST(error_bad_enum)
{
    EXPECT_ERRORS(ORIGIN "cache:\n  etag: strong\n",
        "t.yaml:4:9: cache.etag: invalid value \"strong\" (expected content-hash or origin)");
    EXPECT_ERRORS(ORIGIN "log:\n  level: verbose\n",
        "t.yaml:4:10: log.level: invalid value \"verbose\" (expected error, warn, info or debug)");
    EXPECT_ERRORS(ORIGIN "log:\n  format: JSON\n",
        "t.yaml:4:11: log.format: invalid value \"JSON\" (expected text or json)");
    EXPECT_ERRORS(ORIGIN "cache: { after_purge: Refetch }\n",
        "t.yaml:3:23: cache.after_purge: invalid value \"Refetch\" (expected refetch or "
        "revalidate)");
    EXPECT_ERRORS("origin:\n  url: http://127.0.0.1:8000\n  host_header: client\n",
        "t.yaml:3:16: origin.host_header: invalid value \"client\" (expected preserve or origin)");
    EXPECT_ERRORS(ORIGIN "workers: many\n",
        "t.yaml:3:10: workers: invalid value \"many\" (expected auto or a number of threads "
        "from 1 to 1024)");
    EXPECT_ERRORS(ORIGIN "workers: 0\n",
        "t.yaml:3:10: workers: invalid value \"0\" (expected auto or a number of threads "
        "from 1 to 1024)");
    EXPECT_ERRORS(ORIGIN "limits:\n  max_connections: 10k\n",
        "t.yaml:4:20: limits.max_connections: invalid number \"10k\" (expected a whole number "
        "from 1 to 4294967295)");
    EXPECT_ERRORS(ORIGIN "admin:\n  mode: \"0866\"\n",
        "t.yaml:4:9: admin.mode: invalid file mode \"0866\" (expected octal permissions such "
        "as \"0660\")");
    EXPECT_ERRORS(ORIGIN "admin:\n  mode: 4770\n",
        "t.yaml:4:9: admin.mode: invalid file mode \"4770\" (expected octal permissions such "
        "as \"0660\")");
}
END_TEST

START_TEST(error_bad_regex)
{
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n    match: { path: '(' }\n",
        "t.yaml:5:20: policies[0].match.path: invalid regular expression '(': "
        "Unmatched ( or \\(; the value is a POSIX extended regular expression (see regex(7))");
    /* shown as written in YAML single quotes: a backslash is one, not two */
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n    match: { path: '(\\.js$' }\n",
        "t.yaml:5:20: policies[0].match.path: invalid regular expression '(\\.js$': "
        "Unmatched ( or \\(; the value is a POSIX extended regular expression (see regex(7))");
    /* a quote doubled, as YAML writes it; a control byte escaped */
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n    match: { path: \"(it's\\t\" }\n",
        "t.yaml:5:20: policies[0].match.path: invalid regular expression '(it''s\\x09': "
        "Unmatched ( or \\(; the value is a POSIX extended regular expression (see regex(7))");
}
END_TEST

/* The usual slip: a glob where a regular expression is expected.  Say so,
 * with the expression to write instead. */
START_TEST(error_glob_for_regex)
{
    static const struct { const char *glob, *re; } cases[] = {
        { "*.js", "\\.js$" },
        { "*.min.css", "\\.min\\.css$" },
        { "**/*.png", "/.*\\.png$" },
        { "?.txt", "^.\\.txt$" },
        { "*/static/*", "/static/" },
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(cases); i++) {
        char yaml[256], want[512];
        snprintf(yaml, sizeof yaml, ORIGIN "policies:\n  - name: a\n    match: { path: '%s' }\n",
                 cases[i].glob);
        snprintf(want, sizeof want, "t.yaml:5:20: policies[0].match.path: invalid regular "
                 "expression '%s': Invalid preceding regular expression; the value is a POSIX "
                 "extended regular expression, not a glob: for %s write '%s'", cases[i].glob,
                 cases[i].glob, cases[i].re);
        EXPECT_ERRORS(yaml, want);
    }
    /* "*" alone would become an expression that matches everything: no
     * suggestion, only the hint */
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n    match: { path: '*' }\n",
        "t.yaml:5:20: policies[0].match.path: invalid regular expression '*': "
        "Invalid preceding regular expression; the value is a POSIX extended regular "
        "expression (see regex(7))");
    /* and every suggestion compiles and means what the glob meant */
    struct fc_config *cfg = load_ok(ORIGIN "policies:\n  - name: a\n    match: { path: '\\.js$' }\n");
    ck_assert_int_eq(regexec(&cfg->policies[0].path_re, "/app.3f.js", 0, NULL, 0), 0);
    ck_assert_int_ne(regexec(&cfg->policies[0].path_re, "/app.json", 0, NULL, 0), 0);
    config_free(cfg);
}
END_TEST

START_TEST(error_bad_url)
{
    static const struct { const char *url; const char *msg; } cases[] = {
        { "ftp://127.0.0.1", "must start with http:// or https://" },
        { "127.0.0.1:8000", "must start with http:// or https://" },
        { "http://", "missing host" },
        { "http://:80", "missing host" },
        { "http://127.0.0.1:0", "the port must be a number from 1 to 65535" },
        { "http://127.0.0.1:65536", "the port must be a number from 1 to 65535" },
        { "http://127.0.0.1:", "the port must be a number from 1 to 65535" },
        { "http://127.0.0.1:80x", "the port must be a number from 1 to 65535" },
        { "http://[::1", "missing ']' after the IPv6 address" },
        { "http://[::1]x", "the port must be a number from 1 to 65535" },
        { "http://[zz::1]", "invalid IPv6 address" },
        { "http://exa mple.com", "invalid host name" },
        { "http://user:pw@127.0.0.1", "user credentials in the URL are not supported" },
        { "http://127.0.0.1/api", "a path is not supported; the client's path is forwarded "
                                  "unchanged" },
        { "http://127.0.0.1/?a=1", "a path is not supported; the client's path is forwarded "
                                   "unchanged" },
        { "http://127.0.0.1?a=1", "a query or fragment is not allowed" },
        { "http://no-such-host.invalid", "cannot resolve \"no-such-host.invalid\": " },
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(cases); i++) {
        char yaml[256], want[512];
        struct config_errors errs = { 0 };
        snprintf(yaml, sizeof yaml, "origin:\n  url: '%s'\n", cases[i].url);
        snprintf(want, sizeof want, "t.yaml:2:8: origin.url: invalid origin URL \"%s\": %s",
                 cases[i].url, cases[i].msg);
        ck_assert_ptr_null(load(yaml, &errs));
        ck_assert_msg(errs.n == 1, "%s: %zu errors", cases[i].url, errs.n);
        /* The resolver's own text varies by libc and network: prefix only. */
        ck_assert_msg(strncmp(errs.lines[0], want, strlen(want)) == 0, "got %s\nwant %s",
                      errs.lines[0], want);
        config_errors_free(&errs);
    }
}
END_TEST

START_TEST(error_bad_listen_address)
{
    static const struct { const char *addr; const char *why; } cases[] = {
        { "127.0.0.1", "missing :PORT" },
        { "8080", "missing :PORT" },
        { ":8080", "missing or overlong address" },
        { "127.0.0.1:0", "the port must be a number from 1 to 65535" },
        { "127.0.0.1:65536", "the port must be a number from 1 to 65535" },
        { "127.0.0.1:http", "the port must be a number from 1 to 65535" },
        { "localhost:8080", "not a numeric IPv4 address" },
        { "1.2.3:80", "not a numeric IPv4 address" },
        { "::1:80", "an IPv6 address must be in brackets" },
        { "[::1]80", "missing :PORT" },
        { "[::1:80", "missing ']' after the IPv6 address" },
        { "[127.0.0.1]:80", "not a numeric IPv6 address" },
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(cases); i++) {
        char yaml[256], want[512];
        snprintf(yaml, sizeof yaml, ORIGIN "listen:\n  - address: '%s'\n", cases[i].addr);
        snprintf(want, sizeof want, "t.yaml:4:14: listen[0].address: invalid address \"%s\": "
                 "%s (use e.g. 127.0.0.1:8080, [::1]:8080 or *:8080)", cases[i].addr,
                 cases[i].why);
        EXPECT_ERRORS(yaml, want);
    }
    EXPECT_ERRORS(ORIGIN "listen:\n  - tls: { certificate: c.pem, key: k.pem }\n",
        "t.yaml:4:5: listen[0]: address is required");
    EXPECT_ERRORS(ORIGIN "listen:\n  - address: 0.0.0.0:443\n    tls: { certificate: c.pem }\n",
        "t.yaml:5:10: listen[0].tls: both certificate and key are required");
    EXPECT_ERRORS(ORIGIN "listen: []\n",
        "t.yaml:3:9: listen: no listeners; give at least one (- address: HOST:PORT)");
    EXPECT_ERRORS(ORIGIN "listen:\n  - address: 127.0.0.1:80\n  - address: 127.0.0.1:80\n",
        "t.yaml:5:5: listen[1]: \"127.0.0.1:80\" is already listened on by listen[0]");
}
END_TEST

START_TEST(error_duplicate_key)
{
    EXPECT_ERRORS(ORIGIN "cache:\n  memory: 1GiB\n  etag: origin\n  memory: 2GiB\n",
        "t.yaml:6:3: duplicate key \"memory\" in cache (first at line 4)");
    EXPECT_ERRORS(ORIGIN "state_dir: /a\nstate_dir: /b\n",
        "t.yaml:4:1: duplicate key \"state_dir\" in the top level (first at line 3)");
}
END_TEST

START_TEST(error_yaml_syntax)
{
    EXPECT_ERRORS(ORIGIN "state_dir: a: b\n",
        "t.yaml:3:13: YAML syntax error: mapping values are not allowed in this context");
    EXPECT_ERRORS(ORIGIN "cache:\n  memory: 1GiB\n etag: origin\n",
        "t.yaml:5:2: YAML syntax error: did not find expected key (while parsing a block "
        "mapping at line 1, column 1)");
    EXPECT_ERRORS("origin: {url: http://127.0.0.1:8000\n",
        "t.yaml:2:1: YAML syntax error: did not find expected ',' or '}' (while parsing a flow "
        "mapping at line 1, column 9)");
    EXPECT_ERRORS("origin:\n  url: \"http://127.0.0.1:8000\n",
        "t.yaml:3:1: YAML syntax error: found unexpected end of stream (while scanning a "
        "quoted scalar at line 2, column 8)");
    EXPECT_ERRORS(ORIGIN "policies: [\n",
        "t.yaml:4:1: YAML syntax error: did not find expected node content (while parsing "
        "a flow node at line 4, column 1)");
    EXPECT_ERRORS("origin:\n\turl: http://127.0.0.1:8000\n",
        "t.yaml:2:1: YAML syntax error: found character that cannot start any token (while "
        "scanning for the next token at line 2, column 1)");
    EXPECT_ERRORS(ORIGIN "state_dir: *nope\n",
        "t.yaml:3:12: YAML syntax error: found undefined alias");
    EXPECT_ERRORS(ORIGIN "---\nstate_dir: /x\n",
        "t.yaml:3:1: only one YAML document is allowed in the config file");
    EXPECT_ERRORS(ORIGIN "state_dir: \"\xff\"\n",
        "t.yaml:3:13: invalid input: invalid leading UTF-8 octet (byte 0xff)");
}
END_TEST

START_TEST(error_missing_origin_url)
{
    /* No origin section: where the document ends, where one would add it
     * (1:1 only when the file is empty) */
    EXPECT_ERRORS("",
        "t.yaml:1:1: origin.url is required: the file has no origin section; add one with "
        "the origin server's address, e.g. origin: { url: http://127.0.0.1:8000 }");
    EXPECT_ERRORS("# freshcache\n# comments first\nworkers: 2\ncache:\n  coalesce: false\n",
        "t.yaml:6:1: origin.url is required: the file has no origin section; add one with "
        "the origin server's address, e.g. origin: { url: http://127.0.0.1:8000 }");
    EXPECT_ERRORS("# only a comment\n",
        "t.yaml:2:1: origin.url is required: the file has no origin section; add one with "
        "the origin server's address, e.g. origin: { url: http://127.0.0.1:8000 }");
    /* An origin section without url: at the section */
    EXPECT_ERRORS("origin: http://127.0.0.1:8000\n",
        "t.yaml:1:9: origin: expected a mapping (key: value), got the value "
        "\"http://127.0.0.1:8000\"");
    EXPECT_ERRORS("cache:\n  coalesce: false\norigin:\n  host_header: origin\n",
        "t.yaml:3:1: origin.url is required: the origin server's address, e.g. "
        "http://127.0.0.1:8000");
}
END_TEST

START_TEST(error_policies)
{
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n    match: { path: x }\n  - name: a\n",
        "t.yaml:6:11: policies[1].name: duplicate policy name \"a\" (first at line 4)");
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: default\n  - name: html\n"
                  "    match: { content_type: text/html }\n",
        "t.yaml:4:11: policies[0].name: the \"default\" policy must be the last one");
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: all\n    ttl: 1h\n  - name: b\n",
        "t.yaml:4:5: policies[0]: policy \"all\" has no match, so it would catch every "
        "request; only the last policy may omit match");
    EXPECT_ERRORS(ORIGIN "policies:\n  - ttl: 1h\n",
        "t.yaml:4:5: policies[0]: name is required");
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a b\n",
        "t.yaml:4:11: policies[0].name: invalid policy name \"a b\" (use letters, digits, "
        "'-', '_' and '.')");
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n    match: {}\n",
        "t.yaml:5:12: policies[0].match: empty; give path and/or content_type, or remove "
        "match to match everything");
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n    match: { content_type: [] }\n",
        "t.yaml:5:28: policies[0].match.content_type: empty list; give at least one media type");
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n    match: { content_type: [text/html, html] }\n",
        "t.yaml:5:40: policies[0].match.content_type[1]: invalid media type \"html\" (use e.g. "
        "text/html)");
    EXPECT_ERRORS(ORIGIN "policies:\n  - name: a\n"
                  "    response_cache_control: \"no-cache\\r\\nX: 1\"\n",
        "t.yaml:5:29: policies[0].response_cache_control: control characters are not allowed "
        "in a header value");
}
END_TEST

/* What the generation store can hold (CONFIG_MAX_POLICIES,
 * CONFIG_POLICY_NAME_MAX): refused here, not at start. */
START_TEST(error_policy_limits)
{
    char name[CONFIG_POLICY_NAME_MAX + 2];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    char yaml[512], want[256];
    snprintf(yaml, sizeof yaml, ORIGIN "policies:\n  - name: %s\n", name);
    snprintf(want, sizeof want, "t.yaml:4:11: policies[0].name: policy name is %d characters "
             "long; at most %d", CONFIG_POLICY_NAME_MAX + 1, CONFIG_POLICY_NAME_MAX);
    EXPECT_ERRORS(yaml, want);
    name[CONFIG_POLICY_NAME_MAX] = '\0';
    snprintf(yaml, sizeof yaml, ORIGIN "policies:\n  - name: %s\n", name);
    config_free(load_ok(yaml));

    /* CONFIG_MAX_POLICIES is fine, one more is not */
    static char big[16384];
    size_t o = (size_t)snprintf(big, sizeof big, ORIGIN "policies:\n");
    for (int i = 0; i < CONFIG_MAX_POLICIES; i++)
        o += (size_t)snprintf(big + o, sizeof big - o, "  - { name: p%d, match: { path: x } }\n", i);
    struct fc_config *cfg = load_ok(big);
    ck_assert_uint_eq(cfg->n_policies, CONFIG_MAX_POLICIES);
    config_free(cfg);
    snprintf(big + o, sizeof big - o, "  - { name: last }\n");
    snprintf(want, sizeof want, "t.yaml:4:3: policies: %d policies; at most %d",
             CONFIG_MAX_POLICIES + 1, CONFIG_MAX_POLICIES);
    EXPECT_ERRORS(big, want);
}
END_TEST

/* config_error_at: where a key was written (a value at the value, a
 * section at its key), else the nearest enclosing key, else the end of
 * the document. */
START_TEST(error_at_positions)
{
    struct fc_config *cfg = load_ok("# c\n" ORIGIN "listen:\n  - address: 127.0.0.1:1\n"
                                    "    tls: { certificate: c, key: k }\n"
                                    "admin:\n  mode: \"0600\"\n");
    struct config_errors errs = { 0 };
    config_error_at(cfg, "origin.url", &errs, "a %d", 1);
    config_error_at(cfg, "listen[0].tls", &errs, "b");
    config_error_at(cfg, "admin.socket", &errs, "c");        /* not written: its section */
    config_error_at(cfg, "state_dir", &errs, "d");           /* nothing: the end */
    config_error_at(cfg, "listen[0].tls.key", &errs, "e");
    ck_assert_uint_eq(errs.n, 5);
    ck_assert_str_eq(errs.lines[0], "t.yaml:3:8: a 1");
    ck_assert_str_eq(errs.lines[1], "t.yaml:6:5: b");
    ck_assert_str_eq(errs.lines[2], "t.yaml:7:1: c");
    ck_assert_str_eq(errs.lines[3], "t.yaml:9:1: d");
    ck_assert_str_eq(errs.lines[4], "t.yaml:6:33: e");
    ck_assert(config_written(cfg, "admin.mode"));
    ck_assert(config_written(cfg, "admin"));
    ck_assert(!config_written(cfg, "admin.socket"));
    ck_assert(!config_written(cfg, "admin.mod"));
    ck_assert(!config_written(cfg, "state_dir"));

    /* file order, as a compiler lists them */
    config_errors_sort(&errs, 1, "t.yaml");
    ck_assert_str_eq(errs.lines[0], "t.yaml:3:8: a 1");
    ck_assert_str_eq(errs.lines[1], "t.yaml:6:5: b");
    ck_assert_str_eq(errs.lines[2], "t.yaml:6:33: e");
    ck_assert_str_eq(errs.lines[3], "t.yaml:7:1: c");
    ck_assert_str_eq(errs.lines[4], "t.yaml:9:1: d");
    config_errors_free(&errs);
    config_free(cfg);
}
END_TEST

START_TEST(error_admin_socket_too_long)
{
    char yaml[512], want[512];
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    snprintf(yaml, sizeof yaml, ORIGIN "admin:\n  socket: %s\n", longpath);
    snprintf(want, sizeof want, "t.yaml:4:11: admin.socket: path is 199 bytes long; a Unix "
             "socket path can have at most 107");
    EXPECT_ERRORS(yaml, want);
}
END_TEST

/* All problems are reported in one run, in file order. */
START_TEST(errors_collected)
{
    EXPECT_ERRORS(
        "listen:\n"
        "  - address: 127.0.0.1\n"
        "workers: lots\n"
        "origin:\n"
        "  url: http://127.0.0.1:8000/app\n"
        "  read_timeout: 30 s\n"
        "cache:\n"
        "  memory: 12XB\n"
        "  etag: weak\n"
        "  colour: blue\n"
        "policies:\n"
        "  - name: x\n"
        "    match: { path: '(' }\n",
        "t.yaml:2:14: listen[0].address: invalid address \"127.0.0.1\": missing :PORT (use e.g. "
        "127.0.0.1:8080, [::1]:8080 or *:8080)",
        "t.yaml:3:10: workers: invalid value \"lots\" (expected auto or a number of threads "
        "from 1 to 1024)",
        "t.yaml:5:8: origin.url: invalid origin URL \"http://127.0.0.1:8000/app\": a path is "
        "not supported; the client's path is forwarded unchanged",
        "t.yaml:6:17: origin.read_timeout: invalid duration \"30 s\" (use e.g. 250ms, 30s, 5m, "
        "1h or 365d)",
        "t.yaml:8:11: cache.memory: invalid size \"12XB\" (use e.g. 256MiB)",
        "t.yaml:9:9: cache.etag: invalid value \"weak\" (expected content-hash or origin)",
        "t.yaml:10:3: unknown key \"colour\" in cache (valid keys: memory, max_object_size, "
        "etag, coalesce, after_purge)",
        "t.yaml:13:20: policies[0].match.path: invalid regular expression '(': "
        "Unmatched ( or \\(; the value is a POSIX extended regular expression (see regex(7))");
}
END_TEST

/* Errors are appended to what the caller's list already holds. */
START_TEST(errors_appended)
{
    struct config_errors errs = { 0 };
    ck_assert_ptr_null(load("cache: 1\n", &errs));
    size_t first = errs.n;
    ck_assert_uint_gt(first, 0);
    ck_assert_ptr_null(load("cache: 1\n", &errs));
    ck_assert_uint_eq(errs.n, 2 * first);
    config_errors_free(&errs);
}
END_TEST

/* Values in messages are quoted and escaped, and cut when long. */
START_TEST(error_value_quoting)
{
    EXPECT_ERRORS(ORIGIN "cache:\n  etag: \"a\\tb\\\"c\"\n",
        "t.yaml:4:9: cache.etag: invalid value \"a\\x09b\\\"c\" (expected content-hash or origin)");
    char yaml[512];
    char longv[301];
    memset(longv, 'x', 300);
    longv[300] = '\0';
    snprintf(yaml, sizeof yaml, ORIGIN "cache:\n  etag: %s\n", longv);
    struct config_errors errs = { 0 };
    ck_assert_ptr_null(load(yaml, &errs));
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_ptr_nonnull(strstr(errs.lines[0], "xxx...\" (expected"));
    ck_assert_uint_lt(strlen(errs.lines[0]), 200);
    config_errors_free(&errs);
}
END_TEST

/* An alias cycle must not send the loader into a loop. */
START_TEST(alias_cycle)
{
    EXPECT_ERRORS(ORIGIN "policies: &a [*a]\n",
        "t.yaml:3:11: policies[0]: expected a mapping (key: value), got a list");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("values");
    tcase_add_test(tc, size_valid);
    tcase_add_test(tc, size_invalid);
    tcase_add_test(tc, duration_valid);
    tcase_add_test(tc, duration_invalid);
    suite_add_tcase(s, tc);

    tc = tcase_create("load");
    tcase_add_test(tc, spec_example_loads);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, non_default_values);
    tcase_add_test(tc, origin_url_forms);
    tcase_add_test(tc, small_memory_shrinks_default_max_object_size);
    tcase_add_test(tc, content_type_list);
    tcase_add_test(tc, shipped_config_loads);
    tcase_add_test(tc, load_from_file);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, null_errs);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, error_unknown_key);
    tcase_add_test(tc, error_wrong_type);
    tcase_add_test(tc, error_bad_size);
    tcase_add_test(tc, error_bad_duration);
    tcase_add_test(tc, error_bad_enum);
    tcase_add_test(tc, error_bad_regex);
    tcase_add_test(tc, error_glob_for_regex);
    tcase_add_test(tc, error_bad_url);
    tcase_add_test(tc, error_bad_listen_address);
    tcase_add_test(tc, error_duplicate_key);
    tcase_add_test(tc, error_yaml_syntax);
    tcase_add_test(tc, error_missing_origin_url);
    tcase_add_test(tc, error_policies);
    tcase_add_test(tc, error_policy_limits);
    tcase_add_test(tc, error_at_positions);
    tcase_add_test(tc, error_admin_socket_too_long);
    tcase_add_test(tc, errors_collected);
    tcase_add_test(tc, errors_appended);
    tcase_add_test(tc, error_value_quoting);
    tcase_add_test(tc, alias_cycle);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
