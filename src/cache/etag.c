/*
 * etag.c — see include/freshcache/etag.h.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/evp.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/hex.h"
#include "freshcache/cache/etag.h"

struct etag_hasher {
    EVP_MD_CTX *ctx;
};

struct etag_hasher *etag_hasher_new(void)
{
    struct etag_hasher *h = malloc(sizeof *h);
    AN(h);
    h->ctx = EVP_MD_CTX_new();
    AN(h->ctx);
    AN(EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL));
    return h;
}

void etag_hasher_update(struct etag_hasher *h, const void *data, size_t len)
{
    AN(EVP_DigestUpdate(h->ctx, data, len));
}

void etag_hasher_final(struct etag_hasher *h, unsigned char out[32])
{
    unsigned int n = 0;
    AN(EVP_DigestFinal_ex(h->ctx, out, &n));
    FC_ASSERT(n == 32);
}

void etag_hasher_free(struct etag_hasher *h)
{
    if (h == NULL)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void etag_format(const unsigned char hash[32], char out[67])
{
    out[0] = '"';
    hex_encode(hash, 32, out + 1);
    out[65] = '"';
    out[66] = '\0';
}

/* The first-seen history: a set-associative table of 16-byte entries that
 * grows by doubling with the number of URLs seen, from a few KiB to its
 * cap.  It outlives every purge by design (a deploy must not make
 * unchanged content look new), so what it holds is what remains in memory
 * after a deploy freed the cache: sizing it to use keeps a small cache's
 * history small (bench/run rss, docs/performance.md).
 *
 * An entry: 32 bits of the (mixed) key hash, the first 8 bytes of the body
 * hash (enough to tell changed bytes: a 2^-64 chance to miss one) and the
 * first-seen time in unsigned 32-bit seconds (to 2106).  first_seen 0:
 * unused.
 *
 * Where a key lives: its bucket is the top `bits` bits of the mixed key
 * hash, and its check the 32 bits right below the table's first `min_bits`
 * — so the check holds every bucket bit a doubling adds, and a doubling
 * splits each bucket in two by one bit of each entry's check, without the
 * full hash and without losing an entry.  A key is told apart from others
 * by min_bits + 32 bits at every size; a mistaken match (two URLs sharing
 * all of them) is treated as a change of content, which only makes
 * Last-Modified younger.
 *
 * Why no false 304 can come out of it: an entry's time only rises while it
 * lives (a change gives max(now, old + 1)), a new entry starts at `now`,
 * and a key always maps to the same bucket path — so the time returned for
 * changed bytes is later than any time returned before for that key.  A
 * key pushed out of a full bucket is forgotten: its next sighting is a new
 * entry at `now` (a younger Last-Modified).  (Pushed out and back with
 * other bytes within the second it was last given, it can get that second
 * again: HTTP dates cannot tell changes within one second apart anyway,
 * and the ETag, which clients send with it, does.  Giving forgotten keys a
 * later second instead would let times run ahead of the clock without
 * bound under pressure.) */
#define HISTORY_HASH_BYTES 8
#define BUCKET_WAYS 8           /* 8 x 16 B: two cache lines per lookup */
#define HISTORY_LOCKS 64
/* The table starts with 2^HISTORY_MIN_BITS buckets (8 KiB). */
#define HISTORY_MIN_BITS 6
/* It doubles when more than 5/8 of its entries are in use: a full
 * bucket forgets one of its keys, and at that load few buckets are full
 * (about 2 % of keys pushed out; a direct-mapped table at 1/2 load loses
 * 20 %). */
#define GROW_NUM 5
#define GROW_DEN 8

struct history_slot {
    uint32_t key_check;
    uint32_t first_seen;
    unsigned char hash[HISTORY_HASH_BYTES];
};

_Static_assert(sizeof(struct history_slot) == 16, "a history slot is 16 bytes");

struct history_bucket {
    struct history_slot way[BUCKET_WAYS];
};

struct etag_history {
#define ETAG_HISTORY_MAGIC 0xe7a6415bu
    unsigned magic;
    unsigned bits;                      /* 2^bits buckets now */
    unsigned max_bits;                  /* ... and at most */
    struct history_bucket *buckets;     /* mmap'd: whole pages come and go */
    atomic_size_t used;                 /* entries with first_seen != 0 */
    /* Notes hold `resize` shared and their bucket's stripe lock; a
     * doubling holds `resize` exclusively. */
    pthread_rwlock_t resize;
    pthread_mutex_t locks[HISTORY_LOCKS];
};

static size_t n_buckets(unsigned bits) { return (size_t)1 << bits; }

