/*
 * check_h2_mem.c — nghttp2's memory for a session (src/server/h2_mem.c),
 * against the installed libnghttp2: session creation allocates exactly
 * one frame buffer of 16 KiB or more (the assumption h2_mem_sleep rests
 * on), the session struct and its other small blocks are carved from one
 * state page and the deflater's table has a page of its own, never
 * written; an idle session gives back every page it has, and after
 * h2_mem_wake is what it was byte for byte and keeps working (requests
 * answered correctly, again and again, a PING while idle); without
 * memory for the packed copy, only the frame buffer and zero pages go and
 * the session works on; the allocator's calloc/realloc/free paths between
 * the state page, the slab and malloc; nothing is left in the slab after
 * nghttp2_session_del.
 *
 * When memory runs out: a pool is refused without a slab; with the slab
 * full, blocks come from malloc (calloc's zeroed all the same) and a
 * session is made and works without one page of it; a session whose
 * creation fails part-way leaves no page behind; a realloc that fails
 * keeps the block it was given; a calloc whose size overflows is refused.
 *
 * Linked with -Wl,--wrap=malloc: malloc from h2_mem.c can be made to
 * fail (fail_malloc) or to hand out memory that is not zero
 * (poison_malloc), as a reused heap block would be.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "freshcache/base/page_slab.h"
#include "freshcache/server/h2_mem.h"

static size_t page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* malloc as h2_mem.c sees it: fails while fail_malloc is set, and fills
 * what it gives with 0xa5 while poison_malloc is (a fresh heap block is
 * often zero by luck, which would hide a calloc that does not zero). */
static bool fail_malloc, poison_malloc;
void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_malloc(size_t size)
{
    if (fail_malloc)
        return NULL;
    void *p = __real_malloc(size);
    if (p && poison_malloc)
        memset(p, 0xa5, size);
    return p;
}

/* The value of the last x-hpack field a request carried. */
static char hpack_seen[16];

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)s;
    (void)frame;
    (void)flags;
    (void)user;
    if (namelen == 7 && memcmp(name, "x-hpack", 7) == 0 && valuelen < sizeof hpack_seen) {
        memcpy(hpack_seen, value, valuelen);
        hpack_seen[valuelen] = 0;
    }
    return 0;
}

/* nghttp2_session_server_new3's result with `m`'s allocator (NULL in *out
 * on failure), with h2_mem.c's malloc failing throughout if `no_malloc`
 * (and only then: libcheck's asserts allocate). */
static int try_server(struct h2_mem *m, struct h2_mem_pool *pool, nghttp2_session **out,
                      bool no_malloc)
{
    nghttp2_session_callbacks *cb;
    ck_assert_int_eq(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_option *opt;
    ck_assert_int_eq(nghttp2_option_new(&opt), 0);
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 0);
    h2_mem_init(m, pool);
    *out = NULL;
    nghttp2_mem mem = h2_mem_creating(m);
    fail_malloc = no_malloc;
    int rc = nghttp2_session_server_new3(out, cb, NULL, opt, &mem);
    fail_malloc = false;
    h2_mem_created(m);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    return rc;
}

static nghttp2_session *server(struct h2_mem *m, struct h2_mem_pool *pool)
{
    nghttp2_session_callbacks *cb;
    ck_assert_int_eq(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_option *opt;
    ck_assert_int_eq(nghttp2_option_new(&opt), 0);
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 0);
    h2_mem_init(m, pool);
    nghttp2_session *s;
    nghttp2_mem mem = h2_mem_creating(m);
    ck_assert_int_eq(nghttp2_session_server_new3(&s, cb, NULL, opt, &mem), 0);
    h2_mem_created(m);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    return s;
}

static size_t frame(uint8_t *out, uint8_t type, uint8_t flags, uint32_t sid, const void *payload,
                    size_t len)
{
    out[0] = (uint8_t)(len >> 16);
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)len;
    out[3] = type;
    out[4] = flags;
    out[5] = (uint8_t)(sid >> 24);
    out[6] = (uint8_t)(sid >> 16);
    out[7] = (uint8_t)(sid >> 8);
    out[8] = (uint8_t)sid;
    memcpy(out + 9, payload, len);
    return 9 + len;
}

