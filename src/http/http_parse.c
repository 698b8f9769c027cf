/*
 * http_parse.c — llhttp glue.  See include/freshcache/http_parse.h.
 *
 * llhttp may hand a field name or value in several pieces when it spans
 * buffer chunks; `last` tracks whether the next piece continues the current
 * name, the current value or starts a new field.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "freshcache/base/assert.h"
#include "freshcache/http/http_parse.h"

static struct http_parser *P(llhttp_t *ll) { return (struct http_parser *)ll->data; }

/* Chunk extensions are parsed and ignored (RFC 9112 §7.1.1); this bounds
 * what one chunk may carry, so they cannot stand in for a body that is
 * never counted. */
#define CHUNK_EXT_MAX 4096
/* Trailer fields are parsed and dropped (never stored, never forwarded):
 * bounded like a head, or by this when the owner sets no head bound. */
#define TRAILER_MAX (64 * 1024)

/* Head line scanner: llhttp 8 takes an obs-fold (a field line continued
 * on the next line by leading whitespace) as part of the value, and RFC
 * 9112 §5.2 lets a server refuse it with 400 (a proxy answers a folded
 * response with 502).  llhttp's callbacks cannot tell a fold from a value
 * split across reads, so the head's bytes are scanned here before llhttp
 * sees them.  The same rule refuses whitespace between the start line and
 * the first field (§2.2). */
enum {
    SCAN_START = 0,     /* before the start line (empty lines allowed) */
    SCAN_START_LINE,    /* inside the start line */
    SCAN_LINE,          /* inside a field line */
    SCAN_BOL,           /* at the start of a line after the start line */
    SCAN_BOL_CR,        /* a CR there: the head is ending */
    SCAN_DONE,          /* the head is over: body bytes are not scanned */
};

static int head_account(struct http_parser *p, size_t len)
{
    p->head_bytes += len;
    if (p->max_head_bytes && p->head_bytes > p->max_head_bytes) {
        p->too_large = true;
        return HPE_USER;
    }
    return 0;
}

static int on_message_begin(llhttp_t *ll)
{
    struct http_parser *p = P(ll);
    http_msg_reset(p->msg);
    p->head_bytes = 0;
    p->last = PS_START;
    p->head_done = false;
    p->msg_done = false;
    p->head_reported = false;
    p->pending_done = false;
    p->upgrade = false;
    p->body_bytes = 0;
    p->trailer_bytes = 0;
    p->ext_bytes = 0;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = P(ll);
    if (head_account(p, len))
        return HPE_USER;
    uint32_t off = http_msg_append(p->msg, at, len);
    if (p->msg->url_len == 0)
        p->msg->url_off = off;
    p->msg->url_len += (uint32_t)len;
    return 0;
}

static int on_status(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = P(ll);
    if (head_account(p, len))
        return HPE_USER;
    uint32_t off = http_msg_append(p->msg, at, len);
    if (p->msg->reason_len == 0)
        p->msg->reason_off = off;
    p->msg->reason_len += (uint32_t)len;
    return 0;
}

/* Trailer fields arrive through the same callbacks after the head: the
 * head (which the owner is using) is never touched again; they are
 * counted and dropped. */
static int trailer_account(struct http_parser *p, size_t len)
{
    p->trailer_bytes += len;
    size_t max = p->max_head_bytes ? p->max_head_bytes : TRAILER_MAX;
    if (p->trailer_bytes > max) {
        p->fail_reason = "trailer section too large";
        return -1;
    }
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = P(ll);
    struct http_msg *m = p->msg;
    if (p->head_done)
        return trailer_account(p, len + 4);
    if (head_account(p, len + 4))
        return HPE_USER;
    if (p->last != PS_FIELD)
        http_msg_field_new(m);
    http_msg_append(m, at, len);
    m->fields[m->n_fields - 1].name_len += (uint32_t)len;
    p->last = PS_FIELD;
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = P(ll);
    struct http_msg *m = p->msg;
    if (p->head_done)
        return trailer_account(p, len);
    if (head_account(p, len))
        return HPE_USER;
    FC_ASSERT(m->n_fields > 0);
    struct http_field *f = &m->fields[m->n_fields - 1];
    if (p->last != PS_VALUE)
        f->value_off = m->len;
    http_msg_append(m, at, len);
    m->fields[m->n_fields - 1].value_len += (uint32_t)len;
    p->last = PS_VALUE;
    return 0;
}

