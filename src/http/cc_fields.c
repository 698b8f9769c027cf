/*
 * cc_fields.c — see include/freshcache/http/cc_fields.h.
 */
#include <stdio.h>
#include <string.h>

#include "freshcache/base/assert.h"
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


/* ---- targeted fields: RFC 8941 Dictionaries (RFC 9213 §2.1) -------------
 *
 * CDN-Cache-Control and our own Freshcache-Cache-Control are Structured
 * Field Dictionaries, not Cache-Control lists: "max-age=60, no-store" reads
 * the same either way, but "max-age=\"60\"", "Max-Age=60" or a trailing
 * comma do not.  A field that fails to parse is ignored as a whole (the
 * next field in the order of cc_response_parse decides); a directive whose
 * value has the wrong type is ignored alone.  Parsed directives are
 * written back in Cache-Control syntax and handed to cc_parse(), so their
 * meaning is defined once. */

struct sf_cursor {
    const char *p, *end;
};

enum sf_type { SF_INTEGER, SF_DECIMAL, SF_STRING, SF_TOKEN, SF_BYTES, SF_BOOLEAN, SF_INNER_LIST };

struct sf_item {
    enum sf_type type;
    int64_t integer;
    bool boolean;
};

static bool sf_at(const struct sf_cursor *c, char ch) { return c->p < c->end && *c->p == ch; }
static bool sf_lcalpha(char ch) { return ch >= 'a' && ch <= 'z'; }
static bool sf_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool sf_alpha(char ch) { return sf_lcalpha(ch) || (ch >= 'A' && ch <= 'Z'); }

static void sf_skip_sp(struct sf_cursor *c)
{
    while (sf_at(c, ' '))
        c->p++;
}

static void sf_skip_ows(struct sf_cursor *c)
{
    while (sf_at(c, ' ') || sf_at(c, '\t'))
        c->p++;
}

/* key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ) */
static bool sf_key(struct sf_cursor *c, const char **key, size_t *len)
{
    const char *k = c->p;
    if (c->p >= c->end || !(sf_lcalpha(*c->p) || *c->p == '*'))
        return false;
    while (c->p < c->end && (sf_lcalpha(*c->p) || sf_digit(*c->p) || strchr("_-.*", *c->p)))
        c->p++;
    *key = k;
    *len = (size_t)(c->p - k);
    return true;
}

static bool sf_number(struct sf_cursor *c, struct sf_item *it)
{
    bool neg = sf_at(c, '-');
    if (neg)
        c->p++;
    int64_t v = 0;
    int digits = 0;
    while (c->p < c->end && sf_digit(*c->p)) {
        if (++digits > 15)
            return false;
        v = v * 10 + (*c->p++ - '0');
    }
    if (digits == 0)
        return false;
    it->type = SF_INTEGER;
    it->integer = neg ? -v : v;
    if (!sf_at(c, '.'))
        return true;
    if (digits > 12)
        return false;
    c->p++;
    int frac = 0;
    while (c->p < c->end && sf_digit(*c->p) && frac < 4) {
        c->p++;
        frac++;
    }
    it->type = SF_DECIMAL;
    return frac >= 1 && frac <= 3;
}

static bool sf_bare_item(struct sf_cursor *c, struct sf_item *it)
{
    if (c->p >= c->end)
        return false;
    char ch = *c->p;
    if (ch == '-' || sf_digit(ch))
        return sf_number(c, it);
    if (ch == '"') {
        it->type = SF_STRING;
        for (c->p++; c->p < c->end; c->p++) {
            unsigned char u = (unsigned char)*c->p;
            if (u == '\\') {
                if (++c->p >= c->end || (*c->p != '"' && *c->p != '\\'))
                    return false;
            } else if (u == '"') {
                c->p++;
                return true;
            } else if (u < 0x20 || u > 0x7e) {
                return false;
            }
        }
        return false;
    }
    if (sf_alpha(ch) || ch == '*') {
        it->type = SF_TOKEN;
        for (c->p++; c->p < c->end; c->p++) {
            unsigned char u = (unsigned char)*c->p;
            if (!(sf_alpha((char)u) || sf_digit((char)u) || strchr("!#$%&'*+-.^_`|~:/", u)) || u == 0)
                break;
        }
        return true;
    }
    if (ch == ':') {
        it->type = SF_BYTES;
        for (c->p++; c->p < c->end && *c->p != ':'; c->p++)
            if (!(sf_alpha(*c->p) || sf_digit(*c->p) || *c->p == '+' || *c->p == '/' || *c->p == '='))
                return false;
        if (!sf_at(c, ':'))
            return false;
        c->p++;
        return true;
    }
    if (ch == '?') {
        c->p++;
        if (!sf_at(c, '0') && !sf_at(c, '1'))
            return false;
        it->type = SF_BOOLEAN;
        it->boolean = *c->p++ == '1';
        return true;
    }
    return false;
}

