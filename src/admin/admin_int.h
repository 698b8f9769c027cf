/*
 * admin_int.h — the admin API's internals, shared by admin.c (the socket,
 * connections, request parsing, routing and replies) and the files of its
 * endpoints: admin_purge.c (purges and generations, alone or through the
 * cluster), admin_stats.c (/stats, /metrics, /nodes), admin_verify.c and
 * admin_warm.c (the asynchronous POST /verify and POST /warm).  Not a
 * public header: only src/admin/admin*.c include it.
 *
 * An endpoint gets the connection with a complete request (c->req, its
 * body in c->body) and answers exactly once with reply*() — at once, or
 * later from a callback for the asynchronous ones, which keep a pending
 * object that outlives the connection if the client leaves.
 */
#ifndef FRESHCACHE_ADMIN_INT_H
#define FRESHCACHE_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "freshcache/admin/admin_body.h"
#include "freshcache/admin/warm.h"
#include "freshcache/http/http_parse.h"

struct bufferevent;
struct evbuffer;
struct event;
struct event_base;
struct evconnlistener;

/* POST /verify: URLs checked at most. */
#define ADMIN_MAX_VERIFY_URLS 256

struct admin_conn;

/* A purge sent to the cluster, waiting for the nodes' acknowledgements.
 * Like verify_pending, it outlives its connection if the client leaves. */
struct cluster_pending {
#define CLUSTER_PENDING_MAGIC 0x7e21f0a2u
    unsigned magic;
    struct admin_conn *conn;        /* NULL once the connection is gone */
    bool generation;
    char *policy;                   /* the policy bumped, or NULL */
    char *what;                     /* for the log line */
};

struct verify_pending {
#define VERIFY_PENDING_MAGIC 0x7e21f0a1u
    unsigned magic;
    struct admin_conn *conn;        /* NULL once the connection is gone */
    char **paths;
    size_t n;
};

/* A POST /warm streaming its progress.  Unlike verify, a warm whose
 * client left is cancelled (warm_cancel): nobody would see the rest. */
struct warm_pending {
#define WARM_PENDING_MAGIC 0x7e21f0a3u
    unsigned magic;
    struct admin_conn *conn;
    struct warm_job *job;
    char host[256];
    size_t n_urls;                  /* given, for the log */
    char *sitemap;                  /* or NULL */
    unsigned concurrency;
};

struct admin_conn {
#define ADMIN_CONN_MAGIC 0xad317c00u
    unsigned magic;
    struct admin *a;
    struct bufferevent *bev;
    struct event *kick;             /* deferred: free when closing, or parse on */
    struct http_parser parser;
    struct http_msg req;
    struct evbuffer *body;          /* the current request's body */
    struct verify_pending *pending; /* a /verify in progress */
    struct cluster_pending *cpending;   /* a purge waiting for the cluster */
    struct warm_pending *wpending;  /* a /warm streaming its progress */
    char who[48];                   /* "pid N, uid N" of the peer, for the log */
    bool body_overflow;
    bool head_req;                  /* the current request is a HEAD */
    bool keep_alive;
    bool peer_eof;                  /* the client shut down its sending side */
    bool closing;
    bool metrics_only;              /* accepted on metrics.listen: GET /metrics only */
    LIST_ENTRY(admin_conn) link;
};

struct admin {
#define ADMIN_MAGIC 0xad3100aau
    unsigned magic;
    struct server *srv;
    struct event_base *base;
    struct evconnlistener *listener;
    struct evconnlistener *metrics_listener;    /* metrics.listen (loopback TCP), or NULL */
    struct cluster *cluster;        /* with cluster: in the config, else NULL */
    struct event *accept_retry;     /* re-enable accepting after EMFILE & co */
    char *path;
    dev_t dev;                      /* of the socket we created, so admin_stop */
    ino_t ino;                      /* never unlinks someone else's */
    struct timeval timeout;
    LIST_HEAD(, admin_conn) conns;
    unsigned n_conns;
    time_t refused_logged;          /* rate limit for the "too many" warning */
    unsigned refused;
    /* POST /warm, for /stats and /metrics (this loop's only) */
    uint64_t warm_runs;
    uint64_t warm_urls[WARM_FAILED + 1];    /* by enum warm_outcome */
};

/* ---- replies (admin.c) ---- */

/* Write one response, then either get ready for the next request or close.
 * `extra` is more header lines ("Name: value\r\n"...) or NULL. */
void reply(struct admin_conn *c, int status, const char *ctype, const char *body, size_t len,
           const char *extra);
/* Reply with `obj` (a reference is stolen) as one line of JSON. */
void reply_json(struct admin_conn *c, int status, json_t *obj, const char *extra);
/* {"error": MESSAGE} */
void reply_error(struct admin_conn *c, int status, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* An error that ends the connection (the request could not be framed). */
void reply_fatal(struct admin_conn *c, int status, const char *msg);
/* The current request's body, contiguous. */
const char *body_text(struct admin_conn *c, size_t *len);
void reply_body_error(struct admin_conn *c, const struct admin_body_error *e);
/* Parse on: the next request, after an asynchronous answer. */
void conn_process(struct admin_conn *c);
/* Stop reading, flush what is queued, then free (deferred). */
void conn_close(struct admin_conn *c);

/* ---- endpoints ---- */

/* admin_purge.c */
void do_purge_generation(struct admin_conn *c);
void do_generation(struct admin_conn *c);
void do_purge(struct admin_conn *c);
/* admin_stats.c */
void do_stats(struct admin_conn *c);
void do_metrics(struct admin_conn *c);
void do_nodes(struct admin_conn *c);
/* admin_verify.c */
void do_verify(struct admin_conn *c);
/* admin_warm.c */
void do_warm(struct admin_conn *c);
/* Cancel the connection's warm (its client left, or the daemon stops). */
void warm_abandon(struct admin_conn *c, const char *why);

#endif
