/*
 * admin_ops.h — what the admin API (and later other control planes) may do
 * to a running server.  admin.c only parses requests and formats answers;
 * every effect goes through these calls, implemented next to the state
 * they change (server.c, generation.c, cache_store.c, verify.c).
 */
#ifndef FRESHCACHE_ADMIN_OPS_H
#define FRESHCACHE_ADMIN_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "freshcache/cache/generation.h"
#include "freshcache/cache/purge.h"
#include "freshcache/cluster/cluster.h"
#include "freshcache/server/server.h"

struct event_base;

/* POST /purge/generation — policy NULL bumps the global generation. */
int ops_purge_generation(struct server *srv, const char *policy, uint64_t *now, uint64_t *prev,
                         char *err, size_t errlen);
/* GET /generation: the global number and each policy's (generation.h). */
void ops_generation(struct server *srv, struct gen_state *out);

/* POST /purge — URL: "/path?query" (any host) or "http://host/path";
 * PREFIX: path prefix (any host); TAG: a Surrogate-Key / Cache-Tag value.
 * Hard purges remove; soft ones mark stale (revalidate on next use, still
 * usable under stale-if-error).  Returns how many objects. */
unsigned ops_purge(struct server *srv, enum purge_kind kind, const char *arg, bool soft);

/* With `cluster:` the purges above go to every node instead, through the
 * cluster (cluster.h): applied here and by every live node, answered by
 * `done` on the admin loop once they acknowledged or ack_timeout passed
 * (possibly before this returns, e.g. when Redis cannot be reached). */
void ops_cluster_purge(struct server *srv, struct cluster *cl, const struct cluster_purge *p,
                       cluster_done_fn done, void *arg);
/* GET /nodes: 0, or -1 with a message naming Redis. */
int ops_nodes(struct cluster *cl, const struct cluster_node **nodes, size_t *n, char *err,
              size_t errlen);

struct ops_stats {
    struct counters counters;       /* summed over workers */
    uint64_t objects;
    uint64_t bytes;
    uint64_t max_bytes;
    uint64_t evictions;
    uint64_t purges;
    uint64_t generation;
    int64_t generation_changed_ms;  /* last bump, Unix ms; 0: never */
    uint64_t uptime_seconds;
    unsigned connections;           /* open client connections now */
};
/* GET /stats and GET /metrics */
void ops_stats(struct server *srv, struct ops_stats *out);
/* The worker threads, and the client connections worker `i` holds now
 * (what accept balancing compares). */
unsigned ops_workers(struct server *srv);
unsigned ops_worker_connections(struct server *srv, unsigned i);
/* The listener certificates in force, for their expiry (GET /metrics).
 * Valid until the next reload. */
struct tls_cert_info;
size_t ops_tls_certs(struct server *srv, const struct tls_cert_info **out);

/* POST /reload — 0, or -1 with the first "FILE:LINE:COL: message" in err. */
int ops_reload(struct server *srv, char *err, size_t errlen);
/* The settings of the config in force that differ from the one the daemon
 * started with and wait for a restart (config_restart_keys): their dotted
 * names into keys[], at most `max`; returns how many. */
size_t ops_restart_pending(struct server *srv, const char **keys, size_t max);

/* POST /verify — for each path, the stored response's status and body
 * SHA-256 (hex, or empty when nothing is stored) and the origin's, fetched
 * now without the cache.  Asynchronous: `done` is called once on `base`'s
 * thread with the results. */
struct verify_result {
    char path[1024];
    char proxy_sha256[65];          /* "" when not stored */
    char origin_sha256[65];         /* "" when the origin failed */
    int proxy_status;               /* 0 when not stored */
    int origin_status;              /* 0 when the origin could not be reached */
    char error[160];                /* why the origin's answer is missing ("" when none) */
    bool stale;                     /* stored, and the origin answers another status or body */
};
typedef void (*verify_done_cb)(void *arg, struct verify_result *results, size_t n);
int ops_verify(struct server *srv, struct event_base *base, const char *const *paths, size_t n,
               verify_done_cb done, void *arg);

#endif