/* Will body bytes follow this head?  (Called from on_headers_complete.) */
static bool message_has_body(const llhttp_t *ll)
{
    /* RFC 9112 §6.3: 1xx, 204 and 304 responses never have a body, whatever
     * Content-Length or Transfer-Encoding say (a 304 may carry the length
     * of the representation it validates). */
    if (ll->type == HTTP_RESPONSE &&
        ((ll->status_code >= 100 && ll->status_code < 200) || ll->status_code == 204 ||
         ll->status_code == 304))
        return false;
    if (ll->flags & F_CHUNKED)
        return true;
    if (ll->flags & F_CONTENT_LENGTH)
        return ll->content_length > 0;
    if (ll->type == HTTP_RESPONSE) {
        int s = ll->status_code;
        return !((s >= 100 && s < 200) || s == 204 || s == 304);   /* close-delimited */
    }
    return false;
}


/* ---- strict framing (RFC 9112) ------------------------------------------
 *
 * llhttp 8 (no lenient flag is ever set) already refuses a repeated
 * Content-Length, identical or not (we choose refusal over collapsing
 * "5" and "5": a peer that repeats it is one whose framing we should not
 * guess at), a Content-Length list, Content-Length with Transfer-Encoding,
 * "chunked" twice, a request whose last coding is not chunked, bad chunk
 * sizes, control characters in values and a space after the start line.
 * What it lets through is refused here, for client requests and origin
 * responses alike (an owner answers a bad request with
 * http_parser_error_status(), a bad response with 502). */

static int strict_fail(struct http_parser *p, int status, const char *why)
{
    p->fail_status = status;
    p->fail_reason = why;
    return -1;
}

/* tchar (RFC 9110 §5.6.2): a field name is a token, nothing else; in
 * particular no whitespace before the colon (RFC 9112 §5.1). */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    /* a switch, not strchr: every '-' of every field name comes here */
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

static bool is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

/* Transfer-Encoding (RFC 9112 §6.1, §6.3): only "chunked", once, last;
 * never in an HTTP/1.0 message. */
static int check_transfer_encoding(struct http_parser *p, const struct http_msg *m)
{
    if (!http_msg_has(m, "Transfer-Encoding"))
        return 0;
    if (m->http_minor == 0)
        return strict_fail(p, 400, "Transfer-Encoding in an HTTP/1.0 message");
    unsigned chunked = 0, others = 0;
    bool chunked_last = false;
    uint32_t it = 0;
    const struct http_field *f;
    while ((f = http_msg_next(m, "Transfer-Encoding", &it)) != NULL) {
        const char *v = http_field_value(m, f), *end = v + f->value_len, *e;
        size_t el;
        while (http_list_next(&v, end, &e, &el)) {
            const char *semi = memchr(e, ';', el);
            size_t tl = semi ? (size_t)(semi - e) : el;
            while (tl > 0 && (e[tl - 1] == ' ' || e[tl - 1] == '\t'))
                tl--;
            chunked_last = http_token_eq(e, tl, "chunked");
            if (chunked_last)
                chunked++;
            else
                others++;
        }
    }
    if (chunked + others == 0)
        return strict_fail(p, 400, "empty Transfer-Encoding");
    if (!chunked_last)
        return strict_fail(p, 400, "Transfer-Encoding does not end with chunked");
    if (chunked > 1)
        return strict_fail(p, 400, "chunked applied more than once");
    if (others > 0)
        return strict_fail(p, 501, "transfer coding not implemented");
    return 0;
}

/* Absolute-form (RFC 9112 §3.2.2): the target's authority is the host;
 * any Host field is replaced by it, so the cache key, the origin's Host
 * and every later look at the request agree. */
static int take_absolute_authority(struct http_parser *p, struct http_msg *m)
{
    const char *t = http_msg_url(m);
    size_t skip = (t[4] == 's' || t[4] == 'S') ? 8 : 7;
    const char *auth = t + skip, *end = t + m->url_len, *a = auth;
    while (a < end && *a != '/' && *a != '?' && *a != '#')
        a++;
    size_t alen = (size_t)(a - auth);
    if (alen == 0)
        return strict_fail(p, 400, "absolute-form target without a host");
    if (memchr(auth, '@', alen))
        return strict_fail(p, 400, "userinfo in the request target");
    char *copy = malloc(alen);     /* http_msg_add may move m->buf */
    AN(copy);
    memcpy(copy, auth, alen);
    http_msg_remove(m, "Host");
    http_msg_add(m, "Host", 4, copy, alen);
    free(copy);
    return 0;
}

static bool starts_with_ci(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && strncasecmp(s, prefix, n) == 0;
}

