/*
 * fuzz_cache_key.c — the primary cache key (src/cache/cache_key.c) from a
 * Host value and a request target.
 *
 * Input: the Host value, '\n', the target (no '\n': all target).
 * Checks: the stack and the allocated key agree; a key is NUL-terminated
 * text with its hash, a host part and a path starting with '/'; building
 * again from a key's own host and path gives the same key; an
 * absolute-form target gives the key of its origin form with its
 * authority as Host (an empty path being "/").
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cache_key a, b;
static char slash_path[CACHE_KEY_MAX];

static bool same(const struct cache_key *x, const struct cache_key *y)
{
    return x->len == y->len && x->host_len == y->host_len && x->hash == y->hash &&
           memcmp(x->buf, y->buf, x->len + 1) == 0;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    const char *host = nl ? in : "";
    size_t host_len = nl ? (size_t)(nl - in) : 0;
    const char *target = nl ? nl + 1 : in;
    size_t target_len = size - (size_t)(target - in);

    int rc = cache_key_build(&a, host, host_len, target, target_len);
    struct cache_key *m = cache_key_make(host, host_len, target, target_len);
    if (rc != 0) {
        /* make() refuses what build() refuses (it may also refuse what
         * does not fit its own, smaller bound) */
        FC_ASSERT(m == NULL);
        return 0;
    }
    if (m != NULL) {
        FC_ASSERT(same(&a, m));
        struct cache_key *d = cache_key_dup(m);
        FC_ASSERT(same(m, d));
        free(d);
        free(m);
    }
    FC_ASSERT(a.len < CACHE_KEY_MAX && a.buf[a.len] == '\0');
    FC_ASSERT(a.host_len < a.len);
    FC_ASSERT(a.hash == cache_key_hash(a.buf, a.len));
    size_t plen;
    const char *path = cache_key_path(&a, &plen);
    FC_ASSERT(plen > 0 && path[0] == '/');

    /* Idempotent, unless the host part still ends in what is stripped
     * (a Host of "h:80:80"). */
    if (!ends_with(a.buf, a.host_len, ":80") && !ends_with(a.buf, a.host_len, ":443")) {
        FC_ASSERT(cache_key_build(&b, a.buf, a.host_len, path, plen) == 0);
        FC_ASSERT(same(&a, &b));
    }

    /* http://AUTHORITY/PATH is Host: AUTHORITY with PATH. */
    if (target_len > 8 && (strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0)) {
        const char *auth = strchr(target, ':') + 3;
        const char *end = target + target_len, *p = auth;
        while (p < end && *p != '/' && *p != '?')
            p++;
        if (p < end && *p == '/') {
            FC_ASSERT(cache_key_build(&b, auth, (size_t)(p - auth), p, (size_t)(end - p)) == 0);
            FC_ASSERT(same(&a, &b));
        } else if ((size_t)(end - p) + 1 < sizeof slash_path) {
            /* an empty path is "/" (RFC 9112 §3.2.1) */
            slash_path[0] = '/';
            memcpy(slash_path + 1, p, (size_t)(end - p));
            FC_ASSERT(cache_key_build(&b, auth, (size_t)(p - auth), slash_path,
                                      (size_t)(end - p) + 1) == 0);
            FC_ASSERT(same(&a, &b));
        }
    }
    return 0;
}
