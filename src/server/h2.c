/*
 * h2.c — the HTTP/2 front end.  See include/freshcache/server/h2.h.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <llhttp.h>
#include <nghttp2/nghttp2.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/base/peer_addr.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/server/conn.h"
#include "freshcache/server/exchange.h"
#include "freshcache/server/h2.h"
#include "freshcache/server/h2_mem.h"
#include "freshcache/server/worker.h"

/* Frames queued for a client beyond which nghttp2 is told to wait (the
 * socket is slower than the streams). */
#define OUT_HIGH (1024 * 1024)
#define OUT_LOW (256 * 1024)
/* Window the client may send request bodies into, per stream and in all;
 * bytes are acknowledged (WINDOW_UPDATE) as the origin takes them. */
#define UPLOAD_WINDOW (256 * 1024)
#define CONN_WINDOW (1024 * 1024)
/* Streams the client resets: a burst, then this many a second (rapid
 * reset, CVE-2023-44487).  Beyond: GOAWAY. */
#define RESET_BURST 200
#define RESET_RATE 33
/* CONTINUATION frames after one HEADERS (flood). */
#define MAX_CONTINUATIONS 8
/* PING, SETTINGS, PRIORITY and empty DATA frames: a burst, then this
 * many a second; beyond, ENHANCE_YOUR_CALM.  Not WINDOW_UPDATE: a client
 * may acknowledge every DATA frame it reads (python-h2, Go's 4 KiB
 * refresh), one or two per 16 KiB, so a fast download would look like a
 * flood. */
#define CONTROL_BURST 500
#define CONTROL_RATE 100
/* Queued acknowledgements (SETTINGS/PING ACKs) a client that does not
 * read may cause before the session ends. */
#define MAX_OUTBOUND_ACK 1000
/* HPACK dynamic table for our response fields (RFC 7541 §4.2): none.  An
 * idle connection kept about 3 KiB of indexed response fields (of 40);
 * nginx indexes none either: fields go as literals with an indexed name. */
#define DEFLATE_TABLE 0
/* Address space the worker's page slab reserves per connection allowed
 * (h2_mem.h): a session's frame buffer (5 pages) and stream map (1, 2 past
 * 192 streams), with room.  Only pages in use cost memory; past the
 * reservation, blocks come from malloc. */
#define H2_SLAB_PER_CONN (32 * 1024)
/* An idle connection gives its memory back this long after its last
 * activity (h2_idle_soon). */
#define IDLE_RELEASE_MS 200
/* Per-field overhead counted against limits.max_header_bytes (RFC 9113
 * §6.5.2's 32 octets). */
#define FIELD_OVERHEAD 32

LIST_HEAD(h2_stream_list, h2_stream);

struct h2_conn {
#define H2_CONN_MAGIC 0x4802c011u
    unsigned magic;
    unsigned n_streams;
    LIST_ENTRY(h2_conn) link;
    struct worker *w;
    struct conn *conn;
    nghttp2_session *sess;
    /* Both made when needed and freed while idle (h2_release): */
    struct event *later;            /* deferred nghttp2_session_send, or free when dead */
    struct event *tick;             /* once a second: streams that stall */
    struct h2_stream_list streams;
    /* Binary, as HTTP/1.1's (peer_addr.h): the text is made per stream. */
    struct peer_addr peer;
    bool tls;                       /* scheme https, else http */
    bool goaway;                    /* no new streams; close when the last ends */
    bool terminated;                /* a bound ended the session: start nothing more */
    bool dead;                      /* being freed: no more sends */
    bool preface_done;              /* the client's first SETTINGS arrived */
    bool settings_sent;             /* our first SETTINGS went out (send_cb) */
    bool released;                  /* idle, its memory given back (h2_release):
                                     * the session is packed, h2_session() wakes it */
    bool lingering;                 /* dead, closing in stages (h2_linger) */
    unsigned n_paused;              /* streams whose upload we hold back */
    double reset_tokens;            /* client resets bucket (rapid reset) */
    uint64_t reset_ms;
    double control_tokens;          /* control-frame bucket */
    uint64_t control_ms;
    /* Slow clients (see "slow clients" below). */
    uint64_t accept_ms;             /* the preface and SETTINGS are due header_timeout after */
    uint64_t paused_ms;             /* when an upload was last held back */
    struct h2_mem mem;              /* nghttp2's memory */
};

/* 240 bytes: malloc's 256-byte class (it was 344, in the 352 one).  An
 * idle connection is mostly its structs and OpenSSL's. */
_Static_assert(sizeof(struct h2_conn) <= 248, "an idle connection's h2_conn stays small");

struct h2_stream {
#define H2_STREAM_MAGIC 0x48025773u
    unsigned magic;
    LIST_ENTRY(h2_stream) link;
    struct h2_conn *c;
    int32_t id;
    char addr[PEER_ADDR_TEXT];      /* the client's, for the exchange (its log line) */
    struct http_msg req;
    struct exchange x;
    size_t header_bytes;
    bool started;                   /* the exchange has the request */
    bool req_done;                  /* END_STREAM from the client */
    bool deferred;                  /* the data provider waits for the body */
    bool upload_paused;
    bool responded;
    size_t unconsumed;              /* upload bytes not yet acknowledged */
    struct evbuffer *staged;        /* body bytes for the DATA frame in flight (references) */
    bool inline_only;               /* staged holds a body the proxy made: all of it */
    uint64_t progress_ms;           /* last DATA sent, or the response head */
    uint64_t begin_ms;              /* the first bytes of its HEADERS */
    uint64_t body_bytes;            /* request body received */
    uint64_t window_ms;             /* min_body_rate: the current window's start */
    uint64_t window_mark;           /* body_bytes when it started */
    bool cut;                       /* answered 408 as too slow: reset once that is out */
};

