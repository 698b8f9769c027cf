/*
 * sparse_pack.h — a copy of a memory region that keeps only the 64-bit
 * words that differ from a reference (zeros, or another region), so that
 * the region's pages can be given back and its bytes restored later at
 * the same address.
 *
 * Why: an idle connection's library state (nghttp2's session) is mostly
 * zeros and values every session shares, and it cannot be freed and made
 * again (it holds the peer's settings, windows, stream ids and HPACK
 * table).  Packed, a 4 KiB page of it takes a few hundred bytes; the
 * page goes back to the system (page_slab_discard) and is restored
 * byte for byte, at its own address, before the library sees it again,
 * so pointers into it and out of it stay valid.
 *
 * Format: a uint64 count of the words that differ from the reference
 * (zeros, or another region, see struct sparse_ref); if not zero, a bitmap
 * (one bit a word, in uint64s) and those words, in order.  Everything is
 * 8-byte aligned; `words` counts 64-bit words and the region must be
 * 8-byte aligned.
 */
#ifndef FRESHCACHE_SPARSE_PACK_H
#define FRESHCACHE_SPARSE_PACK_H

#include <stddef.h>
#include <stdint.h>

/* What a region is packed against: `words` (NULL: zeros), except that a
 * word of it that points into [lo, hi) is expected to point `delta`
 * bytes further (mod 2^64).  The reference may be a copy of another
 * region like this one, taken when it was at `lo`: its pointers into
 * itself are expected to have moved with it, the region's being at lo +
 * delta. */
struct sparse_ref {
    const uint64_t *words;
    uint64_t lo, hi;
    uint64_t delta;
};

/* The bytes sparse_pack() writes for the `words` words at `p` against
 * `ref` (NULL: zeros). */
size_t sparse_pack_size(const void *p, const struct sparse_ref *ref, size_t words);
/* Write them to `out` (8-byte aligned, sparse_pack_size() bytes); returns
 * the bytes written. */
size_t sparse_pack(void *out, const void *p, const struct sparse_ref *ref, size_t words);
/* Restore the region at `p`, which must read as zeros (a discarded page):
 * only words that are not zero are written, so a page that stays all
 * zeros is never touched.  `ref` and `words` as given to sparse_pack.
 * Returns the bytes of `in` used. */
size_t sparse_unpack(void *p, const struct sparse_ref *ref, size_t words, const void *in);

#endif
