/*
 * warm.h — POST /warm: fetch URLs into the cache, a bounded number at a
 * time, through the daemon's own request path (server/internal_request.h):
 * each is a GET like a client's with the warm's Host, so it lands under
 * the key clients use, coalesces with them and is stored by the same
 * rules.  A sitemap's URLs (and those of the sitemaps an index names) are
 * warmed too; the sitemap itself is asked of the origin (no-cache).
 *
 * Runs on the admin's loop.  Each URL's outcome is reported as it comes
 * (`item`), then the totals once (`done`); a job cancelled before reports
 * nothing more.  Callbacks never come from inside warm_start().
 */
#ifndef FRESHCACHE_WARM_H
#define FRESHCACHE_WARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct fc_config;
struct server;
struct warm_job;

#define WARM_DEFAULT_CONCURRENCY 8
#define WARM_MAX_CONCURRENCY 64
#define WARM_MAX_URLS 100000        /* per run, the sitemaps' included */
#define WARM_MAX_SITEMAPS 64        /* sitemap files per run, the index's included */
#define WARM_MAX_SITEMAP_DEPTH 3    /* sitemap index levels followed */
#define WARM_MAX_SITEMAP_BYTES (50u * 1024 * 1024)  /* the protocol's limit */

enum warm_outcome {
    WARM_STORED,        /* fetched and stored (or stored by a request it joined) */
    WARM_FRESH,         /* already fresh in the cache, or the origin confirmed it (304) */
    WARM_NOT_STORED,    /* answered, but not cacheable (private, too large, ...) */
    WARM_FAILED,        /* no answer, an error status (>= 400), a sitemap that failed */
};

struct warm_item {
    const char *url;            /* as given, or as the sitemap listed it */
    bool sitemap;               /* a sitemap file, not a page */
    int status;                 /* 0: no response */
    const char *cache_status;   /* "" when none */
    const char *error;          /* FAILED: why; else NULL */
    enum warm_outcome outcome;
    size_t listed;              /* a sitemap: the URLs or sitemaps it lists */
};

struct warm_summary {
    size_t urls;                /* pages tried */
    size_t stored, fresh, not_stored, failed;   /* failed counts sitemaps too */
    size_t sitemaps;            /* sitemap files fetched */
    uint64_t elapsed_ms;
};

struct warm_params {
    const char *host;           /* the Host of every request (the cache key's) */
    const char *scheme;         /* "http" or "https", as clients' */
    const char *const *urls;    /* paths, or http(s) URLs on `host` */
    size_t n_urls;
    const char *sitemap;        /* a path or URL on `host`, or NULL */
    unsigned concurrency;       /* 1..WARM_MAX_CONCURRENCY */
};

typedef void (*warm_item_fn)(void *arg, const struct warm_item *it);
typedef void (*warm_done_fn)(void *arg, const struct warm_summary *s);

struct warm_job *warm_start(struct server *srv, struct event_base *base,
                            const struct warm_params *p, warm_item_fn item, warm_done_fn done,
                            void *arg);
/* No more callbacks; requests in flight finish on their own. */
void warm_cancel(struct warm_job *j);

const char *warm_outcome_name(enum warm_outcome o);

/* The Host clients of the first listener send ("127.0.0.1:8080",
 * "example.com" for port 80) and its scheme.  -1 with a message when that
 * cannot be known (a wildcard address): the caller must be told a host. */
int warm_default_host(const struct fc_config *cfg, char *host, size_t len, const char **scheme,
                      char *err, size_t errlen);

#endif
