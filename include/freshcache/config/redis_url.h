/*
 * redis_url.h — the `cluster.redis` address: where the cluster's Redis is
 * and how to log in to it.
 *
 *     redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]     HOST: name, IPv4 or [IPv6]
 *     unix://[[USER]:PASSWORD@]/PATH[?db=DB]         a Unix socket
 *
 * PORT defaults to 6379 and DB to 0.  USER and PASSWORD may be
 * percent-encoded (a '@' or '/' in a password is %40, %2F).  rediss:// is
 * refused: hiredis here has no TLS.
 *
 * The password must never reach a log line: everything that prints an
 * address prints redis_url_display(), which shows "***" instead.
 */
#ifndef FRESHCACHE_REDIS_URL_H
#define FRESHCACHE_REDIS_URL_H

#include <stddef.h>
#include <stdint.h>

struct redis_url {
    char *host;             /* TCP: host name or address (no brackets); NULL with a socket */
    uint16_t port;
    char *unix_path;        /* Unix socket path, or NULL */
    unsigned db;
    char *username;         /* ACL user (AUTH USER PASSWORD), or NULL */
    char *password;         /* or NULL; never logged */
};

/* Parse `s` into *u (which owns copies).  NULL on success, else what is
 * wrong, a static string or written into why[whylen]; *u is then empty.
 * The message never quotes the password. */
const char *redis_url_parse(const char *s, struct redis_url *u, char *why, size_t whylen);
void redis_url_free(struct redis_url *u);

/* The address for humans and logs, password replaced by "***":
 * "redis://127.0.0.1:6379/0", "redis://:***@cache.internal:6380/2",
 * "unix:///run/redis/redis.sock?db=0".  malloc'd; the caller frees. */
char *redis_url_display(const struct redis_url *u);

#endif
