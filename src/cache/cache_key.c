/*
 * cache_key.c — see include/freshcache/cache_key.h.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_key.h"

/* FNV-1a: short keys, good enough spread, no state. */
uint64_t cache_key_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    /* Final mix so shard selection (low bits) sees every byte. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/* Build into k, whose buf holds `cap` bytes. */
static int build(struct cache_key *k, size_t cap, const char *host, size_t host_len,
                 const char *target, size_t target_len)
{
    /* RFC 9112 §3.2.1: an empty path is "/" ("http://h?q" is "/?q") */
    bool empty_path = false;
    /* absolute-form: scheme://authority/path */
    if (target_len > 7 && (strncasecmp(target, "http://", 7) == 0 ||
                           (target_len > 8 && strncasecmp(target, "https://", 8) == 0))) {
        const char *auth = memchr(target, ':', target_len) + 3;
        const char *end = target + target_len;
        const char *slash = auth;
        while (slash < end && *slash != '/' && *slash != '?')
            slash++;
        host = auth;
        host_len = (size_t)(slash - auth);
        target_len = (size_t)(end - slash);
        target = slash;
        empty_path = target_len == 0 || target[0] == '?';
    } else if (target_len == 0 || target[0] != '/') {
        return -1;
    }
    /* strip a default port: one cache for a site's HTTP and HTTPS
     * listeners, whatever port the client writes (the absolute form
     * included: "http://h:80?q" is the same key as "http://h/?q") */
    if (host_len > 3 && memcmp(host + host_len - 3, ":80", 3) == 0)
        host_len -= 3;
    else if (host_len > 4 && memcmp(host + host_len - 4, ":443", 4) == 0)
        host_len -= 4;
    size_t path_len = (empty_path ? 1 : 0) + target_len;
    if (host_len + path_len + 1 > cap)
        return -1;
    for (size_t i = 0; i < host_len; i++)
        k->buf[i] = (char)tolower((unsigned char)host[i]);
    if (empty_path)
        k->buf[host_len] = '/';
    memcpy(k->buf + host_len + (empty_path ? 1 : 0), target, target_len);
    k->host_len = host_len;
    k->len = host_len + path_len;
    k->buf[k->len] = '\0';
    k->hash = cache_key_hash(k->buf, k->len);
    return 0;
}

int cache_key_build(struct cache_key *k, const char *host, size_t host_len,
                    const char *target, size_t target_len)
{
    return build(k, sizeof k->buf, host, host_len, target, target_len);
}

struct cache_key *cache_key_make(const char *host, size_t host_len, const char *target,
                                 size_t target_len)
{
    /* host + "/" + target + NUL bounds every form */
    size_t cap = host_len + target_len + 2;
    if (cap > CACHE_KEY_MAX)
        return NULL;
    struct cache_key *k = malloc(offsetof(struct cache_key, buf) + cap);
    AN(k);
    if (build(k, cap, host, host_len, target, target_len) != 0) {
        free(k);
        return NULL;
    }
    return k;
}

struct cache_key *cache_key_dup(const struct cache_key *k)
{
    size_t size = offsetof(struct cache_key, buf) + k->len + 1;
    struct cache_key *d = malloc(size);
    AN(d);
    memcpy(d, k, size);
    return d;
}
