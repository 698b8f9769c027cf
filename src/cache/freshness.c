/*
 * freshness.c — RFC 9111 rules for a SHARED cache: storability (§3),
 * freshness lifetime (§4.2.1, §4.2.2), age (§4.2.3) and whether a stored
 * response may answer a request without contacting the origin (§4.2.4,
 * §5.2.1, §5.2.2).
 *
 * Everything here is pure arithmetic on the structs from freshness.h: no
 * clock, no allocation, no logging.  It runs on every cache hit.
 *
 * Arithmetic is done in int64_t with saturating adds/subtracts, and results
 * that are durations are clamped to [0, 2^31] (CC_DELTA_MAX): §1.2.2 says a
 * calculation that overflows is to be taken as 2^31, and §5.1 says an Age
 * that large is sent as 2^31.  Nothing realistic comes near it.
 *
 * Qualified no-cache="f" / private="f": RFC 9111 lets a cache keep the
 * response minus the named fields.  The parsed struct does not keep the
 * field names, so we cannot strip them; we take the reading the RFC itself
 * notes is common (§5.2.2.4, §5.2.2.7 notes: caches often treat the
 * qualified forms as unqualified).  That is the safe side: honouring
 * private="Set-Cookie" as "store everything" would hand one user's cookie
 * to everyone.
 */
