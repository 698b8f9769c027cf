/*
 * fuzz_http.c — see fuzz_http.h.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_key.h"
#include "freshcache/http/cc_fields.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/http/http_parse.h"

#include "fuzz_http.h"

#define FUZZ_MAX_HEAD (8 * 1024)        /* small, so the limit is reached */

struct sink {
    uint64_t bytes;
    uint8_t last;
};

static void on_body(void *owner, const char *at, size_t len)
{
    struct sink *s = owner;
    FC_ASSERT(len > 0);
    s->bytes += len;
    s->last ^= (uint8_t)at[len - 1];    /* touch the bytes: ASan checks them */
    s->last ^= (uint8_t)at[0];
}

/* Every offset of the head lies inside its buffer. */
static void check_msg(const struct http_msg *m)
{
    FC_ASSERT(m->n_fields <= m->cap_fields);
    FC_ASSERT(m->len <= m->cap);
    FC_ASSERT((uint64_t)m->url_off + m->url_len <= m->len);
    FC_ASSERT((uint64_t)m->reason_off + m->reason_len <= m->len);
    for (uint32_t i = 0; i < m->n_fields; i++) {
        const struct http_field *f = &m->fields[i];
        FC_ASSERT((uint64_t)f->name_off + f->name_len <= m->len);
        FC_ASSERT((uint64_t)f->value_off + f->value_len <= m->len);
    }
}

/* What the proxy does with a head, minus the sockets. */
static void use_head(struct http_parser *p, struct http_msg *m, llhttp_type_t type)
{
    check_msg(m);
    (void)http_parser_keep_alive(p);
    bool has_body = http_parser_has_body(p);
    uint64_t cl = http_parser_content_length(p);
    (void)has_body;
    (void)cl;

    size_t hlen = 0;
    const char *host = http_msg_get(m, "Host", &hlen);
    struct cache_control cc;
    if (type == HTTP_REQUEST) {
        cc_request_parse(m, &cc);
        struct cache_key *k = cache_key_make(host ? host : "", host ? hlen : 0, http_msg_url(m),
                                             m->url_len);
        if (k != NULL) {
            FC_ASSERT(k->len >= k->host_len);
            FC_ASSERT(k->buf[k->len] == '\0');
            free(k);
        }
    } else {
        cc_response_parse(m, &cc);
        (void)cc_response_has_fields(m);
    }
    (void)http_msg_has_token(m, "Connection", "close");
    (void)http_msg_has_token(m, "Transfer-Encoding", "chunked");
    for (uint32_t i = 0; i < m->n_fields; i++)
        (void)http_is_hop_by_hop(m, &m->fields[i]);

    /* What a fetch forwards: a copy, less the hop-by-hop fields, written out. */
    struct http_msg copy;
    http_msg_init(&copy);
    http_msg_copy(&copy, m);
    check_msg(&copy);
    FC_ASSERT(copy.n_fields <= m->n_fields);
    for (uint32_t i = 0; i < copy.n_fields; i++)
        if (http_is_hop_by_hop(&copy, &copy.fields[i]))
            copy.fields[i].dead = true;
    (void)http_msg_remove(&copy, "Via");
    struct evbuffer *out = evbuffer_new();
    AN(out);
    http_msg_write_fields(&copy, out);
    evbuffer_free(out);
    http_msg_free(&copy);
}

void fuzz_http_stream(const uint8_t *data, size_t size, llhttp_type_t type)
{
    if (size < 1)
        return;
    /* data[0]: bits 0-5 the chunk size (0: everything at once), bit 6 a
     * response to HEAD (responses only), bit 7 a smaller head limit. */
    size_t chunk = data[0] & 0x3f;
    bool head_request = type == HTTP_RESPONSE && (data[0] & 0x40);
    size_t max_head = (data[0] & 0x80) ? 256 : FUZZ_MAX_HEAD;
    data++;
    size--;
    if (chunk == 0)
        chunk = size ? size : 1;

    struct http_msg msg;
    struct http_parser p;
    struct sink sink = { 0, 0 };
    http_msg_init(&msg);
    http_parser_init(&p, type, &msg, max_head, on_body, &sink);
    p.no_body = head_request;
    struct evbuffer *in = evbuffer_new();
    AN(in);

    size_t off = 0;
    bool eof = false, stop = false;
    unsigned messages = 0;
    while (!stop) {
        enum http_parse_event ev = eof ? http_parser_eof(&p) : http_parser_feed(&p, in);
        switch (ev) {
        case HTTP_PARSE_HEAD:
            use_head(&p, &msg, type);
            continue;
        case HTTP_PARSE_DONE:
            check_msg(&msg);
            messages++;
            if (p.upgraded || eof || messages > 64) {
                stop = true;
                continue;
            }
            http_parser_next(&p);
            p.no_body = head_request;
            continue;
        case HTTP_PARSE_ERROR:
        case HTTP_PARSE_TOO_LARGE:
            FC_ASSERT(http_parser_error(&p) != NULL);
            stop = true;
            continue;
        case HTTP_PARSE_NEED_MORE:
            break;
        }
        if (eof)
            break;
        if (off == size) {
            eof = true;
            continue;
        }
        size_t n = size - off < chunk ? size - off : chunk;
        evbuffer_add(in, data + off, n);
        off += n;
    }
    evbuffer_free(in);
    http_msg_free(&msg);
}
