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

/* Does any line of `name` hold "*" or a tag matching o's?  Several lines
 * of a list field are one comma-separated list (RFC 9110 §5.3). */
static bool any_line_matches(const struct http_msg *req, const char *name,
                             const struct validators *o, bool strong)
{
    uint32_t it = 0;
    const struct http_field *f;
    while ((f = http_msg_next(req, name, &it)) != NULL) {
        const char *v = http_field_value(req, f);
        size_t len = f->value_len;
        if ((len == 1 && v[0] == '*') ||
            (o->etag && etag_list_match(v, len, o->etag, o->etag_len, strong)))
            return true;
    }
    return false;
}

/* The one HTTP-date of `name`: false when it is absent, invalid, or on
 * several lines (a list of dates is invalid and must be ignored, RFC 9110
 * §13.1.3, §13.1.4). */
static bool single_date(const struct http_msg *req, const char *name, time_t *t)
{
    uint32_t it = 0;
    const struct http_field *f = http_msg_next(req, name, &it);
    if (f == NULL || http_msg_next(req, name, &it) != NULL)
        return false;
    return http_date_parse(http_field_value(req, f), f->value_len, t);
}

enum cond_result cond_evaluate(const struct http_msg *req, const struct validators *o)
{
    time_t t;
    /* Preconditions apply to 2xx representations only (RFC 9110 §13.2.1). */
    if (o->status < 200 || o->status >= 300)
        return COND_NONE;

    /* 1. If-Match */
    if (http_msg_has(req, "If-Match")) {
        if (!any_line_matches(req, "If-Match", o, true))
            return COND_PRECONDITION_FAILED;
    } else if (single_date(req, "If-Unmodified-Since", &t)) {
        /* 2. If-Unmodified-Since, only without If-Match */
        if (o->has_last_modified && o->last_modified > t)
            return COND_PRECONDITION_FAILED;
    }
    /* 3. If-None-Match */
    if (http_msg_has(req, "If-None-Match"))
        return any_line_matches(req, "If-None-Match", o, false) ? COND_NOT_MODIFIED : COND_NONE;
    /* 4. If-Modified-Since, only without If-None-Match */
    time_t lm = o->has_last_modified ? o->last_modified : (o->has_date ? o->date : (time_t)-1);
    if (lm != (time_t)-1 && single_date(req, "If-Modified-Since", &t) && lm <= t)
        return COND_NOT_MODIFIED;
    return COND_NONE;
}

bool if_range_matches(const char *ir, size_t len, const struct validators *v)
{
    /* One entity-tag, compared strongly: a weak one never matches, and a
     * list is not an If-Range value.  A date must equal Last-Modified
     * exactly.  The two are told apart by the DQUOTE (RFC 9110 §13.1.5):
     * a date may well start with 'W' (Wed, ...). */
    if (len > 0 && ir[0] == '"')
        return v->etag && v->etag_len == len && v->etag[0] == '"' &&
               memcmp(v->etag, ir, len) == 0;
    if (len >= 2 && ir[0] == 'W' && ir[1] == '/')
        return false;
    time_t t;
    return v->has_last_modified && http_date_parse(ir, len, &t) && t == v->last_modified;
}
