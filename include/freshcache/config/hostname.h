/*
 * hostname.h — what the config accepts as a host name (origin URLs, TLS
 * server names, Redis addresses).
 */
#ifndef FRESHCACHE_HOSTNAME_H
#define FRESHCACHE_HOSTNAME_H

#include <stdbool.h>
#include <stddef.h>

/* Letters, digits, '-', '.' and '_' (common in internal names) only, 1 to
 * 253 bytes: a name as it may appear in a URL or in TLS SNI. */
bool hostname_valid(const char *s, size_t len);

#endif