/* Host (RFC 9110 §7.2): uri-host [ ":" port ], nothing else. */
static bool host_value_ok(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              strchr("-._~%!$&'()*+,;=:[]", c)) || c == 0)
            return false;
    }
    return true;
}

static int check_request(struct http_parser *p, struct http_msg *m)
{
    /* RFC 9112 §2.3/§2.5: 1.0 and 1.1 are what this parser speaks; 0.9,
     * 2.0 and others in an HTTP/1 request line get 505. */
    if (m->http_major != 1)
        return strict_fail(p, 505, "HTTP version not supported");
    unsigned hosts = 0;
    uint32_t it = 0;
    const struct http_field *f;
    while ((f = http_msg_next(m, "Host", &it)) != NULL) {
        if (++hosts > 1)
            return strict_fail(p, 400, "more than one Host field");
        if (!host_value_ok(http_field_value(m, f), f->value_len))
            return strict_fail(p, 400, "invalid Host");
    }
    if (check_transfer_encoding(p, m) != 0)
        return -1;
    /* The four request-target forms (RFC 9112 §3.2). */
    const char *t = http_msg_url(m);
    size_t tl = m->url_len;
    if (m->method == HTTP_CONNECT)
        return 0;   /* authority-form: the front end refuses CONNECT itself */
    if (tl == 1 && t[0] == '*')
        return m->method == HTTP_OPTIONS ? 0
                                         : strict_fail(p, 400, "asterisk-form outside OPTIONS");
    if (tl > 0 && t[0] == '/')
        return 0;
    if (starts_with_ci(t, tl, "http://") || starts_with_ci(t, tl, "https://"))
        return take_absolute_authority(p, m);
    return strict_fail(p, 400, "invalid request-target");
}

static int check_response(struct http_parser *p, const struct http_msg *m)
{
    if (m->http_major != 1)
        return strict_fail(p, 0, "response in an HTTP version other than 1.x");
    int s = m->status;
    /* RFC 9110 §15: a status code is 100-599; llhttp takes any number
     * from 0 to 999 ("HTTP/1.1 0 X"), which would be relayed and stored. */
    if (s < 100 || s > 599)
        return strict_fail(p, 0, "invalid status code");
    if ((s >= 100 && s < 200) || s == 204 || s == 304)
        return 0;   /* no body whatever the framing fields say */
    return check_transfer_encoding(p, m);
}

static int check_message(struct http_parser *p, llhttp_t *ll)
{
    struct http_msg *m = p->msg;
    for (uint32_t i = 0; i < m->n_fields; i++)
        if (!is_token(http_field_name(m, &m->fields[i]), m->fields[i].name_len))
            return strict_fail(p, 400, "invalid field name");
    return ll->type == HTTP_REQUEST ? check_request(p, m) : check_response(p, m);
}

static int on_chunk_header(llhttp_t *ll)
{
    P(ll)->ext_bytes = 0;
    return 0;
}

static int on_chunk_ext(llhttp_t *ll, const char *at, size_t len)
{
    (void)at;
    struct http_parser *p = P(ll);
    p->ext_bytes += len;
    if (p->ext_bytes > CHUNK_EXT_MAX)
        return strict_fail(p, 400, "chunk extensions too long");
    return 0;
}

/* Scan head bytes for an obs-fold (see SCAN_*).  False: one was found.
 * Only line starts matter: inside a line memchr skips to its end (the
 * per-byte loop this replaced cost ~10 instructions a byte of every head,
 * callgrind, docs/performance.md). */
static bool scan_head(struct http_parser *p, const char *s, size_t n)
{
    const char *q = s, *end = s + n;
    while (q < end && p->scan != SCAN_DONE) {
        char c = *q;
        switch (p->scan) {
        case SCAN_START:
            if (c != '\r' && c != '\n')
                p->scan = SCAN_START_LINE;
            break;
        case SCAN_START_LINE:
        case SCAN_LINE: {
            const char *nl = memchr(q, '\n', (size_t)(end - q));
            if (nl == NULL)
                return true;
            q = nl;
            p->scan = SCAN_BOL;
            break;
        }
        case SCAN_BOL:
            if (c == ' ' || c == '\t')
                return false;
            p->scan = c == '\r' ? SCAN_BOL_CR : c == '\n' ? SCAN_DONE : SCAN_LINE;
            break;
        case SCAN_BOL_CR:
            p->scan = c == '\n' ? SCAN_DONE : SCAN_LINE;
            break;
        }
        q++;
    }
    return true;
}

