/*
 * conditional.h — client preconditions (RFC 9110 §13): If-Match,
 * If-Unmodified-Since, If-None-Match, If-Modified-Since evaluated in the
 * §13.2.2 order against a representation's validators, and If-Range.
 *
 * Pure functions over a parsed request; no state.
 */
#ifndef FRESHCACHE_CONDITIONAL_H
#define FRESHCACHE_CONDITIONAL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct http_msg;

enum cond_result { COND_NONE = 0, COND_NOT_MODIFIED, COND_PRECONDITION_FAILED };

/* The validators a client sees for a representation. */
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

/* Does an If-Range value select the representation (§13.1.5)? */
bool if_range_matches(const char *ir, size_t len, const struct validators *v);

#endif