/* GET https://localhost/ on `sid`: indexed :method, :scheme, :path; a
 * literal :authority without indexing; x-hpack: v1, which the first
 * request (stream 1) adds to the peer's HPACK table (a literal with
 * incremental indexing) and the others name by its index (62, the first
 * dynamic entry): the session's HPACK state must survive its sleeps. */
static void request(nghttp2_session *s, uint32_t sid)
{
    static const uint8_t common[] = { 0x82, 0x87, 0x84, 0x01, 9, 'l', 'o', 'c', 'a', 'l',
                                      'h', 'o', 's', 't' };
    static const uint8_t add[] = { 0x40, 7, 'x', '-', 'h', 'p', 'a', 'c', 'k', 2, 'v', '1' };
    static const uint8_t indexed[] = { 0x80 | 62 };
    uint8_t block[64], buf[96];
    memcpy(block, common, sizeof common);
    size_t len = sizeof common;
    if (sid == 1) {
        memcpy(block + len, add, sizeof add);
        len += sizeof add;
    } else {
        memcpy(block + len, indexed, sizeof indexed);
        len += sizeof indexed;
    }
    hpack_seen[0] = 0;
    size_t n = frame(buf, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM | NGHTTP2_FLAG_END_HEADERS, sid,
                     block, len);
    ck_assert_int_eq(nghttp2_session_mem_recv(s, buf, n), (ssize_t)n);
    ck_assert_str_eq(hpack_seen, "v1");
}

/* Send what the session has; the frames' types and streams in order. */
static size_t drain(nghttp2_session *s, uint8_t *types, uint32_t *sids, size_t max)
{
    size_t nf = 0;
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(s, &data)) > 0) {
        /* mem_send hands out one frame at a time here (no DATA). */
        ck_assert_int_ge(n, 9);
        if (nf < max) {
            types[nf] = data[3];
            sids[nf] = ((uint32_t)data[5] << 24 | (uint32_t)data[6] << 16 |
                        (uint32_t)data[7] << 8 | data[8]) & 0x7fffffffu;
        }
        nf++;
    }
    ck_assert_int_eq(n, 0);
    return nf;
}

static size_t resident(struct h2_mem *m)
{
    size_t n = 0;
    for (unsigned i = 0; i < m->n; i++)
        n += page_slab_resident_pages(m->pool->slab, m->block[i]);
    return n;
}

static unsigned kinds(const struct h2_mem *m, enum h2_mem_kind kind)
{
    unsigned n = 0;
    for (unsigned i = 0; i < m->n; i++)
        n += m->kind[i] == kind;
    return n;
}

START_TEST(one_frame_buffer_one_state_page)
{
    struct h2_mem_pool *pool = h2_mem_pool_new(1024 * page());
    ck_assert_ptr_nonnull(pool);
    struct h2_mem m;
    nghttp2_session *s = server(&m, pool);
    /* If these fail, the installed nghttp2 is not the one h2_mem.h was
     * written against: the frame buffer is no longer given back, or some
     * of the session's small blocks stay with malloc while idle. */
    ck_assert_uint_eq(kinds(&m, H2_MEM_FRAMEBUF), 1);
    ck_assert_uint_eq(kinds(&m, H2_MEM_STATE), 1);
    /* The session struct first, then the inflater's table and the frame
     * buffer's chain. */
    ck_assert_ptr_eq((void *)s, (void *)m.state);
    ck_assert_uint_eq(m.state_live, 3);
    /* And the stream map and the deflater's table. */
    ck_assert_uint_eq(kinds(&m, H2_MEM_BLOCK), 2);
    ck_assert_uint_eq(m.n, 4);
    nghttp2_session_del(s);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_ptr_null(m.state);
    h2_mem_pool_destroy(pool);      /* asserts that the slab is empty */
}
END_TEST

/* Preface, SETTINGS both ways, then GET/204 on streams 1, 3, ... 9, with
 * `between` run after each answer (the session idle). */
