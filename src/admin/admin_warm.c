/*
 * admin_warm.c — POST /warm: fetch a list of URLs (or a sitemap's) into the
 * cache after a deploy, streaming one JSON line per URL as it completes
 * (admin/warm.c does the work).  Unlike a verify, a warm whose client left
 * is cancelled: nobody would see the rest.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "freshcache/admin/admin_body.h"
#include "freshcache/admin/sitemap.h"
#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/server/server.h"
#include "admin_int.h"

static void warm_pending_free(struct warm_pending *wp)
{
    CHECK_OBJ_NOTNULL(wp, WARM_PENDING_MAGIC);
    free(wp->sitemap);
    wp->magic = 0;
    free(wp);
}

/* The client is gone, or the admin stops (`why`): no one reads the rest. */
void warm_abandon(struct admin_conn *c, const char *why)
{
    struct warm_pending *wp = c->wpending;
    CHECK_OBJ_NOTNULL(wp, WARM_PENDING_MAGIC);
    log_info("admin: warm cancelled, %s [%s]", why, c->who);
    warm_cancel(wp->job);
    c->wpending = NULL;
    warm_pending_free(wp);
}

/* One line of the streamed answer, as one chunk. */
static void stream_line(struct admin_conn *c, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    AN(text);
    size_t len = strlen(text);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out, "%zx\r\n", len + 1);
    evbuffer_add(out, text, len);
    evbuffer_add(out, "\n\r\n", 3);
    free(text);
}

static void warm_item(void *arg, const struct warm_item *it)
{
    struct warm_pending *wp = arg;
    CHECK_OBJ_NOTNULL(wp, WARM_PENDING_MAGIC);
    struct admin_conn *c = wp->conn;
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    json_t *o = json_object();
    json_object_set_new(o, it->sitemap ? "sitemap" : "url", json_string(it->url));
    if (it->status)
        json_object_set_new(o, "status", json_integer(it->status));
    if (it->cache_status[0])
        json_object_set_new(o, "cache_status", json_string(it->cache_status));
    if (it->sitemap) {
        json_object_set_new(o, "result", json_string(it->outcome == WARM_FAILED ? "failed" : "ok"));
        if (it->outcome != WARM_FAILED)
            json_object_set_new(o, "listed", json_integer((json_int_t)it->listed));
    } else {
        json_object_set_new(o, "result", json_string(warm_outcome_name(it->outcome)));
        c->a->warm_urls[it->outcome]++;
    }
    if (it->error)
        json_object_set_new(o, "error", json_string(it->error));
    stream_line(c, o);
}

static void warm_done(void *arg, const struct warm_summary *s)
{
    struct warm_pending *wp = arg;
    CHECK_OBJ_NOTNULL(wp, WARM_PENDING_MAGIC);
    struct admin_conn *c = wp->conn;
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    FC_ASSERT(c->wpending == wp);
    char safe[256] = "";
    if (wp->sitemap)
        log_escape(wp->sitemap, safe, sizeof safe);
    log_info("admin: warmed %zu url%s for host %s (%zu given%s%s, -j %u): %zu stored, %zu fresh, "
             "%zu not stored, %zu failed, in %" PRIu64 " ms [%s]", s->urls, s->urls == 1 ? "" : "s",
             wp->host, wp->n_urls, wp->sitemap ? ", sitemap " : "", safe, wp->concurrency,
             s->stored, s->fresh, s->not_stored, s->failed, s->elapsed_ms, c->who);
    json_t *o = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "summary", 1, "host",
                          wp->host, "urls", (json_int_t)s->urls, "stored", (json_int_t)s->stored,
                          "fresh", (json_int_t)s->fresh, "not_stored", (json_int_t)s->not_stored,
                          "failed", (json_int_t)s->failed, "sitemaps", (json_int_t)s->sitemaps,
                          "elapsed_ms", (json_int_t)s->elapsed_ms);
    stream_line(c, o);
    evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
    c->wpending = NULL;
    warm_pending_free(wp);

    struct timeval *t = &c->a->timeout;
    bufferevent_set_timeouts(c->bev, t, t);
    evbuffer_drain(c->body, evbuffer_get_length(c->body));
    if (!c->keep_alive || (c->peer_eof && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)) {
        conn_close(c);
        return;
    }
    http_parser_next(&c->parser);
    event_active(c->kick, EV_WRITE, 0);
}

/* The "urls" member: paths or URLs on `host`.  false after replying 400. */
static bool warm_urls(struct admin_conn *c, json_t *urls, const char *host)
{
    if (urls == NULL)
        return true;
    if (!json_is_array(urls)) {
        reply_error(c, 400, NULL, "\"urls\" must be an array of paths");
        return false;
    }
    if (json_array_size(urls) > WARM_MAX_URLS) {
        reply_error(c, 400, NULL, "at most %d urls per warm", WARM_MAX_URLS);
        return false;
    }
    size_t i;
    json_t *u;
    json_array_foreach(urls, i, u) {
        const char *s = json_string_value(u);
        char target[1024], why[200];
        if (!json_is_string(u) || strlen(s) != json_string_length(u)) {
            reply_error(c, 400, NULL, "urls[%zu] must be a string (a path or an http(s) URL)", i);
            return false;
        }
        if (url_to_target(s, host, target, sizeof target, why, sizeof why) != 0) {
            reply_error(c, 400, NULL, "urls[%zu]: %s", i, why);
            return false;
        }
    }
    return true;
}

