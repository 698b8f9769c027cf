/*
 * config.h — the YAML configuration (../../docs/freshcache.yaml.5.scd,
 * conf/freshcache.yaml) parsed into one immutable struct.
 *
 * Ownership: config_load() returns a struct fc_config the caller owns and
 * frees with config_free().  Workers hold a pointer to the config in force
 * while they serve; a reload builds a whole new struct and swaps it, so a
 * config is never modified after it is returned.
 *
 * Errors are collected, not fatal one by one: every problem found is
 * appended to `errs` as "FILE:LINE:COLUMN: message" (line and column are
 * 1-based, pointing at the offending key or value), and config_load()
 * returns NULL if there was at least one.
 */
#ifndef FRESHCACHE_CONFIG_H
#define FRESHCACHE_CONFIG_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "freshcache/base/log.h"
#include "freshcache/config/cidr.h"
#include "freshcache/config/redis_url.h"

struct config_errors {
    char **lines;       /* each "FILE:LINE:COLUMN: message", malloc'd */
    size_t n;
};
void config_errors_free(struct config_errors *errs);
/* Put lines[from..] in file order, as a compiler would list them (all of
 * them about the file `name`). */
void config_errors_sort(struct config_errors *errs, size_t from, const char *name);

/* Limits the generation store (cache/generation.h) is sized for: more
 * policies, or a longer name, could not be given a generation each. */
#define CONFIG_MAX_POLICIES 64
#define CONFIG_POLICY_NAME_MAX 63
/* Longest extension a policy's extension_types may name ("webmanifest"). */
#define CONFIG_EXTENSION_MAX 16
/* A policy's negative_ttl when it gives none. */
#define DEFAULT_NEGATIVE_TTL_MS (10 * 1000)

/* A place in the file, 1-based, for errors found after loading. */
struct fc_mark {
    unsigned line, column;
};

/* Where one key was written: "origin.url", "listen[1].tls".  The mark is
 * the value's for a single value, the key's for a mapping or a list. */
struct fc_where {
    char *path;
    struct fc_mark at;
};

/* A certificate chain (PEM, leaf first) and its private key, paths
 * resolved against the config file's directory.  Loaded and checked by
 * the server (server/tls.h), which reports problems at their keys
 * (config_error_at). */
struct fc_tls_cert {
    char *certificate;
    char *key;
};

enum fc_tls_version { FC_TLS_1_2 = 12, FC_TLS_1_3 = 13 };

struct fc_listen_tls {
    struct fc_tls_cert *certs;      /* the first is the default; SNI picks the others */
    size_t n_certs;
    int min_version, max_version;   /* enum fc_tls_version; default 1.2 .. 1.3 */
    char *ciphers;                  /* TLS 1.2 cipher list, NULL: forward-secret AEAD only */
};

struct fc_listen {
    char *address;                  /* as written, e.g. "127.0.0.1:8080", "[::1]:80" */
    struct sockaddr_storage addr;   /* parsed numeric address */
    socklen_t addrlen;
    struct fc_listen_tls *tls;      /* NULL when plain HTTP */
    bool http2;                     /* cleartext HTTP/2 with prior knowledge too */
};

enum host_header_mode { HOST_HEADER_PRESERVE = 0, HOST_HEADER_ORIGIN };
enum etag_mode { ETAG_CONTENT_HASH = 0, ETAG_ORIGIN };
/* A policy's way with responses carrying Set-Cookie: pass (stored only
 * when public or s-maxage), store (RFC 9111: stored and replayed), strip
 * (stored, served without Set-Cookie). */
enum set_cookie_mode { SET_COOKIE_PASS = 0, SET_COOKIE_STORE, SET_COOKIE_STRIP };
enum after_purge_mode { AFTER_PURGE_REFETCH = 0, AFTER_PURGE_REVALIDATE };
enum access_log_format { ACCESS_LOG_TEXT = 0, ACCESS_LOG_JSON };

enum on_disconnect_mode { ON_DISCONNECT_REVALIDATE = 0, ON_DISCONNECT_SERVE };

/* cluster: nodes sharing generations and purges through Redis
 * (docs/fleet.md).  Read at start only: a reload keeps the running one. */
struct fc_cluster {
    bool enabled;                   /* the config has a cluster: section */
    char *redis;                    /* as written; may hold a password: never log it */
    struct redis_url url;           /* parsed; url.password from the URL or password_file */
    char *redis_display;            /* the address with the password as "***", for logs */
    char *password_file;            /* as written, or NULL */
    char *name;                     /* the cluster; default "freshcache" */
    char *node;                     /* this node; default the host name */
    uint64_t ack_timeout_ms;        /* default 2s */
    uint64_t max_disconnect_ms;     /* default 10s */
    enum on_disconnect_mode on_disconnect;  /* default revalidate */
};

struct fc_origin {
    char *url;                      /* as written */
    bool https;
    char *host;                     /* host part of url, no brackets */
    uint16_t port;                  /* explicit or 80/443 */
    char *authority;                /* "host" or "host:port" as for a Host header */
    struct sockaddr_storage addr;   /* resolved at load time */
    socklen_t addrlen;
    enum host_header_mode host_header;
    uint64_t connect_timeout_ms;    /* default 2s */
    uint64_t read_timeout_ms;       /* default 30s */
    bool tls_verify;                /* default true */
    char *tls_ca_file;              /* NULL = system default */
    char *tls_server_name;          /* NULL = host */
    struct fc_tls_cert tls_client;  /* client certificate for mTLS (certificate NULL: none) */
};

