/*
 * check_cache_store.c — the in-memory cache: byte bound and LRU eviction,
 * Vary variants, coalescing placeholders, removal, and the shared body
 * (cache_body) streamed by many reader threads while one writer appends.
 */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_body.h"
#include "freshcache/cache/cache_key.h"
#include "freshcache/cache/cache_obj.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/generation.h"
#include "freshcache/http/http_msg.h"
#include "tmpdir.h"

#define RESPONSE_TIME ((time_t)1420070400)     /* 2015-01-01T00:00:00Z */

/* ------------------------------------------------------------ helpers */

static enum lookup_result lookup(struct cache_store *s, const struct cache_key *k,
                                 const struct http_msg *req, bool create_busy, uint64_t now_ms,
                                 struct cache_obj **out)
{
    *out = (struct cache_obj *)(uintptr_t)0xdeadbeef;
    return store_lookup(s, k, req, create_busy, now_ms, NULL, false, out);
}

static struct cache_key key_of(const char *path)
{
    struct cache_key k;
    ck_assert_int_eq(cache_key_build(&k, "h.example", 9, path, strlen(path)), 0);
    return k;
}

/* Deterministic filler so every body is checkable. */
static void fill(char *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (char)(x >> 24);
    }
}

/* The response head every test object gets: 200, fixed Date (so heads of
 * equal-length keys have equal length), plus an optional Vary and a tag
 * that identifies the object. */
static void resp_init(struct http_msg *resp, const char *vary, const char *tag)
{
    http_msg_init(resp);
    resp->status = 200;
    http_msg_add_str(resp, "Date", "Thu, 01 Jan 2015 00:00:00 GMT");
    http_msg_add_str(resp, "Content-Type", "text/plain");
    if (vary)
        http_msg_add_str(resp, "Vary", vary);
    if (tag)
        http_msg_add_str(resp, "X-Tag", tag);
}

/* A READY-able object: head from a small response, body of `len` bytes
 * (content from `seed`), complete.  With `vary`, the variant is selected
 * by `req`. */
static struct cache_obj *make_obj_ex(const struct cache_key *k, size_t len, unsigned seed,
                                     bool known_length, const char *vary,
                                     const struct http_msg *req, const char *tag)
{
    struct cache_obj *o = obj_new(k);
    ck_assert_ptr_nonnull(o);
    struct http_msg resp;
    resp_init(&resp, vary, tag);
    obj_set_head(o, &resp, "OK", RESPONSE_TIME, NULL);
    if (vary) {
        struct http_msg empty;
        http_msg_init(&empty);
        ck_assert(vary_build(o, &resp, req ? req : &empty));
        http_msg_free(&empty);
    }
    http_msg_free(&resp);
    ck_assert_int_eq(o->status, 200);
    char *data = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(data);
    fill(data, len, seed);
    body_start(o->body, known_length ? len : UINT64_MAX);
    ck_assert_int_eq(body_state(o->body), BODY_STREAMING);
    body_append(o->body, data, len);
    body_finish(o->body, BODY_COMPLETE);
    free(data);
    ck_assert_uint_eq(body_total(o->body), len);
    ck_assert_int_eq(body_state(o->body), BODY_COMPLETE);
    return o;
}

static struct cache_obj *make_obj(const char *path, size_t len)
{
    struct cache_key k = key_of(path);
    return make_obj_ex(&k, len, (unsigned)len, true, NULL, NULL, NULL);
}

/* Insert and drop our reference (the index keeps its own). */
static void insert(struct cache_store *s, struct cache_obj *o, uint64_t now)
{
    store_insert(s, o, now);
    obj_unref(o);
}

static struct store_stats stats(struct cache_store *s)
{
    struct store_stats st;
    memset(&st, 0xa5, sizeof st);
    store_get_stats(s, &st);
    return st;
}

/* Is `path` in the store (no Vary)?  A hit refreshes its recency at `now`. */
static bool present(struct cache_store *s, const char *path, uint64_t now)
{
    struct cache_key k = key_of(path);
    struct cache_obj *o;
    enum lookup_result r = lookup(s, &k, NULL, false, now, &o);
    if (r == LOOKUP_MISS) {
        ck_assert_ptr_null(o);
        return false;
    }
    ck_assert_int_eq(r, LOOKUP_FOUND);
    ck_assert(obj_ready(o));
    ck_assert_str_eq(o->key, k.buf);
    obj_unref(o);
    return true;
}

static bool head_has(const struct cache_obj *o, const char *s)
{
    return memmem(obj_head(o), o->head_len, s, strlen(s)) != NULL;
}

static struct http_msg req_with(const char *name, const char *value)
{
    struct http_msg m;
    http_msg_init(&m);
    m.method = 1;   /* HTTP_GET */
    if (name)
        http_msg_add_str(&m, name, value);
    return m;
}

/* Footprint of one standard object ("/obj-NNN", 1000-byte body), as charged. */
static uint64_t standard_footprint(void)
{
    struct cache_store *s = store_new(UINT64_MAX / 2, 1);
    insert(s, make_obj("/obj-000", 1000), 1);
    struct store_stats st = stats(s);
    ck_assert_uint_eq(st.objects, 1);
    store_free(s);
    return st.bytes;
}

static const char *objpath(int i)
{
    static char p[32];
    snprintf(p, sizeof p, "/obj-%03d", i);
    return p;
}

/* ------------------------------------------------- bound and eviction */

/* Clock steps of the LRU tests: a hit moves its object up the order only
 * if its last move is at least STORE_LRU_BUMP_MS old. */
#define TICK STORE_LRU_BUMP_MS

START_TEST(stats_count_objects_and_bytes)
{
    struct cache_store *s = store_new(1 << 20, 1);
    struct store_stats st = stats(s);
    ck_assert_uint_eq(st.objects, 0);
    ck_assert_uint_eq(st.bytes, 0);
    ck_assert_uint_eq(st.max_bytes, 1 << 20);
    ck_assert_uint_eq(st.evictions, 0);

    struct cache_obj *a = make_obj("/a", 5000);
    size_t a_min = 5000 + a->head_len + a->key_len;
    insert(s, a, 1);
    st = stats(s);
    ck_assert_uint_eq(st.objects, 1);
    /* the body's capacity and the head are charged */
    ck_assert_uint_ge(st.bytes, a_min);
    ck_assert_uint_lt(st.bytes, a_min + 4096);
    uint64_t one = st.bytes;

    insert(s, make_obj("/b", 5000), 2);
    st = stats(s);
    ck_assert_uint_eq(st.objects, 2);
    ck_assert_uint_eq(st.bytes, 2 * one);       /* same sizes, same charge */

    /* A bigger body costs exactly its extra bytes more. */
    insert(s, make_obj("/c", 7000), 3);
    st = stats(s);
    ck_assert_uint_eq(st.objects, 3);
    ck_assert_uint_eq(st.bytes, 3 * one + 2000);
    ck_assert_uint_eq(st.evictions, 0);

    struct cache_key kc = key_of("/c");
    ck_assert_uint_eq(store_remove_key(s, &kc), 1);
    st = stats(s);
    ck_assert_uint_eq(st.objects, 2);
    ck_assert_uint_eq(st.bytes, 2 * one);
    ck_assert_uint_eq(st.evictions, 0);         /* removal is not eviction */
    store_free(s);
}
END_TEST

START_TEST(lru_evicts_least_recently_used)
{
    uint64_t F = standard_footprint();
    struct cache_store *s = store_new(4 * F + F / 2, 1);
    uint64_t now = 100;
    for (int i = 0; i < 4; i++)
        insert(s, make_obj(objpath(i), 1000), now += TICK);
    struct store_stats st = stats(s);
    ck_assert_uint_eq(st.objects, 4);
    ck_assert_uint_eq(st.bytes, 4 * F);
    ck_assert_uint_eq(st.evictions, 0);

    /* Use obj-000 (the oldest insert): obj-001 becomes the LRU. */
    ck_assert(present(s, objpath(0), now += TICK));
    insert(s, make_obj(objpath(4), 1000), now += TICK);
    st = stats(s);
    ck_assert_uint_eq(st.objects, 4);
    ck_assert_uint_eq(st.bytes, 4 * F);
    ck_assert_uint_le(st.bytes, st.max_bytes);
    ck_assert_uint_eq(st.evictions, 1);
    ck_assert(!present(s, objpath(1), now += TICK));

    /* Recency now, oldest first: 2, 3, 0, 4.  Check without reordering
     * (looking up oldest first keeps the order). */
    ck_assert(present(s, objpath(2), now += TICK));
    ck_assert(present(s, objpath(3), now += TICK));
    ck_assert(present(s, objpath(0), now += TICK));
    ck_assert(present(s, objpath(4), now += TICK));

    /* Two more inserts evict 2 then 3. */
    insert(s, make_obj(objpath(5), 1000), now += TICK);
    ck_assert_uint_eq(stats(s).evictions, 2);
    ck_assert(!present(s, objpath(2), now += TICK));
    ck_assert(present(s, objpath(3), now += TICK));  /* refreshed: 0 is the LRU now */
    insert(s, make_obj(objpath(6), 1000), now += TICK);
    ck_assert_uint_eq(stats(s).evictions, 3);
    ck_assert(!present(s, objpath(0), now += TICK));
    ck_assert(present(s, objpath(4), now += TICK));
    ck_assert(present(s, objpath(5), now += TICK));
    ck_assert(present(s, objpath(3), now += TICK));
    ck_assert(present(s, objpath(6), now += TICK));
    st = stats(s);
    ck_assert_uint_eq(st.objects, 4);
    ck_assert_uint_eq(st.bytes, 4 * F);
    store_free(s);
}
END_TEST

/* Hits within STORE_LRU_BUMP_MS of an object's last move leave the LRU
 * order as it is (they share the shard's read lock); the first hit after
 * that moves it to the head. */
START_TEST(lru_moves_at_most_once_per_interval)
{
    uint64_t F = standard_footprint();
    struct cache_store *s = store_new(3 * F + F / 2, 1);
    uint64_t now = 1000;
    for (int i = 0; i < 3; i++)
        insert(s, make_obj(objpath(i), 1000), now + (uint64_t)i);
    /* obj-000 was placed at 1000: hits until 1000 + TICK - 1 do not move it. */
    for (uint64_t t = now + 3; t < now + TICK; t += TICK / 8)
        ck_assert(present(s, objpath(0), t));
    insert(s, make_obj(objpath(3), 1000), now + TICK - 1);
    ck_assert_uint_eq(stats(s).evictions, 1);
    ck_assert(!present(s, objpath(0), now + TICK - 1));     /* still the LRU: gone */

    /* obj-001 was placed at 1001: a hit at 1001 + TICK moves it up. */
    ck_assert(present(s, objpath(1), now + 1 + TICK));
    insert(s, make_obj(objpath(4), 1000), now + 2 + TICK);
    ck_assert_uint_eq(stats(s).evictions, 2);
    ck_assert(!present(s, objpath(2), now + 2 + TICK));     /* 2 was the LRU */
    ck_assert(present(s, objpath(1), now + 2 + TICK));
    ck_assert(present(s, objpath(3), now + 2 + TICK));
    ck_assert(present(s, objpath(4), now + 2 + TICK));
    /* A clock behind the object's last move (a caller's older reading)
     * moves it too, rather than never again. */
    ck_assert(present(s, objpath(3), 5));
    store_free(s);
}
END_TEST

