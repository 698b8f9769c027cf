/*
 * fuzz_fields.c — the header fields a cache reads besides Cache-Control:
 * Age, Date, Expires and Last-Modified (HTTP-date, src/http/resp_timing.c,
 * http_date.c), Vary (src/cache/vary.c), Range (src/http/range.c),
 * Surrogate-Key / Cache-Tag (the purge tags obj_set_head collects,
 * src/cache/cache_obj.c), the conditionals (src/http/conditional.c), and
 * freshness (src/cache/freshness.c) on top of them.
 *
 * Input: a control byte (the response status and the representation size
 * Range is read against), then "Name: value" lines for the response, an
 * empty line, and lines for the request.  Invariants checked: a request
 * matches the Vary key made from it; a satisfiable range lies inside the
 * representation; a parsed date formats and parses back to itself;
 * lifetimes and ages stay in [0, CC_DELTA_MAX]; every tag is a non-empty
 * word.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_obj.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/freshness.h"
#include "freshcache/http/cache_control.h"
#include "freshcache/http/cc_fields.h"
#include "freshcache/http/conditional.h"
#include "freshcache/http/http_date.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/http/range.h"
#include "freshcache/http/resp_timing.h"

#include "../fuzz_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed clock: the same input always runs the same way. */
#define NOW ((time_t)1700000000)

static const int statuses[] = { 200, 203, 204, 206, 301, 304, 404, 410, 500, 599 };
static const uint64_t sizes[] = { 0, 1, 100, 10000, UINT64_MAX / 2, UINT64_MAX };

static void check_date(const char *v, size_t len)
{
    time_t t;
    if (!http_date_parse_at(v, len, NOW, &t))
        return;
    /* Years 0000..9999 are what a formatted date can say. */
    if (t < (time_t)-62167219200 || t > (time_t)253402300799)
        return;
    char out[HTTP_DATE_LEN + 1];
    http_date_format(t, out);
    FC_ASSERT(strlen(out) == HTTP_DATE_LEN);
    time_t back;
    FC_ASSERT(http_date_parse_at(out, HTTP_DATE_LEN, NOW, &back));
    FC_ASSERT(back == t);
}

static void check_ranges(const struct http_msg *req, uint64_t size)
{
    uint32_t it = 0;
    const struct http_field *f;
    while ((f = http_msg_next(req, "Range", &it)) != NULL) {
        uint64_t first = 0, last = 0;
        enum range_choice c = range_parse(http_field_value(req, f), f->value_len, size, &first,
                                          &last);
        if (c == RANGE_ONE)
            FC_ASSERT(first <= last && last < size);
    }
}

static void check_conditionals(const struct http_msg *req, const struct http_msg *resp,
                               const struct resp_timing *t)
{
    size_t elen = 0;
    const char *etag = http_msg_get(resp, "ETag", &elen);
    struct validators v = {
        .status = resp->status, .etag = etag, .etag_len = elen,
        .has_last_modified = t->has_last_modified, .last_modified = t->last_modified,
        .has_date = t->has_date, .date = t->date,
    };
    (void)cond_evaluate(req, &v);
    uint32_t it = 0;
    const struct http_field *f;
    while ((f = http_msg_next(req, "If-Range", &it)) != NULL)
        (void)if_range_matches(http_field_value(req, f), f->value_len, &v);
    if (etag != NULL) {
        it = 0;
        while ((f = http_msg_next(req, "If-None-Match", &it)) != NULL) {
            bool strong = etag_list_match_strong(http_field_value(req, f), f->value_len, etag, elen);
            bool weak = etag_list_match_weak(http_field_value(req, f), f->value_len, etag, elen);
            FC_ASSERT(!strong || weak);     /* a strong match is also a weak one */
        }
    }
}

static void check_freshness(const struct http_msg *req, const struct http_msg *resp,
                            const struct resp_timing *t)
{
    struct cache_control req_cc, resp_cc;
    cc_request_parse(req, &req_cc);
    cc_response_parse(resp, &resp_cc);
    struct storable_input si = {
        .status = resp->status, .method_is_get_or_head = true, .req_cc = &req_cc,
        .resp_cc = &resp_cc, .req_has_authorization = http_msg_has(req, "Authorization"),
        .resp_has_expires = t->has_expires,
    };
    (void)response_storable(&si);
    int64_t lifetime = freshness_lifetime(&resp_cc, t, resp->status, true);
    FC_ASSERT(lifetime >= 0 && lifetime <= CC_DELTA_MAX);
    int64_t age = current_age(t, NOW + 5);
    FC_ASSERT(age >= 0 && age <= CC_DELTA_MAX);
    struct serve_input in = { .req_cc = &req_cc, .resp_cc = &resp_cc, .lifetime = lifetime,
                              .age = age };
    (void)freshness_can_serve(&in);
}

/* The object a fetch would store: its head (with the tags) and Vary key. */
static void check_object(const struct http_msg *req, const struct http_msg *resp)
{
    struct cache_obj *o = obj_new(NULL);
    obj_set_head(o, resp, "OK", NOW, NULL);
    for (uint32_t off = 0; off < o->tags_len;) {
        const char *tag = obj_tags(o) + off;
        size_t n = strlen(tag);
        FC_ASSERT(n > 0 && off + n < o->tags_len);
        FC_ASSERT(strcspn(tag, " ,\t") == n);
        off += (uint32_t)n + 1;
    }
    if (vary_build(o, resp, req))
        FC_ASSERT(vary_match(o, req));
    struct http_msg back;
    http_msg_init(&back);
    obj_head_to_msg(o, &back);
    http_msg_free(&back);
    obj_unref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    data++;
    size--;
    struct http_msg resp, req;
    http_msg_init(&resp);
    http_msg_init(&req);
    resp.status = statuses[(ctl & 0x0f) % FC_ARRAY_LEN(statuses)];
    size_t off = fuzz_msg_add_lines(&resp, data, size);
    fuzz_msg_add_lines(&req, data + off, size - off);

    struct resp_timing t;
    resp_timing_parse(&resp, NOW - 2, NOW - 1, &t);
    int64_t age = resp_age_value(&resp);
    FC_ASSERT(age >= 0 && age <= CC_DELTA_MAX);
    FC_ASSERT(t.age_value >= 0 && t.age_value <= CC_DELTA_MAX);
    for (uint32_t i = 0; i < resp.n_fields; i++)
        check_date(http_field_value(&resp, &resp.fields[i]), resp.fields[i].value_len);
    for (uint32_t i = 0; i < req.n_fields; i++)
        check_date(http_field_value(&req, &req.fields[i]), req.fields[i].value_len);

    check_ranges(&req, sizes[(ctl >> 4) % FC_ARRAY_LEN(sizes)]);
    check_conditionals(&req, &resp, &t);
    check_freshness(&req, &resp, &t);
    check_object(&req, &resp);

    http_msg_free(&req);
    http_msg_free(&resp);
    return 0;
}
