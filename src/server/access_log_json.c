/*
 * access_log_json.c — the access log line as one JSON object (log.format:
 * json), for pipelines that parse JSON (Loki, Elasticsearch, Vector).  See
 * access_log.h for the fields.
 *
 * The fields are those of the text line, named, typed and split: the
 * request line becomes method, uri and protocol, the time is RFC 3339 in
 * UTC, and what the text line writes as "-" is null.  Escaping is
 * jansson's.  Client-supplied text may be any bytes, and JSON strings must
 * be UTF-8: bytes that are not valid UTF-8 become U+FFFD, so a line is
 * always one valid JSON document, whatever a client sends.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>
#include <llhttp.h>

#include "freshcache/http/http_msg.h"
#include "freshcache/server/access_log.h"

/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), 0 if there is
 * none. */
static size_t utf8_sequence(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;     /* the range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (left < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* A JSON string of s[0..len), invalid UTF-8 bytes replaced by U+FFFD. */
static json_t *text(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, seq;
    while (i < len && (seq = utf8_sequence(u + i, len - i)) > 0)
        i += seq;
    if (i == len)                           /* the usual case: no copy */
        return json_stringn_nocheck(s, len);

    static const char replacement[] = "\xef\xbf\xbd";
    char *clean = malloc(len * 3 + 1);      /* every byte replaced, at worst */
    if (clean == NULL)
        return NULL;
    size_t o = 0;
    for (i = 0; i < len;) {
        seq = utf8_sequence(u + i, len - i);
        if (seq == 0) {
            memcpy(clean + o, replacement, 3);
            o += 3;
            i++;
        } else {
            memcpy(clean + o, s + i, seq);
            o += seq;
            i += seq;
        }
    }
    json_t *j = json_stringn_nocheck(clean, o);
    free(clean);
    return j;
}

/* A request header's first value, or null. */
static json_t *header(const struct http_msg *m, const char *name)
{
    size_t len = 0;
    const char *v = m ? http_msg_get(m, name, &len) : NULL;
    return v ? text(v, len) : json_null();
}

static int add_to_evbuffer(const char *buffer, size_t size, void *data)
{
    return evbuffer_add(data, buffer, size);
}

void access_log_format_json(const struct access_entry *e, time_t now, struct evbuffer *out)
{
    char when[32];
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);

    json_t *method = json_null(), *uri = json_null(), *protocol = json_null();
    const struct http_msg *req = e->req;
    if (req && req->url_len && req->http_major > 0) {   /* a complete request line */
        char version[16];
        snprintf(version, sizeof version, "HTTP/%u.%u", req->http_major, req->http_minor);
        method = json_string(llhttp_method_name((llhttp_method_t)req->method));
        uri = text(http_msg_url(req), req->url_len);
        protocol = json_string(version);
    }

    json_t *o = json_object();
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "client", e->client ? text(e->client, strlen(e->client)) : json_null());
    json_object_set_new(o, "method", method);
    json_object_set_new(o, "uri", uri);
    json_object_set_new(o, "protocol", protocol);
    json_object_set_new(o, "status", json_integer(e->status));
    json_object_set_new(o, "bytes", json_integer((json_int_t)e->bytes));
    json_object_set_new(o, "referer", header(req, "Referer"));
    json_object_set_new(o, "user_agent", header(req, "User-Agent"));
    json_object_set_new(o, "cache_status",
                        e->cache_status ? text(e->cache_status, strlen(e->cache_status))
                                        : json_null());
    json_object_set_new(o, "generation", json_integer((json_int_t)e->generation));
    json_object_set_new(o, "origin_ms", e->origin_ms < 0 ? json_null() : json_integer(e->origin_ms));
    json_object_set_new(o, "total_ms", json_integer(e->total_ms));

    /* Straight into the buffer, in insertion order, no intermediate string.
     * The newline comes even after a failure (out of memory): a cut line
     * must not swallow the next one. */
    (void)json_dump_callback(o, add_to_evbuffer, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    evbuffer_add(out, "\n", 1);
    json_decref(o);
}
