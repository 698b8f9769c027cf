/*
 * test_origin.c — the origin server for integration tests and the demo.
 *
 *     test-origin --listen 127.0.0.1:PORT [--root DIR]
 *
 * An HTTP/1.1 server on libevent's evhttp, loopback only.  PORT 0 picks a
 * free port.  Once bound it prints exactly "listening 127.0.0.1:NNNN\n" on
 * stdout (flushed) and serves until SIGTERM/SIGINT, then exits 0.  Nothing
 * else is ever written to stdout; diagnostics go to stderr.
 *
 * Every request except the /__* control endpoints is counted (see /__stats)
 * and logged (see /__log) the moment it is received, before any delay.
 * HEAD gets the headers a GET would (Content-Length included), never a body.
 * Keys and seeds are compared byte for byte: the proxy is expected to
 * forward the request-target unchanged.
 *
 * ---------------------------------------------------------------------------
 * Static files (--root DIR) — the demo/deploy origin, "typical web server"
 * ---------------------------------------------------------------------------
 * GET/HEAD /PATH serves DIR/PATH ("/" and "/dir/" serve index.html; "/dir"
 * redirects 301 to "/dir/"; any ".." segment is refused with 403; a missing
 * file is 404; other methods 405).  Headers, deliberately like nginx:
 *   ETag: "<mtime hex>-<size hex>"   (metadata, NOT content: the bad practice
 *                                     freshcache protects against)
 *   Last-Modified: <mtime>
 *   Content-Type by extension: html js css json png svg txt woff2 (else
 *     application/octet-stream)
 *   Cache-Control: "no-cache" for .html; "public, max-age=31536000,
 *     immutable" for content-hashed names ([.-][0-9a-f]{8,}\.ext); else
 *     "max-age=60".
 * If-None-Match matching the ETag (weak comparison, lists and * accepted), or
 * else If-Modified-Since >= mtime, answers 304 — even if the content changed
 * meanwhile with the same size and mtime.  Without --root, such paths are 404.
 *
 * ---------------------------------------------------------------------------
 * Scripted endpoints (always available; configured by query parameters)
 * ---------------------------------------------------------------------------
 * Every /t/ response carries "X-Origin-Seq: N", the number of requests this
 * origin has received for that exact path+query (1 for the first), on 200s
 * and 304s alike, so a test can see which origin response a client got and
 * whether headers from a 304 were merged into a stored response.
 * Common parameters (all optional) for the /t/ endpoints:
 *   delay_ms=N     wait N ms (evtimer) before sending the response headers
 *   cc=STR         Cache-Control: STR (verbatim)
 *   ct=STR         Content-Type: STR
 *   vary=STR       Vary: STR
 *   status=N       response status (default 200)
 *   hdr=NAME:VALUE extra response header; repeatable (e.g. hop-by-hop ones)
 *   hdr304=NAME:VALUE  header only on 304 answers, replacing any header of
 *                  that name (e.g. hdr304=Cache-Control:max-age=60); repeatable
 *
 * /t/body?size=N&seed=S&...
 *   A deterministic body of N bytes (default 0, at most 256 MiB) made of
 *   64-byte lines: line k (at offset 64k) is TAG, a space, the offset as 12
 *   zero-padded decimal digits, a space, then the letter 'a'+(k%26) repeated
 *   up to byte 62, and '\n' as byte 63; the body is truncated to N bytes.
 *   TAG is the seed (default "x"), cut to 40 bytes.  harness.py's
 *   expected_body(size, seed) computes the same bytes.
 *   Content-Type defaults to application/octet-stream.  No Cache-Control
 *   unless cc= is given.
 *   etag=1      strong ETag "<FNV-1a 64 of the body, 16 hex digits>"
 *   etag=weak   the same as a weak ETag W/"..."
 *   etag=OTHER  ETag: OTHER verbatim (pass it quoted, URL-encoded)
 *   lm=NNN      Last-Modified from epoch seconds NNN; lm=now; or lm=DATE
 *               (an HTTP-date, verbatim)
 *   expires=STR Expires: STR verbatim (expires=past gives a date in 1990)
 *   Conditionals (only when the status is 2xx and the method GET/HEAD):
 *     If-Match without a strong match of the ETag -> 412;
 *     If-None-Match matching the ETag (weak comparison) -> 304;
 *     else If-Modified-Since >= Last-Modified -> 304.
 *   chunked=1        Transfer-Encoding: chunked (evhttp_send_reply_start/
 *                    chunk/end); otherwise Content-Length.
 *   chunk_size=N     bytes per write when streaming (default 16384)
 *   chunk_delay_ms=N stream the body in chunk_size pieces with N ms between
 *                    them (works with and without chunked=1)
 *
 * /t/close-mid-body?size=N&seed=S&...
 *   Sends "Content-Length: N" (default 100000, at least 2), the first N/2
 *   bytes of the /t/body bytes for the same size/seed, then truly closes the
 *   connection (shutdown(SHUT_WR) once those bytes are written to the socket).
 *   Cache-Control defaults to "max-age=60" (so only a correct proxy refuses
 *   to store it), ETag as for /t/body when etag=1.
 *
 * /t/vary?on=HEADER&...
 *   Body "variant HEADER=VALUE\n" where VALUE is the request's HEADER (default
 *   Accept-Language; empty when absent).  Vary: HEADER unless vary= is given
 *   (e.g. vary=*).  "X-Variant: VALUE".  Cache-Control defaults to
 *   "max-age=60"; Content-Type text/plain.
 *
 * /t/echo[?raw=1]
 *   Any method.  Default: a JSON body
 *     {"method": M, "uri": "/t/echo?...", "version": "HTTP/1.1",
 *      "headers": [[name, value], ...]  (in received order),
 *      "body_length": N, "body_fnv": "16 hex digits", "body": "..."}
 *   ("body" only when the request body is at most 64 KiB; non-ASCII bytes are
 *   escaped as \u00XX).  raw=1: the request body verbatim as the response
 *   body (application/octet-stream), with "X-Echo-Method" and
 *   "X-Echo-Body-Length".  Cache-Control defaults to "no-store".
 *
 * /t/mutable?key=K&...
 *   GET/HEAD: body "VALUE\n", VALUE being K's current value (default "1");
 *   status is K's status (default 200).  Cache-Control defaults to
 *   "max-age=60", Content-Type to text/plain.
 *     etag=1     strong ETag from the content (changes with VALUE)
 *     etag=bad   ETag "\"K-static\"", the same whatever VALUE is (bad origin)
 *     lm=1       Last-Modified = when VALUE was last set (origin start if
 *                never); lm=bad: a fixed date that never changes
 *   Conditionals as for /t/body.
 *   POST/PUT: VALUE := the request body (verbatim); answers 200 "ok\n" with
 *   Cache-Control: no-store.
 *
 * ---------------------------------------------------------------------------
 * Control endpoints (never counted or logged)
 * ---------------------------------------------------------------------------
 * GET  /__stats  {"total": N,
 *                 "requests": {"/path?query": N, ...},   (all methods)
 *                 "methods": {"GET /path?query": N, ...},
 *                 "connections": {"accepted": N, "open": N}}
 *                Keys are the path and query exactly as received.
 * GET  /__log    {"requests": [{"n": N, "method": M, "uri": "/p?q",
 *                 "version": "HTTP/1.1", "headers": [[name, value], ...],
 *                 "body_length": N}, ...]}  oldest first, the last 4096.
 * POST /__reset  zero the counts, clear the log and all /t/mutable state.
 * POST /__set?key=K[&value=V][&status=N]   set /t/mutable state for K.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <regex.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#define MAX_BODY_SIZE ((uint64_t)256 << 20)
#define LOG_CAPACITY 4096
#define ECHO_INLINE_MAX (64 * 1024)

static struct event_base *base;
static const char *root_dir;
static regex_t hashed_re;
static time_t start_time;

/* ------------------------------------------------------------------------ */
/* small utilities                                                          */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "test-origin: out of memory\n");
        exit(2);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = xmalloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

