/*
 * cache_body.h — a response body shared by the store and every client
 * reading it, written once by one origin fetch while any number of readers
 * (on any worker thread) stream it out.
 *
 * Bytes live in a singly linked list of chunks that never move once
 * written, so readers hand them to libevent by reference
 * (evbuffer_add_reference) instead of copying: the hit path sends cached
 * bytes without a memcpy.  Each reference holds a body reference, so a body
 * evicted or replaced while being sent stays alive until the last byte is
 * written.
 *
 * A transient body carries a response that is not stored (a pass-through):
 * it has exactly one reader, on the writer's thread.  Its reader copies the
 * bytes out and frees each chunk it has passed, so a large pass-through
 * costs a bounded amount of memory; the writer watches body_unread() and
 * waits (body_wait_drain) when the reader falls behind.
 *
 * Threading: one writer appends; it publishes new bytes with release stores
 * of chunk->len and body->total, readers load them with acquire.  Readers
 * waiting for more bytes register a body_waiter; the writer wakes every
 * waiter (event_active, thread-safe with evthread_use_pthreads) after each
 * append and at the end.  A waiter re-checks under the body's waiter lock
 * before sleeping, so no wake-up is lost.  The waiter locks are striped:
 * a fixed table of mutexes (cache_body.c) indexed by the body's address,
 * instead of a 40-byte mutex in every stored body (most bodies are
 * complete and never waited on again).  Each lock guards only the waiter
 * lists of the bodies mapped to it and is never held with another.
 */
#ifndef FRESHCACHE_CACHE_BODY_H
#define FRESHCACHE_CACHE_BODY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct event;

enum body_state {
    BODY_PENDING = 0,   /* no response head yet (a coalescing placeholder) */
    BODY_STREAMING,     /* head known, bytes arriving */
    BODY_COMPLETE,      /* every byte is here */
    BODY_FAILED,        /* the fetch failed: what is here is truncated */
    BODY_ABANDONED,     /* the response was not stored: waiters fetch themselves */
};

/* A chunk holds at most CHUNK_CAP_MAX bytes, so 32-bit sizes do. */
#define CHUNK_CAP_MAX (64u * 1024 * 1024)

struct body_chunk {
    struct body_chunk *_Atomic next;
    _Atomic uint32_t len;
    uint32_t cap;
    char data[];
};

struct body_waiter {
    struct body_waiter *prev, *next;
    struct event *ev;           /* made active on progress; owned by the reader */
    bool queued;
};

/* What only a transient body needs, allocated with body_set_transient. */
struct body_drain {
    size_t read_pos;            /* bytes the reader has taken */
    struct body_waiter *waiter; /* the writer, waiting for the reader */
    size_t low;
};

/* Every stored object has one of these: kept small (no mutex, the
 * transient-only state behind a pointer). */
struct cache_body {
#define BODY_MAGIC 0x6b0d1e55u
    unsigned magic;
    atomic_uint refcnt;
    _Atomic int state;          /* enum body_state */
    bool transient;             /* one reader, copies out, frees what it passed */
    _Atomic size_t total;       /* bytes readable so far */
    uint64_t expected;          /* Content-Length, or UINT64_MAX */
    struct body_chunk *head;
    struct body_chunk *tail;    /* writer only */
    size_t allocated;           /* bytes of chunk capacity (writer only) */
    struct body_waiter *waiters;    /* guarded by the body's striped lock */
    struct body_drain *drain;   /* transient only */
};

struct body_cursor {
    struct body_chunk *chunk;   /* NULL: start at head */
    size_t off;                 /* within chunk */
    size_t pos;                 /* absolute */
};

struct cache_body *body_new(void);
/* Make a new body transient (before body_start). */
void body_set_transient(struct cache_body *b);
void body_ref(struct cache_body *b);
void body_unref(struct cache_body *b);

/* Writer side. */
/* Size the first chunk for a known length (UINT64_MAX: unknown) and move
 * from PENDING to STREAMING. */
void body_start(struct cache_body *b, uint64_t expected);
/* Append; returns the growth of allocated capacity in bytes (for memory
 * accounting), 0 when the bytes fit in existing chunks. */
size_t body_append(struct cache_body *b, const char *data, size_t len);
/* End: COMPLETE, FAILED or ABANDONED.  Wakes every waiter. */
void body_finish(struct cache_body *b, enum body_state final);
/* Wake waiters after a head was published (PENDING → STREAMING). */
void body_wake(struct cache_body *b);
/* Transient bodies: bytes appended that the reader has not taken yet. */
static inline size_t body_unread(const struct cache_body *b)
{
    return atomic_load_explicit(&b->total, memory_order_acquire) - b->drain->read_pos;
}
/* Transient bodies: wake `w` once body_unread() is at most `low`.  Returns
 * false (not registered) when it already is. */
bool body_wait_drain(struct cache_body *b, struct body_waiter *w, size_t low);
void body_unwait_drain(struct cache_body *b, struct body_waiter *w);

static inline enum body_state body_state(const struct cache_body *b)
{
    return (enum body_state)atomic_load_explicit(&b->state, memory_order_acquire);
}
static inline size_t body_total(const struct cache_body *b)
{
    return atomic_load_explicit(&b->total, memory_order_acquire);
}

/* Reader side. */
/* Add references to bytes from *cur up to what is available (at most
 * `max`) to `out`, advancing the cursor.  Returns the bytes added.  A
 * transient body's bytes are copied instead, and the chunks passed are
 * freed. */
size_t body_read_into(struct cache_body *b, struct body_cursor *cur, struct evbuffer *out,
                      size_t max);
/* Position a cursor at byte `pos` of a body that has at least that many. */
void body_cursor_seek(struct cache_body *b, struct body_cursor *cur, size_t pos);
/* Register to be woken.  Returns false (and does not register) when there
 * is already something to do: bytes past cur->pos, or a state change from
 * `seen`. */
bool body_wait(struct cache_body *b, struct body_waiter *w, size_t pos, enum body_state seen);
void body_unwait(struct cache_body *b, struct body_waiter *w);
/* How many readers are registered to be woken (for tests). */
unsigned body_waiters(struct cache_body *b);

#endif
