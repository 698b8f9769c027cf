/*
 * tls.h — the TLS contexts a config needs (OpenSSL 3).
 *
 * Listeners: one context per certificate of a TLS listener; the first is
 * the default and the others are chosen by the client's SNI against each
 * certificate's names (X509_check_host: SANs, wildcards).  TLS 1.2 minimum,
 * 1.3 preferred, forward-secret AEAD suites by default, ALPN (h2 when the
 * listener may speak it, http/1.1), no renegotiation, no stateful session
 * cache: sessions resume with tickets whose keys (struct tls_tickets) every
 * listener and worker shares, rotated on a timer, the previous key still
 * accepted.
 *
 * Origins: one client context: the peer's certificate and name verified by
 * default (system CA bundle, or origin.tls.ca_file), SNI, an optional
 * client certificate (mTLS), and sessions resumed when reconnecting.
 *
 * Ownership and threading: a struct tls_config is built from one config
 * (at start and on each reload) and read by every worker; it is never
 * changed once built, and kept until exit after a reload replaced it (a
 * connection may still use it; SSL objects hold their context's
 * reference).  struct tls_tickets lives as long as the server and is
 * thread-safe.
 */
#ifndef FRESHCACHE_TLS_H
#define FRESHCACHE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

struct config_errors;
struct fc_config;

/* ---- session-ticket keys ---------------------------------------------- */

struct tls_tickets;
/* A key ring with one fresh key. */
struct tls_tickets *tls_tickets_new(void);
void tls_tickets_free(struct tls_tickets *tk);
/* A new current key; the one it replaces still decrypts (one rotation). */
void tls_tickets_rotate(struct tls_tickets *tk);
/* How often the server rotates (12 h). */
#define TLS_TICKET_ROTATE_SECONDS (12 * 3600)

/* ---- contexts for one config --------------------------------------------- */

struct tls_config;

/* Everything `cfg` needs: certificates and keys loaded and matched, CA
 * files read.  NULL with one "FILE:LINE:COLUMN: message" per problem
 * appended to `errs` (positions from the config).  A config without TLS
 * gives an empty tls_config. */
struct tls_config *tls_config_new(const struct fc_config *cfg, struct tls_tickets *tk,
                                  struct config_errors *errs);
void tls_config_free(struct tls_config *tc);

/* A server-side SSL for a connection accepted on listen address `address`
 * (as written in the config), or NULL if that listener is plain HTTP. */
SSL *tls_accept_ssl(const struct tls_config *tc, const char *address);
/* Did the handshake of `ssl` settle on HTTP/2 by ALPN? */
bool tls_alpn_is_h2(const SSL *ssl);

/* One worker's origin session, resumed by its next connection. */
struct tls_session_slot {
    const struct tls_config *tc;    /* the config the session belongs to */
    SSL_SESSION *session;
};
/* A client-side SSL for the origin, or NULL when the origin is http://.
 * It resumes slot's session if it has one for `tc`, and stores the
 * sessions the origin issues in it (the slot must outlive the SSL; a
 * worker's does). */
SSL *tls_origin_ssl(const struct tls_config *tc, struct tls_session_slot *slot);
void tls_session_slot_clear(struct tls_session_slot *slot);

/* Certificate expiry, for metrics and warnings. */
struct tls_cert_info {
    char name[128];                 /* the first DNS name, else the subject CN */
    char file[256];
    time_t not_after;
};
size_t tls_config_certs(const struct tls_config *tc, const struct tls_cert_info **out);

/* Why the last TLS operation on this thread failed, as text for a log
 * line ("certificate verify failed: unable to get local issuer
 * certificate").  `ssl` may be NULL.  Written to `buf`; with `len` 0, a
 * string that lives as long as the process (OpenSSL's reason, without
 * the verify error's detail, which only a connection that verifies its
 * peer meets). */
const char *tls_error_text(const SSL *ssl, char *buf, size_t len);

#endif
