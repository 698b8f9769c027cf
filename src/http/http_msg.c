/*
 * http_msg.c — message heads as offset-addressed fields in one buffer.
 * See include/freshcache/http_msg.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "freshcache/base/assert.h"
#include "freshcache/http/http_msg.h"

void http_msg_init(struct http_msg *m)
{
    memset(m, 0, sizeof *m);
}

void http_msg_reset(struct http_msg *m)
{
    m->len = 0;
    m->n_fields = 0;
    m->has_connection = false;
    m->connection_names = false;
    m->method = 0;
    m->url_off = m->url_len = 0;
    m->status = 0;
    m->reason_off = m->reason_len = 0;
    m->http_major = m->http_minor = 0;
}

void http_msg_free(struct http_msg *m)
{
    free(m->buf);
    free(m->fields);
    memset(m, 0, sizeof *m);
}

uint32_t http_msg_append(struct http_msg *m, const char *s, size_t len)
{
    FC_ASSERT(len <= UINT32_MAX - m->len);
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 1024;
        while (cap < m->len + len)
            cap *= 2;
        char *nb = realloc(m->buf, cap);
        AN(nb);
        m->buf = nb;
        m->cap = (uint32_t)cap;
    }
    uint32_t off = m->len;
    if (len)
        memcpy(m->buf + off, s, len);
    m->len += (uint32_t)len;
    return off;
}

static struct http_field *field_push(struct http_msg *m)
{
    if (m->n_fields == m->cap_fields) {
        uint32_t cap = m->cap_fields ? m->cap_fields * 2 : 32;
        struct http_field *nf = realloc(m->fields, cap * sizeof *nf);
        AN(nf);
        m->fields = nf;
        m->cap_fields = cap;
    }
    struct http_field *f = &m->fields[m->n_fields++];
    memset(f, 0, sizeof *f);
    return f;
}

struct http_field *http_msg_field_new(struct http_msg *m)
{
    struct http_field *f = field_push(m);
    f->name_off = f->value_off = m->len;
    return f;
}

/* Field names hop-by-hop whatever Connection says (RFC 9110 §7.6.1):
 * Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade and
 * Proxy-* (Proxy-Connection, -Authenticate, -Authorization...).  By
 * length first: every field of every message passes here, and most
 * names have a length none of these has. */
static bool always_hop(const char *name, size_t len)
{
    if (len >= 6 && (name[0] | 0x20) == 'p' && strncasecmp(name, "Proxy-", 6) == 0)
        return true;
    switch (len) {
    case 2:
        return http_token_eq(name, len, "TE");
    case 7:
        return http_token_eq(name, len, "Trailer") || http_token_eq(name, len, "Upgrade");
    case 10:
        return http_token_eq(name, len, "Connection") || http_token_eq(name, len, "Keep-Alive");
    case 17:
        return http_token_eq(name, len, "Transfer-Encoding");
    default:
        return false;
    }
}

/* A Connection field: does it name a field that is not hop-by-hop anyway?
 * Nearly every one says only keep-alive or close, and then no other field
 * needs its name looked for in the Connection list (http_is_hop_by_hop). */
static void note_connection(struct http_msg *m, const struct http_field *f)
{
    m->has_connection = true;
    const char *s = http_field_value(m, f), *end = s + f->value_len, *e;
    size_t el;
    while (!m->connection_names && http_list_next(&s, end, &e, &el)) {
        const char *semi = memchr(e, ';', el);
        size_t tl = semi ? (size_t)(semi - e) : el;
        while (tl > 0 && (e[tl - 1] == ' ' || e[tl - 1] == '\t'))
            tl--;
        if (!http_token_eq(e, tl, "close") && !always_hop(e, tl))
            m->connection_names = true;
    }
}

void http_msg_add(struct http_msg *m, const char *name, size_t nlen, const char *value, size_t vlen)
{
    struct http_field *f = field_push(m);
    /* field_push may not move m->buf, but append may: compute offsets only. */
    uint32_t no = http_msg_append(m, name, nlen);
    uint32_t vo = http_msg_append(m, value, vlen);
    f = &m->fields[m->n_fields - 1];
    f->name_off = no;
    f->name_len = (uint32_t)nlen;
    f->value_off = vo;
    f->value_len = (uint32_t)vlen;
    if (http_token_eq(name, nlen, "Connection"))
        note_connection(m, f);
}

void http_msg_copy(struct http_msg *dst, const struct http_msg *src)
{
    http_msg_reset(dst);
    dst->method = src->method;
    dst->status = src->status;
    dst->http_major = src->http_major;
    dst->http_minor = src->http_minor;
    dst->url_off = http_msg_append(dst, http_msg_url(src), src->url_len);
    dst->url_len = src->url_len;
    /* A head that stored no text has no buffer: NULL + 0 is undefined. */
    dst->reason_off = http_msg_append(dst, src->buf ? src->buf + src->reason_off : "",
                                      src->reason_len);
    dst->reason_len = src->reason_len;
    for (uint32_t i = 0; i < src->n_fields; i++) {
        const struct http_field *f = &src->fields[i];
        if (!f->dead)
            http_msg_add(dst, http_field_name(src, f), f->name_len, http_field_value(src, f),
                         f->value_len);
    }
}

