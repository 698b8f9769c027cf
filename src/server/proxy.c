/*
 * proxy.c — one client connection as a state machine.
 *
 *   READ ──head──▶ (lookup) ──▶ SEND (object) ─────────┐
 *                     │    └──▶ WAIT (coalesced) ─▶ SEND│
 *                     └──▶ FETCH ──▶ SEND | PASS ───────┤
 *                                                      ▼
 *                  READ ◀── keep-alive ── exchange done ──▶ CLOSING
 *
 * Requests are parsed one at a time: after a request's head the parser is
 * not fed again until its response is completely queued, which answers
 * pipelined requests in order.  Closing is deferred to an event so that no
 * callback ever frees the connection under a caller's feet.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "freshcache/server/access_log.h"
#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/etag.h"
#include "freshcache/cache/generation.h"
#include "freshcache/http/http_date.h"
#include "freshcache/server/fetch.h"
#include "freshcache/http/http_parse.h"
#include "freshcache/base/log.h"
#include "freshcache/server/proxy.h"
#include "freshcache/cache/revalidate.h"
#include "freshcache/server/server.h"

/* Pass-through backpressure: pause the origin above HIGH bytes queued to
 * the client, resume below LOW. */
#define PASS_HIGH (1024 * 1024)
/* Append a string literal without counting its length by hand. */
#define ADD_LIT(buf, lit) evbuffer_add((buf), (lit), sizeof(lit) - 1)
#define PASS_LOW (256 * 1024)
/* Bytes a client may send ahead (pipelined requests, a body) beyond one
 * header section before we stop reading from it. */
#define READ_AHEAD_MAX (256 * 1024)
/* Request body bytes queued toward the origin beyond which we stop
 * reading from the client (resumed at fetch.c's UPLOAD_LOW). */
#define UPLOAD_HIGH (1024 * 1024)

enum client_state {
    C_READ = 0,     /* between requests, or reading a head */
    C_WAIT,         /* coalesced on a BUSY object */
    C_FETCH,        /* a fetch is under way, nothing sent yet */
    C_SEND,         /* streaming a stored object */
    C_PASS,         /* streaming a passed-through response */
    C_CLOSING,
};

struct client {
#define CLIENT_MAGIC 0xc11e4700u
    unsigned magic;
    LIST_ENTRY(client) link;
    struct worker *w;
    struct bufferevent *bev;
    char addr[INET6_ADDRSTRLEN];
    enum client_state state;

    struct http_parser parser;
    struct http_msg req;
    bool in_exchange;       /* a request head was read, its response not done */
    bool req_done;          /* the request message (with body) is complete */
    bool resp_done;         /* the response is completely queued */
    bool keep_alive;
    bool peer_eof;
    bool head_req;
    bool http10;
    bool chunked_out;
    bool resp_started;      /* some byte of the response was queued */
    bool fetch_paused;
    bool write_armed;       /* EV_WRITE enabled: the socket pushed back */
    bool upload_paused;     /* reading stopped: the origin lags on the body */

    struct cache_key key;
    struct cache_control req_cc;
    struct fetch *fetch;
    struct cache_obj *obj;  /* delivered, or waited on (ref) */
    struct body_cursor cur;
    uint64_t send_end;      /* body offset to stop at (a Range), or UINT64_MAX */
    uint64_t range_first;   /* a 206's first byte */
    struct body_waiter waiter;
    struct event *wake;     /* body progress, activated from any thread */
    struct event *reap;     /* deferred free */
    const char *cs;         /* Cache-Status parameters */
    char cs_buf[96];

    /* for the access log */
    int resp_status;
    uint64_t resp_bytes;
    uint64_t t_start_ms;
    int64_t origin_ms;
};

static void client_process(struct client *c);
static void client_close(struct client *c);
static void finish_exchange(struct client *c);
static void pump_body(struct client *c);

/* Drop whatever is queued for a peer that is gone.  The bufferevent
 * freezes the front of its output buffer, so a plain drain would silently
 * do nothing and the connection would wait forever to be flushed. */
static void discard_output(struct client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_unfreeze(out, 1);
    evbuffer_drain(out, evbuffer_get_length(out));
    evbuffer_freeze(out, 1);
}

/* Write what is queued now, nginx-style: libevent would arm EPOLLOUT for
 * every response and disarm it once drained (two epoll_ctl calls per
 * request).  EV_WRITE stays off until the socket pushes back.  Called at
 * the end of every callback that may have queued output. */
static void client_flush(struct client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (c->write_armed || evbuffer_get_length(out) == 0)
        return;
    /* A bufferevent freezes the front of its output buffer; libevent's own
     * writer unfreezes it around the write, and so do we. */
    evbuffer_unfreeze(out, 1);
    errno = 0;
    int n = evbuffer_write(out, bufferevent_getfd(c->bev));
    evbuffer_freeze(out, 1);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        log_debug("client %s: write failed: %s", c->addr, strerror(errno));
        /* the peer is gone: drop what cannot be sent and close */
        discard_output(c);
        client_close(c);
        return;
    }
    if (evbuffer_get_length(out) > 0) {
        c->write_armed = true;
        bufferevent_enable(c->bev, EV_WRITE);
    } else if (c->state == C_CLOSING) {
        event_active(c->reap, EV_WRITE, 0);
    }
}