/* The client's address as text, for a log line (a compound literal: it
 * lives to the end of the statement that logs). */
#define ADDR(c) peer_addr_format(&(c)->peer, (char[PEER_ADDR_TEXT]){ 0 })

static void h2_close(struct h2_conn *c);
static void later_cb(evutil_socket_t fd, short what, void *arg);
static void tick_cb(evutil_socket_t fd, short what, void *arg);

/* Something happens on a connection that gave its memory back
 * (h2_release): the session's state is put back first. */
static void h2_wake(struct h2_conn *c)
{
    if (!c->released)
        return;
    h2_mem_wake(&c->mem);
    c->released = false;
}

/* The session, for nghttp2: the one way to it outside nghttp2's own
 * callbacks, since an idle connection's session is packed away
 * (h2_mem.h) and nghttp2 must never see it so. */
static nghttp2_session *h2_session(struct h2_conn *c)
{
    h2_wake(c);
    return c->sess;
}

/* Run later_cb from the loop: send what nghttp2 has, or free a dead
 * connection. */
static void run_later(struct h2_conn *c)
{
    if (c->later == NULL) {
        c->later = event_new(c->w->base, -1, 0, later_cb, c);
        AN(c->later);
    }
    event_active(c->later, EV_WRITE, 0);
}

static void schedule_flush(struct h2_conn *c)
{
    if (!c->dead)
        run_later(c);
}

/* The once-a-second watch (tick_cb) runs while the connection waits for
 * its preface or has streams. */
static void tick_arm(struct h2_conn *c)
{
    if (c->tick != NULL)
        return;
    c->tick = event_new(c->w->base, -1, EV_PERSIST, tick_cb, c);
    AN(c->tick);
    struct timeval one = { 1, 0 };
    AZ(event_add(c->tick, &one));
}

/* ---- streams ------------------------------------------------------------ */

static const struct exchange_fe h2_fe;

static struct h2_stream *stream_new(struct h2_conn *c, int32_t id)
{
    struct h2_stream *st = calloc(1, sizeof *st);
    AN(st);
    st->magic = H2_STREAM_MAGIC;
    st->c = c;
    st->id = id;
    http_msg_init(&st->req);
    st->req.http_major = 2;
    st->req.http_minor = 0;
    st->req.method = -1;
    st->staged = evbuffer_new();
    AN(st->staged);
    st->begin_ms = worker_now_ms(c->w);
    exchange_init(&st->x, c->w, &h2_fe, st);
    LIST_INSERT_HEAD(&c->streams, st, link);
    c->n_streams++;
    return st;
}

static void stream_free(struct h2_stream *st)
{
    CHECK_OBJ_NOTNULL(st, H2_STREAM_MAGIC);
    if (st->upload_paused)
        st->c->n_paused--;
    exchange_fini(&st->x);
    http_msg_free(&st->req);
    evbuffer_free(st->staged);
    LIST_REMOVE(st, link);
    st->c->n_streams--;
    st->magic = 0;
    free(st);
}

static struct h2_stream *stream_of(nghttp2_session *s, int32_t id)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
    if (st)
        CHECK_OBJ(st, H2_STREAM_MAGIC);
    return st;
}

/* llhttp's method number for a method name (the exchange and the origin
 * request speak llhttp's numbers).  -1: unknown. */