static void serve(nghttp2_session *s, struct h2_mem *m, void (*between)(nghttp2_session *,
                                                                          struct h2_mem *))
{
    uint8_t buf[128];
    nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100 } };
    ck_assert_int_eq(nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 1), 0);
    ck_assert_int_eq(nghttp2_session_mem_recv(s, (const uint8_t *)NGHTTP2_CLIENT_MAGIC,
                                              NGHTTP2_CLIENT_MAGIC_LEN),
                     NGHTTP2_CLIENT_MAGIC_LEN);
    size_t n = frame(buf, NGHTTP2_SETTINGS, 0, 0, "", 0);
    ck_assert_int_eq(nghttp2_session_mem_recv(s, buf, n), (ssize_t)n);
    for (uint32_t sid = 1; sid <= 9; sid += 2) {
        request(s, sid);
        nghttp2_nv nv[] = { { (uint8_t *)":status", (uint8_t *)"204", 7, 3,
                              NGHTTP2_NV_FLAG_NONE } };
        ck_assert_int_eq(nghttp2_submit_response(s, (int32_t)sid, nv, 1, NULL), 0);
        uint8_t types[8];
        uint32_t sids[8];
        size_t nf = drain(s, types, sids, 8);
        /* The answer: HEADERS on this stream (after SETTINGS and its ACK
         * the first time). */
        ck_assert_uint_ge(nf, 1);
        ck_assert_uint_eq(types[nf - 1], NGHTTP2_HEADERS);
        ck_assert_uint_eq(sids[nf - 1], sid);
        ck_assert_int_eq(nghttp2_session_want_write(s), 0);
        ck_assert_uint_gt(resident(m), 0);          /* the frame buffer was written */
        between(s, m);
        ck_assert_ptr_null(nghttp2_session_get_stream_user_data(s, (int32_t)sid));
    }
    /* A PING answered from an idle session. */
    between(s, m);
    n = frame(buf, NGHTTP2_PING, 0, 0, "12345678", 8);
    ck_assert_int_eq(nghttp2_session_mem_recv(s, buf, n), (ssize_t)n);
    const uint8_t *data;
    ssize_t sent = nghttp2_session_mem_send(s, &data);
    ck_assert_int_eq(sent, 17);
    ck_assert_uint_eq(data[3], NGHTTP2_PING);
    ck_assert_uint_eq(data[4], NGHTTP2_FLAG_ACK);
    ck_assert_mem_eq(data + 9, "12345678", 8);
}

/* Idle: every page goes; woken, the state page and the stream map hold
 * what they held, the frame buffer's pages stay given back. */
static void sleep_and_wake(nghttp2_session *s, struct h2_mem *m)
{
    (void)s;
    static uint8_t state[65536], map[65536];
    size_t used = m->state_used;
    void *map_p = NULL;
    for (unsigned i = 0; i < m->n; i++)
        if (m->kind[i] == H2_MEM_BLOCK && page_slab_resident_pages(m->pool->slab, m->block[i]))
            map_p = m->block[i];      /* the stream map (the deflater's table is never written) */
    ck_assert_ptr_nonnull(map_p);
    memcpy(state, m->state, used);
    memcpy(map, map_p, page());
    /* The frame buffer (5 pages), the state page, the map (1). */
    ck_assert_uint_ge(h2_mem_sleep(m), 7 * page());
    ck_assert(h2_mem_asleep(m));
    ck_assert_uint_eq(resident(m), 0);
    h2_mem_wake(m);
    ck_assert(!h2_mem_asleep(m));
    ck_assert_mem_eq(m->state, state, used);
    ck_assert_mem_eq(map_p, map, page());
    for (unsigned i = 0; i < m->n; i++)
        if (m->kind[i] == H2_MEM_FRAMEBUF)
            ck_assert_uint_eq(page_slab_resident_pages(m->pool->slab, m->block[i]), 0);
}

START_TEST(idle_gives_back_and_works_after)
{
    struct h2_mem_pool *pool = h2_mem_pool_new(1024 * page());
    struct h2_mem m;
    nghttp2_session *s = server(&m, pool);
    serve(s, &m, sleep_and_wake);
    ck_assert(pool->ref_set);
    /* A second session packs against the first one's state page: far
     * fewer words than it has that are not zero. */
    struct h2_mem m2;
    nghttp2_session *s2 = server(&m2, pool);
    serve(s2, &m2, sleep_and_wake);
    nghttp2_session_del(s);
    /* Deleted while asleep: woken first, as h2.c does. */
    ck_assert_uint_gt(h2_mem_sleep(&m2), 0);
    h2_mem_wake(&m2);
    nghttp2_session_del(s2);
    h2_mem_pool_destroy(pool);
}
END_TEST

