/*
 * h2.h — the HTTP/2 front end (RFC 9113) on nghttp2: framing, HPACK and
 * flow control are the library's; every stream is an exchange
 * (exchange.h), so caching behaves exactly as over HTTP/1.1.
 *
 * One connection: a conn (transport: TLS with ALPN "h2", or cleartext with
 * prior knowledge) and an nghttp2 server session.  Bytes read go to
 * nghttp2_session_mem_recv; frames nghttp2 emits go to the conn's output,
 * DATA frames by reference to the cached body (NGHTTP2_DATA_FLAG_NO_COPY),
 * pulled only as fast as the stream's flow-control window opens, so a
 * client that reads slowly costs no buffered copy of the body.
 *
 * Bounds: SETTINGS_MAX_CONCURRENT_STREAMS (limits.max_concurrent_streams),
 * the decoded header list (limits.max_header_bytes), a token bucket on
 * streams the client resets (rapid reset, CVE-2023-44487), a cap on
 * CONTINUATION frames, nghttp2's cap on queued PING/SETTINGS
 * acknowledgements (floods), and a stream that makes no progress for
 * client_timeout is reset.  A graceful GOAWAY on stop and on reload.
 *
 * Threading and ownership: a connection lives on its worker; it owns its
 * streams; a stream owns its exchange.  Streams are freed in nghttp2's
 * on_stream_close, connections from their own deferred event; exchange
 * callbacks never run nghttp2_session_send themselves (they schedule it),
 * so nothing is freed under an exchange's feet.
 */
#ifndef FRESHCACHE_H2_H
#define FRESHCACHE_H2_H

#include <stdbool.h>

struct conn;
struct peer_addr;
struct worker;

/* Serve HTTP/2 on an accepted connection whose transport is up, from
 * `peer`, over TLS or not (the scheme).  Takes the conn; counted in the
 * server's n_clients already. */
void h2_serve(struct worker *w, struct conn *conn, const struct peer_addr *peer, bool tls);
/* Graceful stop or reload: a GOAWAY to every connection of `w`; idle ones
 * close at once, the others when their streams are done. */
void h2_goaway_all(struct worker *w);
/* Shutdown, after the worker's loop ended: free every connection left. */
void h2_free_all(struct worker *w);

/* The client connection preface (RFC 9113 §3.4) a cleartext listener with
 * http2: true looks for. */
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

#endif
