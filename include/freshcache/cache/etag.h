/*
 * etag.h — content-hash ETags (cache.etag: content-hash).
 *
 * The body's SHA-256 is computed while it streams in (OpenSSL EVP), and the
 * ETag clients see is derived from it: identical bytes keep their ETag
 * across deploys, changed bytes always get a new one, whatever the origin
 * derived its own ETag from.  Last-Modified becomes the time the proxy
 * first saw that hash for that URL, remembered in a small fixed-size table
 * (a forgotten entry only makes Last-Modified younger, never wrong in the
 * direction that yields a false 304).
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
struct etag_history *etag_history_new(size_t slots);
void etag_history_free(struct etag_history *h);
/* Record that the object keyed `key_hash` now has `hash` at `now`.
 * Returns the first time this URL was seen with this hash; *changed is set
 * when a different hash was remembered for it, and then the time returned
 * is later than the old hash's, even within the same second. */
time_t etag_history_note(struct etag_history *h, uint64_t key_hash, const unsigned char hash[32],
                         time_t now, bool *changed);

#endif
