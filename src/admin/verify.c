/*
 * verify.c — POST /verify: compare what the cache holds with what the
 * origin serves now, by status and SHA-256 of the bodies.  The status
 * counts as much as the bytes: a stored 404 for a page the origin now
 * serves is what a client would wrongly get, even if no body differs.
 *
 * Runs on the admin thread's event loop: one GET per path straight to the
 * origin (no cache, no validators), all in parallel, each parsed with the
 * project's llhttp glue and hashed as it streams.  The connections are the
 * fetches' kind (server/conn.h): over TLS to an https:// origin, with the
 * certificate checked by origin.tls exactly as for a fetch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "freshcache/admin/admin_ops.h"
#include "freshcache/base/assert.h"
#include "freshcache/base/hex.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/etag.h"
#include "freshcache/http/http_parse.h"
#include "freshcache/base/log.h"
#include "freshcache/server/conn.h"
#include "freshcache/server/tls.h"

struct verify_job;

struct verify_item {
    struct verify_job *job;
    struct verify_result *res;
    struct conn *conn;
    struct http_msg resp;
    struct http_parser parser;
    struct etag_hasher *hasher;
    bool connected;             /* CONN_CONNECTED came: a failure now is no connect's */
    bool done;
};

struct verify_job {
    struct verify_result *results;
    struct verify_item *items;
    size_t n, pending;
    uint64_t read_timeout_ms;       /* origin.read_timeout when the job began */
    verify_done_cb done;
    void *arg;
};

struct match_arg {
    const char *path;
    const struct generations *gens;
};

/* A complete object for the path that the proxy would still serve: one
 * from an older generation is already as good as gone. */
static bool match_path(const struct cache_obj *o, const void *arg)
{
    const struct match_arg *m = arg;
    const char *slash = memchr(o->key, '/', o->key_len);
    return slash && strcmp(slash, m->path) == 0 && obj_body_state(o) == BODY_COMPLETE &&
           obj_current(o, m->gens) && !obj_soft_purged(o);
}

/* SHA-256 of a complete stored body. */
static void stored_hash(const struct cache_obj *o, char out[65])
{
    unsigned char h[32];
    if (o->has_chash) {
        memcpy(h, obj_chash(o), OBJ_CHASH_LEN);
    } else {
        struct etag_hasher *eh = etag_hasher_new();
        size_t total = obj_body_total(o);
        if (o->inline_body) {
            etag_hasher_update(eh, obj_inline_data(o), total);
            total = 0;
        }
        for (struct body_chunk *c = o->inline_body ? NULL : o->body->head; c && total;
             c = c->next) {
            size_t n = atomic_load(&c->len);
            if (n > total)
                n = total;
            etag_hasher_update(eh, c->data, n);
            total -= n;
        }
        etag_hasher_final(eh, h);
        etag_hasher_free(eh);
    }
    hex_encode(h, 32, out);
}

/* Drop one pending count; the last one reports and frees the job. */
static void job_release(struct verify_job *job)
{
    if (--job->pending > 0)
        return;
    job->done(job->arg, job->results, job->n);
    for (size_t i = 0; i < job->n; i++) {
        etag_hasher_free(job->items[i].hasher);
        http_msg_free(&job->items[i].resp);
    }
    free(job->items);
    free(job->results);
    free(job);
}

/* `why`: NULL when the origin's answer was read whole. */
static void item_finish(struct verify_item *it, const char *why)
{
    if (it->done)
        return;
    it->done = true;
    if (why) {
        snprintf(it->res->error, sizeof it->res->error, "%s", why);
        log_warn("verify %s: %s", it->res->path, why);
    } else {
        unsigned char h[32];
        etag_hasher_final(it->hasher, h);
        hex_encode(h, 32, it->res->origin_sha256);
        it->res->origin_status = it->resp.status;
    }
    struct verify_result *r = it->res;
    r->stale = r->proxy_sha256[0] && r->origin_sha256[0] &&
               (r->proxy_status != r->origin_status ||
                strcmp(r->proxy_sha256, r->origin_sha256) != 0);
    if (it->conn) {
        conn_free(it->conn);    /* inside its callback: freed when it returns */
        it->conn = NULL;
    }
    job_release(it->job);
}

static void on_body(void *owner, const char *data, size_t len)
{
    struct verify_item *it = owner;
    etag_hasher_update(it->hasher, data, len);
}

