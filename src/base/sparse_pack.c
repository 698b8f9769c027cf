/*
 * sparse_pack.c — see include/freshcache/base/sparse_pack.h.
 */
#include "freshcache/base/sparse_pack.h"

#include <stdint.h>
#include <string.h>

#include "freshcache/base/assert.h"

static size_t bitmap_words(size_t words) { return (words + 63) / 64; }

/* The word the reference expects at `i`. */
static uint64_t ref_word(const struct sparse_ref *ref, size_t i)
{
    if (ref == NULL || ref->words == NULL)
        return 0;
    uint64_t w = ref->words[i];
    return w >= ref->lo && w < ref->hi ? w + ref->delta : w;
}

static size_t differing(const uint64_t *w, const struct sparse_ref *r, size_t words)
{
    size_t n = 0;
    for (size_t i = 0; i < words; i++)
        n += w[i] != ref_word(r, i);
    return n;
}

static size_t packed_bytes(size_t n, size_t words)
{
    return sizeof(uint64_t) * (1 + (n ? bitmap_words(words) + n : 0));
}

size_t sparse_pack_size(const void *p, const struct sparse_ref *ref, size_t words)
{
    return packed_bytes(differing(p, ref, words), words);
}

size_t sparse_pack(void *out, const void *p, const struct sparse_ref *r, size_t words)
{
    const uint64_t *w = p;
    uint64_t *o = out;
    FC_ASSERT((uintptr_t)out % sizeof(uint64_t) == 0 && (uintptr_t)p % sizeof(uint64_t) == 0);
    size_t n = differing(w, r, words);
    o[0] = n;
    if (n == 0)
        return packed_bytes(0, words);
    size_t nbm = bitmap_words(words), k = 0;
    uint64_t *bm = o + 1, *lit = bm + nbm;
    memset(bm, 0, nbm * sizeof *bm);
    for (size_t i = 0; i < words; i++) {
        if (w[i] != ref_word(r, i)) {
            bm[i / 64] |= UINT64_C(1) << (i % 64);
            lit[k++] = w[i];
        }
    }
    FC_ASSERT(k == n);
    return packed_bytes(n, words);
}

size_t sparse_unpack(void *p, const struct sparse_ref *r, size_t words, const void *in)
{
    uint64_t *w = p;
    const uint64_t *i64 = in;
    size_t n = (size_t)i64[0], nbm = bitmap_words(words), k = 0;
    const uint64_t *bm = i64 + 1, *lit = bm + nbm;
    for (size_t i = 0; i < words; i++) {
        uint64_t v = n && (bm[i / 64] >> (i % 64) & 1) ? lit[k++] : ref_word(r, i);
        if (v != 0)
            w[i] = v;
    }
    FC_ASSERT(k == n);
    return packed_bytes(n, words);
}
