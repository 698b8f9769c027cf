/*
 * conn.c — see include/freshcache/server/conn.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "freshcache/base/assert.h"
#include "freshcache/server/conn.h"
#include "freshcache/server/transport.h"

/* Bytes asked of the kernel per read: a request head fits many times
 * over; large bodies move in few calls. */
#define READ_CHUNK_DEFAULT (16 * 1024)

static void read_cb(evutil_socket_t fd, short what, void *arg);
static void write_cb(evutil_socket_t fd, short what, void *arg);

/* An idle connection may have given its buffers back (conn_release_buffers):
 * no buffer holds nothing. */
static size_t in_len(const struct conn *c) { return c->in ? evbuffer_get_length(c->in) : 0; }
static size_t out_len(const struct conn *c) { return c->out ? evbuffer_get_length(c->out) : 0; }

/* The next bytes need somewhere to go. */
static void ensure_buffers(struct conn *c)
{
    if (c->in == NULL) {
        c->in = evbuffer_new();
        AN(c->in);
    }
    if (c->out == NULL) {
        c->out = evbuffer_new();
        AN(c->out);
    }
}

static uint32_t ms32(uint64_t ms) { return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms; }

/* Add `ev` with a timeout of `ms` (0: none).  event_add() with no
 * timeval leaves a timer already set on an added event in place, so "none"
 * on an added event removes its timer explicitly (an origin connection
 * going idle with its read event still armed keeps no read timeout). */
static void add_with_timeout(struct event *ev, uint32_t ms)
{
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
    if (ms == 0 && event_pending(ev, EV_TIMEOUT, NULL)) {
        AZ(event_remove_timer(ev));
        return;
    }
    AZ(event_add(ev, ms ? &tv : NULL));
}

static void arm_read(struct conn *c)
{
    if (c->read_armed || c->eof || c->failed || c->dead || c->connecting)
        return;
    add_with_timeout(c->ev_read, c->read_timeout_ms);
    c->read_armed = true;
}

static void disarm_read(struct conn *c)
{
    if (!c->read_armed)
        return;
    AZ(event_del(c->ev_read));
    c->read_armed = false;
}

static void arm_write(struct conn *c)
{
    if (c->write_armed || c->failed || c->dead)
        return;
    /* Made on first need: most connections never fill their socket
     * buffer, and an idle one should not carry an event it never uses. */
    if (c->ev_write == NULL) {
        c->ev_write = event_new(c->base, c->t->fd, EV_WRITE | EV_PERSIST, write_cb, c);
        AN(c->ev_write);
    }
    add_with_timeout(c->ev_write, c->write_timeout_ms);
    c->write_armed = true;
}

static void disarm_write(struct conn *c)
{
    if (!c->write_armed)
        return;
    AZ(event_del(c->ev_write));
    c->write_armed = false;
}

/* Reading is wanted (by the owner, or by a handshake), and the input is
 * below its bound. */
static void update_read(struct conn *c)
{
    bool full = c->read_high && in_len(c) >= c->read_high;
    if (c->handshaking || (c->read_on && !full))
        arm_read(c);
    else
        disarm_read(c);
}

static void really_free(struct conn *c)
{
    event_free(c->ev_read);
    if (c->ev_write)
        event_free(c->ev_write);
    if (c->in)
        evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
    c->t->ops->close(c->t);
    c->magic = 0;
    free(c);
}

/* Call an owner callback; the conn may be freed inside it. */
#define CALL_OWNER(c, expr)                        \
    do {                                           \
        (c)->in_cb++;                              \
        expr;                                      \
        (c)->in_cb--;                              \
    } while (0)

/* After callbacks: finish a conn_free() made inside one.  True if gone. */
static bool reaped(struct conn *c)
{
    if (c->in_cb == 0 && c->dead) {
        really_free(c);
        return true;
    }
    return c->dead;
}

static void notify(struct conn *c, enum conn_event ev)
{
    CALL_OWNER(c, c->cb->on_event(c->arg, ev));
}

static struct conn *conn_alloc(struct event_base *base, struct transport *t,
                               const struct conn_cb *cb, void *arg)
{
    struct conn *c = calloc(1, sizeof *c);
    AN(c);
    c->magic = CONN_MAGIC;
    c->base = base;
    c->t = t;
    c->cb = cb;
    c->arg = arg;
    c->read_chunk = READ_CHUNK_DEFAULT;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    AN(c->in);
    AN(c->out);
    c->ev_read = event_new(base, t->fd, EV_READ | EV_PERSIST, read_cb, c);
    AN(c->ev_read);
    return c;
}

struct conn *conn_new(struct event_base *base, struct transport *t, const struct conn_cb *cb,
                      void *arg)
{
    return conn_alloc(base, t, cb, arg);
}

