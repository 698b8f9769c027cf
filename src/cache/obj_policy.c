/*
 * obj_policy.c — see include/freshcache/cache/obj_policy.h.
 */
#include <stdint.h>
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

_Static_assert(CONFIG_MAX_POLICIES <= INT16_MAX, "cache_obj.policy is a short");

static const struct fc_policy *policy_at(const struct fc_config *cfg, int pi)
{
    return pi >= 0 && (size_t)pi < cfg->n_policies ? &cfg->policies[pi] : NULL;
}

void obj_policy_rewrite(const struct fc_config *cfg, int pi, int status, bool authorized,
                        struct head_rewrite *rw)
{
    const struct fc_policy *pol = policy_at(cfg, pi);
    memset(rw, 0, sizeof *rw);
    if (pol && !authorized && policy_status_class(status) == STATUS_CLASS_TTL)
        rw->cache_control = pol->response_cache_control;
    rw->drop_validators = cfg->cache.etag == ETAG_CONTENT_HASH;
    rw->drop_set_cookie = pol && pol->set_cookie == SET_COOKIE_STRIP;
}

enum status_class policy_status_class(int status)
{
    switch (status) {
    case 200: case 203: case 204: case 206:
    case 300: case 301: case 308:
        return STATUS_CLASS_TTL;
    case 404: case 405: case 410: case 414:
    case 501:
        return STATUS_CLASS_NEGATIVE;
    default:
        return STATUS_CLASS_OTHER;
    }
}

static int64_t min_lifetime(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

struct lifetime_verdict policy_lifetime(const struct fc_policy *pol, int status,
                                        const struct cache_control *cc,
                                        const struct resp_timing *t, bool authorized)
{
    int64_t origin = freshness_lifetime(cc, t, status, true);
    struct lifetime_verdict v = { .store = true, .lifetime = origin, .policy_ttl = false };
    if (pol == NULL)
        return v;
    /* The ttl, where a policy sets one, bounds everything below. */
    int64_t cap = pol->ttl_origin ? INT64_MAX : (int64_t)(pol->ttl_ms / 1000);
    enum status_class sc = policy_status_class(status);
    if (authorized || sc == STATUS_CLASS_OTHER) {
        v.lifetime = min_lifetime(origin, cap);
    } else if (sc == STATUS_CLASS_TTL) {
        if (!pol->ttl_origin) {
            v.lifetime = cap;
            v.policy_ttl = true;
        }
    } else {
        bool explicit = cc->s_maxage != CC_UNSET || cc->max_age != CC_UNSET || t->has_expires;
        if (explicit) {
            v.lifetime = min_lifetime(origin, cap);
        } else {
            v.lifetime = min_lifetime((int64_t)(pol->negative_ttl_ms / 1000), cap);
            v.store = v.lifetime > 0;
        }
    }
    return v;
}

void obj_apply_policy(struct cache_obj *o, const struct fc_config *cfg, int pi,
                      const struct gen_stamp *stamp)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    const struct fc_policy *pol = policy_at(cfg, pi);
    _Static_assert(CONFIG_MAX_POLICIES <= INT8_MAX, "a policy index fits o->policy");
    o->policy = (int8_t)(pol ? pi : -1);
    o->generation = (uint32_t)stamp->global;
    o->policy_layout = (uint32_t)stamp->layout;
    o->policy_gen = pol && pi < GEN_MAX_POLICIES ? (uint32_t)stamp->policy[pi] : 0;
    struct cache_control cc;
    struct resp_timing t;
    obj_cc(o, &cc);
    obj_timing(o, &t);
    struct lifetime_verdict v = policy_lifetime(pol, o->status, &cc, &t, o->authorized);
    o->lifetime = obj_delta(v.lifetime);
    o->policy_ttl = v.policy_ttl;
    /* A positive ttl of the policy's own also overrides the origin's
     * no-cache (the policy decided how long the copy may be used). */
    if (v.policy_ttl && o->lifetime > 0)
        o->cc.flags &= (uint16_t)~CC_NO_CACHE;
    o->stale_while_revalidate =
        obj_delta(pol && pol->has_stale_while_revalidate
                      ? (int64_t)(pol->stale_while_revalidate_ms / 1000)
                      : cc.stale_while_revalidate);
    /* Measured from when the origin last sent or confirmed the copy (a
     * 304 merge restamps it). */
    o->keep_until = pol && pol->keep_after_deploy_ms
                        ? obj_time32(o->timing.response_time +
                                     (time_t)(pol->keep_after_deploy_ms / 1000))
                        : 0;
    o->sie_from_policy = pol && pol->has_stale_if_error;
    o->stale_if_error = obj_delta(o->sie_from_policy ? (int64_t)(pol->stale_if_error_ms / 1000)
                                                     : cc.stale_if_error);
}
