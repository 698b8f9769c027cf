/*
 * h2_mem.c — see include/freshcache/server/h2_mem.h.
 */
#include "freshcache/server/h2_mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/page_slab.h"
#include "freshcache/base/sparse_pack.h"

static struct h2_mem *mem_of(void *ud)
{
    struct h2_mem *m = ud;
    CHECK_OBJ_NOTNULL(m, H2_MEM_MAGIC);
    /* An asleep session's memory is not what nghttp2 left: nghttp2 must
     * not be running on it (h2_mem_wake first). */
    FC_ASSERT(m->packed == NULL);
    return m;
}

static struct page_slab *slab_of(const struct h2_mem *m)
{
    return m->pool ? m->pool->slab : NULL;
}

static void track(struct h2_mem *m, void *p, enum h2_mem_kind kind)
{
    if (kind == H2_MEM_FRAMEBUF)
        m->n_framebuf++;
    if (m->n == H2_MEM_TRACKED)
        return;
    m->block[m->n] = p;
    m->kind[m->n] = (uint8_t)kind;
    m->n++;
}

static void untrack(struct h2_mem *m, void *p)
{
    for (unsigned i = 0; i < m->n; i++) {
        if (m->block[i] == p) {
            m->n--;
            m->block[i] = m->block[m->n];
            m->kind[i] = m->kind[m->n];
            return;
        }
    }
}

static size_t page_size(const struct h2_mem *m)
{
    return page_slab_block_size(slab_of(m), m->state);
}

/* Whether `p` was carved from the state page. */
static bool in_state(const struct h2_mem *m, const void *p)
{
    const char *c = p;
    return m->state != NULL && c >= m->state && c < m->state + m->state_used;
}

/* A small block made with the session, carved from the state page (made
 * at the first); NULL when it does not fit (the caller's malloc). */
static void *state_alloc(struct h2_mem *m, size_t size)
{
    if (m->state == NULL) {
        m->state = page_slab_alloc(slab_of(m), 1);
        if (m->state == NULL)
            return NULL;
        m->state_used = 0;
        m->state_live = 0;
        track(m, m->state, H2_MEM_STATE);
    }
    size_t at = m->state_used;
    size_t rounded = (size + H2_MEM_STATE_ALIGN - 1) & ~(size_t)(H2_MEM_STATE_ALIGN - 1);
    if (rounded > page_size(m) - at)
        return NULL;
    m->state_used = (uint16_t)(at + rounded);
    m->state_live++;
    return m->state + at;       /* zeros: the page is fresh and never reused */
}

static void state_free(struct h2_mem *m)
{
    FC_ASSERT(m->state_live > 0);
    if (--m->state_live > 0 || m->creating)
        return;
    /* The session is gone: so is its page. */
    untrack(m, m->state);
    page_slab_free(slab_of(m), m->state);
    m->state = NULL;
}

/* A block of `size` bytes, zeroed if it comes from the slab. */
static void *alloc(struct h2_mem *m, size_t size, bool *zeroed)
{
    struct page_slab *slab = slab_of(m);
    void *p = NULL;
    *zeroed = true;
    if (slab && size >= H2_MEM_SLAB_MIN && (p = page_slab_alloc(slab, size)) != NULL) {
        track(m, p, m->creating && size >= H2_MEM_FRAMEBUF_MIN ? H2_MEM_FRAMEBUF : H2_MEM_BLOCK);
        return p;
    }
    if (slab && m->creating && size > 0 && size < H2_MEM_SLAB_MIN) {
        if (size == H2_MEM_HPACK_RING && !m->ring_seen) {
            /* The deflater's table: a page of its own, never written. */
            m->ring_seen = true;
            if ((p = page_slab_alloc(slab, size)) != NULL) {
                track(m, p, H2_MEM_BLOCK);
                return p;
            }
        } else if ((p = state_alloc(m, size)) != NULL) {
            return p;
        }
    }
    *zeroed = false;
    return malloc(size);
}

static void *mem_malloc(size_t size, void *ud)
{
    bool zeroed;
    return alloc(mem_of(ud), size, &zeroed);
}

static void mem_free(void *p, void *ud)
{
    struct h2_mem *m = mem_of(ud);
    if (p == NULL)
        return;
    if (in_state(m, p)) {
        state_free(m);
        return;
    }
    struct page_slab *slab = slab_of(m);
    if (slab && page_slab_owns(slab, p)) {
        untrack(m, p);
        page_slab_free(slab, p);
        return;
    }
    free(p);
}

static void *mem_calloc(size_t n, size_t size, void *ud)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    bool zeroed;
    void *p = alloc(mem_of(ud), n * size, &zeroed);
    if (p && !zeroed)
        memset(p, 0, n * size);
    return p;
}

static void *mem_realloc(void *p, size_t size, void *ud)
{
    struct h2_mem *m = mem_of(ud);
    if (p == NULL)
        return mem_malloc(size, ud);
    if (size == 0) {
        mem_free(p, ud);
        return NULL;
    }
    size_t have;
    if (in_state(m, p)) {
        /* Its size is not recorded: what follows it in the page is copied
         * too, which realloc allows (the bytes past the old size are
         * unspecified). */
        have = (size_t)(m->state + m->state_used - (char *)p);
    } else if (slab_of(m) && page_slab_owns(slab_of(m), p)) {
        have = page_slab_block_size(slab_of(m), p);
        if (size <= have)
            return p;
    } else {
        return realloc(p, size);    /* stays with malloc: its old size is malloc's to know */
    }
    bool zeroed;
    void *n = alloc(m, size, &zeroed);
    if (n == NULL)
        return NULL;
    memcpy(n, p, have < size ? have : size);
    mem_free(p, ud);
    return n;
}