struct conn *conn_connect(struct event_base *base, const struct sockaddr *addr, socklen_t len,
                          uint64_t connect_timeout_ms, struct ssl_st *ssl,
                          const struct conn_cb *cb, void *arg)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        if (ssl)
            SSL_free(ssl);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, addr, len) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        if (ssl)
            SSL_free(ssl);
        errno = e;
        return NULL;
    }
    struct transport *t = ssl ? transport_tls_new(fd, ssl) : transport_tcp_new(fd);
    struct conn *c = conn_alloc(base, t, cb, arg);
    c->connecting = true;
    c->read_on = true;
    c->write_timeout_ms = ms32(connect_timeout_ms);
    arm_write(c);
    return c;
}

void conn_set_owner(struct conn *c, const struct conn_cb *cb, void *arg)
{
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    c->cb = cb;
    c->arg = arg;
}

void conn_free(struct conn *c)
{
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    if (c->in_cb > 0) {
        /* Inside one of our callbacks: stop everything now, free when it
         * returns. */
        disarm_read(c);
        disarm_write(c);
        c->dead = true;
        return;
    }
    really_free(c);
}


void conn_set_timeouts(struct conn *c, uint64_t read_ms, uint64_t write_ms)
{
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    c->read_timeout_ms = ms32(read_ms);
    if (!c->connecting)
        c->write_timeout_ms = ms32(write_ms);
    /* Re-adding an added event only moves its timer: no epoll_ctl. */
    if (c->read_armed)
        add_with_timeout(c->ev_read, c->read_timeout_ms);
    if (c->write_armed && !c->connecting)
        add_with_timeout(c->ev_write, c->write_timeout_ms);
}

void conn_read_enable(struct conn *c, bool on)
{
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    c->read_on = on;
    update_read(c);
}

void conn_input_consumed(struct conn *c)
{
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    if (c->read_on && !c->read_armed)
        update_read(c);
}

size_t conn_pending(const struct conn *c)
{
    return out_len(c);
}

void conn_release_buffers(struct conn *c)
{
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    if (c->in == NULL || in_len(c) > 0 || out_len(c) > 0 || c->write_armed ||
        c->read_wants_write || c->write_wants_read || c->handshaking || c->connecting)
        return;
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    c->in = c->out = NULL;
    /* Nor the write event a full socket buffer (or a TLS handshake) made:
     * arm_write makes it again on need. */
    if (c->ev_write != NULL) {
        event_free(c->ev_write);
        c->ev_write = NULL;
    }
}

void conn_claim_buffers(struct conn *c)
{
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    ensure_buffers(c);
}

int conn_fd(const struct conn *c)
{
    return c->t->fd;
}

void conn_discard_output(struct conn *c)
{
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    if (c->out)
        evbuffer_drain(c->out, evbuffer_get_length(c->out));
    disarm_write(c);
}

const char *conn_error(const struct conn *c)
{
    return c->t->error;
}

/* Write what can go now.  -1 when the connection failed. */
static int do_write(struct conn *c)
{
    c->write_wants_read = false;
    while (out_len(c) > 0) {
        ssize_t n = c->t->ops->write(c->t, c->out);
        if (n == TRANSPORT_AGAIN && c->t->want == WANT_READ) {
            /* TLS must read before it can write on: the read event
             * retries the write. */
            c->write_wants_read = true;
            disarm_write(c);
            return 0;
        }
        if (n == TRANSPORT_AGAIN || n == 0)
            break;
        if (n == TRANSPORT_ERROR) {
            c->failed = true;
            disarm_read(c);
            disarm_write(c);
            return -1;
        }
    }
    if (out_len(c) > 0)
        arm_write(c);
    else
        disarm_write(c);
    return 0;
}

int conn_flush(struct conn *c)
{
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    if (c->failed)
        return -1;
    if (c->write_armed || c->write_wants_read || c->connecting || c->handshaking || c->dead ||
        out_len(c) == 0)
        return 0;       /* an event is on it, or nothing to do */
    return do_write(c);
}

static void fail_with(struct conn *c, enum conn_event ev)
{
    c->failed = true;
    disarm_read(c);
    disarm_write(c);
    notify(c, ev);
}

/* The transport's handshake made progress (or failed). */
static void do_handshake(struct conn *c)
{
    int rc = c->t->ops->handshake(c->t);
    if (rc == TRANSPORT_AGAIN) {
        if (c->t->want & WANT_WRITE)
            arm_write(c);
        else
            disarm_write(c);
        arm_read(c);
        return;
    }
    if (rc != 1) {
        fail_with(c, CONN_ERROR);
        return;
    }
    c->handshaking = false;
    disarm_write(c);
    /* The read event stays armed through the owner's CONNECTED: a server
     * connection's new owner (the protocol) enables reading there, and
     * disarming it before would cost an epoll_ctl DEL and ADD per
     * handshake for nothing.  What the owner did not ask for goes after. */
    notify(c, CONN_CONNECTED);
    if (!c->dead && !c->failed)
        update_read(c);
    if (!c->dead && !c->failed && out_len(c) > 0 && do_write(c) != 0)
        notify(c, CONN_ERROR);
    /* The handshake may have read the first request too (TLS 1.3 sends it
     * with the client's Finished; read_ahead takes both): no socket event
     * will say so. */
    if (!c->dead && !c->failed && c->read_armed && c->t->ops->pending &&
        c->t->ops->pending(c->t) > 0)
        event_active(c->ev_read, EV_READ, 0);
}

