/*
 * http1.h — the HTTP/1.1 front end: one client connection, parsed with
 * llhttp, each request handed to an exchange (exchange.h), each answer
 * serialised back, in order.
 *
 *   READ ──head──▶ EXCHANGE ──request and response done──▶ READ (keep-alive)
 *     │               │
 *     └──────────────▶ CLOSING ──output flushed──▶ freed (from an event)
 *
 * Requests are parsed one at a time: after a request's head the parser is
 * not fed past its end until the response is completely queued, which
 * answers pipelined requests in order.  Keep-alive follows HTTP/1.0 and
 * 1.1 rules; a connection is freed only from its own deferred event.
 */
#ifndef FRESHCACHE_HTTP1_H
#define FRESHCACHE_HTTP1_H

#include <stdbool.h>

struct conn;
struct peer_addr;
struct worker;

/* A connection was accepted on worker `w` (and its TLS handshake, if any,
 * is done): serve HTTP/1.1 on it.  `peer` is the client's address (copied),
 * `tls` whether the scheme is "https".  Takes the conn; counted in the
 * server's n_clients already. */
void http1_serve(struct worker *w, struct conn *conn, const struct peer_addr *peer, bool tls);
/* Graceful stop: close every connection that is idle between requests,
 * and end the linger of those closing in stages. */
void http1_close_idle(struct worker *w);
/* Shutdown, after the worker's loop ended: free every connection left. */
void http1_free_all(struct worker *w);
/* Free the per-request parts pooled for reuse (after a purge freed the
 * cache: see server.c, trim_if_shrunk).  On the worker's thread, from an
 * event of its own (not inside an exchange's callbacks). */
void http1_shed_pool(struct worker *w);

#endif
