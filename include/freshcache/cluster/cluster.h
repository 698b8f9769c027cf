/*
 * cluster.h — nodes that share generations and purges through Redis (the
 * spec's "Clusters" section, docs/fleet.md).
 *
 * Between the admin API and the local effects: a purge asked of this node
 * goes to Redis first (one Lua script: the generation bump and the purge
 * event in one atomic step), is applied here, and is answered once every
 * live node has acknowledged it or `cluster.ack_timeout` passed.  Purges
 * asked of other nodes arrive on the events stream and are applied here,
 * then acknowledged.  A node that cannot reach Redis keeps serving; past
 * `cluster.max_disconnect` with `on_disconnect: revalidate` it revalidates
 * what it serves until it has caught up (generation_set_catching_up).
 *
 * Threading: everything runs on the main thread's event loop, the one the
 * admin socket uses; callbacks come from it.  Ownership: cluster_start()
 * returns the cluster; cluster_stop() leaves the cluster and frees it.
 */
#ifndef FRESHCACHE_CLUSTER_H
#define FRESHCACHE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "freshcache/cache/generation.h"
#include "freshcache/cache/purge.h"

struct event_base;
struct server;
struct cluster;

/* Start from srv's config (cluster.enabled must be set): connects in the
 * background and never fails for Redis being down.  NULL only on a local
 * problem (message in err). */
struct cluster *cluster_start(struct server *srv, struct event_base *base, char *err,
                              size_t errlen);
/* Answer the purges in flight (as failed), tell Redis this node leaves
 * (waiting up to half a second for it), disconnect, free. */
void cluster_stop(struct cluster *cl);

/* ---- purges asked of this node -------------------------------------- */

enum cluster_purge_what {
    CLUSTER_GENERATION = 0,         /* policy NULL: global; else that policy's */
    CLUSTER_PURGE,                  /* kind, arg, soft */
};

struct cluster_purge {
    enum cluster_purge_what what;
    const char *policy;             /* CLUSTER_GENERATION: NULL or a policy name */
    enum purge_kind kind;           /* CLUSTER_PURGE: PURGE_URL, _PREFIX or _TAG */
    const char *arg;
    bool soft;
};

enum cluster_status {
    CLUSTER_OK = 0,                 /* applied here and sent; see live/acked/missing */
    CLUSTER_UNREACHABLE,            /* Redis could not be reached: nothing purged */
    CLUSTER_FAILED,                 /* anything else (message in error) */
};

struct cluster_result {
    enum cluster_status status;
    char error[512];                /* names Redis by its redacted address */
    uint64_t generation, previous;  /* CLUSTER_GENERATION */
    uint64_t purged;                /* CLUSTER_PURGE: objects, summed over the nodes that acked */
    unsigned live;                  /* nodes live when the purge was sent (this one included) */
    unsigned acked;                 /* of them, those that applied it in time */
    const char *const *missing;     /* the live ones that did not, n_missing of them */
    size_t n_missing;
};

/* Called exactly once, on the loop, possibly before cluster_purge()
 * returns; `r` and what it points to are valid during the call only. */
typedef void (*cluster_done_fn)(void *arg, const struct cluster_result *r);
void cluster_purge(struct cluster *cl, const struct cluster_purge *p, cluster_done_fn done,
                   void *arg);

/* ---- the node table (GET /nodes) ------------------------------------ */

struct cluster_node {
    char name[65];
    uint64_t last_seen_ms;          /* since its last heartbeat, as Redis saw it */
    bool live;                      /* heard from within the liveness window */
    bool self;
    struct gen_state gens;          /* as it last reported them */
};

/* The table as of the last heartbeat (at most a second old), ages brought
 * up to now.  -1 with a message naming Redis when this node is not in
 * touch with it.  *nodes points into the cluster, valid until the loop
 * runs again. */
int cluster_nodes(struct cluster *cl, const struct cluster_node **nodes, size_t *n, char *err,
                  size_t errlen);
const char *cluster_name(const struct cluster *cl);
const char *cluster_node_name(const struct cluster *cl);

/* ---- metrics ---------------------------------------------------------- */

#define CLUSTER_LAG_BUCKETS_MS { 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000 }
#define CLUSTER_LAG_N_BUCKETS 11

struct cluster_stats {
    bool connected;                 /* in touch with Redis and caught up */
    bool catching_up;               /* revalidating what it serves */
    unsigned live_nodes;
    uint64_t events_applied;        /* purges from other nodes applied here */
    uint64_t disconnects;           /* times the connection to Redis was lost */
    uint64_t lag_bucket[CLUSTER_LAG_N_BUCKETS + 1];     /* not cumulative; last: +Inf */
    uint64_t lag_sum_ms;            /* purge sent -> applied here */
    uint64_t lag_count;
};
void cluster_get_stats(struct cluster *cl, struct cluster_stats *out);

#endif
