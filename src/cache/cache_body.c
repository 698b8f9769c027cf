/*
 * cache_body.c — see include/freshcache/cache_body.h.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_body.h"

/* Unknown-length bodies grow in chunks from 16 KiB doubling to 1 MiB: small
 * responses waste little, large ones take few allocations. */
#define CHUNK_MIN (16u * 1024)
#define CHUNK_MAX (1024u * 1024)
/* Transient bodies never hold much at once: small chunks, freed as read. */
#define TRANSIENT_CHUNK (64u * 1024)

/* The waiter locks (see cache_body.h): a fixed table, initialised at load
 * time and never resized, so it needs no setup and no owner.  64 stripes
 * keep two busy bodies on the same lock rare with a handful of workers. */
#define WAITER_LOCKS 64
static pthread_mutex_t waiter_locks[WAITER_LOCKS] = {
    [0 ... WAITER_LOCKS - 1] = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_mutex_t *waiter_lock(const struct cache_body *b)
{
    uintptr_t a = (uintptr_t)b;
    return &waiter_locks[(a >> 6 ^ a >> 12) & (WAITER_LOCKS - 1)];
}

struct cache_body *body_new(void)
{
    struct cache_body *b = calloc(1, sizeof *b);
    AN(b);
    b->magic = BODY_MAGIC;
    atomic_init(&b->refcnt, 1);
    atomic_init(&b->state, BODY_PENDING);
    atomic_init(&b->total, 0);
    b->expected = UINT64_MAX;
    return b;
}

void body_set_transient(struct cache_body *b)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    FC_ASSERT(body_state(b) == BODY_PENDING && b->head == NULL);
    b->transient = true;
    b->drain = calloc(1, sizeof *b->drain);
    AN(b->drain);
}

void body_ref(struct cache_body *b)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    atomic_fetch_add_explicit(&b->refcnt, 1, memory_order_relaxed);
}

void body_unref(struct cache_body *b)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    unsigned old = atomic_fetch_sub_explicit(&b->refcnt, 1, memory_order_acq_rel);
    FC_ASSERT(old > 0);
    if (old != 1)
        return;
    FC_ASSERT(b->waiters == NULL && (b->drain == NULL || b->drain->waiter == NULL));
    struct body_chunk *c = b->head;
    while (c) {
        struct body_chunk *n = atomic_load_explicit(&c->next, memory_order_relaxed);
        free(c);
        c = n;
    }
    free(b->drain);
    b->magic = 0;
    free(b);
}

static struct body_chunk *chunk_new(size_t cap)
{
    FC_ASSERT(cap <= CHUNK_CAP_MAX);
    struct body_chunk *c = malloc(sizeof *c + cap);
    AN(c);
    atomic_init(&c->next, NULL);
    atomic_init(&c->len, 0);
    c->cap = (uint32_t)cap;
    return c;
}

static size_t add_chunk(struct cache_body *b, size_t cap)
{
    struct body_chunk *c = chunk_new(cap);
    if (b->tail)
        atomic_store_explicit(&b->tail->next, c, memory_order_release);
    else
        b->head = c;    /* published by the release store of total/state */
    b->tail = c;
    b->allocated += cap;
    return cap;
}

void body_start(struct cache_body *b, uint64_t expected)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    b->expected = expected;
    if (!b->transient && expected != UINT64_MAX && expected > 0 &&
        expected <= CHUNK_CAP_MAX)
        add_chunk(b, (size_t)expected);
    atomic_store_explicit(&b->state, BODY_STREAMING, memory_order_release);
}

size_t body_append(struct cache_body *b, const char *data, size_t len)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    size_t grown = 0;
    if (len == 0)
        return 0;
    while (len > 0) {
        struct body_chunk *t = b->tail;
        size_t used = t ? atomic_load_explicit(&t->len, memory_order_relaxed) : 0;
        if (t == NULL || used == t->cap) {
            size_t cap = t ? t->cap * 2 : CHUNK_MIN;
            if (cap < CHUNK_MIN)
                cap = CHUNK_MIN;
            if (cap > CHUNK_MAX)
                cap = CHUNK_MAX;
            if (b->transient)
                cap = TRANSIENT_CHUNK;
            grown += add_chunk(b, cap);
            continue;
        }
        size_t n = t->cap - used;
        if (n > len)
            n = len;
        memcpy(t->data + used, data, n);
        atomic_store_explicit(&t->len, (uint32_t)(used + n), memory_order_release);
        data += n;
        len -= n;
        atomic_fetch_add_explicit(&b->total, n, memory_order_release);
    }
    body_wake(b);
    return grown;
}

void body_wake(struct cache_body *b)
{
    pthread_mutex_t *mu = waiter_lock(b);
    pthread_mutex_lock(mu);
    for (struct body_waiter *w = b->waiters; w; w = w->next)
        event_active(w->ev, EV_READ, 0);
    pthread_mutex_unlock(mu);
}

void body_finish(struct cache_body *b, enum body_state final)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    FC_ASSERT(final == BODY_COMPLETE || final == BODY_FAILED || final == BODY_ABANDONED);
    atomic_store_explicit(&b->state, final, memory_order_release);
    body_wake(b);
}

