/*
 * freshness.h — RFC 9111 arithmetic: may a response be stored (§3), how long
 * is it fresh (§4.2.1, heuristics §4.2.2), how old is it (§4.2.3), and may a
 * stored response answer a request (§4.2.4, request directives §5.2.1).
 *
 * Pure functions on plain structs: no I/O, no clock reads (callers pass
 * `now`), so every rule is unit-tested directly.  All times are seconds
 * since the epoch; durations are seconds.
 */
#ifndef FRESHCACHE_FRESHNESS_H
#define FRESHCACHE_FRESHNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "freshcache/http/cache_control.h"
#include "freshcache/http/resp_timing.h"

/* Status codes that are heuristically cacheable (RFC 9110 §15.1). */
bool status_heuristically_cacheable(int status);
/* Status codes this cache understands (for must-understand, §5.2.2.3). */
bool status_understood(int status);

struct storable_input {
    int status;
    bool method_is_get_or_head;
    const struct cache_control *req_cc;
    const struct cache_control *resp_cc;
    bool req_has_authorization;
    bool resp_has_expires;             /* Expires present (even invalid counts as explicit) */
};
/* RFC 9111 §3 for a shared cache.  Returns true if the response may be stored.
 * req_cc and resp_cc must not be NULL (pass cc_init()ed structs).  Beyond the
 * §3 list: 206 and 304 are never stored (this cache keeps complete responses
 * only; a 304 freshens a stored response, §4.3.4), and qualified
 * private="f" is treated as unqualified (field names are not kept, so they
 * could not be stripped).  must-understand with an understood status
 * overrides the response's no-store, not the request's (§5.2.2.3). */
bool response_storable(const struct storable_input *in);

/* §4.2.1 + §4.2.2 for a shared cache: s-maxage, max-age, Expires - Date,
 * then a heuristic of 10% of (Date - Last-Modified) capped at one day when
 * the status is heuristically cacheable or the response is public.  0 when
 * nothing gives freshness.  `heuristic_allowed` is false when the caller
 * knows the response must not use heuristics.  An invalid Expires gives 0
 * (§5.3); results are clamped to [0, CC_DELTA_MAX]. */
int64_t freshness_lifetime(const struct cache_control *resp_cc, const struct resp_timing *t,
                           int status, bool heuristic_allowed);

/* §4.2.3 current_age at `now`.  A missing Date counts as response_time; the
 * result is clamped to [0, CC_DELTA_MAX] (§1.2.2, §5.1). */
int64_t current_age(const struct resp_timing *t, time_t now);

enum serve_verdict {
    SERVE_FRESH = 0,         /* fresh enough for this request: serve it */
    SERVE_STALE_OK,          /* stale, but the request's max-stale allows it */
    SERVE_MUST_VALIDATE,     /* must revalidate before use */
};

struct serve_input {
    const struct cache_control *req_cc;     /* request directives (Pragma folded in) */
    const struct cache_control *resp_cc;    /* stored response's directives */
    int64_t lifetime;                       /* freshness_lifetime() or a policy override */
    int64_t age;                            /* current_age() */
};
/* §4.2.4 / §5.2: may the stored response be served to this request without
 * contacting the origin?  Considers request no-cache, max-age, min-fresh,
 * max-stale, and response no-cache / must-revalidate / proxy-revalidate /
 * s-maxage (which forbid serving stale).  Qualified no-cache="f" is treated
 * as unqualified (must validate).  stale-while-revalidate / stale-if-error
 * are not considered here. */
enum serve_verdict freshness_can_serve(const struct serve_input *in);

#endif