static int method_number(const char *m, size_t len)
{
#define XX(num, name, string)                                         \
    if (len == sizeof(#string) - 1 && memcmp(m, #string, len) == 0)    \
        return num;
    HTTP_METHOD_MAP(XX)
#undef XX
    return -1;
}

/* ---- the response, from the exchange ------------------------------------ */

static ssize_t data_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    (void)s;
    (void)id;
    (void)buf;
    (void)user;
    struct h2_stream *st = source->ptr;
    CHECK_OBJ_NOTNULL(st, H2_STREAM_MAGIC);
    if (st->inline_only) {          /* a short body the proxy made */
        size_t staged = evbuffer_get_length(st->staged);
        size_t n = staged < length ? staged : length;
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
        if (n == staged)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    FC_ASSERT(evbuffer_get_length(st->staged) == 0);
    size_t n = 0;
    enum body_read r = exchange_body_read(&st->x, st->staged, length, &n);
    switch (r) {
    case BODY_READ_END:
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_COPY;
        return (ssize_t)n;
    case BODY_READ_FAILED:
        /* The origin failed mid-body: the stream is reset, never presented
         * as complete. */
        evbuffer_drain(st->staged, evbuffer_get_length(st->staged));
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    case BODY_READ_MORE:
        if (n == 0) {
            st->deferred = true;    /* fe_body_ready resumes */
            return NGHTTP2_ERR_DEFERRED;
        }
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
        return (ssize_t)n;
    }
    WRONG("body_read");
}

static int send_data(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd,
                     size_t length, nghttp2_data_source *source, void *user)
{
    (void)s;
    struct h2_conn *c = user;
    struct h2_stream *st = source->ptr;
    CHECK_OBJ_NOTNULL(st, H2_STREAM_MAGIC);
    if (conn_pending(c->conn) >= OUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    FC_ASSERT(frame->data.padlen == 0);
    evbuffer_add(c->conn->out, framehd, 9);
    /* The body's bytes move by reference: no copy, whatever the size. */
    AN(evbuffer_remove_buffer(st->staged, c->conn->out, length) == (int)length);
    st->progress_ms = worker_now_ms(c->w);
    return 0;
}

/* Lower-case names (HTTP/2 requires them) and the values, one nv each. */
struct nv_list {
    nghttp2_nv nv[128];
    size_t n;
    char buf[16384];                /* lower-cased names */
    size_t used;
};

static void nv_add(struct nv_list *l, const char *name, size_t nlen, const char *value,
                   size_t vlen)
{
    if (l->n == FC_ARRAY_LEN(l->nv) || l->used + nlen > sizeof l->buf)
        return;     /* a head this large was cut; the stored ones never are */
    char *ln = l->buf + l->used;
    for (size_t i = 0; i < nlen; i++)
        ln[i] = (char)tolower((unsigned char)name[i]);
    l->used += nlen;
    /* nghttp2 copies both: the head's buffers do not outlive this call. */
    l->nv[l->n++] = (nghttp2_nv){ (uint8_t *)ln, (uint8_t *)value, nlen, vlen,
                                  NGHTTP2_NV_FLAG_NONE };
}

/* "Name: value\r\n" lines, as the cache stores heads. */
static void nv_add_lines(struct nv_list *l, const char *p, size_t len)
{
    const char *end = p + len;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) {
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            /* Connection-specific fields have no place in HTTP/2 (RFC 9113
             * §8.2.2); a stored head has none, an origin's pass-through
             * head had them removed as hop-by-hop. */
            nv_add(l, p, (size_t)(colon - p), v, (size_t)(eol - v));
        }
        p = eol + 2;
    }
}

static void fe_send_head(struct exchange *x, const struct resp_head *h)
{
    struct h2_stream *st = x->fe_ctx;
    CHECK_OBJ_NOTNULL(st, H2_STREAM_MAGIC);
    struct h2_conn *c = st->c;
    struct nv_list *l = malloc(sizeof *l);
    AN(l);
    l->n = l->used = 0;
    char status[4], clen[24];
    snprintf(status, sizeof status, "%03d", h->status);
    nv_add(l, ":status", 7, status, 3);
    if (h->stored)
        nv_add_lines(l, h->stored + h->fields_off, h->stored_len - h->fields_off);
    nv_add_lines(l, h->extra, h->extra_len);
    bool bodyless = h->status == 304 || h->status == 204 || h->status < 200;
    if (!bodyless && h->content_length != UINT64_MAX) {
        int n = snprintf(clen, sizeof clen, "%llu", (unsigned long long)h->content_length);
        nv_add(l, "content-length", 14, clen, (size_t)n);
    }
    nghttp2_data_provider prd = { .source.ptr = st, .read_callback = data_read };
    bool body = h->body || h->inline_len > 0;
    if (h->inline_len > 0) {
        /* The exchange's buffer is on its stack: keep a copy to send. */
        evbuffer_add(st->staged, h->inline_body, h->inline_len);
        st->inline_only = true;
    }
    st->responded = true;
    st->progress_ms = worker_now_ms(c->w);
    int rv = nghttp2_submit_response(h2_session(c), st->id, l->nv, l->n, body ? &prd : NULL);
    free(l);
    if (rv != 0)
        log_debug("h2 %s: stream %d: cannot submit the response: %s", ADDR(c), st->id,
                  nghttp2_strerror(rv));
    schedule_flush(c);
}

static void fe_body_ready(struct exchange *x)
{
    struct h2_stream *st = x->fe_ctx;
    CHECK_OBJ_NOTNULL(st, H2_STREAM_MAGIC);
    if (!st->deferred)
        return;
    st->deferred = false;
    nghttp2_session_resume_data(h2_session(st->c), st->id);
    schedule_flush(st->c);
}

static void fe_upload_pause(struct exchange *x, bool pause)
{
    struct h2_stream *st = x->fe_ctx;
    CHECK_OBJ_NOTNULL(st, H2_STREAM_MAGIC);
    if (st->upload_paused != pause) {
        /* A held-back upload is not the client's slowness (min_body_rate):
         * nor are the others on the connection, whose window it may hold. */
        if (pause)
            st->c->n_paused++;
        else
            st->c->n_paused--;
        st->c->paused_ms = worker_now_ms(st->c->w);
    }
    st->upload_paused = pause;
    if (!pause && st->unconsumed > 0) {
        /* The origin caught up: open the window for what we held back. */
        nghttp2_session_consume(h2_session(st->c), st->id, st->unconsumed);
        st->unconsumed = 0;
        schedule_flush(st->c);
    }
}

static void fe_send_interim(struct exchange *x, int status, const char *lines, size_t len)
{
    struct h2_stream *st = x->fe_ctx;
    CHECK_OBJ_NOTNULL(st, H2_STREAM_MAGIC);
    if (st->responded)
        return;
    struct nv_list *l = malloc(sizeof *l);
    AN(l);
    l->n = l->used = 0;
    char code[4];
    snprintf(code, sizeof code, "%03d", status);
    nv_add(l, ":status", 7, code, 3);
    nv_add_lines(l, lines, len);
    /* A HEADERS frame without END_STREAM; nghttp2 copies the fields. */
    int rv = nghttp2_submit_headers(h2_session(st->c), NGHTTP2_FLAG_NONE, st->id, NULL, l->nv,
                                    l->n, NULL);
    free(l);
    if (rv != 0)
        log_debug("h2 %s: stream %d: cannot submit a %d: %s", ADDR(st->c), st->id, status,
                  nghttp2_strerror(rv));
    schedule_flush(st->c);
}

static const struct exchange_fe h2_fe = {
    .send_head = fe_send_head,
    .body_ready = fe_body_ready,
    .upload_pause = fe_upload_pause,
    .send_interim = fe_send_interim,
};

/* ---- requests: nghttp2's callbacks ---------------------------------------- */

/* A token bucket: `burst` at most, refilled at `rate` a second. */
static bool take_token(struct h2_conn *c, double *tokens, uint64_t *last_ms, double rate,
                       double burst)
{
    uint64_t now = worker_now_ms(c->w);
    *tokens += (double)(now - *last_ms) * rate / 1000.0;
    if (*tokens > burst)
        *tokens = burst;
    *last_ms = now;
    if (*tokens < 1)
        return false;
    *tokens -= 1;
    return true;
}

static bool control_frame_allowed(struct h2_conn *c)
{
    return take_token(c, &c->control_tokens, &c->control_ms, CONTROL_RATE, CONTROL_BURST);
}

/* End the session with a GOAWAY; nothing in the rest of this read starts. */
static void terminate(struct h2_conn *c, uint32_t code, const char *why)
{
    log_debug("h2 %s: %s: GOAWAY", ADDR(c), why);
    c->terminated = true;
    nghttp2_session_terminate_session(h2_session(c), code);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    struct h2_conn *c = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (c->n_streams >= worker_cfg(c->w)->limits.max_concurrent_streams) {
        /* Over the limit we advertised (see "the stream limit"): a stream
         * error, the others go on (RFC 9113 §5.1.2).  nghttp2 still
         * decodes the header block, so HPACK stays in step; the stream
         * gets no h2_stream, so nothing starts.  Refusals are as cheap to
         * ask for as control frames and share their bound. */
        log_debug("h2 %s: stream %d over max_concurrent_streams: refused", ADDR(c),
                  frame->hd.stream_id);
        if (!control_frame_allowed(c))
            terminate(c, NGHTTP2_ENHANCE_YOUR_CALM, "streams refused too often");
        else
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                      NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    struct h2_stream *st = stream_new(c, frame->hd.stream_id);
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, st);
    tick_arm(c);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags;
    struct h2_conn *c = user;
    struct h2_stream *st = stream_of(s, frame->hd.stream_id);
    if (st == NULL || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;   /* trailers: not forwarded */
    /* The decoded size counts, not the compressed one: an HPACK bomb
     * (tiny frames that expand) meets the same bound as plain headers. */
    st->header_bytes += namelen + valuelen + FIELD_OVERHEAD;
    if (st->header_bytes > worker_cfg(c->w)->limits.max_header_bytes) {
        log_debug("h2 %s: stream %d: header list over limits.max_header_bytes", ADDR(c), st->id);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* RST_STREAM */
    }
    const char *n = (const char *)name, *v = (const char *)value;
    struct http_msg *m = &st->req;
    if (namelen > 0 && n[0] == ':') {
        if (namelen == 7 && memcmp(n, ":method", 7) == 0) {
            m->method = method_number(v, valuelen);
        } else if (namelen == 5 && memcmp(n, ":path", 5) == 0) {
            m->url_off = http_msg_append(m, v, valuelen);
            m->url_len = (uint32_t)valuelen;
        } else if (namelen == 10 && memcmp(n, ":authority", 10) == 0) {
            if (!http_msg_has(m, "Host"))
                http_msg_add(m, "Host", 4, v, valuelen);
        }
        return 0;   /* :scheme: the connection's is what we know */
    }
    if (namelen == 4 && memcmp(n, "host", 4) == 0 && http_msg_has(m, "Host"))
        return 0;   /* :authority wins (RFC 9113 §8.3.1) */
    if (namelen == 6 && memcmp(n, "cookie", 6) == 0) {
        /* HTTP/2 splits cookies into several fields; an HTTP/1.1 origin
         * must get one (RFC 9113 §8.2.3). */
        uint32_t it = 0;
        const struct http_field *f = http_msg_next(m, "Cookie", &it);
        if (f) {
            size_t ol = f->value_len;
            char *joined = malloc(ol + 2 + valuelen);
            AN(joined);
            memcpy(joined, http_field_value(m, f), ol);
            memcpy(joined + ol, "; ", 2);
            memcpy(joined + ol + 2, v, valuelen);
            http_msg_remove(m, "Cookie");
            http_msg_add(m, "Cookie", 6, joined, ol + 2 + valuelen);
            free(joined);
            return 0;
        }
    }
    http_msg_add(m, n, namelen, v, valuelen);
    return 0;
}

/* The request head is complete: the exchange takes it. */
static void start_exchange(struct h2_conn *c, struct h2_stream *st, bool end_stream)
{
    struct http_msg *m = &st->req;
    st->started = true;
    st->req_done = end_stream;
    st->window_ms = worker_now_ms(c->w);
    http_msg_fields_done(m);
    size_t cl = 0;
    const char *clv = http_msg_get(m, "Content-Length", &cl);
    uint64_t body_length = UINT64_MAX;
    if (clv) {
        char tmp[24];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(cl < 23 ? cl : 23), clv);
        body_length = strtoull(tmp, NULL, 10);
    }
    struct exchange_request info = {
        .client_addr = peer_addr_format(&c->peer, st->addr),
        .scheme = c->tls ? "https" : "http",
        .has_body = !end_stream,
        .body_length = body_length,
    };
    if (m->method < 0 || m->method == HTTP_CONNECT) {
        COUNT(&c->w->counters, requests, 1);
        st->x.req = m;
        exchange_refuse(&st->x, &info, 501, NULL,
                        m->method < 0 ? "unknown method" : "CONNECT is not supported", false);
        return;
    }
    exchange_start(&st->x, m, &info);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    struct h2_conn *c = user;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
        struct h2_stream *st = stream_of(s, frame->hd.stream_id);
        if (st == NULL)
            return 0;
        bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
        /* The session is ended (a rapid-reset or flood bound) but nghttp2
         * still parses the rest of this read: the streams in it are above
         * the GOAWAY's last-stream-id, so none may reach the origin. */
        if (c->terminated)
            return 0;
        if (!st->started && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            start_exchange(c, st, end);
        } else if (end && !st->req_done) {      /* trailers end the body */
            st->req_done = true;
            exchange_upload_end(&st->x);
        }
        return 0;
    }
    case NGHTTP2_DATA: {
        struct h2_stream *st = stream_of(s, frame->hd.stream_id);
        if (frame->hd.length == 0 && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
            !control_frame_allowed(c))
            goto flood;
        if (st && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !st->req_done) {
            st->req_done = true;
            exchange_upload_end(&st->x);
        }
        return 0;
    }
    case NGHTTP2_RST_STREAM:
        /* Rapid reset (CVE-2023-44487): our own bucket, so that the
         * streams after the bound are not started (nghttp2's, set higher
         * as a backstop, only stops them once its GOAWAY is sent). */
        if (!take_token(c, &c->reset_tokens, &c->reset_ms, RESET_RATE, RESET_BURST))
            terminate(c, NGHTTP2_ENHANCE_YOUR_CALM, "streams reset too fast");
        return 0;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
            c->preface_done = true;     /* the first one completes the preface */
        /* fall through */
    case NGHTTP2_PING:
    case NGHTTP2_PRIORITY:
        if (!control_frame_allowed(c))
            goto flood;
        return 0;
    default:
        return 0;
    }