void http_msg_add_str(struct http_msg *m, const char *name, const char *value)
{
    http_msg_add(m, name, strlen(name), value, strlen(value));
}

bool http_field_is(const struct http_msg *m, const struct http_field *f, const char *name)
{
    return !f->dead && http_token_eq(m->buf + f->name_off, f->name_len, name);
}

const struct http_field *http_msg_next(const struct http_msg *m, const char *name, uint32_t *iter)
{
    /* The name's length once, not per field (http_token_eq's strlen folds
     * only for a literal; here it ran for every field of every lookup). */
    size_t nlen = strlen(name);
    /* The first byte, case-folded, before strncasecmp: names of the same
     * length mostly differ there (Date/ETag, Host/Vary...). */
    unsigned char c0 = (unsigned char)(name[0] | 0x20);
    for (uint32_t i = *iter; i < m->n_fields; i++) {
        const struct http_field *f = &m->fields[i];
        if (f->name_len == nlen && !f->dead &&
            (nlen == 0 || ((unsigned char)(m->buf[f->name_off] | 0x20) == c0 &&
                           strncasecmp(m->buf + f->name_off, name, nlen) == 0))) {
            *iter = i + 1;
            return &m->fields[i];
        }
    }
    *iter = m->n_fields;
    return NULL;
}

const char *http_msg_get(const struct http_msg *m, const char *name, size_t *len)
{
    uint32_t it = 0;
    const struct http_field *f = http_msg_next(m, name, &it);
    if (f == NULL)
        return NULL;
    if (len)
        *len = f->value_len;
    return m->buf + f->value_off;
}

bool http_msg_has(const struct http_msg *m, const char *name)
{
    return http_msg_get(m, name, NULL) != NULL;
}

unsigned http_msg_remove(struct http_msg *m, const char *name)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < m->n_fields; i++) {
        if (http_field_is(m, &m->fields[i], name)) {
            m->fields[i].dead = true;
            n++;
        }
    }
    return n;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

bool http_list_next(const char **s, const char *end, const char **elem, size_t *elen)
{
    const char *p = *s;
    for (;;) {
        while (p < end && (is_ows(*p) || *p == ','))
            p++;
        if (p >= end) {
            *s = p;
            return false;
        }
        const char *start = p;
        bool quoted = false;
        while (p < end && (quoted || *p != ',')) {
            if (*p == '"')
                quoted = !quoted;
            else if (*p == '\\' && quoted && p + 1 < end)
                p++;
            p++;
        }
        const char *stop = p;
        while (stop > start && is_ows(stop[-1]))
            stop--;
        if (stop > start) {
            *elem = start;
            *elen = (size_t)(stop - start);
            *s = p;
            return true;
        }
    }
}

bool http_msg_has_token(const struct http_msg *m, const char *name, const char *token)
{
    uint32_t it = 0;
    const struct http_field *f;
    while ((f = http_msg_next(m, name, &it)) != NULL) {
        const char *s = http_field_value(m, f), *end = s + f->value_len, *e;
        size_t el;
        while (http_list_next(&s, end, &e, &el)) {
            const char *semi = memchr(e, ';', el);
            size_t tl = semi ? (size_t)(semi - e) : el;
            while (tl > 0 && is_ows(e[tl - 1]))
                tl--;
            if (http_token_eq(e, tl, token))
                return true;
        }
    }
    return false;
}

void http_msg_write_fields(const struct http_msg *m, struct evbuffer *out)
{
    for (uint32_t i = 0; i < m->n_fields; i++) {
        const struct http_field *f = &m->fields[i];
        if (f->dead)
            continue;
        evbuffer_add(out, m->buf + f->name_off, f->name_len);
        evbuffer_add(out, ": ", 2);
        evbuffer_add(out, m->buf + f->value_off, f->value_len);
        evbuffer_add(out, "\r\n", 2);
    }
}

bool http_is_hop_by_hop(const struct http_msg *m, const struct http_field *f)
{
    const char *name = http_field_name(m, f);
    if (always_hop(name, f->name_len))
        return true;
    /* fields named by Connection (looked for only if it names any but
     * close and the always-hop ones, or for a field named Close) */
    if (!m->has_connection ||
        (!m->connection_names && !http_token_eq(name, f->name_len, "Close")))
        return false;
    char nm[128];
    if (f->name_len < sizeof nm) {
        memcpy(nm, name, f->name_len);
        nm[f->name_len] = '\0';
        if (http_msg_has_token(m, "Connection", nm))
            return true;
    }
    return false;
}


void http_msg_fields_done(struct http_msg *m)
{
    m->has_connection = false;
    m->connection_names = false;
    for (uint32_t i = 0; i < m->n_fields; i++) {
        const struct http_field *f = &m->fields[i];
        if (!f->dead && http_token_eq(http_field_name(m, f), f->name_len, "Connection"))
            note_connection(m, f);
    }
}
