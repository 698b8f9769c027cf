/*
 * http1.c — the HTTP/1.1 front end.  See include/freshcache/server/http1.h.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/decimal.h"
#include "freshcache/base/log.h"
#include "freshcache/base/peer_addr.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/http/http_parse.h"
#include "freshcache/http/http_status.h"
#include "freshcache/server/conn.h"
#include "freshcache/server/exchange.h"
#include "freshcache/server/http1.h"
#include "freshcache/server/worker.h"

/* Response bytes queued for a client beyond which no more body is read
 * from the object until the socket has taken some (down to OUT_LOW). */
#define OUT_HIGH (1024 * 1024)
#define OUT_LOW (256 * 1024)
/* Bytes a client may send ahead (pipelined requests, a body) beyond one
 * header section before we stop reading from it. */
#define READ_AHEAD_MAX (256 * 1024)

#define ADD_LIT(buf, lit) evbuffer_add((buf), (lit), sizeof(lit) - 1)

enum h1_state {
    H1_READ = 0,        /* between requests, or reading a head */
    H1_EXCHANGE,        /* a request's exchange is under way */
    H1_CLOSING,         /* no more requests; flushing, then freed */
};

/* One request's HTTP/1.1 bookkeeping, cleared in one step. */
struct h1_request {
    bool req_done;      /* the request message (with body) is complete */
    bool resp_done;     /* the response is completely queued */
    bool head_sent;     /* the response head is queued */
    bool keep_alive;
    bool http10;
    bool head_req;
    bool chunked_out;
    bool has_body;      /* a request body follows its head */
};

/* What a connection needs only while a request is on it: the parser, the
 * request message with its buffers and the exchange with its events.  An
 * idle keep-alive connection gives it back to its worker's pool (a few
 * hundred bytes plus buffers that a busy connection would otherwise keep
 * for as long as the client stays) and takes one again when bytes arrive:
 * idle connections cost only struct h1_conn and its conn. */
struct h1_active {
#define H1_ACTIVE_MAGIC 0x4c1a7e11u
    unsigned magic;
    struct h1_active *next_free;        /* in the worker's pool */
    struct http_parser parser;
    struct http_msg req;
    struct exchange x;
    struct event *deadline;             /* slow clients: its connection's timer */
    uint64_t body_mark;                 /* body bytes parsed when the rate window began */
    /* The connection's peer address as text, for the exchange (access log,
     * X-Forwarded-For, trusted_proxies): formatted when the connection
     * takes this from the pool, unless it is already this peer's. */
    bool addr_valid;
    struct peer_addr addr_of;
    char addr[PEER_ADDR_TEXT];
};

/* Pooled per worker, beyond which given-back ones are freed; a request
 * message grown past MSG_KEEP_BYTES drops its buffers on the way in. */
#define H1_POOL_MAX 256
#define MSG_KEEP_BYTES 4096

struct h1_conn {
#define H1_MAGIC 0xc11e4700u
    unsigned magic;
    uint8_t state;      /* enum h1_state: a byte keeps the struct in its malloc class */
    bool tls;           /* scheme "https" */
    bool peer_eof;      /* the client closed its sending side */
    bool in_io;         /* inside our own read/drain/reap handling: it flushes */
    /* Slow clients: a deadline for a whole request head, then a minimum
     * average rate for its body (see "slow clients" below), on the timer
     * of the connection's h1_active (an idle connection keeps none). */
    bool head_timing;   /* the deadline is the head's */
    bool body_timing;   /* the deadline is a body rate window's */
    bool upload_paused; /* we stopped reading the body (origin backpressure) */
    bool linger_over;   /* closing in stages (conn lingering) ended: the peer closed,
                         * went silent or the time is up */
    bool paused_in_window;
    struct h1_request r;
    /* Binary (17 bytes, not 46 of text): an idle connection is mostly
     * this struct and its conn; the text is made per request, in the
     * pooled h1_active. */
    struct peer_addr peer;
    LIST_ENTRY(h1_conn) link;
    struct worker *w;
    struct conn *conn;
    struct h1_active *a;    /* NULL while idle between requests */
    struct event *reap; /* deferred: free when closing, or parse on (made on first use) */
};

