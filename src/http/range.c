/*
 * range.c — see include/freshcache/http/range.h.
 */
#include <stdbool.h>
#include <strings.h>

#include "freshcache/http/range.h"

/* Digits only, no sign, no overflow; false otherwise. */
static bool parse_u64(const char *s, const char *end, uint64_t *out)
{
    if (s == end)
        return false;
    uint64_t v = 0;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

enum range_choice range_parse(const char *value, size_t len, uint64_t size, uint64_t *first,
                              uint64_t *last)
{
    if (len < 7 || strncasecmp(value, "bytes=", 6) != 0)
        return RANGE_NONE;
    const char *s = value + 6, *end = value + len;
    const char *dash = NULL;
    for (const char *p = s; p < end; p++) {
        if (*p == ',')
            return RANGE_NONE;          /* several ranges: the whole thing */
        if (*p == '-' && dash == NULL)
            dash = p;
    }
    if (dash == NULL)
        return RANGE_NONE;
    uint64_t a, b;
    if (dash == s) {                    /* "-n": the last n bytes */
        if (!parse_u64(dash + 1, end, &b))
            return RANGE_NONE;
        if (b == 0)
            return RANGE_UNSATISFIABLE;
        /* On an empty representation a non-zero suffix is satisfiable
         * (RFC 9110 §14.1.1), so no 416; but a 206 cannot carry zero
         * bytes: send the whole, empty, representation. */
        if (size == 0)
            return RANGE_NONE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return RANGE_ONE;
    }
    if (!parse_u64(s, dash, &a))
        return RANGE_NONE;
    uint64_t l = size ? size - 1 : 0;
    if (dash + 1 < end) {               /* "a-b" */
        if (!parse_u64(dash + 1, end, &b) || b < a)
            return RANGE_NONE;
        if (b < l)
            l = b;
    }
    if (a >= size)
        return RANGE_UNSATISFIABLE;
    *first = a;
    *last = l;
    return RANGE_ONE;
}
