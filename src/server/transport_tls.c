/*
 * transport_tls.c — TLS over a socket (OpenSSL, socket BIO).  See
 * include/freshcache/server/transport.h.
 *
 * Reads decrypt straight into space reserved at the end of the input
 * evbuffer.  Writes gather small pieces of the output (a response head and
 * a small cached body are two evbuffer chains) into one record of up to
 * 16 KiB, as nginx's ssl_buffer does, so a small response is one record
 * and one system call; large pieces are encrypted from the chain in place.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "freshcache/base/assert.h"
#include "freshcache/server/tls.h"
#include "freshcache/server/transport.h"

/* The largest TLS record payload: gathering beyond it gains nothing. */
#define RECORD_MAX 16384

/* Room for an error's text where it says more than OpenSSL's reason: a
 * certificate that does not verify, on a connection to an origin. */
#define ERR_TEXT 200

struct tls_transport {
    struct transport t;             /* first: the generic part */
    SSL *ssl;
    bool handshake_done;
    bool finished;                  /* our close_notify is sent (tls_finish) */
    bool plain_http;                /* the peer sent an HTTP request, not TLS */
    bool need_socket;               /* OpenSSL's last read wanted bytes from the socket */
    uint8_t err_len;                /* ERR_TEXT, or 0: a client's connection, whose
                                     * errors are OpenSSL's reasons (static text) */
    char err[];
};

static struct tls_transport *TT(struct transport *t) { return (struct tls_transport *)t; }

/* Map an SSL_* failure: AGAIN with what it waits for, EOF, or ERROR with
 * a reason. */
static ssize_t failure(struct tls_transport *tt, int rc)
{
    int e = SSL_get_error(tt->ssl, rc);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        tt->t.want = WANT_READ;
        tt->need_socket = true;
        return TRANSPORT_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        tt->t.want = WANT_WRITE;
        return TRANSPORT_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return TRANSPORT_EOF;       /* close_notify */
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            /* EOF without close_notify, or a socket error */
            if (errno == 0 || errno == ECONNRESET || errno == EPIPE) {
                tt->t.error = "connection closed";
                ERR_clear_error();
                return errno == 0 ? TRANSPORT_EOF : TRANSPORT_ERROR;
            }
            tt->t.error = NULL;     /* errno says it */
            return TRANSPORT_ERROR;
        }
        /* fall through */
    default:
        if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_HTTP_REQUEST)
            tt->plain_http = true;
        tt->t.error = tls_error_text(tt->ssl, tt->err, tt->err_len);
        return TRANSPORT_ERROR;
    }
}

static int tls_handshake(struct transport *t)
{
    struct tls_transport *tt = TT(t);
    if (tt->handshake_done)
        return 1;
    errno = 0;
    int rc = SSL_do_handshake(tt->ssl);
    if (rc == 1) {
        tt->handshake_done = true;
        tt->need_socket = false;    /* read ahead: the first request may be in already */
        return 1;
    }
    ssize_t r = failure(tt, rc);
    if (r == TRANSPORT_EOF) {
        tt->t.error = "connection closed during the TLS handshake";
        return TRANSPORT_ERROR;
    }
    return (int)r;
}

static ssize_t tls_read(struct transport *t, struct evbuffer *in, size_t max)
{
    struct tls_transport *tt = TT(t);
    struct evbuffer_iovec v[1];
    if (evbuffer_reserve_space(in, (ev_ssize_t)max, v, 1) != 1)
        return TRANSPORT_ERROR;
    size_t room = v[0].iov_len < max ? v[0].iov_len : max;
    size_t got = 0;
    ssize_t r = 0;
    /* Decrypt until the socket has nothing more or the room is full;
     * what OpenSSL still holds is reported by tls_pending. */
    while (got < room) {
        size_t n = 0;
        errno = 0;
        int rc = SSL_read_ex(tt->ssl, (char *)v[0].iov_base + got, room - got, &n);
        if (rc != 1) {
            r = failure(tt, rc);
            break;
        }
        tt->need_socket = false;
        got += n;
    }
    if (got > 0) {
        v[0].iov_len = got;
        AZ(evbuffer_commit_space(in, v, 1));
        return (ssize_t)got;
    }
    return r;
}

