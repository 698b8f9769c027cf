/*
 * admin.c — the admin API: HTTP/1.1 with JSON bodies on a Unix socket.
 * See include/freshcache/admin.h and docs/admin-api.md.
 *
 * Everything here runs on the main thread's event loop.  This file holds
 * the socket, the connections, request parsing, routing and the replies;
 * the endpoints are in admin_purge.c, admin_stats.c, admin_verify.c and
 * admin_warm.c (admin_int.h), POST /reload below.  They only parse
 * requests and format answers; every effect goes through admin_ops.h.
 * Requests on one connection are answered one at a time, in order (the
 * parser is not fed while a request is being answered), which is what
 * keep-alive and pipelining need.
 *
 *   READ ──request──▶ route ──▶ reply ──keep-alive──▶ READ
 *                       │                 └─────────▶ CLOSING ──flushed──▶ free
 *                       └──▶ (POST /verify) PENDING ──done──▶ reply
 *
 * POST /verify is asynchronous: the connection keeps a struct verify_pending
 * that the ops layer calls back.  If the connection goes away first, the
 * pending object outlives it with `conn` set to NULL ("connection gone"),
 * and the callback only frees it.  As in http1.c, closing is deferred to an
 * event so no callback frees a connection under its caller's feet.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>

#include "freshcache/admin/admin.h"
#include "freshcache/admin/admin_body.h"
#include "freshcache/admin/admin_ops.h"
#include "freshcache/admin/warm.h"
#include "freshcache/base/assert.h"
#include "freshcache/config/config_check.h"
#include "freshcache/http/http_parse.h"
#include "freshcache/base/log.h"
#include "freshcache/cluster/cluster.h"
#include "freshcache/server/server.h"
#include "admin_int.h"

#define ADMIN_MAX_HEAD (16 * 1024)
#define ADMIN_MAX_BODY (1024 * 1024)
#define ADMIN_MAX_CONNS 64
#define ADMIN_BACKLOG 16
/* Stop reading from a connection whose unparsed input exceeds this (only
 * happens while a /verify is pending, the parser being paused then). */
#define ADMIN_READ_HIGH (256 * 1024)
#define ADMIN_TIMEOUT_MS_DEFAULT 30000


/* ---- replies ---------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* Write one response, then either get ready for the next request or close.
 * `extra` is more header lines ("Name: value\r\n"...) or NULL. */
void reply(struct admin_conn *c, int status, const char *ctype, const char *body, size_t len,
           const char *extra)
{
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    FC_ASSERT(!c->closing);
    /* After the client's EOF, answer what it sent completely, then close. */
    bool close = !c->keep_alive ||
                 (c->peer_eof && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\n"
                        "Content-Type: %s\r\n"
                        "Content-Length: %zu\r\n"
                        "Cache-Control: no-store\r\n"
                        "%s%s"
                        "\r\n",
                        status, reason_phrase(status), ctype, len, extra ? extra : "",
                        close ? "Connection: close\r\n" : "");
    if (!c->head_req && len > 0)
        evbuffer_add(out, body, len);
    c->head_req = false;
    evbuffer_drain(c->body, evbuffer_get_length(c->body));
    if (close)
        conn_close(c);
    else
        http_parser_next(&c->parser);
}

