/*
 * etag.c — content hashes and the ETags made of them.  See
 * include/freshcache/cache/etag.h (the first-seen history: etag_history.c).
 */
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

