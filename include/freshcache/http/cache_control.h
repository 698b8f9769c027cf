/*
 * cache_control.h — Cache-Control (RFC 9111 §5.2) and Pragma parsing.
 *
 * cc_parse() is additive: call it once per field line (a message may carry
 * several Cache-Control lines, which is the same as one comma-joined line).
 * Directive names are case-insensitive; values may be tokens or quoted
 * strings; unknown directives are ignored (except that their presence is
 * remembered in CC_UNKNOWN for must-understand).  When a directive with a
 * value appears more than once, the first occurrence wins (§4.2.1 permits
 * "the first occurrence" reading).  An invalid delta-seconds value (not
 * 1*DIGIT) makes that directive count as present but invalid:
 * for max-age / s-maxage that means "stale" (value 0); every other delta
 * directive also reads as 0, except a valueless max-stale (CC_MAX_STALE_ANY).
 * no-cache / private with an argument naming at least one field set the
 * *_FIELDS flag instead of the unqualified one; an empty list (no-cache="")
 * sets the unqualified flag.
 */
#ifndef FRESHCACHE_CACHE_CONTROL_H
#define FRESHCACHE_CACHE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cc_flag {
    CC_NO_STORE          = 1u << 0,
    CC_NO_CACHE          = 1u << 1,   /* unqualified no-cache (or request no-cache) */
    CC_NO_CACHE_FIELDS   = 1u << 2,   /* no-cache="field, ..." (response) */
    CC_PRIVATE           = 1u << 3,   /* unqualified private */
    CC_PRIVATE_FIELDS    = 1u << 4,   /* private="field, ..." */
    CC_PUBLIC            = 1u << 5,
    CC_MUST_REVALIDATE   = 1u << 6,
    CC_PROXY_REVALIDATE  = 1u << 7,
    CC_NO_TRANSFORM      = 1u << 8,
    CC_IMMUTABLE         = 1u << 9,
    CC_ONLY_IF_CACHED    = 1u << 10,
    CC_MUST_UNDERSTAND   = 1u << 11,
    CC_UNKNOWN           = 1u << 12,  /* some directive we do not implement */
};

#define CC_UNSET (-1)
#define CC_MAX_STALE_ANY INT64_MAX    /* "max-stale" without a value */
/* RFC 9111 §1.2.2: a delta-seconds too large to represent, or a calculation
 * that overflows, is taken as 2^31.  Parsed values are clamped to this, and
 * freshness.c clamps lifetimes and ages to it as well. */
#define CC_DELTA_MAX INT64_C(2147483648)

struct cache_control {
    unsigned flags;
    int64_t max_age;                  /* seconds, CC_UNSET if absent */
    int64_t s_maxage;
    int64_t max_stale;                /* request; CC_MAX_STALE_ANY when valueless */
    int64_t min_fresh;                /* request */
    int64_t stale_while_revalidate;   /* response (RFC 5861) */
    int64_t stale_if_error;           /* request or response (RFC 5861) */
};

/* A stored response's directives, as every cached object keeps them: 20
 * bytes instead of 56.  Only what a response's directives can hold: the
 * request-only max-stale and min-fresh are not kept, and every value is
 * in [0, CC_DELTA_MAX] (parsed values are clamped so), which 32 bits hold;
 * CC_PACKED_UNSET stands for CC_UNSET. */
#define CC_PACKED_UNSET UINT32_MAX
struct cc_packed {
    uint32_t max_age;
    uint32_t s_maxage;
    uint32_t stale_while_revalidate;
    uint32_t stale_if_error;
    uint16_t flags;                   /* enum cc_flag */
};
void cc_pack(const struct cache_control *cc, struct cc_packed *out);
/* The directives back (max-stale, min-fresh: CC_UNSET). */
void cc_unpack(const struct cc_packed *p, struct cache_control *out);

void cc_init(struct cache_control *cc);
/* Parse one field line's value and merge it into *cc. */
void cc_parse(struct cache_control *cc, const char *value, size_t len);
/* A request's Pragma line: "no-cache" sets CC_NO_CACHE (only when the
 * request had no Cache-Control at all — caller decides, per RFC 9111 §5.4). */
bool cc_pragma_no_cache(const char *value, size_t len);

#endif
