/*
 * range.h — the Range request field (RFC 9110 §14.2) for one
 * representation of known size.
 *
 * Only a single byte range is served ("a-b", "a-", "-n"); several ranges,
 * other units or a malformed value select the whole representation, which
 * is always a valid answer (§14.2).
 */
#ifndef FRESHCACHE_RANGE_H
#define FRESHCACHE_RANGE_H

#include <stddef.h>
#include <stdint.h>

enum range_choice {
    RANGE_NONE = 0,         /* ignore the field: send the whole representation */
    RANGE_ONE,              /* send bytes first..last (206) */
    RANGE_UNSATISFIABLE,    /* no byte of it exists (416) */
};

/* Parse a Range value against a representation of `size` bytes. */
enum range_choice range_parse(const char *value, size_t len, uint64_t size, uint64_t *first,
                              uint64_t *last);

#endif