/* ---- small response writers ------------------------------------------ */

static void set_cs(struct client *c, const char *cs)
{
    snprintf(c->cs_buf, sizeof c->cs_buf, "%s", cs);
    c->cs = c->cs_buf;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 405: return "Method Not Allowed";
    case 412: return "Precondition Failed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

/* A short response generated by the proxy itself. */
static void send_simple(struct client *c, int status, const char *msg, bool close)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (close)
        c->keep_alive = false;
    char body[256];
    int bl = snprintf(body, sizeof body, "%d %s: %s\n", status, reason_phrase(status), msg);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\n"
                        "Content-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: %d\r\n"
                        "Cache-Control: no-store\r\n"
                        "Cache-Status: freshcache; %s\r\n"
                        "%s"
                        "\r\n",
                        status, reason_phrase(status), c->head_req ? 0 : bl,
                        c->cs ? c->cs : "fwd=miss",
                        c->keep_alive ? (c->http10 ? "Connection: keep-alive\r\n" : "")
                                      : "Connection: close\r\n");
    if (!c->head_req)
        evbuffer_add(out, body, (size_t)bl);
    c->resp_status = status;
    c->resp_started = true;
    c->resp_done = true;
}

/* ---- delivering a stored object -------------------------------------- */

static void drop_obj(struct client *c)
{
    if (c->obj) {
        body_unwait(c->obj->body, &c->waiter);
        obj_unref(c->obj);
        c->obj = NULL;
    }
}

/* What clients see as the object's validators. */
static void obj_validators(const struct client *c, const struct cache_obj *o, struct validators *v,
                           char etag_buf[67])
{
    memset(v, 0, sizeof *v);
    v->status = o->status;
    v->has_date = o->timing.has_date;
    v->date = o->timing.date;
    if (c->w->srv->cfg->cache.etag == ETAG_CONTENT_HASH) {
        /* Only a complete body has a hash; until then, no validators. */
        if (body_state(o->body) == BODY_COMPLETE && o->has_chash) {
            etag_format(o->chash, etag_buf);
            v->etag = etag_buf;
            v->etag_len = 66;
            v->has_last_modified = true;
            v->last_modified = o->chash_first_seen;
        }
    } else {
        v->etag = o->etag;
        v->etag_len = o->etag_len;
        v->has_last_modified = o->timing.has_last_modified;
        v->last_modified = o->timing.last_modified;
    }
}

/* Queue status line, stored fields and the per-response fields. */
/* `v`: the validators deliver_obj computed for the preconditions, reused
 * so a hit formats its content-hash ETag once. */
static void write_obj_head(struct client *c, struct cache_obj *o, int status,
                           const struct validators *v)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    /* The head is small: copying it beats a reference (a chain allocation
     * and two atomics).  Bodies always go by reference. */
    if (status == 304 || status == 206) {
        if (status == 304)
            ADD_LIT(out, "HTTP/1.1 304 Not Modified\r\n");
        else
            ADD_LIT(out, "HTTP/1.1 206 Partial Content\r\n");
        evbuffer_add(out, o->head + o->fields_off, o->head_len - o->fields_off);
    } else {
        evbuffer_add(out, o->head, o->head_len);
    }
    int64_t age = current_age(&o->timing, worker_now(c->w));
    char tail[512];
    int n = snprintf(tail, sizeof tail, "Age: %lld\r\nCache-Status: freshcache; %s\r\n",
                     (long long)age, c->cs);
    if (c->w->srv->cfg->cache.etag == ETAG_CONTENT_HASH && v->etag) {
        char lm[HTTP_DATE_LEN + 1];
        http_date_format(v->last_modified, lm);
        n += snprintf(tail + n, sizeof tail - (size_t)n, "ETag: %.*s\r\nLast-Modified: %s\r\n",
                      (int)v->etag_len, v->etag, lm);
    }
    struct cache_body *b = o->body;
    c->chunked_out = false;
    bool bodyless = status == 304 || status == 204 || (status >= 100 && status < 200);
    if (status == 206) {
        n += snprintf(tail + n, sizeof tail - (size_t)n,
                      "Content-Range: bytes %llu-%llu/%llu\r\nContent-Length: %llu\r\n",
                      (unsigned long long)c->range_first, (unsigned long long)c->send_end - 1,
                      (unsigned long long)body_total(b),
                      (unsigned long long)(c->send_end - c->range_first));
    } else if (!bodyless) {
        uint64_t len = body_state(b) == BODY_COMPLETE ? body_total(b) : b->expected;
        if (len != UINT64_MAX) {
            n += snprintf(tail + n, sizeof tail - (size_t)n, "Content-Length: %llu\r\n",
                          (unsigned long long)len);
        } else if (c->head_req) {
            /* unknown yet: say nothing */
        } else if (c->http10) {
            c->keep_alive = false;  /* close-delimited */
        } else {
            n += snprintf(tail + n, sizeof tail - (size_t)n, "Transfer-Encoding: chunked\r\n");
            c->chunked_out = true;
        }
    }
    if (!c->keep_alive)
        n += snprintf(tail + n, sizeof tail - (size_t)n, "Connection: close\r\n\r\n");
    else if (c->http10)
        n += snprintf(tail + n, sizeof tail - (size_t)n, "Connection: keep-alive\r\n\r\n");
    else
        n += snprintf(tail + n, sizeof tail - (size_t)n, "\r\n");
    evbuffer_add(out, tail, (size_t)n);
    c->resp_status = status;
    c->resp_started = true;
}