#include <stdint.h>
#include <string.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/freshness.h"

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t sat_sub(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return b < 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t clamp_delta(int64_t v)
{
    if (v < 0)
        return 0;
    return v > CC_DELTA_MAX ? CC_DELTA_MAX : v;
}

/* RFC 9110 §15.1: "heuristically cacheable" status codes. */
bool status_heuristically_cacheable(int status)
{
    switch (status) {
    case 200: case 203: case 204: case 206:
    case 300: case 301: case 308:
    case 404: case 405: case 410: case 414:
    case 501:
        return true;
    default:
        return false;
    }
}

/* §3: a cache "understands" a status code if it recognises it and implements
 * all the caching behaviour specified for it.  The heuristically cacheable
 * codes and the redirects are the RFC 9110 codes with defined caching
 * semantics.  We add the common errors whose only caching rule is the
 * general one (cacheable with explicit freshness, §3 / §4.2.1), which this
 * module implements: 400, 403, 500, 502, 503, 504 — origins use them with
 * short max-age for negative caching.  Left out on purpose: 1xx (not final),
 * 401 / 407 (authentication challenges), and everything we cannot name.
 *
 * 206 and 304 are in the set because their semantics are known, but
 * response_storable() still refuses to store them: see there. */
bool status_understood(int status)
{
    switch (status) {
    case 200: case 203: case 204: case 206:
    case 300: case 301: case 302: case 303: case 304: case 307: case 308:
    case 400: case 403: case 404: case 405: case 410: case 414:
    case 500: case 501: case 502: case 503: case 504:
        return true;
    default:
        return false;
    }
}

bool response_storable(const struct storable_input *in)
{
    FC_ASSERT(in != NULL && in->req_cc != NULL && in->resp_cc != NULL);
    const struct cache_control *req = in->req_cc, *resp = in->resp_cc;

    /* §3: "the request method is understood by the cache" — GET and HEAD. */
    if (!in->method_is_get_or_head)
        return false;
    /* §3: "the response status code is final".  Outside 200..599 there is no
     * final status we could reason about. */
    if (in->status < 200 || in->status > 599)
        return false;
    /* §3: 206 and 304 may be stored only by a cache that understands them.
     * This cache stores complete responses only (§3.3/§3.4 would need range
     * assembly), and a 304 freshens a stored response (§4.3.4) rather than
     * being stored itself: caching one would answer unconditional requests
     * with an empty 304. */
    if (in->status == 206 || in->status == 304)
        return false;

    /* §5.2.2.3 must-understand: storable only by a cache that understands
     * the status code; such a cache SHOULD ignore the response's no-store
     * (the directive exists so older caches fall back to no-store). */
    bool must_understand = (resp->flags & CC_MUST_UNDERSTAND) != 0;
    if (must_understand && !status_understood(in->status))
        return false;

    /* §5.2.1.5: request no-store forbids storing the response to it; the
     * must-understand override applies only to the response directive. */
    if (req->flags & CC_NO_STORE)
        return false;
    /* §5.2.2.5 response no-store (unless overridden above). */
    if ((resp->flags & CC_NO_STORE) && !must_understand)
        return false;

    /* §5.2.2.7: a shared cache MUST NOT store a private response.  The
     * qualified form is treated as unqualified (see the top of the file). */
    if (resp->flags & (CC_PRIVATE | CC_PRIVATE_FIELDS))
        return false;

    /* §3.5: a response to a request with Authorization is stored by a
     * shared cache only if the response explicitly allows it. */
    if (in->req_has_authorization &&
        !(resp->flags & (CC_MUST_REVALIDATE | CC_PUBLIC)) && resp->s_maxage == CC_UNSET)
        return false;

    /* §3: and the response carries something that makes it reusable.
     * no-cache does not prevent storage — it only forces validation
     * (§5.2.2.4), which freshness_can_serve() enforces. */
    return (resp->flags & CC_PUBLIC) || resp->max_age != CC_UNSET ||
           resp->s_maxage != CC_UNSET || in->resp_has_expires ||
           status_heuristically_cacheable(in->status);
}

/* §4.2.2 heuristic: a fraction of the time since Last-Modified.  10% is
 * the RFC's "typical setting"; capped at a day so a file untouched for
 * years is not trusted for months. */
#define HEURISTIC_DIVISOR 10
#define HEURISTIC_CAP 86400

int64_t freshness_lifetime(const struct cache_control *resp_cc, const struct resp_timing *t,
                           int status, bool heuristic_allowed)
{
    FC_ASSERT(resp_cc != NULL && t != NULL);

    /* §4.2.1, in order: a shared cache uses s-maxage, then max-age. */
    if (resp_cc->s_maxage != CC_UNSET)
        return clamp_delta(resp_cc->s_maxage);
    if (resp_cc->max_age != CC_UNSET)
        return clamp_delta(resp_cc->max_age);

    /* Date, or "the time the message was received if it is not present"
     * (§4.2.1, RFC 9110 §6.6.1). */
    int64_t date = t->has_date ? (int64_t)t->date : (int64_t)t->response_time;

    /* Then Expires - Date.  An invalid Expires "MUST" be taken as a time in
     * the past (§5.3), i.e. already expired. */
    if (t->has_expires) {
        if (!t->expires_valid)
            return 0;
        return clamp_delta(sat_sub((int64_t)t->expires, date));
    }

    /* §4.2.2: no explicit expiration, so a heuristic — only when allowed,
     * for heuristically cacheable statuses or responses marked public
     * ("explicitly marked as cacheable"). */
    if (!heuristic_allowed || !t->has_last_modified)
        return 0;
    if (!status_heuristically_cacheable(status) && !(resp_cc->flags & CC_PUBLIC))
        return 0;
    int64_t since = sat_sub(date, (int64_t)t->last_modified);
    if (since <= 0)
        return 0;   /* Last-Modified at or after Date: no evidence of stability */
    int64_t h = since / HEURISTIC_DIVISOR;
    return h > HEURISTIC_CAP ? HEURISTIC_CAP : h;
}

/* §4.2.3, term by term. */
/* §4.2.3 corrected_initial_age: the age when the response arrived. */
static int64_t initial_age(const struct resp_timing *t)
{
    int64_t response_time = (int64_t)t->response_time;
    /* Without a Date, the recipient uses the receipt time (RFC 9110 §6.6.1),
     * which makes apparent_age 0. */
    int64_t date_value = t->has_date ? (int64_t)t->date : response_time;
    int64_t age_value = t->age_value < 0 ? 0 : t->age_value;

    int64_t apparent_age = sat_sub(response_time, date_value);
    if (apparent_age < 0)
        apparent_age = 0;
    int64_t response_delay = sat_sub(response_time, (int64_t)t->request_time);
    int64_t corrected_age_value = sat_add(age_value, response_delay);
    return apparent_age > corrected_age_value ? apparent_age : corrected_age_value;
}

/* initial age + resident time.  A clock stepping backwards could make this
 * negative: an age below 0 would only make responses look fresher, so it
 * floors at 0. */
static int64_t age_at(int64_t initial, time_t response_time, time_t now)
{
    return clamp_delta(sat_add(initial, sat_sub((int64_t)now, (int64_t)response_time)));
}

int64_t current_age(const struct resp_timing *t, time_t now)
{
    FC_ASSERT(t != NULL);
    return age_at(initial_age(t), t->response_time, now);
}

static int32_t clamp32(int64_t v)
{
    return v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : (int32_t)v;
}

void stored_timing_pack(const struct resp_timing *t, struct stored_timing *out)
{
    memset(out, 0, sizeof *out);
    out->response_time = t->response_time;
    int64_t date = t->has_date ? (int64_t)t->date : (int64_t)t->response_time;
    out->date_off = clamp32(sat_sub(date, (int64_t)t->response_time));
    out->initial_age = (uint32_t)clamp_delta(initial_age(t));
    out->flags = (uint8_t)((t->has_date ? STORED_HAS_DATE : 0) |
                           (t->has_expires ? STORED_HAS_EXPIRES : 0) |
                           (t->expires_valid ? STORED_EXPIRES_VALID : 0) |
                           (t->has_last_modified ? STORED_HAS_LAST_MODIFIED : 0));
    if (t->has_expires && t->expires_valid)
        out->expires_off = clamp32(sat_sub((int64_t)t->expires, date));
    if (t->has_last_modified)
        out->last_modified = t->last_modified;
}

void stored_timing_unpack(const struct stored_timing *s, struct resp_timing *out)
{
    memset(out, 0, sizeof *out);
    out->request_time = s->response_time;
    out->response_time = s->response_time;
    out->has_date = s->flags & STORED_HAS_DATE;
    out->date = stored_date(s);
    out->age_value = s->initial_age;
    out->has_expires = s->flags & STORED_HAS_EXPIRES;
    out->expires_valid = s->flags & STORED_EXPIRES_VALID;
    if (out->has_expires && out->expires_valid)
        out->expires = out->date + s->expires_off;
    out->has_last_modified = s->flags & STORED_HAS_LAST_MODIFIED;
    out->last_modified = s->last_modified;
}

int64_t stored_age(const struct stored_timing *s, time_t now)
{
    return age_at(s->initial_age, s->response_time, now);
}

enum serve_verdict freshness_can_serve(const struct serve_input *in)
{
    FC_ASSERT(in != NULL && in->req_cc != NULL && in->resp_cc != NULL);
    const struct cache_control *req = in->req_cc, *resp = in->resp_cc;

    /* §5.2.1.4: request no-cache — the client wants validation.  (Pragma:
     * no-cache is folded in by the caller, §5.4.)  The request directive
     * takes no argument; a stray one does not change that. */
    if (req->flags & (CC_NO_CACHE | CC_NO_CACHE_FIELDS))
        return SERVE_MUST_VALIDATE;
    /* §5.2.2.4: response no-cache — never reused without validation, fresh
     * or not.  Qualified treated as unqualified (top of file). */
    if (resp->flags & (CC_NO_CACHE | CC_NO_CACHE_FIELDS))
        return SERVE_MUST_VALIDATE;

    /* §5.2.1.1 request max-age: the client does not want a response older
     * than N seconds. */
    if (req->max_age != CC_UNSET && in->age > req->max_age)
        return SERVE_MUST_VALIDATE;

    int64_t remaining = sat_sub(in->lifetime, in->age);   /* < 0 when stale */

    /* §5.2.1.3 min-fresh: it must stay fresh at least N more seconds. */
    if (req->min_fresh != CC_UNSET && remaining < req->min_fresh)
        return SERVE_MUST_VALIDATE;

    /* §4.2: fresh when freshness_lifetime > current_age. */
    if (remaining > 0)
        return SERVE_FRESH;

    /* Stale.  §4.2.4: a cache MUST NOT serve stale when an in-protocol
     * directive forbids it: must-revalidate (§5.2.2.2), and for a shared
     * cache proxy-revalidate (§5.2.2.8) and s-maxage (§5.2.2.10, which
     * implies proxy-revalidate). */
    if ((resp->flags & (CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE)) ||
        resp->s_maxage != CC_UNSET)
        return SERVE_MUST_VALIDATE;

    /* §5.2.1.2 max-stale: the client accepts a response stale by at most N
     * seconds, or by any amount when no value is given. */
    if (req->max_stale == CC_MAX_STALE_ANY)
        return SERVE_STALE_OK;
    if (req->max_stale != CC_UNSET && sat_sub(in->age, in->lifetime) <= req->max_stale)
        return SERVE_STALE_OK;

    /* §4.2.4: otherwise stale responses are not served without validation
     * (stale-while-revalidate / stale-if-error are the caller's business). */
    return SERVE_MUST_VALIDATE;
}