START_TEST(eviction_frees_enough_for_a_big_object)
{
    uint64_t F = standard_footprint();
    struct cache_store *s = store_new(4 * F + F / 2, 1);
    for (int i = 0; i < 4; i++)
        insert(s, make_obj(objpath(i), 1000), 10 + i);
    /* An object costing about two standard ones evicts the two LRU. */
    struct cache_key k = key_of("/big-000");
    struct cache_obj *big = make_obj_ex(&k, 1000 + F, 7, true, NULL, NULL, NULL);
    insert(s, big, 20);
    struct store_stats st = stats(s);
    ck_assert_uint_eq(st.evictions, 2);
    ck_assert_uint_eq(st.objects, 3);
    ck_assert_uint_eq(st.bytes, 4 * F);
    ck_assert(!present(s, objpath(0), 21));
    ck_assert(!present(s, objpath(1), 22));
    ck_assert(present(s, objpath(2), 23));
    ck_assert(present(s, objpath(3), 24));
    ck_assert(present(s, "/big-000", 25));
    store_free(s);
}
END_TEST

START_TEST(object_larger_than_bound)
{
    uint64_t F = standard_footprint();
    struct cache_store *s = store_new(3 * F, 1);
    insert(s, make_obj(objpath(0), 1000), 1);
    struct cache_key k = key_of("/huge");
    struct cache_obj *huge = make_obj_ex(&k, 4 * F, 3, false, NULL, NULL, NULL);
    store_insert(s, huge, 2);
    struct store_stats st = stats(s);
    ck_assert_uint_le(st.bytes, st.max_bytes);
    ck_assert(!huge->linked);
    ck_assert(!present(s, "/huge", 3));
    /* our reference still works */
    ck_assert_uint_eq(body_total(huge->body), 4 * F);
    obj_unref(huge);
    store_free(s);
}
END_TEST

/* A reference model of exact LRU, one shard, equal-sized objects. */
START_TEST(lru_matches_model)
{
    enum { CAP = 8, KEYS = 24, OPS = 3000 };
    uint64_t F = standard_footprint();
    struct cache_store *s = store_new(CAP * F + F / 2, 1);
    int model[CAP];         /* model[0] = least recently used */
    int n = 0;
    uint64_t evictions = 0, now = 1;
    unsigned seed = 12345;

    for (int op = 0; op < OPS; op++) {
        int key = (int)(rand_r(&seed) % KEYS);
        int at = -1;
        for (int i = 0; i < n; i++)
            if (model[i] == key)
                at = i;
        bool do_insert = rand_r(&seed) % 2;
        if (do_insert) {
            insert(s, make_obj(objpath(key), 1000), now += TICK);
            if (at >= 0) {      /* replaced in place: no eviction */
                memmove(&model[at], &model[at + 1], (size_t)(n - at - 1) * sizeof *model);
                n--;
            } else if (n == CAP) {
                memmove(&model[0], &model[1], (size_t)(n - 1) * sizeof *model);
                n--;
                evictions++;
            }
            model[n++] = key;
        } else {
            bool p = present(s, objpath(key), now += TICK);
            ck_assert_msg(p == (at >= 0), "op %d key %d: present %d, model %d", op, key, p,
                          at >= 0);
            if (at >= 0) {
                memmove(&model[at], &model[at + 1], (size_t)(n - at - 1) * sizeof *model);
                model[n - 1] = key;
            }
        }
        struct store_stats st = stats(s);
        ck_assert_uint_eq(st.objects, (uint64_t)n);
        ck_assert_uint_eq(st.bytes, (uint64_t)n * F);
        ck_assert_uint_le(st.bytes, st.max_bytes);
        ck_assert_uint_eq(st.evictions, evictions);

        if (op % 97 == 0) {
            /* Full check, oldest first so the order is kept. */
            for (int i = 0; i < n; i++)
                ck_assert_msg(present(s, objpath(model[i]), now += TICK), "op %d: %d missing", op,
                              model[i]);
            for (int k = 0; k < KEYS; k++) {
                bool in = false;
                for (int i = 0; i < n; i++)
                    in |= model[i] == k;
                if (!in)
                    ck_assert_msg(!present(s, objpath(k), now += TICK), "op %d: %d present", op, k);
            }
        }
    }
    ck_assert_uint_gt(evictions, 100);
    store_free(s);
}
END_TEST

START_TEST(sharded_bound_and_global_lru)
{
    /* With several shards, eviction still takes the globally oldest tail:
     * with monotonic inserts and no lookups, exactly the newest stay. */
    enum { CAP = 20, N = 300 };
    uint64_t F = standard_footprint();
    struct cache_store *s = store_new(CAP * F + F / 3, 8);
    for (int i = 0; i < N; i++) {
        insert(s, make_obj(objpath(i), 1000), (uint64_t)i + 1);
        struct store_stats st = stats(s);
        ck_assert_uint_le(st.bytes, st.max_bytes);
        uint64_t want = (uint64_t)(i + 1 < CAP ? i + 1 : CAP);
        ck_assert_uint_eq(st.objects, want);
        ck_assert_uint_eq(st.bytes, want * F);
        ck_assert_uint_eq(st.evictions, (uint64_t)(i + 1) - want);
    }
    for (int i = 0; i < N; i++)
        ck_assert_msg(present(s, objpath(i), 1000 + (uint64_t)i) == (i >= N - CAP), "%d", i);
    store_free(s);
}
END_TEST

START_TEST(charge_grows_and_evicts)
{
    uint64_t F = standard_footprint();
    struct cache_store *s = store_new(3 * F + F / 2, 1);
    insert(s, make_obj(objpath(0), 1000), 1);
    insert(s, make_obj(objpath(1), 1000), 2);
    insert(s, make_obj(objpath(2), 1000), 3);
    struct cache_key k = key_of(objpath(2));
    struct cache_obj *o;
    ck_assert_int_eq(lookup(s, &k, NULL, false, 4, &o), LOOKUP_FOUND);
    store_charge(s, o, 0);
    ck_assert_uint_eq(stats(s).bytes, 3 * F);
    store_charge(s, o, F);      /* its body grew: the LRU one goes */
    struct store_stats st = stats(s);
    ck_assert_uint_eq(st.bytes, 3 * F);
    ck_assert_uint_eq(st.objects, 2);
    ck_assert_uint_eq(st.evictions, 1);
    ck_assert(!present(s, objpath(0), 5));
    /* removing it uncharges everything it was charged */
    store_remove(s, o);
    ck_assert(!o->linked);
    st = stats(s);
    ck_assert_uint_eq(st.objects, 1);
    ck_assert_uint_eq(st.bytes, F);
    /* charging an unlinked object counts nothing */
    store_charge(s, o, 12345);
    ck_assert_uint_eq(stats(s).bytes, F);
    obj_unref(o);
    store_free(s);
}
END_TEST

/* --------------------------------------------------------------- vary */

START_TEST(variants_both_retrievable)
{
    struct cache_store *s = store_new(1 << 24, 1);
    struct cache_key k = key_of("/v");
    struct http_msg gz = req_with("Accept-Encoding", "gzip");
    struct http_msg br = req_with("Accept-Encoding", "br");
    struct http_msg id = req_with("Accept-Encoding", "identity");
    struct http_msg none = req_with(NULL, NULL);

    struct cache_obj *a = make_obj_ex(&k, 100, 1, true, "Accept-Encoding", &gz, "gzip");
    struct cache_obj *b = make_obj_ex(&k, 100, 2, true, "Accept-Encoding", &br, "br");
    ck_assert_uint_gt(a->vary_len, 0);
    ck_assert(vary_match(a, &gz));
    ck_assert(!vary_match(a, &br));
    insert(s, a, 1);
    insert(s, b, 2);
    ck_assert_uint_eq(stats(s).objects, 2);

    struct cache_obj *o;
    ck_assert_int_eq(lookup(s, &k, &gz, false, 3, &o), LOOKUP_FOUND);
    ck_assert_ptr_eq(o, a);
    ck_assert(head_has(o, "X-Tag: gzip\r\n"));
    obj_unref(o);
    ck_assert_int_eq(lookup(s, &k, &br, false, 4, &o), LOOKUP_FOUND);
    ck_assert_ptr_eq(o, b);
    ck_assert(head_has(o, "X-Tag: br\r\n"));
    obj_unref(o);

    /* no variant for these */
    ck_assert_int_eq(lookup(s, &k, &id, false, 5, &o), LOOKUP_VARY_MISS);
    ck_assert_ptr_null(o);
    ck_assert_int_eq(lookup(s, &k, &none, false, 5, &o), LOOKUP_VARY_MISS);
    ck_assert_ptr_null(o);
    /* ... and with create_busy a placeholder is left for them */
    ck_assert_int_eq(lookup(s, &k, &id, true, 6, &o), LOOKUP_CREATED);
    ck_assert(!obj_ready(o));
    store_remove(s, o);
    obj_unref(o);

    /* no request: any READY object */
    ck_assert_int_eq(lookup(s, &k, NULL, false, 7, &o), LOOKUP_FOUND);
    ck_assert(o == a || o == b);
    obj_unref(o);

    http_msg_free(&gz);
    http_msg_free(&br);
    http_msg_free(&id);
    http_msg_free(&none);
    store_free(s);
}
END_TEST

