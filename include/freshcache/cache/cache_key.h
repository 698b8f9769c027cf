/*
 * cache_key.h — the primary cache key: host + path + query.
 *
 * The host is lower-cased and a default port (:80) dropped, so
 * "Example.com:80" and "example.com" share entries.  The path and query are
 * kept byte for byte (normalising percent-encoding would merge URLs that the
 * origin may treat differently).  An absolute-form request target
 * ("GET http://h/p") is reduced to host + path.
 */
#ifndef FRESHCACHE_CACHE_KEY_H
#define FRESHCACHE_CACHE_KEY_H

#include <stddef.h>
#include <stdint.h>

#define CACHE_KEY_MAX 8192

/* A key on the stack holds CACHE_KEY_MAX bytes; one that lives on (an
 * exchange's, a fetch's) is allocated to its size with cache_key_make or
 * cache_key_dup: only buf[0..len] exists then, so such a key is passed by
 * pointer, never copied by value. */
struct cache_key {
    size_t len;
    size_t host_len;            /* buf[0..host_len) is the host, then the path */
    uint64_t hash;
    char buf[CACHE_KEY_MAX];    /* NUL-terminated at len */
};

/* Build the key from the Host value and the request target.  Returns 0, or
 * -1 when the target is not origin-form / absolute-form or too long. */
int cache_key_build(struct cache_key *k, const char *host, size_t host_len,
                    const char *target, size_t target_len);
/* The same, allocated to the key's size (free()).  NULL when invalid. */
struct cache_key *cache_key_make(const char *host, size_t host_len, const char *target,
                                 size_t target_len);
/* A copy allocated to the key's size (free()). */
struct cache_key *cache_key_dup(const struct cache_key *k);

uint64_t cache_key_hash(const char *s, size_t len);

/* The path+query part of a key. */
static inline const char *cache_key_path(const struct cache_key *k, size_t *len)
{
    *len = k->len - k->host_len;
    return k->buf + k->host_len;
}

#endif
