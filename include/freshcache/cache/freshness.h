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

/* A stored response's timing, as every cached object keeps it: 32 bytes
 * instead of 56.  The age arithmetic's constant part (§4.2.3
 * corrected_initial_age) is done once when it is stored, so request_time
 * and age_value are not kept; Date and Expires are kept as 32-bit offsets
 * (from response_time and from Date), which represent every Date within
 * 68 years of our clock and every Expires within 68 years of its Date:
 * beyond that an offset is clamped, which only moves a lifetime or an
 * apparent age that is already past 2^31 seconds (§1.2.2) or below 0.
 * Last-Modified is kept whole: client conditionals compare it exactly. */
enum {
    STORED_HAS_DATE          = 1u << 0,
    STORED_HAS_EXPIRES       = 1u << 1,
    STORED_EXPIRES_VALID     = 1u << 2,
    STORED_HAS_LAST_MODIFIED = 1u << 3,
};
struct stored_timing {
    time_t response_time;
    time_t last_modified;
    int32_t date_off;               /* Date - response_time */
    int32_t expires_off;            /* Expires - Date */
    uint32_t initial_age;           /* corrected_initial_age, at most CC_DELTA_MAX */
    uint8_t flags;                  /* STORED_* */
};
void stored_timing_pack(const struct resp_timing *t, struct stored_timing *out);
/* A resp_timing equivalent to the stored one: the same current_age(),
 * freshness_lifetime() and fields (request_time reads as response_time,
 * age_value as the initial age). */
void stored_timing_unpack(const struct stored_timing *s, struct resp_timing *out);
/* current_age() of the stored response at `now`. */
int64_t stored_age(const struct stored_timing *s, time_t now);
static inline bool stored_has_last_modified(const struct stored_timing *s)
{
    return s->flags & STORED_HAS_LAST_MODIFIED;
}
static inline time_t stored_date(const struct stored_timing *s)
{
    return s->response_time + s->date_off;
}

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