static void json_str(struct evbuffer *out, const char *s, size_t n)
{
    evbuffer_add(out, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            evbuffer_add_printf(out, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            evbuffer_add_printf(out, "\\u%04x", c);
        else
            evbuffer_add(out, &s[i], 1);
    }
    evbuffer_add(out, "\"", 1);
}

static void json_cstr(struct evbuffer *out, const char *s)
{
    json_str(out, s, strlen(s));
}

static void http_date(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static bool parse_http_date(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != '\0')
        return false;
    *out = timegm(&tm);
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s == '\0')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || *s == '-')
        return false;
    *out = v;
    return true;
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "UNKNOWN";
}

/* ------------------------------------------------------------------------ */
/* counters: a small chained hash table of string -> count                  */

#define NBUCKETS 1024
struct counter {
    char *key;
    unsigned long n;
    struct counter *next;
};
struct counters {
    struct counter *b[NBUCKETS];
};

static struct counters by_uri, by_method;
static unsigned long total_requests;
static unsigned long conns_accepted, conns_open;

static unsigned long counter_inc(struct counters *c, const char *key)
{
    uint64_t h = fnv1a(FNV_INIT, (const unsigned char *)key, strlen(key)) % NBUCKETS;
    for (struct counter *e = c->b[h]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return ++e->n;
    struct counter *e = xmalloc(sizeof *e);
    e->key = xstrdup(key);
    e->n = 1;
    e->next = c->b[h];
    c->b[h] = e;
    return 1;
}

static void counters_clear(struct counters *c)
{
    for (size_t i = 0; i < NBUCKETS; i++) {
        struct counter *e = c->b[i];
        while (e) {
            struct counter *next = e->next;
            free(e->key);
            free(e);
            e = next;
        }
        c->b[i] = NULL;
    }
}

static void counters_json(struct evbuffer *out, const struct counters *c)
{
    bool first = true;
    evbuffer_add(out, "{", 1);
    for (size_t i = 0; i < NBUCKETS; i++)
        for (struct counter *e = c->b[i]; e; e = e->next) {
            if (!first)
                evbuffer_add(out, ", ", 2);
            first = false;
            json_cstr(out, e->key);
            evbuffer_add_printf(out, ": %lu", e->n);
        }
    evbuffer_add(out, "}", 1);
}

/* request log: a ring of preformatted JSON objects */
static char *req_log[LOG_CAPACITY];
static size_t log_next, log_count;

static void log_clear(void)
{
    for (size_t i = 0; i < LOG_CAPACITY; i++) {
        free(req_log[i]);
        req_log[i] = NULL;
    }
    log_next = log_count = 0;
}

static void headers_json(struct evbuffer *out, struct evkeyvalq *h)
{
    bool first = true;
    evbuffer_add(out, "[", 1);
    for (struct evkeyval *kv = TAILQ_FIRST(h); kv; kv = TAILQ_NEXT(kv, next)) {
        if (!first)
            evbuffer_add(out, ", ", 2);
        first = false;
        evbuffer_add(out, "[", 1);
        json_cstr(out, kv->key);
        evbuffer_add(out, ", ", 2);
        json_cstr(out, kv->value);
        evbuffer_add(out, "]", 1);
    }
    evbuffer_add(out, "]", 1);
}

static void log_request(struct evhttp_request *req, const char *key)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "{\"n\": %lu, \"method\": ", total_requests);
    json_cstr(b, method_name(evhttp_request_get_command(req)));
    evbuffer_add(b, ", \"uri\": ", 9);
    json_cstr(b, key);
    evbuffer_add_printf(b, ", \"version\": \"HTTP/%d.%d\", \"headers\": ", req->major, req->minor);
    headers_json(b, evhttp_request_get_input_headers(req));
    evbuffer_add_printf(b, ", \"body_length\": %zu}",
                        evbuffer_get_length(evhttp_request_get_input_buffer(req)));
    size_t n = evbuffer_get_length(b);
    char *s = xmalloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    free(req_log[log_next]);
    req_log[log_next] = s;
    log_next = (log_next + 1) % LOG_CAPACITY;
    if (log_count < LOG_CAPACITY)
        log_count++;
}