START_TEST(vary_normalisation)
{
    struct cache_key k = key_of("/n");
    struct http_msg stored;
    http_msg_init(&stored);
    http_msg_add_str(&stored, "accept-encoding", "gzip, br");
    http_msg_add_str(&stored, "Accept-Language", "en");
    struct cache_obj *o = make_obj_ex(&k, 10, 1, true, "ACCEPT-ENCODING, accept-language", &stored,
                                      NULL);

    /* whitespace around commas and field lines joined */
    struct http_msg r1;
    http_msg_init(&r1);
    http_msg_add_str(&r1, "Accept-Encoding", "gzip ,br");
    http_msg_add_str(&r1, "ACCEPT-LANGUAGE", "en");
    ck_assert(vary_match(o, &r1));
    struct http_msg r2;
    http_msg_init(&r2);
    http_msg_add_str(&r2, "Accept-Encoding", "gzip");
    http_msg_add_str(&r2, "Accept-Encoding", "br");
    http_msg_add_str(&r2, "Accept-Language", "en");
    ck_assert(vary_match(o, &r2));
    /* order and case of values matter */
    struct http_msg r3;
    http_msg_init(&r3);
    http_msg_add_str(&r3, "Accept-Encoding", "br, gzip");
    http_msg_add_str(&r3, "Accept-Language", "en");
    ck_assert(!vary_match(o, &r3));
    /* one of the two fields missing */
    struct http_msg r4;
    http_msg_init(&r4);
    http_msg_add_str(&r4, "Accept-Encoding", "gzip, br");
    ck_assert(!vary_match(o, &r4));
    obj_unref(o);

    /* no Vary: matches everything */
    struct http_msg none = req_with(NULL, NULL);
    struct cache_obj *plain = make_obj_ex(&k, 10, 1, true, NULL, NULL, NULL);
    ck_assert_uint_eq(plain->vary_len, 0);
    ck_assert(vary_match(plain, &r3));
    ck_assert(vary_match(plain, &none));
    obj_unref(plain);

    http_msg_free(&stored);
    http_msg_free(&r1);
    http_msg_free(&r2);
    http_msg_free(&r3);
    http_msg_free(&r4);
    http_msg_free(&none);
}
END_TEST

START_TEST(vary_absent_differs_from_empty)
{
    struct cache_key k = key_of("/n");
    /* Absent differs from empty.
     * Regression (fixed; src/vary.c, vary_match): when the request's field is
     * present but empty and it is the first (or only) Vary field, the
     * normalised value is empty and sbuf b.p is still NULL, so
     * memcmp(b.p, want, 0) is called with a NULL pointer: undefined
     * behaviour, reported by UBSan ("null pointer passed as argument 1")
     * at vary.c in vary_match(); fatal when UBSAN_OPTIONS has
     * halt_on_error=1. */
    struct http_msg none = req_with(NULL, NULL);
    struct http_msg empty = req_with("X-Flag", "");
    struct cache_obj *oa = make_obj_ex(&k, 10, 1, true, "X-Flag", &none, NULL);
    struct cache_obj *oe = make_obj_ex(&k, 10, 1, true, "X-Flag", &empty, NULL);
    ck_assert(vary_match(oa, &none));
    ck_assert(!vary_match(oa, &empty));
    ck_assert(vary_match(oe, &empty));
    ck_assert(!vary_match(oe, &none));
    obj_unref(oa);
    obj_unref(oe);

    http_msg_free(&none);
    http_msg_free(&empty);
}
END_TEST

START_TEST(vary_star_not_storable)
{
    struct cache_key k = key_of("/star");
    struct http_msg req = req_with("Accept-Encoding", "gzip");
    static const char *const stars[] = { "*", "Accept-Encoding, *", " * ", "accept, *, cookie" };
    for (size_t i = 0; i < sizeof stars / sizeof *stars; i++) {
        struct cache_obj *o = obj_new(&k);
        struct http_msg resp;
        resp_init(&resp, stars[i], NULL);
        ck_assert_msg(!vary_build(o, &resp, &req), "Vary: %s", stars[i]);
        ck_assert_ptr_null(obj_vary(o));
        ck_assert_uint_eq(o->vary_len, 0);
        http_msg_free(&resp);
        obj_unref(o);
    }
    /* Vary over two field lines, one of them "*" */
    struct cache_obj *o = obj_new(&k);
    struct http_msg resp;
    resp_init(&resp, "Accept-Encoding", NULL);
    http_msg_add_str(&resp, "Vary", "*");
    ck_assert(!vary_build(o, &resp, &req));
    http_msg_free(&resp);
    /* and no Vary at all is fine */
    resp_init(&resp, NULL, NULL);
    ck_assert(vary_build(o, &resp, &req));
    ck_assert_uint_eq(o->vary_len, 0);
    http_msg_free(&resp);
    obj_unref(o);
    http_msg_free(&req);
}
END_TEST

START_TEST(reinsert_same_variant_replaces)
{
    struct cache_store *s = store_new(1 << 24, 1);
    struct cache_key k = key_of("/r");
    struct http_msg gz = req_with("Accept-Encoding", "gzip");
    struct http_msg gz2 = req_with("accept-encoding", " gzip ");
    struct http_msg br = req_with("Accept-Encoding", "br");

    struct cache_obj *a1 = make_obj_ex(&k, 100, 1, true, "Accept-Encoding", &gz, "a1");
    struct cache_obj *b = make_obj_ex(&k, 100, 2, true, "Accept-Encoding", &br, "b");
    store_insert(s, a1, 1);
    insert(s, b, 2);
    struct store_stats st = stats(s);
    ck_assert_uint_eq(st.objects, 2);
    uint64_t bytes = st.bytes;

    /* same variant (equal normalised value), new response */
    struct cache_obj *a2 = make_obj_ex(&k, 100, 3, true, "Accept-Encoding", &gz2, "a2");
    insert(s, a2, 3);
    ck_assert(!a1->linked);
    st = stats(s);
    ck_assert_uint_eq(st.objects, 2);
    ck_assert_uint_eq(st.bytes, bytes);
    ck_assert_uint_eq(st.evictions, 0);

    struct cache_obj *o;
    ck_assert_int_eq(lookup(s, &k, &gz, false, 4, &o), LOOKUP_FOUND);
    ck_assert_ptr_eq(o, a2);
    ck_assert(head_has(o, "X-Tag: a2\r\n"));
    obj_unref(o);
    ck_assert_int_eq(lookup(s, &k, &br, false, 5, &o), LOOKUP_FOUND);
    ck_assert_ptr_eq(o, b);
    obj_unref(o);
    /* the replaced object is intact for whoever still holds it */
    ck_assert(head_has(a1, "X-Tag: a1\r\n"));
    ck_assert_uint_eq(body_total(a1->body), 100);
    obj_unref(a1);

    /* no-Vary objects replace each other too */
    struct cache_key kp = key_of("/plain");
    struct cache_obj *p1 = make_obj_ex(&kp, 10, 1, true, NULL, NULL, "p1");
    store_insert(s, p1, 6);
    insert(s, make_obj_ex(&kp, 10, 1, true, NULL, NULL, "p2"), 7);
    ck_assert(!p1->linked);
    ck_assert_int_eq(lookup(s, &kp, NULL, false, 8, &o), LOOKUP_FOUND);
    ck_assert(head_has(o, "X-Tag: p2\r\n"));
    obj_unref(o);
    obj_unref(p1);
    ck_assert_uint_eq(stats(s).objects, 3);

    http_msg_free(&gz);
    http_msg_free(&gz2);
    http_msg_free(&br);
    store_free(s);
}
END_TEST

/*
 * Regression (fixed; src/cache_store.c, shard_grow): RFC 9111 §4.1: when several
 * stored responses match (e.g. one without Vary and a newer one with it), "the most recent response ... can be
 * used".  The store links new objects at the head of their bucket so a
 * lookup meets the newest first; shard_grow() rebuilds chains by pushing
 * at the head, which reverses them, and afterwards the older object wins.
 */
START_TEST(newest_matching_variant_after_growth)
{
    struct cache_store *s = store_new(UINT64_MAX / 2, 1);
    struct cache_key k = key_of("/both");
    struct http_msg gz = req_with("Accept-Encoding", "gzip");
    insert(s, make_obj_ex(&k, 10, 1, true, NULL, NULL, "old"), 1);
    insert(s, make_obj_ex(&k, 10, 2, true, "Accept-Encoding", &gz, "new"), 2);
    struct cache_obj *o;
    ck_assert_int_eq(lookup(s, &k, &gz, false, 3, &o), LOOKUP_FOUND);
    ck_assert(head_has(o, "X-Tag: new\r\n"));
    obj_unref(o);
    /* enough objects in the shard to grow its table */
    char path[32];
    for (int i = 0; i < 1100; i++) {
        snprintf(path, sizeof path, "/fill-%d", i);
        insert(s, make_obj(path, 1), 4);
    }
    ck_assert_int_eq(lookup(s, &k, &gz, false, 5, &o), LOOKUP_FOUND);
    ck_assert_msg(head_has(o, "X-Tag: new\r\n"), "the older response is chosen after a table grow");
    obj_unref(o);
    /* and all objects are still findable */
    for (int i = 0; i < 1100; i += 37) {
        snprintf(path, sizeof path, "/fill-%d", i);
        ck_assert(present(s, path, 6));
    }
    ck_assert_uint_eq(stats(s).objects, 1102);
    http_msg_free(&gz);
    store_free(s);
}
END_TEST

/* After a purge the index gives back buckets sized for the peak: a shard
 * under a quarter full shrinks to at most half full (never below 1024
 * buckets), and every object left is still found. */
START_TEST(index_shrinks_after_the_peak)
{
    struct cache_store *s = store_new(UINT64_MAX / 2, 1);
    char path[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(path, sizeof path, "/peak-%d", i);
        insert(s, make_obj(path, 1), 1);
    }
    /* 5000 objects grew the shard to 8192 buckets: more than a quarter full */
    ck_assert_uint_eq(store_shrink_index(s), 0);
    for (int i = 0; i < 5000; i++) {
        if (i % 10 == 0)
            continue;
        snprintf(path, sizeof path, "/peak-%d", i);
        struct cache_key k = key_of(path);
        ck_assert_uint_eq(store_remove_key(s, &k), 1);
    }
    ck_assert_uint_eq(stats(s).objects, 500);
    /* 500 left: 8192 -> 1024 buckets */
    ck_assert_uint_eq(store_shrink_index(s), (8192 - 1024) * sizeof(void *));
    ck_assert_uint_eq(store_shrink_index(s), 0);
    for (int i = 0; i < 5000; i++) {
        snprintf(path, sizeof path, "/peak-%d", i);
        ck_assert(present(s, path, 2) == (i % 10 == 0));
    }
    /* and it grows again as before */
    for (int i = 0; i < 3000; i++) {
        snprintf(path, sizeof path, "/again-%d", i);
        insert(s, make_obj(path, 1), 3);
    }
    for (int i = 0; i < 3000; i += 7) {
        snprintf(path, sizeof path, "/again-%d", i);
        ck_assert(present(s, path, 4));
    }
    ck_assert_uint_eq(store_shrink_index(s), 0);
    store_free(s);
}
END_TEST

/* --------------------------------------------------------- coalescing */

static int fired;
static void count_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    fired++;
}

