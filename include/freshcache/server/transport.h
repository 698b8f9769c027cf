/*
 * transport.h — how one connection's bytes cross its socket.
 *
 * A connection (conn.h) reads and writes only through these operations,
 * so what carries the bytes — plain TCP today, TLS records next — is
 * invisible above it: the HTTP/1.1 front end, the HTTP/2 one and the
 * origin side all see bytes in evbuffers.  The plain TCP transport is
 * readv/writev on the descriptor (evbuffer_read / evbuffer_write), so
 * cached bodies held by reference in an evbuffer go to the kernel without a
 * copy.
 *
 * Ownership: a transport belongs to the connection that was given it and
 * is closed with it.
 */
#ifndef FRESHCACHE_TRANSPORT_H
#define FRESHCACHE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct evbuffer;
struct transport;

/* read/write results besides byte counts */
#define TRANSPORT_EOF 0             /* read: the peer closed (orderly) */
#define TRANSPORT_ERROR (-1)        /* errno or t->error tells why */
#define TRANSPORT_AGAIN (-2)        /* nothing moved now: wait for t->want */

/* What a transport waits for before it can move again. */
enum transport_want { WANT_READ = 1, WANT_WRITE = 2 };

struct transport_ops {
    const char *name;
    /* Bring the transport up (a TLS handshake): 1 when done,
     * TRANSPORT_AGAIN, or TRANSPORT_ERROR.  NULL: nothing to do. */
    int (*handshake)(struct transport *t);
    /* Move up to `max` bytes from the socket into `in`: bytes read,
     * TRANSPORT_EOF, TRANSPORT_ERROR or TRANSPORT_AGAIN. */
    ssize_t (*read)(struct transport *t, struct evbuffer *in, size_t max);
    /* Move what `out` holds to the socket, draining what went: bytes
     * written (possibly fewer than held), TRANSPORT_ERROR or
     * TRANSPORT_AGAIN. */
    ssize_t (*write)(struct transport *t, struct evbuffer *out);
    /* Bytes already read from the socket and decrypted but not yet handed
     * out: no read event will announce them.  NULL: never any. */
    size_t (*pending)(struct transport *t);
    /* Say "nothing more from us" at the transport's level, best effort
     * and never blocking (TLS: a close_notify); the conn shuts the
     * socket's sending side after.  NULL: nothing to say. */
    void (*finish)(struct transport *t);
    /* Close the descriptor and free the transport. */
    void (*close)(struct transport *t);
};

struct transport {
    const struct transport_ops *ops;
    int fd;
    int want;                       /* after TRANSPORT_AGAIN: enum transport_want bits */
    const char *error;              /* after TRANSPORT_ERROR, when errno does not say */
};

/* Plain TCP over a connected (or connecting) non-blocking socket. */
struct transport *transport_tcp_new(int fd);
/* TLS over a socket, with `ssl` (owned from now on) in accept or connect
 * state; the conn drives its handshake (conn_start_handshake). */
struct ssl_st;
struct transport *transport_tls_new(int fd, struct ssl_st *ssl);
/* The SSL of a TLS transport, NULL for another one. */
struct ssl_st *transport_tls_ssl(struct transport *t);
/* A TLS handshake failed because the peer sent plain HTTP (OpenSSL's
 * SSL_R_HTTP_REQUEST): the listener answers it in plain text. */
bool transport_tls_plain_http(struct transport *t);

#endif
