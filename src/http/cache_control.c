/*
 * cache_control.c — Cache-Control (RFC 9111 §5.2) and Pragma (§5.4) parsing.
 *
 * Grammar (RFC 9111 §5.2, list syntax from RFC 9110 §5.6.1):
 *
 *   Cache-Control   = #cache-directive
 *   cache-directive = token [ "=" ( token / quoted-string ) ]
 *
 * The parser walks the field value once, left to right, without copying or
 * allocating: quoted strings are examined in place, escapes included.  It is
 * tolerant the way recipients are asked to be:
 *
 *  - empty list elements (", ,") are skipped (RFC 9110 §5.6.1);
 *  - OWS around "=" is accepted although the grammar has none there;
 *  - arguments are accepted in token or quoted-string form for every
 *    directive (§5.2: "recipients ought to accept both forms, even if a
 *    specific form is required for generation");
 *  - an element that does not parse (junk after the value, an unterminated
 *    quoted string) still counts as its directive being present, with an
 *    invalid argument; elements with no name at all are ignored.
 *
 * Decisions:
 *
 *  - delta-seconds (§1.2.2) larger than 2^31 is clamped to 2^31.
 *  - An invalid delta-seconds argument (missing, empty, not 1*DIGIT) makes
 *    the directive present with value 0.  For max-age / s-maxage that means
 *    "stale" (§4.2.1 treats invalid freshness information as stale); for
 *    request max-age it means "validate"; for max-stale it means "no
 *    staleness accepted".  Only a valueless max-stale means "any".
 *  - The first occurrence of a valued directive wins (§4.2.1), across
 *    field lines too, since cc_parse() merges line by line.
 *  - no-cache / private with an argument set the *_FIELDS flag; with an
 *    empty or unparseable argument they set the unqualified flag, the
 *    safe reading of a list that names nothing.
 */
#include <stdint.h>
#include <string.h>

#include "freshcache/http/cache_control.h"

/* tchar (RFC 9110 §5.6.2), as a 128-entry table: the scanner's inner loop. */
static const unsigned char tchar_tab[128] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
    ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static bool is_tchar(char c) { return (unsigned char)c < 128 && tchar_tab[(unsigned char)c]; }
static bool is_ows(char c) { return c == ' ' || c == '\t'; }

enum value_kind { VAL_NONE = 0, VAL_TOKEN, VAL_QUOTED };

/* One list element.  For VAL_QUOTED, val/val_len cover the text between the
 * quotes with backslash escapes still in place. */
struct directive {
    const char *name;
    size_t name_len;
    enum value_kind kind;
    const char *val;
    size_t val_len;
    bool malformed;
};

/* Move past a quoted-string whose opening DQUOTE is at *p.  Returns false if
 * it is unterminated (then *p is end).  content and clen get the inside. */
static bool skip_quoted(const char **pp, const char *end, const char **content, size_t *clen)
{
    const char *p = *pp + 1;
    const char *start = p;
    while (p < end && *p != '"') {
        if (*p == '\\' && p + 1 < end)
            p += 2;     /* quoted-pair: the escaped octet is never the terminator */
        else
            p++;
    }
    *content = start;
    *clen = (size_t)(p - start);
    if (p >= end) {
        *pp = end;
        return false;
    }
    *pp = p + 1;
    return true;
}

/* Scan the next non-empty list element from *pp.  Returns false at the end. */
static bool next_directive(const char **pp, const char *end, struct directive *d)
{
    const char *p = *pp;
    for (;;) {
        while (p < end && (is_ows(*p) || *p == ','))
            p++;
        if (p >= end) {
            *pp = p;
            return false;
        }
        memset(d, 0, sizeof *d);
        d->name = p;
        while (p < end && is_tchar(*p))
            p++;
        d->name_len = (size_t)(p - d->name);

        const char *q = p;
        while (q < end && is_ows(*q))
            q++;
        if (q < end && *q == '=') {
            p = q + 1;
            while (p < end && is_ows(*p))
                p++;
            if (p < end && *p == '"') {
                d->kind = VAL_QUOTED;
                if (!skip_quoted(&p, end, &d->val, &d->val_len))
                    d->malformed = true;
            } else {
                d->kind = VAL_TOKEN;
                d->val = p;
                while (p < end && is_tchar(*p))
                    p++;
                d->val_len = (size_t)(p - d->val);
            }
        } else {
            p = q;
        }
        while (p < end && is_ows(*p))
            p++;
        if (p < end && *p != ',') {
            /* Junk inside the element: skip to the next comma that is not
             * inside a quoted string, so a quoted comma cannot split it. */
            d->malformed = true;
            while (p < end && *p != ',') {
                if (*p == '"') {
                    const char *c;
                    size_t n;
                    skip_quoted(&p, end, &c, &n);
                } else {
                    p++;
                }
            }
        }
        if (d->name_len == 0)
            continue;   /* no directive name at all: nothing to record */
        *pp = p;
        return true;
    }
}

