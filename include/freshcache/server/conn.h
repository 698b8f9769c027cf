/*
 * conn.h — one connection: a transport, an input and an output evbuffer,
 * and the events that move bytes between them and the socket.
 *
 * Client front ends (HTTP/1.1, HTTP/2) and origin connections alike are
 * conns.  Reading: a persistent read event fills the input buffer and
 * calls the owner's on_read; it stays armed across requests (no epoll_ctl
 * per request) unless the owner pauses it or the input holds read_high
 * bytes.  Writing is optimistic, nginx-style: conn_flush() writes at once
 * and arms the write event only when the socket pushes back, so an answer
 * that fits the socket buffer costs one writev and no epoll_ctl.
 *
 * Callbacks run on the loop of the conn's base.  The owner may call
 * conn_free() from inside one: the conn is then released when the callback
 * returns, never under its own feet.
 */
#ifndef FRESHCACHE_CONN_H
#define FRESHCACHE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

struct event;
struct event_base;
struct evbuffer;
struct transport;

enum conn_event {
    CONN_CONNECTED = 0,     /* conn_connect() or conn_start_handshake() finished:
                             * the transport is up */
    CONN_EOF,               /* the peer closed its sending side; reading stopped */
    CONN_ERROR,             /* reading, writing or connecting failed */
    CONN_READ_TIMEOUT,      /* reading armed, nothing came for the read timeout */
    CONN_WRITE_TIMEOUT,     /* output blocked (or connecting) for the write timeout */
};

struct conn_cb {
    void (*on_read)(void *arg);                 /* bytes arrived in conn->in */
    void (*on_drain)(void *arg);                /* output fell to write_low after blocking */
    void (*on_event)(void *arg, enum conn_event ev);
};

struct conn {
#define CONN_MAGIC 0xc0aa3c70u
    unsigned magic;
    struct event_base *base;
    struct transport *t;
    struct event *ev_read;
    struct event *ev_write;
    struct evbuffer *in;
    struct evbuffer *out;
    const struct conn_cb *cb;
    void *arg;
    /* 32 bits each: an idle connection is mostly this struct, so it is
     * kept small (timeouts up to 49 days, bounds up to 4 GiB). */
    uint32_t read_timeout_ms;           /* zero: none */
    uint32_t write_timeout_ms;
    uint32_t read_high;                 /* pause reading while in holds this much (0: no bound) */
    uint32_t write_low;                 /* on_drain once out holds at most this */
    uint32_t read_chunk;                /* bytes asked of one read */
    bool read_on;                       /* the owner wants bytes */
    bool read_armed;                    /* ev_read is added */
    bool write_armed;                   /* ev_write is added */
    bool connecting;
    bool handshaking;
    bool read_wants_write;              /* TLS: a read waits for the socket to take bytes */
    bool write_wants_read;              /* TLS: a write waits for bytes to arrive */
    bool eof;
    bool failed;
    bool dead;                          /* conn_free() called inside a callback */
    bool lingering;                     /* conn_linger(): reading only to discard */
    unsigned in_cb;                     /* owner callbacks running */
};

/* A conn over an accepted, non-blocking socket carried by `t` (owned from
 * now on).  Reading starts with conn_read_enable(). */
struct conn *conn_new(struct event_base *base, struct transport *t, const struct conn_cb *cb,
                      void *arg);
/* A conn connecting to `addr`, over TLS when `ssl` (owned from now on) is
 * given: CONN_CONNECTED once the transport is up, or CONN_ERROR /
 * CONN_WRITE_TIMEOUT (connect_timeout_ms, for the TCP connect and the TLS
 * handshake each).  NULL with errno when the connect fails at once. */
struct ssl_st;
struct conn *conn_connect(struct event_base *base, const struct sockaddr *addr, socklen_t len,
                          uint64_t connect_timeout_ms, struct ssl_st *ssl,
                          const struct conn_cb *cb, void *arg);
/* Run the transport's handshake (an accepted TLS connection) under the
 * read and write timeouts set: CONN_CONNECTED when done, else CONN_ERROR
 * or a timeout.  Reading for the owner starts with conn_read_enable(). */
void conn_start_handshake(struct conn *c);
/* Why the connection failed, as text (NULL: see errno). */
const char *conn_error(const struct conn *c);
/* Change the owner (an origin connection moving in and out of the pool). */
void conn_set_owner(struct conn *c, const struct conn_cb *cb, void *arg);
/* Close the socket and free the conn (deferred to the end of a running
 * callback). */
void conn_free(struct conn *c);

/* 0 disables a timeout. */
void conn_set_timeouts(struct conn *c, uint64_t read_ms, uint64_t write_ms);
/* Start or stop reading (backpressure). */
void conn_read_enable(struct conn *c, bool on);
/* The owner consumed input: resume reading if the read_high bound had
 * paused it. */
void conn_input_consumed(struct conn *c);

/* Write what is queued in c->out now; arm the write event for the rest.
 * Returns -1 when the connection has failed (the peer is gone), else 0.
 * A failed write leaves no event behind: the caller is the only one who
 * hears of it, so the compiler makes it look (an upload on a connection
 * the origin had closed once hung forever because two callers did not). */
__attribute__((warn_unused_result)) int conn_flush(struct conn *c);
/* Between messages, with nothing buffered either way: give the input and
 * output buffers back (an idle keep-alive connection keeps neither); the
 * next read makes them again.  Until then c->in and c->out are NULL. */
void conn_release_buffers(struct conn *c);
/* Make them again before writing without a read first (HTTP/2 sends
 * frames of its own: GOAWAY, PING acknowledgements). */
void conn_claim_buffers(struct conn *c);
/* Close in stages (RFC 9112 §9.6): with everything written, end our side
 * (the transport's finish, then shutdown(SHUT_WR)) and read on only to
 * discard what the peer still sends, so that closing the socket with
 * unread bytes in it — which makes the kernel send a reset that can
 * destroy the answer before the peer read it — waits for the peer to
 * close first.  The owner gets CONN_EOF when the peer closes (or on an
 * error), CONN_READ_TIMEOUT after `idle_ms` of silence; it bounds the
 * whole linger itself.  Nothing goes to on_read any more. */
void conn_linger(struct conn *c, uint64_t idle_ms);
/* Drop whatever is queued for a peer that is gone. */
void conn_discard_output(struct conn *c);
/* Bytes still queued for the socket. */
size_t conn_pending(const struct conn *c);
/* The descriptor (for socket options and peer addresses). */
int conn_fd(const struct conn *c);

#endif
