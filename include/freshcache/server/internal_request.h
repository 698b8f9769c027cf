/*
 * internal_request.h — a GET the daemon makes to itself, served by an
 * exchange exactly like a client's: the same cache key, lookup,
 * coalescing, fetch, storing, Cache-Status and access-log line.  Only the
 * front end differs (internal_request.c): it reads the body and discards
 * it, or keeps it for the caller (a sitemap), and reports the status and
 * Cache-Status.  `proxyctl warm` (admin/warm.c) fills the cache with it.
 *
 * Threads: the caller runs on its own event loop (the admin's); each
 * request runs on a worker, chosen round robin, and its outcome is
 * reported back on the caller's loop.  The caller may cancel a request it
 * no longer wants: its callback then never comes, and the request, which
 * may be in the middle of a fetch, finishes on its worker and frees
 * itself.  A request still on a worker when the server stops is freed
 * with the worker (internal_free_all).
 */
#ifndef FRESHCACHE_INTERNAL_REQUEST_H
#define FRESHCACHE_INTERNAL_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct evbuffer;
struct server;
struct worker;
struct internal_req;

struct internal_params {
    const char *host;           /* the Host field: part of the cache key */
    const char *target;         /* origin-form "/path?query" */
    const char *scheme;         /* "http" or "https": X-Forwarded-Proto */
    const char *user_agent;
    bool no_cache;              /* Cache-Control: no-cache (the origin's answer, not the copy) */
    size_t keep_body_max;       /* keep up to this many body bytes; 0: discard the body */
};

struct internal_result {
    int status;                 /* the response's; 0 when there was none */
    const char *cache_status;   /* its Cache-Status parameters, "fwd=miss; stored" */
    const char *error;          /* why the response is missing or incomplete; NULL: none */
    struct evbuffer *body;      /* keep_body_max > 0: the whole body (else NULL) */
};

/* Called once, on the caller's loop; `r` is valid during the call only. */
typedef void (*internal_done_fn)(void *arg, const struct internal_result *r);

/* Start a request; its answer comes to `done` on `caller`.  NULL when the
 * target is not a path or the server is stopping (nothing started). */
struct internal_req *internal_request(struct server *srv, struct event_base *caller,
                                      const struct internal_params *p, internal_done_fn done,
                                      void *arg);
/* From the caller's loop, before `done` came: it never will. */
void internal_cancel(struct internal_req *r);
/* The worker's loop has ended: free what is still on it (server.c). */
void internal_free_all(struct worker *w);

#endif
