/*
 * purge.h — which stored objects a purge by URL, prefix or tag reaches,
 * and applying it to a store.  Shared by the admin API (a purge asked of
 * this node) and the cluster (a purge asked of another node).
 */
#ifndef FRESHCACHE_PURGE_H
#define FRESHCACHE_PURGE_H

#include <stdbool.h>

struct cache_store;

enum purge_kind {
    PURGE_URL = 0,      /* "/path?query" (any host) or "http://host/path" */
    PURGE_PREFIX,       /* a path prefix (any host) */
    PURGE_TAG,          /* a Surrogate-Key / Cache-Tag value */
    PURGE_ALL,          /* everything (arg unused): purges this node may have missed */
};

/* Hard purges remove; soft ones mark stale (revalidated on next use,
 * still usable under stale-if-error).  Returns how many objects.  Walks
 * the whole store, one shard lock at a time. */
unsigned purge_apply(struct cache_store *s, enum purge_kind kind, const char *arg, bool soft);

/* Several purges in at most two walks of the store (a batch of cluster
 * events) instead of one walk each: an object any hard item matches is
 * removed, else one a soft item matches is marked stale.  Each item's
 * `count` is set to how many objects it reached. */
struct purge_item {
    enum purge_kind kind;       /* PURGE_URL, PURGE_PREFIX or PURGE_TAG */
    const char *arg;
    bool soft;
    unsigned count;
};
void purge_apply_batch(struct cache_store *s, struct purge_item *items, size_t n);

#endif
