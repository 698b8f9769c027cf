/*
 * tls.c — TLS contexts for listeners and the origin.  See
 * include/freshcache/server/tls.h.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/config/config.h"
#include "freshcache/server/tls.h"

/* TLS 1.2 suites by default: forward secrecy (ECDHE) and AEAD only.  TLS
 * 1.3's are all both. */
#define DEFAULT_CIPHERS_12 "ECDHE+AESGCM:ECDHE+CHACHA20"
/* Offer HTTP/2 by ALPN, preferred over http/1.1 (spec: TLS listeners
 * offer h2 and http/1.1). */
#define OFFER_H2 true

/* ---- session-ticket keys ---------------------------------------------- */

struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

struct tls_tickets {
#define TICKETS_MAGIC 0x71c4e75au
    unsigned magic;
    pthread_rwlock_t lock;          /* rotation (rare) against handshakes */
    struct ticket_key cur, prev;
    bool has_prev;
};

static void key_fill(struct ticket_key *k)
{
    AN(RAND_bytes(k->name, sizeof k->name));
    AN(RAND_bytes(k->aes, sizeof k->aes));
    AN(RAND_bytes(k->hmac, sizeof k->hmac));
}

struct tls_tickets *tls_tickets_new(void)
{
    struct tls_tickets *tk = calloc(1, sizeof *tk);
    AN(tk);
    tk->magic = TICKETS_MAGIC;
    AZ(pthread_rwlock_init(&tk->lock, NULL));
    key_fill(&tk->cur);
    return tk;
}

void tls_tickets_free(struct tls_tickets *tk)
{
    if (tk == NULL)
        return;
    CHECK_OBJ(tk, TICKETS_MAGIC);
    pthread_rwlock_destroy(&tk->lock);
    OPENSSL_cleanse(tk, sizeof *tk);
    free(tk);
}

void tls_tickets_rotate(struct tls_tickets *tk)
{
    CHECK_OBJ_NOTNULL(tk, TICKETS_MAGIC);
    struct ticket_key k;
    key_fill(&k);
    pthread_rwlock_wrlock(&tk->lock);
    tk->prev = tk->cur;
    tk->has_prev = true;
    tk->cur = k;
    pthread_rwlock_unlock(&tk->lock);
    OPENSSL_cleanse(&k, sizeof k);
}

/* The indexes of our data on OpenSSL objects: process-wide and set once
 * (pthread_once), never changed after. */
static int ctx_tickets_index = -1;  /* SSL_CTX → struct tls_tickets */
static int ctx_config_index = -1;   /* origin SSL_CTX → its struct tls_config */
static int ssl_slot_index = -1;     /* SSL → struct tls_session_slot */
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void make_indexes(void)
{
    ctx_tickets_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ctx_config_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ssl_slot_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    FC_ASSERT(ctx_tickets_index >= 0 && ctx_config_index >= 0 && ssl_slot_index >= 0);
}

static int set_mac_key(EVP_MAC_CTX *hctx, const struct ticket_key *k)
{
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac,
                                                  sizeof k->hmac);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"sha256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params);
}

/* OpenSSL asks for a key to encrypt a new ticket (enc) or for the key a
 * presented ticket names.  1: here it is; 2: here it is, and issue a new
 * ticket (under the current key) after this resumption; 0: unknown, full
 * handshake.  A new ticket follows a resumption made with the previous key
 * and every TLS 1.3 resumption: TLS 1.3 clients use a ticket once (RFC 8446
 * §C.4; OpenSSL's client keeps none after using it), so without a new one a
 * returning client's next connection is a full handshake.  OpenSSL without
 * a callback and nginx's callback renew TLS 1.3 tickets the same way. */
