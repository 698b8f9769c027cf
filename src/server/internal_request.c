/*
 * internal_request.c — the daemon's own GETs, through an exchange.  See
 * include/freshcache/server/internal_request.h.
 *
 *   caller loop: internal_request ──ev_worker──▶ worker: exchange_start
 *                                                  send_head, body_ready:
 *                                                  read (keep or discard)
 *   caller loop: done ◀──ev_done── worker: finished ◀──ev_worker─┘
 *
 * Two owners share a request (refs): the caller until `done` ran or it
 * cancelled, the worker until the exchange is over.  `lock` orders the
 * worker's "done is ready" with the caller's cancel, the only moment both
 * touch the same fields; everything else belongs to one thread at a time.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <llhttp.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/cache/cache_key.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/server/exchange.h"
#include "freshcache/server/internal_request.h"
#include "freshcache/server/worker.h"

/* Body bytes taken from the exchange per read. */
#define READ_STEP (64 * 1024)

enum ireq_phase {
    IREQ_QUEUED = 0,    /* handed to the worker, not started yet */
    IREQ_RUNNING,       /* its exchange is under way */
    IREQ_FINISHING,     /* answered (or failed): the exchange ends next */
    IREQ_DONE,          /* over on the worker; the result waits for the caller */
};

struct internal_req {
#define IREQ_MAGIC 0x1e7a9b5cu
    unsigned magic;
    pthread_mutex_t lock;
    unsigned refs;                  /* under lock */
    bool cancelled;                 /* under lock */
    enum ireq_phase phase;          /* the worker's */
    struct worker *w;
    struct event *ev_worker;        /* on w->base: start, then finish */
    struct event *ev_done;          /* on the caller's base */
    internal_done_fn done;
    void *arg;
    size_t keep_body_max;
    const char *scheme;             /* static "http" or "https" */
    bool on_list;
    LIST_ENTRY(internal_req) link;  /* w->internals, on the worker's thread */
    struct http_msg msg;
    struct exchange x;
    bool x_inited;
    /* the outcome */
    int status;
    char cache_status[96];
    char error[160];
    struct evbuffer *body;
};

static const struct exchange_fe internal_fe;

static void ireq_unref(struct internal_req *r)
{
    pthread_mutex_lock(&r->lock);
    FC_ASSERT(r->refs > 0);
    unsigned left = --r->refs;
    pthread_mutex_unlock(&r->lock);
    if (left > 0)
        return;
    FC_ASSERT(!r->on_list && !r->x_inited);
    event_free(r->ev_worker);
    if (r->ev_done)
        event_free(r->ev_done);
    http_msg_free(&r->msg);
    if (r->body)
        evbuffer_free(r->body);
    pthread_mutex_destroy(&r->lock);
    r->magic = 0;
    free(r);
}

/* Worker thread: the answer is complete, or will never be; end the
 * exchange from the loop, not under its own callbacks. */
static void finish(struct internal_req *r, const char *error)
{
    if (r->phase != IREQ_RUNNING)
        return;
    if (error && !r->error[0])
        snprintf(r->error, sizeof r->error, "%s", error);
    r->phase = IREQ_FINISHING;
    event_active(r->ev_worker, EV_WRITE, 0);
}

/* Worker thread: the exchange is over; hand the result to the caller. */
static void report(struct internal_req *r)
{
    if (r->on_list) {
        LIST_REMOVE(r, link);
        r->on_list = false;
    }
    if (r->x_inited) {
        exchange_fini(&r->x);   /* the access-log line, if answered */
        r->x_inited = false;
    }
    r->phase = IREQ_DONE;
    pthread_mutex_lock(&r->lock);
    if (!r->cancelled)
        event_active(r->ev_done, EV_WRITE, 0);
    pthread_mutex_unlock(&r->lock);
    ireq_unref(r);              /* the worker's reference */
}

/* ---- the front end ------------------------------------------------------ */

static void pump(struct internal_req *r)
{
    struct evbuffer *sink = evbuffer_new();
    AN(sink);
    for (;;) {
        size_t n = 0;
        enum body_read rd = exchange_body_read(&r->x, sink, READ_STEP, &n);
        if (r->body) {
            if (evbuffer_get_length(r->body) + n > r->keep_body_max) {
                evbuffer_free(sink);
                char msg[96];
                snprintf(msg, sizeof msg, "body larger than %zu bytes", r->keep_body_max);
                finish(r, msg);
                return;
            }
            evbuffer_add_buffer(r->body, sink);
        } else {
            evbuffer_drain(sink, n);
        }
        if (rd == BODY_READ_END) {
            finish(r, NULL);
            break;
        }
        if (rd == BODY_READ_FAILED) {
            finish(r, "the origin failed in the middle of the body");
            break;
        }
        if (n < READ_STEP)
            break;              /* body_ready brings more */
    }
    evbuffer_free(sink);
}

static void fe_send_head(struct exchange *x, const struct resp_head *h)
{
    struct internal_req *r = x->fe_ctx;
    CHECK_OBJ_NOTNULL(r, IREQ_MAGIC);
    r->status = h->status;
    snprintf(r->cache_status, sizeof r->cache_status, "%s", x->cs);
    if (!h->body) {
        if (h->inline_len && r->body)
            evbuffer_add(r->body, h->inline_body, h->inline_len);
        finish(r, NULL);
        return;
    }
    pump(r);
}