/* Reply with `obj` (a reference is stolen) as one line of JSON. */
void reply_json(struct admin_conn *c, int status, json_t *obj, const char *extra)
{
    AN(obj);
    char *text = json_dumps(obj, JSON_INDENT(0) | JSON_ENCODE_ANY);
    json_decref(obj);
    if (text == NULL) {
        static const char oom[] = "{\"error\": \"out of memory\"}\n";
        reply(c, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    size_t len = strlen(text);
    char *line = malloc(len + 2);
    AN(line);
    memcpy(line, text, len);
    line[len++] = '\n';
    free(text);
    reply(c, status, "application/json", line, len, extra);
    free(line);
}

void reply_error(struct admin_conn *c, int status, const char *extra, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(msg));
    reply_json(c, status, o, extra);
}

/* An error that ends the connection (the request could not be framed). */
void reply_fatal(struct admin_conn *c, int status, const char *msg)
{
    c->keep_alive = false;
    reply_error(c, status, NULL, "%s", msg);
}

/* ---- request bodies ---------------------------------------------------- */

/* The current request's body, contiguous.  Read and checked by
 * admin_body.c; a refusal is answered here. */
const char *body_text(struct admin_conn *c, size_t *len)
{
    *len = evbuffer_get_length(c->body);
    return (const char *)evbuffer_pullup(c->body, -1);
}

void reply_body_error(struct admin_conn *c, const struct admin_body_error *e)
{
    reply_error(c, e->status, NULL, "%s", e->msg);
}

/* ---- endpoints that stay here ------------------------------------------- */

/* POST /reload */
static void do_reload(struct admin_conn *c)
{
    struct admin_body_error e;
    size_t len;
    const char *text = body_text(c, &len);
    if (admin_body_reload(text, len, &e) != 0) {
        reply_body_error(c, &e);
        return;
    }
    char err[1024] = "";
    json_t *r = json_object();
    if (ops_reload(c->a->srv, err, sizeof err) != 0) {
        if (err[0] == '\0')
            snprintf(err, sizeof err, "reload failed");
        log_warn("admin: reload refused, the old config keeps serving: %s [%s]", err, c->who);
        json_object_set_new(r, "ok", json_false());
        json_object_set_new(r, "error", json_string(err));
        reply_json(c, 422, r, NULL);
        return;
    }
    log_info("admin: config reloaded [%s]", c->who);
    /* Applied, except what only a restart can change: name it, so the
     * operator is not told "OK" about a setting still not in force. */
    const char *restart[CONFIG_RESTART_KEYS_MAX];
    size_t n = ops_restart_pending(c->a->srv, restart, FC_ARRAY_LEN(restart));
    json_object_set_new(r, "ok", json_true());
    /* Only when there is something to say: the answer stays the spec's
     * {"ok": true} otherwise. */
    if (n > 0) {
        json_t *pending = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(pending, json_string(restart[i]));
        json_object_set_new(r, "restart_required", pending);
    }
    reply_json(c, 200, r, NULL);
}

/* ---- routing ------------------------------------------------------------ */

enum route_methods { R_GET, R_POST };

static const struct route {
    const char *path;
    enum route_methods methods;
    void (*fn)(struct admin_conn *c);
} routes[] = {
    { "/purge/generation", R_POST, do_purge_generation },
    { "/generation", R_GET, do_generation },
    { "/purge", R_POST, do_purge },
    { "/stats", R_GET, do_stats },
    { "/metrics", R_GET, do_metrics },
    { "/reload", R_POST, do_reload },
    { "/verify", R_POST, do_verify },
    { "/warm", R_POST, do_warm },
    { "/nodes", R_GET, do_nodes },
};

static void on_request(struct admin_conn *c)
{
    struct http_msg *m = &c->req;
    /* Upgrade is ignored (RFC 9110 §7.8 allows it): the parser reads what
     * follows as HTTP, as for any request. */
    c->keep_alive = http_parser_keep_alive(&c->parser) && !c->parser.upgrade &&
                    m->method != HTTP_CONNECT;

    /* origin-form "/stats?x", or absolute-form "http://localhost/stats" */
    const char *u = http_msg_url(m);
    size_t ulen = m->url_len;
    size_t scheme = 0;
    if (ulen >= 7 && strncasecmp(u, "http://", 7) == 0)
        scheme = 7;
    else if (ulen >= 8 && strncasecmp(u, "https://", 8) == 0)
        scheme = 8;
    if (scheme) {
        const char *p = memchr(u + scheme, '/', ulen - scheme);
        size_t skip = p ? (size_t)(p - u) : ulen;
        u += skip;
        ulen -= skip;
    }
    size_t plen = 0;
    while (plen < ulen && u[plen] != '?' && u[plen] != '#')
        plen++;

    for (size_t i = 0; i < FC_ARRAY_LEN(routes); i++) {
        const struct route *r = &routes[i];
        if (strlen(r->path) != plen || memcmp(r->path, u, plen) != 0)
            continue;
        /* The TCP metrics listener has no credentials to check: it serves
         * the counters and nothing that changes anything. */
        if (c->metrics_only && r->fn != do_metrics)
            break;
        bool ok = r->methods == R_GET ? (m->method == HTTP_GET || m->method == HTTP_HEAD)
                                      : m->method == HTTP_POST;
        if (!ok) {
            const char *allow = r->methods == R_GET ? "GET, HEAD" : "POST";
            char extra[64];
            snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
            reply_error(c, 405, extra, "method %s not allowed for %s (allowed: %s)",
                        llhttp_method_name((llhttp_method_t)m->method), r->path, allow);
            return;
        }
        r->fn(c);
        return;
    }
    reply_error(c, 404, NULL, "no such endpoint: %.*s", (int)(plen > 200 ? 200 : plen), u);
}

static void on_head(struct admin_conn *c)
{
    evbuffer_drain(c->body, evbuffer_get_length(c->body));
    c->body_overflow = false;
    c->head_req = c->req.method == HTTP_HEAD;
    if (c->parser.upgrade) {
        reply_fatal(c, 501, "CONNECT is not supported");
        return;
    }
    uint64_t cl = http_parser_content_length(&c->parser);
    if (cl != UINT64_MAX && cl > ADMIN_MAX_BODY) {
        reply_fatal(c, 413, "request body larger than 1 MiB");
        return;
    }
    if (http_parser_has_body(&c->parser) && c->req.http_minor >= 1 &&
        http_msg_has_token(&c->req, "Expect", "100-continue"))
        evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

static void on_body(void *owner, const char *at, size_t len)
{
    struct admin_conn *c = owner;
    if (c->body_overflow)
        return;
    if (evbuffer_get_length(c->body) + len > ADMIN_MAX_BODY) {
        c->body_overflow = true;
        evbuffer_drain(c->body, evbuffer_get_length(c->body));
        return;
    }
    evbuffer_add(c->body, at, len);
}

/* http_parser_feed(), but never on an empty input: a read of 0 bytes at
 * EOF can leave one empty chain in the evbuffer, which evbuffer_peek()
 * still reports, and feeding that would make no progress forever. */
static enum http_parse_event feed(struct admin_conn *c, struct evbuffer *in)
{
    if (evbuffer_get_length(in) == 0 && !c->parser.pending_done)
        return HTTP_PARSE_NEED_MORE;
    return http_parser_feed(&c->parser, in);
}

void conn_process(struct admin_conn *c)
{
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->closing && c->pending == NULL && c->cpending == NULL && c->wpending == NULL) {
        enum http_parse_event ev = feed(c, in);
        if (c->body_overflow) {
            reply_fatal(c, 413, "request body larger than 1 MiB");
            return;
        }
        switch (ev) {
        case HTTP_PARSE_NEED_MORE:
            if (c->peer_eof)
                conn_close(c);      /* nothing more will come */
            return;
        case HTTP_PARSE_HEAD:
            on_head(c);
            break;
        case HTTP_PARSE_DONE:
            on_request(c);
            break;
        case HTTP_PARSE_ERROR: {
            char msg[256];
            snprintf(msg, sizeof msg, "malformed request: %s", http_parser_error(&c->parser));
            log_debug("admin: %s [%s]", msg, c->who);
            reply_fatal(c, 400, msg);
            return;
        }
        case HTTP_PARSE_TOO_LARGE:
            reply_fatal(c, 431, "request header section larger than 16 KiB");
            return;
        }
    }
}

/* ---- connections -------------------------------------------------------- */

static void conn_free(struct admin_conn *c)
{
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    if (c->pending) {
        /* The ops layer still holds the pending object: it now only frees. */
        CHECK_OBJ_NOTNULL(c->pending, VERIFY_PENDING_MAGIC);
        c->pending->conn = NULL;
        c->pending = NULL;
    }
    if (c->cpending) {
        CHECK_OBJ_NOTNULL(c->cpending, CLUSTER_PENDING_MAGIC);
        c->cpending->conn = NULL;
        c->cpending = NULL;
    }
    if (c->wpending)
        warm_abandon(c, "the daemon is stopping");   /* admin_stop: conn_abort took the others */
    event_free(c->kick);
    bufferevent_free(c->bev);
    evbuffer_free(c->body);
    http_msg_free(&c->req);
    LIST_REMOVE(c, link);
    c->a->n_conns--;
    c->magic = 0;
    free(c);
}

/* Stop reading, flush what is queued, then free (deferred). */
void conn_close(struct admin_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        event_active(c->kick, EV_WRITE, 0);
    else
        bufferevent_enable(c->bev, EV_WRITE);
}

static void conn_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    if (c->closing) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            conn_free(c);
        return;
    }
    conn_process(c);
}

