/*
 * answer.h — proxyctl's reading of the daemon's answer, from bytes: the
 * HTTP/1.1 response through the project's llhttp glue (http_parse.h), its
 * body collected and read as JSON, and whether it reports a failure.  No
 * socket here: admin_request() (proxyctl.c) feeds what it receives, and
 * tests/fuzz/proxyctl feeds fuzz input.
 *
 * Ownership: the reader fills a struct response the caller owns (freed with
 * response_free(), also after a failed read); the reader's own buffers go
 * with answer_free().
 */
#ifndef FRESHCACHE_PROXYCTL_ANSWER_H
#define FRESHCACHE_PROXYCTL_ANSWER_H

#include <stdbool.h>
#include <stddef.h>

#include "freshcache/http/http_msg.h"
#include "freshcache/http/http_parse.h"
#include "proxyctl.h"

#define ANSWER_MAX_HEAD_BYTES (64u * 1024)
#define ANSWER_MAX_BODY_BYTES (64u * 1024 * 1024)

enum answer_state {
    ANSWER_MORE = 0,        /* give it more bytes (answer_add) or the end (answer_eof) */
    ANSWER_DONE,            /* *r holds the final answer */
    ANSWER_TRUNCATED,       /* the connection ended before the answer did */
    ANSWER_MALFORMED,       /* not HTTP: answer_error() says why */
    ANSWER_TOO_LARGE,       /* the body is over ANSWER_MAX_BODY_BYTES */
};

struct answer_reader {
    struct http_msg msg;
    struct http_parser parser;
    struct evbuffer *in;
    struct response *r;
    bool eof;
    line_fn line;           /* answer_stream_lines */
    void *line_arg;
};

/* 0, or -1 out of memory.  *r is cleared. */
int answer_init(struct answer_reader *a, struct response *r);
/* A 2xx body is streamed: each complete line goes to `line` as it is
 * parsed (the last one, without its newline, at the end), and the body is
 * not read as JSON.  Another status is read whole. */
void answer_stream_lines(struct answer_reader *a, line_fn line, void *arg);
void answer_add(struct answer_reader *a, const char *buf, size_t len);
void answer_eof(struct answer_reader *a);
/* Parse what has been given.  1xx interim answers (100 Continue) are
 * skipped; ANSWER_DONE fills r->status, reason, body ("" when none) and
 * json (NULL when the body is not JSON). */
enum answer_state answer_step(struct answer_reader *a);
const char *answer_error(const struct answer_reader *a);
void answer_free(struct answer_reader *a);

void response_free(struct response *r);
bool response_status_ok(const struct response *r);         /* 2xx */
/* The answer's "error" (a string, or an object's "message"), or NULL. */
const char *response_error_text(const struct response *r);
/* Did the daemon report a failure (non-2xx, "ok": false, an "error")?
 * If so, say why with errmsg(). */
bool report_failure(const struct response *r);

#endif