flood:
    terminate(c, NGHTTP2_ENHANCE_YOUR_CALM, "control frame flood");
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    (void)flags;
    (void)user;
    struct h2_stream *st = stream_of(s, id);
    if (st == NULL || !st->started || st->cut) {
        nghttp2_session_consume(s, id, len);    /* nobody wants it: keep windows open */
        return 0;
    }
    st->body_bytes += len;
    exchange_upload(&st->x, (const char *)data, len);
    if (st->upload_paused)
        st->unconsumed += len;      /* acknowledged when the origin catches up */
    else
        nghttp2_session_consume(s, id, len);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *user)
{
    (void)error_code;
    struct h2_conn *c = user;
    struct h2_stream *st = stream_of(s, id);
    if (st == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    /* Upload bytes held back while the origin was slow (an upload can end
     * while paused, and then nothing resumes it): the connection's window
     * gets them back, or it shrinks for good. */
    if (st->unconsumed > 0)
        nghttp2_session_consume_connection(s, st->unconsumed);
    stream_free(st);    /* the exchange ends: its access-log line */
    if (c->goaway && c->n_streams == 0)
        schedule_flush(c);          /* may close now */
    return 0;
}

/* The stream limit.  nghttp2 (1.52) treats a stream beyond the limit it
 * advertised as a connection error once the client has acknowledged it
 * (GOAWAY PROTOCOL_ERROR, checked in nghttp2_session_on_request_headers_
 * received before any callback of ours), and the client's streams in
 * flight are lost with it; RFC 9113 §5.1.2 wants a stream error.  No
 * nghttp2 option sets the limit it enforces apart from the one it sends,
 * so nghttp2 is given none (h2_serve) and the client is told
 * limits.max_concurrent_streams: the value is set in our first SETTINGS
 * frame on its way out, and on_begin_headers refuses a stream beyond it
 * with REFUSED_STREAM, before the acknowledgement and after alike. */
#define FRAME_HEADER 9
#define SETTING_SIZE 6

static void settings_set_stream_limit(uint8_t *frame, size_t len, uint32_t limit)
{
    /* The server's connection preface is its SETTINGS frame (RFC 9113
     * §3.4), and nghttp2 hands each frame to send_cb whole. */
    FC_ASSERT(len >= FRAME_HEADER && frame[3] == NGHTTP2_SETTINGS &&
              !(frame[4] & NGHTTP2_FLAG_ACK));
    size_t payload = (size_t)frame[0] << 16 | (size_t)frame[1] << 8 | frame[2];
    FC_ASSERT(len == FRAME_HEADER + payload && payload % SETTING_SIZE == 0);
    for (size_t off = FRAME_HEADER; off < len; off += SETTING_SIZE) {
        if ((frame[off] << 8 | frame[off + 1]) == NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) {
            uint32_t be = htonl(limit);
            memcpy(frame + off + 2, &be, sizeof be);
            return;
        }
    }
    FC_ASSERT(!"our SETTINGS carries MAX_CONCURRENT_STREAMS");
}

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *user)
{
    (void)s;
    (void)flags;
    struct h2_conn *c = user;
    if (conn_pending(c->conn) >= OUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (!c->settings_sent) {
        uint8_t frame[FRAME_HEADER + 8 * SETTING_SIZE];
        FC_ASSERT(len <= sizeof frame);
        memcpy(frame, data, len);
        settings_set_stream_limit(frame, len, worker_cfg(c->w)->limits.max_concurrent_streams);
        c->settings_sent = true;
        evbuffer_add(c->conn->out, frame, len);
        return (ssize_t)len;
    }
    evbuffer_add(c->conn->out, data, len);
    return (ssize_t)len;
}

/* ---- the connection ------------------------------------------------------ */

/* An idle connection (no stream, nothing for nghttp2 to send, nothing
 * queued for the socket) keeps only its session's state, packed: every
 * page of nghttp2's goes back to the system (h2_mem.h), and so do the
 * socket buffers, as an idle HTTP/1.1 connection's do.  The next bytes
 * either way bring them back (h2_session puts the state back).  Not at once: a busy client (a page's
 * next requests, h2load's) is idle between batches for a moment, and
 * giving pages back to fault them in again then costs more CPU than
 * HTTP/2 itself; IDLE_RELEASE_MS after the last activity. */
static bool h2_is_idle(struct h2_conn *c)
{
    return !c->released && c->n_streams == 0 && !nghttp2_session_want_write(h2_session(c)) &&
           conn_pending(c->conn) == 0;
}

/* Idle now: give back in IDLE_RELEASE_MS, unless activity comes first
 * (each call moves the timer). */
static void h2_idle_soon(struct h2_conn *c)
{
    if (!h2_is_idle(c))
        return;
    if (c->later == NULL) {
        c->later = event_new(c->w->base, -1, 0, later_cb, c);
        AN(c->later);
    }
    struct timeval tv = { 0, IDLE_RELEASE_MS * 1000 };
    AZ(event_add(c->later, &tv));
}

static void h2_release(struct h2_conn *c)
{
    if (!h2_is_idle(c))
        return;
    h2_mem_sleep(&c->mem);
    conn_release_buffers(c->conn);
    /* Nothing to watch or to do later (this may run inside either
     * callback: neither touches its event after us). */
    if (c->preface_done && c->tick != NULL) {
        event_free(c->tick);
        c->tick = NULL;
    }
    if (c->later != NULL) {
        event_free(c->later);
        c->later = NULL;
    }
    c->released = true;
}

/* Let nghttp2 write what it has, hand it to the socket, and close when the
 * session has nothing more to do. */
static void h2_send(struct h2_conn *c)
{
    if (c->dead)
        return;
    if (c->released)
        return;     /* idle, and still nothing to do: whatever gives nghttp2
                     * something to send goes through h2_session() */
    conn_claim_buffers(c->conn);
    for (;;) {
        int rv = nghttp2_session_send(h2_session(c));
        if (rv != 0) {
            log_debug("h2 %s: send: %s", ADDR(c), nghttp2_strerror(rv));
            h2_close(c);
            return;
        }
        if (conn_flush(c->conn) != 0) {
            h2_close(c);
            return;
        }
        /* nghttp2 stopped at OUT_HIGH (WOULDBLOCK) but the socket took it
         * all: go on now.  If the socket pushed back, on_drain will. */
        if (conn_pending(c->conn) > 0 || !nghttp2_session_want_write(h2_session(c)))
            break;
    }
    nghttp2_session *sess = h2_session(c);
    bool done = !nghttp2_session_want_read(sess) && !nghttp2_session_want_write(sess);
    if ((done || (c->goaway && c->n_streams == 0)) && conn_pending(c->conn) == 0)
        h2_close(c);
    else
        h2_idle_soon(c);
}

static void h2_free(struct h2_conn *c);

/* Made active: send (or free when dead); its timer expired: idle long
 * enough (h2_idle_soon). */
/*
 * Closing in stages, as HTTP/1.1 does (http1.c, RFC 9112 §9.6): the GOAWAY
 * we end a connection with (a bound, a protocol error, client_timeout, a
 * reload) is only useful if the client reads it, and closing a socket that
 * holds bytes we did not read — the client's frames in flight — sends a
 * reset that can destroy it.  So once everything is written, our side is
 * shut and the client's bytes are read and dropped until it closes, 5 s
 * of silence or 30 s in all.  Not when the client closed or the socket
 * failed, nor while the daemon stops (h2_goaway_all ends those under way).
 */
#define LINGER_IDLE_MS 5000
#define LINGER_MAX_MS 30000

static bool h2_may_linger(const struct h2_conn *c)
{
    return !c->conn->eof && !c->conn->failed && conn_pending(c->conn) == 0 &&
           !atomic_load(&c->w->srv->stopping);
}

static void h2_linger(struct h2_conn *c)
{
    c->lingering = true;
    conn_linger(c->conn, LINGER_IDLE_MS);
    struct timeval tv = { .tv_sec = LINGER_MAX_MS / 1000, .tv_usec = 0 };
    AZ(event_add(c->later, &tv));   /* later_cb frees at the latest then */
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct h2_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, H2_CONN_MAGIC);
    if (c->dead && !c->lingering && h2_may_linger(c))
        h2_linger(c);
    else if (c->dead)
        h2_free(c);
    else if (what == EV_TIMEOUT)
        h2_release(c);
    else
        h2_send(c);
}