/* connections, counted once each on their first request */
struct conn_ent {
    struct evhttp_connection *evcon;
    struct conn_ent *next;
};
static struct conn_ent *conns;

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)arg;
    for (struct conn_ent **pp = &conns; *pp; pp = &(*pp)->next)
        if ((*pp)->evcon == evcon) {
            struct conn_ent *e = *pp;
            *pp = e->next;
            free(e);
            conns_open--;
            return;
        }
}

static void track_conn(struct evhttp_connection *evcon)
{
    if (evcon == NULL)
        return;
    for (struct conn_ent *e = conns; e; e = e->next)
        if (e->evcon == evcon)
            return;
    struct conn_ent *e = xmalloc(sizeof *e);
    e->evcon = evcon;
    e->next = conns;
    conns = e;
    conns_accepted++;
    conns_open++;
    evhttp_connection_set_closecb(evcon, conn_closed, NULL);
}

/* /t/mutable state */
struct mutable_ent {
    char *key;
    char *value;
    int status;
    time_t set_at;
    struct mutable_ent *next;
};
static struct mutable_ent *mutables;

static struct mutable_ent *mutable_get(const char *key, bool create)
{
    for (struct mutable_ent *m = mutables; m; m = m->next)
        if (strcmp(m->key, key) == 0)
            return m;
    if (!create)
        return NULL;
    struct mutable_ent *m = xmalloc(sizeof *m);
    m->key = xstrdup(key);
    m->value = xstrdup("1");
    m->status = 200;
    m->set_at = start_time;
    m->next = mutables;
    mutables = m;
    return m;
}

static void mutables_clear(void)
{
    while (mutables) {
        struct mutable_ent *m = mutables;
        mutables = m->next;
        free(m->key);
        free(m->value);
        free(m);
    }
}

/* ------------------------------------------------------------------------ */
/* the deterministic body                                                    */

/* Bytes [off, off+len) of the body for `tag` into `dst`. */
static void gen_body(const char *tag, uint64_t off, size_t len, unsigned char *dst)
{
    char line[64];
    size_t taglen = strlen(tag);
    if (taglen > 40)
        taglen = 40;
    uint64_t k = off / 64;
    size_t skip = (size_t)(off % 64);
    while (len > 0) {
        int n = snprintf(line, sizeof line, "%.*s %012" PRIu64 " ", (int)taglen, tag, k * 64);
        memset(line + n, 'a' + (int)(k % 26), (size_t)(63 - n));
        line[63] = '\n';
        size_t take = 64 - skip;
        if (take > len)
            take = len;
        memcpy(dst, line + skip, take);
        dst += take;
        len -= take;
        skip = 0;
        k++;
    }
}

/* ------------------------------------------------------------------------ */
/* per-request context                                                       */

struct stream;

struct rq {
    struct evhttp_request *req;
    char *path;                 /* path as received (not decoded) */
    char *key;                  /* path[?query] as received */
    struct evkeyvalq q;         /* decoded query parameters */
    unsigned long seq;          /* X-Origin-Seq */
    void (*handler)(struct rq *);
    struct stream *stream;      /* while streaming a body */
    struct rq *prev, *next;     /* live requests, freed at exit */
};
static struct rq *live_rqs;

static void stream_free(struct stream *s);

static void rq_free(struct rq *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        live_rqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    evhttp_clear_headers(&r->q);
    free(r->path);
    free(r->key);
    free(r);
}

static const char *qget(struct rq *r, const char *name)
{
    return evhttp_find_header(&r->q, name);
}

static uint64_t qget_u64(struct rq *r, const char *name, uint64_t dflt)
{
    uint64_t v;
    const char *s = qget(r, name);
    if (s && parse_u64(s, &v))
        return v;
    return dflt;
}

static const char *in_hdr(struct rq *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

static void out_hdr(struct rq *r, const char *name, const char *value)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_remove_header(h, name);
    evhttp_add_header(h, name, value);
}

/* Add every `param`=NAME:VALUE query parameter as a response header;
 * `replace`: drop headers of that name set so far first. */
static void add_param_headers(struct rq *r, const char *param, bool replace)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    for (struct evkeyval *kv = TAILQ_FIRST(&r->q); kv; kv = TAILQ_NEXT(kv, next)) {
        if (strcmp(kv->key, param) != 0)
            continue;
        const char *colon = strchr(kv->value, ':');
        if (colon == NULL || colon == kv->value)
            continue;
        char *name = xmalloc((size_t)(colon - kv->value) + 1);
        memcpy(name, kv->value, (size_t)(colon - kv->value));
        name[colon - kv->value] = '\0';
        const char *value = colon + 1;
        while (*value == ' ')
            value++;
        if (replace)
            evhttp_remove_header(h, name);
        evhttp_add_header(h, name, value);
        free(name);
    }
}

/* evhttp_send_reply() that never puts a body on a HEAD response (evhttp
 * would send one if given) but keeps the Content-Length a GET would get. */
