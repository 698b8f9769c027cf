/*
 * check_cache_body.c — transient bodies (src/cache/cache_body.c): the body
 * of a response that is not stored, with one reader that copies the bytes
 * out and frees every chunk it has passed, and a writer that waits
 * (body_wait_drain) while the reader is behind.  Shared, stored bodies are
 * tested in check_cache_store.c.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "freshcache/cache/cache_body.h"

static struct cache_body *transient_body(void)
{
    struct cache_body *b = body_new();
    body_set_transient(b);
    body_start(b, UINT64_MAX);
    return b;
}

/* Deterministic bytes that differ from chunk to chunk. */
static void fill(unsigned char *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (unsigned char)(seed >> 16);
    }
}

/* Move everything in `out` to a NUL-terminated string (caller frees). */
static char *drain(struct evbuffer *out)
{
    size_t n = evbuffer_get_length(out);
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(evbuffer_remove(out, s, n), (int)n);
    s[n] = '\0';
    return s;
}

static size_t n_chunks(const struct cache_body *b)
{
    size_t n = 0;
    for (struct body_chunk *c = b->head; c; c = atomic_load(&c->next))
        n++;
    return n;
}

/* ----------------------------------------------------------------- setup */

/* A new body becomes transient; a known length does not size a first
 * chunk for it (it never holds the whole body). */
START_TEST(set_transient)
{
    struct cache_body *b = body_new();
    ck_assert(!b->transient);
    body_set_transient(b);
    ck_assert(b->transient);
    body_start(b, 1000);
    ck_assert_int_eq(body_state(b), BODY_STREAMING);
    ck_assert_uint_eq(b->expected, 1000);
    ck_assert_ptr_null(b->head);
    ck_assert_uint_eq(b->allocated, 0);
    ck_assert_uint_eq(b->drain->read_pos, 0);
    ck_assert_uint_eq(body_unread(b), 0);
    body_unref(b);

    /* a stored body of known length gets its first chunk at once */
    b = body_new();
    body_start(b, 1000);
    ck_assert_ptr_nonnull(b->head);
    ck_assert_uint_eq(b->allocated, 1000);
    body_unref(b);
}
END_TEST

/* ------------------------------------------------------------------ read */

/* The reader gets copies (no body reference is taken), up to `max` bytes
 * at a time; read_pos and body_unread follow. */
START_TEST(read_copies)
{
    struct cache_body *b = transient_body();
    body_append(b, "hello world", 11);
    ck_assert_uint_eq(body_unread(b), 11);

    struct evbuffer *out = evbuffer_new();
    struct body_cursor cur = { 0 };
    ck_assert_uint_eq(body_read_into(b, &cur, out, 4), 4);
    ck_assert_uint_eq(cur.pos, 4);
    ck_assert_uint_eq(b->drain->read_pos, 4);
    ck_assert_uint_eq(body_unread(b), 7);
    ck_assert_uint_eq(atomic_load(&b->refcnt), 1);
    ck_assert_uint_eq(body_read_into(b, &cur, out, 0), 0);
    ck_assert_uint_eq(body_read_into(b, &cur, out, SIZE_MAX), 7);
    ck_assert_uint_eq(b->drain->read_pos, 11);
    ck_assert_uint_eq(body_unread(b), 0);
    /* nothing more to read */
    ck_assert_uint_eq(body_read_into(b, &cur, out, SIZE_MAX), 0);

    /* the bytes are the reader's: the body can go before they are used */
    ck_assert_uint_eq(atomic_load(&b->refcnt), 1);
    body_finish(b, BODY_COMPLETE);
    body_unref(b);
    char *s = drain(out);
    ck_assert_str_eq(s, "hello world");
    free(s);
    evbuffer_free(out);
}
END_TEST

/* Each chunk is freed once the reader has passed it, except the tail,
 * which the writer may still fill. */