static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    struct tls_tickets *tk = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_tickets_index);
    CHECK_OBJ_NOTNULL(tk, TICKETS_MAGIC);
    int rc = 0;
    pthread_rwlock_rdlock(&tk->lock);
    if (enc) {
        const struct ticket_key *k = &tk->cur;
        memcpy(name, k->name, sizeof k->name);
        if (RAND_bytes(iv, 16) == 1 &&
            EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 &&
            set_mac_key(hctx, k) == 1)
            rc = 1;
        else
            rc = -1;
    } else {
        const struct ticket_key *k = NULL;
        if (memcmp(name, tk->cur.name, 16) == 0)
            k = &tk->cur;
        else if (tk->has_prev && memcmp(name, tk->prev.name, 16) == 0)
            k = &tk->prev;
        if (k != NULL) {
            if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 &&
                set_mac_key(hctx, k) == 1)
                rc = k == &tk->cur && SSL_version(ssl) != TLS1_3_VERSION ? 1 : 2;
            else
                rc = -1;
        }
    }
    pthread_rwlock_unlock(&tk->lock);
    return rc;
}

/* ---- the contexts of one config ---------------------------------------- */

struct tls_listener {
    char *address;
    SSL_CTX **ctxs;                 /* one per certificate, [0] the default */
    size_t n;
    unsigned char alpn[32];         /* our protocols, ALPN wire format, preferred first */
    size_t alpn_len;
};

struct tls_config {
#define TLS_CONFIG_MAGIC 0x7150c0f1u
    unsigned magic;
    struct tls_listener *ls;
    size_t n_ls;
    SSL_CTX *origin;                /* NULL: the origin is http:// */
    char *origin_name;              /* for SNI and verification */
    bool origin_name_is_ip;
    bool origin_verify;
    struct tls_cert_info *certs;
    size_t n_certs;
};

const char *tls_error_text(const SSL *ssl, char *buf, size_t len)
{
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = ERR_peek_last_error();
    const char *text = "TLS handshake failed";
    if (vr != X509_V_OK && len > 0) {
        snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
        text = buf;
    } else if (vr != X509_V_OK) {
        text = "certificate verify failed";
    } else if (e != 0) {
        const char *r = ERR_reason_error_string(e);
        text = r ? r : "TLS error";
    }
    if (len > 0 && text != buf) {
        snprintf(buf, len, "%s", text);
        text = buf;
    }
    ERR_clear_error();
    return text;
}

/* A problem with the file at config key `path`, with OpenSSL's reason. */
static void file_error(struct config_errors *errs, const struct fc_config *cfg, const char *path,
                       const char *what, const char *file)
{
    char why[256];
    tls_error_text(NULL, why, sizeof why);
    config_error_at(cfg, path, errs, "%s: %s %s: %s", path, what, file, why);
}

/* The versions and suites shared by every server context. */
static bool configure_server_ctx(SSL_CTX *ctx, const struct fc_listen_tls *t)
{
    int lo = t->min_version == FC_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    int hi = t->max_version == FC_TLS_1_2 ? TLS1_2_VERSION : TLS1_3_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx, lo) != 1 || SSL_CTX_set_max_proto_version(ctx, hi) != 1)
        return false;
    if (SSL_CTX_set_cipher_list(ctx, t->ciphers ? t->ciphers : DEFAULT_CIPHERS_12) != 1)
        return false;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    /* Partial writes: a response larger than the socket buffer is written
     * as the socket takes it.  Released buffers: an idle connection keeps
     * no 34 KiB of TLS buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* One read(2) for a record's header and body, and for every record
     * the socket has (nginx does the same): half the reads per request. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Tickets only: no per-context session cache to lock and fill. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return true;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    const struct tls_listener *l = arg;
    unsigned char *sel;
    unsigned char sel_len;
    if (SSL_select_next_proto(&sel, &sel_len, l->alpn, (unsigned)l->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;    /* no protocol in common: carry on without ALPN */
    *out = sel;
    *outlen = sel_len;
    return SSL_TLSEXT_ERR_OK;
}