/* 88 bytes: malloc's 96-byte class (it was 144 in the 160 one). */
_Static_assert(sizeof(struct h1_conn) <= 88, "an idle connection's h1_conn stays small");

static void h1_process(struct h1_conn *c);
static void h1_close(struct h1_conn *c);
static void finish_exchange(struct h1_conn *c);
static void refuse(struct h1_conn *c, int status, const char *msg);

/* Every state change goes through here: the transitions above, no other. */
static void set_state(struct h1_conn *c, enum h1_state to)
{
    static const bool legal[3][3] = {
        /*               READ   EXCHANGE CLOSING */
        [H1_READ]     = { false, true,  true },
        [H1_EXCHANGE] = { true,  false, true },
        [H1_CLOSING]  = { false, false, false },
    };
    FC_ASSERT(legal[c->state][to]);
    c->state = to;
}

/* The peer as text, for debug logs (a request has it in c->a->addr). */
static const char *peer_text(const struct h1_conn *c, char out[PEER_ADDR_TEXT])
{
    return peer_addr_format(&c->peer, out);
}

/* ---- the per-request part, pooled ------------------------------------- */

static const struct exchange_fe h1_fe;
static void on_request_body(void *owner, const char *data, size_t len);
static void deadline_cb(evutil_socket_t fd, short what, void *arg);

/* Bytes arrived on an idle connection: give it a parser, a message and an
 * exchange, from the pool when it has one. */
static void h1_activate(struct h1_conn *c)
{
    FC_ASSERT(c->a == NULL && c->state == H1_READ);
    struct worker *w = c->w;
    struct h1_active *a = w->h1_pool;
    if (a) {
        CHECK_OBJ(a, H1_ACTIVE_MAGIC);
        w->h1_pool = a->next_free;
        w->h1_pool_n--;
        a->next_free = NULL;
        a->x.fe_ctx = c;
        /* Not pending (stopped before it came back): safe to re-aim. */
        AZ(event_assign(a->deadline, w->base, -1, 0, deadline_cb, c));
    } else {
        a = calloc(1, sizeof *a);
        AN(a);
        a->magic = H1_ACTIVE_MAGIC;
        http_msg_init(&a->req);
        exchange_init(&a->x, w, &h1_fe, c);
        a->deadline = evtimer_new(w->base, deadline_cb, c);
        AN(a->deadline);
    }
    if (!a->addr_valid || !peer_addr_equal(&a->addr_of, &c->peer)) {
        a->addr_of = c->peer;
        peer_addr_format(&c->peer, a->addr);
        a->addr_valid = true;
    }
    /* A fresh parser: the next message starts here, as on a new connection. */
    http_parser_init(&a->parser, HTTP_REQUEST, &a->req, worker_cfg(w)->limits.max_header_bytes,
                     on_request_body, c);
    c->a = a;
}

static void h1_active_free(struct h1_active *a)
{
    CHECK_OBJ_NOTNULL(a, H1_ACTIVE_MAGIC);
    exchange_fini(&a->x);
    event_free(a->deadline);
    http_msg_free(&a->req);
    a->magic = 0;
    free(a);
}

static void h1_defer(struct h1_conn *c, short what);

/* Free what the pool holds beyond H1_POOL_MAX.  Only from our own deferred
 * event: h1_deactivate may run inside the exchange's callbacks (a response
 * completed from its send_head), where the exchange must not be freed. */
static void h1_pool_trim(struct worker *w)
{
    while (w->h1_pool_n > H1_POOL_MAX) {
        struct h1_active *a = w->h1_pool;
        w->h1_pool = a->next_free;
        w->h1_pool_n--;
        h1_active_free(a);
    }
}

/* The connection is between requests with nothing of the next one read:
 * give the per-request part back. */