static int on_headers_complete(llhttp_t *ll)
{
    struct http_parser *p = P(ll);
    struct http_msg *m = p->msg;
    m->http_major = ll->http_major;
    m->http_minor = ll->http_minor;
    if (ll->type == HTTP_REQUEST)
        m->method = ll->method;
    else
        m->status = ll->status_code;
    /* Trailing whitespace of values is not part of them (RFC 9110 §5.5). */
    for (uint32_t i = 0; i < m->n_fields; i++) {
        struct http_field *f = &m->fields[i];
        while (f->value_len > 0 &&
               (m->buf[f->value_off + f->value_len - 1] == ' ' ||
                m->buf[f->value_off + f->value_len - 1] == '\t'))
            f->value_len--;
    }
    if (check_message(p, ll) != 0)
        return -1;
    http_msg_fields_done(m);
    p->head_done = true;
    /* 1 tells llhttp "no body" (a response to HEAD).  A message without a
     * body must not pause here: llhttp completes it only when executed
     * again, and no more bytes may ever come.  Either way feed() reports
     * the head before the end (head_reported / pending_done). */
    if (ll->type == HTTP_REQUEST && ll->upgrade && ll->method != HTTP_CONNECT) {
        /* Upgrade (h2c, websocket...): we switch to nothing, so we ignore
         * it (RFC 9110 §7.8 lets a server; RFC 9113 §3.1 deprecates h2c's)
         * and serve the request as the HTTP/1.1 it also is, body and
         * keep-alive included, as nginx does.  llhttp decides on its
         * upgrade flag after this callback: cleared, the message goes on
         * as any other.  Upgrade and what Connection names are hop-by-hop:
         * never forwarded. */
        ll->upgrade = 0;
    }
    if (ll->type == HTTP_REQUEST && ll->upgrade) {
        /* CONNECT: known now, so the owner can refuse it when it sees the
         * head; nothing after it on the connection is parsed. */
        p->upgrade = true;
        return HPE_PAUSED;
    }
    if (p->no_body || (ll->type == HTTP_RESPONSE && !message_has_body(ll)))
        return 1;   /* llhttp: "no body", the message completes here */
    return message_has_body(ll) ? HPE_PAUSED : 0;
}

