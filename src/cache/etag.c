/*
 * etag.c — see include/freshcache/etag.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

/* Direct-mapped: slot = key hash mod slots.  A collision replaces the older
 * entry, which at worst forgets a first-seen time.  A slot is 16 bytes: 32
 * bits of the key hash folded (which, with the slot index, tell URLs apart
 * but for a 2^-32 chance among the keys sharing a slot; a mistaken match
 * can only make Last-Modified younger), the first 8 bytes of the body hash
 * (enough to tell changed bytes: a 2^-64 chance to miss one), and the
 * first-seen time in unsigned 32-bit seconds (to 2106).  This table
 * outlives every purge by design, so it is what remains in memory after a
 * deploy freed the cache, and its pages fill as objects are stored:
 * 4 MiB for the default 256 Ki slots, half of what 32-byte slots took
 * (bench/objmem, docs/performance.md).  first_seen 0: unused. */
#define HISTORY_HASH_BYTES 8

struct history_slot {
    uint32_t key_check;
    uint32_t first_seen;
    unsigned char hash[HISTORY_HASH_BYTES];
};

#define HISTORY_LOCKS 64

_Static_assert(sizeof(struct history_slot) == 16, "a history slot is 16 bytes");

struct etag_history {
    size_t n;
    struct history_slot *slots;
    pthread_mutex_t locks[HISTORY_LOCKS];
};

struct etag_history *etag_history_new(size_t slots)
{
    struct etag_history *h = calloc(1, sizeof *h);
    AN(h);
    h->n = slots ? slots : 1;
    h->slots = calloc(h->n, sizeof *h->slots);
    AN(h->slots);
    for (int i = 0; i < HISTORY_LOCKS; i++)
        AZ(pthread_mutex_init(&h->locks[i], NULL));
    return h;
}

void etag_history_free(struct etag_history *h)
{
    if (h == NULL)
        return;
    for (int i = 0; i < HISTORY_LOCKS; i++)
        pthread_mutex_destroy(&h->locks[i]);
    free(h->slots);
    free(h);
}

static uint32_t key_check(uint64_t key_hash)
{
    return (uint32_t)(key_hash ^ (key_hash >> 32));
}

/* Seconds as a slot keeps them: 1 .. UINT32_MAX (0 is "unused"). */
static uint32_t slot_time(time_t t)
{
    return t < 1 ? 1 : (uint64_t)t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

time_t etag_history_note(struct etag_history *h, uint64_t key_hash, const unsigned char hash[32],
                         time_t now, bool *changed)
{
    size_t i = (size_t)(key_hash % h->n);
    pthread_mutex_t *mu = &h->locks[i % HISTORY_LOCKS];
    struct history_slot *s = &h->slots[i];
    uint32_t check = key_check(key_hash);
    time_t first = now;
    *changed = false;
    pthread_mutex_lock(mu);
    if (s->first_seen != 0 && s->key_check == check) {
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
        s->key_check = check;
        memcpy(s->hash, hash, HISTORY_HASH_BYTES);
        s->first_seen = slot_time(now);
    }
    pthread_mutex_unlock(mu);
    return first;
}