static void fe_body_ready(struct exchange *x)
{
    struct internal_req *r = x->fe_ctx;
    CHECK_OBJ_NOTNULL(r, IREQ_MAGIC);
    if (r->phase == IREQ_RUNNING)
        pump(r);
}

static void fe_upload_pause(struct exchange *x, bool pause)
{
    (void)x;
    (void)pause;        /* a GET uploads nothing */
}

static void fe_send_interim(struct exchange *x, int status, const char *lines, size_t len)
{
    (void)x;
    (void)status;       /* nobody to tell: the final answer is what counts */
    (void)lines;
    (void)len;
}

static const struct exchange_fe internal_fe = {
    .send_head = fe_send_head,
    .body_ready = fe_body_ready,
    .upload_pause = fe_upload_pause,
    .send_interim = fe_send_interim,
};

/* ---- the worker's side ------------------------------------------------- */

static void start(struct internal_req *r)
{
    struct worker *w = r->w;
    pthread_mutex_lock(&r->lock);
    bool cancelled = r->cancelled;
    pthread_mutex_unlock(&r->lock);
    r->phase = IREQ_RUNNING;
    LIST_INSERT_HEAD(&w->internals, r, link);
    r->on_list = true;
    if (cancelled) {
        r->phase = IREQ_FINISHING;
        report(r);
        return;
    }
    if (atomic_load(&w->srv->stopping)) {
        snprintf(r->error, sizeof r->error, "the server is stopping");
        r->phase = IREQ_FINISHING;
        report(r);
        return;
    }
    exchange_init(&r->x, w, &internal_fe, r);
    r->x_inited = true;
    /* Like a client on the first listener (the caller chose the scheme);
     * the address is the daemon's own, for X-Forwarded-For. */
    struct exchange_request info = {
        .client_addr = "127.0.0.1",
        .scheme = r->scheme,
    };
    exchange_start(&r->x, &r->msg, &info);
}

static void worker_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct internal_req *r = arg;
    CHECK_OBJ_NOTNULL(r, IREQ_MAGIC);
    if (r->phase == IREQ_QUEUED)
        start(r);
    else if (r->phase == IREQ_FINISHING)
        report(r);
}

/* ---- the caller's side ------------------------------------------------- */

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct internal_req *r = arg;
    CHECK_OBJ_NOTNULL(r, IREQ_MAGIC);
    FC_ASSERT(r->phase == IREQ_DONE);
    if (r->status == 0 && !r->error[0])
        snprintf(r->error, sizeof r->error, "no response");
    struct internal_result res = {
        .status = r->status,
        .cache_status = r->cache_status,
        .error = r->error[0] ? r->error : NULL,
        .body = r->body,
    };
    r->done(r->arg, &res);
    ireq_unref(r);              /* the caller's reference */
}

struct internal_req *internal_request(struct server *srv, struct event_base *caller,
                                      const struct internal_params *p, internal_done_fn done,
                                      void *arg)
{
    CHECK_OBJ_NOTNULL(srv, SERVER_MAGIC);
    AN(p->host);
    AN(p->target);
    if (p->target[0] != '/' || atomic_load(&srv->stopping) || srv->n_workers == 0)
        return NULL;
    struct internal_req *r = calloc(1, sizeof *r);
    AN(r);
    r->magic = IREQ_MAGIC;
    pthread_mutex_init(&r->lock, NULL);
    r->refs = 2;                /* the caller's and the worker's */
    r->done = done;
    r->arg = arg;
    r->keep_body_max = p->keep_body_max;
    if (p->keep_body_max) {
        r->body = evbuffer_new();
        AN(r->body);
    }
    /* The same URL always on the same worker: no state to keep, and
     * repeated warms of one URL meet on one loop. */
    size_t tlen = strlen(p->target);
    r->w = &srv->workers[cache_key_hash(p->target, tlen) % srv->n_workers];

    struct http_msg *m = &r->msg;
    http_msg_init(m);
    m->method = HTTP_GET;
    m->http_major = 1;
    m->http_minor = 1;
    m->url_off = http_msg_append(m, p->target, tlen);
    m->url_len = (uint32_t)tlen;
    http_msg_add_str(m, "Host", p->host);
    http_msg_add_str(m, "User-Agent", p->user_agent ? p->user_agent : "freshcache-internal");
    http_msg_add_str(m, "Accept", "*/*");
    if (p->no_cache)
        http_msg_add_str(m, "Cache-Control", "no-cache");
    r->scheme = p->scheme && strcmp(p->scheme, "https") == 0 ? "https" : "http";

    r->ev_worker = event_new(r->w->base, -1, 0, worker_cb, r);
    r->ev_done = event_new(caller, -1, 0, done_cb, r);
    AN(r->ev_worker);
    AN(r->ev_done);
    event_active(r->ev_worker, EV_WRITE, 0);
    return r;
}

void internal_cancel(struct internal_req *r)
{
    CHECK_OBJ_NOTNULL(r, IREQ_MAGIC);
    pthread_mutex_lock(&r->lock);
    r->cancelled = true;
    pthread_mutex_unlock(&r->lock);
    /* report() may have made ev_done active already: it must not run. */
    event_del(r->ev_done);
    ireq_unref(r);
}

void internal_free_all(struct worker *w)
{
    struct internal_req *r;
    while ((r = LIST_FIRST(&w->internals)) != NULL) {
        if (!r->error[0])
            snprintf(r->error, sizeof r->error, "the server stopped");
        report(r);
    }
}