enum range_choice { RANGE_NONE = 0, RANGE_ONE, RANGE_UNSATISFIABLE };

/* If-Range (RFC 9110 §13.1.5): an entity-tag compared strongly, or a date
 * equal to Last-Modified. */
static bool if_range_matches(const char *ir, size_t len, const struct validators *v)
{
    if (len > 0 && (ir[0] == '"' || ir[0] == 'W'))
        return v->etag && etag_list_match_strong(ir, len, v->etag, v->etag_len);
    time_t t;
    return v->has_last_modified && http_date_parse(ir, len, &t) && t == v->last_modified;
}

/* One byte range of a complete stored 200 (RFC 9110 §14.1.2): "a-b",
 * "a-" or "-n".  Several ranges, other units or an If-Range that does not
 * match the stored validators: RANGE_NONE (the full 200 is always a valid
 * answer). */
static enum range_choice range_select(const struct http_msg *req, const struct validators *v,
                                      uint64_t size, uint64_t *first, uint64_t *last)
{
    size_t len;
    const char *r = http_msg_get(req, "Range", &len);
    if (r == NULL || len < 7 || strncasecmp(r, "bytes=", 6) != 0 || memchr(r, ',', len))
        return RANGE_NONE;
    size_t il;
    const char *ir = http_msg_get(req, "If-Range", &il);
    if (ir && !if_range_matches(ir, il, v))
        return RANGE_NONE;
    r = http_msg_get(req, "Range", &len);
    char spec[64];
    size_t sl = len - 6;
    if (sl == 0 || sl >= sizeof spec)
        return RANGE_NONE;
    memcpy(spec, r + 6, sl);
    spec[sl] = '\0';
    char *dash = strchr(spec, '-');
    if (dash == NULL)
        return RANGE_NONE;
    *dash = '\0';
    const char *a = spec, *b = dash + 1;
    char *end;
    if (*a == '\0') {                                   /* -n: the last n bytes */
        if (*b < '0' || *b > '9')
            return RANGE_NONE;
        unsigned long long n = strtoull(b, &end, 10);
        if (*end)
            return RANGE_NONE;
        if (n == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        *first = n >= size ? 0 : size - n;
        *last = size - 1;
        return RANGE_ONE;
    }
    if (*a < '0' || *a > '9')
        return RANGE_NONE;
    unsigned long long f = strtoull(a, &end, 10);
    if (*end)
        return RANGE_NONE;
    unsigned long long l = size ? size - 1 : 0;
    if (*b) {
        if (*b < '0' || *b > '9')
            return RANGE_NONE;
        l = strtoull(b, &end, 10);
        if (*end || l < f)
            return RANGE_NONE;
        if (l >= size)
            l = size - 1;
    }
    if (f >= size)
        return RANGE_UNSATISFIABLE;
    *first = f;
    *last = l;
    return RANGE_ONE;
}

static void send_range_not_satisfiable(struct client *c, const char *content_range)
{
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 416 Range Not Satisfiable\r\n"
                        "Content-Range: %s\r\nContent-Length: 0\r\n"
                        "Cache-Status: freshcache; %s\r\n%s\r\n",
                        content_range, c->cs ? c->cs : "hit",
                        c->keep_alive ? "" : "Connection: close\r\n");
    c->resp_status = 416;
    c->resp_started = true;
    c->resp_done = true;
}

