/*
 * cidr.c — see include/freshcache/config/cidr.h.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "freshcache/config/cidr.h"

/* "::ffff:a.b.c.d" -> AF_INET a.b.c.d (RFC 4291 §2.5.5.2). */
static const unsigned char v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* The text as an address: AF_INET or AF_INET6, 0 if neither. */
static int parse_address(const char *s, unsigned char addr[16])
{
    if (inet_pton(AF_INET, s, addr) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, s, addr) == 1)
        return AF_INET6;
    return 0;
}

static bool bits_match(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, b, bytes) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

int cidr_parse(const char *s, struct cidr *out, char *why, size_t why_len)
{
    char text[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);

    memset(out, 0, sizeof *out);
    if (alen == 0 || alen >= INET6_ADDRSTRLEN) {
        snprintf(why, why_len, "not an IPv4 or IPv6 address");
        return -1;
    }
    memcpy(text, s, alen);
    text[alen] = '\0';
    out->family = parse_address(text, out->addr);
    if (out->family == 0) {
        snprintf(why, why_len, "not an IPv4 or IPv6 address (a numeric address, optionally "
                 "/PREFIX: 10.0.0.0/8, 2001:db8::/32)");
        return -1;
    }
    unsigned max = out->family == AF_INET ? 32 : 128;
    out->prefix = max;
    if (slash) {
        const char *p = slash + 1;
        char *end;
        unsigned long v;
        if (*p < '0' || *p > '9' || (v = strtoul(p, &end, 10), *end != '\0') || v > max) {
            snprintf(why, why_len, "invalid prefix length after '/' (0 to %u)", max);
            return -1;
        }
        out->prefix = (unsigned)v;
    }
    unsigned char net[16] = { 0 };
    memcpy(net, out->addr, out->prefix / 8);
    if (out->prefix % 8)
        net[out->prefix / 8] =
            (unsigned char)(out->addr[out->prefix / 8] & (0xff << (8 - out->prefix % 8)));
    if (memcmp(net, out->addr, max / 8) != 0) {
        char shown[INET6_ADDRSTRLEN];
        inet_ntop(out->family, net, shown, sizeof shown);
        snprintf(why, why_len, "bits are set past the /%u prefix; the range is %s/%u",
                 out->prefix, shown, out->prefix);
        return -1;
    }
    return 0;
}

bool cidr_list_contains(const struct cidr *list, size_t n, const char *addr)
{
    unsigned char a[16];
    int family = parse_address(addr, a);
    if (family == 0)
        return false;
    if (family == AF_INET6 && memcmp(a, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0) {
        memmove(a, a + 12, 4);
        family = AF_INET;
    }
    for (size_t i = 0; i < n; i++)
        if (list[i].family == family && bits_match(list[i].addr, a, list[i].prefix))
            return true;
    return false;
}
