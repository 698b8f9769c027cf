/*
 * cache_store.h — the in-memory cache: objects indexed by primary key
 * (host + path + query) with one object per Vary variant, bounded in bytes
 * with LRU eviction.
 *
 * Concurrency: the index is split into shards by key hash, each with its own
 * reader-writer lock, hash table and LRU list, so workers looking up
 * different keys do not contend and no lock is global.  Lookups that change
 * nothing (most hits) share a shard's read lock, so workers serving one
 * popular object do not queue behind each other.  Eviction picks, across
 * shards, the least recently used tail, which is exact LRU with one shard
 * and close to it with many, at the resolution of STORE_LRU_BUMP_MS: a hit
 * moves its object to the head of the order only if the last move is at
 * least that old (Varnish's lru_interval does the same, at 2 s).
 *
 * Ownership: objects are reference counted.  The index holds one reference
 * while an object is linked; every lookup returns a new reference the caller
 * drops with obj_unref().  A response head stored in an object never
 * changes once the object is READY: a 304 merge builds a new object that
 * shares the body and replaces the old one in the index.
 *
 * Coalescing: a miss may leave a BUSY placeholder under the key; later
 * lookups find it and wait on its body (state PENDING) until the fetching
 * request publishes the head (obj_publish) or gives up (store_abandon).
 */
#ifndef FRESHCACHE_CACHE_STORE_H
#define FRESHCACHE_CACHE_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "freshcache/cache/cache_obj.h"

struct http_msg;
struct cache_store;

/* A hit moves its object up the LRU order at most this often. */
#define STORE_LRU_BUMP_MS 1000

struct cache_store *store_new(uint64_t max_bytes, unsigned n_shards);
void store_free(struct cache_store *s);

enum lookup_result {
    LOOKUP_MISS = 0,        /* nothing usable: fetch without coalescing */
    LOOKUP_FOUND,           /* a READY object matching the request's Vary */
    LOOKUP_BUSY,            /* a fetch for this key is under way: wait on it */
    LOOKUP_CREATED,         /* nothing there; we left a BUSY placeholder: fetch */
    LOOKUP_VARY_MISS,       /* objects exist for the URI but none matches Vary */
};

/* Find a READY object for the key whose Vary matches `req`, else a BUSY
 * placeholder made since the last generation bump, else (when
 * `create_busy`) insert one.  Objects stored under older generations are
 * unlinked on the way when `drop_old` (after_purge: refetch) or else
 * returned for the caller to revalidate; old copies within their
 * keep_after_deploy window stay (demoted, not returned) for
 * store_find_key.  Any object returned carries a reference for the
 * caller. */
struct generations;
enum lookup_result store_lookup(struct cache_store *s, const struct cache_key *k,
                                const struct http_msg *req, bool create_busy,
                                uint64_t now_ms, const struct generations *gens, bool drop_old,
                                struct cache_obj **out);

/* Purge every object for which match(o, arg) is true: hard purges unlink
 * (in-flight fetches for them will not be kept), soft ones mark stale.
 * Returns how many.  Walks the whole index, one shard lock at a time. */
typedef bool (*store_match_fn)(const struct cache_obj *o, const void *arg);
unsigned store_purge(struct cache_store *s, store_match_fn match, const void *arg, bool soft);

/* The most recent READY object of key `k` (any Vary variant, any
 * generation) for which match(o, arg) is true, with a reference for the
 * caller, or NULL.  One shard lock, no LRU change: for the copy kept
 * after a deploy (keep_after_deploy), the one whose Link fields make
 * Early Hints. */
struct cache_obj *store_find_key(struct cache_store *s, const struct cache_key *k,
                                 store_match_fn match, const void *arg);

/* The first READY object for which match(o, arg) is true, with a
 * reference for the caller, or NULL.  Walks the whole index. */
struct cache_obj *store_find(struct cache_store *s, store_match_fn match, const void *arg);

/* Background reclaim of objects from older generations: examine up to
 * `budget` objects from where the last call stopped.  Returns how many
 * were removed.  Copies within their keep_after_deploy window (obj_kept)
 * stay, moved to the end of the LRU order so memory pressure evicts them
 * first.  Call from one thread only. */
size_t store_sweep(struct cache_store *s, const struct generations *gens, size_t budget);
/* A whole sweep pass has run since the last bump: what it reclaims is
 * freed (the sweep's thread only). */
bool store_sweep_caught_up(const struct cache_store *s, const struct generations *gens);
/* Give back hash buckets sized for a peak the store has left (after a
 * purge): a shard under a quarter full shrinks to at most half full.
 * Takes each shard's lock in turn; for the sweep's thread, never the hit
 * path.  Returns the bytes of bucket arrays freed. */
size_t store_shrink_index(struct cache_store *s);

/* A new object (from obj_new + fields) enters the index READY, replacing
 * any object of the same key and Vary variant, and wakes its body's
 * waiters.  Takes no reference from the caller (the index adds its own).
 * May evict. */
void store_insert(struct cache_store *s, struct cache_obj *o, uint64_t now_ms);
/* A BUSY placeholder got its response head: it becomes READY (fields must
 * be filled first), replacing older variants.  Wakes waiters. */
void store_publish(struct cache_store *s, struct cache_obj *o, uint64_t now_ms);
/* The fetch that filled stored object `o` completed its body: replace `o`
 * in the index by its sealed copy (obj_seal: one allocation, no body
 * struct), in the same place in its bucket and the LRU order.  Readers
 * holding `o` go on with it.  False (nothing changes) when `o` is not
 * linked or does not qualify. */
bool store_seal(struct cache_store *s, struct cache_obj *o);
/* Remove an object from the index (no-op if not linked); an object that
 * store_seal replaced: its sealed copy. */
void store_remove(struct cache_store *s, struct cache_obj *o);
/* Remove every object of a key (all variants).  Returns how many. */
unsigned store_remove_key(struct cache_store *s, const struct cache_key *k);
/* A body of a linked object grew by `bytes` of capacity. */
void store_charge(struct cache_store *s, struct cache_obj *o, size_t bytes);

struct store_stats {
    uint64_t objects;
    uint64_t bytes;
    uint64_t max_bytes;
    uint64_t evictions;
};
void store_get_stats(struct cache_store *s, struct store_stats *st);

/* Vary support (vary.c). */
/* Set o->vary from the response's Vary fields and the request.  Returns
 * false for "Vary: *" (never served from cache). */
bool vary_build(struct cache_obj *o, const struct http_msg *resp, const struct http_msg *req);
/* Does `req` select the same variant as the request that stored `o`? */
bool vary_match(const struct cache_obj *o, const struct http_msg *req);

#endif
