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
#include "freshcache/base/decimal.h"
#include "freshcache/cache/cache_key.h"
#include "freshcache/config/cidr.h"
#include "freshcache/cache/revalidate.h"
#include "freshcache/config/config.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/server/fetch.h"

/* The request is assembled here and handed to the evbuffer in one
 * evbuffer_add (or a few, for a request larger than the buffer): the
 * fields went in one evbuffer_add or evbuffer_add_printf each, ~30 calls a
 * request, and with the printf formatting that was ~10 k instructions of
 * the ~62 k a revalidated HTML request cost (callgrind,
 * docs/performance.md). */
struct reqbuf {
    struct evbuffer *out;
    size_t len;
    char buf[4096];
};

static void rb_flush(struct reqbuf *w)
{
    if (w->len) {
        evbuffer_add(w->out, w->buf, w->len);
        w->len = 0;
    }
}

static inline void rb_add(struct reqbuf *w, const void *p, size_t n)
{
    if (n > sizeof w->buf - w->len) {
        rb_flush(w);
        if (n > sizeof w->buf) {
            evbuffer_add(w->out, p, n);
            return;
        }
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void rb_str(struct reqbuf *w, const char *s)
{
    rb_add(w, s, strlen(s));
}

static void rb_u64(struct reqbuf *w, uint64_t v)
{
    char d[DECIMAL_U64_MAX];
    rb_add(w, d, decimal_u64(d, v));
}

#define RB_LIT(w, lit) rb_add((w), (lit), sizeof(lit) - 1)

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

/* The fields named `name` a request passes on (not dead, not hop-by-hop). */
static bool forwarded_field_is(const struct http_msg *r, const struct http_field *fl,
                               const char *name)
{
    return !fl->dead && !http_is_hop_by_hop(r, fl) &&
           http_token_eq(http_field_name(r, fl), fl->name_len, name);
}

static bool has_fields(const struct http_msg *r, const char *name)
{
    for (uint32_t i = 0; i < r->n_fields; i++)
        if (forwarded_field_is(r, &r->fields[i], name))
            return true;
    return false;
}

/* Values of the fields named `name`, joined with ", " in the order they
 * came (RFC 9110 §5.3), into `out`; false when there is none. */
static bool join_fields(const struct http_msg *r, const char *name, struct reqbuf *out)
{
    bool any = false;
    for (uint32_t i = 0; i < r->n_fields; i++) {
        const struct http_field *fl = &r->fields[i];
        if (!forwarded_field_is(r, fl, name))
            continue;
        if (any)
            RB_LIT(out, ", ");
        rb_add(out, http_field_value(r, fl), fl->value_len);
        any = true;
    }
    return any;
}

/* Via, X-Forwarded-For, X-Forwarded-Proto and, in host_header: origin
 * mode, X-Forwarded-Host: the hops so far plus this one. */
static void add_forwarding(struct reqbuf *b, const struct fc_config *cfg,
                           const struct fetch_params *p, const struct http_msg *r, bool trusted)
{
    /* Via is informational (RFC 9110 §7.6.3), never a source of URLs:
     * every client's hops are kept. */
    RB_LIT(b, "Via: ");
    if (join_fields(r, "Via", b))
        RB_LIT(b, ", ");
    RB_LIT(b, "1.1 freshcache\r\n");
    /* X-Forwarded-For: a trusted proxy's chain, else only the peer. */
    RB_LIT(b, "X-Forwarded-For: ");
    if (trusted && join_fields(r, "X-Forwarded-For", b))
        RB_LIT(b, ", ");
    rb_str(b, p->client_addr);
    RB_LIT(b, "\r\n");
    /* Forwarded (RFC 7239) only passes from a trusted proxy; it gains our
     * hop then, as X-Forwarded-For does. */
    if (trusted && has_fields(r, "Forwarded")) {
        bool v6 = strchr(p->client_addr, ':') != NULL;
        RB_LIT(b, "Forwarded: ");
        join_fields(r, "Forwarded", b);
        if (v6)
            RB_LIT(b, ", for=\"[");
        else
            RB_LIT(b, ", for=");
        rb_str(b, p->client_addr);
        if (v6)
            RB_LIT(b, "]\"");
        RB_LIT(b, "\r\n");
    }
    /* The scheme the request arrived with, unless a trusted proxy in
     * front of us (one terminating TLS) says what it arrived with there. */
    RB_LIT(b, "X-Forwarded-Proto: ");
    if (!(trusted && join_fields(r, "X-Forwarded-Proto", b)))
        rb_str(b, p->scheme ? p->scheme : "http");
    RB_LIT(b, "\r\n");
    /* host_header: origin sends the origin's name as Host; the one the
     * client asked for (part of the cache key) goes here. */
    size_t hl = 0;
    const char *host = http_msg_get(r, "Host", &hl);
    if (cfg->origin.host_header == HOST_HEADER_ORIGIN && host &&
        !(trusted && http_msg_has(r, "X-Forwarded-Host"))) {
        RB_LIT(b, "X-Forwarded-Host: ");
        rb_add(b, host, hl);
        RB_LIT(b, "\r\n");
    }
}

void fetch_request_build(struct evbuffer *out, const struct fc_config *cfg,
                         const struct fetch_params *p, const struct http_msg *r)
{
    struct reqbuf w = { .out = out, .len = 0 }, *b = &w;
    const char *method = llhttp_method_name((llhttp_method_t)r->method);
    if (p->kind != FETCH_PASS && r->method == HTTP_HEAD)
        method = "GET";   /* fetch the body too, so the object can be stored */
    size_t plen = r->url_len;
    const char *path = http_msg_url(r);
    if (p->key)
        path = cache_key_path(p->key, &plen);
    rb_str(b, method);
    RB_LIT(b, " ");
    rb_add(b, path, plen);
    RB_LIT(b, " HTTP/1.1\r\nHost: ");

    size_t hl = 0;
    const char *host = http_msg_get(r, "Host", &hl);
    if (cfg->origin.host_header == HOST_HEADER_ORIGIN || host == NULL)
        rb_str(b, cfg->origin.authority);
    else
        rb_add(b, host, hl);
    RB_LIT(b, "\r\n");

    /* (no list, the default: no address to parse per request) */
    bool trusted = p->client_addr && cfg->n_trusted_proxies > 0 &&
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
        rb_add(b, n, nl);
        RB_LIT(b, ": ");
        rb_add(b, http_field_value(r, fl), fl->value_len);
        RB_LIT(b, "\r\n");
    }
    add_forwarding(b, cfg, p, r, trusted);
    /* Edge Architecture 1.0: lets the origin aim Surrogate-Control
     * directives at us with ";freshcache" (http/cc_fields.h). */
    RB_LIT(b, "Surrogate-Capability: freshcache=\"Surrogate/1.0\"\r\n");
    if (p->kind == FETCH_REVALIDATE && p->stale) {
        struct revalidate_fields v;
        revalidate_fields(p->stale, &v);
        if (v.etag) {
            RB_LIT(b, "If-None-Match: ");
            rb_add(b, v.etag, v.etag_len);
            RB_LIT(b, "\r\n");
        }
        if (v.ims_len) {
            rb_add(b, v.ims, v.ims_len);
            RB_LIT(b, "\r\n");
        }
    }
    if (p->req_body) {
        if (p->req_content_length == UINT64_MAX) {
            RB_LIT(b, "Transfer-Encoding: chunked\r\n");
        } else {
            RB_LIT(b, "Content-Length: ");
            rb_u64(b, p->req_content_length);
            RB_LIT(b, "\r\n");
        }
    }
    RB_LIT(b, "\r\n");
    rb_flush(b);
}
