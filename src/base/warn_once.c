/*
 * warn_once.c — see include/freshcache/base/warn_once.h.
 */
#include "freshcache/base/warn_once.h"

bool warn_once_first(struct warn_once *w, uint64_t hash)
{
    /* Fold the high half in: whatever bits the caller's hash mixes best. */
    _Atomic uint64_t *s = &w->slot[(hash ^ (hash >> 32)) % WARN_ONCE_SLOTS];
    return atomic_exchange_explicit(s, hash, memory_order_relaxed) != hash || hash == 0;
}