START_TEST(busy_placeholder_coalesces)
{
    struct cache_store *s = store_new(1 << 24, 1);
    struct cache_key k = key_of("/c");
    struct http_msg req = req_with("Accept", "*/*");
    struct cache_obj *p, *o;

    ck_assert_int_eq(lookup(s, &k, &req, false, 1, &o), LOOKUP_MISS);
    ck_assert_ptr_null(o);
    ck_assert_int_eq(lookup(s, &k, &req, true, 1, &p), LOOKUP_CREATED);
    ck_assert_ptr_nonnull(p);
    ck_assert(!obj_ready(p));
    ck_assert(p->linked);
    ck_assert_str_eq(p->key, k.buf);
    ck_assert_int_eq(body_state(p->body), BODY_PENDING);
    struct store_stats st = stats(s);
    ck_assert_uint_eq(st.objects, 1);
    ck_assert_uint_eq(st.bytes, 0);     /* nothing charged until READY */

    /* later lookups find the placeholder, with or without create_busy */
    ck_assert_int_eq(lookup(s, &k, &req, true, 2, &o), LOOKUP_BUSY);
    ck_assert_ptr_eq(o, p);
    obj_unref(o);
    ck_assert_int_eq(lookup(s, &k, NULL, false, 2, &o), LOOKUP_BUSY);
    ck_assert_ptr_eq(o, p);

    /* a waiter on the placeholder's body is woken by the publish */
    struct event_base *base = event_base_new();
    struct body_waiter w = { 0 };
    w.ev = event_new(base, -1, 0, count_cb, NULL);
    fired = 0;
    ck_assert(body_wait(o->body, &w, 0, BODY_PENDING));
    ck_assert(w.queued);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(fired, 0);

    struct http_msg resp;
    resp_init(&resp, NULL, "published");
    obj_set_head(p, &resp, "OK", RESPONSE_TIME, NULL);
    http_msg_free(&resp);
    body_start(p->body, 3);
    store_publish(s, p, 3);
    ck_assert(obj_ready(p));
    event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(fired, 1);
    ck_assert_int_eq(body_state(o->body), BODY_STREAMING);
    body_unwait(o->body, &w);
    ck_assert(!w.queued);
    event_free(w.ev);
    event_base_free(base);
    obj_unref(o);

    struct cache_obj *f;
    ck_assert_int_eq(lookup(s, &k, &req, true, 4, &f), LOOKUP_FOUND);
    ck_assert_ptr_eq(f, p);
    ck_assert(head_has(f, "X-Tag: published\r\n"));
    obj_unref(f);
    st = stats(s);
    ck_assert_uint_eq(st.objects, 1);
    ck_assert_uint_gt(st.bytes, p->head_len);

    /* the body keeps streaming after the publish */
    body_append(p->body, "abc", 3);
    body_finish(p->body, BODY_COMPLETE);
    obj_unref(p);
    http_msg_free(&req);
    store_free(s);
}
END_TEST

START_TEST(removed_placeholder)
{
    struct cache_store *s = store_new(1 << 24, 1);
    struct cache_key k = key_of("/gone");
    struct cache_obj *p, *o;
    ck_assert_int_eq(lookup(s, &k, NULL, true, 1, &p), LOOKUP_CREATED);
    store_remove(s, p);
    ck_assert(!p->linked);
    ck_assert_uint_eq(stats(s).objects, 0);
    ck_assert_int_eq(lookup(s, &k, NULL, false, 2, &o), LOOKUP_MISS);
    ck_assert_ptr_null(o);
    /* removing again is a no-op */
    store_remove(s, p);
    ck_assert_uint_eq(stats(s).objects, 0);

    /* a new placeholder can be made; publishing the removed one serves its
     * holders but does not put it back */
    struct cache_obj *p2;
    ck_assert_int_eq(lookup(s, &k, NULL, true, 3, &p2), LOOKUP_CREATED);
    ck_assert_ptr_ne(p2, p);
    struct http_msg resp;
    resp_init(&resp, NULL, NULL);
    obj_set_head(p, &resp, "OK", RESPONSE_TIME, NULL);
    http_msg_free(&resp);
    body_start(p->body, 0);
    store_publish(s, p, 4);
    ck_assert(obj_ready(p));
    ck_assert(!p->linked);
    ck_assert_int_eq(lookup(s, &k, NULL, false, 5, &o), LOOKUP_BUSY);
    ck_assert_ptr_eq(o, p2);
    obj_unref(o);
    struct store_stats st = stats(s);
    ck_assert_uint_eq(st.objects, 1);
    ck_assert_uint_eq(st.bytes, 0);
    obj_unref(p);

    /* placeholder never published: removing it releases everything */
    store_remove(s, p2);
    obj_unref(p2);
    ck_assert_int_eq(lookup(s, &k, NULL, false, 6, &o), LOOKUP_MISS);
    st = stats(s);
    ck_assert_uint_eq(st.objects, 0);
    ck_assert_uint_eq(st.bytes, 0);
    store_free(s);
}
END_TEST

/* A placeholder's outcome: failed (a reason, no merged copy) or merged (a
 * reference to the refreshed copy, dropped with it).  The two share one
 * pointer (cache_obj.h), told apart by `failed`; ASan checks that neither
 * leaks nor frees what it must not. */
START_TEST(placeholder_outcomes)
{
    struct cache_key k = key_of("/outcome");
    struct cache_obj *failed = obj_new(&k);
    obj_ref(failed);                                /* a waiter's */
    obj_fail(failed, 504, "origin timed out");
    ck_assert(obj_failed(failed) && !obj_ready(failed));
    ck_assert_int_eq(body_state(failed->body), BODY_FAILED);
    ck_assert_int_eq(obj_fill(failed)->fail_status, 504);
    ck_assert_str_eq(obj_fill(failed)->fail_reason, "origin timed out");
    obj_unref(failed);
    obj_unref(failed);                              /* does not take the reason for an object */

    struct cache_obj *copy = obj_new(&k), *ph = obj_new(&k);
    obj_fill(ph)->merged = copy;                    /* takes obj_new's reference */
    obj_publish(ph);
    ck_assert(obj_ready(ph) && !obj_failed(ph));
    obj_ref(copy);
    ck_assert_uint_eq(atomic_load(&copy->refcnt), 2);
    obj_unref(ph);                                  /* drops its reference to copy */
    ck_assert_uint_eq(atomic_load(&copy->refcnt), 1);
    ck_assert_uint_eq(copy->magic, OBJ_MAGIC);
    obj_unref(copy);
}
END_TEST

START_TEST(placeholder_and_ready_variant)
{
    /* A READY variant that does not match plus a placeholder: BUSY. */
    struct cache_store *s = store_new(1 << 24, 1);
    struct cache_key k = key_of("/pv");
    struct http_msg gz = req_with("Accept-Encoding", "gzip");
    struct http_msg br = req_with("Accept-Encoding", "br");
    insert(s, make_obj_ex(&k, 10, 1, true, "Accept-Encoding", &gz, NULL), 1);
    struct cache_obj *p, *o;
    ck_assert_int_eq(lookup(s, &k, &br, true, 2, &p), LOOKUP_CREATED);
    ck_assert_int_eq(lookup(s, &k, &br, true, 3, &o), LOOKUP_BUSY);
    ck_assert_ptr_eq(o, p);
    obj_unref(o);
    ck_assert_int_eq(lookup(s, &k, &gz, true, 4, &o), LOOKUP_FOUND);
    ck_assert(obj_ready(o));
    obj_unref(o);

    /* publishing the br variant keeps the gzip one */
    struct http_msg resp;
    resp_init(&resp, "Accept-Encoding", "br");
    obj_set_head(p, &resp, "OK", RESPONSE_TIME, NULL);
    ck_assert(vary_build(p, &resp, &br));
    http_msg_free(&resp);
    body_start(p->body, 0);
    body_finish(p->body, BODY_COMPLETE);
    store_publish(s, p, 5);
    ck_assert_int_eq(lookup(s, &k, &br, false, 6, &o), LOOKUP_FOUND);
    ck_assert_ptr_eq(o, p);
    obj_unref(o);
    ck_assert_int_eq(lookup(s, &k, &gz, false, 7, &o), LOOKUP_FOUND);
    ck_assert_ptr_ne(o, p);
    obj_unref(o);
    ck_assert_uint_eq(stats(s).objects, 2);
    obj_unref(p);
    http_msg_free(&gz);
    http_msg_free(&br);
    store_free(s);
}
END_TEST

/* ------------------------------------------------------------ removal */

START_TEST(remove_key_removes_all_variants)
{
    struct cache_store *s = store_new(1 << 24, 4);
    struct cache_key k = key_of("/multi"), other = key_of("/other");
    static const char *const enc[] = { "gzip", "br", "identity", "zstd" };
    insert(s, make_obj_ex(&other, 50, 9, true, NULL, NULL, NULL), 1);
    uint64_t other_bytes = stats(s).bytes;
    for (int i = 0; i < 4; i++) {
        struct http_msg r = req_with("Accept-Encoding", enc[i]);
        insert(s, make_obj_ex(&k, 50, (unsigned)i, true, "Accept-Encoding", &r, enc[i]), 1);
        http_msg_free(&r);
    }
    insert(s, make_obj_ex(&k, 50, 9, true, NULL, NULL, "plain"), 1);
    struct store_stats st = stats(s);
    ck_assert_uint_eq(st.objects, 6);

    ck_assert_uint_eq(store_remove_key(s, &k), 5);
    st = stats(s);
    ck_assert_uint_eq(st.objects, 1);
    ck_assert_uint_eq(st.bytes, other_bytes);
    ck_assert_uint_eq(st.evictions, 0);
    struct cache_obj *o;
    for (int i = 0; i < 4; i++) {
        struct http_msg r = req_with("Accept-Encoding", enc[i]);
        ck_assert_int_eq(lookup(s, &k, &r, false, 2, &o), LOOKUP_MISS);
        http_msg_free(&r);
    }
    ck_assert_int_eq(lookup(s, &k, NULL, false, 2, &o), LOOKUP_MISS);
    ck_assert_int_eq(lookup(s, &other, NULL, false, 2, &o), LOOKUP_FOUND);
    obj_unref(o);
    ck_assert_uint_eq(store_remove_key(s, &k), 0);
    ck_assert_uint_eq(store_remove_key(s, &other), 1);
    st = stats(s);
    ck_assert_uint_eq(st.objects, 0);
    ck_assert_uint_eq(st.bytes, 0);
    store_free(s);
}
END_TEST

START_TEST(remove_keeps_holders_valid)
{
    struct cache_store *s = store_new(1 << 24, 1);
    insert(s, make_obj("/held", 300), 1);
    struct cache_key k = key_of("/held");
    struct cache_obj *o;
    ck_assert_int_eq(lookup(s, &k, NULL, false, 2, &o), LOOKUP_FOUND);
    ck_assert_uint_eq(atomic_load(&o->refcnt), 2);      /* index + us */
    store_remove(s, o);
    ck_assert(!o->linked);
    ck_assert_uint_eq(atomic_load(&o->refcnt), 1);
    struct cache_obj *again;
    ck_assert_int_eq(lookup(s, &k, NULL, false, 3, &again), LOOKUP_MISS);
    ck_assert_ptr_null(again);
    ck_assert_uint_eq(body_total(o->body), 300);
    ck_assert_int_eq(o->magic, OBJ_MAGIC);
    obj_unref(o);
    store_free(s);
}
END_TEST