static void deliver_obj(struct client *c, struct cache_obj *o, const char *cs)
{
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    set_cs(c, cs);
    char etag[67];
    struct validators v;
    obj_validators(c, o, &v, etag);
    enum cond_result cond = cond_evaluate(&c->req, &v);
    if (cond == COND_PRECONDITION_FAILED) {
        send_simple(c, 412, "precondition failed", false);
        finish_exchange(c);
        return;
    }
    obj_ref(o);
    drop_obj(c);
    c->obj = o;
    memset(&c->cur, 0, sizeof c->cur);
    c->send_end = UINT64_MAX;
    c->state = C_SEND;
    if (cond == COND_NOT_MODIFIED) {
        write_obj_head(c, o, 304, &v);
        c->resp_done = true;
        finish_exchange(c);
        return;
    }
    int status = o->status;
    if (status == 200 && body_state(o->body) == BODY_COMPLETE) {
        uint64_t first, last, size = body_total(o->body);
        switch (range_select(&c->req, &v, size, &first, &last)) {
        case RANGE_NONE:
            break;
        case RANGE_ONE:
            status = 206;
            c->range_first = first;
            c->send_end = last + 1;
            body_cursor_seek(o->body, &c->cur, first);
            break;
        case RANGE_UNSATISFIABLE: {
            char cr[64];
            snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
            drop_obj(c);
            send_range_not_satisfiable(c, cr);
            finish_exchange(c);
            return;
        }
        }
    }
    write_obj_head(c, o, status, &v);
    if (c->head_req || o->status == 204) {
        c->resp_done = true;
        finish_exchange(c);
        return;
    }
    pump_body(c);
}

/* Send what is available of c->obj's body; finish or wait for more. */
static void pump_body(struct client *c)
{
    struct cache_obj *o = c->obj;
    struct cache_body *b = o->body;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    for (;;) {
        enum body_state st = body_state(b);
        if (c->chunked_out) {
            struct evbuffer *tmp = evbuffer_new();
            AN(tmp);
            size_t n = body_read_into(b, &c->cur, tmp, (size_t)(c->send_end - c->cur.pos));
            COUNT(c->w, bytes_sent, n);
            c->resp_bytes += n;
            if (n) {
                evbuffer_add_printf(out, "%zx\r\n", n);
                evbuffer_add_buffer(out, tmp);
                ADD_LIT(out, "\r\n");
            }
            evbuffer_free(tmp);
        } else {
            size_t n = body_read_into(b, &c->cur, out, (size_t)(c->send_end - c->cur.pos));
            COUNT(c->w, bytes_sent, n);
            c->resp_bytes += n;
        }
        if (c->cur.pos == c->send_end ||
            (st == BODY_COMPLETE && c->cur.pos == body_total(b))) {
            if (c->chunked_out)
                ADD_LIT(out, "0\r\n\r\n");
            body_unwait(b, &c->waiter);
            c->resp_done = true;
            finish_exchange(c);
            return;
        }
        if (st == BODY_FAILED || st == BODY_ABANDONED) {
            /* The origin failed mid-body: the client must see a truncated
             * message, never a complete one. */
            body_unwait(b, &c->waiter);
            c->keep_alive = false;
            client_close(c);
            return;
        }
        if (body_wait(b, &c->waiter, c->cur.pos, st))
            return;     /* woken on progress */
    }
}

/* ---- reports from the fetch ------------------------------------------ */

void client_on_fetch_obj(struct client *c, struct cache_obj *o, const char *cache_status)
{
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    c->fetch = NULL;
    if (c->state == C_CLOSING)
        return;
    deliver_obj(c, o, cache_status);
    client_flush(c);
}

void client_on_fetch_pass_head(struct client *c, struct fetch *f, const char *cache_status)
{
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    const struct http_msg *r = fetch_response(f);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    set_cs(c, cache_status);
    c->state = C_PASS;
    size_t rl = r->reason_len;
    evbuffer_add_printf(out, "HTTP/1.1 %d %.*s\r\n", r->status, (int)rl, r->buf + r->reason_off);
    bool via = false;
    for (uint32_t i = 0; i < r->n_fields; i++) {
        const struct http_field *fl = &r->fields[i];
        if (fl->dead || http_is_hop_by_hop(r, fl))
            continue;
        const char *n = http_field_name(r, fl);
        if (http_token_eq(n, fl->name_len, "Content-Length") || obj_field_internal(n, fl->name_len))
            continue;
        evbuffer_add(out, n, fl->name_len);
        ADD_LIT(out, ": ");
        evbuffer_add(out, http_field_value(r, fl), fl->value_len);
        if (http_token_eq(n, fl->name_len, "Via")) {
            ADD_LIT(out, ", 1.1 freshcache");
            via = true;
        }
        ADD_LIT(out, "\r\n");
    }
    if (!via)
        ADD_LIT(out, "Via: 1.1 freshcache\r\n");
    evbuffer_add_printf(out, "Cache-Status: freshcache; %s\r\n", c->cs);
    c->chunked_out = false;
    uint64_t len = fetch_response_length(f);
    bool has_body = fetch_response_has_body(f);
    if (has_body || (c->head_req && len != UINT64_MAX)) {
        if (len != UINT64_MAX)
            evbuffer_add_printf(out, "Content-Length: %llu\r\n", (unsigned long long)len);
        else if (c->http10 || c->head_req)
            c->keep_alive = false;
        else {
            ADD_LIT(out, "Transfer-Encoding: chunked\r\n");
            c->chunked_out = true;
        }
    } else if (r->status != 204 && r->status != 304 && r->status >= 200) {
        ADD_LIT(out, "Content-Length: 0\r\n");
    }
    if (!c->keep_alive)
        ADD_LIT(out, "Connection: close\r\n");
    else if (c->http10)
        ADD_LIT(out, "Connection: keep-alive\r\n");
    ADD_LIT(out, "\r\n");
    c->resp_status = r->status;
    c->resp_started = true;
    client_flush(c);
}

