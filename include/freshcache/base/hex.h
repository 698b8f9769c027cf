/*
 * hex.h — bytes as lower-case hexadecimal text, the one encoder every
 * layer uses (content hashes in ETags, /verify answers, logs).
 */
#ifndef FRESHCACHE_HEX_H
#define FRESHCACHE_HEX_H

#include <stddef.h>

/* Write 2 * n hex digits for in[0..n) to out, then a NUL: out must hold
 * 2 * n + 1 bytes.  Returns out. */
char *hex_encode(const unsigned char *in, size_t n, char *out);

#endif
