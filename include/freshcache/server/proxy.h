/*
 * proxy.h — a client connection: read requests, answer each from the cache
 * or through a fetch, in order.
 */
#ifndef FRESHCACHE_PROXY_H
#define FRESHCACHE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>

struct worker;
struct client;
struct fetch;
struct cache_obj;
struct sockaddr;

/* A connection was accepted on worker `w`. */
void client_accept(struct worker *w, evutil_socket_t fd, const struct sockaddr *sa, int salen);
/* Close every client that is idle between requests (graceful stop). */
void client_close_idle(struct worker *w);
/* Shutdown, after the worker's loop ended: free every client left. */
void client_free_all(struct worker *w);

/* Reports from the client's fetch (fetch.h). */
/* Milliseconds from sending to the origin until its response head. */
void client_note_origin_time(struct client *c, int64_t ms);
/* The request body queued toward the origin went below the low mark. */
void client_on_fetch_upload_drained(struct client *c);
/* Serve stored object `o` (the client takes its own reference). */
void client_on_fetch_obj(struct client *c, struct cache_obj *o, const char *cache_status);
/* Pass-through: the head is in fetch_response(f); body follows. */
void client_on_fetch_pass_head(struct client *c, struct fetch *f, const char *cache_status);
void client_on_fetch_pass_body(struct client *c, const char *data, size_t len);
void client_on_fetch_pass_done(struct client *c);
/* The fetch failed.  `status` (502/504) is answered if nothing was sent
 * yet, else the connection is closed. */
void client_on_fetch_error(struct client *c, int status, const char *why);

#endif
