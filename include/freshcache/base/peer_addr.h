/*
 * peer_addr.h — a client's address as 17 bytes, formatted only when
 * something reads it as text.
 *
 * An idle keep-alive connection is mostly its bookkeeping structs, so it
 * keeps its peer's address binary (an IPv4 or IPv6 address, no port)
 * rather than as INET6_ADDRSTRLEN bytes of text; a request formats it into
 * its pooled per-request state when the access log, X-Forwarded-For or
 * trusted_proxies needs it (src/server/http1.c).
 */
#ifndef FRESHCACHE_PEER_ADDR_H
#define FRESHCACHE_PEER_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct peer_addr {
    uint8_t family;         /* AF_INET, AF_INET6, or AF_UNSPEC: unknown */
    uint8_t bytes[16];      /* IPv4: the first 4, network order */
};

/* Text needs at most this (with the NUL): an IPv6 address or "unknown". */
#define PEER_ADDR_TEXT INET6_ADDRSTRLEN

/* From an accepted socket's address; another family is "unknown". */
void peer_addr_set(struct peer_addr *pa, const struct sockaddr *sa);
/* As inet_ntop writes it ("192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"
 * for a mapped IPv4 address), or "unknown".  Returns out. */
char *peer_addr_format(const struct peer_addr *pa, char out[PEER_ADDR_TEXT]);
bool peer_addr_equal(const struct peer_addr *a, const struct peer_addr *b);

#endif