static int on_body_cb(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = P(ll);
    p->body_bytes += len;
    if (p->on_body)
        p->on_body(p->owner, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    struct http_parser *p = P(ll);
    p->msg_done = true;
    p->scan = SCAN_START;   /* the next message's head is scanned afresh */
    return HPE_PAUSED;
}

void http_parser_init(struct http_parser *p, llhttp_type_t type, struct http_msg *msg,
                      size_t max_head_bytes, http_body_cb on_body, void *owner)
{
    memset(p, 0, sizeof *p);
    llhttp_settings_init(&p->settings);
    p->settings.on_message_begin = on_message_begin;
    p->settings.on_url = on_url;
    p->settings.on_status = on_status;
    p->settings.on_header_field = on_header_field;
    p->settings.on_header_value = on_header_value;
    p->settings.on_headers_complete = on_headers_complete;
    p->settings.on_body = on_body_cb;
    p->settings.on_message_complete = on_message_complete;
    p->settings.on_chunk_header = on_chunk_header;
    p->settings.on_chunk_extension_name = on_chunk_ext;
    p->settings.on_chunk_extension_value = on_chunk_ext;
    llhttp_init(&p->ll, type, &p->settings);
    p->ll.data = p;
    p->msg = msg;
    p->max_head_bytes = max_head_bytes;
    p->on_body = on_body;
    p->owner = owner;
}

void http_parser_next(struct http_parser *p)
{
    p->head_done = false;
    p->msg_done = false;
    p->head_reported = false;
    p->pending_done = false;
    p->no_body = false;
}

/* Translate where llhttp stopped into an event. */
static enum http_parse_event classify(struct http_parser *p, llhttp_errno_t err)
{
    if (err == HPE_OK)
        return HTTP_PARSE_NEED_MORE;
    if (err == HPE_PAUSED) {
        llhttp_resume(&p->ll);
        if (!p->head_reported) {
            p->head_reported = true;
            p->pending_done = p->msg_done;
            return HTTP_PARSE_HEAD;
        }
        if (p->upgrade)
            p->upgraded = true;
        return HTTP_PARSE_DONE;
    }
    if (err == HPE_PAUSED_UPGRADE) {
        /* We do not tunnel upgrades: treat the message as complete and let
         * the owner answer it; the connection then closes. */
        p->msg_done = true;
        p->upgrade = true;
        if (!p->head_reported) {
            p->head_reported = true;
            p->pending_done = true;
            return HTTP_PARSE_HEAD;
        }
        return HTTP_PARSE_DONE;
    }
    if (p->too_large)
        return HTTP_PARSE_TOO_LARGE;
    return HTTP_PARSE_ERROR;
}

enum http_parse_event http_parser_feed(struct http_parser *p, struct evbuffer *in)
{
    if (p->pending_done) {
        p->pending_done = false;
        if (p->upgrade)
            p->upgraded = true;
        return HTTP_PARSE_DONE;
    }
    /* After an Upgrade/CONNECT request the bytes are another protocol. */
    if (p->upgraded)
        return HTTP_PARSE_ERROR;
    if (p->fail_reason)
        return HTTP_PARSE_ERROR;
    if (llhttp_get_errno(&p->ll) != HPE_OK && llhttp_get_errno(&p->ll) != HPE_PAUSED)
        return p->too_large ? HTTP_PARSE_TOO_LARGE : HTTP_PARSE_ERROR;

    struct evbuffer_iovec vec[16];
    for (;;) {
        if (evbuffer_get_length(in) == 0)
            return HTTP_PARSE_NEED_MORE;
        int n = evbuffer_peek(in, -1, NULL, vec, (int)FC_ARRAY_LEN(vec));
        if (n <= 0)
            return HTTP_PARSE_NEED_MORE;
        if (n > (int)FC_ARRAY_LEN(vec))
            n = (int)FC_ARRAY_LEN(vec);
        size_t consumed = 0;
        for (int i = 0; i < n; i++) {
            /* llhttp loops forever on zero bytes in some body states, and
             * an evbuffer may hold an empty chain: skip those. */
            if (vec[i].iov_len == 0)
                continue;
            const char *base = vec[i].iov_base;
            if (!scan_head(p, base, vec[i].iov_len)) {
                evbuffer_drain(in, consumed);
                strict_fail(p, 400, "obs-fold (a field line continued on the next line)");
                return HTTP_PARSE_ERROR;
            }
            llhttp_errno_t err = llhttp_execute(&p->ll, base, vec[i].iov_len);
            if (err == HPE_OK) {
                consumed += vec[i].iov_len;
                continue;
            }
            if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
                consumed += (size_t)(llhttp_get_error_pos(&p->ll) - base);
            evbuffer_drain(in, consumed);
            return classify(p, err);
        }
        evbuffer_drain(in, consumed);
    }
}

enum http_parse_event http_parser_eof(struct http_parser *p)
{
    if (p->msg_done)
        return HTTP_PARSE_DONE;
    llhttp_errno_t err = llhttp_finish(&p->ll);
    if (err == HPE_OK || err == HPE_PAUSED) {
        if (err == HPE_PAUSED)
            llhttp_resume(&p->ll);
        return p->msg_done ? HTTP_PARSE_DONE : HTTP_PARSE_ERROR;
    }
    return HTTP_PARSE_ERROR;
}

const char *http_parser_error(const struct http_parser *p)
{
    if (p->fail_reason)
        return p->fail_reason;
    if (p->too_large)
        return "header section too large";
    if (p->upgraded)
        return "data after an upgrade request";
    const char *r = llhttp_get_error_reason(&p->ll);
    return r ? r : llhttp_errno_name(llhttp_get_errno(&p->ll));
}

int http_parser_error_status(const struct http_parser *p)
{
    if (p->fail_reason)
        return p->fail_status ? p->fail_status : 400;
    if (llhttp_get_errno(&p->ll) == HPE_INVALID_VERSION)
        return 505;
    return 400;
}

bool http_parser_keep_alive(const struct http_parser *p)
{
    return llhttp_should_keep_alive(&p->ll) != 0;
}

bool http_parser_has_body(const struct http_parser *p)
{
    if (p->no_body || p->upgrade)
        return false;
    const llhttp_t *ll = &p->ll;
    if (ll->type == HTTP_RESPONSE && !message_has_body(ll))
        return false;
    if (ll->flags & F_CHUNKED)
        return true;
    if (ll->flags & F_CONTENT_LENGTH)
        return ll->content_length > 0 || p->body_bytes > 0;
    if (ll->type == HTTP_RESPONSE) {
        int s = ll->status_code;
        if ((s >= 100 && s < 200) || s == 204 || s == 304)
            return false;
        return true;   /* close-delimited */
    }
    return false;
}

uint64_t http_parser_content_length(const struct http_parser *p)
{
    if ((p->ll.flags & F_CONTENT_LENGTH) && !(p->ll.flags & F_CHUNKED))
        return p->ll.content_length + p->body_bytes;
    return UINT64_MAX;
}
