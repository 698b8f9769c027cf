/*
 * etag.h — content-hash ETags (cache.etag: content-hash).
 *
 * The body's SHA-256 is computed while it streams in (OpenSSL EVP), and the
 * ETag clients see is derived from it: identical bytes keep their ETag
 * across deploys, changed bytes always get a new one, whatever the origin
 * derived its own ETag from.  Last-Modified becomes the time the proxy
 * first saw that hash for that URL, remembered in a fixed-size table kept
 * in a sparse file of state_dir (STATE_DIR/etag-history), read and written
 * one bucket at a time: it outlives purges by design and restarts too,
 * and costs the process no memory (the kernel's page cache holds what is
 * read).  A forgotten entry only makes Last-Modified younger, never wrong
 * in the direction that yields a false 304.  It is owned by the server
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
/* Open (or create) DIR/etag-history, a table of the largest power-of-two
 * number of entries that is at most `max_slots` (never below 512): a
 * sparse file of 16 bytes an entry plus a 4 KiB header.  A file this build
 * wrote with the same size is reused, unless the machine went down while it
 * was open; any other is started afresh (logged).  NULL when it cannot be
 * opened, created or written, with the reason in err.  Thread-safe. */
struct etag_history *etag_history_new(const char *dir, size_t max_slots, char *err, size_t errlen);
/* The same with the boot id given instead of the running kernel's (tests:
 * a file left open by "another boot"). */
struct etag_history *etag_history_new_boot(const char *dir, size_t max_slots, const char *boot_id,
                                           char *err, size_t errlen);
/* Would etag_history_new() refuse DIR/etag-history as it is (something
 * other than a regular file there)?  Creates nothing (freshcached -t).  0,
 * or -1 with the reason in err. */
int etag_history_check(const char *dir, char *err, size_t errlen);
/* Makes every write durable, then marks the file closed cleanly. */
void etag_history_free(struct etag_history *h);
/* Entries the table holds, and entries in use (for tests, the start's log
 * line and the notes in docs/performance.md). */
size_t etag_history_slots(struct etag_history *h);
size_t etag_history_used(struct etag_history *h);
/* Record that the object keyed `key_hash` now has `hash` at `now`.
 * Returns the first time this URL was seen with this hash; *changed is set
 * when a different hash was remembered for it, and then the time returned
 * is later than the old hash's, even within the same second. */
time_t etag_history_note(struct etag_history *h, uint64_t key_hash, const unsigned char hash[32],
                         time_t now, bool *changed);

#endif