static void h2_free(struct h2_conn *c)
{
    CHECK_OBJ_NOTNULL(c, H2_CONN_MAGIC);
    nghttp2_session *sess = h2_session(c);    /* nghttp2 frees what it holds */
    c->dead = true;
    struct h2_stream *st;
    while ((st = LIST_FIRST(&c->streams)) != NULL) {
        nghttp2_session_set_stream_user_data(sess, st->id, NULL);
        stream_free(st);
    }
    nghttp2_session_del(sess);
    if (c->later)
        event_free(c->later);
    if (c->tick)
        event_free(c->tick);
    conn_free(c->conn);
    LIST_REMOVE(c, link);
    c->w->n_clients--;
    worker_client_gone(c->w);
    c->magic = 0;
    free(c);
}

/* The connection is over: free it from its own event. */
static void h2_close(struct h2_conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    conn_read_enable(c->conn, false);
    run_later(c);
}

static void on_read(void *arg)
{
    struct h2_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, H2_CONN_MAGIC);
    h2_wake(c);                     /* bytes came: h2_send looks again */
    conn_claim_buffers(c->conn);
    struct evbuffer *in = c->conn->in;
    while (evbuffer_get_length(in) > 0 && !c->dead) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        ssize_t n = nghttp2_session_mem_recv(h2_session(c), v.iov_base, v.iov_len);
        if (n < 0) {
            log_debug("h2 %s: %s", ADDR(c), nghttp2_strerror((int)n));
            /* nghttp2 queued a GOAWAY for protocol errors: send it, then go. */
            nghttp2_session_send(h2_session(c));
            if (conn_flush(c->conn) != 0)
                log_debug("h2 %s: the GOAWAY could not be written", ADDR(c));
            h2_close(c);
            return;
        }
        evbuffer_drain(in, (size_t)n);
    }
    h2_send(c);
}