/* Compare the directive name against a lower-case literal, ignoring case. */
static bool name_is(const struct directive *d, const char *lit, size_t len)
{
    if (d->name_len != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = d->name[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lit[i])
            return false;
    }
    return true;
}

/* delta-seconds = 1*DIGIT (RFC 9111 §1.2.2), from either argument form.
 * Returns -1 if invalid; values above 2^31 are clamped to 2^31. */
static int64_t directive_delta(const struct directive *d)
{
    if (d->kind == VAL_NONE || d->malformed || d->val_len == 0)
        return -1;
    int64_t v = 0;
    size_t ndigits = 0;
    for (size_t i = 0; i < d->val_len; i++) {
        char c = d->val[i];
        if (d->kind == VAL_QUOTED && c == '\\' && i + 1 < d->val_len)
            c = d->val[++i];
        if (c < '0' || c > '9')
            return -1;
        ndigits++;
        /* Stop growing once past 2^31 but keep validating the digits. */
        if (v <= CC_DELTA_MAX)
            v = v * 10 + (c - '0');
    }
    if (ndigits == 0)
        return -1;
    return v > CC_DELTA_MAX ? CC_DELTA_MAX : v;
}

/* Does a no-cache / private argument name at least one field? */
static bool names_a_field(const struct directive *d)
{
    if (d->malformed)
        return false;
    for (size_t i = 0; i < d->val_len; i++)
        if (!is_ows(d->val[i]) && d->val[i] != ',')
            return true;
    return false;
}

enum handling { H_FLAG, H_LISTED, H_DELTA, H_MAX_STALE };

enum delta_slot { SLOT_MAX_AGE, SLOT_S_MAXAGE, SLOT_MAX_STALE, SLOT_MIN_FRESH, SLOT_SWR,
                  SLOT_SIE };

struct known_directive {
    const char *name;
    unsigned char len;
    unsigned char handling;
    unsigned char slot;         /* H_DELTA / H_MAX_STALE */
    unsigned flag;              /* H_FLAG; H_LISTED: the unqualified flag */
    unsigned fields_flag;       /* H_LISTED: the qualified flag */
};

/* Most frequent first: the scan is linear and usually ends early. */
static const struct known_directive known[] = {
    { "max-age",                7,  H_DELTA,     SLOT_MAX_AGE,   0, 0 },
    { "public",                 6,  H_FLAG,      0, CC_PUBLIC, 0 },
    { "private",                7,  H_LISTED,    0, CC_PRIVATE, CC_PRIVATE_FIELDS },
    { "no-cache",               8,  H_LISTED,    0, CC_NO_CACHE, CC_NO_CACHE_FIELDS },
    { "no-store",               8,  H_FLAG,      0, CC_NO_STORE, 0 },
    { "s-maxage",               8,  H_DELTA,     SLOT_S_MAXAGE,  0, 0 },
    { "must-revalidate",        15, H_FLAG,      0, CC_MUST_REVALIDATE, 0 },
    { "immutable",              9,  H_FLAG,      0, CC_IMMUTABLE, 0 },
    { "no-transform",           12, H_FLAG,      0, CC_NO_TRANSFORM, 0 },
    { "proxy-revalidate",       16, H_FLAG,      0, CC_PROXY_REVALIDATE, 0 },
    { "stale-while-revalidate", 22, H_DELTA,     SLOT_SWR,       0, 0 },
    { "stale-if-error",         14, H_DELTA,     SLOT_SIE,       0, 0 },
    { "max-stale",              9,  H_MAX_STALE, SLOT_MAX_STALE, 0, 0 },
    { "min-fresh",              9,  H_DELTA,     SLOT_MIN_FRESH, 0, 0 },
    { "only-if-cached",         14, H_FLAG,      0, CC_ONLY_IF_CACHED, 0 },
    { "must-understand",        15, H_FLAG,      0, CC_MUST_UNDERSTAND, 0 },
};

