/*
 * fuzz_msg.h — header fields for the field-parser harnesses, made from
 * fuzz input without going through the HTTP parser (so the fuzzer reaches
 * the field parsers directly, not through llhttp's syntax first).
 */
#ifndef FRESHCACHE_FUZZ_MSG_H
#define FRESHCACHE_FUZZ_MSG_H

#include <stddef.h>
#include <stdint.h>

struct http_msg;

/* Add each line of s[0..len) ('\n'-separated, a final '\r' dropped) that
 * reads "Name: value" (or "Name:value") to `m`, as a parser would give
 * it: the value without surrounding blanks.  Lines whose name is not a
 * token or whose value holds a NUL or a CR are skipped: neither HTTP/1.1
 * (llhttp) nor HTTP/2 (nghttp2) lets those into a field.  Stops at an empty line and returns the offset after it
 * (len when there was none). */
size_t fuzz_msg_add_lines(struct http_msg *m, const uint8_t *s, size_t len);

/* Like fuzz_msg_add_lines, but each line is a value for the field named
 * names[first byte % n_names] (the first byte is not part of it). */
size_t fuzz_msg_add_values(struct http_msg *m, const char *const *names, size_t n_names,
                           const uint8_t *s, size_t len);

#endif
