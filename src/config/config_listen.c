/*
 * config_listen.c — the listen section (addresses, TLS certificates, keys
 * and protocol versions per listener) and trusted_proxies: where clients
 * come in and which peers may speak for them.  Read through the schema in
 * config_schema.h; the certificates themselves are loaded and checked by
 * the server, which reports at the positions kept here.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/base/assert.h"
#include "freshcache/config/cidr.h"
#include "freshcache/config/config.h"
#include "config_schema.h"

/* Parse "1.2.3.4:80", "[::1]:80" or "*:80" (all IPv4 addresses).  NULL on
 * success, else what is wrong. */
const char *parse_listen_address(const char *s, struct sockaddr_storage *ss,
                                 socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
    const char *h, *port;
    size_t hlen;
    bool v6;
    uint64_t portnum;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return "missing ']' after the IPv6 address";
        if (close[1] != ':')
            return "missing :PORT";
        h = s + 1;
        hlen = (size_t)(close - h);
        port = close + 2;
        v6 = true;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL)
            return "missing :PORT";
        h = s;
        hlen = (size_t)(colon - s);
        if (memchr(h, ':', hlen) != NULL)
            return "an IPv6 address must be in brackets";
        port = colon + 1;
        v6 = false;
    }
    const char *p = port;
    if (!parse_digits(&p, &portnum) || *p != '\0' || portnum < 1 || portnum > 65535)
        return "the port must be a number from 1 to 65535";
    if (hlen == 0 || hlen >= sizeof host)
        return "missing or overlong address";
    memcpy(host, h, hlen);
    host[hlen] = '\0';

    memset(ss, 0, sizeof *ss);
    if (!v6) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)portnum);
        if (strcmp(host, "*") == 0)
            sin->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return "not a numeric IPv4 address";
        *len = sizeof *sin;
        return NULL;
    }

    /* getaddrinfo rather than inet_pton so a zone ("[fe80::1%eth0]:80")
     * works; AI_NUMERICHOST keeps it from ever touching DNS. */
    struct addrinfo hints = { .ai_family = AF_INET6, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
    struct addrinfo *res;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)portnum);
    if (getaddrinfo(host, portstr, &hints, &res) != 0)
        return "not a numeric IPv6 address";
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return NULL;
}

static void field_listen_address(struct loader *ld, const struct field *f, const char *path,
                                 const yaml_node_t *val, void *obj)
{
    struct fc_listen *l = obj;
    const char *s = get_scalar(ld, path, val);
    const char *why;

    (void)f;
    if (s == NULL)
        return;
    /* Kept even when invalid, so "address is required" does not pile on. */
    set_string(&l->address, s);
    why = parse_listen_address(s, &l->addr, &l->addrlen);
    if (why != NULL)
        error_at(ld, val, "%s: invalid address %s: %s (use e.g. 127.0.0.1:8080, [::1]:8080 "
                 "or *:8080)", path, quoted(s).s, why);
}

/* ------------------------------------------------------------------------
 * TLS: certificates and keys (loaded and checked later by the server,
 * which reports at the positions kept here), versions, ciphers.
 */

static const struct field tls_cert_fields[] = {
    { .key = "certificate", .fn = field_path, .off = offsetof(struct fc_tls_cert, certificate) },
    { .key = "key",         .fn = field_path, .off = offsetof(struct fc_tls_cert, key) },
};

static bool cert_complete(struct loader *ld, const char *path, const yaml_node_t *node,
                          const struct fc_tls_cert *c)
{
    if (c->certificate != NULL && c->key != NULL)
        return true;
    error_at(ld, node, "%s: both certificate and key are required", path);
    return false;
}

void free_cert(struct fc_tls_cert *c)
{
    free(c->certificate);
    free(c->key);
}

void free_listen_tls(struct fc_listen_tls *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_certs; i++)
        free_cert(&t->certs[i]);
    free(t->certs);
    free(t->ciphers);
    free(t);
}

