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

#include <stdint.h>

#include "freshcache/cache/generation.h"

struct cache_obj;
struct fc_config;
struct head_rewrite;

/* The generations in force when a fetch began.  What the fetch stores is
 * stamped with these, so a bump during the fetch is never undone by it. */
struct gen_stamp {
    uint64_t global;
    uint64_t layout;
    uint64_t policy[GEN_MAX_POLICIES];
};
void gen_stamp_take(struct gen_stamp *s, const struct generations *g, size_t n_policies);

/* How the stored head is rewritten under policy `pi` (-1: none): the
 * policy's response_cache_control, and with cache.etag: content-hash the
 * origin's validators dropped (ours are added on delivery). */
void obj_policy_rewrite(const struct fc_config *cfg, int pi, struct head_rewrite *rw);

/* Apply policy `pi` and the stamp to `o`, whose head (obj_set_head), cc
 * and timing are set: o->policy, generations, lifetime, swr, sie. */
void obj_apply_policy(struct cache_obj *o, const struct fc_config *cfg, int pi,
                      const struct gen_stamp *stamp);

#endif