static void ref_cleanup(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    body_unref(arg);
}

/* Transient reader: copy out, free every chunk fully passed (never the
 * tail, which the writer may still fill), and wake a writer waiting for
 * room. */
static size_t transient_read_into(struct cache_body *b, struct body_cursor *cur,
                                  struct evbuffer *out, size_t max)
{
    size_t total = body_total(b);
    size_t added = 0;
    while (cur->pos < total && added < max) {
        struct body_chunk *c = b->head;
        FC_ASSERT(c != NULL);
        size_t clen = atomic_load_explicit(&c->len, memory_order_acquire);
        if (cur->off == clen) {
            struct body_chunk *n = atomic_load_explicit(&c->next, memory_order_acquire);
            if (n == NULL)
                break;
            b->head = n;
            b->allocated -= c->cap;
            free(c);
            cur->off = 0;
            continue;
        }
        size_t n = clen - cur->off;
        if (n > max - added)
            n = max - added;
        AZ(evbuffer_add(out, c->data + cur->off, n));
        cur->off += n;
        cur->pos += n;
        added += n;
    }
    cur->chunk = b->head;
    b->drain->read_pos = cur->pos;
    if (b->drain->waiter && body_unread(b) <= b->drain->low) {
        event_active(b->drain->waiter->ev, EV_READ, 0);
        b->drain->waiter->queued = false;
        b->drain->waiter = NULL;
    }
    return added;
}

bool body_wait_drain(struct cache_body *b, struct body_waiter *w, size_t low)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    FC_ASSERT(b->transient);
    if (body_unread(b) <= low)
        return false;
    FC_ASSERT(b->drain->waiter == NULL || b->drain->waiter == w);
    b->drain->waiter = w;
    b->drain->low = low;
    w->queued = true;
    return true;
}

void body_unwait_drain(struct cache_body *b, struct body_waiter *w)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    if (b->drain->waiter == w) {
        b->drain->waiter = NULL;
        w->queued = false;
    }
}

size_t body_read_into(struct cache_body *b, struct body_cursor *cur, struct evbuffer *out,
                      size_t max)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    if (b->transient)
        return transient_read_into(b, cur, out, max);
    size_t total = body_total(b);
    size_t added = 0;
    while (cur->pos < total && added < max) {
        if (cur->chunk == NULL) {
            cur->chunk = b->head;
            cur->off = 0;
        }
        struct body_chunk *c = cur->chunk;
        size_t clen = atomic_load_explicit(&c->len, memory_order_acquire);
        if (cur->off == clen) {
            struct body_chunk *n = atomic_load_explicit(&c->next, memory_order_acquire);
            if (n == NULL)
                break;
            cur->chunk = n;
            cur->off = 0;
            continue;
        }
        size_t n = clen - cur->off;
        if (n > max - added)
            n = max - added;
        body_ref(b);
        if (evbuffer_add_reference(out, c->data + cur->off, n, ref_cleanup, b) != 0) {
            body_unref(b);
            break;
        }
        cur->off += n;
        cur->pos += n;
        added += n;
    }
    return added;
}

bool body_wait(struct cache_body *b, struct body_waiter *w, size_t pos, enum body_state seen)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    pthread_mutex_t *mu = waiter_lock(b);
    pthread_mutex_lock(mu);
    if (body_total(b) > pos || body_state(b) != seen) {
        pthread_mutex_unlock(mu);
        return false;
    }
    if (!w->queued) {
        w->prev = NULL;
        w->next = b->waiters;
        if (b->waiters)
            b->waiters->prev = w;
        b->waiters = w;
        w->queued = true;
    }
    pthread_mutex_unlock(mu);
    return true;
}

void body_unwait(struct cache_body *b, struct body_waiter *w)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    pthread_mutex_t *mu = waiter_lock(b);
    pthread_mutex_lock(mu);
    if (w->queued) {
        if (w->prev)
            w->prev->next = w->next;
        else
            b->waiters = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->queued = false;
    }
    pthread_mutex_unlock(mu);
}

unsigned body_waiters(struct cache_body *b)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    unsigned n = 0;
    pthread_mutex_t *mu = waiter_lock(b);
    pthread_mutex_lock(mu);
    for (struct body_waiter *w = b->waiters; w; w = w->next)
        n++;
    pthread_mutex_unlock(mu);
    return n;
}

void body_cursor_seek(struct cache_body *b, struct body_cursor *cur, size_t pos)
{
    CHECK_OBJ_NOTNULL(b, BODY_MAGIC);
    FC_ASSERT(pos <= body_total(b));
    struct body_chunk *c = b->head;
    size_t left = pos;
    while (c) {
        size_t len = atomic_load_explicit(&c->len, memory_order_acquire);
        struct body_chunk *n = atomic_load_explicit(&c->next, memory_order_acquire);
        if (left < len || n == NULL)
            break;
        left -= len;
        c = n;
    }
    cur->chunk = c;
    cur->off = left;
    cur->pos = pos;
}