void client_on_fetch_pass_body(struct client *c, const char *data, size_t len)
{
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    if (c->head_req || c->state == C_CLOSING)
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    COUNT(c->w, bytes_sent, len);
    c->resp_bytes += len;
    if (c->chunked_out)
        evbuffer_add_printf(out, "%zx\r\n", len);
    evbuffer_add(out, data, len);
    if (c->chunked_out)
        ADD_LIT(out, "\r\n");
    client_flush(c);
    if (!c->fetch_paused && c->fetch && evbuffer_get_length(out) > PASS_HIGH) {
        fetch_pause(c->fetch);
        c->fetch_paused = true;
    }
}

void client_on_fetch_pass_done(struct client *c)
{
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    c->fetch = NULL;
    c->fetch_paused = false;
    if (c->state == C_CLOSING)
        return;
    if (c->chunked_out && !c->head_req)
        ADD_LIT(bufferevent_get_output(c->bev), "0\r\n\r\n");
    c->resp_done = true;
    finish_exchange(c);
    client_flush(c);
}

void client_on_fetch_error(struct client *c, int status, const char *why)
{
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    c->fetch = NULL;
    c->fetch_paused = false;
    if (c->state == C_CLOSING)
        return;
    if (c->resp_started) {
        client_close(c);    /* mid-response: truncation must show */
        return;
    }
    send_simple(c, status, why, !c->req_done);
    finish_exchange(c);
    client_flush(c);
}

/* ---- requests ---------------------------------------------------------- */

static void start_fetch(struct client *c, enum fetch_kind kind, struct cache_obj *busy,
                        struct cache_obj *stale, bool store_allowed, const char *fwd)
{
    struct fetch_params p = {
        .kind = kind,
        .req = &c->req,
        .key = kind == FETCH_PASS ? NULL : &c->key,
        .busy = busy,
        .stale = stale,
        .client_addr = c->addr,
        .client_head = c->head_req,
        .req_body = http_parser_has_body(&c->parser),
        .req_content_length = http_parser_content_length(&c->parser),
        .store_allowed = store_allowed,
        .status_fwd = fwd,
    };
    set_cs(c, "fwd=miss");
    c->state = C_FETCH;
    c->fetch = fetch_start(c->w, c, &p);
    if (c->fetch == NULL) {
        send_simple(c, 502, "cannot connect to origin", !c->req_done && p.req_body);
        finish_exchange(c);
    }
}

static void only_if_cached_miss(struct client *c)
{
    set_cs(c, "fwd=miss; detail=only-if-cached");
    send_simple(c, 504, "not in cache (only-if-cached)", false);
    finish_exchange(c);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg);

