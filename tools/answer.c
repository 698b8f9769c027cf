/*
 * answer.c — see answer.h.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "answer.h"

void response_free(struct response *r)
{
    free(r->reason);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

static void on_body(void *owner, const char *at, size_t len)
{
    struct response *r = owner;
    if (r->body_too_large || r->body_len + len > ANSWER_MAX_BODY_BYTES) {
        r->body_too_large = true;
        return;
    }
    char *nb = realloc(r->body, r->body_len + len + 1);
    if (!nb) {
        r->body_too_large = true;
        return;
    }
    memcpy(nb + r->body_len, at, len);
    r->body_len += len;
    nb[r->body_len] = '\0';
    r->body = nb;
    if (!r->streaming)
        return;
    /* Hand on every complete line; keep the rest for the next bytes. */
    size_t start = 0;
    for (char *nl; (nl = memchr(r->body + start, '\n', r->body_len - start)) != NULL;) {
        size_t end = (size_t)(nl - r->body);
        r->line(r->line_arg, r->body + start, end - start);
        start = end + 1;
    }
    memmove(r->body, r->body + start, r->body_len - start + 1);
    r->body_len -= start;
}

int answer_init(struct answer_reader *a, struct response *r)
{
    memset(r, 0, sizeof *r);
    memset(a, 0, sizeof *a);
    a->in = evbuffer_new();
    if (a->in == NULL)
        return -1;
    a->r = r;
    http_msg_init(&a->msg);
    http_parser_init(&a->parser, HTTP_RESPONSE, &a->msg, ANSWER_MAX_HEAD_BYTES, on_body, r);
    return 0;
}

void answer_stream_lines(struct answer_reader *a, line_fn line, void *arg)
{
    a->line = line;
    a->line_arg = arg;
}

void answer_add(struct answer_reader *a, const char *buf, size_t len)
{
    evbuffer_add(a->in, buf, len);
}

void answer_eof(struct answer_reader *a)
{
    a->eof = true;
}

/* The final answer is complete: hand it over in *r. */
static enum answer_state finish(struct answer_reader *a)
{
    struct response *r = a->r;
    const struct http_msg *m = &a->msg;
    r->status = m->status;
    r->reason = strndup(m->reason_len ? m->buf + m->reason_off : "", m->reason_len);
    if (!r->body) {
        r->body = strdup("");
        r->body_len = 0;
    }
    if (r->streaming && r->body_len > 0)
        r->line(r->line_arg, r->body, r->body_len);    /* a last line without its newline */
    else if (r->body_len > 0)
        r->json = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL);
    return ANSWER_DONE;
}

enum answer_state answer_step(struct answer_reader *a)
{
    struct response *r = a->r;
    for (;;) {
        enum http_parse_event ev = a->eof ? http_parser_eof(&a->parser)
                                          : http_parser_feed(&a->parser, a->in);
        if (r->body_too_large)
            return ANSWER_TOO_LARGE;
        switch (ev) {
        case HTTP_PARSE_HEAD:
            if (a->line && a->msg.status >= 200 && a->msg.status < 300) {
                r->line = a->line;
                r->line_arg = a->line_arg;
                r->streaming = true;
            }
            continue;
        case HTTP_PARSE_DONE:
            if (a->msg.status >= 100 && a->msg.status < 200) {
                /* interim answer (100 Continue): the real one follows */
                free(r->body);
                r->body = NULL;
                r->body_len = 0;
                http_parser_next(&a->parser);
                if (a->eof)
                    return ANSWER_TRUNCATED;
                continue;
            }
            return finish(a);
        case HTTP_PARSE_ERROR:
            return a->eof ? ANSWER_TRUNCATED : ANSWER_MALFORMED;
        case HTTP_PARSE_TOO_LARGE:
            return ANSWER_MALFORMED;
        case HTTP_PARSE_NEED_MORE:
            return a->eof ? ANSWER_TRUNCATED : ANSWER_MORE;
        }
    }
}

const char *answer_error(const struct answer_reader *a)
{
    return http_parser_error(&a->parser);
}

void answer_free(struct answer_reader *a)
{
    http_msg_free(&a->msg);
    if (a->in)
        evbuffer_free(a->in);
    a->in = NULL;
}

bool response_status_ok(const struct response *r) { return r->status >= 200 && r->status < 300; }

const char *response_error_text(const struct response *r)
{
    if (!json_is_object(r->json))
        return NULL;
    const json_t *e = json_object_get(r->json, "error");
    if (json_is_string(e))
        return json_string_value(e);
    if (json_is_object(e) && json_is_string(json_object_get(e, "message")))
        return json_string_value(json_object_get(e, "message"));
    return NULL;
}

bool report_failure(const struct response *r)
{
    bool ok_false = json_is_object(r->json) && json_is_false(json_object_get(r->json, "ok"));
    const char *e = response_error_text(r);
    if (response_status_ok(r) && !ok_false && !e)
        return false;
    if (e) {
        errmsg("%s", e);
    } else if (!response_status_ok(r)) {
        /* Not our JSON (a proxy in between, a bug): show the first line. */
        char line[200] = "";
        if (r->body_len > 0 && !r->json) {
            size_t n = strcspn(r->body, "\r\n");
            if (n >= sizeof line)
                n = sizeof line - 1;
            memcpy(line, r->body, n);
            line[n] = '\0';
        }
        errmsg("the daemon answered %d %s%s%s", r->status, r->reason ? r->reason : "",
               line[0] ? ": " : "", line);
    } else {
        errmsg("the daemon reported a failure");
    }
    return true;
}