static void reply(struct evhttp_request *req, int status, struct evbuffer *b)
{
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        if (b != NULL && status >= 200 && status != 204 && status != 304 &&
            evhttp_find_header(h, "Content-Length") == NULL) {
            char cl[32];
            snprintf(cl, sizeof cl, "%zu", evbuffer_get_length(b));
            evhttp_add_header(h, "Content-Length", cl);
        }
        evhttp_send_reply(req, status, NULL, NULL);
        return;
    }
    evhttp_send_reply(req, status, NULL, b);
}

static void send_simple(struct rq *r, int status, const char *ct, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, strlen(body));
    out_hdr(r, "Content-Type", ct);
    reply(r->req, status, b);
    evbuffer_free(b);
}

static void send_json(struct rq *r, struct evbuffer *b)
{
    out_hdr(r, "Content-Type", "application/json");
    out_hdr(r, "Cache-Control", "no-store");
    reply(r->req, 200, b);
}

/* ------------------------------------------------------------------------ */
/* conditional requests                                                      */

/* Does the entity-tag list `list` match `etag`?  `strong`: strong
 * comparison (both must be strong); otherwise weak comparison. */
static bool etag_list_matches(const char *list, const char *etag, bool strong)
{
    if (etag == NULL || *etag == '\0')
        return false;
    bool etag_weak = strncmp(etag, "W/", 2) == 0;
    const char *eo = etag_weak ? etag + 2 : etag;
    size_t eolen = strlen(eo);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        if (*p == '*')
            return true;
        bool weak = false;
        if (strncmp(p, "W/", 2) == 0) {
            weak = true;
            p += 2;
        }
        if (*p != '"') {        /* malformed: skip to the next comma */
            while (*p && *p != ',')
                p++;
            continue;
        }
        const char *q = strchr(p + 1, '"');
        if (q == NULL)
            break;
        size_t len = (size_t)(q + 1 - p);
        if (len == eolen && memcmp(p, eo, len) == 0 && (!strong || (!weak && !etag_weak)))
            return true;
        p = q + 1;
    }
    return false;
}

/* Evaluate If-Match / If-None-Match / If-Modified-Since for a GET/HEAD with
 * a 2xx status.  Returns 0 (send the normal response), 304 or 412. */
static int evaluate_conditionals(struct rq *r, int status, const char *etag, const char *lm)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(r->req);
    if (status < 200 || status > 299)
        return 0;
    const char *im = in_hdr(r, "If-Match");
    if (im && !etag_list_matches(im, etag, true))
        return 412;
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD)
        return 0;
    const char *inm = in_hdr(r, "If-None-Match");
    if (inm)
        return etag_list_matches(inm, etag, false) ? 304 : 0;
    const char *ims = in_hdr(r, "If-Modified-Since");
    time_t ims_t, lm_t;
    if (ims && lm && parse_http_date(ims, &ims_t) && parse_http_date(lm, &lm_t) && lm_t <= ims_t)
        return 304;
    return 0;
}

/* Content-independent headers every /t/ response gets. */
static void common_headers(struct rq *r, const char *dflt_cc, const char *dflt_ct)
{
    char seq[32];
    snprintf(seq, sizeof seq, "%lu", r->seq);
    out_hdr(r, "X-Origin-Seq", seq);
    const char *cc = qget(r, "cc");
    if (cc == NULL)
        cc = dflt_cc;
    if (cc && *cc)
        out_hdr(r, "Cache-Control", cc);
    const char *ct = qget(r, "ct");
    if (ct == NULL)
        ct = dflt_ct;
    if (ct && *ct)
        out_hdr(r, "Content-Type", ct);
    const char *vary = qget(r, "vary");
    if (vary)
        out_hdr(r, "Vary", vary);
    const char *expires = qget(r, "expires");
    if (expires)
        out_hdr(r, "Expires", strcmp(expires, "past") == 0 ? "Mon, 01 Jan 1990 00:00:00 GMT" : expires);
    add_param_headers(r, "hdr", false);
}

static int status_param(struct rq *r, int dflt)
{
    uint64_t s = qget_u64(r, "status", (uint64_t)dflt);
    if (s < 100 || s > 999)
        s = (uint64_t)dflt;
    return (int)s;
}

/* Sends a 304 or 412 (no body) for `cond`. */
static void send_conditional(struct rq *r, int cond)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_remove_header(h, "Content-Type");
    if (cond == 304)
        add_param_headers(r, "hdr304", true);
    evhttp_send_reply(r->req, cond, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* streaming                                                                 */

struct stream {
    struct rq *r;
    char *tag;
    uint64_t total;             /* bytes to send before ending */
    uint64_t sent;
    size_t chunk_size;
    uint64_t delay_ms;
    bool truncate;              /* close after `total` bytes instead of ending */
};

static void stream_step(evutil_socket_t fd, short what, void *arg);

static void stream_free(struct stream *s)
{
    free(s->tag);
    free(s);
}

static void stream_finish(struct stream *s)
{
    evhttp_send_reply_end(s->r->req);  /* frees the request */
    rq_free(s->r);
    stream_free(s);
}

static void stream_schedule(struct stream *s, uint64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    event_base_once(base, -1, EV_TIMEOUT, stream_step, s, &tv);
}

/* Truncation: the partial body is in the kernel; close our sending side. */
static void truncate_written(struct evhttp_connection *evcon, void *arg)
{
    struct stream *s = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    if (bev != NULL) {
        evutil_socket_t fd = bufferevent_getfd(bev);
        if (fd >= 0)
            shutdown(fd, SHUT_WR);
    }
    /* end the request outside evhttp's write callback */
    s->truncate = false;
    s->sent = s->total;
    stream_schedule(s, 0);
}

static void stream_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct stream *s = arg;
    if (evhttp_request_get_connection(s->r->req) == NULL || s->sent >= s->total) {
        stream_finish(s);   /* client gone (request detached) or done */
        return;
    }
    uint64_t left = s->total - s->sent;
    size_t n = left < s->chunk_size ? (size_t)left : s->chunk_size;
    unsigned char *tmp = xmalloc(n);
    gen_body(s->tag, s->sent, n, tmp);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, tmp, n);
    free(tmp);
    s->sent += n;
    if (s->truncate && s->sent >= s->total) {
        evhttp_send_reply_chunk_with_cb(s->r->req, b, truncate_written, s);
        evbuffer_free(b);
        return;
    }
    evhttp_send_reply_chunk(s->r->req, b);
    evbuffer_free(b);
    stream_schedule(s, s->sent >= s->total ? 0 : s->delay_ms);
}

