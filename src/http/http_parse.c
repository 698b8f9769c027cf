/*
 * http_parse.c — llhttp glue.  See include/freshcache/http_parse.h.
 *
 * llhttp may hand a field name or value in several pieces when it spans
 * buffer chunks; `last` tracks whether the next piece continues the current
 * name, the current value or starts a new field.
 */
#include <string.h>

#include <event2/buffer.h>

#include "freshcache/base/assert.h"
#include "freshcache/http/http_parse.h"

static struct http_parser *P(llhttp_t *ll) { return (struct http_parser *)ll->data; }

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

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = P(ll);
    struct http_msg *m = p->msg;
    if (head_account(p, len + 4))
        return HPE_USER;
    if (p->last != PS_FIELD) {
        http_msg_add(m, "", 0, "", 0);
        m->fields[m->n_fields - 1].name_off = m->len;
    }
    http_msg_append(m, at, len);
    m->fields[m->n_fields - 1].name_len += (uint32_t)len;
    p->last = PS_FIELD;
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = P(ll);
    struct http_msg *m = p->msg;
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
    http_msg_fields_done(m);
    p->head_done = true;
    /* 1 tells llhttp "no body" (a response to HEAD).  A message without a
     * body must not pause here: llhttp completes it only when executed
     * again, and no more bytes may ever come.  Either way feed() reports
     * the head before the end (head_reported / pending_done). */
    if (ll->type == HTTP_REQUEST && ll->upgrade) {
        /* Upgrade or CONNECT: known now, so the owner can refuse it when it
         * sees the head; nothing after it on the connection is parsed. */
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
    if (p->too_large)
        return "header section too large";
    if (p->upgraded)
        return "data after an upgrade request";
    const char *r = llhttp_get_error_reason(&p->ll);
    return r ? r : llhttp_errno_name(llhttp_get_errno(&p->ll));
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
