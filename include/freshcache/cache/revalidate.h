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
#include <stddef.h>
#include <time.h>

#include "freshcache/http/http_date.h"

struct cache_obj;
struct http_msg;
struct evbuffer;

/* The conditional fields for revalidating `stale`: If-None-Match with
 * the ETag as the origin sent it (etag NULL: none), If-Modified-Since
 * (ims_len 0: none).  etag points into `stale` (valid while it is
 * referenced). */
struct revalidate_fields {
    const char *etag;
    size_t etag_len;
    size_t ims_len;
    char ims[sizeof "If-Modified-Since: " - 1 + HTTP_DATE_LEN + 1];    /* and a NUL */
};
void revalidate_fields(const struct cache_obj *stale, struct revalidate_fields *out);
/* Append them, each as "Name: value\r\n". */
void revalidate_add_validators(struct evbuffer *out, const struct cache_obj *stale);

/* A new READY-able object: `stale`'s head updated with the 304's fields,
 * sharing its body.  The caller applies its policy (cache/obj_policy.h)
 * and inserts it. */
struct head_rewrite;
struct cache_obj *revalidate_merge(const struct cache_obj *stale, const struct http_msg *resp304,
                                   time_t response_time, const struct head_rewrite *rw);

#endif
