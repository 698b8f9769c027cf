/*
 * cluster_int.h — what the cluster's files share: the struct cluster and
 * the calls between them.  Not for other layers (include
 * freshcache/cluster/cluster.h).
 *
 *   cluster.c         lifecycle, the session with Redis (two links), the
 *                     max_disconnect rule, heartbeats and the node table
 *   cluster_sync.c    joining: scripts, this node's floors, reading the
 *                     cluster's numbers, deciding what may have been missed
 *   cluster_feed.c    the events stream: every purge applied (this node's
 *                     too), others' acknowledged, acknowledgements collected
 *   cluster_purge.c   purges asked of this node: sent, applied, waited for
 *
 * A session is two connections: `cmd` for scripts (one round trip each) and
 * `feed`, which does nothing but a blocking XREAD on the events stream and
 * this node's acks stream.  Either one failing ends the session; the next
 * starts after a back-off, joins again and replays what the stream holds
 * since the last event this node applied.
 */
#ifndef FRESHCACHE_CLUSTER_INT_H
#define FRESHCACHE_CLUSTER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "freshcache/cluster/cluster.h"
#include "freshcache/cluster/redis_link.h"
#include "freshcache/config/config.h"
#include "cluster_scripts.h"

struct redisReply;

#define CLUSTER_TICK_MS 100             /* timers: watchdog, reconnect, heartbeat */
#define CLUSTER_HEARTBEAT_MS 1000
#define CLUSTER_LIVE_MS 3000            /* live: a heartbeat within this */
#define CLUSTER_FORGET_MS (60 * 60 * 1000)  /* /nodes forgets a node silent this long */
#define CLUSTER_LINK_TIMEOUT_MS 2000    /* connect, or a reply on the command link */
#define CLUSTER_FEED_BLOCK_MS 1000      /* XREAD BLOCK; its link allows this + the above */
#define CLUSTER_FEED_COUNT 256          /* events per XREAD */
#define CLUSTER_BACKOFF_MIN_MS 100
#define CLUSTER_BACKOFF_MAX_MS 1000
#define CLUSTER_EVENTS_MAXLEN 10000     /* ~ entries kept: how long a node may be away */
#define CLUSTER_ACKS_MAXLEN 1000
#define CLUSTER_ACKS_TTL_MS (60 * 60 * 1000)
#define CLUSTER_EARLY_ACKS 64           /* acks read before their purge's answer */
#define CLUSTER_LEAVE_WAIT_MS 500

/* A stream entry ID, "MS-SEQ". */
struct stream_id {
    uint64_t ms, seq;
};
int stream_id_parse(const char *s, struct stream_id *out);
int stream_id_cmp(const struct stream_id *a, const struct stream_id *b);
void stream_id_format(const struct stream_id *id, char out[48]);

enum session_state {
    SESSION_DOWN = 0,       /* waiting for the back-off */
    SESSION_CONNECTING,     /* both links connecting and logging in */
    SESSION_SYNCING,        /* the join script is running */
    SESSION_READY,          /* joined; the feed replays and follows the stream */
};

struct cluster_op;
TAILQ_HEAD(cluster_op_list, cluster_op);

struct cluster {
#define CLUSTER_MAGIC 0xc105e700u
    unsigned magic;
    struct server *srv;
    struct event_base *base;
    const struct fc_cluster *cfg;   /* the start config's: the server keeps it until exit */
    const struct fc_config *seen_cfg;   /* the config in force at the last check_reload */
    char instance[33];              /* this process, random hex */
    char sha[N_SCRIPTS][41];
    char key_gen[160], key_events[160], key_nodes[160], key_info[160], key_inst[160],
        key_run[160], key_acks_self[240];

    struct redis_link *cmd, *feed;
    enum session_state session;
    char last_error[256];           /* why we are not in touch (redacted) */
    bool stopping;
    struct event *tick;

    /* Reconnecting and the max_disconnect rule. */
    uint64_t next_attempt_ms, backoff_ms;
    bool first_attempt_done;        /* false until the first session ended or joined */
    bool caught_up;                 /* joined and the feed reached sync_target */
    uint64_t in_touch_ms;           /* last moment we were caught up (start: start time) */
    bool revalidating;              /* what generation_set_catching_up() was last told */
    bool cut_off;                   /* revalidating because of max_disconnect */
    bool quiet;                     /* "cannot reach Redis" already logged for this outage */

    /* What this node has seen of the cluster. */
    bool ever_joined;
    char run[64];                   /* the Redis dataset joined last ("" before) */
    struct stream_id ev_last;       /* last event applied (or skipped) */
    struct stream_id ack_last;
    struct stream_id sync_target;   /* the stream's end at the join */
    bool feed_inflight;

    /* Heartbeats and the node table. */
    uint64_t last_heartbeat_ms;
    bool heartbeat_inflight;
    struct cluster_node *nodes;
    uint64_t *nodes_age;            /* each node's last_seen_ms when the table was read */
    size_t n_nodes;
    uint64_t view_ms;               /* monotonic time the table was read */

    /* Purges asked of this node. */
    struct cluster_op_list ops;
    /* Acks read before the answer to our own script (two connections: the
     * order between them is not guaranteed), this node's own included. */
    struct {
        struct stream_id event;
        char node[65];
        uint64_t purged;
    } early_acks[CLUSTER_EARLY_ACKS];
    unsigned early_next;

    bool leave_done;
    struct cluster_stats stats;
};

/* cluster.c */
void cluster_note_error(struct cluster *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cluster_session_fail(struct cluster *cl, const char *why);
void cluster_joined(struct cluster *cl);
void cluster_caught_up(struct cluster *cl);
void cluster_heartbeat(struct cluster *cl);
/* Start an EVALSHA of `s` with `nkeys` keys; the caller adds keys, args. */
void cluster_cmd_script(struct cluster *cl, struct redis_cmd *c, enum cluster_script s,
                        int nkeys);
/* "GEN NAME=N NAME=N" from the local generations, for the node table. */
void cluster_info_string(struct cluster *cl, char *out, size_t outlen);
uint64_t cluster_realtime_ms(void);
/* 2 * nbytes hex digits and a NUL into out. */
void cluster_random_hex(char *out, size_t nbytes);

/* Reply helpers: false when `r` is not what was asked for. */
bool reply_string(const struct redisReply *r, const char **s);
bool reply_u64(const struct redisReply *r, uint64_t *out);

/* cluster_sync.c */
void sync_begin(struct cluster *cl);
/* Purges this node may have missed: revalidate everything it holds. */
void sync_distrust_store(struct cluster *cl, const char *why);

/* cluster_feed.c */
void feed_read(struct cluster *cl);

/* cluster_purge.c */
void purge_on_ack(struct cluster *cl, const struct stream_id *event, const char *node,
                  uint64_t purged);
void purge_fail_all(struct cluster *cl, const char *why);

#endif
