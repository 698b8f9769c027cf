/*
 * http_msg.h — an HTTP/1.1 message head: request line or status line plus
 * an ordered list of header fields.
 *
 * All text lives in one growable byte buffer owned by the message and fields
 * refer to it by offset, so parsing appends without per-field allocation and
 * a message reused for the next request on a keep-alive connection keeps its
 * buffers (headers_reset()).  Names keep their original case; lookups are
 * case-insensitive.  Removing a field marks it dead (it is skipped by
 * lookups and serialization) so indices stay valid during iteration.
 */
#ifndef FRESHCACHE_HTTP_MSG_H
#define FRESHCACHE_HTTP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

struct evbuffer;

struct http_field {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
    bool dead;
};

struct http_msg {
    char *buf;                  /* text of url, reason and all fields */
    uint32_t len, cap;
    struct http_field *fields;
    uint32_t n_fields, cap_fields;

    /* request line */
    int method;                 /* llhttp_method_t */
    uint32_t url_off, url_len;
    /* status line */
    int status;
    uint32_t reason_off, reason_len;

    uint8_t http_major, http_minor;
    bool has_connection;        /* a Connection field is present (hop-by-hop checks) */
    bool connection_names;      /* ...naming a field other than close and the fields
                                 * hop-by-hop anyway (keep-alive, upgrade, te...) */
};

void http_msg_init(struct http_msg *m);
void http_msg_reset(struct http_msg *m);     /* empty, keeping capacity */
void http_msg_free(struct http_msg *m);

/* Append raw bytes to the text buffer; returns the offset written at. */
uint32_t http_msg_append(struct http_msg *m, const char *s, size_t len);

void http_msg_add(struct http_msg *m, const char *name, size_t nlen, const char *value, size_t vlen);
/* A new empty field at the end, its name and value at the end of the
 * text (the parser appends them piecewise). */
struct http_field *http_msg_field_new(struct http_msg *m);
/* dst becomes a copy of src's start line and live fields. */
void http_msg_copy(struct http_msg *dst, const struct http_msg *src);
/* Convenience for NUL-terminated name and value. */
void http_msg_add_str(struct http_msg *m, const char *name, const char *value);

/* The request target, url_len bytes.  A head that stored no text at all
 * (a CONNECT with an empty target and no fields, a response whose only
 * field has an empty name and value) has no buffer yet: "" (offset 0). */
static inline const char *http_msg_url(const struct http_msg *m)
{ return m->buf ? m->buf + m->url_off : ""; }
static inline const char *http_field_name(const struct http_msg *m, const struct http_field *f)
{ return m->buf ? m->buf + f->name_off : ""; }
static inline const char *http_field_value(const struct http_msg *m, const struct http_field *f)
{ return m->buf ? m->buf + f->value_off : ""; }

bool http_field_is(const struct http_msg *m, const struct http_field *f, const char *name);

/* First live field named `name` at index >= *iter; advances *iter past it.
 * Start with *iter = 0.  NULL when there are no more. */
const struct http_field *http_msg_next(const struct http_msg *m, const char *name, uint32_t *iter);
/* First value of `name` or NULL; *len gets its length. */
const char *http_msg_get(const struct http_msg *m, const char *name, size_t *len);
bool http_msg_has(const struct http_msg *m, const char *name);
/* Remove every field called `name`; returns how many. */
unsigned http_msg_remove(struct http_msg *m, const char *name);
/* Does any `name` field hold `token` in its comma-separated list
 * (case-insensitive, ignoring parameters after ';')? */
bool http_msg_has_token(const struct http_msg *m, const char *name, const char *token);

/* The parser filled the fields piecewise: recompute what http_msg_add
 * keeps up to date (has_connection, connection_names). */
void http_msg_fields_done(struct http_msg *m);

/* Append "Name: value\r\n" for every live field. */
void http_msg_write_fields(const struct http_msg *m, struct evbuffer *out);

/* Helpers for comma-separated lists: iterate over elements of s[0..len),
 * trimming whitespace.  Returns false when done. */
bool http_list_next(const char **s, const char *end, const char **elem, size_t *elen);

/* Hop-by-hop (RFC 9110 §7.6.1): Connection, the fields it names,
 * Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*. */
bool http_is_hop_by_hop(const struct http_msg *m, const struct http_field *f);

/* Case-insensitive comparison of a field name (or token) with a NUL-
 * terminated constant.  Inline: it runs for every field of every message
 * against a handful of names, and with a literal `b` the length is a
 * constant.  Most comparisons fail on the length or the first byte. */
static inline bool http_token_eq(const char *a, size_t alen, const char *b)
{
    size_t blen = __builtin_strlen(b);
    if (alen != blen)
        return false;
    if (alen == 0)
        return true;
    if ((a[0] | 0x20) != (b[0] | 0x20))
        return false;
    return strncasecmp(a, b, alen) == 0;
}

#endif