/* SNI: the first certificate whose names match the requested host. */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const struct tls_listener *l = arg;
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (host == NULL || l->n < 2)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < l->n; i++) {
        X509 *cert = SSL_CTX_get0_certificate(l->ctxs[i]);
        if (cert && X509_check_host(cert, host, 0, 0, NULL) == 1) {
            if (i > 0)
                SSL_set_SSL_CTX(ssl, l->ctxs[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

static void cert_info(X509 *cert, const char *file, struct tls_cert_info *ci)
{
    memset(ci, 0, sizeof *ci);
    snprintf(ci->file, sizeof ci->file, "%s", file);
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !ci->name[0]; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_DNS)
            snprintf(ci->name, sizeof ci->name, "%.*s", ASN1_STRING_length(gn->d.dNSName),
                     (const char *)ASN1_STRING_get0_data(gn->d.dNSName));
    }
    GENERAL_NAMES_free(names);
    if (!ci->name[0])
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, ci->name,
                                  sizeof ci->name);
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
        ci->not_after = timegm(&tm);
}

static void add_cert_info(struct tls_config *tc, X509 *cert, const char *file)
{
    tc->certs = realloc(tc->certs, (tc->n_certs + 1) * sizeof *tc->certs);
    AN(tc->certs);
    cert_info(cert, file, &tc->certs[tc->n_certs++]);
}

static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return 0;
}

/* Does the PEM file hold an encrypted private key? */
static bool key_is_encrypted(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[256];
    bool enc = false;
    while (!enc && fgets(line, sizeof line, f))
        enc = strstr(line, "ENCRYPTED") != NULL;
    fclose(f);
    return enc;
}

/* Load a certificate chain and its key into `ctx`, checking they match.
 * `where` is the config path holding them ("listen[1].tls",
 * "listen[1].tls.certificates[2]", "origin.tls"): errors are reported at
 * their keys. */
static bool load_pair(SSL_CTX *ctx, const struct fc_config *cfg, const struct fc_tls_cert *c,
                      const char *where, struct config_errors *errs)
{
    char cpath[160], kpath[160];
    snprintf(cpath, sizeof cpath, "%s.certificate", where);
    snprintf(kpath, sizeof kpath, "%s.key", where);
    /* An encrypted key would make OpenSSL prompt on the terminal: refuse
     * to be asked, and say why below. */
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    /* Say "No such file or directory", not OpenSSL's "system lib". */
    if (access(c->certificate, R_OK) != 0) {
        config_error_at(cfg, cpath, errs, "%s: cannot read certificate %s: %s", cpath,
                        c->certificate, strerror(errno));
        return false;
    }
    if (access(c->key, R_OK) != 0) {
        config_error_at(cfg, kpath, errs, "%s: cannot read key %s: %s", kpath, c->key,
                        strerror(errno));
        return false;
    }
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, c->certificate) != 1) {
        file_error(errs, cfg, cpath, "cannot load certificate", c->certificate);
        return false;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
        if (key_is_encrypted(c->key)) {
            ERR_clear_error();
            config_error_at(cfg, kpath, errs, "%s: key %s is encrypted: freshcached reads "
                            "unencrypted keys only (protect the file instead: mode 0600, or "
                            "systemd LoadCredential=)", kpath, c->key);
        } else {
            file_error(errs, cfg, kpath, "cannot load key", c->key);
        }
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        config_error_at(cfg, kpath, errs, "%s: key %s does not match certificate %s", kpath,
                        c->key, c->certificate);
        return false;
    }
    return true;
}

