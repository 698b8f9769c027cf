/*
 * redis_url.c — parse the `cluster.redis` address.  See
 * include/freshcache/config/redis_url.h.
 *
 * Strict like the rest of the config: anything we would have to guess at
 * (a path after the database, a query other than db=, a port of 0) is an
 * error with a reason, never a silently different address.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "freshcache/base/assert.h"
#include "freshcache/config/hostname.h"
#include "freshcache/config/redis_url.h"

#define REDIS_DEFAULT_PORT 6379
#define REDIS_MAX_DB 1000000

static char *copy_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    AN(d);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into a new string; NULL on a bad escape or a
 * decoded NUL (it would cut the credential short without a word). */
static char *decode_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    AN(d);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1;
        int lo = i + 2 < n ? hex_digit(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(d);
            return NULL;
        }
        d[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[o] = '\0';
    return d;
}

/* Digits only, within [min, max]. */
static bool parse_number(const char *s, size_t n, unsigned long min, unsigned long max,
                         unsigned long *out)
{
    if (n == 0 || n > 10)
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* "[USER]:PASSWORD" (the part before '@').  A bare word without ':' is
 * taken as a password, like redis-cli's -u. */
static const char *parse_userinfo(const char *s, size_t n, struct redis_url *u)
{
    const char *colon = memchr(s, ':', n);
    const char *pw = colon ? colon + 1 : s;
    size_t pwlen = colon ? n - (size_t)(pw - s) : n;
    if (colon && colon > s) {
        u->username = decode_n(s, (size_t)(colon - s));
        if (u->username == NULL)
            return "bad percent-encoding in the user name";
    }
    if (pwlen == 0)
        return "empty password after ':' (leave out \"user:password@\" when there is none)";
    u->password = decode_n(pw, pwlen);
    if (u->password == NULL)
        return "bad percent-encoding in the password";
    return NULL;
}

/* HOST[:PORT] or [V6][:PORT] */
static const char *parse_hostport(const char *s, size_t n, struct redis_url *u)
{
    const char *h = s, *port = NULL;
    size_t hlen;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return "missing ']' after the IPv6 address";
        h = s + 1;
        hlen = (size_t)(close - h);
        char tmp[INET6_ADDRSTRLEN];
        struct in6_addr a;
        if (hlen == 0 || hlen >= sizeof tmp)
            return "invalid IPv6 address";
        memcpy(tmp, h, hlen);
        tmp[hlen] = '\0';
        if (inet_pton(AF_INET6, tmp, &a) != 1)
            return "invalid IPv6 address";
        if (close + 1 < s + n) {
            if (close[1] != ':')
                return "unexpected text after the IPv6 address";
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        hlen = colon ? (size_t)(colon - s) : n;
        if (colon)
            port = colon + 1;
        if (hlen == 0)
            return "missing host";
        if (!hostname_valid(h, hlen))
            return "invalid host name";
    }
    unsigned long p = REDIS_DEFAULT_PORT;
    if (port && !parse_number(port, (size_t)(s + n - port), 1, 65535, &p))
        return "the port must be a number from 1 to 65535";
    u->host = copy_n(h, hlen);
    u->port = (uint16_t)p;
    return NULL;
}

static const char *parse_db(const char *s, size_t n, struct redis_url *u)
{
    unsigned long db;
    if (!parse_number(s, n, 0, REDIS_MAX_DB, &db))
        return "the database must be a number (e.g. /0)";
    u->db = (unsigned)db;
    return NULL;
}

/* After "redis://". */
static const char *parse_tcp(const char *rest, struct redis_url *u)
{
    size_t authlen = strcspn(rest, "/?#");
    const char *tail = rest + authlen;
    const char *at = NULL;
    for (const char *p = rest; p < tail; p++)
        if (*p == '@')
            at = p;                 /* the last '@': an unencoded one in a password */
    const char *hp = rest;
    if (at) {
        const char *why = parse_userinfo(rest, (size_t)(at - rest), u);
        if (why)
            return why;
        hp = at + 1;
    }
    const char *why = parse_hostport(hp, (size_t)(tail - hp), u);
    if (why)
        return why;
    if (*tail == '?' || *tail == '#')
        return "a query or fragment is not allowed (give the database as /DB)";
    if (*tail == '/' && tail[1] != '\0')
        return parse_db(tail + 1, strlen(tail + 1), u);
    return NULL;
}

/* After "unix://". */
static const char *parse_unix(const char *rest, struct redis_url *u)
{
    const char *path = rest;
    if (rest[0] != '/') {
        const char *at = strrchr(rest, '@');
        if (at == NULL)
            return "expected unix:///path/to/redis.sock (three slashes: an absolute path)";
        const char *why = parse_userinfo(rest, (size_t)(at - rest), u);
        if (why)
            return why;
        path = at + 1;
        if (path[0] != '/')
            return "the socket path must be absolute (unix:///path/to/redis.sock)";
    }
    size_t plen = strcspn(path, "?#");
    const char *tail = path + plen;
    if (plen < 2)
        return "missing socket path";
    if (plen > sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)
        return "the socket path is too long for a Unix socket";
    u->unix_path = copy_n(path, plen);
    if (*tail == '#')
        return "a fragment is not allowed";
    if (*tail == '?') {
        if (strncmp(tail, "?db=", 4) != 0)
            return "the only query allowed is ?db=N";
        return parse_db(tail + 4, strlen(tail + 4), u);
    }
    return NULL;
}

const char *redis_url_parse(const char *s, struct redis_url *u, char *why, size_t whylen)
{
    memset(u, 0, sizeof *u);
    const char *err;
    if (strncasecmp(s, "redis://", 8) == 0) {
        err = parse_tcp(s + 8, u);
    } else if (strncasecmp(s, "unix://", 7) == 0) {
        err = parse_unix(s + 7, u);
    } else if (strncasecmp(s, "rediss://", 9) == 0) {
        err = "rediss:// (TLS) is not supported; reach a remote Redis through a TLS tunnel "
              "(stunnel, spiped) or use a Unix socket";
    } else {
        snprintf(why, whylen, "must start with redis:// or unix://");
        err = why;
    }
    if (err != NULL)
        redis_url_free(u);
    return err;
}

void redis_url_free(struct redis_url *u)
{
    if (u == NULL)
        return;
    free(u->host);
    free(u->unix_path);
    free(u->username);
    if (u->password) {
        /* Not a secret-hygiene guarantee (copies may exist), just no
         * plaintext left behind in the freed block by us. */
        explicit_bzero(u->password, strlen(u->password));
        free(u->password);
    }
    memset(u, 0, sizeof *u);
}

char *redis_url_display(const struct redis_url *u)
{
    char auth[160] = "";
    if (u->password)
        snprintf(auth, sizeof auth, "%.64s:***@", u->username ? u->username : "");
    char *out;
    int n;
    if (u->unix_path)
        n = asprintf(&out, "unix://%s%s?db=%u", auth, u->unix_path, u->db);
    else if (u->host && strchr(u->host, ':'))
        n = asprintf(&out, "redis://%s[%s]:%u/%u", auth, u->host, (unsigned)u->port, u->db);
    else
        n = asprintf(&out, "redis://%s%s:%u/%u", auth, u->host ? u->host : "", (unsigned)u->port,
                     u->db);
    FC_ASSERT(n >= 0);
    return out;
}