static void stream_start(struct rq *r, int status, const char *tag, uint64_t total,
                         size_t chunk_size, uint64_t delay_ms, bool truncate)
{
    struct stream *s = xmalloc(sizeof *s);
    s->r = r;
    s->tag = xstrdup(tag);
    s->total = total;
    s->sent = 0;
    s->chunk_size = chunk_size ? chunk_size : 16384;
    s->delay_ms = delay_ms;
    s->truncate = truncate;
    r->stream = s;
    evhttp_send_reply_start(r->req, status, NULL);
    stream_schedule(s, 0);
}

/* ------------------------------------------------------------------------ */
/* /t/ handlers                                                              */

static void set_lm_param(struct rq *r, char *buf, size_t len, const char **lm)
{
    const char *p = qget(r, "lm");
    uint64_t secs;
    *lm = NULL;
    if (p == NULL)
        return;
    if (strcmp(p, "now") == 0) {
        http_date(time(NULL), buf, len);
        *lm = buf;
    } else if (parse_u64(p, &secs)) {
        http_date((time_t)secs, buf, len);
        *lm = buf;
    } else {
        *lm = p;
    }
    out_hdr(r, "Last-Modified", *lm);
}

static void h_body(struct rq *r)
{
    uint64_t size = qget_u64(r, "size", 0);
    if (size > MAX_BODY_SIZE) {
        send_simple(r, 400, "text/plain", "size too large\n");
        rq_free(r);
        return;
    }
    const char *seed = qget(r, "seed");
    if (seed == NULL)
        seed = "x";
    int status = status_param(r, 200);
    common_headers(r, NULL, "application/octet-stream");

    const char *etag_p = qget(r, "etag");
    char etag_buf[64];
    const char *etag = NULL;
    unsigned char *body = NULL;
    if (etag_p && (strcmp(etag_p, "1") == 0 || strcmp(etag_p, "weak") == 0)) {
        body = xmalloc((size_t)size);
        gen_body(seed, 0, (size_t)size, body);
        uint64_t h = fnv1a(FNV_INIT, body, (size_t)size);
        snprintf(etag_buf, sizeof etag_buf, "%s\"%016" PRIx64 "\"",
                 strcmp(etag_p, "weak") == 0 ? "W/" : "", h);
        etag = etag_buf;
    } else if (etag_p) {
        etag = etag_p;
    }
    if (etag)
        out_hdr(r, "ETag", etag);
    char lm_buf[64];
    const char *lm;
    set_lm_param(r, lm_buf, sizeof lm_buf, &lm);

    int cond = evaluate_conditionals(r, status, etag, lm);
    if (cond) {
        free(body);
        send_conditional(r, cond);
        rq_free(r);
        return;
    }

    bool chunked = qget(r, "chunked") && strcmp(qget(r, "chunked"), "1") == 0;
    uint64_t chunk_delay = qget_u64(r, "chunk_delay_ms", 0);
    size_t chunk_size = (size_t)qget_u64(r, "chunk_size", 16384);
    if (!chunked) {
        char cl[32];
        snprintf(cl, sizeof cl, "%" PRIu64, size);
        if (status != 204 && status != 304 && status >= 200)
            out_hdr(r, "Content-Length", cl);
    }
    if (chunked || chunk_delay > 0) {
        free(body);
        stream_start(r, status, seed, size, chunk_size, chunk_delay, false);
        return;
    }
    if (body == NULL) {
        body = xmalloc((size_t)size);
        gen_body(seed, 0, (size_t)size, body);
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, (size_t)size);
    free(body);
    reply(r->req, status, b);
    evbuffer_free(b);
    rq_free(r);
}

static void h_close_mid_body(struct rq *r)
{
    uint64_t size = qget_u64(r, "size", 100000);
    if (size > MAX_BODY_SIZE)
        size = MAX_BODY_SIZE;
    if (size < 2)
        size = 2;       /* at least one byte is sent, one is missing */
    const char *seed = qget(r, "seed");
    if (seed == NULL)
        seed = "x";
    common_headers(r, "max-age=60", "application/octet-stream");
    const char *etag_p = qget(r, "etag");
    if (etag_p && strcmp(etag_p, "1") == 0) {
        unsigned char *body = xmalloc((size_t)size);
        gen_body(seed, 0, (size_t)size, body);
        char etag[64];
        snprintf(etag, sizeof etag, "\"%016" PRIx64 "\"", fnv1a(FNV_INIT, body, (size_t)size));
        free(body);
        out_hdr(r, "ETag", etag);
    }
    char cl[32];
    snprintf(cl, sizeof cl, "%" PRIu64, size);
    out_hdr(r, "Content-Length", cl);
    if (evhttp_request_get_command(r->req) == EVHTTP_REQ_HEAD) {
        evhttp_send_reply(r->req, 200, NULL, NULL);
        rq_free(r);
        return;
    }
    stream_start(r, 200, seed, size / 2, 16384, 0, true);
}