struct h2_mem_pool *h2_mem_pool_new(size_t slab_bytes)
{
    struct h2_mem_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->magic = H2_MEM_POOL_MAGIC;
    p->slab = page_slab_new(slab_bytes);
    if (p->slab != NULL)
        p->ref = page_slab_alloc(p->slab, 1);
    if (p->ref == NULL) {
        h2_mem_pool_destroy(p);
        return NULL;
    }
    return p;
}

void h2_mem_pool_destroy(struct h2_mem_pool *p)
{
    if (p == NULL)
        return;
    CHECK_OBJ(p, H2_MEM_POOL_MAGIC);
    if (p->ref)
        page_slab_free(p->slab, p->ref);
    page_slab_destroy(p->slab);
    p->magic = 0;
    free(p);
}

void h2_mem_init(struct h2_mem *m, struct h2_mem_pool *pool)
{
    memset(m, 0, sizeof *m);
    m->magic = H2_MEM_MAGIC;
    if (pool != NULL)
        CHECK_OBJ(pool, H2_MEM_POOL_MAGIC);
    m->pool = pool;
}

nghttp2_mem h2_mem_allocator(struct h2_mem *m)
{
    CHECK_OBJ_NOTNULL(m, H2_MEM_MAGIC);
    return (nghttp2_mem){
        .mem_user_data = m,
        .malloc = mem_malloc,
        .free = mem_free,
        .calloc = mem_calloc,
        .realloc = mem_realloc,
    };
}

nghttp2_mem h2_mem_creating(struct h2_mem *m)
{
    CHECK_OBJ_NOTNULL(m, H2_MEM_MAGIC);
    m->creating = true;
    m->n_framebuf = 0;
    m->ring_seen = false;
    return h2_mem_allocator(m);
}

void h2_mem_created(struct h2_mem *m)
{
    CHECK_OBJ_NOTNULL(m, H2_MEM_MAGIC);
    m->creating = false;
    if (m->state != NULL && m->state_live == 0) {
        /* Creation failed and freed all it made. */
        untrack(m, m->state);
        page_slab_free(slab_of(m), m->state);
        m->state = NULL;
    }
    if (m->n_framebuf == 1)
        return;
    /* Not the nghttp2 this was written against: no block's contents are
     * assumed dead. */
    FC_ASSERT(m->n <= H2_MEM_TRACKED);
    for (unsigned i = 0; i < m->n; i++)
        if (m->kind[i] == H2_MEM_FRAMEBUF)
            m->kind[i] = H2_MEM_BLOCK;
}

/* The words of tracked block `i` that are packed. */
static size_t block_words(const struct h2_mem *m, unsigned i)
{
    if (m->kind[i] == H2_MEM_STATE)
        return m->state_used / sizeof(uint64_t);
    return page_slab_block_size(slab_of(m), m->block[i]) / sizeof(uint64_t);
}

/* What tracked block `i` is packed against: the pool's reference for
 * the state page (zeros for the others). */
static struct sparse_ref block_ref(const struct h2_mem *m, unsigned i)
{
    struct sparse_ref r = { 0 };
    if (m->kind[i] == H2_MEM_STATE) {
        const struct h2_mem_pool *pool = m->pool;
        r.words = pool->ref;
        r.lo = pool->ref_origin;
        r.hi = pool->ref_origin + page_size(m);
        r.delta = (uintptr_t)m->state - pool->ref_origin;
    }
    return r;
}

size_t h2_mem_sleep(struct h2_mem *m)
{
    CHECK_OBJ_NOTNULL(m, H2_MEM_MAGIC);
    FC_ASSERT(m->packed == NULL && !m->creating);
    if (m->n == 0)
        return 0;
    struct h2_mem_pool *pool = m->pool;
    if (!pool->ref_set && m->state != NULL) {
        /* The first state page packed is the reference: nothing was
         * packed against the zeros it held before. */
        memcpy(pool->ref, m->state, m->state_used);
        pool->ref_origin = (uintptr_t)m->state;
        pool->ref_set = true;
    }
    size_t len = 0, given = 0;
    for (unsigned i = 0; i < m->n; i++) {
        struct sparse_ref r = block_ref(m, i);
        if (m->kind[i] != H2_MEM_FRAMEBUF)
            len += sparse_pack_size(m->block[i], &r, block_words(m, i));
    }
    void *packed = malloc(len);
    if (packed == NULL) {
        /* No copy: only what needs none. */
        for (unsigned i = 0; i < m->n; i++) {
            if (m->kind[i] == H2_MEM_FRAMEBUF)
                given += page_slab_discard(slab_of(m), m->block[i]);
            else
                given += page_slab_discard_zeros(slab_of(m), m->block[i]);
        }
        return given;
    }
    char *out = packed;
    for (unsigned i = 0; i < m->n; i++) {
        struct sparse_ref r = block_ref(m, i);
        if (m->kind[i] != H2_MEM_FRAMEBUF)
            out += sparse_pack(out, m->block[i], &r, block_words(m, i));
        given += page_slab_discard(slab_of(m), m->block[i]);
    }
    FC_ASSERT((size_t)(out - (char *)packed) == len);
    m->packed = packed;
    return given;
}

void h2_mem_wake(struct h2_mem *m)
{
    CHECK_OBJ_NOTNULL(m, H2_MEM_MAGIC);
    if (m->packed == NULL)
        return;
    const char *in = m->packed;
    for (unsigned i = 0; i < m->n; i++) {
        struct sparse_ref r = block_ref(m, i);
        if (m->kind[i] != H2_MEM_FRAMEBUF)
            in += sparse_unpack(m->block[i], &r, block_words(m, i), in);
    }
    free(m->packed);
    m->packed = NULL;
}
