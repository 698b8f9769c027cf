/*
 * conditional.c — see include/freshcache/http/conditional.h.
 */
#include <string.h>

#include "freshcache/http/conditional.h"
#include "freshcache/http/http_date.h"
#include "freshcache/http/http_msg.h"

static bool is_ws(char c) { return c == ' ' || c == '\t'; }

/* Walk an entity-tag list; `strong` selects the comparison function. */
static bool etag_list_match(const char *list, size_t len, const char *etag, size_t elen,
                            bool strong)
{
    const char *s = list, *end = list + len, *e;
    size_t el;
    bool etag_weak = elen > 2 && etag[0] == 'W' && etag[1] == '/';
    const char *eo = etag_weak ? etag + 2 : etag;
    size_t eol = etag_weak ? elen - 2 : elen;
    while (http_list_next(&s, end, &e, &el)) {
        while (el && is_ws(*e)) {
            e++;
            el--;
        }
        if (el == 1 && e[0] == '*')
            return true;
        bool weak = el > 2 && e[0] == 'W' && e[1] == '/';
        const char *o = weak ? e + 2 : e;
        size_t ol = weak ? el - 2 : el;
        if (strong && (weak || etag_weak))
            continue;
        if (ol == eol && memcmp(o, eo, ol) == 0)
            return true;
    }
    return false;
}

bool etag_list_match_weak(const char *list, size_t len, const char *etag, size_t elen)
{
    return etag_list_match(list, len, etag, elen, false);
}

bool etag_list_match_strong(const char *list, size_t len, const char *etag, size_t elen)
{
    return etag_list_match(list, len, etag, elen, true);
}

enum cond_result cond_evaluate(const struct http_msg *req, const struct validators *o)
{
    size_t len;
    const char *v;
    /* Preconditions apply to 2xx representations only (RFC 9110 §13.2.1). */
    if (o->status < 200 || o->status >= 300)
        return COND_NONE;

    /* 1. If-Match */
    if ((v = http_msg_get(req, "If-Match", &len)) != NULL) {
        if (!(len == 1 && v[0] == '*') &&
            !(o->etag && etag_list_match_strong(v, len, o->etag, o->etag_len)))
            return COND_PRECONDITION_FAILED;
    } else if ((v = http_msg_get(req, "If-Unmodified-Since", &len)) != NULL) {
        /* 2. If-Unmodified-Since, only without If-Match */
        time_t t;
        if (http_date_parse(v, len, &t) && o->has_last_modified && o->last_modified > t)
            return COND_PRECONDITION_FAILED;
    }
    /* 3. If-None-Match */
    if ((v = http_msg_get(req, "If-None-Match", &len)) != NULL) {
        if ((len == 1 && v[0] == '*') ||
            (o->etag && etag_list_match_weak(v, len, o->etag, o->etag_len)))
            return COND_NOT_MODIFIED;
        return COND_NONE;
    }
    /* 4. If-Modified-Since, only without If-None-Match */
    if ((v = http_msg_get(req, "If-Modified-Since", &len)) != NULL) {
        time_t t;
        time_t lm = o->has_last_modified ? o->last_modified : (o->has_date ? o->date : (time_t)-1);
        if (lm != (time_t)-1 && http_date_parse(v, len, &t) && lm <= t)
            return COND_NOT_MODIFIED;
    }
    return COND_NONE;
}

bool if_range_matches(const char *ir, size_t len, const struct validators *v)
{
    /* An entity-tag is compared strongly; a date must equal Last-Modified
     * exactly (RFC 9110 §13.1.5). */
    if (len > 0 && (ir[0] == '"' || ir[0] == 'W'))
        return v->etag && etag_list_match_strong(ir, len, v->etag, v->etag_len);
    time_t t;
    return v->has_last_modified && http_date_parse(ir, len, &t) && t == v->last_modified;
}