static void h1_deactivate(struct h1_conn *c)
{
    struct h1_active *a = c->a;
    CHECK_OBJ_NOTNULL(a, H1_ACTIVE_MAGIC);
    FC_ASSERT(a->x.state == X_IDLE && !evtimer_pending(a->deadline, NULL));
    c->a = NULL;
    struct worker *w = c->w;
    if (a->req.cap > MSG_KEEP_BYTES) {
        http_msg_free(&a->req);
        http_msg_init(&a->req);
    } else {
        http_msg_reset(&a->req);
    }
    a->x.fe_ctx = NULL;
    a->next_free = w->h1_pool;
    w->h1_pool = a;
    w->h1_pool_n++;
    if (w->h1_pool_n > H1_POOL_MAX)
        h1_defer(c, EV_READ);       /* reap_cb trims the pool */
}

static void reap_cb(evutil_socket_t fd, short what, void *arg);

/* Run reap_cb from the loop: EV_WRITE frees a closing connection,
 * EV_READ parses buffered input. */
static void h1_defer(struct h1_conn *c, short what)
{
    if (c->reap == NULL) {
        c->reap = event_new(c->w->base, -1, 0, reap_cb, c);
        AN(c->reap);
    }
    event_active(c->reap, what, 0);
}

/* Write what is queued now; the peer being gone closes the connection. */
static void h1_flush(struct h1_conn *c)
{
    if (conn_flush(c->conn) != 0) {
        char text[PEER_ADDR_TEXT];
        log_debug("client %s: write failed", peer_text(c, text));
        conn_discard_output(c->conn);
        h1_close(c);
    }
    if (c->state == H1_CLOSING && conn_pending(c->conn) == 0)
        h1_defer(c, EV_WRITE);
    else if (c->a == NULL && c->state == H1_READ)
        conn_release_buffers(c->conn);      /* idle: all written, nothing read */
}

/* ---- slow clients ------------------------------------------------------ */

/* limits.header_timeout: a whole request head must arrive within it,
 * counted as nginx's client_header_timeout is: from the accept for a
 * connection's first request, from the first byte of the next one on a
 * kept-alive connection (the wait before that byte is client_timeout's).
 * A head trickled a byte at a time no longer lives forever: client_timeout
 * restarts on every byte, this does not.  limits.min_body_rate: a request
 * body must average this many bytes a second over each header_timeout
 * window, except a window in which we held the body back ourselves. */
static void deadline_arm(struct h1_conn *c)
{
    CHECK_OBJ_NOTNULL(c->a, H1_ACTIVE_MAGIC);
    uint64_t ms = worker_cfg(c->w)->limits.header_timeout_ms;
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
    event_add(c->a->deadline, &tv);
}

static void deadline_stop(struct h1_conn *c)
{
    c->head_timing = c->body_timing = false;
    if (c->a)
        event_del(c->a->deadline);
}


static void head_deadline_start(struct h1_conn *c)
{
    if (c->head_timing)
        return;
    c->head_timing = true;
    deadline_arm(c);
}

/* A request head is complete: its body, if any, is held to the rate. */
static void body_deadline_start(struct h1_conn *c)
{
    deadline_stop(c);
    if (!c->r.has_body || c->r.req_done || worker_cfg(c->w)->limits.min_body_rate == 0)
        return;
    c->body_timing = true;
    c->paused_in_window = c->upload_paused;
    c->a->body_mark = c->a->parser.body_bytes;
    deadline_arm(c);
}

static void too_slow(struct h1_conn *c, const char *why)
{
    COUNT(&c->w->counters, client_errors, 1);
    char text[PEER_ADDR_TEXT];
    log_debug("client %s: %s", peer_text(c, text), why);
    c->in_io = true;
    refuse(c, 408, why);
    h1_close(c);
    c->in_io = false;
    h1_flush(c);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct h1_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, H1_MAGIC);
    if (c->state == H1_CLOSING)
        return;
    if (c->head_timing && c->state == H1_READ) {
        c->head_timing = false;
        too_slow(c, "request head not complete within header_timeout");
        return;
    }
    if (!c->body_timing || c->state != H1_EXCHANGE || c->r.req_done)
        return;
    const struct fc_config *cfg = worker_cfg(c->w);
    uint64_t want = cfg->limits.min_body_rate * cfg->limits.header_timeout_ms / 1000;
    uint64_t got = c->a->parser.body_bytes - c->a->body_mark;
    if (got < want && !c->paused_in_window && !c->upload_paused) {
        c->body_timing = false;
        too_slow(c, "request body slower than min_body_rate");
        return;
    }
    c->paused_in_window = c->upload_paused;
    c->a->body_mark = c->a->parser.body_bytes;
    deadline_arm(c);
}