static void on_drain(void *arg)
{
    struct h2_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, H2_CONN_MAGIC);
    h2_send(c);     /* nghttp2 had to wait: go on */
}

static void on_event(void *arg, enum conn_event ev)
{
    struct h2_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, H2_CONN_MAGIC);
    if (c->lingering) {     /* the client closed or went silent: free it */
        run_later(c);
        return;
    }
    if (ev == CONN_READ_TIMEOUT && c->n_streams > 0)
        return;     /* streams are under way; tick_cb watches them */
    if (ev == CONN_READ_TIMEOUT && !c->goaway) {
        /* Idle for client_timeout: say goodbye properly. */
        c->goaway = true;
        nghttp2_session_terminate_session(h2_session(c), NGHTTP2_NO_ERROR);
        h2_send(c);
        return;
    }
    conn_discard_output(c->conn);
    h2_close(c);
}

static const struct conn_cb h2_conn_cb = {
    .on_read = on_read,
    .on_drain = on_drain,
    .on_event = on_event,
};

/* ---- slow clients ------------------------------------------------------ */

/* limits.header_timeout and limits.min_body_rate, as over HTTP/1.1
 * (http1.c), checked by the connection's once-a-second tick rather than a
 * timer per stream:
 *
 * - the preface and the client's first SETTINGS are due header_timeout
 *   after the accept (TLS: after the handshake);
 * - a stream's header block (HEADERS and its CONTINUATIONs) is due
 *   header_timeout after its first bytes.  Nothing may come between the
 *   frames of a header block (RFC 9113 §6.10), so a block that stalls
 *   stalls the whole connection: it ends (GOAWAY PROTOCOL_ERROR, as nginx
 *   does when client_header_timeout expires in the middle of a frame);
 * - a request body must average min_body_rate over each header_timeout
 *   window, except a window in which we held an upload back on this
 *   connection (a held-back stream's unacknowledged bytes also take the
 *   connection's window from the others).  A stream too slow is answered
 *   408 if nothing was answered yet, then reset with NO_ERROR once the 408
 *   is out (RFC 9113 §8.1: stop sending, the response is complete); a
 *   stream already answering is reset with CANCEL (its response cut, as
 *   HTTP/1.1 closes the connection). */