static bool build_listener(struct tls_config *tc, struct tls_tickets *tk,
                           const struct fc_config *cfg, size_t li,
                           struct tls_listener *l, struct config_errors *errs)
{
    const struct fc_listen *fl = &cfg->listen[li];
    const struct fc_listen_tls *t = fl->tls;
    char tpath[64], lpath[96];
    snprintf(tpath, sizeof tpath, "listen[%zu].tls", li);
    snprintf(lpath, sizeof lpath, "%s.certificates", tpath);
    bool listed = config_written(cfg, lpath);
    l->address = strdup(fl->address);
    AN(l->address);
    l->ctxs = calloc(t->n_certs, sizeof *l->ctxs);
    AN(l->ctxs);
    size_t n = 0;
    if (OFFER_H2) {
        memcpy(l->alpn + n, "\x02h2", 3);
        n += 3;
    }
    memcpy(l->alpn + n, "\x08http/1.1", 9);
    l->alpn_len = n + 9;
    bool ok = true;
    for (size_t i = 0; i < t->n_certs; i++) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        AN(ctx);
        l->ctxs[l->n++] = ctx;
        if (!configure_server_ctx(ctx, t)) {
            char why[256];
            char cpath[96];
            snprintf(cpath, sizeof cpath, "%s.ciphers", tpath);
            config_error_at(cfg, cpath, errs, "%s: invalid TLS settings: %s", tpath,
                            tls_error_text(NULL, why, sizeof why));
            ok = false;
            break;
        }
        char where[128];
        if (listed)
            snprintf(where, sizeof where, "%s[%zu]", lpath, i);
        else
            snprintf(where, sizeof where, "%s", tpath);
        if (!load_pair(ctx, cfg, &t->certs[i], where, errs)) {
            ok = false;
            continue;
        }
        AN(SSL_CTX_set_ex_data(ctx, ctx_tickets_index, tk));
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
        SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, l);
        add_cert_info(tc, SSL_CTX_get0_certificate(ctx), t->certs[i].certificate);
    }
    if (ok && l->n > 0) {
        SSL_CTX_set_tlsext_servername_callback(l->ctxs[0], servername_cb);
        SSL_CTX_set_tlsext_servername_arg(l->ctxs[0], l);
    }
    return ok;
}

/* A new session from the origin (TLS 1.3 tickets arrive after the
 * handshake): keep it in the worker's slot for the next connection. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_session_slot *slot = SSL_get_ex_data(ssl, ssl_slot_index);
    const struct tls_config *tc = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_config_index);
    if (slot == NULL || tc == NULL)
        return 0;
    if (slot->session)
        SSL_SESSION_free(slot->session);
    slot->session = sess;
    slot->tc = tc;
    return 1;       /* we keep the reference */
}