static struct history_bucket *buckets_map(unsigned bits)
{
    void *p = mmap(NULL, n_buckets(bits) * sizeof(struct history_bucket), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    FC_ASSERT(p != MAP_FAILED);
    return p;
}

static void buckets_unmap(struct history_bucket *b, unsigned bits)
{
    AZ(munmap(b, n_buckets(bits) * sizeof *b));
}

struct etag_history *etag_history_new(size_t max_slots)
{
    struct etag_history *h = calloc(1, sizeof *h);
    AN(h);
    h->magic = ETAG_HISTORY_MAGIC;
    h->bits = HISTORY_MIN_BITS;
    h->max_bits = HISTORY_MIN_BITS;
    /* At most 31 doublings: the check holds each one's bucket bit. */
    while (h->max_bits < HISTORY_MIN_BITS + 31 &&
           n_buckets(h->max_bits + 1) * BUCKET_WAYS <= max_slots)
        h->max_bits++;
    h->buckets = buckets_map(h->bits);
    atomic_init(&h->used, 0);
    AZ(pthread_rwlock_init(&h->resize, NULL));
    for (int i = 0; i < HISTORY_LOCKS; i++)
        AZ(pthread_mutex_init(&h->locks[i], NULL));
    return h;
}

void etag_history_free(struct etag_history *h)
{
    if (h == NULL)
        return;
    CHECK_OBJ(h, ETAG_HISTORY_MAGIC);
    for (int i = 0; i < HISTORY_LOCKS; i++)
        pthread_mutex_destroy(&h->locks[i]);
    pthread_rwlock_destroy(&h->resize);
    buckets_unmap(h->buckets, h->bits);
    h->magic = 0;
    free(h);
}

size_t etag_history_slots(struct etag_history *h)
{
    CHECK_OBJ(h, ETAG_HISTORY_MAGIC);
    AZ(pthread_rwlock_rdlock(&h->resize));
    size_t n = n_buckets(h->bits) * BUCKET_WAYS;
    AZ(pthread_rwlock_unlock(&h->resize));
    return n;
}

size_t etag_history_used(struct etag_history *h)
{
    CHECK_OBJ(h, ETAG_HISTORY_MAGIC);
    return atomic_load_explicit(&h->used, memory_order_relaxed);
}

/* The key hash is a cache key's (FNV-1a, mixed for its low bits); the
 * history takes its top bits, so mix it once more (MurmurHash3's fmix64). */
static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint32_t key_check(uint64_t m)
{
    return (uint32_t)(m >> (64 - HISTORY_MIN_BITS - 32));
}

static size_t bucket_of(uint64_t m, unsigned bits)
{
    return (size_t)(m >> (64 - bits));
}

/* Seconds as a slot keeps them: 1 .. UINT32_MAX (0 is "unused"). */
static uint32_t slot_time(time_t t)
{
    return t < 1 ? 1 : (uint64_t)t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

/* Twice the buckets: each entry of bucket i goes to 2i or 2i + 1 by the
 * next bit of its check, so no bucket overflows and nothing is lost. */
static void grow(struct etag_history *h)
{
    AZ(pthread_rwlock_wrlock(&h->resize));
    size_t used = atomic_load_explicit(&h->used, memory_order_relaxed);
    if (h->bits < h->max_bits && used * GROW_DEN > n_buckets(h->bits) * BUCKET_WAYS * GROW_NUM) {
        unsigned bits = h->bits + 1;
        unsigned shift = 31 - (h->bits - HISTORY_MIN_BITS);     /* the new bucket bit */
        struct history_bucket *nb = buckets_map(bits);
        for (size_t i = 0; i < n_buckets(h->bits); i++) {
            unsigned fill[2] = { 0, 0 };
            for (int w = 0; w < BUCKET_WAYS; w++) {
                const struct history_slot *s = &h->buckets[i].way[w];
                if (s->first_seen == 0)
                    continue;
                unsigned half = (s->key_check >> shift) & 1;
                nb[2 * i + half].way[fill[half]++] = *s;
            }
        }
        buckets_unmap(h->buckets, h->bits);
        h->buckets = nb;
        h->bits = bits;
    }
    AZ(pthread_rwlock_unlock(&h->resize));
}

time_t etag_history_note(struct etag_history *h, uint64_t key_hash, const unsigned char hash[32],
                         time_t now, bool *changed)
{
    CHECK_OBJ(h, ETAG_HISTORY_MAGIC);
    uint64_t m = mix(key_hash);
    uint32_t check = key_check(m);
    time_t first = now;
    bool added = false;
    *changed = false;
    AZ(pthread_rwlock_rdlock(&h->resize));
    size_t bi = bucket_of(m, h->bits);
    pthread_mutex_t *mu = &h->locks[bi % HISTORY_LOCKS];
    struct history_bucket *b = &h->buckets[bi];
    pthread_mutex_lock(mu);
    struct history_slot *s = NULL, *empty = NULL;
    for (int w = 0; w < BUCKET_WAYS && s == NULL; w++) {
        struct history_slot *x = &b->way[w];
        if (x->first_seen == 0)
            empty = empty ? empty : x;
        else if (x->key_check == check)
            s = x;
    }
    if (s != NULL) {
        if (memcmp(s->hash, hash, HISTORY_HASH_BYTES) == 0) {
            first = (time_t)s->first_seen;
        } else {
            /* New bytes must look newer than the old ones even within the
             * same second, or an If-Modified-Since from the old version
             * would get a wrong 304. */
            *changed = true;
            memcpy(s->hash, hash, HISTORY_HASH_BYTES);
            first = now > (time_t)s->first_seen ? now : (time_t)s->first_seen + 1;
            s->first_seen = slot_time(first);
        }
    } else {
        /* A full bucket forgets one key, chosen by the newcomer's check
         * (spread evenly, and the same for the same keys in a test). */
        s = empty ? empty : &b->way[check % BUCKET_WAYS];
        added = empty != NULL;
        s->key_check = check;
        memcpy(s->hash, hash, HISTORY_HASH_BYTES);
        s->first_seen = slot_time(now);
    }
    pthread_mutex_unlock(mu);
    size_t slots = n_buckets(h->bits) * BUCKET_WAYS;
    bool can_grow = h->bits < h->max_bits;
    AZ(pthread_rwlock_unlock(&h->resize));
    if (added) {
        size_t used = atomic_fetch_add_explicit(&h->used, 1, memory_order_relaxed) + 1;
        if (can_grow && used * GROW_DEN > slots * GROW_NUM)
            grow(h);
    }
    return first;
}