/* No memory for the packed copy: the frame buffer and the zero pages
 * (the empty stream map) go, the state stays, nothing is asleep. */
static void sleep_without_memory(nghttp2_session *s, struct h2_mem *m)
{
    (void)s;
    fail_malloc = true;
    size_t given = h2_mem_sleep(m);
    fail_malloc = false;
    ck_assert(!h2_mem_asleep(m));
    ck_assert_uint_ge(given, 6 * page());
    ck_assert_uint_eq(page_slab_resident_pages(m->pool->slab, m->state), 1);
    ck_assert_uint_eq(resident(m), 1);
    h2_mem_wake(m);     /* nothing to do */
}

START_TEST(sleep_without_memory_keeps_state)
{
    struct h2_mem_pool *pool = h2_mem_pool_new(1024 * page());
    struct h2_mem m;
    nghttp2_session *s = server(&m, pool);
    serve(s, &m, sleep_without_memory);
    nghttp2_session_del(s);
    h2_mem_pool_destroy(pool);
}
END_TEST

START_TEST(packed_against_the_reference)
{
    struct h2_mem_pool *pool = h2_mem_pool_new(1024 * page());
    struct h2_mem m[2];
    nghttp2_session *s[2];
    size_t words[2];
    for (int k = 0; k < 2; k++) {
        s[k] = server(&m[k], pool);
        serve(s[k], &m[k], sleep_and_wake);
        h2_mem_sleep(&m[k]);
        /* The packed copy's first word: the state page's words packed
         * (it comes first), those that differ from the reference. */
        words[k] = *(const uint64_t *)m[k].packed;
    }
    /* The first session's state page was copied as the reference at its
     * first sleep, after one request; the second's packs against it.
     * Both differ from it in their pointers to their other blocks, the
     * stream ids and windows, and little else (pointers into the page
     * itself are expected moved with it): far fewer words than they have
     * that are not zero. */
    size_t nonzero = 0;
    for (size_t i = 0; i < m[1].state_used / 8; i++)
        nonzero += ((const uint64_t *)pool->ref)[i] != 0;
    ck_assert_uint_gt(nonzero, 50);
    for (int k = 0; k < 2; k++)
        ck_assert_uint_lt(words[k], nonzero / 3);
    for (int k = 0; k < 2; k++) {
        h2_mem_wake(&m[k]);
        nghttp2_session_del(s[k]);
    }
    h2_mem_pool_destroy(pool);
}
END_TEST