static bool build_origin(struct tls_config *tc, const struct fc_config *cfg,
                         struct config_errors *errs)
{
    const struct fc_origin *o = &cfg->origin;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    AN(ctx);
    tc->origin = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* One read(2) for a record's header and body, and for every record
     * the socket has (nginx does the same): half the reads per request. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    tc->origin_verify = o->tls_verify;
    if (o->tls_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        ERR_clear_error();
        int rc = o->tls_ca_file ? SSL_CTX_load_verify_locations(ctx, o->tls_ca_file, NULL)
                                : SSL_CTX_set_default_verify_paths(ctx);
        if (o->tls_ca_file && access(o->tls_ca_file, R_OK) != 0) {
            config_error_at(cfg, "origin.tls.ca_file", errs, "origin.tls.ca_file: cannot read "
                            "CA file %s: %s", o->tls_ca_file, strerror(errno));
            return false;
        }
        if (rc != 1) {
            file_error(errs, cfg, "origin.tls.ca_file", "cannot load CA file",
                       o->tls_ca_file ? o->tls_ca_file : "(system default)");
            return false;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (o->tls_client.certificate && !load_pair(ctx, cfg, &o->tls_client, "origin.tls", errs))
        return false;
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    AN(SSL_CTX_set_ex_data(ctx, ctx_config_index, tc));
    const char *name = o->tls_server_name ? o->tls_server_name : o->host;
    tc->origin_name = strdup(name);
    AN(tc->origin_name);
    unsigned char buf[16];
    tc->origin_name_is_ip = inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
    return true;
}

struct tls_config *tls_config_new(const struct fc_config *cfg, struct tls_tickets *tk,
                                  struct config_errors *errs)
{
    pthread_once(&index_once, make_indexes);
    struct tls_config *tc = calloc(1, sizeof *tc);
    AN(tc);
    tc->magic = TLS_CONFIG_MAGIC;
    bool ok = true;
    size_t n_tls = 0;
    for (size_t i = 0; i < cfg->n_listen; i++)
        n_tls += cfg->listen[i].tls != NULL;
    tc->ls = calloc(n_tls ? n_tls : 1, sizeof *tc->ls);
    AN(tc->ls);
    for (size_t i = 0; i < cfg->n_listen; i++) {
        if (cfg->listen[i].tls == NULL)
            continue;
        if (!build_listener(tc, tk, cfg, i, &tc->ls[tc->n_ls++], errs))
            ok = false;
    }
    if (cfg->origin.https && !build_origin(tc, cfg, errs))
        ok = false;
    if (!ok) {
        tls_config_free(tc);
        return NULL;
    }
    return tc;
}

void tls_config_free(struct tls_config *tc)
{
    if (tc == NULL)
        return;
    CHECK_OBJ(tc, TLS_CONFIG_MAGIC);
    for (size_t i = 0; i < tc->n_ls; i++) {
        for (size_t j = 0; j < tc->ls[i].n; j++)
            SSL_CTX_free(tc->ls[i].ctxs[j]);
        free(tc->ls[i].ctxs);
        free(tc->ls[i].address);
    }
    free(tc->ls);
    if (tc->origin)
        SSL_CTX_free(tc->origin);
    free(tc->origin_name);
    free(tc->certs);
    tc->magic = 0;
    free(tc);
}

SSL *tls_accept_ssl(const struct tls_config *tc, const char *address)
{
    CHECK_OBJ_NOTNULL(tc, TLS_CONFIG_MAGIC);
    for (size_t i = 0; i < tc->n_ls; i++) {
        if (strcmp(tc->ls[i].address, address) == 0) {
            SSL *ssl = SSL_new(tc->ls[i].ctxs[0]);
            AN(ssl);
            SSL_set_accept_state(ssl);
            return ssl;
        }
    }
    return NULL;
}

bool tls_alpn_is_h2(const SSL *ssl)
{
    const unsigned char *p;
    unsigned int len;
    SSL_get0_alpn_selected(ssl, &p, &len);
    return len == 2 && memcmp(p, "h2", 2) == 0;
}

SSL *tls_origin_ssl(const struct tls_config *tc, struct tls_session_slot *slot)
{
    CHECK_OBJ_NOTNULL(tc, TLS_CONFIG_MAGIC);
    if (tc->origin == NULL)
        return NULL;
    SSL *ssl = SSL_new(tc->origin);
    AN(ssl);
    SSL_set_connect_state(ssl);
    if (!tc->origin_name_is_ip)
        SSL_set_tlsext_host_name(ssl, tc->origin_name);
    if (tc->origin_verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        if (tc->origin_name_is_ip)
            AN(X509_VERIFY_PARAM_set1_ip_asc(vp, tc->origin_name));
        else
            AN(SSL_set1_host(ssl, tc->origin_name));
    }
    if (slot) {
        if (slot->tc == tc && slot->session)
            SSL_set_session(ssl, slot->session);
        AN(SSL_set_ex_data(ssl, ssl_slot_index, slot));
    }
    return ssl;
}

void tls_session_slot_clear(struct tls_session_slot *slot)
{
    if (slot->session)
        SSL_SESSION_free(slot->session);
    slot->session = NULL;
    slot->tc = NULL;
}

size_t tls_config_certs(const struct tls_config *tc, const struct tls_cert_info **out)
{
    CHECK_OBJ_NOTNULL(tc, TLS_CONFIG_MAGIC);
    *out = tc->certs;
    return tc->n_certs;
}