static void handle_cacheable(struct client *c)
{
    const struct fc_config *cfg = c->w->srv->cfg;
    size_t hl = 0;
    const char *host = http_msg_get(&c->req, "Host", &hl);
    if (cache_key_build(&c->key, host ? host : "", hl, http_msg_url(&c->req), c->req.url_len) != 0) {
        send_simple(c, 400, "bad request target", true);
        finish_exchange(c);
        return;
    }
    cc_init(&c->req_cc);
    uint32_t it = 0;
    const struct http_field *fl;
    bool any_cc = false;
    while ((fl = http_msg_next(&c->req, "Cache-Control", &it)) != NULL) {
        cc_parse(&c->req_cc, http_field_value(&c->req, fl), fl->value_len);
        any_cc = true;
    }
    if (!any_cc) {
        size_t pl;
        const char *pragma = http_msg_get(&c->req, "Pragma", &pl);
        if (pragma && cc_pragma_no_cache(pragma, pl))
            c->req_cc.flags |= CC_NO_CACHE;
    }
    bool only_cached = c->req_cc.flags & CC_ONLY_IF_CACHED;
    if (c->req_cc.flags & CC_NO_STORE) {
        if (only_cached)
            return only_if_cached_miss(c);
        start_fetch(c, FETCH_MISS, NULL, NULL, false, "request");
        return;
    }
    bool coalesce = cfg->cache.coalesce && !(c->req_cc.flags & CC_NO_CACHE) && !only_cached;
    struct cache_obj *o = NULL;
    const struct generations *gens = c->w->srv->gens;
    enum lookup_result r = store_lookup(c->w->srv->store, &c->key, &c->req, coalesce,
                                        worker_now_ms(c->w), gens,
                                        cfg->cache.after_purge == AFTER_PURGE_REFETCH, &o);
    switch (r) {
    case LOOKUP_FOUND: {
        struct serve_input in = {
            .req_cc = &c->req_cc,
            .resp_cc = &o->cc,
            .lifetime = o->lifetime,
            .age = current_age(&o->timing, worker_now(c->w)),
        };
        /* From a generation bump or a soft purge on, the object is stale
         * whatever its freshness says. */
        bool current = obj_current(o, gens) && !atomic_load(&o->soft_purged);
        enum serve_verdict v = current ? freshness_can_serve(&in) : SERVE_MUST_VALIDATE;
        if (v != SERVE_MUST_VALIDATE) {
            COUNT(c->w, hits, 1);
            if (v == SERVE_STALE_OK)
                COUNT(c->w, stale, 1);
            deliver_obj(c, o, "hit");
        } else if (current && !only_cached && !(c->req_cc.flags & CC_NO_CACHE) &&
                   !(o->cc.flags & (CC_MUST_REVALIDATE | CC_PROXY_REVALIDATE | CC_NO_CACHE)) &&
                   o->stale_while_revalidate > 0 &&
                   in.age - in.lifetime <= o->stale_while_revalidate) {
            /* stale-while-revalidate: answer now, refresh in the background
             * with a single request. */
            COUNT(c->w, hits, 1);
            COUNT(c->w, stale, 1);
            if (!atomic_exchange(&o->revalidating, true)) {
                struct fetch_params p = {
                    .kind = FETCH_REVALIDATE,
                    .req = &c->req,
                    .key = &c->key,
                    .stale = o,
                    .client_addr = c->addr,
                    .store_allowed = true,
                    .status_fwd = "stale",
                };
                if (fetch_start(c->w, NULL, &p) == NULL)
                    atomic_store(&o->revalidating, false);
            }
            deliver_obj(c, o, "hit; detail=stale-while-revalidate");
        } else if (only_cached) {
            only_if_cached_miss(c);
        } else {
            COUNT(c->w, revalidations, 1);
            start_fetch(c, FETCH_REVALIDATE, NULL, o, true,
                        (c->req_cc.flags & CC_NO_CACHE) ? "request" : "stale");
        }
        obj_unref(o);
        return;
    }
    case LOOKUP_BUSY:
        COUNT(c->w, collapsed, 1);
        c->obj = o;     /* keep the reference while waiting */
        c->state = C_WAIT;
        if (!body_wait(o->body, &c->waiter, 0, BODY_PENDING))
            wake_cb(-1, 0, c);
        return;
    case LOOKUP_CREATED:
        COUNT(c->w, misses, 1);
        start_fetch(c, FETCH_MISS, o, NULL, true, "miss");
        obj_unref(o);
        return;
    case LOOKUP_MISS:
    case LOOKUP_VARY_MISS:
        if (only_cached)
            return only_if_cached_miss(c);
        COUNT(c->w, misses, 1);
        start_fetch(c, FETCH_MISS, NULL, NULL, true, r == LOOKUP_MISS ? "miss" : "vary-miss");
        return;
    }
}

/* Progress on the body we wait on or stream from (any thread may fire it). */
static void wake_cb_inner(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct client *c = arg;
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    if (c->state == C_SEND) {
        pump_body(c);
        return;
    }
    if (c->state != C_WAIT || c->obj == NULL)
        return;
    struct cache_obj *o = c->obj;
    if (obj_ready(o)) {
        c->obj = NULL;
        body_unwait(o->body, &c->waiter);
        if (vary_match(o, &c->req)) {
            deliver_obj(c, o, "fwd=uri-miss; collapsed");
        } else {
            start_fetch(c, FETCH_MISS, NULL, NULL, true, "vary-miss");
        }
        obj_unref(o);
        return;
    }
    enum body_state st = body_state(o->body);
    if (st == BODY_ABANDONED || st == BODY_FAILED) {
        /* The leader's response was not stored: fetch for ourselves. */
        drop_obj(c);
        start_fetch(c, FETCH_MISS, NULL, NULL, true, "miss");
        return;
    }
    if (!body_wait(o->body, &c->waiter, 0, BODY_PENDING))
        event_active(c->wake, EV_READ, 0);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    wake_cb_inner(fd, what, c);
    client_flush(c);    /* c is freed only by reap_cb, never in here */
}