START_TEST(read_frees_passed_chunks)
{
    struct cache_body *b = transient_body();
    unsigned char *data = malloc(200000);
    fill(data, 200000, 1);
    body_append(b, (const char *)data, 200000);
    size_t chunks = n_chunks(b);
    ck_assert_uint_gt(chunks, 2);
    size_t first_cap = b->head->cap;
    size_t allocated = b->allocated;

    struct evbuffer *out = evbuffer_new();
    struct body_cursor cur = { 0 };
    /* to the end of the first chunk: it is not passed yet */
    ck_assert_uint_eq(body_read_into(b, &cur, out, first_cap), first_cap);
    ck_assert_uint_eq(n_chunks(b), chunks);
    /* one byte more: it is */
    ck_assert_uint_eq(body_read_into(b, &cur, out, 1), 1);
    ck_assert_uint_eq(n_chunks(b), chunks - 1);
    ck_assert_uint_eq(b->allocated, allocated - first_cap);
    ck_assert_ptr_eq(cur.chunk, b->head);

    /* everything: only the tail is left */
    ck_assert_uint_eq(body_read_into(b, &cur, out, SIZE_MAX), 200000 - first_cap - 1);
    ck_assert_ptr_eq(b->head, b->tail);
    ck_assert_uint_eq(n_chunks(b), 1);
    ck_assert_uint_eq(b->allocated, b->tail->cap);
    ck_assert_uint_eq(body_unread(b), 0);

    ck_assert_uint_eq(evbuffer_get_length(out), 200000);
    unsigned char *got = evbuffer_pullup(out, -1);
    ck_assert_int_eq(memcmp(got, data, 200000), 0);

    /* the writer goes on after the tail: the old tail is passed and freed */
    size_t room = b->tail->cap - atomic_load(&b->tail->len);
    body_append(b, (const char *)data, room + 1);
    ck_assert_uint_eq(n_chunks(b), 2);
    evbuffer_drain(out, evbuffer_get_length(out));
    size_t left = body_unread(b);
    ck_assert_uint_eq(body_read_into(b, &cur, out, SIZE_MAX), left);
    ck_assert_uint_eq(n_chunks(b), 1);
    ck_assert_ptr_eq(b->head, b->tail);

    body_finish(b, BODY_COMPLETE);
    body_unref(b);
    evbuffer_free(out);
    free(data);
}
END_TEST

/* A large body written and read in uneven pieces, the reader never far
 * behind: what was read is exactly what was appended, and the memory held
 * stays bounded by what is unread plus two chunks. */
START_TEST(large_body_in_pieces)
{
    enum { N = 3 * 1024 * 1024 + 123 };
    unsigned char *data = malloc(N);
    fill(data, N, 7);
    struct cache_body *b = transient_body();
    struct evbuffer *out = evbuffer_new();
    struct body_cursor cur = { 0 };
    size_t written = 0, max_held = 0;
    uint32_t r = 12345;
    while (written < N || body_unread(b) > 0) {
        r = r * 1103515245u + 12345u;
        size_t piece = 1 + (r >> 8) % 50000;
        if (written < N) {
            if (piece > N - written)
                piece = N - written;
            body_append(b, (const char *)data + written, piece);
            written += piece;
        }
        if (b->allocated > max_held)
            max_held = b->allocated;
        size_t cap = b->head ? b->head->cap : 0;
        ck_assert_uint_le(b->allocated, body_unread(b) + 2 * cap);
        r = r * 1103515245u + 12345u;
        body_read_into(b, &cur, out, 1 + (r >> 8) % 80000);
        ck_assert_uint_eq(b->drain->read_pos, cur.pos);
        ck_assert_uint_eq(body_unread(b), written - cur.pos);
    }
    body_finish(b, BODY_COMPLETE);
    ck_assert_uint_eq(cur.pos, N);
    ck_assert_uint_eq(body_total(b), N);
    ck_assert_uint_lt(max_held, N / 4);
    ck_assert_uint_eq(evbuffer_get_length(out), N);
    ck_assert_int_eq(memcmp(evbuffer_pullup(out, -1), data, N), 0);
    body_unref(b);
    evbuffer_free(out);
    free(data);
}
END_TEST

/* ----------------------------------------------------------------- drain */

/* The writer's waiter: counts its wake-ups in *arg. */
static void on_drained(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ++*(int *)arg;
}

struct drain_fixture {
    struct event_base *base;
    int fired;
    struct body_waiter w;
    struct cache_body *b;
    struct evbuffer *out;
    struct body_cursor cur;
};

/* A transient body holding `unread` bytes and a writer's waiter. */
static void fixture_init(struct drain_fixture *f, size_t unread)
{
    memset(f, 0, sizeof *f);
    f->base = event_base_new();
    ck_assert_ptr_nonnull(f->base);
    f->w.ev = event_new(f->base, -1, 0, on_drained, &f->fired);
    f->b = transient_body();
    char *bytes = malloc(unread + 1);
    memset(bytes, 'b', unread);
    body_append(f->b, bytes, unread);
    free(bytes);
    f->out = evbuffer_new();
}

/* Read `n` bytes and let the event loop run once. */
static void fixture_read(struct drain_fixture *f, size_t n)
{
    ck_assert_uint_eq(body_read_into(f->b, &f->cur, f->out, n), n);
    event_base_loop(f->base, EVLOOP_NONBLOCK);
}