static ssize_t tls_write(struct transport *t, struct evbuffer *out)
{
    struct tls_transport *tt = TT(t);
    size_t total = 0;
    while (evbuffer_get_length(out) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(out, -1, NULL, &v, 1) < 1)
            break;
        const void *data = v.iov_base;
        size_t len = v.iov_len;
        char gather[RECORD_MAX];
        if (len < RECORD_MAX && evbuffer_get_length(out) > len) {
            /* Small pieces: one record for as many as fit.  A retry after
             * WANT_WRITE gathers the same bytes again (nothing was
             * drained), as OpenSSL requires. */
            len = (size_t)evbuffer_copyout(out, gather, sizeof gather);
            data = gather;
        }
        size_t n = 0;
        errno = 0;
        int rc = SSL_write_ex(tt->ssl, data, len, &n);
        if (rc != 1) {
            ssize_t r = failure(tt, rc);
            if (total > 0 && r == TRANSPORT_AGAIN)
                return (ssize_t)total;
            return r == TRANSPORT_EOF ? TRANSPORT_ERROR : r;
        }
        evbuffer_drain(out, n);
        total += n;
    }
    return (ssize_t)total;
}

/* Bytes OpenSSL holds that no socket event will announce: decrypted ones,
 * or records read ahead (the contexts set read_ahead, as nginx does: a
 * record's header and body, and several records, in one read(2)).  Once a
 * read ended wanting the socket, what it holds is a partial record, which
 * only the socket can complete. */
static size_t tls_pending(struct transport *t)
{
    struct tls_transport *tt = TT(t);
    size_t n = (size_t)SSL_pending(tt->ssl);
    if (n > 0)
        return n;
    return !tt->need_socket && SSL_has_pending(tt->ssl) ? 1 : 0;
}

/* The close_notify alert, once (a lingering close sends it before shutting
 * the socket's sending side; tls_close then sends none).  Best effort,
 * never blocking: the peer may be gone already. */
static void tls_finish(struct transport *t)
{
    struct tls_transport *tt = TT(t);
    if (tt->handshake_done && !tt->finished) {
        SSL_set_quiet_shutdown(tt->ssl, 0);
        SSL_shutdown(tt->ssl);
    }
    ERR_clear_error();
    tt->finished = true;
}

static void tls_close(struct transport *t)
{
    struct tls_transport *tt = TT(t);
    tls_finish(t);
    SSL_free(tt->ssl);
    if (t->fd >= 0)
        close(t->fd);
    free(tt);
}

static const struct transport_ops tls_ops = {
    .name = "tls",
    .handshake = tls_handshake,
    .read = tls_read,
    .write = tls_write,
    .pending = tls_pending,
    .finish = tls_finish,
    .close = tls_close,
};

struct transport *transport_tls_new(int fd, SSL *ssl)
{
    /* An idle client connection is mostly its structs: no room for a
     * text its errors never need (we do not ask clients for
     * certificates). */
    size_t err_len = SSL_is_server(ssl) ? 0 : ERR_TEXT;
    struct tls_transport *tt = calloc(1, sizeof *tt + err_len);
    AN(tt);
    tt->err_len = (uint8_t)err_len;
    tt->t.ops = &tls_ops;
    tt->t.fd = fd;
    tt->ssl = ssl;
    AN(SSL_set_fd(ssl, fd));
    return &tt->t;
}

SSL *transport_tls_ssl(struct transport *t)
{
    return t->ops == &tls_ops ? TT(t)->ssl : NULL;
}

bool transport_tls_plain_http(struct transport *t)
{
    return t->ops == &tls_ops && TT(t)->plain_http;
}