/* --------------------------------------------------------------- body */

START_TEST(body_append_accounting)
{
    struct cache_body *b = body_new();
    ck_assert_int_eq(body_state(b), BODY_PENDING);
    ck_assert_uint_eq(b->expected, UINT64_MAX);
    body_start(b, 1000);
    ck_assert_int_eq(body_state(b), BODY_STREAMING);
    ck_assert_uint_eq(b->expected, 1000);
    ck_assert_uint_eq(b->allocated, 1000);     /* sized for the known length */
    char data[3000];
    fill(data, sizeof data, 5);
    ck_assert_uint_eq(body_append(b, data, 600), 0);
    ck_assert_uint_eq(body_append(b, data + 600, 400), 0);
    ck_assert_uint_eq(body_total(b), 1000);
    size_t before = b->allocated;
    size_t grown = body_append(b, data + 1000, 2000);  /* longer than announced */
    ck_assert_uint_gt(grown, 0);
    ck_assert_uint_eq(b->allocated, before + grown);
    ck_assert_uint_eq(body_total(b), 3000);
    body_finish(b, BODY_COMPLETE);

    struct evbuffer *out = evbuffer_new();
    struct body_cursor cur = { 0 };
    ck_assert_uint_eq(body_read_into(b, &cur, out, 700), 700);
    ck_assert_uint_eq(cur.pos, 700);
    /* across the chunk boundary */
    ck_assert_uint_eq(body_read_into(b, &cur, out, 700), 700);
    ck_assert_uint_eq(cur.pos, 1400);
    ck_assert_uint_eq(body_read_into(b, &cur, out, SIZE_MAX), 1600);
    ck_assert_uint_eq(cur.pos, 3000);
    char back[3000];
    ck_assert_int_eq(evbuffer_copyout(out, back, sizeof back), 3000);
    ck_assert_int_eq(memcmp(back, data, sizeof back), 0);
    evbuffer_free(out);
    body_unref(b);
}
END_TEST

START_TEST(body_read_into_limits)
{
    struct cache_body *b = body_new();
    body_start(b, UINT64_MAX);
    enum { N = 100000 };
    char *data = malloc(N);
    fill(data, N, 77);
    size_t grown = 0;
    for (size_t off = 0; off < N; off += 999)
        grown += body_append(b, data + off, off + 999 <= N ? 999 : N - off);
    ck_assert_uint_eq(grown, b->allocated);
    ck_assert_uint_ge(b->allocated, N);
    body_finish(b, BODY_COMPLETE);

    /* Reads of every size reassemble the body exactly. */
    static const size_t sizes[] = { 1, 7, 4096, 16384, 16385, 65536, SIZE_MAX };
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        struct evbuffer *out = evbuffer_new();
        struct body_cursor cur = { 0 };
        size_t total = 0, n;
        /* small reads across the first chunk boundaries, then the rest */
        while (total < 40000 && (n = body_read_into(b, &cur, out, sizes[si])) > 0) {
            ck_assert_uint_le(n, sizes[si]);
            total += n;
            ck_assert_uint_eq(cur.pos, total);
        }
        total += body_read_into(b, &cur, out, SIZE_MAX);
        ck_assert_uint_eq(cur.pos, total);
        ck_assert_uint_eq(total, N);
        ck_assert_uint_eq(evbuffer_get_length(out), N);
        ck_assert_int_eq(memcmp(evbuffer_pullup(out, -1), data, N), 0);
        /* nothing more, and max 0 reads nothing */
        ck_assert_uint_eq(body_read_into(b, &cur, out, SIZE_MAX), 0);
        evbuffer_free(out);
    }
    struct evbuffer *out = evbuffer_new();
    struct body_cursor cur = { 0 };
    ck_assert_uint_eq(body_read_into(b, &cur, out, 0), 0);
    ck_assert_uint_eq(cur.pos, 0);
    evbuffer_free(out);
    free(data);
    ck_assert_uint_eq(atomic_load(&b->refcnt), 1);      /* all references returned */
    body_unref(b);
}
END_TEST

START_TEST(body_wait_semantics)
{
    struct event_base *base = event_base_new();
    struct body_waiter w = { 0 };
    w.ev = event_new(base, -1, 0, count_cb, NULL);
    fired = 0;
    struct cache_body *b = body_new();
    body_start(b, UINT64_MAX);

    /* nothing new: registers */
    ck_assert(body_wait(b, &w, 0, BODY_STREAMING));
    ck_assert(w.queued);
    ck_assert_ptr_eq(b->waiters, &w);
    /* registering twice does not queue twice */
    ck_assert(body_wait(b, &w, 0, BODY_STREAMING));
    ck_assert_ptr_null(w.next);
    body_append(b, "hello", 5);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(fired, 1);

    /* bytes past pos: do not sleep */
    ck_assert(!body_wait(b, &w, 3, BODY_STREAMING));
    /* state changed from what the reader saw: do not sleep */
    ck_assert(!body_wait(b, &w, 5, BODY_PENDING));
    ck_assert(body_wait(b, &w, 5, BODY_STREAMING));
    body_finish(b, BODY_FAILED);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(fired, 2);
    ck_assert(!body_wait(b, &w, 5, BODY_STREAMING));

    body_unwait(b, &w);
    ck_assert(!w.queued);
    ck_assert_ptr_null(b->waiters);
    body_unwait(b, &w);         /* idempotent */
    /* no longer woken */
    body_wake(b);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(fired, 2);

    body_unref(b);
    event_free(w.ev);
    event_base_free(base);
}
END_TEST

START_TEST(body_outlives_store_while_referenced)
{
    enum { N = 200000 };
    char *data = malloc(N);
    fill(data, N, 31);
    struct cache_store *s = store_new(1 << 24, 1);
    struct cache_key k = key_of("/ref");
    struct cache_obj *o = obj_new(&k);
    struct http_msg resp;
    resp_init(&resp, NULL, NULL);
    obj_set_head(o, &resp, "OK", RESPONSE_TIME, NULL);
    http_msg_free(&resp);
    body_start(o->body, UINT64_MAX);        /* several chunks */
    for (size_t off = 0; off < N; off += 10000)
        body_append(o->body, data + off, 10000);
    body_finish(o->body, BODY_COMPLETE);
    insert(s, o, 1);

    struct cache_obj *hit;
    ck_assert_int_eq(lookup(s, &k, NULL, false, 2, &hit), LOOKUP_FOUND);
    struct cache_body *b = hit->body;
    ck_assert_uint_eq(atomic_load(&b->refcnt), 1);
    struct evbuffer *out = evbuffer_new();
    struct body_cursor cur = { 0 };
    ck_assert_uint_eq(body_read_into(b, &cur, out, SIZE_MAX), N);
    unsigned chunks = 0;
    for (struct body_chunk *c = b->head; c; c = c->next)
        chunks++;
    ck_assert_uint_gt(chunks, 1);
    /* one body reference per chunk handed to the evbuffer */
    ck_assert_uint_eq(atomic_load(&b->refcnt), 1 + chunks);

    /* the store and the object go away */
    obj_unref(hit);
    store_free(s);
    ck_assert_uint_eq(atomic_load(&b->refcnt), chunks);
    ck_assert_uint_eq(b->magic, BODY_MAGIC);
    ck_assert_uint_eq(evbuffer_get_length(out), N);
    char *copy = malloc(N);
    ck_assert_int_eq(evbuffer_copyout(out, copy, N), N);    /* reads through the references */
    ck_assert_int_eq(memcmp(copy, data, N), 0);
    free(copy);
    ck_assert_uint_eq(atomic_load(&b->refcnt), chunks);
    evbuffer_free(out);         /* last references: the body is freed (ASan/LSan check) */
    free(data);
}
END_TEST

START_TEST(body_references_released_piecewise)
{
    enum { N = 100000 };
    char *data = malloc(N);
    fill(data, N, 32);
    struct cache_body *b = body_new();
    body_start(b, UINT64_MAX);
    body_append(b, data, N);
    body_finish(b, BODY_COMPLETE);
    struct evbuffer *out = evbuffer_new();
    struct body_cursor cur = { 0 };
    ck_assert_uint_eq(body_read_into(b, &cur, out, SIZE_MAX), N);
    unsigned refs = atomic_load(&b->refcnt) - 1;
    ck_assert_uint_gt(refs, 1);
    body_unref(b);          /* the writer's reference */
    ck_assert_uint_eq(atomic_load(&b->refcnt), refs);
    /* drain the first chunk's bytes: its reference goes */
    size_t first = atomic_load(&b->head->len);
    char tmp[64];
    ck_assert_int_eq(evbuffer_remove(out, tmp, sizeof tmp), (int)sizeof tmp);
    ck_assert_int_eq(memcmp(tmp, data, sizeof tmp), 0);
    ck_assert_uint_eq(atomic_load(&b->refcnt), refs);
    evbuffer_drain(out, first - sizeof tmp);
    ck_assert_uint_eq(atomic_load(&b->refcnt), refs - 1);
    /* the rest is still the right bytes */
    ck_assert_uint_eq(evbuffer_get_length(out), N - first);
    ck_assert_int_eq(memcmp(evbuffer_pullup(out, -1), data + first, N - first), 0);
    evbuffer_free(out);
    free(data);
}
END_TEST

/* ---------------------------------------------- concurrent streaming */

enum { READERS = 8 };

struct shared {
    struct cache_body *b;
    const char *data;
    size_t written;             /* what the writer appended in all */
    pthread_barrier_t start;
    unsigned seed;
    enum body_state final;
};

struct reader {
    pthread_t th;
    struct shared *sh;
    unsigned seed;
    struct evbuffer *out;
    enum body_state final;
    unsigned waits, wakeups;
    bool stalled;
};

static void reader_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ((struct reader *)arg)->wakeups++;
}

static void reader_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ((struct reader *)arg)->stalled = true;
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    struct cache_body *b = r->sh->b;
    struct event_base *base = event_base_new();
    AN(base);
    struct body_waiter w = { 0 };
    w.ev = event_new(base, -1, 0, reader_wake, r);
    /* A pending timer keeps EVLOOP_ONCE blocking until the waiter's event
     * is activated, and catches a lost wake-up. */
    struct event *dog = event_new(base, -1, 0, reader_watchdog, r);
    struct timeval tv = { 15, 0 };
    event_add(dog, &tv);
    struct body_cursor cur = { 0 };
    pthread_barrier_wait(&r->sh->start);
    for (;;) {
        enum body_state st = body_state(b);
        size_t max = 1 + (size_t)(rand_r(&r->seed) % 200000);
        body_read_into(b, &cur, r->out, max);
        if (st == BODY_COMPLETE || st == BODY_FAILED || st == BODY_ABANDONED) {
            /* the state was read before the bytes: all of them are in */
            if (cur.pos == body_total(b)) {
                r->final = st;
                break;
            }
            continue;
        }
        if (cur.pos < body_total(b))
            continue;
        if (body_wait(b, &w, cur.pos, st)) {
            r->waits++;
            event_base_loop(base, EVLOOP_ONCE);
            if (r->stalled)
                break;
        }
    }
    body_unwait(b, &w);
    event_free(w.ev);
    event_free(dog);
    event_base_free(base);
    return NULL;
}