static void h_vary(struct rq *r)
{
    const char *on = qget(r, "on");
    if (on == NULL || *on == '\0')
        on = "Accept-Language";
    const char *value = in_hdr(r, on);
    if (value == NULL)
        value = "";
    common_headers(r, "max-age=60", "text/plain");
    if (qget(r, "vary") == NULL)
        out_hdr(r, "Vary", on);
    out_hdr(r, "X-Variant", value);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "variant %s=%s\n", on, value);
    reply(r->req, status_param(r, 200), b);
    evbuffer_free(b);
    rq_free(r);
}

static void h_echo(struct rq *r)
{
    struct evhttp_request *req = r->req;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *raw = qget(r, "raw");
    struct evbuffer *b = evbuffer_new();
    if (raw && strcmp(raw, "1") == 0) {
        common_headers(r, "no-store", "application/octet-stream");
        out_hdr(r, "X-Echo-Method", method_name(evhttp_request_get_command(req)));
        char len[32];
        snprintf(len, sizeof len, "%zu", n);
        out_hdr(r, "X-Echo-Body-Length", len);
        evbuffer_add_buffer(b, in);
    } else {
        common_headers(r, "no-store", "application/json");
        unsigned char *data = evbuffer_pullup(in, -1);
        evbuffer_add(b, "{\"method\": ", 11);
        json_cstr(b, method_name(evhttp_request_get_command(req)));
        evbuffer_add(b, ", \"uri\": ", 9);
        json_cstr(b, r->key);
        evbuffer_add_printf(b, ", \"version\": \"HTTP/%d.%d\", \"headers\": ", req->major, req->minor);
        headers_json(b, evhttp_request_get_input_headers(req));
        evbuffer_add_printf(b, ", \"body_length\": %zu, \"body_fnv\": \"%016" PRIx64 "\"", n,
                            fnv1a(FNV_INIT, data, n));
        if (n <= ECHO_INLINE_MAX) {
            evbuffer_add(b, ", \"body\": ", 10);
            json_str(b, (const char *)data, n);
        }
        evbuffer_add(b, "}\n", 2);
    }
    reply(req, status_param(r, 200), b);
    evbuffer_free(b);
    rq_free(r);
}

static void h_mutable(struct rq *r)
{
    const char *key = qget(r, "key");
    if (key == NULL)
        key = "";
    enum evhttp_cmd_type m = evhttp_request_get_command(r->req);
    if (m == EVHTTP_REQ_POST || m == EVHTTP_REQ_PUT) {
        struct mutable_ent *e = mutable_get(key, true);
        struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
        size_t n = evbuffer_get_length(in);
        free(e->value);
        e->value = xmalloc(n + 1);
        evbuffer_remove(in, e->value, n);
        e->value[n] = '\0';
        e->set_at = time(NULL);
        char seq[32];
        snprintf(seq, sizeof seq, "%lu", r->seq);
        out_hdr(r, "X-Origin-Seq", seq);
        out_hdr(r, "Cache-Control", "no-store");
        send_simple(r, 200, "text/plain", "ok\n");
        rq_free(r);
        return;
    }
    struct mutable_ent *e = mutable_get(key, true);
    int status = status_param(r, e->status);
    common_headers(r, "max-age=60", "text/plain");
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "%s\n", e->value);
    size_t n = evbuffer_get_length(b);

    char etag[128];
    const char *etag_used = NULL;
    const char *etag_p = qget(r, "etag");
    if (etag_p && strcmp(etag_p, "1") == 0) {
        snprintf(etag, sizeof etag, "\"%016" PRIx64 "\"", fnv1a(FNV_INIT, evbuffer_pullup(b, -1), n));
        etag_used = etag;
    } else if (etag_p && strcmp(etag_p, "bad") == 0) {
        snprintf(etag, sizeof etag, "\"%.100s-static\"", key);
        etag_used = etag;
    }
    if (etag_used)
        out_hdr(r, "ETag", etag_used);
    char lm[64];
    const char *lm_used = NULL;
    const char *lm_p = qget(r, "lm");
    if (lm_p && strcmp(lm_p, "1") == 0) {
        http_date(e->set_at, lm, sizeof lm);
        lm_used = lm;
    } else if (lm_p && strcmp(lm_p, "bad") == 0) {
        http_date((time_t)1700000000, lm, sizeof lm);
        lm_used = lm;
    }
    if (lm_used)
        out_hdr(r, "Last-Modified", lm_used);

    int cond = evaluate_conditionals(r, status, etag_used, lm_used);
    if (cond) {
        evbuffer_free(b);
        send_conditional(r, cond);
        rq_free(r);
        return;
    }
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", n);
    out_hdr(r, "Content-Length", cl);
    reply(r->req, status, b);
    evbuffer_free(b);
    rq_free(r);
}

/* ------------------------------------------------------------------------ */
/* static files                                                              */

static const char *content_type_for(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        { "html", "text/html; charset=utf-8" },
        { "htm", "text/html; charset=utf-8" },
        { "js", "text/javascript; charset=utf-8" },
        { "mjs", "text/javascript; charset=utf-8" },
        { "css", "text/css; charset=utf-8" },
        { "json", "application/json" },
        { "png", "image/png" },
        { "svg", "image/svg+xml" },
        { "txt", "text/plain; charset=utf-8" },
        { "woff2", "font/woff2" },
    };
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot != NULL)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