static void conn_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_process(arg);
}

static void conn_write(struct bufferevent *bev, void *arg)
{
    struct admin_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        event_active(c->kick, EV_WRITE, 0);
}

/* The peer is gone: drop what is queued and free from conn_kick, never
 * inside a callback of the connection itself. */
static void conn_abort(struct admin_conn *c)
{
    if (c->pending) {
        /* A verify still running answers nobody now: its callback only
         * frees (like conn_free); it must not reply on a closing
         * connection. */
        CHECK_OBJ_NOTNULL(c->pending, VERIFY_PENDING_MAGIC);
        c->pending->conn = NULL;
        c->pending = NULL;
    }
    if (c->wpending)
        warm_abandon(c, "its client left");
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_unfreeze(out, 1);
    evbuffer_drain(out, evbuffer_get_length(out));
    evbuffer_freeze(out, 1);
    event_active(c->kick, EV_WRITE, 0);
}

/* After EOF on a Unix socket: did the peer close entirely (POLLHUP), or
 * only shut down its sending side and still wait for an answer? */
static bool peer_hung_up(struct admin_conn *c)
{
    struct pollfd pfd = { .fd = bufferevent_getfd(c->bev), .events = POLLOUT };
    if (pfd.fd < 0)
        return true;
    if (poll(&pfd, 1, 0) < 0)
        return false;
    return (pfd.revents & (POLLHUP | POLLERR)) != 0;
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct admin_conn *c = arg;
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && !c->closing) {
        c->peer_eof = true;
        conn_process(c);        /* answer complete requests still buffered */
        if (c->closing)
            return;
        if (c->pending || c->cpending || c->wpending) {
            if (peer_hung_up(c)) {
                log_debug("admin: client left while its request was pending [%s]", c->who);
                conn_abort(c);
            }
            return;             /* half-closed: answer, then close */
        }
        conn_close(c);
        return;
    }
    /* An error, a timeout, or EOF while flushing: nothing more can be sent. */
    if (what & BEV_EVENT_ERROR)
        log_debug("admin: connection error: %s [%s]", strerror(errno), c->who);
    conn_abort(c);
}