/* parameters = *( ";" *SP param-key [ "=" param-value ] ): read, ignored. */
static bool sf_params(struct sf_cursor *c)
{
    while (sf_at(c, ';')) {
        c->p++;
        sf_skip_sp(c);
        const char *k;
        size_t kl;
        struct sf_item ignored;
        if (!sf_key(c, &k, &kl))
            return false;
        if (sf_at(c, '=')) {
            c->p++;
            if (!sf_bare_item(c, &ignored))
                return false;
        }
    }
    return true;
}

static bool sf_inner_list(struct sf_cursor *c)
{
    c->p++;     /* "(" */
    for (;;) {
        sf_skip_sp(c);
        if (sf_at(c, ')')) {
            c->p++;
            return sf_params(c);
        }
        struct sf_item ignored;
        if (!sf_bare_item(c, &ignored) || !sf_params(c))
            return false;
        if (!sf_at(c, ' ') && !sf_at(c, ')'))
            return false;
    }
}

/* The directives a targeted field may carry, with the type each takes. */
static const struct {
    const char *name;
    bool delta;         /* an Integer of seconds, else a Boolean */
} sf_directives[] = {
    { "max-age", true },       { "s-maxage", true },        { "stale-while-revalidate", true },
    { "stale-if-error", true }, { "no-store", false },      { "no-cache", false },
    { "private", false },      { "public", false },         { "must-revalidate", false },
    { "proxy-revalidate", false }, { "no-transform", false }, { "immutable", false },
    { "must-understand", false },
};
#define SF_N_DIRECTIVES (sizeof sf_directives / sizeof sf_directives[0])

struct sf_directive_value {
    bool present;       /* the last member with this key had the right type */
    int64_t seconds;
};

/* One field line: members into vals (the last of a key wins, RFC 8941
 * §3.2).  False: not a Dictionary. */
static bool sf_parse_dictionary(const char *v, size_t len, struct sf_directive_value *vals)
{
    struct sf_cursor c = { v, v + len };
    sf_skip_sp(&c);
    if (c.p == c.end)
        return true;
    for (;;) {
        const char *key;
        size_t kl;
        struct sf_item it = { .type = SF_BOOLEAN, .boolean = true };
        if (!sf_key(&c, &key, &kl))
            return false;
        if (sf_at(&c, '=')) {
            c.p++;
            if (sf_at(&c, '(')) {
                if (!sf_inner_list(&c))
                    return false;
                it.type = SF_INNER_LIST;
            } else if (!sf_bare_item(&c, &it) || !sf_params(&c)) {
                return false;
            }
        } else if (!sf_params(&c)) {
            return false;
        }
        for (size_t i = 0; i < SF_N_DIRECTIVES; i++) {
            if (strlen(sf_directives[i].name) != kl || memcmp(sf_directives[i].name, key, kl) != 0)
                continue;
            struct sf_directive_value *d = &vals[i];
            if (sf_directives[i].delta) {
                d->present = it.type == SF_INTEGER && it.integer >= 0;
                d->seconds = it.integer;
            } else {
                d->present = it.type == SF_BOOLEAN && it.boolean;
            }
        }
        sf_skip_ows(&c);
        if (c.p == c.end)
            return true;
        if (!sf_at(&c, ','))
            return false;
        c.p++;
        sf_skip_ows(&c);
        if (c.p == c.end)
            return false;       /* a trailing comma */
    }
}

/* Every `name` field line as one Dictionary into cc.  False (cc untouched
 * beyond cc_init): some line is not a Dictionary, the field is ignored. */
static bool parse_targeted(const struct http_msg *m, const char *name, struct cache_control *cc)
{
    struct sf_directive_value vals[SF_N_DIRECTIVES];
    memset(vals, 0, sizeof vals);
    uint32_t it = 0;
    const struct http_field *fl;
    while ((fl = http_msg_next(m, name, &it)) != NULL)
        if (!sf_parse_dictionary(http_field_value(m, fl), fl->value_len, vals))
            return false;
    /* Each known directive at most once: bounded. */
    char buf[SF_N_DIRECTIVES * 48];
    size_t n = 0;
    for (size_t i = 0; i < SF_N_DIRECTIVES; i++) {
        if (!vals[i].present)
            continue;
        int w = sf_directives[i].delta
                    ? snprintf(buf + n, sizeof buf - n, "%s=%lld,", sf_directives[i].name,
                               (long long)vals[i].seconds)
                    : snprintf(buf + n, sizeof buf - n, "%s,", sf_directives[i].name);
        FC_ASSERT(w > 0 && (size_t)w < sizeof buf - n);
        n += (size_t)w;
    }
    cc_init(cc);
    cc_parse(cc, buf, n);
    return true;
}

static const char *const targeted[] = { "Freshcache-Cache-Control", "CDN-Cache-Control" };

void cc_response_parse(const struct http_msg *m, struct cache_control *cc)
{
    for (size_t i = 0; i < sizeof targeted / sizeof targeted[0]; i++) {
        if (http_msg_has(m, targeted[i]) && parse_targeted(m, targeted[i], cc))
            return;
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