/* _i: 0 unknown length, complete; 1 known length, complete;
 *     2 unknown length, fails midway; 3 known length, fails midway. */
START_TEST(concurrent_readers)
{
    const size_t N = 6u * 1024 * 1024 + 4321;
    bool known = _i & 1, fail = _i >= 2;
    char *data = malloc(N);
    ck_assert_ptr_nonnull(data);
    fill(data, N, 1000 + (unsigned)_i);

    struct shared sh = { 0 };
    sh.b = body_new();
    sh.data = data;
    ck_assert_int_eq(pthread_barrier_init(&sh.start, NULL, READERS + 1), 0);
    struct reader rd[READERS];
    memset(rd, 0, sizeof rd);
    for (int i = 0; i < READERS; i++) {
        rd[i].sh = &sh;
        rd[i].seed = 17u * (unsigned)i + (unsigned)_i;
        rd[i].out = evbuffer_new();
        ck_assert_int_eq(pthread_create(&rd[i].th, NULL, reader_main, &rd[i]), 0);
    }

    /* The writer: random-sized pieces, now and then a pause. */
    body_start(sh.b, known ? N : UINT64_MAX);
    pthread_barrier_wait(&sh.start);
    unsigned seed = 99 + (unsigned)_i;
    size_t stop = fail ? N / 2 + 777 : N;
    size_t off = 0;
    bool paused = false;
    while (off < stop) {
        if (!paused && off >= stop / 2) {
            /* Once, hold back until every reader has caught up and gone
             * to sleep on the body, so each one is woken at least once. */
            paused = true;
            for (int spins = 0;; spins++) {
                unsigned queued = body_waiters(sh.b);
                if (queued == READERS)
                    break;
                ck_assert_msg(spins < 20000, "only %u readers waiting", queued);
                usleep(500);
            }
        }
        size_t n = 1 + (size_t)(rand_r(&seed) % 90000);
        if (n > stop - off)
            n = stop - off;
        body_append(sh.b, data + off, n);
        off += n;
        unsigned r = rand_r(&seed) % 16;
        if (r == 0)
            usleep(200);
        else if (r < 4)
            sched_yield();
    }
    body_finish(sh.b, fail ? BODY_FAILED : BODY_COMPLETE);

    for (int i = 0; i < READERS; i++)
        ck_assert_int_eq(pthread_join(rd[i].th, NULL), 0);
    pthread_barrier_destroy(&sh.start);

    ck_assert_uint_eq(body_total(sh.b), stop);
    ck_assert_ptr_null(sh.b->waiters);
    for (int i = 0; i < READERS; i++) {
        ck_assert_msg(!rd[i].stalled, "reader %d stalled (lost wake-up?)", i);
        ck_assert_uint_ge(rd[i].waits, 1);
        ck_assert_uint_ge(rd[i].wakeups, 1);
        ck_assert_int_eq(rd[i].final, fail ? BODY_FAILED : BODY_COMPLETE);
        ck_assert_uint_eq(evbuffer_get_length(rd[i].out), stop);
        ck_assert_msg(memcmp(evbuffer_pullup(rd[i].out, -1), data, stop) == 0,
                      "reader %d: bytes differ", i);
        evbuffer_free(rd[i].out);
    }
    ck_assert_uint_eq(atomic_load(&sh.b->refcnt), 1);
    body_unref(sh.b);
    free(data);
}
END_TEST

/* Many threads inserting and looking up in a sharded store. */
struct store_worker {
    pthread_t th;
    struct cache_store *s;
    int id;
    unsigned found;
};

static void *store_worker_main(void *arg)
{
    struct store_worker *w = arg;
    char path[48];
    unsigned seed = (unsigned)w->id * 7919u;
    for (int i = 0; i < 1500; i++) {
        snprintf(path, sizeof path, "/w%d-%05d", w->id, i);
        struct cache_key k = key_of(path);
        insert(w->s, make_obj_ex(&k, 500, (unsigned)i, true, NULL, NULL, NULL),
               (uint64_t)i);
        int j = (int)(rand_r(&seed) % (unsigned)(i + 1));
        snprintf(path, sizeof path, "/w%d-%05d", (w->id + j) % 4, j);
        k = key_of(path);
        struct cache_obj *o;
        enum lookup_result r = store_lookup(w->s, &k, NULL, false, (uint64_t)i, NULL, false, &o);
        if (r == LOOKUP_FOUND) {
            if (o->key_len != k.len || memcmp(o->key, k.buf, k.len) != 0 ||
                body_total(o->body) != 500)
                abort();
            w->found++;
            obj_unref(o);
        } else if (r != LOOKUP_MISS) {
            abort();
        }
    }
    return NULL;
}

START_TEST(concurrent_store)
{
    struct cache_key k0 = key_of("/w0-00000");
    struct cache_obj *probe = make_obj_ex(&k0, 500, 0, true, NULL, NULL, NULL);
    struct cache_store *ps = store_new(UINT64_MAX / 2, 1);
    insert(ps, probe, 0);
    uint64_t F = stats(ps).bytes;
    store_free(ps);

    struct cache_store *s = store_new(200 * F, 16);
    struct store_worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct store_worker){ .s = s, .id = i };
        ck_assert_int_eq(pthread_create(&w[i].th, NULL, store_worker_main, &w[i]), 0);
    }
    unsigned found = 0;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(w[i].th, NULL), 0);
        found += w[i].found;
    }
    struct store_stats st = stats(s);
    ck_assert_uint_le(st.bytes, st.max_bytes);
    ck_assert_uint_eq(st.bytes, st.objects * F);
    ck_assert_uint_eq(st.objects + st.evictions, 4 * 1500);
    ck_assert_uint_eq(st.objects, 200);     /* at the bound: eviction is not overeager */
    ck_assert_uint_gt(found, 0);
    store_free(s);
}
END_TEST

/* Hits on one popular key share the shard's read lock while another
 * thread replaces, removes and re-inserts that key and moves it in the LRU
 * order: every hit returns a whole object of that key, and no reference is
 * lost or left over (ASan and the final counts check). */
struct hot_reader {
    pthread_t th;
    struct cache_store *s;
    _Atomic bool *stop;
    unsigned hits;
};

static void *hot_reader_main(void *arg)
{
    struct hot_reader *r = arg;
    struct cache_key k = key_of("/hot");
    uint64_t now = 1;
    while (!atomic_load(r->stop)) {
        struct cache_obj *o;
        /* Mostly within the interval (the shared path), sometimes past it
         * (the write path moves the object up). */
        now += (r->hits % 64 == 0) ? STORE_LRU_BUMP_MS : 1;
        enum lookup_result lr = store_lookup(r->s, &k, NULL, false, now, NULL, false, &o);
        if (lr == LOOKUP_FOUND) {
            if (o->key_len != k.len || memcmp(o->key, k.buf, k.len) != 0 ||
                body_total(o->body) != 700 || !obj_ready(o))
                abort();
            r->hits++;
            obj_unref(o);
        } else if (lr != LOOKUP_MISS) {
            abort();
        }
    }
    return NULL;
}

START_TEST(concurrent_hits_on_one_key)
{
    struct cache_store *s = store_new(UINT64_MAX / 2, 4);
    _Atomic bool stop = false;
    struct hot_reader rd[3];
    insert(s, make_obj("/hot", 700), 1);
    for (int i = 0; i < 3; i++) {
        rd[i] = (struct hot_reader){ .s = s, .stop = &stop };
        ck_assert_int_eq(pthread_create(&rd[i].th, NULL, hot_reader_main, &rd[i]), 0);
    }
    struct cache_key k = key_of("/hot");
    for (int i = 0; i < 3000; i++) {
        if (i % 3 == 2)
            ck_assert_uint_le(store_remove_key(s, &k), 1);
        else
            insert(s, make_obj("/hot", 700), (uint64_t)i * STORE_LRU_BUMP_MS);
    }
    insert(s, make_obj("/hot", 700), 1);
    atomic_store(&stop, true);
    unsigned hits = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(pthread_join(rd[i].th, NULL), 0);
        hits += rd[i].hits;
    }
    ck_assert_uint_gt(hits, 0);
    struct store_stats st = stats(s);
    ck_assert_uint_eq(st.objects, 1);
    struct cache_obj *o;
    ck_assert_int_eq(store_lookup(s, &k, NULL, false, 2, NULL, false, &o), LOOKUP_FOUND);
    /* the index's reference and ours: nothing leaked by the readers */
    ck_assert_uint_eq(atomic_load(&o->refcnt), 2);
    obj_unref(o);
    store_free(s);
}
END_TEST

/* ---- sweep -------------------------------------------------------------- */

static struct generations *open_gens(void)
{
    struct generation_backend be;
    char err[512] = "";
    ck_assert_msg(generation_file_backend(tmp_dir, &be, err, sizeof err) == 0, "%s", err);
    struct generations *g = generations_open(&be, NULL, 0, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    return g;
}

static struct cache_obj *make_obj_gen(const char *path, uint64_t generation)
{
    struct cache_obj *o = make_obj(path, 16);
    o->generation = generation;
    return o;
}

/* The sweep removes every object of an older generation after a bump,
 * leaves current ones alone, and, between bumps, still finds a straggler
 * (an object whose fetch began before the bump and was stored after the
 * sweep had gone by), however little it examines per call then. */
START_TEST(sweep_reclaims_old_generations_and_stragglers)
{
    struct generations *g = open_gens();
    struct cache_store *s = store_new(1u << 30, 8);
    uint64_t g0 = generation_global(g);
    char path[64];
    for (int i = 0; i < 300; i++) {
        snprintf(path, sizeof path, "/o/%d", i);
        insert(s, make_obj_gen(path, g0), 1);
    }
    ck_assert_uint_eq(store_sweep(s, g, SIZE_MAX), 0);
    ck_assert_uint_eq(stats(s).objects, 300);

    uint64_t now, prev;
    char err[256];
    ck_assert_int_eq(generation_bump(g, NULL, &now, &prev, err, sizeof err), 0);
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "/new/%d", i);
        insert(s, make_obj_gen(path, now), 2);
    }
    size_t removed = 0;
    for (int call = 0; call < 4 && removed < 300; call++)
        removed += store_sweep(s, g, SIZE_MAX);
    ck_assert_uint_eq(removed, 300);
    ck_assert_uint_eq(stats(s).objects, 5);

    /* A whole pass under this generation has run: from now on the sweep
     * trickles.  The straggler still goes within a bounded number of
     * calls (8 shards of 1024 buckets, at least 2048 examined a call). */
    ck_assert_uint_eq(store_sweep(s, g, SIZE_MAX), 0);
    insert(s, make_obj_gen("/straggler", g0), 3);
    ck_assert_uint_eq(stats(s).objects, 6);
    removed = 0;
    for (int call = 0; call < 10 && removed == 0; call++)
        removed = store_sweep(s, g, SIZE_MAX);
    ck_assert_uint_eq(removed, 1);
    ck_assert_uint_eq(stats(s).objects, 5);
    store_free(s);
    generations_close(g);
}
END_TEST