static void field_tls_certificates(struct loader *ld, const struct field *f, const char *path,
                                   const yaml_node_t *val, void *obj)
{
    struct fc_listen_tls *t = TARGET(obj, f, struct fc_listen_tls);
    if (val->type != YAML_SEQUENCE_NODE || val->data.sequence.items.top ==
                                               val->data.sequence.items.start) {
        error_at(ld, val, "%s: expected a list of { certificate: FILE, key: FILE }, got %s",
                 path, describe(val).s);
        return;
    }
    const yaml_node_item_t *items = val->data.sequence.items.start;
    size_t n = (size_t)(val->data.sequence.items.top - items);
    t->certs = xcalloc(n, sizeof *t->certs);
    t->n_certs = n;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = node_at(ld, items[i]);
        char ipath[96];
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        size_t before = ld->n_errors;
        walk_mapping(ld, ipath, item, tls_cert_fields, FC_ARRAY_LEN(tls_cert_fields),
                     &t->certs[i]);
        if (ld->n_errors == before)
            cert_complete(ld, ipath, item, &t->certs[i]);
    }
}

static const struct choice tls_version_choices[] = {
    { "TLSv1.2", FC_TLS_1_2 }, { "TLSv1.3", FC_TLS_1_3 }, { NULL, 0 },
};

static void field_tls_protocols(struct loader *ld, const struct field *f, const char *path,
                                const yaml_node_t *val, void *obj)
{
    struct fc_listen_tls *t = TARGET(obj, f, struct fc_listen_tls);
    if (val->type != YAML_SEQUENCE_NODE || val->data.sequence.items.top ==
                                               val->data.sequence.items.start) {
        error_at(ld, val, "%s: expected a list such as [TLSv1.2, TLSv1.3], got %s", path,
                 describe(val).s);
        return;
    }
    int lo = 99, hi = 0;
    for (const yaml_node_item_t *it = val->data.sequence.items.start;
         it < val->data.sequence.items.top; it++) {
        const yaml_node_t *item = node_at(ld, *it);
        const char *s = get_scalar(ld, path, item);
        if (s == NULL)
            return;
        const struct choice *c = tls_version_choices;
        while (c->word && strcmp(c->word, s) != 0)
            c++;
        if (c->word == NULL) {
            /* TLS 1.0 and 1.1 are broken (RFC 8996): say so, not just "invalid". */
            bool old = strcmp(s, "TLSv1") == 0 || strcmp(s, "TLSv1.0") == 0 ||
                       strcmp(s, "TLSv1.1") == 0 || strncmp(s, "SSL", 3) == 0;
            error_at(ld, item, "%s: %s %s (expected TLSv1.2 or TLSv1.3)", path, quoted(s).s,
                     old ? "is deprecated and not supported (RFC 8996)" : "is not a TLS version");
            return;
        }
        if (c->value < lo)
            lo = c->value;
        if (c->value > hi)
            hi = c->value;
    }
    t->min_version = lo;
    t->max_version = hi;
}

/* What a tls section holds while it is read: the single-certificate form
 * (certificate and key directly under tls) or the list (certificates),
 * plus the settings.  Both forms at once is an error. */
struct tls_section {
    struct fc_tls_cert single;
    struct fc_listen_tls t;
};

static const struct field listen_tls_fields[] = {
    { .key = "certificate",  .fn = field_path,
      .off = offsetof(struct tls_section, single.certificate) },
    { .key = "key",          .fn = field_path, .off = offsetof(struct tls_section, single.key) },
    { .key = "certificates", .fn = field_tls_certificates, .off = offsetof(struct tls_section, t) },
    { .key = "protocols",    .fn = field_tls_protocols, .off = offsetof(struct tls_section, t) },
    { .key = "ciphers",      .fn = field_string, .off = offsetof(struct tls_section, t.ciphers) },
};

