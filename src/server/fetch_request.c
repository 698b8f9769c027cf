/*
 * fetch_request.c — the request a fetch sends to the origin.
 *
 * The client's request line and fields, less what is hop-by-hop or the
 * cache's own business: a cacheable fetch asks for the whole response (the
 * cache answers the client's conditionals and ranges itself), adds the
 * stale copy's validators when revalidating, and names itself in Via,
 * X-Forwarded-For/-Proto and Surrogate-Capability.
 */
#include <string.h>

#include <event2/buffer.h>
#include <llhttp.h>

#include "freshcache/cache/cache_key.h"
#include "freshcache/cache/revalidate.h"
#include "freshcache/config/config.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/server/fetch.h"

#define ADD_LIT(buf, lit) evbuffer_add((buf), (lit), sizeof(lit) - 1)

/* Fields the cache answers itself on a cacheable fetch: the origin must
 * send the full response so it can be stored. */
static bool cache_owned_request_field(const char *n, size_t len)
{
    return http_token_eq(n, len, "If-None-Match") || http_token_eq(n, len, "If-Modified-Since") ||
           http_token_eq(n, len, "If-Match") || http_token_eq(n, len, "If-Unmodified-Since") ||
           http_token_eq(n, len, "If-Range") || http_token_eq(n, len, "Range");
}

/* Replaced by the fetch's own values below. */
static bool rewritten_field(const char *n, size_t nl)
{
    return http_token_eq(n, nl, "Host") || http_token_eq(n, nl, "Expect") ||
           http_token_eq(n, nl, "X-Forwarded-Proto") || http_token_eq(n, nl, "Content-Length");
}

void fetch_request_build(struct evbuffer *b, const struct fc_config *cfg,
                         const struct fetch_params *p, const struct http_msg *r)
{
    const char *method = llhttp_method_name((llhttp_method_t)r->method);
    if (p->kind != FETCH_PASS && r->method == HTTP_HEAD)
        method = "GET";   /* fetch the body too, so the object can be stored */
    size_t plen = r->url_len;
    const char *path = http_msg_url(r);
    if (p->key)
        path = cache_key_path(p->key, &plen);
    evbuffer_add_printf(b, "%s %.*s HTTP/1.1\r\n", method, (int)plen, path);

    size_t hl = 0;
    const char *host = http_msg_get(r, "Host", &hl);
    if (cfg->origin.host_header == HOST_HEADER_ORIGIN || host == NULL)
        evbuffer_add_printf(b, "Host: %s\r\n", cfg->origin.authority);
    else
        evbuffer_add_printf(b, "Host: %.*s\r\n", (int)hl, host);

    const char *via = NULL, *xff = NULL;
    size_t via_len = 0, xff_len = 0;
    for (uint32_t i = 0; i < r->n_fields; i++) {
        const struct http_field *fl = &r->fields[i];
        if (fl->dead || http_is_hop_by_hop(r, fl))
            continue;
        const char *n = http_field_name(r, fl);
        size_t nl = fl->name_len;
        if (rewritten_field(n, nl))
            continue;
        if (http_token_eq(n, nl, "Via")) {
            via = http_field_value(r, fl);
            via_len = fl->value_len;
            continue;
        }
        if (http_token_eq(n, nl, "X-Forwarded-For")) {
            xff = http_field_value(r, fl);
            xff_len = fl->value_len;
            continue;
        }
        if (p->kind != FETCH_PASS && cache_owned_request_field(n, nl))
            continue;
        evbuffer_add(b, n, nl);
        ADD_LIT(b, ": ");
        evbuffer_add(b, http_field_value(r, fl), fl->value_len);
        ADD_LIT(b, "\r\n");
    }
    if (via)
        evbuffer_add_printf(b, "Via: %.*s, 1.1 freshcache\r\n", (int)via_len, via);
    else
        ADD_LIT(b, "Via: 1.1 freshcache\r\n");
    if (xff)
        evbuffer_add_printf(b, "X-Forwarded-For: %.*s, %s\r\n", (int)xff_len, xff, p->client_addr);
    else
        evbuffer_add_printf(b, "X-Forwarded-For: %s\r\n", p->client_addr);
    evbuffer_add_printf(b, "X-Forwarded-Proto: %s\r\n", p->scheme ? p->scheme : "http");
    /* Edge Architecture 1.0: lets the origin aim Surrogate-Control
     * directives at us with ";freshcache" (http/cc_fields.h). */
    ADD_LIT(b, "Surrogate-Capability: freshcache=\"Surrogate/1.0\"\r\n");
    if (p->kind == FETCH_REVALIDATE && p->stale)
        revalidate_add_validators(b, p->stale);
    if (p->req_body) {
        if (p->req_content_length == UINT64_MAX)
            ADD_LIT(b, "Transfer-Encoding: chunked\r\n");
        else
            evbuffer_add_printf(b, "Content-Length: %llu\r\n",
                                (unsigned long long)p->req_content_length);
    }
    ADD_LIT(b, "\r\n");
}