/* A Host value we can send: a name or address, optionally ":port". */
static bool host_ok(const char *h, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("/?#@\\\"<>{}|^`", ch))
            return false;
    }
    return true;
}

/* POST /warm  {"urls": [...], "sitemap": "/sitemap.xml", "concurrency": N,
 *              "host": "www.example.com"} */
void do_warm(struct admin_conn *c)
{
    static const char usage[] = "{\"urls\": [\"/path\", ...]} and/or {\"sitemap\": \"/sitemap.xml\"}, "
                                "optionally \"concurrency\": N and \"host\": NAME";
    static const char *const keys[] = { "urls", "sitemap", "concurrency", "host", NULL };
    struct admin_body_error e;
    size_t len;
    const char *text = body_text(c, &len);
    json_t *o = admin_body_object(text, len, true, usage, keys, &e);
    if (o == NULL) {
        reply_body_error(c, &e);
        return;
    }
    char host[256];
    const char *scheme = "http";
    json_t *hv = json_object_get(o, "host");
    if (hv) {
        if (!json_is_string(hv) || !host_ok(json_string_value(hv), json_string_length(hv))) {
            json_decref(o);
            reply_error(c, 400, NULL, "\"host\" must be a host name or address, optionally "
                        "with \":port\" (the Host clients send)");
            return;
        }
        snprintf(host, sizeof host, "%s", json_string_value(hv));
        const struct fc_config *cfg = c->a->srv->cfg;
        scheme = cfg->n_listen && cfg->listen[0].tls ? "https" : "http";
    } else {
        char err[300];
        if (warm_default_host(c->a->srv->cfg, host, sizeof host, &scheme, err, sizeof err) != 0) {
            json_decref(o);
            reply_error(c, 400, NULL, "%s", err);
            return;
        }
    }
    json_t *urls = json_object_get(o, "urls");
    json_t *sv = json_object_get(o, "sitemap");
    json_t *jv = json_object_get(o, "concurrency");
    if (!warm_urls(c, urls, host)) {
        json_decref(o);
        return;
    }
    char target[1024], why[200];
    if (sv && (!json_is_string(sv) || strlen(json_string_value(sv)) != json_string_length(sv) ||
               url_to_target(json_string_value(sv), host, target, sizeof target, why,
                             sizeof why) != 0)) {
        json_decref(o);
        reply_error(c, 400, NULL, "\"sitemap\" must be a path or an http(s) URL on %s", host);
        return;
    }
    if ((urls == NULL || json_array_size(urls) == 0) && sv == NULL) {
        json_decref(o);
        reply_error(c, 400, NULL, "nothing to warm: %s", usage);
        return;
    }
    json_int_t conc = WARM_DEFAULT_CONCURRENCY;
    if (jv) {
        conc = json_is_integer(jv) ? json_integer_value(jv) : 0;
        if (conc < 1 || conc > WARM_MAX_CONCURRENCY) {
            json_decref(o);
            reply_error(c, 400, NULL, "\"concurrency\" must be an integer from 1 to %d",
                        WARM_MAX_CONCURRENCY);
            return;
        }
    }
    size_t n = urls ? json_array_size(urls) : 0;
    const char **list = calloc(n ? n : 1, sizeof *list);
    AN(list);
    for (size_t i = 0; i < n; i++)
        list[i] = json_string_value(json_array_get(urls, i));

    struct warm_pending *wp = calloc(1, sizeof *wp);
    AN(wp);
    wp->magic = WARM_PENDING_MAGIC;
    wp->conn = c;
    snprintf(wp->host, sizeof wp->host, "%s", host);
    wp->n_urls = n;
    wp->concurrency = (unsigned)conc;
    if (sv) {
        wp->sitemap = strdup(json_string_value(sv));
        AN(wp->sitemap);
    }
    struct warm_params p = {
        .host = host,
        .scheme = scheme,
        .urls = list,
        .n_urls = n,
        .sitemap = wp->sitemap,
        .concurrency = (unsigned)conc,
    };
    c->a->warm_runs++;
    log_debug("admin: warming %zu url%s%s for host %s [%s]", n, n == 1 ? "" : "s",
              sv ? " and a sitemap" : "", host, c->who);
    /* The head now; a line per URL as it finishes, the summary last. */
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 200 OK\r\n"
                        "Content-Type: application/x-ndjson\r\n"
                        "Transfer-Encoding: chunked\r\n"
                        "Cache-Control: no-store\r\n"
                        "%s\r\n",
                        c->keep_alive ? "" : "Connection: close\r\n");
    /* No idle timeout while warming: the client only listens. */
    bufferevent_set_timeouts(c->bev, NULL, &c->a->timeout);
    c->wpending = wp;
    wp->job = warm_start(c->a->srv, c->a->base, &p, warm_item, warm_done, wp);
    free(list);
    json_decref(o);
}
