/*
 * warm.c — POST /warm's job: a queue of sitemaps and URLs, at most
 * `concurrency` internal requests at a time.  See
 * include/freshcache/admin/warm.h.
 *
 * Sitemaps go first (their URLs join the queue), then the URLs in order.
 * Every step runs from `ev_step` on the admin's loop or from a request's
 * callback, never from inside warm_start(), so the caller is never called
 * back before it has the job in hand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "freshcache/admin/sitemap.h"
#include "freshcache/admin/warm.h"
#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_key.h"
#include "freshcache/config/config.h"
#include "freshcache/server/internal_request.h"
#include "freshcache/server/runtime.h"

#define WARM_UA "freshcache-warm"

struct warm_entry {
    char *url;                  /* as given or listed */
    unsigned depth;             /* sitemaps: index levels above it */
    bool sitemap;
};

struct entry_queue {
    struct warm_entry *v;
    size_t n, cap, next;        /* next: the first not yet started */
};

/* A request in flight.  A copy of its entry: the queues may grow (and
 * move) while it runs. */
struct warm_slot {
    struct warm_job *job;
    struct internal_req *req;   /* NULL: free slot */
    struct warm_entry entry;    /* url borrowed from the queue's entry */
};

struct warm_job {
#define WARM_JOB_MAGIC 0x3a7e0b11u
    unsigned magic;
    struct server *srv;
    struct event_base *base;
    struct event *ev_step;
    char *host;
    const char *scheme;         /* static */
    warm_item_fn item;
    warm_done_fn done;
    void *arg;
    struct entry_queue sitemaps, urls;
    struct warm_slot *slots;
    unsigned n_slots, running;
    size_t n_sitemaps_seen;     /* queued, for WARM_MAX_SITEMAPS */
    bool url_limit_reported;
    struct warm_summary sum;
    struct timespec t0;
};

const char *warm_outcome_name(enum warm_outcome o)
{
    switch (o) {
    case WARM_STORED: return "stored";
    case WARM_FRESH: return "fresh";
    case WARM_NOT_STORED: return "not_stored";
    case WARM_FAILED: return "failed";
    }
    return "failed";
}

int warm_default_host(const struct fc_config *cfg, char *host, size_t len, const char **scheme,
                      char *err, size_t errlen)
{
    if (cfg->n_listen == 0) {
        snprintf(err, errlen, "no listen address to take the host from: give \"host\"");
        return -1;
    }
    const struct fc_listen *l = &cfg->listen[0];
    const char *a = l->address;
    if (strncmp(a, "0.0.0.0:", 8) == 0 || strncmp(a, "[::]:", 5) == 0 || a[0] == ':') {
        snprintf(err, errlen, "the first listen address %s is a wildcard, not a name clients "
                 "use: give \"host\" (the Host your clients send)", a);
        return -1;
    }
    size_t al = strlen(a);
    if (al >= 3 && strcmp(a + al - 3, ":80") == 0 && !l->tls)
        al -= 3;
    else if (al >= 4 && strcmp(a + al - 4, ":443") == 0 && l->tls)
        al -= 4;
    snprintf(host, len, "%.*s", (int)al, a);
    *scheme = l->tls ? "https" : "http";
    return 0;
}

static uint64_t elapsed_ms(const struct warm_job *j)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)((t.tv_sec - j->t0.tv_sec) * 1000 + (t.tv_nsec - j->t0.tv_nsec) / 1000000);
}

static void queue_push(struct entry_queue *q, const char *url, bool sitemap, unsigned depth)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->v = realloc(q->v, q->cap * sizeof *q->v);
        AN(q->v);
    }
    struct warm_entry *e = &q->v[q->n++];
    e->url = strdup(url);
    AN(e->url);
    e->sitemap = sitemap;
    e->depth = depth;
}

static void queue_free(struct entry_queue *q)
{
    for (size_t i = 0; i < q->n; i++)
        free(q->v[i].url);
    free(q->v);
    memset(q, 0, sizeof *q);
}

static void job_free(struct warm_job *j)
{
    event_free(j->ev_step);
    queue_free(&j->sitemaps);
    queue_free(&j->urls);
    free(j->slots);
    free(j->host);
    j->magic = 0;
    free(j);
}

