/*
 * obj_policy.h — what a policy and the deploy generations make of a new
 * object: the one place a stored response gets its freshness lifetime (the
 * policy's ttl, or RFC 9111 from the origin's fields), its
 * stale-while-revalidate / stale-if-error allowances, the policy it was
 * stored under and the generations it is stamped with.  Used for a fresh
 * response and for the object a 304 merge builds alike.
 */
#ifndef FRESHCACHE_OBJ_POLICY_H
#define FRESHCACHE_OBJ_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "freshcache/cache/generation.h"

struct cache_control;
struct cache_obj;
struct fc_config;
struct fc_policy;
struct head_rewrite;
struct resp_timing;

/* What a policy's ttl means for a status (the spec's policies paragraph). */
enum status_class {
    STATUS_CLASS_TTL = 0,   /* 200 203 204 206 300 301 308: the policy's ttl */
    STATUS_CLASS_NEGATIVE,  /* 404 405 410 414 501: negative_ttl, unless the origin says */
    STATUS_CLASS_OTHER,     /* the rest: RFC 9111 from the origin, never past the ttl */
};
enum status_class policy_status_class(int status);

struct lifetime_verdict {
    bool store;             /* false: pass it through, not stored */
    int64_t lifetime;       /* seconds */
    bool policy_ttl;        /* the policy's own ttl applies (it lifts no-cache) */
};
/* The one place a stored response's freshness lifetime is decided, for a
 * response RFC 9111 already lets us store (response_storable()).
 * `pol` NULL (no policy matched): RFC 9111 from the origin's fields.
 * Else, with `origin` the RFC 9111 lifetime and `ttl` a policy duration:
 *   - a request with Authorization (`authorized`, stored because the
 *     origin allowed it, RFC 9111 §3.5): origin, never past ttl; the
 *     policy never makes someone's authorised response live longer;
 *   - STATUS_CLASS_TTL: ttl (ttl: origin: origin);
 *   - STATUS_CLASS_NEGATIVE: with explicit freshness from the origin
 *     (s-maxage, max-age, Expires) origin, else negative_ttl, never past
 *     ttl; 0 is not stored (cache poisoning: one request must not keep a
 *     405 or a pre-deploy 404 for the ttl of the assets);
 *   - STATUS_CLASS_OTHER: origin, never past ttl.
 * keep_after_deploy (a kept copy serving in place of a fresh 404 or 410)
 * is decided before this: a response that reaches here is the answer. */
struct lifetime_verdict policy_lifetime(const struct fc_policy *pol, int status,
                                        const struct cache_control *cc,
                                        const struct resp_timing *t, bool authorized);

/* The generations in force when a fetch began.  What the fetch stores is
 * stamped with these, so a bump during the fetch is never undone by it. */
struct gen_stamp {
    uint64_t global;
    uint64_t layout;
    uint64_t policy[GEN_MAX_POLICIES];
};
void gen_stamp_take(struct gen_stamp *s, const struct generations *g, size_t n_policies);

/* How the stored head of a `status` response is rewritten under policy
 * `pi` (-1: none): the policy's response_cache_control, only for the
 * statuses its ttl is for (a 405 or a 404 sent on as "max-age=31536000,
 * immutable" would poison browsers for a year) and not for an
 * `authorized` response (the origin's Cache-Control is what allowed
 * sharing it, RFC 9111 §3.5, and caches after us must see it); and with
 * cache.etag: content-hash the origin's validators dropped (ours are added
 * on delivery). */
void obj_policy_rewrite(const struct fc_config *cfg, int pi, int status, bool authorized,
                        struct head_rewrite *rw);

/* Apply policy `pi` and the stamp to `o`, whose head (obj_set_head), cc,
 * timing and `authorized` are set: o->policy, generations, lifetime
 * (policy_lifetime), swr, sie. */
void obj_apply_policy(struct cache_obj *o, const struct fc_config *cfg, int pi,
                      const struct gen_stamp *stamp);

#endif