/* One entry of a policy's extension_types: what the extension `ext`
 * claims, replacing the built-in entry (http/ext_types.h). */
struct fc_ext_types {
    char *ext;                      /* lower-case, no dot */
    char **types;                   /* lower-case patterns: "type/sub", or a star subtype */
    size_t n_types;                 /* 0: the extension claims nothing (no check) */
};

struct fc_policy {
    char *name;
    char *path_pattern;             /* NULL when not matched on path */
    regex_t path_re;                /* compiled REG_EXTENDED|REG_NOSUB when path_pattern */
    char **content_types;           /* lower-cased media types, no parameters */
    size_t n_content_types;
    bool ttl_origin;                /* true: RFC 9111 freshness from origin headers */
    uint64_t ttl_ms;                /* when !ttl_origin */
    char *response_cache_control;   /* NULL: pass the origin's through */
    bool has_stale_while_revalidate;
    uint64_t stale_while_revalidate_ms;
    bool has_stale_if_error;
    uint64_t stale_if_error_ms;
    /* keep_after_deploy: a stored copy is served when the origin answers
     * 404/410 within this long of storing it, generation bumps or not;
     * 0: never (the default). */
    uint64_t keep_after_deploy_ms;
    bool early_hints;               /* 103 with the stored copy's preloads */
    enum set_cookie_mode set_cookie;    /* default pass */
    /* 404, 405, 410, 414 and 501 without explicit freshness from the
     * origin: how long they are kept (obj_policy.h).  Default 10s; 0: such
     * responses are not stored. */
    uint64_t negative_ttl_ms;
    struct fc_ext_types *ext_types; /* web cache deception: the policy's own entries */
    size_t n_ext_types;
};

struct fc_config {
    char *path;                     /* file it was read from */

    struct fc_listen *listen;
    size_t n_listen;

    unsigned workers;               /* resolved: "auto" becomes the CPU count */

    /* Peers whose X-Forwarded-* / Forwarded / X-Original-URL fields reach
     * the origin (server/fetch_request.c); default none. */
    struct cidr *trusted_proxies;
    size_t n_trusted_proxies;

    struct fc_origin origin;

    struct {
        uint64_t memory;            /* default 256MiB */
        uint64_t max_object_size;   /* default 16MiB */
        enum etag_mode etag;        /* default content-hash */
        bool coalesce;              /* default true */
        enum after_purge_mode after_purge;  /* default refetch */
    } cache;

    struct {
        char *socket;               /* default /run/freshcache/admin.sock */
        unsigned mode;              /* default 0660 */
    } admin;

    char *state_dir;                /* default /var/lib/freshcache */

    struct {
        char *access;               /* path, "stdout" or "off"; default stdout */
        enum log_level level;       /* default info */
        enum access_log_format format;  /* default text; json: one object a line */
    } log;

    struct {
        uint64_t max_header_bytes;  /* default 16KiB */
        unsigned max_connections;   /* default 10000 */
        uint64_t client_timeout_ms; /* default 30s */
        uint64_t drain_timeout_ms;  /* default 10s: how long SIGTERM waits for in-flight responses */
        uint64_t handshake_timeout_ms;  /* default 10s: a TLS handshake must finish within this */
        unsigned max_concurrent_streams;    /* default 100: HTTP/2 streams per connection */
        uint64_t header_timeout_ms; /* default 10s: a whole request head, from its first byte (408) */
        uint64_t min_body_rate;     /* default 1KiB: bytes/s a request body must average over
                                     * each header_timeout (408); 0: no minimum */
    } limits;

    struct {
        char *listen;               /* NULL: off; else a loopback host:port serving GET /metrics */
        struct sockaddr_storage addr;
        socklen_t addrlen;
    } metrics;

    struct fc_cluster cluster;

    struct fc_policy *policies;     /* in file order; first match wins */
    size_t n_policies;

    /* Where each key was written, and where the document ends (the place
     * to add a key it lacks): for config_error_at(). */
    struct fc_where *where;
    size_t n_where;
    struct fc_mark end;
};

/* Read and validate `path`.  NULL on any error (all of them in `errs`). */
struct fc_config *config_load(const char *path, struct config_errors *errs);
/* Same, from memory; `name` stands for the file name in error messages. */
struct fc_config *config_load_string(const char *name, const char *yaml, size_t len,
                                     struct config_errors *errs);
void config_free(struct fc_config *cfg);

/* Append "FILE:LINE:COLUMN: message" for a problem with `path` ("state_dir",
 * "listen[0].tls") found after loading (config_check.h).  The position is
 * where `path` was written; for a key left out (its default applies), the
 * nearest enclosing key that was written, else the end of the document,
 * where the key would be added. */
void config_error_at(const struct fc_config *cfg, const char *path, struct config_errors *errs,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Was `path` written in the file (rather than left to its default)? */
bool config_written(const struct fc_config *cfg, const char *path);

/* Value syntaxes shared with the admin API.  0 on success, -1 if invalid. */
int config_parse_size(const char *s, uint64_t *bytes);        /* "512", "16KiB", "256MiB", "1GiB" */
int config_parse_duration(const char *s, uint64_t *ms);       /* "250ms", "2s", "5m", "1h", "365d", "0s" */


#endif