START_TEST(allocator_paths)
{
    struct h2_mem_pool *pool = h2_mem_pool_new(64 * page());
    struct page_slab *slab = pool->slab;
    struct h2_mem m;
    h2_mem_init(&m, pool);
    nghttp2_mem alloc = h2_mem_allocator(&m);
    nghttp2_mem *a = &alloc;
    /* Small: malloc; large: slab, zeroed, tracked. */
    uint8_t *small = a->calloc(10, 10, a->mem_user_data);
    ck_assert_ptr_nonnull(small);
    ck_assert(!page_slab_owns(slab, small));
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq(small[i], 0);
    uint8_t *big = a->calloc(2, page(), a->mem_user_data);
    ck_assert(page_slab_owns(slab, big));
    ck_assert_uint_eq(m.n, 1);
    big[0] = 1;
    big[2 * page() - 1] = 2;
    /* Growing within its pages keeps it; past them moves it, bytes kept. */
    ck_assert_ptr_eq(a->realloc(big, 2 * page(), a->mem_user_data), big);
    uint8_t *bigger = a->realloc(big, 3 * page(), a->mem_user_data);
    ck_assert(page_slab_owns(slab, bigger));
    ck_assert_uint_eq(bigger[0], 1);
    ck_assert_uint_eq(bigger[2 * page() - 1], 2);
    ck_assert_uint_eq(m.n, 1);
    ck_assert_uint_eq(page_slab_live(slab), 2);     /* and the pool's reference */
    /* A malloc block grows with realloc. */
    small = a->realloc(small, 200, a->mem_user_data);
    ck_assert(!page_slab_owns(slab, small));
    ck_assert_uint_eq(small[99], 0);
    /* Too large for the slab: malloc. */
    void *huge = a->malloc(PAGE_SLAB_MAX_PAGES * page() + 1, a->mem_user_data);
    ck_assert(!page_slab_owns(slab, huge));
    a->free(huge, a->mem_user_data);
    a->free(small, a->mem_user_data);
    a->free(bigger, a->mem_user_data);
    a->free(NULL, a->mem_user_data);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_uint_eq(page_slab_live(slab), 1);

    /* While creating: small blocks are carved from the state page, in
     * order, 16-byte aligned, zeroed; one that does not fit goes to
     * malloc; the page goes when its last block does. */
    h2_mem_creating(&m);
    uint8_t *x = a->calloc(1, 100, a->mem_user_data);
    uint8_t *y = a->malloc(H2_MEM_HPACK_RING, a->mem_user_data);     /* the deflater's table */
    uint8_t *z = a->malloc(8, a->mem_user_data);
    ck_assert_ptr_eq(x, (uint8_t *)m.state);
    ck_assert(page_slab_owns(slab, y) && (uintptr_t)y % page() == 0);
    ck_assert_ptr_eq(z, x + 112);
    ck_assert_uint_eq(m.state_used, 128);
    ck_assert_uint_eq(m.state_live, 2);
    uint8_t *w = a->malloc(page(), a->mem_user_data);                /* a page of its own */
    uint8_t *v = a->malloc(page() - 100, a->mem_user_data);          /* does not fit: malloc */
    ck_assert(page_slab_owns(slab, w) && w != (uint8_t *)m.state);
    ck_assert(!page_slab_owns(slab, v));
    h2_mem_created(&m);
    ck_assert_uint_eq(m.n, 3);      /* state page, deflater's table, w */
    /* realloc of a carved block moves it, its bytes kept. */
    memset(z, 0x5a, 8);
    uint8_t *z2 = a->realloc(z, 64, a->mem_user_data);
    ck_assert(!page_slab_owns(slab, z2));
    ck_assert_mem_eq(z2, "\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a", 8);
    ck_assert_uint_eq(m.state_live, 1);
    a->free(x, a->mem_user_data);
    ck_assert_ptr_null(m.state);    /* its last block: the page went */
    a->free(z2, a->mem_user_data);
    a->free(y, a->mem_user_data);
    a->free(w, a->mem_user_data);
    a->free(v, a->mem_user_data);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_uint_eq(page_slab_live(slab), 1);
    h2_mem_pool_destroy(pool);

    /* Without a pool: all malloc, nothing tracked, sleep gives nothing. */
    h2_mem_init(&m, NULL);
    h2_mem_creating(&m);
    void *p = a->malloc(5 * page(), a->mem_user_data);
    void *q = a->malloc(100, a->mem_user_data);
    h2_mem_created(&m);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_uint_eq(h2_mem_sleep(&m), 0);
    ck_assert(!h2_mem_asleep(&m));
    a->free(p, a->mem_user_data);
    a->free(q, a->mem_user_data);
}
END_TEST

/* A slab that cannot be made (no page to reserve) gives no pool: the
 * caller's sessions use malloc. */
START_TEST(pool_refused_without_a_slab)
{
    ck_assert_ptr_null(h2_mem_pool_new(0));
    /* One page is the reference alone, and a pool. */
    struct h2_mem_pool *pool = h2_mem_pool_new(1);
    ck_assert_ptr_nonnull(pool);
    ck_assert_uint_eq(page_slab_live(pool->slab), 1);
    h2_mem_pool_destroy(pool);
}
END_TEST

/* The slab full: a page-sized block comes from malloc, zeroed by calloc
 * though malloc's is not; a slab block that must grow moves to malloc
 * with its bytes; and nothing of it is tracked for sleeping. */