/* ---- responses ---------------------------------------------------------- */

/* The one HTTP/1.1 serialisation of a response head: status line, the
 * stored fields, the exchange's own fields, framing and Connection. */
static void write_head(struct h1_conn *c, const struct resp_head *h)
{
    struct evbuffer *out = c->conn->out;
    struct h1_request *r = &c->r;
    if (h->close)
        r->keep_alive = false;
    if (h->stored && h->status == h->stored_status) {
        evbuffer_add(out, h->stored, h->stored_len);    /* status line and fields */
    } else {
        evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", h->status, http_status_reason(h->status));
        if (h->stored)
            evbuffer_add(out, h->stored + h->fields_off, h->stored_len - h->fields_off);
    }
    evbuffer_add(out, h->extra, h->extra_len);
    r->chunked_out = false;
    bool bodyless = h->status == 304 || h->status == 204 || (h->status >= 100 && h->status < 200);
    char line[64];
    if (!bodyless) {
        if (h->content_length != UINT64_MAX) {
            /* no printf: every response has this line (callgrind) */
            memcpy(line, "Content-Length: ", 16);
            size_t n = 16 + decimal_u64(line + 16, h->content_length);
            memcpy(line + n, "\r\n", 2);
            evbuffer_add(out, line, n + 2);
        } else if (!h->body) {
            /* a HEAD of unknown length: say nothing */
        } else if (r->http10) {
            r->keep_alive = false;      /* close-delimited */
        } else {
            ADD_LIT(out, "Transfer-Encoding: chunked\r\n");
            r->chunked_out = true;
        }
    }
    if (!r->keep_alive)
        ADD_LIT(out, "Connection: close\r\n\r\n");
    else if (r->http10)
        ADD_LIT(out, "Connection: keep-alive\r\n\r\n");
    else
        ADD_LIT(out, "\r\n");
    if (h->inline_len)
        evbuffer_add(out, h->inline_body, h->inline_len);
    r->head_sent = true;
}

/* Move body bytes from the exchange to the socket buffer while the client
 * keeps up; the rest follows body_ready (more bytes) or on_drain (room). */
static void pump_body(struct h1_conn *c)
{
    struct evbuffer *out = c->conn->out;
    for (;;) {
        size_t pending = conn_pending(c->conn);
        if (pending >= OUT_HIGH)
            return;     /* on_drain resumes */
        size_t budget = OUT_HIGH - pending, n = 0;
        enum body_read rd;
        if (c->r.chunked_out) {
            struct evbuffer *tmp = evbuffer_new();
            AN(tmp);
            rd = exchange_body_read(&c->a->x, tmp, budget, &n);
            if (n) {
                evbuffer_add_printf(out, "%zx\r\n", n);
                evbuffer_add_buffer(out, tmp);
                ADD_LIT(out, "\r\n");
            }
            evbuffer_free(tmp);
        } else {
            rd = exchange_body_read(&c->a->x, out, budget, &n);
        }
        if (rd == BODY_READ_END) {
            if (c->r.chunked_out)
                ADD_LIT(out, "0\r\n\r\n");
            c->r.resp_done = true;
            finish_exchange(c);
            return;
        }
        if (rd == BODY_READ_FAILED) {
            /* The origin failed mid-body: the client must see a truncated
             * message, never a complete one. */
            c->r.keep_alive = false;
            h1_close(c);
            return;
        }
        if (n < budget)
            return;     /* waiting for the body: body_ready resumes */
        if (conn_flush(c->conn) != 0)
            return;     /* h1_flush, after us, closes */
    }
}

