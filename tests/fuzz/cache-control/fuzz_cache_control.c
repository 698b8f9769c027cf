/*
 * fuzz_cache_control.c — Cache-Control and Pragma (src/http/cache_control.c)
 * and the choice of the field a response's directives come from
 * (src/http/cc_fields.c): Freshcache-Cache-Control, CDN-Cache-Control,
 * Surrogate-Control with its targets, Cache-Control.
 *
 * Input: the whole input is first one Cache-Control value, parsed alone
 * and as a Pragma; then its lines, each a value of the field its first
 * byte picks, make a response and a request whose directives are read as
 * the proxy reads them.  Every parsed number must be unset or within
 * [0, CC_DELTA_MAX] (max-stale may also be "any").
 */
#include <stddef.h>
#include <stdint.h>

#include "freshcache/base/assert.h"
#include "freshcache/http/cache_control.h"
#include "freshcache/http/cc_fields.h"
#include "freshcache/http/http_msg.h"

#include "../fuzz_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_delta(int64_t v)
{
    FC_ASSERT(v == CC_UNSET || (v >= 0 && v <= CC_DELTA_MAX));
}

static void check_cc(const struct cache_control *cc)
{
    check_delta(cc->max_age);
    check_delta(cc->s_maxage);
    check_delta(cc->min_fresh);
    check_delta(cc->stale_while_revalidate);
    check_delta(cc->stale_if_error);
    FC_ASSERT(cc->max_stale == CC_MAX_STALE_ANY || cc->max_stale == CC_UNSET ||
              (cc->max_stale >= 0 && cc->max_stale <= CC_DELTA_MAX));
    FC_ASSERT(!(cc->flags & ~((CC_UNKNOWN << 1) - 1)));
}

static const char *const names[] = {
    "Cache-Control", "Pragma", "CDN-Cache-Control", "Freshcache-Cache-Control",
    "Surrogate-Control", "cache-control", "X-Other",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cache_control cc;
    cc_init(&cc);
    cc_parse(&cc, (const char *)data, size);
    check_cc(&cc);
    /* Additive: a second line merges into the first. */
    cc_parse(&cc, (const char *)data, size);
    check_cc(&cc);
    (void)cc_pragma_no_cache((const char *)data, size);

    struct http_msg m;
    http_msg_init(&m);
    fuzz_msg_add_values(&m, names, FC_ARRAY_LEN(names), data, size);
    cc_fields_parse(&m, &cc);
    check_cc(&cc);
    cc_request_parse(&m, &cc);
    check_cc(&cc);
    cc_response_parse(&m, &cc);
    check_cc(&cc);
    (void)cc_response_has_fields(&m);
    http_msg_free(&m);
    return 0;
}
