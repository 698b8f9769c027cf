/*
 * exchange.h — one request and its response, whatever protocol carried
 * them (cf. Varnish's struct req beside struct sess, h2o's h2o_req_t beside
 * h2o_conn_t).
 *
 * A protocol front end (http1.h today, HTTP/2 next) parses a request head,
 * hands it to an exchange and serialises what the exchange answers.
 * Everything about caching is written once, here: the lookup, coalescing,
 * freshness, revalidation, stale-if-error and stale-while-revalidate,
 * client conditionals, Range, Cache-Status, the fetch, delivery from the
 * object's body, the access log and the counters.
 *
 * The exchange answers through its front end's callbacks (struct
 * exchange_fe): a response head, then "body bytes are ready", which the
 * front end pulls with exchange_body_read() as fast as its peer takes
 * them.  Every response, stored, passed through or made by the proxy,
 * takes that one path.
 *
 * Ownership and threading: an exchange lives inside its front end's
 * connection or stream, on one worker's thread.  It holds a reference on
 * the object it serves or waits on, and at most one fetch (which it may
 * leave behind: fetch_detach).  exchange_end() releases everything and
 * clears the per-request state in one step.
 */
#ifndef FRESHCACHE_EXCHANGE_H
#define FRESHCACHE_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "freshcache/cache/cache_body.h"
#include "freshcache/cache/cache_key.h"
#include "freshcache/http/cache_control.h"

struct cache_obj;
struct event;
struct evbuffer;
struct fetch;
struct http_msg;
struct worker;
struct exchange;

/* A response head, protocol-independent.  A front end writes the status,
 * the stored fields (when the response comes from a cache object), the
 * per-response fields, and the framing its protocol needs for
 * content_length. */
struct resp_head {
    int status;
    /* The object's head as stored: "HTTP/1.1 200 OK\r\n" then fields.  NULL
     * for a response the proxy makes.  stored_status is the status it
     * carries (a 304 or 206 made from it has another). */
    const char *stored;
    size_t stored_len;
    size_t fields_off;                  /* where the fields start in stored */
    int stored_status;
    /* Fields of this response only, each "Name: value\r\n". */
    const char *extra;
    size_t extra_len;
    uint64_t content_length;            /* UINT64_MAX: not known in advance */
    bool body;                          /* body bytes follow (exchange_body_read) */
    const char *inline_body;            /* or this body, made by the proxy */
    size_t inline_len;
    bool close;                         /* end the connection after this response */
};

/* What a protocol front end does for its exchanges. */
struct exchange_fe {
    /* Write the response head (and an inline body).  Once per exchange. */
    void (*send_head)(struct exchange *x, const struct resp_head *h);
    /* More of the body, or its end, can be read now. */
    void (*body_ready)(struct exchange *x);
    /* Stop (true) or resume (false) taking request body bytes from the
     * client: the origin is slower than the upload. */
    void (*upload_pause)(struct exchange *x, bool pause);
    /* An interim (1xx) response before the final one: `lines` are
     * "Name: value\r\n" field lines, valid only during the call.  A front
     * end drops it where its client cannot take one (HTTP/1.0). */
    void (*send_interim)(struct exchange *x, int status, const char *lines, size_t len);
};

/* What the front end tells about a request besides its head. */
struct exchange_request {
    const char *client_addr;            /* for logs and X-Forwarded-For */
    const char *scheme;                 /* "http" or "https" */
    bool has_body;                      /* a request body follows */
    uint64_t body_length;               /* UINT64_MAX: chunked / unknown */
};

enum exchange_state {
    X_IDLE = 0,         /* no request */
    X_WAIT,             /* waiting on an object: a fetch's or a coalesced one */
    X_SEND,             /* the head is out; the body is being read */
    X_DONE,             /* the response is completely handed to the front end */
};

enum body_read {
    BODY_READ_MORE = 0, /* call again (body_ready says when there is more) */
    BODY_READ_END,      /* the body is complete */
    BODY_READ_FAILED,   /* the origin failed mid-body: cut the response short */
};

struct exchange {
#define EXCHANGE_MAGIC 0xe8c4a09eu
    unsigned magic;
    struct worker *w;
    const struct exchange_fe *fe;
    void *fe_ctx;                       /* the front end's connection or stream */
    struct event *wake;                 /* body progress (activated from any thread) */
    struct event *upload_ev;            /* the fetch took our request body */
    struct body_waiter waiter;

