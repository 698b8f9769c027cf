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
 * entry, which at worst forgets a first-seen time.  A slot keeps the first
 * 16 bytes of the body hash: enough to tell changed bytes (a 2^-128
 * chance to miss), and 32 bytes a slot instead of 56 — this table outlives
 * every purge by design, so it is what remains in memory after a deploy
 * freed the cache.  first_seen 0: unused. */
#define HISTORY_HASH_BYTES 16

struct history_slot {
    uint64_t key_hash;
    unsigned char hash[HISTORY_HASH_BYTES];
    int64_t first_seen;
};

#define HISTORY_LOCKS 64

_Static_assert(sizeof(struct history_slot) == 32, "a history slot is 32 bytes");

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

time_t etag_history_note(struct etag_history *h, uint64_t key_hash, const unsigned char hash[32],
                         time_t now, bool *changed)
{
    size_t i = (size_t)(key_hash % h->n);
    pthread_mutex_t *mu = &h->locks[i % HISTORY_LOCKS];
    struct history_slot *s = &h->slots[i];
    time_t first = now;
    *changed = false;
    pthread_mutex_lock(mu);
    if (s->first_seen != 0 && s->key_hash == key_hash) {
        if (memcmp(s->hash, hash, HISTORY_HASH_BYTES) == 0) {
            first = (time_t)s->first_seen;
        } else {
            /* New bytes must look newer than the old ones even within the
             * same second, or an If-Modified-Since from the old version
             * would get a wrong 304. */
            *changed = true;
            memcpy(s->hash, hash, HISTORY_HASH_BYTES);
            first = now > (time_t)s->first_seen ? now : (time_t)s->first_seen + 1;
            s->first_seen = first;
        }
    } else {
        s->key_hash = key_hash;
        memcpy(s->hash, hash, HISTORY_HASH_BYTES);
        s->first_seen = now > 0 ? now : 1;
    }
    pthread_mutex_unlock(mu);
    return first;
}
