/*
 * warn_once.c — see include/freshcache/base/warn_once.h.
 */
#include "freshcache/base/warn_once.h"

bool warn_once_first(struct warn_once *w, uint64_t hash)
{
    /* Fold the high half in: whatever bits the caller's hash mixes best. */
    uint64_t *s = &w->slot[(hash ^ (hash >> 32)) % WARN_ONCE_SLOTS];
    if (hash != 0 && *s == hash)
        return false;
    *s = hash;
    return true;
}