static void accept_conn(struct admin *a, evutil_socket_t fd, bool metrics_only);

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    accept_conn(arg, fd, false);
}

static void on_accept_metrics(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                              int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    accept_conn(arg, fd, true);
}

static void accept_conn(struct admin *a, evutil_socket_t fd, bool metrics_only)
{
    CHECK_OBJ_NOTNULL(a, ADMIN_MAGIC);
    if (a->n_conns >= ADMIN_MAX_CONNS) {
        a->refused++;
        time_t now = time(NULL);
        if (now != a->refused_logged) {
            log_warn("admin: %u connections open, refused %u more", a->n_conns, a->refused);
            a->refused_logged = now;
            a->refused = 0;
        }
        evutil_closesocket(fd);
        return;
    }
    struct admin_conn *c = calloc(1, sizeof *c);
    AN(c);
    c->magic = ADMIN_CONN_MAGIC;
    c->a = a;
    c->metrics_only = metrics_only;
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (metrics_only)
        snprintf(c->who, sizeof c->who, "metrics listener");
    else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
        snprintf(c->who, sizeof c->who, "pid %ld, uid %ld", (long)cred.pid, (long)cred.uid);
    else
        snprintf(c->who, sizeof c->who, "unknown peer");
    evutil_make_socket_nonblocking(fd);
    c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE);
    AN(c->bev);
    c->kick = event_new(a->base, -1, 0, conn_kick, c);
    AN(c->kick);
    c->body = evbuffer_new();
    AN(c->body);
    http_msg_init(&c->req);
    http_parser_init(&c->parser, HTTP_REQUEST, &c->req, ADMIN_MAX_HEAD, on_body, c);
    LIST_INSERT_HEAD(&a->conns, c, link);
    a->n_conns++;
    bufferevent_set_timeouts(c->bev, &a->timeout, &a->timeout);
    bufferevent_setwatermark(c->bev, EV_READ, 0, ADMIN_READ_HIGH);
    bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void accept_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin *a = arg;
    CHECK_OBJ_NOTNULL(a, ADMIN_MAGIC);
    evconnlistener_enable(a->listener);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct admin *a = arg;
    CHECK_OBJ_NOTNULL(a, ADMIN_MAGIC);
    int e = EVUTIL_SOCKET_ERROR();
    log_error("admin: accept on %s failed: %s; retrying in 1 s", a->path,
              evutil_socket_error_to_string(e));
    /* Out of descriptors and the like: pause instead of spinning. */
    evconnlistener_disable(l);
    struct timeval one = { 1, 0 };
    event_add(a->accept_retry, &one);
}

