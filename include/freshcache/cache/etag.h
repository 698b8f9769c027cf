/*
 * etag.h — content-hash ETags (cache.etag: content-hash).
 *
 * The body's SHA-256 is computed while it streams in (OpenSSL EVP), and the
 * ETag clients see is derived from it: identical bytes keep their ETag
 * across deploys, changed bytes always get a new one, whatever the origin
 * derived its own ETag from.  Last-Modified becomes the time the proxy
 * first saw that hash for that URL, remembered in a table that grows with
 * the number of URLs seen, up to a cap (a forgotten entry only makes
 * Last-Modified younger, never wrong in the direction that yields a false
 * 304).  The table outlives purges by design; it is owned by the server
 * runtime (srv->etag_hist) and shared by the workers.
 */
#ifndef FRESHCACHE_ETAG_H
#define FRESHCACHE_ETAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct etag_hasher;
struct etag_hasher *etag_hasher_new(void);
void etag_hasher_update(struct etag_hasher *h, const void *data, size_t len);
void etag_hasher_final(struct etag_hasher *h, unsigned char out[32]);
void etag_hasher_free(struct etag_hasher *h);

/* "\"<64 hex>\"" into out[67] (quotes included, NUL-terminated). */
void etag_format(const unsigned char hash[32], char out[67]);

struct etag_history;
/* A history that starts small (512 entries, 8 KiB) and doubles as URLs
 * are noted, up to the largest power-of-two number of entries that is at
 * most `max_slots` (never below the starting size).  Thread-safe. */
struct etag_history *etag_history_new(size_t max_slots);
void etag_history_free(struct etag_history *h);
/* Entries the table has room for now, and entries in use (for tests and
 * the memory notes in docs/performance.md). */
size_t etag_history_slots(struct etag_history *h);
size_t etag_history_used(struct etag_history *h);
/* Record that the object keyed `key_hash` now has `hash` at `now`.
 * Returns the first time this URL was seen with this hash; *changed is set
 * when a different hash was remembered for it, and then the time returned
 * is later than the old hash's, even within the same second. */
time_t etag_history_note(struct etag_history *h, uint64_t key_hash, const unsigned char hash[32],
                         time_t now, bool *changed);

#endif
