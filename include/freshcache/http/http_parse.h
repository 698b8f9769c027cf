/*
 * http_parse.h — llhttp driven over an evbuffer, filling a struct http_msg.
 *
 * Every HTTP/1.1 parse in freshcache goes through here, client side
 * (requests) and origin side (responses).  The parser pauses after each
 * message head and after each complete message so the owner can act (look
 * the request up, start a fetch, answer) before more bytes are consumed;
 * that is what answers pipelined requests in order.  Body bytes are handed
 * to the owner's callback as they are parsed, without copying.
 */
#ifndef FRESHCACHE_HTTP_PARSE_H
#define FRESHCACHE_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "freshcache/http/http_msg.h"

struct evbuffer;

enum http_parse_event {
    HTTP_PARSE_NEED_MORE = 0,   /* consumed everything available */
    HTTP_PARSE_HEAD,            /* a message head is complete (msg is filled) */
    HTTP_PARSE_DONE,            /* the message (head and body) is complete */
    HTTP_PARSE_ERROR,           /* malformed; see http_parser_error() */
    HTTP_PARSE_TOO_LARGE,       /* head exceeded max_head_bytes */
};

typedef void (*http_body_cb)(void *owner, const char *at, size_t len);

struct http_parser {
    llhttp_t ll;
    llhttp_settings_t settings;
    struct http_msg *msg;
    http_body_cb on_body;
    void *owner;
    size_t max_head_bytes;
    size_t head_bytes;
    enum { PS_START, PS_FIELD, PS_VALUE } last;
    bool head_done;
    bool msg_done;
    bool head_reported;         /* HTTP_PARSE_HEAD returned for this message */
    bool pending_done;          /* message also complete: next feed() says DONE */
    bool upgrade;               /* a CONNECT request (not tunnelled); Upgrade is ignored */
    bool upgraded;              /* such a message ended: nothing more is HTTP */
    bool no_body;               /* response to HEAD: set by the owner before parsing */
    bool too_large;
    uint64_t body_bytes;
    /* RFC 9112 rules llhttp does not enforce (see http_parse.c, "strict
     * framing"): a message broken by one fails with this reason, and a
     * request with fail_status (400, 501, 505; 0 means 400). */
    const char *fail_reason;
    int fail_status;
    uint8_t scan;               /* head line scanner state (obs-fold) */
    size_t trailer_bytes;       /* trailer section: parsed, bounded, dropped */
    size_t ext_bytes;           /* chunk extensions of the current chunk */
};

/* type: HTTP_REQUEST or HTTP_RESPONSE. */
void http_parser_init(struct http_parser *p, llhttp_type_t type, struct http_msg *msg,
                      size_t max_head_bytes, http_body_cb on_body, void *owner);
/* Prepare for the next message on the same connection. */
void http_parser_next(struct http_parser *p);

/* Parse from `in`, draining what is consumed, until an event.  After
 * HTTP_PARSE_HEAD and HTTP_PARSE_DONE call again to go on. */
enum http_parse_event http_parser_feed(struct http_parser *p, struct evbuffer *in);
/* The peer closed: completes a close-delimited body.  DONE or ERROR. */
enum http_parse_event http_parser_eof(struct http_parser *p);

const char *http_parser_error(const struct http_parser *p);
/* After HTTP_PARSE_ERROR on a request: the status to answer it with (400,
 * 501 for a transfer coding we do not implement, 505 for an HTTP version
 * other than 1.x). */
int http_parser_error_status(const struct http_parser *p);
bool http_parser_keep_alive(const struct http_parser *p);
/* Does the current message have a body to read (Content-Length > 0, chunked,
 * or a close-delimited response)? Valid after HTTP_PARSE_HEAD. */
bool http_parser_has_body(const struct http_parser *p);
/* Content-Length of the current message, or UINT64_MAX if not given. */
uint64_t http_parser_content_length(const struct http_parser *p);

#endif