/* One line of progress, counted in the totals. */
static void report(struct warm_job *j, const struct warm_item *it)
{
    if (it->sitemap) {
        if (it->outcome == WARM_FAILED)
            j->sum.failed++;
    } else {
        j->sum.urls++;
        switch (it->outcome) {
        case WARM_STORED: j->sum.stored++; break;
        case WARM_FRESH: j->sum.fresh++; break;
        case WARM_NOT_STORED: j->sum.not_stored++; break;
        case WARM_FAILED: j->sum.failed++; break;
        }
    }
    j->item(j->arg, it);
}

static void report_failed(struct warm_job *j, const char *url, bool sitemap, const char *why)
{
    struct warm_item it = {
        .url = url, .sitemap = sitemap, .cache_status = "", .error = why, .outcome = WARM_FAILED,
    };
    report(j, &it);
}

/* What a page's answer means for the warm. */
static enum warm_outcome classify(const struct internal_result *r, char *why, size_t len)
{
    if (r->error) {
        snprintf(why, len, "%s", r->error);
        return WARM_FAILED;
    }
    if (r->status >= 400) {
        snprintf(why, len, "status %d", r->status);
        return WARM_FAILED;
    }
    const char *cs = r->cache_status;
    if (strncmp(cs, "hit", 3) == 0 || strstr(cs, "fwd-status=304"))
        return WARM_FRESH;
    if (strstr(cs, "stored") || strstr(cs, "collapsed"))
        return WARM_STORED;
    return WARM_NOT_STORED;
}

/* A sitemap's URLs, or an index's sitemaps, join the queues. */
static void take_sitemap(struct warm_job *j, const struct warm_entry *e, const struct sitemap *sm)
{
    for (size_t i = 0; i < sm->n; i++) {
        const char *loc = sm->locs[i];
        char target[CACHE_KEY_MAX / 2], why[200];
        if (url_to_target(loc, j->host, target, sizeof target, why, sizeof why) != 0) {
            report_failed(j, loc, sm->kind == SITEMAP_INDEX, why);
            continue;
        }
        if (sm->kind == SITEMAP_INDEX) {
            if (e->depth + 1 >= WARM_MAX_SITEMAP_DEPTH) {
                snprintf(why, sizeof why, "sitemap indexes nested deeper than %d levels",
                         WARM_MAX_SITEMAP_DEPTH);
                report_failed(j, loc, true, why);
            } else if (j->n_sitemaps_seen >= WARM_MAX_SITEMAPS) {
                snprintf(why, sizeof why, "more than %d sitemaps in one warm", WARM_MAX_SITEMAPS);
                report_failed(j, loc, true, why);
            } else {
                j->n_sitemaps_seen++;
                queue_push(&j->sitemaps, loc, true, e->depth + 1);
            }
        } else if (j->urls.n >= WARM_MAX_URLS) {
            if (!j->url_limit_reported) {
                snprintf(why, sizeof why, "more than %d URLs in one warm: the rest are left out",
                         WARM_MAX_URLS);
                report_failed(j, loc, false, why);
                j->url_limit_reported = true;
            }
        } else {
            queue_push(&j->urls, loc, false, 0);
        }
    }
}

static void sitemap_done(struct warm_job *j, const struct warm_entry *e,
                         const struct internal_result *r)
{
    char why[300];
    j->sum.sitemaps++;
    struct warm_item it = {
        .url = e->url, .sitemap = true, .status = r->status, .cache_status = r->cache_status,
        .outcome = WARM_FAILED, .error = why,
    };
    if (r->error) {
        snprintf(why, sizeof why, "%s", r->error);
    } else if (r->status != 200) {
        snprintf(why, sizeof why, "status %d", r->status);
    } else {
        size_t len = evbuffer_get_length(r->body);
        const char *xml = (const char *)evbuffer_pullup(r->body, -1);
        struct sitemap sm;
        size_t room = WARM_MAX_URLS + 1;
        if (sitemap_parse(xml ? xml : "", len, room, &sm, why, sizeof why) == 0) {
            it.outcome = WARM_FRESH;    /* not a page: only "failed" is looked at */
            it.error = NULL;
            it.listed = sm.n;
            report(j, &it);
            take_sitemap(j, e, &sm);
            sitemap_free(&sm);
            return;
        }
    }
    report(j, &it);
}

static void dispatch(struct warm_job *j);

