/*
 * vary.c — secondary cache keys (RFC 9111 §4.1).
 *
 * An object stored from a response with Vary remembers, for each field the
 * response varies on, the request's value normalised (field lines joined,
 * whitespace around commas removed).  A later request selects the object
 * only if every one of those values is the same.  Absent differs from empty.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/http/http_msg.h"

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        AN(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define ABSENT "\x01"

/* Append the normalised value of request field `name` (NUL-terminated). */
static void add_request_value(struct sbuf *b, const struct http_msg *req, const char *name)
{
    uint32_t it = 0;
    const struct http_field *f;
    bool any = false;
    while ((f = http_msg_next(req, name, &it)) != NULL) {
        const char *s = http_field_value(req, f), *end = s + f->value_len, *e;
        size_t el;
        while (http_list_next(&s, end, &e, &el)) {
            if (any)
                sb_add(b, ",", 1);
            sb_add(b, e, el);
            any = true;
        }
        if (f->value_len == 0 && !any) {
            any = true;     /* present but empty */
        }
    }
    if (!any)
        sb_add(b, ABSENT, 1);
}

bool vary_build(struct cache_obj *o, const struct http_msg *resp, const struct http_msg *req)
{
    struct sbuf b = { 0 };
    uint32_t it = 0;
    const struct http_field *f;
    bool star = false;
    while ((f = http_msg_next(resp, "Vary", &it)) != NULL) {
        const char *s = http_field_value(resp, f), *end = s + f->value_len, *e;
        size_t el;
        while (http_list_next(&s, end, &e, &el)) {
            if (el == 1 && e[0] == '*') {
                star = true;
                continue;
            }
            char name[256];
            if (el >= sizeof name)
                continue;
            for (size_t i = 0; i < el; i++)
                name[i] = (char)tolower((unsigned char)e[i]);
            name[el] = '\0';
            sb_add(&b, name, el + 1);
            add_request_value(&b, req, name);
            sb_add(&b, "", 1);
        }
    }
    if (star) {
        free(b.p);
        return false;
    }
    free(obj_fill(o)->vary);
    obj_fill(o)->vary = b.p;
    o->vary_len = (uint32_t)b.len;
    return true;
}

bool vary_match(const struct cache_obj *o, const struct http_msg *req)
{
    if (o->vary_len == 0)
        return true;
    const char *p = obj_vary(o), *end = p + o->vary_len;
    struct sbuf b = { 0 };
    bool ok = true;
    while (p < end && ok) {
        const char *name = p;
        p += strlen(p) + 1;
        const char *want = p;
        size_t want_len = strlen(p);
        p += want_len + 1;
        b.len = 0;
        add_request_value(&b, req, name);
        ok = b.len == want_len && (want_len == 0 || memcmp(b.p, want, want_len) == 0);
    }
    free(b.p);
    return ok;
}