static void field_listen_tls(struct loader *ld, const struct field *f, const char *path,
                             const yaml_node_t *val, void *obj)
{
    struct fc_listen *l = obj;
    size_t before = ld->n_errors;
    struct tls_section sec = { .t = { .min_version = FC_TLS_1_2, .max_version = FC_TLS_1_3 } };

    (void)f;
    if (is_null(val) || !walk_mapping(ld, path, val, listen_tls_fields,
                                      FC_ARRAY_LEN(listen_tls_fields), &sec)) {
        if (is_null(val))
            error_at(ld, val, "%s: a certificate is required: { certificate: FILE, key: FILE }",
                     path);
        goto drop;
    }
    if (ld->n_errors != before)
        goto drop;
    bool has_single = sec.single.certificate != NULL || sec.single.key != NULL;
    if (has_single && sec.t.n_certs > 0) {
        error_at(ld, val, "%s: give either certificate and key, or certificates, not both", path);
        goto drop;
    }
    if (has_single) {
        if (!cert_complete(ld, path, val, &sec.single))
            goto drop;
        sec.t.certs = xcalloc(1, sizeof *sec.t.certs);
        sec.t.certs[0] = sec.single;
        sec.t.n_certs = 1;
        sec.single = (struct fc_tls_cert){ 0 };
    } else if (sec.t.n_certs == 0) {
        error_at(ld, val, "%s: a certificate is required: { certificate: FILE, key: FILE }", path);
        goto drop;
    }
    free_listen_tls(l->tls);
    l->tls = xcalloc(1, sizeof *l->tls);
    *l->tls = sec.t;
    return;
drop:
    free_cert(&sec.single);
    for (size_t i = 0; i < sec.t.n_certs; i++)
        free_cert(&sec.t.certs[i]);
    free(sec.t.certs);
    free(sec.t.ciphers);
}

static const struct field listen_fields[] = {
    { .key = "address", .fn = field_listen_address },
    { .key = "tls",     .fn = field_listen_tls },
    { .key = "http2",   .fn = field_bool, .off = offsetof(struct fc_listen, http2) },
};

void field_listen(struct loader *ld, const struct field *f, const char *path,
                  const yaml_node_t *val, void *obj)
{
    struct fc_config *cfg = obj;
    const yaml_node_item_t *items;
    size_t n;

    (void)f;
    ld->listen_seen = true;
    if (val->type != YAML_SEQUENCE_NODE) {
        error_at(ld, val, "%s: expected a list of listeners (- address: HOST:PORT), got %s",
                 path, describe(val).s);
        return;
    }
    items = val->data.sequence.items.start;
    n = (size_t)(val->data.sequence.items.top - items);
    if (n == 0) {
        error_at(ld, val, "%s: no listeners; give at least one (- address: HOST:PORT)", path);
        return;
    }
    cfg->listen = xcalloc(n, sizeof *cfg->listen);
    cfg->n_listen = n;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = node_at(ld, items[i]);
        struct fc_listen *l = &cfg->listen[i];
        size_t before = ld->n_errors;
        char ipath[64];

        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        walk_mapping(ld, ipath, item, listen_fields, FC_ARRAY_LEN(listen_fields), l);
        if (ld->n_errors != before)
            continue;
        if (l->address == NULL) {
            error_at(ld, item, "%s: address is required", ipath);
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (cfg->listen[j].addrlen == l->addrlen &&
                memcmp(&cfg->listen[j].addr, &l->addr, l->addrlen) == 0) {
                error_at(ld, item, "%s: %s is already listened on by %s[%zu]", ipath,
                         quoted(l->address).s, path, j);
                break;
            }
        }
    }
}

/* trusted_proxies: [10.0.0.0/8, "2001:db8::/32", 192.0.2.7], or one as a
 * plain string; [] (the default) trusts no peer. */
static void add_trusted_proxy(struct loader *ld, const char *path, const yaml_node_t *val,
                              void *ctx)
{
    struct fc_config *cfg = ctx;
    const char *s = get_scalar(ld, path, val);
    char why[160];

    if (s == NULL)
        return;
    if (cidr_parse(s, &cfg->trusted_proxies[cfg->n_trusted_proxies], why, sizeof why) != 0) {
        error_at(ld, val, "%s: %s: %s", path, quoted(s).s, why);
        return;
    }
    cfg->n_trusted_proxies++;
}

void field_trusted_proxies(struct loader *ld, const struct field *f, const char *path,
                           const yaml_node_t *val, void *obj)
{
    struct fc_config *cfg = obj;

    (void)f;
    if (is_null(val))
        return;
    if (val->type == YAML_MAPPING_NODE) {
        error_at(ld, val, "%s: expected a list of addresses or CIDR ranges "
                 "([10.0.0.0/8, \"::1\"]), got %s", path, describe(val).s);
        return;
    }
    cfg->trusted_proxies = xcalloc(list_count(val) + 1, sizeof *cfg->trusted_proxies);
    for_each_item(ld, path, val, add_trusted_proxy, cfg);
}