static void request_done(void *arg, const struct internal_result *r)
{
    struct warm_slot *s = arg;
    struct warm_job *j = s->job;
    CHECK_OBJ_NOTNULL(j, WARM_JOB_MAGIC);
    struct warm_entry e = s->entry;
    s->req = NULL;
    j->running--;
    if (e.sitemap) {
        sitemap_done(j, &e, r);
    } else {
        char why[200] = "";
        struct warm_item it = {
            .url = e.url, .status = r->status, .cache_status = r->cache_status,
        };
        it.outcome = classify(r, why, sizeof why);
        it.error = it.outcome == WARM_FAILED ? why : NULL;
        report(j, &it);
    }
    dispatch(j);
}

/* The next entry to start, sitemaps first; NULL when none is queued. */
static const struct warm_entry *next_entry(struct warm_job *j)
{
    if (j->sitemaps.next < j->sitemaps.n)
        return &j->sitemaps.v[j->sitemaps.next++];
    if (j->urls.next < j->urls.n)
        return &j->urls.v[j->urls.next++];
    return NULL;
}

/* Start what the free slots allow; report the end once nothing is left
 * (sitemaps still running may queue more, so not before). */
static void dispatch(struct warm_job *j)
{
    unsigned free_slot = 0;
    while (j->running < j->n_slots) {
        const struct warm_entry *e = next_entry(j);
        if (e == NULL)
            break;
        char target[CACHE_KEY_MAX / 2], why[200];
        if (url_to_target(e->url, j->host, target, sizeof target, why, sizeof why) != 0) {
            report_failed(j, e->url, e->sitemap, why);
            continue;
        }
        while (j->slots[free_slot].req)
            free_slot++;
        struct warm_slot *s = &j->slots[free_slot];
        struct internal_params p = {
            .host = j->host,
            .target = target,
            .scheme = j->scheme,
            .user_agent = WARM_UA,
            .no_cache = e->sitemap,     /* the origin's sitemap, not a stored one */
            .keep_body_max = e->sitemap ? WARM_MAX_SITEMAP_BYTES : 0,
        };
        s->job = j;
        s->entry = *e;
        s->req = internal_request(j->srv, j->base, &p, request_done, s);
        if (s->req == NULL) {
            report_failed(j, e->url, e->sitemap, "the server is stopping");
            continue;
        }
        j->running++;
    }
    if (j->running == 0 && j->sitemaps.next >= j->sitemaps.n && j->urls.next >= j->urls.n) {
        j->sum.elapsed_ms = elapsed_ms(j);
        struct warm_summary sum = j->sum;
        warm_done_fn done = j->done;
        void *arg = j->arg;
        job_free(j);
        done(arg, &sum);
    }
}

static void step_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct warm_job *j = arg;
    CHECK_OBJ_NOTNULL(j, WARM_JOB_MAGIC);
    dispatch(j);
}

struct warm_job *warm_start(struct server *srv, struct event_base *base,
                            const struct warm_params *p, warm_item_fn item, warm_done_fn done,
                            void *arg)
{
    AN(p->host);
    FC_ASSERT(p->concurrency >= 1 && p->concurrency <= WARM_MAX_CONCURRENCY);
    struct warm_job *j = calloc(1, sizeof *j);
    AN(j);
    j->magic = WARM_JOB_MAGIC;
    j->srv = srv;
    j->base = base;
    j->host = strdup(p->host);
    AN(j->host);
    j->scheme = p->scheme && strcmp(p->scheme, "https") == 0 ? "https" : "http";
    j->item = item;
    j->done = done;
    j->arg = arg;
    j->n_slots = p->concurrency;
    j->slots = calloc(j->n_slots, sizeof *j->slots);
    AN(j->slots);
    clock_gettime(CLOCK_MONOTONIC, &j->t0);
    if (p->sitemap) {
        queue_push(&j->sitemaps, p->sitemap, true, 0);
        j->n_sitemaps_seen = 1;
    }
    for (size_t i = 0; i < p->n_urls; i++)
        queue_push(&j->urls, p->urls[i], false, 0);
    j->ev_step = event_new(base, -1, 0, step_cb, j);
    AN(j->ev_step);
    event_active(j->ev_step, EV_WRITE, 0);
    return j;
}

void warm_cancel(struct warm_job *j)
{
    CHECK_OBJ_NOTNULL(j, WARM_JOB_MAGIC);
    for (unsigned i = 0; i < j->n_slots; i++)
        if (j->slots[i].req)
            internal_cancel(j->slots[i].req);
    job_free(j);
}
