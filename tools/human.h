/*
 * human.h — numbers as a person reads them, for proxyctl's text output:
 * "1.5 MiB", "3d 4h 5m 6s".
 */
#ifndef FRESHCACHE_HUMAN_H
#define FRESHCACHE_HUMAN_H

#include <stddef.h>
#include <stdint.h>

/* "512 B", "1.5 KiB", ... "2.0 EiB" (binary units, as cache.memory). */
void human_bytes(uint64_t b, char *out, size_t len);
/* "59s", "1m 0s", "2h 3m 4s", "1d 2h 3m 4s". */
void human_duration(uint64_t s, char *out, size_t len);

#endif