static void fe_send_head(struct exchange *x, const struct resp_head *h)
{
    struct h1_conn *c = x->fe_ctx;
    CHECK_OBJ_NOTNULL(c, H1_MAGIC);
    FC_ASSERT(c->state == H1_EXCHANGE && !c->r.head_sent);
    write_head(c, h);
    if (!h->body) {
        c->r.resp_done = true;
        finish_exchange(c);
    } else {
        pump_body(c);
    }
    /* Called from our own parse (a hit), our handling flushes once at its
     * end; from the exchange's wake-up (a fetch's answer), flush now. */
    if (!c->in_io)
        h1_flush(c);
}

static void fe_body_ready(struct exchange *x)
{
    struct h1_conn *c = x->fe_ctx;
    CHECK_OBJ_NOTNULL(c, H1_MAGIC);
    if (c->state != H1_EXCHANGE || c->r.resp_done)
        return;
    pump_body(c);
    if (!c->in_io)
        h1_flush(c);
}

static void fe_upload_pause(struct exchange *x, bool pause)
{
    struct h1_conn *c = x->fe_ctx;
    CHECK_OBJ_NOTNULL(c, H1_MAGIC);
    if (c->state == H1_CLOSING)
        return;
    c->upload_paused = pause;
    if (pause)
        c->paused_in_window = true;
    conn_read_enable(c->conn, !pause);
    if (!pause && evbuffer_get_length(c->conn->in) > 0)
        h1_defer(c, EV_READ);     /* parse what is buffered */
}

static void fe_send_interim(struct exchange *x, int status, const char *lines, size_t len)
{
    struct h1_conn *c = x->fe_ctx;
    CHECK_OBJ_NOTNULL(c, H1_MAGIC);
    /* An HTTP/1.0 client would take a 1xx for the final response (RFC
     * 9110 §15.2: a server must not send one to it). */
    if (c->state != H1_EXCHANGE || c->r.head_sent || c->r.http10)
        return;
    struct evbuffer *out = c->conn->out;
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, http_status_reason(status));
    evbuffer_add(out, lines, len);
    ADD_LIT(out, "\r\n");
    if (!c->in_io)
        h1_flush(c);
}

static const struct exchange_fe h1_fe = {
    .send_head = fe_send_head,
    .body_ready = fe_body_ready,
    .upload_pause = fe_upload_pause,
    .send_interim = fe_send_interim,
};

/* ---- requests ---------------------------------------------------------- */

/* A request refused here, before or instead of its exchange. */
static void refuse(struct h1_conn *c, int status, const char *msg)
{
    if (c->a == NULL)
        h1_activate(c);
    if (c->state == H1_READ) {
        set_state(c, H1_EXCHANGE);
        c->r.keep_alive = false;
        c->a->x.req = &c->a->req;     /* what was parsed of it, for the log */
    }
    if (!c->r.head_sent) {
        struct exchange_request info = { .client_addr = c->a->addr,
                                         .scheme = c->tls ? "https" : "http" };
        exchange_refuse(&c->a->x, &info, status, "fwd=bypass", msg, true);
    }
}

