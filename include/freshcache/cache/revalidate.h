/*
 * revalidate.h — revalidating a stored response with the origin.
 *
 * A stale object's validators go out as If-None-Match / If-Modified-Since,
 * and a 304 answer is merged into the stored head (RFC 9111 §4.3.4) as a
 * new object sharing the old body.  Client preconditions answered from the
 * cache are http/conditional.h.
 */
#ifndef FRESHCACHE_REVALIDATE_H
#define FRESHCACHE_REVALIDATE_H

#include <stdbool.h>
#include <time.h>

struct cache_obj;
struct http_msg;
struct evbuffer;

/* Append the conditional fields for revalidating `stale`. */
void revalidate_add_validators(struct evbuffer *out, const struct cache_obj *stale);

/* A new READY-able object: `stale`'s head updated with the 304's fields,
 * sharing its body.  The caller applies its policy (cache/obj_policy.h)
 * and inserts it. */
struct head_rewrite;
struct cache_obj *revalidate_merge(const struct cache_obj *stale, const struct http_msg *resp304,
                                   time_t response_time, const struct head_rewrite *rw);

#endif
