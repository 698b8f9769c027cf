/*
 * access_log.c — see include/freshcache/access_log.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "freshcache/server/access_log.h"
#include "freshcache/server/worker.h"
#include "freshcache/base/assert.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/base/log.h"

#include <llhttp.h>

/* Flush a worker's buffer beyond this many bytes. */
#define ACCESS_LOG_BUFFER (32 * 1024)

static int open_path(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        snprintf(err, errlen, "cannot open access log %s: %s", path, strerror(errno));
    return fd;
}

int access_log_open(struct server *srv, char *err, size_t errlen)
{
    const char *spec = srv->cfg->log.access;
    srv->access_fd = -1;
    if (spec == NULL || strcmp(spec, "off") == 0)
        return 0;
    if (strcmp(spec, "stdout") == 0) {
        srv->access_fd = dup(STDOUT_FILENO);
        return srv->access_fd < 0 ? -1 : 0;
    }
    srv->access_fd = open_path(spec, err, errlen);
    return srv->access_fd < 0 ? -1 : 0;
}

int access_log_reopen(struct server *srv, char *err, size_t errlen)
{
    const char *spec = srv->cfg->log.access;
    if (srv->access_fd < 0 || spec == NULL || strcmp(spec, "stdout") == 0 ||
        strcmp(spec, "off") == 0)
        return 0;   /* nothing to reopen */
    int fd = open_path(spec, err, errlen);
    if (fd < 0)
        return -1;
    /* dup2 swaps the file under the same descriptor number, atomically
     * for workers that keep writing to it. */
    int rc = dup2(fd, srv->access_fd);
    close(fd);
    return rc < 0 ? -1 : 0;
}

void access_log_close(struct server *srv)
{
    if (srv->access_fd >= 0)
        close(srv->access_fd);
    srv->access_fd = -1;
}

/* Append s[0..len) escaping what could forge or break a line. */
static void add_escaped(struct evbuffer *b, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') {
            if (i > start)
                evbuffer_add(b, s + start, i - start);
            evbuffer_add_printf(b, "\\x%02x", ch);
            start = i + 1;
        }
    }
    if (len > start)
        evbuffer_add(b, s + start, len - start);
}

static void add_field(struct evbuffer *b, const struct http_msg *m, const char *name)
{
    size_t len = 0;
    const char *v = m ? http_msg_get(m, name, &len) : NULL;
    evbuffer_add(b, "\"", 1);
    if (v)
        add_escaped(b, v, len);
    else
        evbuffer_add(b, "-", 1);
    evbuffer_add(b, "\"", 1);
}

void access_log_format_text(const struct access_entry *e, time_t now, struct evbuffer *b)
{
    char when[40];
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
    evbuffer_add_printf(b, "%s %s \"", e->client, when);
    if (e->req && e->req->url_len && e->req->http_major > 0) {   /* a complete request line */
        const char *method = llhttp_method_name((llhttp_method_t)e->req->method);
        evbuffer_add(b, method, strlen(method));
        evbuffer_add(b, " ", 1);
        add_escaped(b, http_msg_url(e->req), e->req->url_len);
        evbuffer_add_printf(b, " HTTP/%u.%u", e->req->http_major, e->req->http_minor);
    } else {
        evbuffer_add(b, "-", 1);
    }
    evbuffer_add_printf(b, "\" %d %llu ", e->status, (unsigned long long)e->bytes);
    add_field(b, e->req, "Referer");
    evbuffer_add(b, " ", 1);
    add_field(b, e->req, "User-Agent");
    evbuffer_add(b, " \"", 2);
    add_escaped(b, e->cache_status ? e->cache_status : "-",
                e->cache_status ? strlen(e->cache_status) : 1);
    evbuffer_add_printf(b, "\" gen=%llu origin_ms=%lld total_ms=%lld\n",
                        (unsigned long long)e->generation, (long long)e->origin_ms,
                        (long long)e->total_ms);
}

void access_log_write(struct worker *w, const struct access_entry *e)
{
    if (w->srv->access_fd < 0)
        return;
    struct evbuffer *b = w->access_buf;
    /* The config in force: the format follows reloads. */
    if (w->srv->cfg->log.format == ACCESS_LOG_JSON)
        access_log_format_json(e, worker_now(w), b);
    else
        access_log_format_text(e, worker_now(w), b);
    if (evbuffer_get_length(b) >= ACCESS_LOG_BUFFER)
        access_log_flush(w);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    access_log_flush(arg);
}

void access_log_attach(struct worker *w)
{
    if (w->srv->access_fd < 0)
        return;
    w->access_buf = evbuffer_new();
    w->access_flush = event_new(w->base, -1, EV_PERSIST, flush_cb, w);
    AN(w->access_buf);
    AN(w->access_flush);
    struct timeval tv = { 0, ACCESS_LOG_FLUSH_MS * 1000 };
    AZ(event_add(w->access_flush, &tv));
}

void access_log_detach(struct worker *w)
{
    if (w->access_buf == NULL)
        return;
    access_log_flush(w);
    evbuffer_free(w->access_buf);
    event_free(w->access_flush);
    w->access_buf = NULL;
    w->access_flush = NULL;
}

void access_log_flush(struct worker *w)
{
    struct evbuffer *b = w->access_buf;
    if (b == NULL || w->srv->access_fd < 0)
        return;
    while (evbuffer_get_length(b) > 0) {
        int n = evbuffer_write(b, w->srv->access_fd);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            /* A full disk must not stop traffic: drop the lines, say so. */
            log_warn("access log: write failed: %s; %zu bytes dropped",
                     n < 0 ? strerror(errno) : "no progress", evbuffer_get_length(b));
            evbuffer_drain(b, evbuffer_get_length(b));
            return;
        }
    }
}
