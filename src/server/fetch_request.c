/*
 * fetch_request.c — the request a fetch sends to the origin.
 *
 * The client's request line and fields, less what is hop-by-hop or the
 * cache's own business: a cacheable fetch asks for the whole response (the
 * cache answers the client's conditionals and ranges itself), adds the
 * stale copy's validators when revalidating, and names itself in Via,
 * X-Forwarded-For/-Proto and Surrogate-Capability.
 *
 * Forwarding fields are not part of the cache key, so whatever an origin
 * builds from them (absolute URLs, redirects, the scheme) is stored for
 * everyone: a client could poison the cache with one request.  Unless the
 * peer is in trusted_proxies, the client's forwarding fields are dropped
 * and the true values sent instead (docs/security.md lists what reaches the
 * origin).  From a trusted proxy they are what that proxy saw, and pass,
 * X-Forwarded-For gaining the proxy's address.
 */
#include <string.h>

#include <event2/buffer.h>
#include <llhttp.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_key.h"
#include "freshcache/config/cidr.h"
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
           http_token_eq(n, nl, "Content-Length");
}

/* What a client says about the path its request took, or about the
 * request it "really" made: frameworks build URLs, redirects and routes
 * from these (Rails/Rack, Django, Symfony, Spring, IIS).  Only a trusted
 * proxy may send them.  X-Forwarded-For and X-Forwarded-Proto are
 * handled on their own: they always reach the origin, with true values. */
static const char *const forwarding_fields[] = {
    "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Prefix",
    "X-Forwarded-Scheme", "X-Forwarded-Ssl", "Front-End-Https", "Forwarded", "X-Original-URL",
    "X-Rewrite-URL", "X-Original-Host", "X-Host", "X-Real-IP",
};

static bool forwarding_field(const char *n, size_t nl)
{
    for (size_t i = 0; i < FC_ARRAY_LEN(forwarding_fields); i++)
        if (http_token_eq(n, nl, forwarding_fields[i]))
            return true;
    return false;
}

/* Values of the fields named `name`, joined with ", " in the order they
 * came (RFC 9110 §5.3), into `out`; false when there is none. */
static bool join_fields(const struct http_msg *r, const char *name, struct evbuffer *out)
{
    bool any = false;
    for (uint32_t i = 0; i < r->n_fields; i++) {
        const struct http_field *fl = &r->fields[i];
        if (fl->dead || http_is_hop_by_hop(r, fl) ||
            !http_token_eq(http_field_name(r, fl), fl->name_len, name))
            continue;
        if (any)
            ADD_LIT(out, ", ");
        evbuffer_add(out, http_field_value(r, fl), fl->value_len);
        any = true;
    }
    return any;
}

/* Via, X-Forwarded-For, X-Forwarded-Proto and, in host_header: origin
 * mode, X-Forwarded-Host: the hops so far plus this one. */
static void add_forwarding(struct evbuffer *b, const struct fc_config *cfg,
                           const struct fetch_params *p, const struct http_msg *r, bool trusted)
{
    struct evbuffer *v = evbuffer_new();
    AN(v);
    /* Via is informational (RFC 9110 §7.6.3), never a source of URLs:
     * every client's hops are kept. */
    if (join_fields(r, "Via", v))
        ADD_LIT(v, ", ");
    ADD_LIT(b, "Via: ");
    evbuffer_add_buffer(b, v);
    ADD_LIT(b, "1.1 freshcache\r\n");
    /* X-Forwarded-For: a trusted proxy's chain, else only the peer. */
    if (trusted && join_fields(r, "X-Forwarded-For", v))
        ADD_LIT(v, ", ");
    ADD_LIT(b, "X-Forwarded-For: ");
    evbuffer_add_buffer(b, v);
    evbuffer_add_printf(b, "%s\r\n", p->client_addr);
    /* Forwarded (RFC 7239) only passes from a trusted proxy; it gains our
     * hop then, as X-Forwarded-For does. */
    if (trusted && join_fields(r, "Forwarded", v)) {
        bool v6 = strchr(p->client_addr, ':') != NULL;
        ADD_LIT(b, "Forwarded: ");
        evbuffer_add_buffer(b, v);
        evbuffer_add_printf(b, v6 ? ", for=\"[%s]\"\r\n" : ", for=%s\r\n", p->client_addr);
    }
    /* The scheme the request arrived with, unless a trusted proxy in
     * front of us (one terminating TLS) says what it arrived with there. */
    ADD_LIT(b, "X-Forwarded-Proto: ");
    if (!(trusted && join_fields(r, "X-Forwarded-Proto", v)))
        evbuffer_add_printf(v, "%s", p->scheme ? p->scheme : "http");
    evbuffer_add_buffer(b, v);
    ADD_LIT(b, "\r\n");
    /* host_header: origin sends the origin's name as Host; the one the
     * client asked for (part of the cache key) goes here. */
    size_t hl = 0;
    const char *host = http_msg_get(r, "Host", &hl);
    if (cfg->origin.host_header == HOST_HEADER_ORIGIN && host &&
        !(trusted && http_msg_has(r, "X-Forwarded-Host")))
        evbuffer_add_printf(b, "X-Forwarded-Host: %.*s\r\n", (int)hl, host);
    evbuffer_free(v);
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

    bool trusted = p->client_addr &&
                   cidr_list_contains(cfg->trusted_proxies, cfg->n_trusted_proxies, p->client_addr);
    for (uint32_t i = 0; i < r->n_fields; i++) {
        const struct http_field *fl = &r->fields[i];
        if (fl->dead || http_is_hop_by_hop(r, fl))
            continue;
        const char *n = http_field_name(r, fl);
        size_t nl = fl->name_len;
        if (rewritten_field(n, nl))
            continue;
        /* added by add_forwarding, from what is true */
        if (http_token_eq(n, nl, "Via") || http_token_eq(n, nl, "X-Forwarded-For") ||
            http_token_eq(n, nl, "X-Forwarded-Proto") || http_token_eq(n, nl, "Forwarded"))
            continue;
        if (!trusted && forwarding_field(n, nl))
            continue;
        if (p->kind != FETCH_PASS && cache_owned_request_field(n, nl))
            continue;
        evbuffer_add(b, n, nl);
        ADD_LIT(b, ": ");
        evbuffer_add(b, http_field_value(r, fl), fl->value_len);
        ADD_LIT(b, "\r\n");
    }
    add_forwarding(b, cfg, p, r, trusted);
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