/* `why` ends the session: GOAWAY naming `last` as the last stream that
 * may have been processed, then closed once it is out. */
static void too_slow_conn(struct h2_conn *c, int32_t last, const char *why)
{
    COUNT(&c->w->counters, client_errors, 1);
    log_debug("h2 %s: %s: GOAWAY", ADDR(c), why);
    c->terminated = true;
    nghttp2_session_terminate_session2(h2_session(c), last, NGHTTP2_PROTOCOL_ERROR);
}

static void too_slow_body(struct h2_conn *c, struct h2_stream *st)
{
    COUNT(&c->w->counters, client_errors, 1);
    log_debug("h2 %s: stream %d: request body slower than min_body_rate", ADDR(c), st->id);
    if (!st->responded) {
        st->cut = true;
        exchange_respond(&st->x, 408, "fwd=bypass", "request body slower than min_body_rate",
                         false);
        /* The request is over for us: its log line now, and the origin
         * request (waiting for the rest of the body) let go. */
        exchange_end(&st->x);
        return;     /* on_frame_send resets the stream once the 408 is out */
    }
    nghttp2_session *sess = h2_session(c);
    uint32_t code = nghttp2_session_get_stream_local_close(sess, st->id) == 1 ? NGHTTP2_NO_ERROR
                                                                             : NGHTTP2_CANCEL;
    nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, st->id, code);
}

/* The body's window is over: fast enough, or excused, starts the next. */
static bool body_too_slow(struct h2_conn *c, struct h2_stream *st, uint64_t now)
{
    const struct fc_config *cfg = worker_cfg(c->w);
    uint64_t elapsed = now - st->window_ms;
    if (!st->started || st->req_done || st->cut || cfg->limits.min_body_rate == 0 ||
        elapsed < cfg->limits.header_timeout_ms)
        return false;
    bool excused = c->n_paused > 0 || c->paused_ms >= st->window_ms;
    if (!excused && st->body_bytes - st->window_mark < cfg->limits.min_body_rate * elapsed / 1000)
        return true;
    st->window_ms = now;
    st->window_mark = st->body_bytes;
    return false;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    (void)user;
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
        (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS))
        return 0;
    struct h2_stream *st = stream_of(s, frame->hd.stream_id);
    if (st && st->cut && !st->req_done)
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
    return 0;
}

/* Once a second: the deadlines above, and a stream whose response makes
 * no progress for client_timeout (the client never opens its window) is
 * reset: its body waits in the cache, but the stream must not hold a slot
 * forever. */
