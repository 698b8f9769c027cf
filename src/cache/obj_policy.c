/*
 * obj_policy.c — see include/freshcache/cache/obj_policy.h.
 */
#include <string.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_obj.h"
#include "freshcache/cache/freshness.h"
#include "freshcache/cache/obj_policy.h"
#include "freshcache/config/config.h"

void gen_stamp_take(struct gen_stamp *s, const struct generations *g, size_t n_policies)
{
    memset(s, 0, sizeof *s);
    s->layout = generation_layout(g);
    s->global = generation_global(g);
    for (size_t i = 0; i < n_policies && i < GEN_MAX_POLICIES; i++)
        s->policy[i] = generation_policy(g, (unsigned)i);
}

static const struct fc_policy *policy_at(const struct fc_config *cfg, int pi)
{
    return pi >= 0 && (size_t)pi < cfg->n_policies ? &cfg->policies[pi] : NULL;
}

void obj_policy_rewrite(const struct fc_config *cfg, int pi, struct head_rewrite *rw)
{
    const struct fc_policy *pol = policy_at(cfg, pi);
    memset(rw, 0, sizeof *rw);
    rw->cache_control = pol ? pol->response_cache_control : NULL;
    rw->drop_validators = cfg->cache.etag == ETAG_CONTENT_HASH;
    rw->drop_set_cookie = pol && pol->set_cookie == SET_COOKIE_STRIP;
}

void obj_apply_policy(struct cache_obj *o, const struct fc_config *cfg, int pi,
                      const struct gen_stamp *stamp)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    const struct fc_policy *pol = policy_at(cfg, pi);
    o->policy = pol ? pi : -1;
    o->generation = stamp->global;
    o->policy_layout = stamp->layout;
    o->policy_gen = pol && pi < GEN_MAX_POLICIES ? stamp->policy[pi] : 0;
    if (pol && !pol->ttl_origin) {
        /* The policy's ttl overrides the origin's freshness here; a
         * positive one also overrides the origin's no-cache (the policy
         * decided how long the copy may be used). */
        o->lifetime = (int64_t)(pol->ttl_ms / 1000);
        if (o->lifetime > 0)
            o->cc.flags &= ~(unsigned)CC_NO_CACHE;
    } else {
        o->lifetime = freshness_lifetime(&o->cc, &o->timing, o->status, true);
    }
    o->stale_while_revalidate =
        pol && pol->has_stale_while_revalidate
            ? (int64_t)(pol->stale_while_revalidate_ms / 1000)
            : (o->cc.stale_while_revalidate > 0 ? o->cc.stale_while_revalidate : 0);
    /* Measured from when the origin last sent or confirmed the copy (a
     * 304 merge restamps it). */
    o->keep_until = pol && pol->keep_after_deploy_ms
                        ? o->timing.response_time + (time_t)(pol->keep_after_deploy_ms / 1000)
                        : 0;
    o->sie_from_policy = pol && pol->has_stale_if_error;
    o->stale_if_error = o->sie_from_policy
                            ? (int64_t)(pol->stale_if_error_ms / 1000)
                            : (o->cc.stale_if_error > 0 ? o->cc.stale_if_error : 0);
}