static void on_request_head(struct client *c)
{
    struct http_msg *r = &c->req;
    COUNT(c->w, requests, 1);
    c->in_exchange = true;
    c->resp_status = 0;
    c->resp_bytes = 0;
    c->origin_ms = -1;
    c->t_start_ms = worker_now_ms(c->w);
    c->req_done = false;
    c->resp_done = false;
    c->resp_started = false;
    c->cs = NULL;
    c->head_req = r->method == HTTP_HEAD;
    c->http10 = r->http_major == 1 && r->http_minor == 0;
    c->keep_alive = http_parser_keep_alive(&c->parser) && !c->peer_eof &&
                    !atomic_load(&c->w->srv->stopping);
    if (c->parser.upgrade || r->method == HTTP_CONNECT) {
        /* Nothing after an upgrade request is HTTP we could parse: answer
         * and close. */
        send_simple(c, 501, "upgrade and CONNECT are not supported", true);
        client_close(c);
        return;
    }
    if (!c->http10 && !http_msg_has(r, "Host")) {
        send_simple(c, 400, "missing Host", true);
        finish_exchange(c);
        return;
    }
    bool has_body = http_parser_has_body(&c->parser);
    if (has_body && !c->http10 && http_msg_has_token(r, "Expect", "100-continue"))
        ADD_LIT(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
    if ((r->method == HTTP_GET || r->method == HTTP_HEAD) && !has_body) {
        handle_cacheable(c);
        return;
    }
    COUNT(c->w, passes, 1);
    start_fetch(c, FETCH_PASS, NULL, NULL, false, "method");
}

static void on_request_body(void *owner, const char *data, size_t len)
{
    struct client *c = owner;
    if (c->fetch && fetch_send_body(c->fetch, data, len) > UPLOAD_HIGH && !c->upload_paused) {
        /* The origin is slower than the client: stop reading until it
         * catches up, rather than holding the whole upload in memory. */
        c->upload_paused = true;
        bufferevent_disable(c->bev, EV_READ);
    }
}

void client_on_fetch_upload_drained(struct client *c)
{
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    if (!c->upload_paused || c->state == C_CLOSING)
        return;
    c->upload_paused = false;
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        event_active(c->reap, EV_WRITE, 0);     /* parse what is buffered */
}

static void log_exchange(struct client *c)
{
    if (c->w->srv->access_fd < 0)
        return;
    struct access_entry e = {
        .client = c->addr,
        .req = &c->req,
        .status = c->resp_status,
        .bytes = c->resp_bytes,
        .cache_status = c->cs,
        .generation = generation_global(c->w->srv->gens),
        .origin_ms = c->origin_ms,
        .total_ms = (int64_t)(worker_now_ms(c->w) - c->t_start_ms),
    };
    access_log_write(c->w, &e);
}

void client_note_origin_time(struct client *c, int64_t ms)
{
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    c->origin_ms = ms;
}

/* Both the request and its response are done: reset for the next one. */
static void finish_exchange(struct client *c)
{
    if (!c->resp_done || !c->req_done || c->state == C_CLOSING)
        return;
    log_exchange(c);
    drop_obj(c);
    c->in_exchange = false;
    c->state = C_READ;
    c->chunked_out = false;
    http_parser_next(&c->parser);
    if (!c->keep_alive || c->peer_eof) {
        client_close(c);
        return;
    }
    /* Reading stays enabled during an exchange (toggling it costs two
     * epoll_ctl calls per request); the parser simply waits, and the read
     * high-water mark bounds what a pipelining client can queue. */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        event_active(c->reap, EV_WRITE, 0);  /* parse the next pipelined request */
}

static void client_process(struct client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (c->state != C_CLOSING) {
        if (c->in_exchange && c->req_done)
            return;     /* wait for the response before reading on */
        enum http_parse_event ev = http_parser_feed(&c->parser, in);
        switch (ev) {
        case HTTP_PARSE_NEED_MORE:
            return;
        case HTTP_PARSE_HEAD:
            on_request_head(c);
            break;
        case HTTP_PARSE_DONE:
            c->req_done = true;
            if (c->fetch && http_parser_has_body(&c->parser))
                fetch_end_body(c->fetch);
            finish_exchange(c);
            break;
        case HTTP_PARSE_ERROR:
            COUNT(c->w, client_errors, 1);
            if (!c->in_exchange || !c->resp_started) {
                if (!c->in_exchange) {
                    c->t_start_ms = worker_now_ms(c->w);
                    c->origin_ms = -1;
                }
                c->in_exchange = true;      /* so the access log has its line */
                c->head_req = false;
                c->cs = "fwd=bypass";
                send_simple(c, 400, http_parser_error(&c->parser), true);
            }
            client_close(c);
            return;
        case HTTP_PARSE_TOO_LARGE:
            COUNT(c->w, client_errors, 1);
            if (!c->in_exchange) {
                c->t_start_ms = worker_now_ms(c->w);
                c->origin_ms = -1;
            }
            c->in_exchange = true;
            c->head_req = false;
            c->cs = "fwd=bypass";
            send_simple(c, 431, "request header section too large", true);
            client_close(c);
            return;
        }
    }
}

/* ---- connection plumbing --------------------------------------------- */

static void client_free(struct client *c)
{
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    if (c->fetch) {
        struct fetch *f = c->fetch;
        c->fetch = NULL;
        fetch_detach(f);
    }
    drop_obj(c);
    event_free(c->wake);
    event_free(c->reap);
    bufferevent_free(c->bev);
    http_msg_free(&c->req);
    LIST_REMOVE(c, link);
    c->w->n_clients--;
    atomic_fetch_sub(&c->w->srv->n_clients, 1);
    c->magic = 0;
    free(c);
}

/* Deferred work: free a closing connection, or parse pipelined input. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct client *c = arg;
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    if (c->state == C_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            client_free(c);
        return;
    }
    client_process(c);
    client_flush(c);
}

/* Stop reading, flush what is queued, then free. */
static void client_close(struct client *c)
{
    if (c->state == C_CLOSING)
        return;
    if (c->in_exchange && c->resp_status)
        log_exchange(c);    /* cut short: still one line for it */
    c->in_exchange = false;
    c->state = C_CLOSING;
    if (c->fetch) {
        struct fetch *f = c->fetch;
        c->fetch = NULL;
        fetch_detach(f);
    }
    drop_obj(c);
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        event_active(c->reap, EV_WRITE, 0);
    } else {
        c->write_armed = true;
        bufferevent_enable(c->bev, EV_WRITE);
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct client *c = arg;
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    client_process(c);
    client_flush(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    size_t left = evbuffer_get_length(bufferevent_get_output(bev));
    if (c->state == C_CLOSING) {
        if (left == 0)
            event_active(c->reap, EV_WRITE, 0);
        return;
    }
    if (left == 0 && c->write_armed) {
        c->write_armed = false;     /* drained: back to optimistic writes */
        bufferevent_disable(c->bev, EV_WRITE);
    }
    if (c->fetch_paused && c->fetch && left < PASS_LOW) {
        c->fetch_paused = false;
        fetch_resume(c->fetch);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct client *c = arg;
    CHECK_OBJ_NOTNULL(c, CLIENT_MAGIC);
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && c->in_exchange &&
        c->state != C_CLOSING) {
        /* Half-close after a request: answer it, then close. */
        c->peer_eof = true;
        c->keep_alive = false;
        if (!c->req_done) {
            client_close(c);
        }
        return;
    }
    if (c->state == C_CLOSING) {
        /* Peer gone or write timed out while flushing: nothing queued can
         * be delivered.  Freed from reap_cb, not inside our own callback. */
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        discard_output(c);
        event_active(c->reap, EV_WRITE, 0);
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && c->in_exchange) {
        /* Idle because we are the slow side (an origin fetch): not the
         * client's fault.  libevent disabled reading on the timeout. */
        bufferevent_enable(c->bev, EV_READ);
        return;
    }
    /* EOF between requests, an error, or a timeout: the peer is gone or
     * stuck, nothing queued can be delivered. */
    client_close(c);
    bufferevent_disable(c->bev, EV_WRITE);
    discard_output(c);
    event_active(c->reap, EV_WRITE, 0);
}

void client_accept(struct worker *w, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
    (void)salen;
    const struct fc_config *cfg = w->srv->cfg;
    unsigned n = atomic_fetch_add(&w->srv->n_clients, 1);
    if (n >= cfg->limits.max_connections || atomic_load(&w->srv->stopping)) {
        atomic_fetch_sub(&w->srv->n_clients, 1);
        evutil_closesocket(fd);
        return;
    }
    struct client *c = calloc(1, sizeof *c);
    AN(c);
    c->magic = CLIENT_MAGIC;
    c->w = w;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->addr, sizeof c->addr);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->addr, sizeof c->addr);
    else
        snprintf(c->addr, sizeof c->addr, "unknown");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    AN(c->bev);
    c->wake = event_new(w->base, -1, 0, wake_cb, c);
    c->reap = event_new(w->base, -1, 0, reap_cb, c);
    AN(c->wake);
    AN(c->reap);
    c->waiter.ev = c->wake;
    http_msg_init(&c->req);
    http_parser_init(&c->parser, HTTP_REQUEST, &c->req, cfg->limits.max_header_bytes,
                     on_request_body, c);
    LIST_INSERT_HEAD(&w->clients, c, link);
    w->n_clients++;
    COUNT(w, connections, 1);
    struct timeval t = { (time_t)(cfg->limits.client_timeout_ms / 1000),
                         (suseconds_t)(cfg->limits.client_timeout_ms % 1000) * 1000 };
    bufferevent_set_timeouts(c->bev, &t, &t);
    bufferevent_setwatermark(c->bev, EV_WRITE, PASS_LOW, 0);
    bufferevent_setwatermark(c->bev, EV_READ, 0, cfg->limits.max_header_bytes + READ_AHEAD_MAX);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    /* A new bufferevent has EV_WRITE on; ours stays off until a write
     * blocks (client_flush). */
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, EV_READ);
}

void client_close_idle(struct worker *w)
{
    struct client *c, *next;
    for (c = LIST_FIRST(&w->clients); c; c = next) {
        next = LIST_NEXT(c, link);
        if (!c->in_exchange && c->state == C_READ)
            client_close(c);
    }
}

void client_free_all(struct worker *w)
{
    struct client *c;
    while ((c = LIST_FIRST(&w->clients)) != NULL)
        client_free(c);
}