/* ---- the socket ---------------------------------------------------------- */

/* Make way for bind(): nothing there, or a stale socket nobody answers on
 * (removed).  -1 with a message when the path must not be taken over. */
static int clear_stale_socket(const char *path, const struct sockaddr_un *sun, char *err,
                              size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot stat admin socket %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "admin socket path %s exists and is not a socket; not replacing it",
                 path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    int rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
    int e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN || e == EINPROGRESS || e == EPROTOTYPE) {
        /* Answered, or its backlog is full, or a live non-stream socket. */
        snprintf(err, errlen, "admin socket %s is in use by another process", path);
        return -1;
    }
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "cannot check whether admin socket %s is in use: %s", path,
                 strerror(e));
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove stale admin socket %s: %s", path, strerror(errno));
        return -1;
    }
    log_info("admin: removed stale socket %s", path);
    return 0;
}

/* The socket's directory, created (0750, like systemd's RuntimeDirectory=)
 * when it is missing, so a start by hand needs no preparation and -t can
 * tell in advance whether it will work: only a missing parent fails. */
static int make_socket_dir(const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL || slash == path)
        return 0;                   /* the working directory, or "/" */
    char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (mkdir(dir, 0750) == 0) {
        log_info("admin: created directory %s for the socket", dir);
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    if (errno == ENOENT)
        snprintf(err, errlen, "cannot create %s, the admin socket's directory: its parent does "
                 "not exist", dir);
    else
        snprintf(err, errlen, "cannot create %s, the admin socket's directory: %s", dir,
                 strerror(errno));
    return -1;
}