static int64_t *slot_ptr(struct cache_control *cc, unsigned slot)
{
    switch (slot) {
    case SLOT_MAX_AGE:   return &cc->max_age;
    case SLOT_S_MAXAGE:  return &cc->s_maxage;
    case SLOT_MAX_STALE: return &cc->max_stale;
    case SLOT_MIN_FRESH: return &cc->min_fresh;
    case SLOT_SWR:       return &cc->stale_while_revalidate;
    default:             return &cc->stale_if_error;
    }
}

void cc_init(struct cache_control *cc)
{
    cc->flags = 0;
    cc->max_age = CC_UNSET;
    cc->s_maxage = CC_UNSET;
    cc->max_stale = CC_UNSET;
    cc->min_fresh = CC_UNSET;
    cc->stale_while_revalidate = CC_UNSET;
    cc->stale_if_error = CC_UNSET;
}

_Static_assert(CC_UNKNOWN < (1u << 16), "cc_packed.flags holds every cc_flag");

/* CC_UNSET, or a delta in [0, CC_DELTA_MAX] (anything else cannot come
 * from cc_parse; clamped all the same). */
static uint32_t pack_delta(int64_t v)
{
    if (v == CC_UNSET)
        return CC_PACKED_UNSET;
    return v < 0 ? 0 : v > CC_DELTA_MAX ? (uint32_t)CC_DELTA_MAX : (uint32_t)v;
}

static int64_t unpack_delta(uint32_t v)
{
    return v == CC_PACKED_UNSET ? CC_UNSET : (int64_t)v;
}

void cc_pack(const struct cache_control *cc, struct cc_packed *out)
{
    out->flags = (uint16_t)cc->flags;
    out->max_age = pack_delta(cc->max_age);
    out->s_maxage = pack_delta(cc->s_maxage);
    out->stale_while_revalidate = pack_delta(cc->stale_while_revalidate);
    out->stale_if_error = pack_delta(cc->stale_if_error);
}

void cc_unpack(const struct cc_packed *p, struct cache_control *out)
{
    cc_init(out);
    out->flags = p->flags;
    out->max_age = unpack_delta(p->max_age);
    out->s_maxage = unpack_delta(p->s_maxage);
    out->stale_while_revalidate = unpack_delta(p->stale_while_revalidate);
    out->stale_if_error = unpack_delta(p->stale_if_error);
}

static void apply(struct cache_control *cc, const struct directive *d)
{
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const struct known_directive *k = &known[i];
        if (!name_is(d, k->name, k->len))
            continue;
        switch (k->handling) {
        case H_FLAG:
            /* An argument where none is defined does not cancel the
             * directive: its name states the origin's intent. */
            cc->flags |= k->flag;
            break;
        case H_LISTED:
            cc->flags |= (d->kind != VAL_NONE && names_a_field(d)) ? k->fields_flag : k->flag;
            break;
        case H_DELTA: {
            int64_t *slot = slot_ptr(cc, k->slot);
            if (*slot == CC_UNSET) {
                int64_t v = directive_delta(d);
                *slot = v < 0 ? 0 : v;
            }
            break;
        }
        case H_MAX_STALE: {
            int64_t *slot = slot_ptr(cc, k->slot);
            if (*slot == CC_UNSET) {
                /* §5.2.1.2: without a value the client accepts any staleness. */
                if (d->kind == VAL_NONE && !d->malformed) {
                    *slot = CC_MAX_STALE_ANY;
                } else {
                    int64_t v = directive_delta(d);
                    *slot = v < 0 ? 0 : v;
                }
            }
            break;
        }
        }
        return;
    }
    cc->flags |= CC_UNKNOWN;
}

void cc_parse(struct cache_control *cc, const char *value, size_t len)
{
    if (value == NULL)
        return;
    const char *p = value, *end = value + len;
    struct directive d;
    while (next_directive(&p, end, &d))
        apply(cc, &d);
}

/* RFC 9111 §5.4: Pragma = 1#pragma-directive; pragma-directive = "no-cache" /
 * extension-pragma.  Only a bare "no-cache" element counts: "no-cache=x" is
 * an extension-pragma by the grammar. */
bool cc_pragma_no_cache(const char *value, size_t len)
{
    if (value == NULL)
        return false;
    const char *p = value, *end = value + len;
    struct directive d;
    while (next_directive(&p, end, &d))
        if (d.kind == VAL_NONE && !d.malformed && name_is(&d, "no-cache", 8))
            return true;
    return false;
}
