/*
 * transport_tcp.c — the plain TCP transport: readv/writev through
 * evbuffer_read/evbuffer_write.  See include/freshcache/server/transport.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "freshcache/base/assert.h"
#include "freshcache/server/transport.h"

/* readv into space reserved at the end of `in`: one system call, no
 * FIONREAD ioctl to size it first (evbuffer_read makes one). */
static ssize_t tcp_read(struct transport *t, struct evbuffer *in, size_t max)
{
    struct evbuffer_iovec v[2];
    int nv = evbuffer_reserve_space(in, (ev_ssize_t)max, v, 2);
    if (nv <= 0)
        return TRANSPORT_ERROR;
    struct iovec iov[2];
    for (int i = 0; i < nv; i++) {
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = v[i].iov_len;
    }
    ssize_t n = readv(t->fd, iov, nv);
    if (n > 0) {
        size_t left = (size_t)n;
        int used = 0;
        for (int i = 0; i < nv && left > 0; i++, used++) {
            if (v[i].iov_len > left)
                v[i].iov_len = left;
            left -= v[i].iov_len;
        }
        AZ(evbuffer_commit_space(in, v, used));
        return n;
    }
    if (n == 0)
        return TRANSPORT_EOF;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        t->want = WANT_READ;
        return TRANSPORT_AGAIN;
    }
    return TRANSPORT_ERROR;
}

static ssize_t tcp_write(struct transport *t, struct evbuffer *out)
{
    int n = evbuffer_write(out, t->fd);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        t->want = WANT_WRITE;
        return TRANSPORT_AGAIN;
    }
    return TRANSPORT_ERROR;
}

static void tcp_close(struct transport *t)
{
    if (t->fd >= 0)
        close(t->fd);
    free(t);
}

static const struct transport_ops tcp_ops = {
    .name = "tcp",
    .read = tcp_read,
    .write = tcp_write,
    .close = tcp_close,
};

struct transport *transport_tcp_new(int fd)
{
    struct transport *t = calloc(1, sizeof *t);
    AN(t);
    t->ops = &tcp_ops;
    t->fd = fd;
    return t;
}