START_TEST(full_slab_falls_back_to_malloc)
{
    struct h2_mem_pool *pool = h2_mem_pool_new(2 * page());    /* the reference and one */
    struct page_slab *slab = pool->slab;
    struct h2_mem m;
    h2_mem_init(&m, pool);
    nghttp2_mem alloc = h2_mem_allocator(&m);
    nghttp2_mem *a = &alloc;
    uint8_t *last = a->calloc(1, page(), a->mem_user_data);
    ck_assert(page_slab_owns(slab, last));
    ck_assert_uint_eq(m.n, 1);
    poison_malloc = true;
    uint8_t *more = a->calloc(2, page(), a->mem_user_data);
    uint8_t *raw = a->malloc(page(), a->mem_user_data);
    poison_malloc = false;
    ck_assert_ptr_nonnull(more);
    ck_assert(!page_slab_owns(slab, more));
    for (size_t i = 0; i < 2 * page(); i++)
        ck_assert_msg(more[i] == 0, "calloc from malloc: byte %zu is %#x", i, more[i]);
    ck_assert_uint_eq(raw[0], 0xa5);       /* the wrap did poison: the check above means it */
    ck_assert_uint_eq(m.n, 1);
    memset(last, 0x3c, page());
    uint8_t *grown = a->realloc(last, 3 * page(), a->mem_user_data);
    ck_assert_ptr_nonnull(grown);
    ck_assert(!page_slab_owns(slab, grown));
    for (size_t i = 0; i < page(); i++)
        ck_assert_uint_eq(grown[i], 0x3c);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_uint_eq(page_slab_live(slab), 1);
    ck_assert_uint_eq(h2_mem_sleep(&m), 0);     /* nothing tracked: nothing to give */
    ck_assert(!h2_mem_asleep(&m));
    a->free(grown, a->mem_user_data);
    a->free(more, a->mem_user_data);
    a->free(raw, a->mem_user_data);
    h2_mem_pool_destroy(pool);
}
END_TEST

/* No page left for the session: the state page, the deflater's table and
 * the frame buffer all come from malloc, and the session works. */
START_TEST(session_without_a_page_works)
{
    struct h2_mem_pool *pool = h2_mem_pool_new(1);     /* the reference only */
    struct h2_mem m;
    nghttp2_session *s = server(&m, pool);
    ck_assert_ptr_null(m.state);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_uint_eq(page_slab_live(pool->slab), 1);
    uint8_t buf[64];
    ck_assert_int_eq(nghttp2_session_mem_recv(s, (const uint8_t *)NGHTTP2_CLIENT_MAGIC,
                                              NGHTTP2_CLIENT_MAGIC_LEN),
                     NGHTTP2_CLIENT_MAGIC_LEN);
    size_t n = frame(buf, NGHTTP2_SETTINGS, 0, 0, "", 0);
    ck_assert_int_eq(nghttp2_session_mem_recv(s, buf, n), (ssize_t)n);
    request(s, 1);
    nghttp2_nv nv[] = { { (uint8_t *)":status", (uint8_t *)"204", 7, 3, NGHTTP2_NV_FLAG_NONE } };
    ck_assert_int_eq(nghttp2_submit_response(s, 1, nv, 1, NULL), 0);
    uint8_t types[8];
    uint32_t sids[8];
    size_t nf = drain(s, types, sids, 8);
    ck_assert_uint_ge(nf, 1);
    ck_assert_uint_eq(types[nf - 1], NGHTTP2_HEADERS);
    ck_assert_uint_eq(sids[nf - 1], 1);
    ck_assert_uint_eq(h2_mem_sleep(&m), 0);
    ck_assert(!h2_mem_asleep(&m));
    nghttp2_session_del(s);
    ck_assert_uint_eq(page_slab_live(pool->slab), 1);
    h2_mem_pool_destroy(pool);
}
END_TEST

/* Room for the state page and nothing else, and no malloc: nghttp2 fails
 * part-way, after carving its session struct from the state page, and
 * frees what it made.  The page, kept while creating in case more is
 * carved, goes back then. */