static void on_request_head(struct h1_conn *c)
{
    struct http_msg *m = &c->a->req;
    set_state(c, H1_EXCHANGE);
    memset(&c->r, 0, sizeof c->r);
    deadline_stop(c);
    c->upload_paused = false;
    c->r.head_req = m->method == HTTP_HEAD;
    c->r.http10 = m->http_major == 1 && m->http_minor == 0;
    c->r.keep_alive = http_parser_keep_alive(&c->a->parser) && !c->peer_eof &&
                      !atomic_load(&c->w->srv->stopping);
    c->r.has_body = http_parser_has_body(&c->a->parser);
    struct exchange_request info = {
        .client_addr = c->a->addr,
        .scheme = c->tls ? "https" : "http",
        .has_body = c->r.has_body,
        .body_length = http_parser_content_length(&c->a->parser),
    };
    if (c->a->parser.upgrade || m->method == HTTP_CONNECT) {
        /* Nothing after a CONNECT is HTTP we could parse: answer and
         * close.  (An Upgrade is ignored: the parser goes on.) */
        COUNT(&c->w->counters, requests, 1);
        c->a->x.req = m;
        exchange_refuse(&c->a->x, &info, 501, NULL, "CONNECT is not supported", true);
        h1_close(c);
        return;
    }
    if (!c->r.http10 && !http_msg_has(m, "Host")) {
        COUNT(&c->w->counters, requests, 1);
        c->a->x.req = m;
        exchange_refuse(&c->a->x, &info, 400, NULL, "missing Host", true);
        return;
    }
    if (c->r.has_body && !c->r.http10 && http_msg_has_token(m, "Expect", "100-continue"))
        ADD_LIT(c->conn->out, "HTTP/1.1 100 Continue\r\n\r\n");
    body_deadline_start(c);
    exchange_start(&c->a->x, m, &info);
}

static void on_request_body(void *owner, const char *data, size_t len)
{
    struct h1_conn *c = owner;
    if (c->state == H1_EXCHANGE)
        exchange_upload(&c->a->x, data, len);
}

/* Both the request and its response are done: ready for the next one. */
static void finish_exchange(struct h1_conn *c)
{
    if (c->state != H1_EXCHANGE || !c->r.resp_done || !c->r.req_done)
        return;
    exchange_end(&c->a->x);
    set_state(c, H1_READ);
    http_parser_next(&c->a->parser);
    bool keep_alive = c->r.keep_alive;
    memset(&c->r, 0, sizeof c->r);
    bool more = evbuffer_get_length(c->conn->in) > 0;
    /* Nothing of a next request read: give the per-request part back
     * (idle: client_timeout's now).  Closing, that is also what tells
     * h1_should_linger the exchange is complete, so the connection closes
     * at once, as nginx's does, rather than in stages on every
     * Connection: close answer (a shutdown, a wait for the client's FIN,
     * two epoll_ctl more). */
    if (!more) {
        deadline_stop(c);
        h1_deactivate(c);
    }
    if (!keep_alive || c->peer_eof) {
        h1_close(c);
        return;
    }
    /* Reading stays enabled during an exchange (toggling it costs two
     * epoll_ctl calls per request); the parser simply waits, and the
     * input bound limits what a pipelining client can queue. */
    if (more)
        h1_defer(c, EV_READ);      /* the next pipelined request */
}

static void h1_process(struct h1_conn *c)
{
    struct evbuffer *in = c->conn->in;
    if (c->a == NULL) {
        if (c->state != H1_READ || in == NULL || evbuffer_get_length(in) == 0)
            return;
        h1_activate(c);
    }
    /* A finished exchange with nothing more buffered gives the per-request
     * part back (finish_exchange): then we are done. */
    while (c->state != H1_CLOSING && c->a != NULL) {
        if (c->state == H1_EXCHANGE && c->r.req_done)
            break;      /* wait for the response before reading on */
        if (c->state == H1_READ && evbuffer_get_length(in) > 0)
            head_deadline_start(c);     /* the first byte of a request */
        enum http_parse_event ev = http_parser_feed(&c->a->parser, in);
        switch (ev) {
        case HTTP_PARSE_NEED_MORE:
            conn_input_consumed(c->conn);
            return;
        case HTTP_PARSE_HEAD:
            on_request_head(c);
            break;
        case HTTP_PARSE_DONE:
            if (c->state != H1_EXCHANGE)
                break;
            c->r.req_done = true;
            if (c->body_timing)
                deadline_stop(c);
            if (c->r.has_body)
                exchange_upload_end(&c->a->x);
            finish_exchange(c);
            break;
        case HTTP_PARSE_ERROR:
            COUNT(&c->w->counters, client_errors, 1);
            refuse(c, http_parser_error_status(&c->a->parser), http_parser_error(&c->a->parser));
            h1_close(c);
            return;
        case HTTP_PARSE_TOO_LARGE:
            COUNT(&c->w->counters, client_errors, 1);
            refuse(c, 431, "request header section too large");
            h1_close(c);
            return;
        }
    }
    conn_input_consumed(c->conn);
}