static void h_static(struct rq *r)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(r->req);
    if (root_dir == NULL) {
        send_simple(r, 404, "text/plain", "not found (no --root)\n");
        rq_free(r);
        return;
    }
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        out_hdr(r, "Allow", "GET, HEAD");
        send_simple(r, 405, "text/plain", "method not allowed\n");
        rq_free(r);
        return;
    }
    char *decoded = evhttp_uridecode(r->path, 0, NULL);
    bool bad = decoded == NULL || decoded[0] != '/';
    /* refuse any ".." segment and backslashes */
    for (const char *p = decoded; !bad && p && *p; p++) {
        if (*p == '\\')
            bad = true;
        if (p[0] == '/' && p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0'))
            bad = true;
    }
    if (bad) {
        free(decoded);
        send_simple(r, 403, "text/plain", "forbidden\n");
        rq_free(r);
        return;
    }
    size_t plen = strlen(root_dir) + strlen(decoded) + sizeof "index.html" + 1;
    char *file = xmalloc(plen);
    snprintf(file, plen, "%s%s", root_dir, decoded);
    if (decoded[strlen(decoded) - 1] == '/')
        strcat(file, "index.html");
    struct stat st;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        char *loc = xmalloc(strlen(r->path) + 2);
        sprintf(loc, "%s/", r->path);
        out_hdr(r, "Location", loc);
        free(loc);
        send_simple(r, 301, "text/plain", "moved\n");
        goto done;
    }
    if (fd < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        send_simple(r, 404, "text/plain", "not found\n");
        goto done;
    }

    char etag[64], lm[64], cl[32];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_mtime,
             (unsigned long long)st.st_size);
    http_date(st.st_mtime, lm, sizeof lm);
    out_hdr(r, "ETag", etag);
    out_hdr(r, "Last-Modified", lm);
    const char *base_name = strrchr(file, '/');
    base_name = base_name ? base_name + 1 : file;
    size_t blen = strlen(base_name);
    if (blen > 5 && strcasecmp(base_name + blen - 5, ".html") == 0)
        out_hdr(r, "Cache-Control", "no-cache");
    else if (regexec(&hashed_re, base_name, 0, NULL, 0) == 0)
        out_hdr(r, "Cache-Control", "public, max-age=31536000, immutable");
    else
        out_hdr(r, "Cache-Control", "max-age=60");

    int cond = evaluate_conditionals(r, 200, etag, lm);
    if (cond) {
        close(fd);
        send_conditional(r, cond);
        goto done;
    }
    out_hdr(r, "Content-Type", content_type_for(file));
    snprintf(cl, sizeof cl, "%lld", (long long)st.st_size);
    out_hdr(r, "Content-Length", cl);
    struct evbuffer *b = evbuffer_new();
    if (m == EVHTTP_REQ_GET && st.st_size > 0)
        evbuffer_add_file(b, fd, 0, st.st_size);    /* takes the fd */
    else
        close(fd);
    reply(r->req, 200, b);
    evbuffer_free(b);
done:
    free(file);
    free(decoded);
    rq_free(r);
}

/* ------------------------------------------------------------------------ */
/* control endpoints                                                         */

static void c_stats(struct rq *r)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "{\"total\": %lu, \"requests\": ", total_requests);
    counters_json(b, &by_uri);
    evbuffer_add(b, ", \"methods\": ", 13);
    counters_json(b, &by_method);
    evbuffer_add_printf(b, ", \"connections\": {\"accepted\": %lu, \"open\": %lu}}\n",
                        conns_accepted, conns_open);
    send_json(r, b);
    evbuffer_free(b);
}

static void c_log(struct rq *r)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "{\"requests\": [", 14);
    size_t first = (log_next + LOG_CAPACITY - log_count) % LOG_CAPACITY;
    for (size_t i = 0; i < log_count; i++) {
        if (i)
            evbuffer_add(b, ",\n", 2);
        const char *s = req_log[(first + i) % LOG_CAPACITY];
        evbuffer_add(b, s, strlen(s));
    }
    evbuffer_add(b, "]}\n", 3);
    send_json(r, b);
    evbuffer_free(b);
}

static void c_reset(struct rq *r)
{
    counters_clear(&by_uri);
    counters_clear(&by_method);
    log_clear();
    mutables_clear();
    total_requests = 0;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "{\"ok\": true}\n");
    send_json(r, b);
    evbuffer_free(b);
}

static void c_set(struct rq *r)
{
    const char *key = qget(r, "key");
    if (key == NULL) {
        send_simple(r, 400, "text/plain", "key= required\n");
        return;
    }
    struct mutable_ent *e = mutable_get(key, true);
    const char *value = qget(r, "value");
    if (value) {
        free(e->value);
        e->value = xstrdup(value);
        e->set_at = time(NULL);
    }
    const char *st = qget(r, "status");
    uint64_t s;
    if (st && parse_u64(st, &s) && s >= 100 && s <= 999)
        e->status = (int)s;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "{\"key\": ", 8);
    json_cstr(b, e->key);
    evbuffer_add(b, ", \"value\": ", 11);
    json_cstr(b, e->value);
    evbuffer_add_printf(b, ", \"status\": %d}\n", e->status);
    send_json(r, b);
    evbuffer_free(b);
}

/* ------------------------------------------------------------------------ */
/* dispatch                                                                  */

