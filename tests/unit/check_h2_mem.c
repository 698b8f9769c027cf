/*
 * check_h2_mem.c — nghttp2's memory for a session (src/server/h2_mem.c),
 * against the installed libnghttp2: session creation allocates exactly
 * one frame buffer of 16 KiB or more (the assumption h2_mem_idle rests
 * on) and the deflater's table goes to the slab, never written; an idle session gives back its frame buffer and empty stream map
 * and keeps working (requests answered correctly after, again and
 * again); the allocator's calloc/realloc/free paths between the slab and
 * malloc; nothing is left in the slab after nghttp2_session_del.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "freshcache/base/page_slab.h"
#include "freshcache/server/h2_mem.h"

static size_t page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static nghttp2_session *server(struct h2_mem *m, struct page_slab *slab)
{
    nghttp2_session_callbacks *cb;
    ck_assert_int_eq(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_option *opt;
    ck_assert_int_eq(nghttp2_option_new(&opt), 0);
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 0);
    h2_mem_init(m, slab);
    nghttp2_session *s;
    ck_assert_int_eq(nghttp2_session_server_new3(&s, cb, NULL, opt, h2_mem_creating(m)), 0);
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
 * literal :authority without indexing. */
static void request(nghttp2_session *s, uint32_t sid)
{
    static const uint8_t block[] = { 0x82, 0x87, 0x84, 0x01, 9, 'l', 'o', 'c', 'a', 'l',
                                     'h', 'o', 's', 't' };
    uint8_t buf[64];
    size_t n = frame(buf, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM | NGHTTP2_FLAG_END_HEADERS, sid,
                     block, sizeof block);
    ck_assert_int_eq(nghttp2_session_mem_recv(s, buf, n), (ssize_t)n);
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
        n += page_slab_resident_pages(m->slab, m->block[i].p);
    return n;
}

START_TEST(one_frame_buffer)
{
    struct page_slab *slab = page_slab_new(1024 * page());
    struct h2_mem m;
    nghttp2_session *s = server(&m, slab);
    unsigned framebufs = 0;
    for (unsigned i = 0; i < m.n; i++)
        framebufs += m.block[i].framebuf;
    /* If this fails, the installed nghttp2 is not the one h2_mem.h was
     * written against: the frame buffer is no longer given back. */
    ck_assert_uint_eq(framebufs, 1);
    /* And the stream map and the deflater's HPACK table. */
    ck_assert_uint_eq(m.n, 3);
    nghttp2_session_del(s);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_uint_eq(page_slab_live(slab), 0);
    page_slab_destroy(slab);
}
END_TEST

START_TEST(idle_gives_back_and_works_after)
{
    struct page_slab *slab = page_slab_new(1024 * page());
    struct h2_mem m;
    nghttp2_session *s = server(&m, slab);
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
        ck_assert_uint_gt(resident(&m), 0);         /* the frame buffer was written */
        /* Idle: the frame buffer (5 pages) and the empty map (1) go. */
        ck_assert_uint_ge(h2_mem_idle(&m), 6 * page());
        ck_assert_uint_eq(resident(&m), 0);
        ck_assert_ptr_null(nghttp2_session_get_stream_user_data(s, (int32_t)sid));
    }
    /* A PING answered from an idle session. */
    n = frame(buf, NGHTTP2_PING, 0, 0, "12345678", 8);
    ck_assert_int_eq(nghttp2_session_mem_recv(s, buf, n), (ssize_t)n);
    const uint8_t *data;
    ssize_t sent = nghttp2_session_mem_send(s, &data);
    ck_assert_int_eq(sent, 17);
    ck_assert_uint_eq(data[3], NGHTTP2_PING);
    ck_assert_uint_eq(data[4], NGHTTP2_FLAG_ACK);
    ck_assert_mem_eq(data + 9, "12345678", 8);
    nghttp2_session_del(s);
    ck_assert_uint_eq(page_slab_live(slab), 0);
    page_slab_destroy(slab);
}
END_TEST

START_TEST(allocator_paths)
{
    struct page_slab *slab = page_slab_new(64 * page());
    struct h2_mem m;
    h2_mem_init(&m, slab);
    nghttp2_mem *a = &m.mem;
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
    ck_assert_uint_eq(page_slab_live(slab), 1);
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
    ck_assert_uint_eq(page_slab_live(slab), 0);
    /* Without a slab: all malloc, nothing tracked, idle gives nothing. */
    h2_mem_init(&m, NULL);
    void *p = a->malloc(5 * page(), a->mem_user_data);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_uint_eq(h2_mem_idle(&m), 0);
    a->free(p, a->mem_user_data);
    page_slab_destroy(slab);
}
END_TEST

static Suite *h2_mem_suite(void)
{
    Suite *s = suite_create("h2_mem");
    TCase *t = tcase_create("nghttp2");
    tcase_add_test(t, one_frame_buffer);
    tcase_add_test(t, idle_gives_back_and_works_after);
    tcase_add_test(t, allocator_paths);
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