    /* Per request, from here to the end: cleared in one step. */
    enum exchange_state state;
    const struct http_msg *req;         /* the front end's, valid until exchange_end */
    struct exchange_request info;
    bool head_req;
    struct cache_key *key;              /* allocated to size; NULL when not cacheable */
    struct cache_control req_cc;
    struct cache_obj *obj;              /* served or waited on (ref) */
    bool obj_ours;                      /* obj is our fetch's placeholder */
    struct cache_obj *stale;            /* what our fetch revalidates (ref) */
    struct fetch *fetch;
    int fetch_kind;                     /* enum fetch_kind of our fetch */
    const char *fwd;                    /* Cache-Status fwd= of our fetch */
    struct reval_batch *batch;          /* we lead it: our fetch starts at its send */
    bool joined;                        /* obj is another request's revalidation */
    bool joined_late;                   /* ... joined after it was sent */
    struct body_cursor cur;
    uint64_t send_end;                  /* body offset to stop at (a Range), or UINT64_MAX */
    bool upload_paused;
    bool upload_done;                   /* the whole request body went to the fetch */
    char cs[96];                        /* Cache-Status parameters */
    /* for the access log */
    int resp_status;
    uint64_t resp_bytes;
    uint64_t t_start_ms;
    int64_t origin_ms;
};

/* Once per exchange object (a connection's, a stream's). */
void exchange_init(struct exchange *x, struct worker *w, const struct exchange_fe *fe,
                   void *fe_ctx);
void exchange_fini(struct exchange *x);

/* A request head arrived: answer it.  `req` stays valid and unchanged
 * until exchange_end(). */
void exchange_start(struct exchange *x, const struct http_msg *req,
                    const struct exchange_request *info);
/* Answer with a response the proxy makes: `status`, a short text body.
 * Also for requests the front end refuses before exchange_start (req may
 * be NULL then). */
void exchange_respond(struct exchange *x, int status, const char *cache_status, const char *msg,
                      bool close);
/* exchange_respond for a request refused before exchange_start, with the
 * client it came from (`info`: its address and scheme, for the log line). */
void exchange_refuse(struct exchange *x, const struct exchange_request *info, int status,
                     const char *cache_status, const char *msg, bool close);
/* Send a 1xx interim response (RFC 9110 §15.2: 100, 102, 103; never
 * 101) ahead of the final one: forwarded from the origin or made by the
 * proxy (Early Hints).  Does nothing once the final head is out.  Never
 * stored, never replayed. */
void exchange_send_interim(struct exchange *x, int status, const char *lines, size_t len);
/* The worker's loop ended: free the shared revalidations it never sent
 * (their requests are gone). */
void exchange_free_batches(struct worker *w);
/* Request body bytes.  Returns how many wait for the origin (the front
 * end's backpressure: see upload_pause). */
size_t exchange_upload(struct exchange *x, const char *data, size_t len);
void exchange_upload_end(struct exchange *x);
/* Move up to `max` body bytes into `out` (by reference where the cache
 * holds them); *n says how many. */
enum body_read exchange_body_read(struct exchange *x, struct evbuffer *out, size_t max,
                                  size_t *n);
/* The response has a status (for an access-log line if it is cut short). */
static inline bool exchange_answered(const struct exchange *x)
{
    return x->resp_status != 0;
}
/* The request is over (answered, or its connection is closing): one
 * access-log line if anything was answered, then every reference and the
 * fetch are let go and the per-request state is cleared. */
void exchange_end(struct exchange *x);

/* Inside the exchange (exchange.c, deliver.c): let go of the object we
 * serve or wait on. */
void exchange_drop_obj(struct exchange *x);

/* deliver.c: the responses an exchange sends, each through the front
 * end's send_head. */
/* A stored object, with the client's conditionals and Range applied. */
void deliver_obj(struct exchange *x, struct cache_obj *o, const char *cache_status);
/* A pass-through response, as the origin sent it. */
void deliver_private(struct exchange *x, struct cache_obj *o);
/* A response the proxy makes: status and a one-line text body. */
void deliver_error(struct exchange *x, int status, const char *msg, bool close);

#endif
