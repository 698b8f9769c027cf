/*
 * fetch.h — one exchange with the origin, filling an object.
 *
 * A fetch is given a placeholder object when it starts and reports only
 * through it (Varnish's way): whoever wants the response waits on the
 * placeholder's body, exactly as on any stored object.  When the origin's
 * head arrives the fetch decides what the placeholder becomes:
 *   - storable: the placeholder is the stored response (published in the
 *     store; its body fills as bytes arrive, and every reader, the
 *     requester and anyone coalesced on the key, streams it from there);
 *   - not storable: the placeholder turns private (o->private), carries
 *     the pass-through response on a transient body to its one reader, and
 *     is never stored;
 *   - a 304 answering a revalidation: the stale copy's head is refreshed
 *     into a new stored object sharing its body, o->merged points to it;
 *   - a failure before any head: the placeholder's body fails with
 *     o->fail_status (502, 504).
 * The fetch never names its requester.  A storing fetch outlives its
 * requester (others may be waiting, the cache gains the object); a private
 * one ends when nobody reads it.  A fetch frees itself, always from an
 * event of its own (never inside one of its callbacks).
 */
#ifndef FRESHCACHE_FETCH_H
#define FRESHCACHE_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_key;
struct cache_obj;
struct event;
struct http_msg;
struct worker;
struct fetch;

enum fetch_kind {
    FETCH_MISS = 0,         /* cacheable request, nothing usable stored */
    FETCH_REVALIDATE,       /* stale object: send its validators */
    FETCH_PASS,             /* never store (method, ...): the request goes as it came */
};

/* An interim (1xx) response from the origin, for the one requester that
 * started the fetch: `lines` are its end-to-end "Name: value\r\n" fields,
 * valid during the call only. */
typedef void (*fetch_interim_fn)(void *arg, int status, const char *lines, size_t len);

struct fetch_params {
    enum fetch_kind kind;
    const struct http_msg *req;         /* copied: the fetch keeps its own */
    const struct cache_key *key;        /* NULL for PASS */
    struct cache_obj *ph;               /* the placeholder to fill (ref taken) */
    bool ph_busy;                       /* ph is a BUSY object linked in the store */
    struct cache_obj *stale;            /* object being revalidated (ref taken) */
    const char *client_addr;            /* for X-Forwarded-For */
    const char *scheme;                 /* "http" or "https": X-Forwarded-Proto */
    bool client_head;                   /* client asked HEAD: fetch GET, send no body */
    bool req_body;                      /* the client request has a body to stream */
    uint64_t req_content_length;        /* UINT64_MAX: chunked */
    bool store_allowed;                 /* request permits storing the response */
    bool background;                    /* a stale-while-revalidate refresh: nobody waits */
    struct event *upload_drained;       /* made active when the request body queued
                                         * toward the origin falls below the low mark */
    fetch_interim_fn interim;           /* NULL: 1xx responses are dropped */
    void *interim_arg;
};

/* Start.  NULL when the origin cannot even be tried (the placeholder is
 * then failed with 502 before this returns).  The caller holds a
 * reference on the fetch until fetch_detach(), whatever the fetch does
 * meanwhile. */
struct fetch *fetch_start(struct worker *w, const struct fetch_params *p);

/* The requester lets go (it is gone, or needs nothing more): a storing
 * fetch goes on alone; a private one, a PASS, or one still sending a
 * request body ends.  Drops the caller's reference. */
void fetch_detach(struct fetch *f);
/* (fetch_detach also ends the interim callback: nothing reaches a
 * requester that let go.) */
/* Request body bytes (streamed as they arrive).  Returns the bytes queued
 * toward the origin, for the caller's backpressure: above a limit it stops
 * reading from its client until the upload_drained event. */
size_t fetch_send_body(struct fetch *f, const char *data, size_t len);
void fetch_end_body(struct fetch *f);

/* Shutdown, after the worker's loop ended: end every fetch left (what they
 * were storing is dropped, never kept truncated). */
void fetch_free_all(struct worker *w);
/* Free the ended fetches pooled for reuse (after a purge freed the cache:
 * see server.c, trim_if_shrunk).  On the worker's thread. */
void fetch_shed_pool(struct worker *w);

/* fetch_request.c: the origin request for a fetch, serialised. */
struct evbuffer;
struct fc_config;
struct cache_obj;
void fetch_request_build(struct evbuffer *out, const struct fc_config *cfg,
                         const struct fetch_params *p, const struct http_msg *req);

#endif
