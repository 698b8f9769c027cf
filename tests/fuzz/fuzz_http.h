/*
 * fuzz_http.h — what the http-request and http-response harnesses share:
 * the input as a byte stream cut into chunks, and the checks made on every
 * parsed head.
 */
#ifndef FRESHCACHE_FUZZ_HTTP_H
#define FRESHCACHE_FUZZ_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

/* Feed data[1..size) to the llhttp glue (http_parse.c) as one connection's
 * bytes, in chunks whose sizes data[0] picks (so a field split across
 * reads is exercised), answering pipelined messages in order as the
 * server and proxyctl do; then end of input.  Every head is checked and
 * read the way the proxy reads it. */
void fuzz_http_stream(const uint8_t *data, size_t size, llhttp_type_t type);

#endif
