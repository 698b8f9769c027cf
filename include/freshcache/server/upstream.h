/*
 * upstream.h — connections to the origin: a per-worker pool of idle
 * keep-alive connections, and new non-blocking connects.
 *
 * A connection belongs to exactly one fetch while in use (the fetch is the
 * owner of its conn's callbacks) and to the worker's idle list otherwise,
 * where any byte or EOF from the origin closes it.
 */
#ifndef FRESHCACHE_UPSTREAM_H
#define FRESHCACHE_UPSTREAM_H

#include <stdbool.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct conn;
struct tls_config;
struct conn_cb;
struct worker;

struct upstream_conn {
#define UPSTREAM_MAGIC 0x0b57ea30u
    unsigned magic;
    struct worker *w;
    struct conn *conn;
    TAILQ_ENTRY(upstream_conn) idle_link;
    bool idle;
    bool connected;
    unsigned requests;              /* responses read on this connection */
    struct sockaddr_storage addr;   /* the origin it connects to */
    const struct tls_config *tls;   /* the TLS settings it was made under (https) */
    socklen_t addrlen;
};

/* An idle pooled connection if there is one (*reused = true, connected),
 * else a new connecting one (CONN_CONNECTED follows).  Either way its conn
 * reports to `cb`/`arg`.  NULL on immediate failure (errno set). */
struct upstream_conn *upstream_acquire(struct worker *w, const struct conn_cb *cb, void *arg,
                                       bool *reused);
/* Give a connection back after a complete exchange: pooled when `reusable`,
 * closed otherwise. */
void upstream_release(struct upstream_conn *uc, bool reusable);
/* Close every idle connection of the worker. */
void upstream_close_idle(struct worker *w);

#endif
