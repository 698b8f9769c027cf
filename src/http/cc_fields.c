/*
 * cc_fields.c — see include/freshcache/http/cc_fields.h.
 */
#include <string.h>

#include "freshcache/http/cc_fields.h"
#include "freshcache/http/http_msg.h"

/* Merge every field called `name` into a fresh `cc`. */
static void parse_named(const struct http_msg *m, const char *name, struct cache_control *cc)
{
    cc_init(cc);
    uint32_t it = 0;
    const struct http_field *fl;
    while ((fl = http_msg_next(m, name, &it)) != NULL)
        cc_parse(cc, http_field_value(m, fl), fl->value_len);
}

void cc_fields_parse(const struct http_msg *m, struct cache_control *cc)
{
    parse_named(m, "Cache-Control", cc);
}

void cc_request_parse(const struct http_msg *req, struct cache_control *cc)
{
    cc_fields_parse(req, cc);
    if (http_msg_has(req, "Cache-Control"))
        return;
    /* Pragma is a list: "no-cache" may be on any of its lines (RFC 9110
     * §5.3). */
    uint32_t it = 0;
    const struct http_field *fl;
    while ((fl = http_msg_next(req, "Pragma", &it)) != NULL) {
        if (cc_pragma_no_cache(http_field_value(req, fl), fl->value_len)) {
            cc->flags |= CC_NO_CACHE;
            return;
        }
    }
}

/* Surrogate-Control: a directive may name its target after ';'; those for
 * another cache are skipped. */
static void parse_surrogate(const struct http_msg *m, struct cache_control *cc)
{
    cc_init(cc);
    uint32_t it = 0;
    const struct http_field *fl;
    while ((fl = http_msg_next(m, "Surrogate-Control", &it)) != NULL) {
        const char *s = http_field_value(m, fl), *end = s + fl->value_len, *e;
        size_t el;
        while (http_list_next(&s, end, &e, &el)) {
            const char *semi = memchr(e, ';', el);
            if (semi) {
                const char *t = semi + 1;
                size_t tl = (size_t)(e + el - t);
                while (tl && (*t == ' ' || *t == '\t')) {
                    t++;
                    tl--;
                }
                if (!http_token_eq(t, tl, CC_TARGET))
                    continue;
                el = (size_t)(semi - e);
            }
            cc_parse(cc, e, el);
        }
    }
}

static const char *const targeted[] = { "Freshcache-Cache-Control", "CDN-Cache-Control" };

void cc_response_parse(const struct http_msg *m, struct cache_control *cc)
{
    for (size_t i = 0; i < sizeof targeted / sizeof targeted[0]; i++) {
        if (http_msg_has(m, targeted[i])) {
            parse_named(m, targeted[i], cc);
            return;
        }
    }
    if (http_msg_has(m, "Surrogate-Control")) {
        parse_surrogate(m, cc);
        return;
    }
    cc_fields_parse(m, cc);
}

bool cc_response_has_fields(const struct http_msg *m)
{
    return http_msg_has(m, "Cache-Control") || http_msg_has(m, targeted[0]) ||
           http_msg_has(m, targeted[1]) || http_msg_has(m, "Surrogate-Control");
}