static void read_cb(void *arg)
{
    struct verify_item *it = arg;
    if (it->done)
        return;
    for (;;) {
        enum http_parse_event ev = http_parser_feed(&it->parser, it->conn->in);
        if (ev == HTTP_PARSE_HEAD)
            continue;
        if (ev == HTTP_PARSE_DONE)
            item_finish(it, NULL);
        else if (ev != HTTP_PARSE_NEED_MORE)
            item_finish(it, http_parser_error(&it->parser));
        return;
    }
}

static void event_cb(void *arg, enum conn_event ev)
{
    struct verify_item *it = arg;
    if (it->done)
        return;
    switch (ev) {
    case CONN_CONNECTED:
        it->connected = true;
        conn_set_timeouts(it->conn, it->job->read_timeout_ms, it->job->read_timeout_ms);
        if (conn_flush(it->conn) != 0)
            item_finish(it, conn_error(it->conn) ? conn_error(it->conn) : "origin connection reset");
        return;
    case CONN_EOF:
        read_cb(it);
        if (!it->done)
            item_finish(it, http_parser_eof(&it->parser) == HTTP_PARSE_DONE
                                ? NULL : "origin closed the connection early");
        return;
    case CONN_READ_TIMEOUT:
        item_finish(it, "origin read timeout");
        return;
    case CONN_WRITE_TIMEOUT:
        item_finish(it, "origin connect timeout");
        return;
    case CONN_ERROR:
        /* A TLS failure says why (verification, protocol).  Over plain TCP,
         * once connected, the error is the origin's reset (a read or a
         * write failing): not a connect that failed. */
        if (conn_error(it->conn))
            item_finish(it, conn_error(it->conn));
        else
            item_finish(it, it->connected ? "origin connection reset" : "cannot connect to origin");
        return;
    }
}

static const struct conn_cb verify_conn_cb = {
    .on_read = read_cb,
    .on_event = event_cb,
};

int ops_verify(struct server *srv, struct event_base *base, const char *const *paths, size_t n,
               verify_done_cb done, void *arg)
{
    const struct fc_config *cfg = srv->cfg;
    struct verify_job *job = calloc(1, sizeof *job);
    AN(job);
    job->n = n;
    job->pending = n + 1;   /* +1 until every item is started */
    job->done = done;
    job->arg = arg;
    job->read_timeout_ms = cfg->origin.read_timeout_ms;
    job->results = calloc(n ? n : 1, sizeof *job->results);
    job->items = calloc(n ? n : 1, sizeof *job->items);
    AN(job->results);
    AN(job->items);
    for (size_t i = 0; i < n; i++) {
        struct verify_item *it = &job->items[i];
        struct verify_result *r = &job->results[i];
        it->job = job;
        it->res = r;
        snprintf(r->path, sizeof r->path, "%s", paths[i]);
        char host[256];
        snprintf(host, sizeof host, "%s", cfg->origin.authority);
        struct match_arg ma = { paths[i], srv->gens };
        struct cache_obj *o = store_find(srv->store, match_path, &ma);
        if (o) {
            stored_hash(o, r->proxy_sha256);
            r->proxy_status = o->status;
            const char *slash = memchr(o->key, '/', o->key_len);
            if (cfg->origin.host_header == HOST_HEADER_PRESERVE && slash && slash > o->key)
                snprintf(host, sizeof host, "%.*s", (int)(slash - o->key), o->key);
            obj_unref(o);
        }
        it->hasher = etag_hasher_new();
        http_msg_init(&it->resp);
        http_parser_init(&it->parser, HTTP_RESPONSE, &it->resp, 64 * 1024, on_body, it);
        /* https://: the handshake runs before CONN_CONNECTED, under the
         * origin.tls in force (no session slot: verify is rare). */
        SSL *ssl = tls_origin_ssl(srv->tls, NULL);
        it->conn = conn_connect(base, (const struct sockaddr *)&cfg->origin.addr,
                                cfg->origin.addrlen, cfg->origin.connect_timeout_ms, ssl,
                                &verify_conn_cb, it);
        if (it->conn == NULL) {
            item_finish(it, "cannot connect to origin");
            continue;
        }
        evbuffer_add_printf(it->conn->out,
                            "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: freshcache-verify\r\n"
                            "Connection: close\r\n\r\n",
                            paths[i], host);
    }
    job_release(job);    /* the start guard: may complete the job at once */
    return 0;
}
