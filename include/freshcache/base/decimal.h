/*
 * decimal.h — unsigned integers in decimal, without printf: for the
 * fields written on every request (Age, Content-Length, Content-Range),
 * where snprintf's formatting machinery costs more than the rest of the
 * line (callgrind, docs/performance.md).
 */
#ifndef FRESHCACHE_DECIMAL_H
#define FRESHCACHE_DECIMAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define DECIMAL_U64_MAX 20      /* digits of UINT64_MAX */

/* `v` in decimal into out (no NUL); returns the number of digits. */
static inline size_t decimal_u64(char out[DECIMAL_U64_MAX], uint64_t v)
{
    char d[DECIMAL_U64_MAX];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, d + i, sizeof d - i);
    return sizeof d - i;
}

#endif