static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct h2_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, H2_CONN_MAGIC);
    if (c->dead || c->terminated)
        return;
    const struct fc_config *cfg = worker_cfg(c->w);
    uint64_t now = worker_now_ms(c->w), limit = cfg->limits.client_timeout_ms;
    uint64_t head_limit = cfg->limits.header_timeout_ms;
    if (!c->preface_done && now - c->accept_ms >= head_limit) {
        too_slow_conn(c, 0, "no preface and SETTINGS within header_timeout");
        h2_send(c);
        return;
    }
    bool any = false;
    for (struct h2_stream *st = LIST_FIRST(&c->streams); st; st = LIST_NEXT(st, link)) {
        if (!st->started && now - st->begin_ms >= head_limit) {
            /* This stream never started (nor any after it): a client may
             * send it again elsewhere. */
            too_slow_conn(c, st->id > 2 ? st->id - 2 : 0,
                          "a header block not complete within header_timeout");
            any = true;
            break;      /* nothing more on this connection */
        }
        if (body_too_slow(c, st, now)) {
            too_slow_body(c, st);
            any = true;
        }
        if (st->responded && now - st->progress_ms > limit &&
            nghttp2_session_get_stream_remote_window_size(h2_session(c), st->id) <= 0) {
            log_debug("h2 %s: stream %d stalled for client_timeout: reset", ADDR(c), st->id);
            nghttp2_submit_rst_stream(h2_session(c), NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
            st->progress_ms = now;
            any = true;
        }
    }
    if (any)
        h2_send(c);
}

static nghttp2_session_callbacks *callbacks(void)
{
    /* Built once per connection: nghttp2 copies it into the session. */
    nghttp2_session_callbacks *cb;
    AZ(nghttp2_session_callbacks_new(&cb));
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_send_data_callback(cb, send_data);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    return cb;
}

void h2_serve(struct worker *w, struct conn *conn, const struct peer_addr *peer, bool tls)
{
    const struct fc_config *cfg = worker_cfg(w);
    struct h2_conn *c = calloc(1, sizeof *c);
    AN(c);
    c->magic = H2_CONN_MAGIC;
    c->w = w;
    c->conn = conn;
    c->peer = *peer;
    c->tls = tls;
    LIST_INIT(&c->streams);
    c->control_tokens = CONTROL_BURST;
    c->control_ms = worker_now_ms(w);
    c->reset_tokens = RESET_BURST;
    c->reset_ms = c->control_ms;
    c->accept_ms = c->control_ms;

    nghttp2_session_callbacks *cb = callbacks();
    nghttp2_option *opt;
    AZ(nghttp2_option_new(&opt));
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, MAX_OUTBOUND_ACK);
    nghttp2_option_set_stream_reset_rate_limit(opt, 5 * RESET_BURST, RESET_RATE);
    nghttp2_option_set_max_continuations(opt, MAX_CONTINUATIONS);
    /* Closed streams are kept only for RFC 7540 priorities, which we do
     * not use: let them go. */
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, DEFLATE_TABLE);
    if (w->h2_pool == NULL)
        w->h2_pool = h2_mem_pool_new(H2_SLAB_PER_CONN * (size_t)(cfg->limits.max_connections + 64));
    h2_mem_init(&c->mem, w->h2_pool);
    nghttp2_mem mem = h2_mem_creating(&c->mem);
    AZ(nghttp2_session_server_new3(&c->sess, cb, c, opt, &mem));
    h2_mem_created(&c->mem);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);

    nghttp2_settings_entry settings[] = {
        /* The client is told limits.max_concurrent_streams (send_cb): see
         * "the stream limit". */
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, UINT32_MAX },    /* nghttp2's "none" */
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->limits.max_header_bytes },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, UPLOAD_WINDOW },
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
    };
    nghttp2_session *sess = h2_session(c);
    AZ(nghttp2_submit_settings(sess, NGHTTP2_FLAG_NONE, settings, FC_ARRAY_LEN(settings)));
    AZ(nghttp2_session_set_local_window_size(sess, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW));

    LIST_INSERT_HEAD(&w->h2_conns, c, link);
    w->n_clients++;
    conn->write_low = OUT_LOW;
    conn_set_owner(conn, &h2_conn_cb, c);
    conn_set_timeouts(conn, cfg->limits.client_timeout_ms, cfg->limits.client_timeout_ms);
    conn_read_enable(conn, true);
    tick_arm(c);        /* the preface is due */
    /* The preface may already be buffered (a cleartext listener peeked
     * at it): parse it now, and send our SETTINGS. */
    on_read(c);
}

void h2_goaway_all(struct worker *w)
{
    bool stopping = atomic_load(&w->srv->stopping);
    for (struct h2_conn *c = LIST_FIRST(&w->h2_conns); c; c = LIST_NEXT(c, link)) {
        if (c->lingering && stopping)
            run_later(c);   /* a stopping daemon waits for no client to close */
        if (c->goaway || c->dead)
            continue;
        c->goaway = true;
        /* The last stream we took: those below finish, no new ones. */
        nghttp2_session *sess = h2_session(c);
        int32_t last = nghttp2_session_get_last_proc_stream_id(sess);
        nghttp2_submit_goaway(sess, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL, 0);
        schedule_flush(c);
    }
}

void h2_free_all(struct worker *w)
{
    struct h2_conn *c;
    while ((c = LIST_FIRST(&w->h2_conns)) != NULL)
        h2_free(c);
    h2_mem_pool_destroy(w->h2_pool);
    w->h2_pool = NULL;
}