static void fixture_free(struct drain_fixture *f)
{
    body_unwait_drain(f->b, &f->w);
    body_finish(f->b, BODY_COMPLETE);
    body_unref(f->b);
    evbuffer_free(f->out);
    event_free(f->w.ev);
    event_base_free(f->base);
}

/* The writer waits while more than `low` bytes are unread and is woken,
 * once, when the reader brings them down to `low`. */
START_TEST(drain_waiter_woken_at_low)
{
    struct drain_fixture f;
    fixture_init(&f, 100);
    ck_assert(body_wait_drain(f.b, &f.w, 50));
    ck_assert_ptr_eq(f.b->drain->waiter, &f.w);
    ck_assert_uint_eq(f.b->drain->low, 50);
    ck_assert(f.w.queued);

    fixture_read(&f, 30);                       /* 70 unread: still waiting */
    ck_assert_int_eq(f.fired, 0);
    ck_assert_ptr_eq(f.b->drain->waiter, &f.w);

    fixture_read(&f, 20);                       /* 50 unread: woken */
    ck_assert_int_eq(f.fired, 1);
    ck_assert_ptr_null(f.b->drain->waiter);
    ck_assert(!f.w.queued);

    fixture_read(&f, 50);                       /* woken once only */
    ck_assert_int_eq(f.fired, 1);
    fixture_free(&f);
}
END_TEST

/* One read past `low` wakes it too; a re-registration replaces the mark. */
START_TEST(drain_waiter_reregistered)
{
    struct drain_fixture f;
    fixture_init(&f, 100);
    ck_assert(body_wait_drain(f.b, &f.w, 10));
    ck_assert(body_wait_drain(f.b, &f.w, 80));  /* the same writer, a new mark */
    ck_assert_uint_eq(f.b->drain->low, 80);
    fixture_read(&f, 60);                       /* 40 unread, under 80 */
    ck_assert_int_eq(f.fired, 1);
    ck_assert_ptr_null(f.b->drain->waiter);

    /* the writer appends again and waits again */
    body_append(f.b, "0123456789", 10);
    ck_assert_uint_eq(body_unread(f.b), 50);
    ck_assert(body_wait_drain(f.b, &f.w, 0));
    fixture_read(&f, 49);
    ck_assert_int_eq(f.fired, 1);
    fixture_read(&f, 1);
    ck_assert_int_eq(f.fired, 2);
    fixture_free(&f);
}
END_TEST

/* Nothing to wait for when the reader is already at or under `low`: not
 * registered, never woken. */
START_TEST(drain_not_registered_when_low)
{
    struct drain_fixture f;
    fixture_init(&f, 100);
    ck_assert(!body_wait_drain(f.b, &f.w, 100));
    ck_assert(!body_wait_drain(f.b, &f.w, 1000));
    ck_assert_ptr_null(f.b->drain->waiter);
    ck_assert(!f.w.queued);
    fixture_read(&f, 100);
    ck_assert(!body_wait_drain(f.b, &f.w, 0));
    ck_assert_ptr_null(f.b->drain->waiter);
    ck_assert_int_eq(f.fired, 0);
    fixture_free(&f);
}
END_TEST

/* body_unwait_drain takes the writer off; a waiter that is not the one
 * registered changes nothing. */
START_TEST(drain_unwait)
{
    struct drain_fixture f;
    fixture_init(&f, 100);
    struct body_waiter other = { 0 };
    ck_assert(body_wait_drain(f.b, &f.w, 10));
    body_unwait_drain(f.b, &other);
    ck_assert_ptr_eq(f.b->drain->waiter, &f.w);
    ck_assert(f.w.queued);
    body_unwait_drain(f.b, &f.w);
    ck_assert_ptr_null(f.b->drain->waiter);
    ck_assert(!f.w.queued);
    body_unwait_drain(f.b, &f.w);               /* idempotent */
    fixture_read(&f, 100);
    ck_assert_int_eq(f.fired, 0);
    fixture_free(&f);
}
END_TEST

static Suite *cache_body_suite(void)
{
    Suite *s = suite_create("cache_body");

    TCase *t = tcase_create("transient");
    tcase_add_test(t, set_transient);
    tcase_add_test(t, read_copies);
    tcase_add_test(t, read_frees_passed_chunks);
    tcase_add_test(t, large_body_in_pieces);
    tcase_set_timeout(t, 60);
    suite_add_tcase(s, t);

    TCase *d = tcase_create("drain");
    tcase_add_test(d, drain_waiter_woken_at_low);
    tcase_add_test(d, drain_waiter_reregistered);
    tcase_add_test(d, drain_not_registered_when_low);
    tcase_add_test(d, drain_unwait);
    suite_add_tcase(s, d);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cache_body_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