/* ------------------------------------------------- keep_after_deploy */

static bool is_kept(const struct cache_obj *o, const void *arg)
{
    return obj_kept(o, *(const time_t *)arg);
}

/* A copy of a bumped generation within its keep window is neither served
 * by lookups nor freed by the sweep; one past its window is; the kept
 * copy goes first under memory pressure however recently it was used. */
START_TEST(kept_copies_outlive_sweep_and_go_first)
{
    static const char *const names[] = { "assets" };
    struct generation_backend be;
    char err[256];
    ck_assert_int_eq(generation_file_backend(tmp_dir, &be, err, sizeof err), 0);
    struct generations *g = generations_open(&be, names, 1, err, sizeof err);
    ck_assert_ptr_nonnull(g);
    time_t now = time(NULL);
    uint64_t F = standard_footprint();
    struct cache_store *s = store_new(4 * F + F / 2, 1);

    for (int i = 0; i < 2; i++) {                   /* D, E: no policy */
        struct cache_obj *d = make_obj(objpath(i), 1000);
        d->generation = 1;
        insert(s, d, 1 + (uint64_t)i);
    }
    struct cache_obj *a = make_obj(objpath(2), 1000);
    struct cache_obj *c = make_obj(objpath(3), 1000);
    struct cache_obj *both[] = { a, c };
    for (int i = 0; i < 2; i++) {
        both[i]->generation = 1;
        both[i]->policy = 0;
        both[i]->policy_gen = 1;
        both[i]->policy_layout = generation_layout(g);
    }
    a->keep_until = now + 3600;
    c->keep_until = now - 10;                       /* its window is over */
    insert(s, a, 3);
    insert(s, c, 4);
    ck_assert(present(s, objpath(2), 100));         /* A: the most recently used */

    uint64_t gnow, gprev;
    ck_assert_int_eq(generation_bump(g, "assets", &gnow, &gprev, err, sizeof err), 0);
    ck_assert_uint_eq(store_sweep(s, g, SIZE_MAX), 1);   /* C goes, A stays */
    ck_assert_uint_eq(stats(s).objects, 3);

    /* Not served: a refetch-mode lookup leaves it linked and misses. */
    struct cache_key ka = key_of(objpath(2));
    struct cache_obj *o = NULL;
    ck_assert_int_eq(store_lookup(s, &ka, NULL, false, 101, g, true, &o), LOOKUP_MISS);
    ck_assert_ptr_null(o);
    ck_assert_uint_eq(stats(s).objects, 3);
    /* Found for the fallback, whatever its generation. */
    o = store_find_key(s, &ka, is_kept, &now);
    ck_assert_ptr_eq(o, a);
    obj_unref(o);
    time_t later = now + 7200;
    ck_assert_ptr_null(store_find_key(s, &ka, is_kept, &later));

    /* Memory pressure: A is evicted before D, used long before it. */
    for (int i = 4; i < 6; i++) {
        struct cache_obj *n = make_obj(objpath(i), 1000);
        n->generation = 1;
        insert(s, n, 98 + (uint64_t)i);
    }
    ck_assert_uint_eq(stats(s).evictions, 1);
    ck_assert_ptr_null(store_find_key(s, &ka, is_kept, &now));
    for (int i = 0; i < 6; i++)
        if (i != 2 && i != 3)
            ck_assert_msg(present(s, objpath(i), 200 + (uint64_t)i), "%s", objpath(i));
    store_free(s);
    generations_close(g);
}
END_TEST


/* ------------------------------------------------------------ sealing */

/* The bytes an object's body reads as, whichever way it is held. */
static void assert_body_reads(struct cache_obj *o, unsigned seed, size_t len)
{
    ck_assert_int_eq(obj_body_state(o), BODY_COMPLETE);
    ck_assert_uint_eq(obj_body_total(o), len);
    char *want = malloc(len + 1), *got = malloc(len + 1);
    fill(want, len, seed);
    struct evbuffer *out = evbuffer_new();
    struct body_cursor cur = { 0 };
    /* in two reads, to check the cursor */
    size_t first = obj_body_read(o, &cur, out, len / 3);
    ck_assert_uint_eq(first, len / 3);
    ck_assert_uint_eq(obj_body_read(o, &cur, out, SIZE_MAX), len - first);
    ck_assert_uint_eq(obj_body_read(o, &cur, out, SIZE_MAX), 0);
    ck_assert_int_eq(evbuffer_remove(out, got, len), (int)len);
    ck_assert_int_eq(memcmp(got, want, len), 0);
    evbuffer_free(out);
    free(want);
    free(got);
}

START_TEST(seal_replaces_a_complete_object_in_place)
{
    struct cache_store *s = store_new(UINT64_MAX / 2, 1);
    struct http_msg req = req_with("Accept", "text/plain");
    struct cache_key k = key_of("/seal");
    /* a tagged, Vary'd object and an older neighbour in the LRU order */
    insert(s, make_obj("/older", 10), 1);
    struct cache_obj *o = make_obj_ex(&k, 3000, 5, true, "Accept", &req, "t1");
    store_insert(s, o, 2);
    insert(s, make_obj("/newer", 10), 3);
    uint64_t bytes_before = stats(s).bytes;
    uint64_t seq = o->seq;

    ck_assert(store_seal(s, o));
    ck_assert(!o->linked);
    ck_assert(o->sealed_away);
    ck_assert_uint_eq(stats(s).objects, 3);
    /* one block: object, key, Vary, head, body, and no body struct */
    struct cache_obj *n;
    ck_assert_int_eq(lookup(s, &k, &req, false, 4, &n), LOOKUP_FOUND);
    ck_assert_ptr_ne(n, o);
    ck_assert(n->sealed && n->inline_body && n->linked);
    ck_assert_ptr_eq(obj_body_owner(n), n);
    ck_assert_uint_eq(n->sealed_len, 3000);
    ck_assert_uint_eq(n->seq, seq);
    ck_assert_str_eq(n->key, k.buf);
    ck_assert(vary_match(n, &req));
    ck_assert(head_has(n, "X-Tag: t1"));
    ck_assert_uint_eq(n->head_len, o->head_len);
    ck_assert_int_eq(memcmp(obj_head(n), obj_head(o), n->head_len), 0);
    /* head and Vary inside the block, in that order after the key */
    ck_assert_ptr_eq(obj_vary(n), n->key + n->key_len + 1);
    ck_assert_ptr_eq(obj_head(n), obj_vary(n) + n->vary_len);
    ck_assert_int_eq(memcmp(obj_vary(n), obj_vary(o), n->vary_len), 0);
    ck_assert_ptr_null(obj_merged(n));
    ck_assert(!obj_failed(n) && !obj_was_kept(n));
    ck_assert_uint_eq(obj_body_expected(n), 3000);
    assert_body_reads(n, 5, 3000);
    /* the copy is charged smaller: no body struct, no chunk */
    ck_assert_uint_lt(stats(s).bytes, bytes_before);
    /* the holder of the old object still reads it */
    assert_body_reads(o, 5, 3000);
    obj_unref(o);
    obj_unref(n);
    store_free(s);
    http_msg_free(&req);
}
END_TEST

START_TEST(seal_keeps_lru_position)
{
    uint64_t fp = standard_footprint();
    struct cache_store *s = store_new(3 * fp, 1);
    struct cache_key k0 = key_of(objpath(0));
    struct cache_obj *o0 = make_obj_ex(&k0, 1000, 1000, true, NULL, NULL, NULL);
    store_insert(s, o0, 1);
    insert(s, make_obj(objpath(1), 1000), 2);
    ck_assert(store_seal(s, o0));       /* still the least recently used */
    obj_unref(o0);
    insert(s, make_obj(objpath(2), 1000), 3);
    insert(s, make_obj(objpath(3), 1000), 4);
    insert(s, make_obj(objpath(4), 1000), 5);
    ck_assert(!present(s, objpath(0), 6));
    ck_assert(present(s, objpath(4), 6));
    store_free(s);
}
END_TEST

START_TEST(seal_refuses_what_does_not_qualify)
{
    struct cache_store *s = store_new(UINT64_MAX / 2, 1);
    /* still streaming: a reader may be waiting for more */
    struct cache_key k = key_of("/streaming");
    struct cache_obj *o = obj_new(&k);
    struct http_msg resp;
    resp_init(&resp, NULL, NULL);
    obj_set_head(o, &resp, "OK", RESPONSE_TIME, NULL);
    body_start(o->body, 10);
    body_append(o->body, "01234", 5);
    store_insert(s, o, 1);
    ck_assert(!store_seal(s, o));
    ck_assert(o->linked && !o->sealed_away);
    /* failed (truncated): never stored complete, never sealed */
    body_finish(o->body, BODY_FAILED);
    ck_assert(!store_seal(s, o));
    store_remove(s, o);
    obj_unref(o);
    /* larger than OBJ_SEAL_MAX: stays chunked */
    struct cache_obj *big = make_obj("/big", OBJ_SEAL_MAX + 1);
    store_insert(s, big, 2);
    ck_assert(!store_seal(s, big));
    ck_assert(big->linked && !big->inline_body);
    /* not linked (removed meanwhile): nothing changes */
    store_remove(s, big);
    ck_assert(!store_seal(s, big));
    obj_unref(big);
    /* exactly OBJ_SEAL_MAX: sealed */
    struct cache_obj *edge = make_obj("/edge", OBJ_SEAL_MAX);
    store_insert(s, edge, 3);
    ck_assert(store_seal(s, edge));
    obj_unref(edge);
    /* a sealed object is not sealed again */
    struct cache_key ke = key_of("/edge");
    struct cache_obj *n;
    ck_assert_int_eq(lookup(s, &ke, NULL, false, 4, &n), LOOKUP_FOUND);
    ck_assert(!store_seal(s, n));
    obj_unref(n);
    ck_assert_uint_eq(stats(s).objects, 1);
    http_msg_free(&resp);
    store_free(s);
}
END_TEST