static void run_delayed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct rq *r = arg;
    if (evhttp_request_get_connection(r->req) == NULL) {
        /* the client left during the delay: evhttp detached the request;
         * replying frees it without sending anything */
        evhttp_send_reply(r->req, 503, NULL, NULL);
        rq_free(r);
        return;
    }
    r->handler(r);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(uri, EVHTTP_URI_NONCONFORMANT);
    if (u == NULL) {
        evhttp_send_error(req, 400, "bad request-target");
        return;
    }
    const char *path = evhttp_uri_get_path(u);
    const char *query = evhttp_uri_get_query(u);
    if (path == NULL || *path == '\0')
        path = "/";

    struct rq *r = xmalloc(sizeof *r);
    memset(r, 0, sizeof *r);
    TAILQ_INIT(&r->q);
    r->req = req;
    r->next = live_rqs;
    if (live_rqs)
        live_rqs->prev = r;
    live_rqs = r;
    r->path = xstrdup(path);
    size_t klen = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
    r->key = xmalloc(klen);
    snprintf(r->key, klen, "%s%s%s", path, query ? "?" : "", query ? query : "");
    if (query)
        evhttp_parse_query_str(query, &r->q);
    evhttp_uri_free(u);

    if (strncmp(r->path, "/__", 3) == 0) {
        if (strcmp(r->path, "/__stats") == 0)
            c_stats(r);
        else if (strcmp(r->path, "/__log") == 0)
            c_log(r);
        else if (strcmp(r->path, "/__reset") == 0)
            c_reset(r);
        else if (strcmp(r->path, "/__set") == 0)
            c_set(r);
        else
            send_simple(r, 404, "text/plain", "no such control endpoint\n");
        rq_free(r);
        return;
    }

    track_conn(evhttp_request_get_connection(req));
    total_requests++;
    r->seq = counter_inc(&by_uri, r->key);
    char mk[16 + 8];
    snprintf(mk, sizeof mk, "%s ", method_name(evhttp_request_get_command(req)));
    char *mkey = xmalloc(strlen(mk) + strlen(r->key) + 1);
    sprintf(mkey, "%s%s", mk, r->key);
    counter_inc(&by_method, mkey);
    free(mkey);
    log_request(req, r->key);

    if (strcmp(r->path, "/t/body") == 0)
        r->handler = h_body;
    else if (strcmp(r->path, "/t/close-mid-body") == 0)
        r->handler = h_close_mid_body;
    else if (strcmp(r->path, "/t/vary") == 0)
        r->handler = h_vary;
    else if (strcmp(r->path, "/t/echo") == 0)
        r->handler = h_echo;
    else if (strcmp(r->path, "/t/mutable") == 0)
        r->handler = h_mutable;
    else if (strncmp(r->path, "/t/", 3) == 0) {
        send_simple(r, 404, "text/plain", "no such test endpoint\n");
        rq_free(r);
        return;
    } else
        r->handler = h_static;

    uint64_t delay = strncmp(r->path, "/t/", 3) == 0 ? qget_u64(r, "delay_ms", 0) : 0;
    if (delay > 0) {
        struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000) };
        event_base_once(base, -1, EV_TIMEOUT, run_delayed, r, &tv);
        return;
    }
    r->handler(r);
}

/* ------------------------------------------------------------------------ */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopexit(base, NULL);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: test-origin --listen 127.0.0.1:PORT [--root DIR]\n");
}

int main(int argc, char **argv)
{
    const char *listen_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen_arg = argv[++i];
        else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc)
            root_dir = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (listen_arg == NULL) {
        usage(stderr);
        return 2;
    }
    const char *colon = strrchr(listen_arg, ':');
    uint64_t port;
    if (colon == NULL || !parse_u64(colon + 1, &port) || port > 65535) {
        fprintf(stderr, "test-origin: bad --listen %s (want 127.0.0.1:PORT)\n", listen_arg);
        return 2;
    }
    char host[64];
    size_t hlen = (size_t)(colon - listen_arg);
    if (hlen >= sizeof host) {
        fprintf(stderr, "test-origin: bad --listen %s\n", listen_arg);
        return 2;
    }
    memcpy(host, listen_arg, hlen);
    host[hlen] = '\0';
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr, "test-origin: only loopback (127.x.x.x) addresses are allowed\n");
        return 2;
    }

    static char root_buf[PATH_MAX];
    if (root_dir) {
        if (realpath(root_dir, root_buf) == NULL) {
            fprintf(stderr, "test-origin: --root %s: %s\n", root_dir, strerror(errno));
            return 2;
        }
        root_dir = root_buf;
    }
    if (regcomp(&hashed_re, "[.-][0-9a-f]{8,}\\.[A-Za-z0-9]+$", REG_EXTENDED | REG_NOSUB) != 0) {
        fprintf(stderr, "test-origin: regcomp failed\n");
        return 2;
    }
    start_time = time(NULL);
    signal(SIGPIPE, SIG_IGN);

    base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    if (http == NULL) {
        fprintf(stderr, "test-origin: cannot initialise libevent\n");
        return 2;
    }
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                               EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                               EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(http, NULL);
    evhttp_set_timeout(http, 60);
    evhttp_set_gencb(http, on_request, NULL);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (bound == NULL) {
        fprintf(stderr, "test-origin: cannot listen on %s: %s\n", listen_arg, strerror(errno));
        return 1;
    }
    struct sockaddr_in sin;
    socklen_t slen = sizeof sin;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &slen) != 0) {
        fprintf(stderr, "test-origin: getsockname: %s\n", strerror(errno));
        return 1;
    }
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, NULL);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);

    printf("listening %s:%u\n", host, (unsigned)ntohs(sin.sin_port));
    fflush(stdout);

    event_base_dispatch(base);

    event_free(sigterm);
    event_free(sigint);
    /* Requests still being delayed or streamed: those evhttp detached from
     * their (closed) connection are ours to free; evhttp_free() frees the
     * others with their connections. */
    for (struct rq *r = live_rqs; r; r = r->next)
        if (evhttp_request_get_connection(r->req) == NULL)
            evhttp_request_free(r->req);
    evhttp_free(http);
    while (live_rqs) {
        struct stream *st = live_rqs->stream;
        rq_free(live_rqs);
        if (st)
            stream_free(st);
    }
    event_base_free(base);
    counters_clear(&by_uri);
    counters_clear(&by_method);
    log_clear();
    mutables_clear();
    regfree(&hashed_re);
    return 0;
}
