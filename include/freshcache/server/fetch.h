/*
 * fetch.h — one exchange with the origin, and filling the cache from it.
 *
 * A fetch builds the origin request from the client's, sends it over a
 * pooled or new connection, parses the response, and decides what becomes
 * of it:
 *   - storable: the response head goes into a cache object (the client's
 *     BUSY placeholder when it leads a coalesced miss, or a new object) and
 *     the body is written into the object's shared body as it arrives; the
 *     client, and anyone coalesced on the key, stream it from there;
 *   - a 304 answering a revalidation: the stored head is updated and a new
 *     object sharing the old body replaces it;
 *   - otherwise it is passed through to the client only.
 * A storing fetch outlives its client (others may be waiting on the object);
 * a passing fetch ends with its client.  A fetch frees itself when done.
 */
#ifndef FRESHCACHE_FETCH_H
#define FRESHCACHE_FETCH_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "freshcache/http/cache_control.h"
#include "freshcache/cache/cache_key.h"

struct client;
struct worker;
struct cache_obj;
struct http_msg;
struct fetch;

enum fetch_kind {
    FETCH_MISS = 0,         /* cacheable request, nothing usable stored */
    FETCH_REVALIDATE,       /* stale object: send its validators */
    FETCH_PASS,             /* never store (method, request no-store, ...) */
};

struct fetch_params {
    enum fetch_kind kind;
    const struct http_msg *req;         /* copied: the fetch keeps its own */
    const struct cache_key *key;        /* NULL for PASS */
    struct cache_obj *busy;             /* placeholder to publish into (ref taken) */
    struct cache_obj *stale;            /* object being revalidated (ref taken) */
    const char *client_addr;            /* for X-Forwarded-For */
    bool client_head;                   /* client asked HEAD: fetch GET, send no body */
    bool req_body;                      /* the client request has a body to stream */
    uint64_t req_content_length;        /* UINT64_MAX: chunked */
    bool store_allowed;                 /* request permits storing the response */
    const char *status_fwd;             /* Cache-Status fwd= value for this fetch */
};

/* Start.  Returns NULL when the origin cannot even be tried (then the
 * caller answers 502); otherwise the fetch reports to `c` through the
 * client_on_fetch_* functions of proxy.h. */
struct fetch *fetch_start(struct worker *w, struct client *c, const struct fetch_params *p);

/* Shutdown, after the worker's loop ended: end every fetch left (what they
 * were storing is dropped, never kept truncated). */
void fetch_free_all(struct worker *w);

/* The client is gone: a storing fetch goes on alone, a passing one aborts. */
void fetch_detach(struct fetch *f);
/* Request body bytes from the client (streamed as they arrive).  Returns
 * the bytes queued toward the origin, for the caller's backpressure: above
 * a limit it stops reading from its client until
 * client_on_fetch_upload_drained(). */
size_t fetch_send_body(struct fetch *f, const char *data, size_t len);
void fetch_end_body(struct fetch *f);
/* Pass-through backpressure from the client's output buffer. */
void fetch_pause(struct fetch *f);
void fetch_resume(struct fetch *f);

/* The passing response's head (valid in client_on_fetch_pass_head). */
const struct http_msg *fetch_response(const struct fetch *f);
bool fetch_response_has_body(const struct fetch *f);
uint64_t fetch_response_length(const struct fetch *f);

#endif
