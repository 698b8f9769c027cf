/*
 * h2_mem.c — see include/freshcache/server/h2_mem.h.
 */
#include "freshcache/server/h2_mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/page_slab.h"

static struct h2_mem *mem_of(void *ud)
{
    struct h2_mem *m = ud;
    CHECK_OBJ_NOTNULL(m, H2_MEM_MAGIC);
    return m;
}

static void track(struct h2_mem *m, void *p, size_t size)
{
    bool framebuf = m->creating && size >= H2_MEM_FRAMEBUF_MIN;
    m->n_framebuf += framebuf;
    if (m->n == H2_MEM_TRACKED)
        return;
    m->block[m->n].p = p;
    m->block[m->n].framebuf = framebuf;
    m->n++;
}

static void untrack(struct h2_mem *m, void *p)
{
    for (unsigned i = 0; i < m->n; i++) {
        if (m->block[i].p == p) {
            m->block[i] = m->block[--m->n];
            return;
        }
    }
}

/* Whether a block of `size` goes to the slab: a page or more, or the
 * deflater's HPACK table (see h2_mem.h). */
static bool slab_sized(struct h2_mem *m, size_t size)
{
    if (size >= H2_MEM_SLAB_MIN)
        return true;
    if (m->creating && size == H2_MEM_HPACK_RING && !m->ring_seen) {
        m->ring_seen = true;
        return true;
    }
    return false;
}

/* A block of `size` bytes, zeroed if it comes from the slab. */
static void *alloc(struct h2_mem *m, size_t size, bool *zeroed)
{
    void *p = NULL;
    if (m->slab && slab_sized(m, size) && (p = page_slab_alloc(m->slab, size)) != NULL) {
        track(m, p, size);
        *zeroed = true;
        return p;
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
    if (m->slab && page_slab_owns(m->slab, p)) {
        untrack(m, p);
        page_slab_free(m->slab, p);
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
    if (m->slab == NULL || !page_slab_owns(m->slab, p))
        return realloc(p, size);    /* stays with malloc: its old size is malloc's to know */
    size_t have = page_slab_block_size(m->slab, p);
    if (size <= have && size > 0)
        return p;
    if (size == 0) {
        mem_free(p, ud);
        return NULL;
    }
    bool zeroed;
    void *n = alloc(m, size, &zeroed);
    if (n == NULL)
        return NULL;
    memcpy(n, p, have);
    mem_free(p, ud);
    return n;
}

void h2_mem_init(struct h2_mem *m, struct page_slab *slab)
{
    memset(m, 0, sizeof *m);
    m->magic = H2_MEM_MAGIC;
    m->slab = slab;
    m->mem = (nghttp2_mem){
        .mem_user_data = m,
        .malloc = mem_malloc,
        .free = mem_free,
        .calloc = mem_calloc,
        .realloc = mem_realloc,
    };
}

nghttp2_mem *h2_mem_creating(struct h2_mem *m)
{
    CHECK_OBJ_NOTNULL(m, H2_MEM_MAGIC);
    m->creating = true;
    m->n_framebuf = 0;
    m->ring_seen = false;
    return &m->mem;
}

void h2_mem_created(struct h2_mem *m)
{
    CHECK_OBJ_NOTNULL(m, H2_MEM_MAGIC);
    m->creating = false;
    if (m->n_framebuf == 1)
        return;
    /* Not the nghttp2 this was written against: no block's contents are
     * assumed dead. */
    for (unsigned i = 0; i < m->n; i++)
        m->block[i].framebuf = false;
}

size_t h2_mem_idle(struct h2_mem *m)
{
    CHECK_OBJ_NOTNULL(m, H2_MEM_MAGIC);
    size_t given = 0;
    for (unsigned i = 0; i < m->n; i++) {
        if (m->block[i].framebuf)
            given += page_slab_discard(m->slab, m->block[i].p);
        else
            given += page_slab_discard_zeros(m->slab, m->block[i].p);
    }
    return given;
}
