/*
 * link_hints.c — see include/freshcache/http/link_hints.h.
 *
 *   Link       = #link-value
 *   link-value = "<" URI-Reference ">" *( OWS ";" OWS link-param )
 *   link-param = token BWS [ "=" BWS ( token / quoted-string ) ]
 *
 * A comma inside <...> or a quoted string does not end a member.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "freshcache/http/link_hints.h"

static bool ows(char c) { return c == ' ' || c == '\t'; }

static bool tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && ows(*p))
        p++;
    return p;
}

/* Past the rest of a member that went wrong: the next top-level comma. */
static const char *skip_member(const char *p, const char *end)
{
    bool quoted = false, angle = false;
    for (; p < end; p++) {
        if (quoted) {
            if (*p == '\\' && p + 1 < end)
                p++;
            else if (*p == '"')
                quoted = false;
        } else if (angle) {
            angle = *p != '>';
        } else if (*p == '"') {
            quoted = true;
        } else if (*p == '<') {
            angle = true;
        } else if (*p == ',') {
            break;
        }
    }
    return p;
}

/* Is one of the space-separated relation types in [s, e) a hint? */
static bool rel_is_hint(const char *s, const char *e)
{
    static const char *const hints[] = { "preload", "modulepreload", "preconnect" };
    while (s < e) {
        while (s < e && (ows(*s)))
            s++;
        const char *t = s;
        while (s < e && !ows(*s))
            s++;
        size_t n = (size_t)(s - t);
        for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
            if (n == strlen(hints[i]) && strncasecmp(t, hints[i], n) == 0)
                return true;
    }
    return false;
}

/* One member starting at `p` ('<'): its end (a comma or `end`) in *next,
 * and whether it parsed and is a hint. */
static bool member(const char *p, const char *end, const char **next)
{
    const char *gt = memchr(p, '>', (size_t)(end - p));
    if (gt == NULL) {
        *next = end;
        return false;
    }
    p = gt + 1;
    bool seen_rel = false, hint = false;
    for (;;) {
        p = skip_ows(p, end);
        if (p == end || *p == ',') {
            *next = p;
            return hint;
        }
        if (*p != ';')
            break;
        p = skip_ows(p + 1, end);
        const char *name = p;
        while (p < end && tchar(*p))
            p++;
        size_t nlen = (size_t)(p - name);
        if (nlen == 0)
            break;
        p = skip_ows(p, end);
        const char *val = NULL, *vend = NULL;
        if (p < end && *p == '=') {
            p = skip_ows(p + 1, end);
            if (p < end && *p == '"') {
                val = ++p;
                while (p < end && *p != '"')
                    p += (*p == '\\' && p + 1 < end) ? 2 : 1;
                if (p >= end)
                    break;              /* unterminated */
                vend = p++;
            } else {
                val = p;
                while (p < end && tchar(*p))
                    p++;
                vend = p;
                if (val == vend)
                    break;
            }
        }
        /* RFC 8288 §3.3: occurrences of rel after the first are ignored. */
        if (nlen == 3 && strncasecmp(name, "rel", 3) == 0 && !seen_rel) {
            seen_rel = true;
            hint = val != NULL && rel_is_hint(val, vend);
        }
    }
    *next = skip_member(p, end);
    return false;
}

size_t link_hints_filter(const char *v, size_t len, char *out, size_t cap, size_t *used)
{
    static const char prefix[] = "Link: ";
    const char *p = v, *end = v + len;
    size_t n = 0;
    while (p < end) {
        p = skip_ows(p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p == end)
            break;
        if (*p != '<') {
            p = skip_member(p, end);
            continue;
        }
        const char *start = p, *next;
        bool hint = member(p, end, &next);
        const char *stop = next;
        while (stop > start && ows(stop[-1]))
            stop--;
        size_t mlen = (size_t)(stop - start);
        if (hint && memchr(start, '\r', mlen) == NULL && memchr(start, '\n', mlen) == NULL &&
            *used + sizeof prefix - 1 + mlen + 2 <= cap) {
            memcpy(out + *used, prefix, sizeof prefix - 1);
            *used += sizeof prefix - 1;
            memcpy(out + *used, start, mlen);
            *used += mlen;
            memcpy(out + *used, "\r\n", 2);
            *used += 2;
            n++;
        }
        p = next;
    }
    return n;
}
