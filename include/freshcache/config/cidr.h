/*
 * cidr.h — address ranges ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7") and
 * whether a peer's address lies in one: the `trusted_proxies` list.
 *
 * An IPv4 peer that reaches an IPv6 socket shows up as an IPv4-mapped
 * address (::ffff:192.0.2.7); it is matched as the IPv4 address it is, so
 * "10.0.0.0/8" means the same on a dual-stack listener.
 */
#ifndef FRESHCACHE_CIDR_H
#define FRESHCACHE_CIDR_H

#include <stdbool.h>
#include <stddef.h>

struct cidr {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned prefix;            /* leading bits that must match: 0..32 or 0..128 */
    unsigned char addr[16];     /* network, host bits zero; 4 bytes used for AF_INET */
};

/* Parse "ADDRESS/PREFIX" or a lone ADDRESS (a single host).  0 on success;
 * -1 with a one-line reason in `why` (not a numeric address, prefix out of
 * range, bits set past the prefix: "10.0.0.1/8" is refused, naming
 * 10.0.0.0/8, since it usually is a typo for a host or another range). */
int cidr_parse(const char *s, struct cidr *out, char *why, size_t why_len);

/* Is the numeric address `addr` (as inet_ntop writes it) in one of the `n`
 * ranges?  false for text that is no address. */
bool cidr_list_contains(const struct cidr *list, size_t n, const char *addr);

#endif