/* ---- connection plumbing --------------------------------------------- */

static void h1_free(struct h1_conn *c)
{
    CHECK_OBJ_NOTNULL(c, H1_MAGIC);
    if (c->a)
        h1_active_free(c->a);
    if (c->reap)
        event_free(c->reap);
    conn_free(c->conn);
    LIST_REMOVE(c, link);
    c->w->n_clients--;
    worker_client_gone(c->w);
    c->magic = 0;
    free(c);
}

/*
 * Closing in stages (RFC 9112 §9.6).  Closing a socket that holds bytes we
 * did not read makes the kernel send a reset, and a reset that reaches the
 * client before it read our last response destroys that response: the
 * 400 of a malformed request, the answer to a request whose body we did
 * not take, the last answer before pipelined requests we will not serve.
 * When the client may still be sending, we shut our sending side and read
 * on to discard, until it closes, stays silent for LINGER_IDLE_MS, or
 * LINGER_MAX_MS in all (nginx's lingering_timeout and lingering_time).  A
 * connection closed after a complete request with nothing more read —
 * most — closes at once.
 */
#define LINGER_IDLE_MS 5000
#define LINGER_MAX_MS 30000

static bool h1_should_linger(const struct h1_conn *c)
{
    if (c->peer_eof || c->conn->eof || c->conn->failed)
        return false;
    if (c->conn->in != NULL && evbuffer_get_length(c->conn->in) > 0)
        return true;        /* pipelined requests, or a body, unread */
    return c->a != NULL && !c->r.req_done;
}

static void h1_linger(struct h1_conn *c)
{
    conn_linger(c->conn, LINGER_IDLE_MS);
    if (c->reap == NULL) {
        c->reap = event_new(c->w->base, -1, 0, reap_cb, c);
        AN(c->reap);
    }
    struct timeval tv = { .tv_sec = LINGER_MAX_MS / 1000, .tv_usec = 0 };
    AZ(event_add(c->reap, &tv));
}

/* Deferred work: free a closing connection, or parse buffered input. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct h1_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, H1_MAGIC);
    h1_pool_trim(c->w);
    if (c->state == H1_CLOSING) {
        if (c->conn->failed || c->linger_over || (what & EV_TIMEOUT))
            h1_free(c);
        else if (c->conn->lingering || conn_pending(c->conn) != 0)
            ;   /* the peer, or the socket, has the next move */
        else if (h1_should_linger(c))
            h1_linger(c);
        else
            h1_free(c);
        return;
    }
    c->in_io = true;
    h1_process(c);
    c->in_io = false;
    h1_flush(c);
    /* Idle again: an idle connection keeps no deferred event (a pool
     * trim or pipelined input made this one; a next need makes another). */
    if (c->a == NULL && c->state == H1_READ && c->reap != NULL &&
        !event_pending(c->reap, EV_READ | EV_WRITE, NULL)) {
        event_free(c->reap);
        c->reap = NULL;
    }
}

/* No more requests: stop reading, flush what is queued, then free. */
static void h1_close(struct h1_conn *c)
{
    if (c->state == H1_CLOSING)
        return;
    if (c->a)
        exchange_end(&c->a->x);    /* cut short: still one log line for it */
    set_state(c, H1_CLOSING);
    deadline_stop(c);
    conn_read_enable(c->conn, false);
    c->conn->write_low = 0;     /* on_drain once everything is out */
    if (conn_pending(c->conn) == 0)
        h1_defer(c, EV_WRITE);
}

/* The peer is gone or stuck: nothing queued can be delivered. */
static void h1_abort(struct h1_conn *c)
{
    h1_close(c);
    conn_discard_output(c->conn);
    h1_defer(c, EV_WRITE);
}