void conn_start_handshake(struct conn *c)
{
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    FC_ASSERT(c->t->ops->handshake != NULL);
    c->handshaking = true;
    arm_read(c);
}

/* Bytes from the socket for the owner. */
static void do_read(struct conn *c)
{
    c->read_wants_write = false;
    ensure_buffers(c);
    ssize_t n = c->t->ops->read(c->t, c->in, c->read_chunk);
    if (n == TRANSPORT_AGAIN) {
        if (c->t->want == WANT_WRITE) {
            /* TLS must write before it can read on: the write event
             * retries the read. */
            c->read_wants_write = true;
            arm_write(c);
        }
        return;
    }
    if (n == TRANSPORT_EOF || n == TRANSPORT_ERROR) {
        if (n == TRANSPORT_EOF) {
            c->eof = true;
            disarm_read(c);
            notify(c, CONN_EOF);
        } else {
            fail_with(c, CONN_ERROR);
        }
        return;
    }
    CALL_OWNER(c, c->cb->on_read(c->arg));
    if (c->dead)
        return;
    update_read(c);
    /* Decrypted bytes left inside the transport announce themselves with
     * no socket event: come back for them. */
    if (c->read_armed && c->t->ops->pending && c->t->ops->pending(c->t) > 0)
        event_active(c->ev_read, EV_READ, 0);
}

void conn_linger(struct conn *c, uint64_t idle_ms)
{
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    FC_ASSERT(out_len(c) == 0 && !c->handshaking && !c->connecting);
    if (c->t->ops->finish)
        c->t->ops->finish(c->t);
    shutdown(c->t->fd, SHUT_WR);
    c->lingering = true;
    if (c->in)
        evbuffer_drain(c->in, evbuffer_get_length(c->in));
    disarm_write(c);
    c->read_timeout_ms = ms32(idle_ms);
    c->read_high = 0;
    c->read_on = true;
    if (c->read_armed)
        add_with_timeout(c->ev_read, c->read_timeout_ms);  /* restart its timer */
    else
        update_read(c);
}

/* Lingering: read the raw socket (TLS records too: nothing in them
 * matters now) and drop it, until the peer closes or nothing is left. */
static void linger_read(struct conn *c)
{
    char sink[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(c->t->fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        c->eof = true;
        disarm_read(c);
        notify(c, CONN_EOF);
        return;
    }
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct conn *c = arg;
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    if (what & EV_TIMEOUT) {
        notify(c, CONN_READ_TIMEOUT);
        reaped(c);
        return;
    }
    if (c->lingering) {
        linger_read(c);
        reaped(c);
        return;
    }
    if (c->handshaking) {
        do_handshake(c);
    } else {
        if (c->write_wants_read && do_write(c) != 0)
            fail_with(c, CONN_ERROR);
        if (!c->failed && !c->dead)
            do_read(c);
    }
    reaped(c);
}

static void finish_connect(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->t->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    c->connecting = false;
    disarm_write(c);
    if (err != 0) {
        errno = err;
        fail_with(c, CONN_ERROR);
        return;
    }
    if (c->t->ops->handshake) {
        /* TLS to the origin: the connect timeout also bounds the
         * handshake, on whichever event it waits for (the write event's
         * timer goes on; the read event's would be none). */
        c->read_timeout_ms = c->write_timeout_ms;
        c->handshaking = true;
        do_handshake(c);
        return;
    }
    c->write_timeout_ms = 0;
    update_read(c);
    notify(c, CONN_CONNECTED);
    if (!c->dead && !c->failed && out_len(c) > 0 && do_write(c) != 0)
        notify(c, CONN_ERROR);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct conn *c = arg;
    CHECK_OBJ_NOTNULL(c, CONN_MAGIC);
    if (what & EV_TIMEOUT) {
        notify(c, CONN_WRITE_TIMEOUT);
        reaped(c);
        return;
    }
    if (c->connecting) {
        finish_connect(c);
        reaped(c);
        return;
    }
    if (c->handshaking) {
        do_handshake(c);
        reaped(c);
        return;
    }
    if (c->read_wants_write) {
        disarm_write(c);
        do_read(c);
        if (reaped(c) || c->failed)
            return;
    }
    if (do_write(c) != 0) {
        notify(c, CONN_ERROR);
        reaped(c);
        return;
    }
    if (c->cb->on_drain && out_len(c) <= c->write_low) {
        CALL_OWNER(c, c->cb->on_drain(c->arg));
        reaped(c);
    }
}
