/*
 * revalidate.h — conditional requests, both directions.
 *
 * Toward the origin: a stale object's validators go out as If-None-Match /
 * If-Modified-Since, and a 304 answer is merged into the stored head
 * (RFC 9111 §4.3.4) as a new object sharing the old body.
 * Toward clients: a client's If-None-Match, If-Modified-Since, If-Match and
 * If-Unmodified-Since are evaluated against a stored object (RFC 9110 §13.2.2
 * order) to answer 304 or 412 from the cache.
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
 * sharing its body.  The caller fills timing/lifetime and inserts it. */
struct head_rewrite;
struct cache_obj *revalidate_merge(const struct cache_obj *stale, const struct http_msg *resp304,
                                   time_t response_time, const struct head_rewrite *rw);

enum cond_result { COND_NONE = 0, COND_NOT_MODIFIED, COND_PRECONDITION_FAILED };
/* The validators clients see for a stored response: the origin's, or with
 * cache.etag: content-hash the content hash and its first-seen time. */
struct validators {
    int status;
    const char *etag;       /* NULL: none */
    size_t etag_len;
    bool has_last_modified;
    time_t last_modified;
    bool has_date;
    time_t date;
};
/* Evaluate the request's preconditions (RFC 9110 §13.2.2 order). */
enum cond_result cond_evaluate(const struct http_msg *req, const struct validators *v);

/* Weak comparison of an entity-tag list (If-None-Match) with one tag. */
bool etag_list_match_weak(const char *list, size_t len, const char *etag, size_t elen);
/* Strong comparison (If-Match). */
bool etag_list_match_strong(const char *list, size_t len, const char *etag, size_t elen);

#endif