struct admin *admin_start(struct server *srv, struct event_base *base, char *err, size_t errlen)
{
    CHECK_OBJ_NOTNULL(srv, SERVER_MAGIC);
    AN(base);
    const struct fc_config *cfg = srv->cfg;
    const char *path = cfg->admin.socket;
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "admin.socket is empty");
        return NULL;
    }
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "admin socket path %s is too long (at most %zu bytes)", path,
                 sizeof sun.sun_path - 1);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path));

    if (make_socket_dir(path, err, errlen) != 0 || clear_stale_socket(path, &sun, err, errlen) != 0)
        return NULL;

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create the admin socket: %s", strerror(errno));
        return NULL;
    }
    /* bind() creates the file with 0777 & ~umask: make it owner-only until
     * the chmod below gives it admin.mode, so there is no moment at which
     * it is more open than configured. */
    mode_t old_umask = umask(0177);
    int rc = bind(fd, (const struct sockaddr *)&sun, sizeof sun);
    int e = errno;
    umask(old_umask);
    if (rc != 0) {
        if (e == ENOENT)
            snprintf(err, errlen, "cannot bind admin socket %s: its directory does not exist", path);
        else
            snprintf(err, errlen, "cannot bind admin socket %s: %s", path, strerror(e));
        close(fd);
        return NULL;
    }
    struct stat st;
    if (chmod(path, (mode_t)cfg->admin.mode) != 0 || stat(path, &st) != 0) {
        snprintf(err, errlen, "cannot set mode %04o on admin socket %s: %s", cfg->admin.mode, path,
                 strerror(errno));
        close(fd);
        unlink(path);
        return NULL;
    }

    struct admin *a = calloc(1, sizeof *a);
    AN(a);
    a->magic = ADMIN_MAGIC;
    a->srv = srv;
    a->base = base;
    a->path = strdup(path);
    AN(a->path);
    a->dev = st.st_dev;
    a->ino = st.st_ino;
    LIST_INIT(&a->conns);
    uint64_t ms = cfg->limits.client_timeout_ms ? cfg->limits.client_timeout_ms : ADMIN_TIMEOUT_MS_DEFAULT;
    a->timeout.tv_sec = (time_t)(ms / 1000);
    a->timeout.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    a->accept_retry = evtimer_new(base, accept_retry, a);
    AN(a->accept_retry);
    a->listener = evconnlistener_new(base, on_accept, a, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                     ADMIN_BACKLOG, fd);
    if (a->listener == NULL) {
        snprintf(err, errlen, "cannot listen on admin socket %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        event_free(a->accept_retry);
        free(a->path);
        free(a);
        return NULL;
    }
    evconnlistener_set_error_cb(a->listener, on_accept_error);
    log_info("admin: listening on %s (mode %04o)", path, cfg->admin.mode);
    if (cfg->metrics.listen) {
        a->metrics_listener = evconnlistener_new_bind(
            base, on_accept_metrics, a,
            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, ADMIN_BACKLOG,
            (const struct sockaddr *)&cfg->metrics.addr, (int)cfg->metrics.addrlen);
        if (a->metrics_listener == NULL) {
            snprintf(err, errlen, "metrics.listen %s: %s", cfg->metrics.listen, strerror(errno));
            admin_stop(a);
            return NULL;
        }
        log_info("metrics: GET /metrics on http://%s", cfg->metrics.listen);
    }
    return a;
}

void admin_set_cluster(struct admin *a, struct cluster *cl)
{
    CHECK_OBJ_NOTNULL(a, ADMIN_MAGIC);
    a->cluster = cl;
}

void admin_stop(struct admin *a)
{
    if (a == NULL)
        return;
    CHECK_OBJ_NOTNULL(a, ADMIN_MAGIC);
    while (!LIST_EMPTY(&a->conns))
        conn_free(LIST_FIRST(&a->conns));
    evconnlistener_free(a->listener);
    if (a->metrics_listener)
        evconnlistener_free(a->metrics_listener);
    event_free(a->accept_retry);
    /* Only our own socket: a newer instance may already have replaced it. */
    struct stat st;
    if (lstat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
        unlink(a->path);
    free(a->path);
    a->magic = 0;
    free(a);
}