START_TEST(remove_after_seal_removes_the_sealed_copy)
{
    struct cache_store *s = store_new(UINT64_MAX / 2, 1);
    struct cache_obj *o = make_obj("/gone", 100);
    store_insert(s, o, 1);
    ck_assert(store_seal(s, o));
    ck_assert(present(s, "/gone", 2));
    /* a fetch holding the object it filled removes it (e.g. the origin
     * said it is no longer cacheable): the sealed copy goes */
    store_remove(s, o);
    ck_assert(!present(s, "/gone", 3));
    ck_assert_uint_eq(stats(s).objects, 0);
    ck_assert_uint_eq(stats(s).bytes, 0);
    obj_unref(o);
    store_free(s);
}
END_TEST

START_TEST(sealed_body_outlives_store_while_referenced)
{
    struct cache_store *s = store_new(UINT64_MAX / 2, 1);
    struct cache_obj *o = make_obj("/held", 2000);
    store_insert(s, o, 1);
    ck_assert(store_seal(s, o));
    obj_unref(o);           /* the filled object is freed now */
    struct cache_key k = key_of("/held");
    struct cache_obj *n;
    ck_assert_int_eq(lookup(s, &k, NULL, false, 2, &n), LOOKUP_FOUND);
    ck_assert_uint_eq(atomic_load(&n->refcnt), 2);
    struct evbuffer *out = evbuffer_new();
    struct body_cursor cur = { 0 };
    ck_assert_uint_eq(obj_body_read(n, &cur, out, SIZE_MAX), 2000);
    ck_assert_uint_eq(atomic_load(&n->refcnt), 3);     /* one for the reference */
    obj_unref(n);
    store_free(s);
    ck_assert_uint_eq(atomic_load(&n->refcnt), 1);
    ck_assert_uint_eq(n->magic, OBJ_MAGIC);
    char *want = malloc(2000), *got = malloc(2000);
    fill(want, 2000, 2000);
    ck_assert_int_eq(evbuffer_remove(out, got, 2000), 2000);   /* drops the reference */
    ck_assert_int_eq(memcmp(got, want, 2000), 0);
    evbuffer_free(out);     /* the sealed block is freed (ASan/LSan check) */
    free(want);
    free(got);
}
END_TEST

START_TEST(merged_copy_shares_a_sealed_body)
{
    struct cache_store *s = store_new(UINT64_MAX / 2, 1);
    struct cache_obj *o = make_obj("/m", 700);
    store_insert(s, o, 1);
    ck_assert(store_seal(s, o));
    obj_unref(o);
    struct cache_key k = key_of("/m");
    struct cache_obj *sealed;
    ck_assert_int_eq(lookup(s, &k, NULL, false, 2, &sealed), LOOKUP_FOUND);
    /* a 304 merge: a new object with its own head, the same bytes */
    struct cache_obj *copy = obj_new_sharing(sealed);
    ck_assert(copy->inline_body && !copy->sealed);
    ck_assert_ptr_eq(copy->body_owner, sealed);
    obj_copy_head(copy, sealed);
    ck_assert_ptr_ne(obj_head(copy), obj_head(sealed));
    store_insert(s, copy, 3);           /* replaces the sealed one */
    ck_assert(!sealed->linked);
    obj_unref(sealed);                  /* alive: the copy holds it */
    ck_assert_uint_eq(atomic_load(&sealed->refcnt), 1);
    ck_assert(!store_seal(s, copy));    /* its bytes are already inline */
    /* a merge of the copy shares the same owner, not a chain */
    struct cache_obj *copy2 = obj_new_sharing(copy);
    ck_assert_ptr_eq(copy2->body_owner, sealed);
    obj_copy_head(copy2, copy);
    store_insert(s, copy2, 4);
    obj_unref(copy);
    assert_body_reads(copy2, 700, 700);
    ck_assert_uint_eq(atomic_load(&sealed->refcnt), 1);
    obj_unref(copy2);
    store_free(s);          /* the last holder: everything freed (ASan/LSan) */
}
END_TEST

START_TEST(seq_order_survives_the_wrap)
{
    ck_assert(obj_seq_after(2, 1));
    ck_assert(!obj_seq_after(1, 2));
    ck_assert(!obj_seq_after(7, 7));
    /* linked just after the counter wrapped: still the newer */
    ck_assert(obj_seq_after(0, UINT32_MAX));
    ck_assert(obj_seq_after(5, UINT32_MAX - 5));
    ck_assert(!obj_seq_after(UINT32_MAX, 3));
    /* an object takes its bytes, not sizeof's rounding */
    ck_assert_uint_eq(OBJ_SIZE(10), offsetof(struct cache_obj, key) + 11);
    ck_assert_uint_le(OBJ_SIZE(0), sizeof(struct cache_obj) + 1);
}
END_TEST

START_TEST(charge_saturates_and_comes_back_exactly)
{
    struct cache_store *s = store_new(UINT64_MAX / 2, 1);
    struct cache_obj *o = make_obj("/huge", 10);
    store_insert(s, o, 1);
    uint64_t base = stats(s).bytes;
    ck_assert_uint_eq(o->charged, base);
    /* an object growing past 4 GiB counts as 4 GiB */
    store_charge(s, o, (size_t)5 << 30);
    ck_assert_uint_eq(o->charged, UINT32_MAX);
    ck_assert_uint_eq(stats(s).bytes, UINT32_MAX);
    store_charge(s, o, 1000);
    ck_assert_uint_eq(stats(s).bytes, UINT32_MAX);
    /* the unlink takes back what was counted, no more */
    store_remove(s, o);
    ck_assert_uint_eq(stats(s).bytes, 0);
    obj_unref(o);
    store_free(s);
}
END_TEST

START_TEST(atomic_flags_are_independent)
{
    struct cache_obj *o = make_obj("/flags", 1);
    ck_assert(!obj_ready(o) && !obj_soft_purged(o));
    ck_assert(obj_revalidate_claim(o));
    ck_assert(!obj_revalidate_claim(o));       /* one refresh at a time */
    obj_set_ready(o);
    obj_soft_purge(o);
    ck_assert(obj_ready(o) && obj_soft_purged(o));
    obj_revalidate_release(o);
    ck_assert(obj_ready(o) && obj_soft_purged(o));
    ck_assert(obj_revalidate_claim(o));
    obj_unref(o);
}
END_TEST

static Suite *cache_store_suite(void)
{
    Suite *s = suite_create("cache_store");

    TCase *b = tcase_create("bound");
    tcase_add_test(b, stats_count_objects_and_bytes);
    tcase_add_test(b, lru_evicts_least_recently_used);
    tcase_add_test(b, lru_moves_at_most_once_per_interval);
    tcase_add_test(b, eviction_frees_enough_for_a_big_object);
    tcase_add_test(b, object_larger_than_bound);
    tcase_add_test(b, lru_matches_model);
    tcase_add_test(b, sharded_bound_and_global_lru);
    tcase_add_test(b, charge_grows_and_evicts);
    tcase_set_timeout(b, 60);
    suite_add_tcase(s, b);

    TCase *v = tcase_create("vary");
    tcase_add_test(v, variants_both_retrievable);
    tcase_add_test(v, vary_normalisation);
    tcase_add_test(v, vary_star_not_storable);
    tcase_add_test(v, reinsert_same_variant_replaces);
    tcase_set_timeout(v, 60);
    suite_add_tcase(s, v);

    TCase *c = tcase_create("coalescing");
    tcase_add_test(c, busy_placeholder_coalesces);
    tcase_add_test(c, removed_placeholder);
    tcase_add_test(c, placeholder_outcomes);
    tcase_add_test(c, placeholder_and_ready_variant);
    tcase_set_timeout(c, 60);
    suite_add_tcase(s, c);

    TCase *r = tcase_create("removal");
    tcase_add_test(r, remove_key_removes_all_variants);
    tcase_add_test(r, remove_keeps_holders_valid);
    tcase_set_timeout(r, 60);
    suite_add_tcase(s, r);

    TCase *kd = tcase_create("keep_after_deploy");
    tcase_add_unchecked_fixture(kd, tmp_base_make, tmp_base_remove);
    tcase_add_checked_fixture(kd, tmp_dir_make, NULL);
    tcase_add_test(kd, kept_copies_outlive_sweep_and_go_first);
    tcase_set_timeout(kd, 60);
    suite_add_tcase(s, kd);

    TCase *bd = tcase_create("body");
    tcase_add_test(bd, body_append_accounting);
    tcase_add_test(bd, body_read_into_limits);
    tcase_add_test(bd, body_wait_semantics);
    tcase_add_test(bd, body_outlives_store_while_referenced);
    tcase_add_test(bd, body_references_released_piecewise);
    tcase_set_timeout(bd, 60);
    suite_add_tcase(s, bd);

    TCase *se = tcase_create("seal");
    tcase_add_test(se, seal_replaces_a_complete_object_in_place);
    tcase_add_test(se, seal_keeps_lru_position);
    tcase_add_test(se, seal_refuses_what_does_not_qualify);
    tcase_add_test(se, remove_after_seal_removes_the_sealed_copy);
    tcase_add_test(se, sealed_body_outlives_store_while_referenced);
    tcase_add_test(se, merged_copy_shares_a_sealed_body);
    tcase_add_test(se, seq_order_survives_the_wrap);
    tcase_add_test(se, charge_saturates_and_comes_back_exactly);
    tcase_add_test(se, atomic_flags_are_independent);
    tcase_set_timeout(se, 60);
    suite_add_tcase(s, se);

    TCase *sw = tcase_create("sweep");
    tcase_add_unchecked_fixture(sw, tmp_base_make, tmp_base_remove);
    tcase_add_checked_fixture(sw, tmp_dir_make, NULL);
    tcase_add_test(sw, sweep_reclaims_old_generations_and_stragglers);
    suite_add_tcase(s, sw);

    TCase *ix = tcase_create("index");
    tcase_add_test(ix, index_shrinks_after_the_peak);
    suite_add_tcase(s, ix);

    TCase *cc = tcase_create("concurrency");
    tcase_add_loop_test(cc, concurrent_readers, 0, 4);
    tcase_add_test(cc, concurrent_store);
    tcase_add_test(cc, concurrent_hits_on_one_key);
    tcase_set_timeout(cc, 120);
    suite_add_tcase(s, cc);

    /* Regression tests for bugs these suites found in src/ (see their
     * comments). */
    TCase *kb = tcase_create("regressions");
    tcase_set_tags(kb, "regression");
    tcase_add_test(kb, newest_matching_variant_after_growth);
    tcase_add_test(kb, vary_absent_differs_from_empty);
    tcase_set_timeout(kb, 60);
    suite_add_tcase(s, kb);
    return s;
}

int main(void)
{
    /* Before any event_base exists: bases made afterwards get locks and a
     * notification channel, so event_active() works across threads. */
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "evthread_use_pthreads failed\n");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(cache_store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