START_TEST(failed_creation_gives_the_state_page_back)
{
    struct h2_mem_pool *pool = h2_mem_pool_new(2 * page());   /* the reference and one */
    struct h2_mem m;
    nghttp2_session *s;
    int rc = try_server(&m, pool, &s, true);
    ck_assert_int_eq(rc, NGHTTP2_ERR_NOMEM);
    ck_assert_ptr_null(m.state);
    ck_assert_uint_eq(m.state_live, 0);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_uint_eq(page_slab_live(pool->slab), 1);
    /* And the page is there for the next session. */
    s = server(&m, pool);
    ck_assert_ptr_eq((void *)s, (void *)m.state);
    nghttp2_session_del(s);
    h2_mem_pool_destroy(pool);
}
END_TEST

/* A realloc that finds no memory returns NULL and leaves the block as it
 * was: its bytes, its place in the slab or the state page, tracked. */
START_TEST(failed_realloc_keeps_the_block)
{
    struct h2_mem_pool *pool = h2_mem_pool_new(3 * page());
    struct page_slab *slab = pool->slab;
    struct h2_mem m;
    h2_mem_init(&m, pool);
    nghttp2_mem alloc = h2_mem_allocator(&m);
    nghttp2_mem *a = &alloc;
    h2_mem_creating(&m);
    uint8_t *carved = a->malloc(64, a->mem_user_data);
    ck_assert_ptr_eq(carved, (uint8_t *)m.state);
    uint8_t *block = a->malloc(page(), a->mem_user_data);     /* the slab's last page */
    ck_assert(page_slab_owns(slab, block));
    memset(carved, 0x11, 64);
    memset(block, 0x22, page());
    fail_malloc = true;
    void *r1 = a->realloc(block, 2 * page(), a->mem_user_data);
    void *r2 = a->realloc(carved, 2 * page(), a->mem_user_data);
    fail_malloc = false;
    ck_assert_ptr_null(r1);
    ck_assert_ptr_null(r2);
    ck_assert_uint_eq(m.n, 2);                  /* the state page and the block */
    ck_assert_uint_eq(m.state_live, 1);
    ck_assert_uint_eq(page_slab_live(slab), 3);
    for (size_t i = 0; i < page(); i++)
        ck_assert_uint_eq(block[i], 0x22);
    for (size_t i = 0; i < 64; i++)
        ck_assert_uint_eq(carved[i], 0x11);
    h2_mem_created(&m);
    a->free(block, a->mem_user_data);
    a->free(carved, a->mem_user_data);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_uint_eq(page_slab_live(slab), 1);
    h2_mem_pool_destroy(pool);
}
END_TEST

/* n * size past SIZE_MAX is refused, not wrapped into a small block. */
START_TEST(calloc_overflow_refused)
{
    struct h2_mem m;
    h2_mem_init(&m, NULL);
    nghttp2_mem alloc = h2_mem_allocator(&m);
    /* (SIZE_MAX / 16 + 2) * 16 wraps to 16. */
    void *p = alloc.calloc(SIZE_MAX / 16 + 2, 16, alloc.mem_user_data);
    ck_assert_ptr_null(p);
    /* A zero count is no overflow. */
    p = alloc.calloc(0, 16, alloc.mem_user_data);
    alloc.free(p, alloc.mem_user_data);
}
END_TEST

static Suite *h2_mem_suite(void)
{
    Suite *s = suite_create("h2_mem");
    TCase *t = tcase_create("nghttp2");
    tcase_add_test(t, one_frame_buffer_one_state_page);
    tcase_add_test(t, idle_gives_back_and_works_after);
    tcase_add_test(t, sleep_without_memory_keeps_state);
    tcase_add_test(t, packed_against_the_reference);
    tcase_add_test(t, allocator_paths);
    TCase *o = tcase_create("out of memory");
    tcase_add_test(o, pool_refused_without_a_slab);
    tcase_add_test(o, full_slab_falls_back_to_malloc);
    tcase_add_test(o, session_without_a_page_works);
    tcase_add_test(o, failed_creation_gives_the_state_page_back);
    tcase_add_test(o, failed_realloc_keeps_the_block);
    tcase_add_test(o, calloc_overflow_refused);
    suite_add_tcase(s, o);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(h2_mem_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