static void on_read(void *arg)
{
    struct h1_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, H1_MAGIC);
    c->in_io = true;
    h1_process(c);
    c->in_io = false;
    h1_flush(c);
}

static void on_drain(void *arg)
{
    struct h1_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, H1_MAGIC);
    if (c->state == H1_CLOSING) {
        if (conn_pending(c->conn) == 0)
            h1_defer(c, EV_WRITE);
        return;
    }
    if (c->state == H1_EXCHANGE && c->r.head_sent && !c->r.resp_done) {
        c->in_io = true;
        pump_body(c);
        c->in_io = false;
        h1_flush(c);
    }
}

static void on_event(void *arg, enum conn_event ev)
{
    struct h1_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, H1_MAGIC);
    if (c->conn->lingering) {   /* whatever it is, the linger is over */
        c->linger_over = true;
        h1_defer(c, EV_WRITE);
        return;
    }
    switch (ev) {
    case CONN_EOF:
        if (c->state == H1_EXCHANGE) {
            /* Half-close after a request: answer it, then close. */
            c->peer_eof = true;
            c->r.keep_alive = false;
            if (!c->r.req_done)
                h1_abort(c);
            return;
        }
        h1_abort(c);    /* between requests */
        return;
    case CONN_READ_TIMEOUT:
        /* The whole request is in and we are the slow side (an origin
         * fetch): not the client's fault.  A client that owes us the rest
         * of its request, or a next one, is cut at client_timeout. */
        if (c->state == H1_EXCHANGE && c->r.req_done)
            return;
        h1_abort(c);
        return;
    case CONN_CONNECTED:
    case CONN_ERROR:
    case CONN_WRITE_TIMEOUT:
        h1_abort(c);
        return;
    }
}

static const struct conn_cb h1_conn_cb = {
    .on_read = on_read,
    .on_drain = on_drain,
    .on_event = on_event,
};

void http1_serve(struct worker *w, struct conn *conn, const struct peer_addr *peer, bool tls)
{
    const struct fc_config *cfg = worker_cfg(w);
    struct h1_conn *c = calloc(1, sizeof *c);
    AN(c);
    c->magic = H1_MAGIC;
    c->w = w;
    c->conn = conn;
    c->peer = *peer;
    c->tls = tls;
    LIST_INSERT_HEAD(&w->h1_conns, c, link);
    w->n_clients++;
    conn->read_high = cfg->limits.max_header_bytes + READ_AHEAD_MAX;
    conn->write_low = OUT_LOW;
    conn_set_owner(conn, &h1_conn_cb, c);
    conn_set_timeouts(conn, cfg->limits.client_timeout_ms, cfg->limits.client_timeout_ms);
    conn_read_enable(conn, true);
    /* The first request's head is timed from the accept, so the
     * connection is active from now on. */
    h1_activate(c);
    head_deadline_start(c);
    /* Bytes already read (a listener looked at them to choose us, or TLS
     * delivered them with the handshake): parse them now. */
    if (evbuffer_get_length(conn->in) > 0)
        h1_defer(c, EV_READ);
}

void http1_close_idle(struct worker *w)
{
    struct h1_conn *c, *next;
    for (c = LIST_FIRST(&w->h1_conns); c; c = next) {
        next = LIST_NEXT(c, link);
        if (c->state == H1_READ) {
            h1_close(c);
        } else if (c->conn->lingering && !c->linger_over) {
            /* a stopping daemon waits for no client to close */
            c->linger_over = true;
            h1_defer(c, EV_WRITE);
        }
    }
}

void http1_shed_pool(struct worker *w)
{
    while (w->h1_pool != NULL) {
        struct h1_active *a = w->h1_pool;
        w->h1_pool = a->next_free;
        w->h1_pool_n--;
        h1_active_free(a);
    }
}

void http1_free_all(struct worker *w)
{
    struct h1_conn *c;
    while ((c = LIST_FIRST(&w->h1_conns)) != NULL)
        h1_free(c);
    http1_shed_pool(w);
}
