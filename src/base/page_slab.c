/*
 * page_slab.c — see include/freshcache/base/page_slab.h.
 *
 * The range is carved front to back; a freed block goes on the free stack
 * of its size (in pages) and is handed out again before the range grows.
 * What each page is lives in a side table (one byte a page, in its own
 * reserved mapping so that only the part in use costs memory), never in
 * the blocks: a block whose pages were given back must not be touched to
 * be tracked.
 */
#include "freshcache/base/page_slab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "freshcache/base/assert.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#define NO_ASAN __attribute__((no_sanitize("address")))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define NO_ASAN
#endif

/* Side table byte: the block's pages at its first page, and whether it is
 * allocated; 0 on every other page. */
#define META_LIVE 0x80u
#define META_PAGES 0x7fu

struct free_stack {
    uint32_t *first;                /* first page index of each free block */
    size_t n, cap;
};

struct page_slab {
#define PAGE_SLAB_MAGIC 0x9a6e51abu
    unsigned magic;
    size_t page;                    /* bytes in a page */
    char *base;                     /* the reserved range */
    size_t n_pages;                 /* pages in it */
    size_t carved;                  /* pages handed out at least once */
    uint8_t *meta;                  /* one byte per page of the range */
    size_t meta_len;
    size_t live;                    /* blocks allocated */
    struct free_stack free[PAGE_SLAB_MAX_PAGES + 1];   /* by pages */
};

/* Address space only: pages cost memory once touched. */
static void *reserve(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

struct page_slab *page_slab_new(size_t bytes)
{
    struct page_slab *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->magic = PAGE_SLAB_MAGIC;
    s->page = (size_t)sysconf(_SC_PAGESIZE);
    s->n_pages = (bytes + s->page - 1) / s->page;
    if (s->n_pages == 0 || s->n_pages > UINT32_MAX)
        goto fail;
    s->meta_len = s->n_pages;
    s->base = reserve(s->n_pages * s->page);
    s->meta = reserve(s->meta_len);
    if (s->base == NULL || s->meta == NULL)
        goto fail;
    /* Pages, never huge pages: with transparent huge pages "always",
     * khugepaged would fill a 2 MiB range around a few live pages with
     * zeros, and a page given back inside a huge one is only split off
     * later.  Advisory: a kernel without THP says EINVAL, which is fine. */
    (void)madvise(s->base, s->n_pages * s->page, MADV_NOHUGEPAGE);
    return s;
fail:
    if (s->base)
        munmap(s->base, s->n_pages * s->page);
    if (s->meta)
        munmap(s->meta, s->meta_len);
    free(s);
    return NULL;
}

void page_slab_destroy(struct page_slab *s)
{
    if (s == NULL)
        return;
    CHECK_OBJ(s, PAGE_SLAB_MAGIC);
    FC_ASSERT(s->live == 0);
    UNPOISON(s->base, s->carved * s->page);     /* the next mapping here is not ours */
    AZ(munmap(s->base, s->n_pages * s->page));
    AZ(munmap(s->meta, s->meta_len));
    for (size_t i = 0; i < FC_ARRAY_LEN(s->free); i++)
        free(s->free[i].first);
    s->magic = 0;
    free(s);
}

bool page_slab_owns(const struct page_slab *s, const void *p)
{
    CHECK_OBJ_NOTNULL(s, PAGE_SLAB_MAGIC);
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)s->base;
    return a >= b && a < b + s->n_pages * s->page;
}

/* The first page index of live block `p`; anything else is a bug. */
static size_t block_index(const struct page_slab *s, const void *p)
{
    FC_ASSERT(page_slab_owns(s, p));
    size_t off = (size_t)((const char *)p - s->base);
    FC_ASSERT(off % s->page == 0);
    size_t i = off / s->page;
    FC_ASSERT(s->meta[i] & META_LIVE);
    return i;
}

static size_t block_pages(const struct page_slab *s, size_t i)
{
    return s->meta[i] & META_PAGES;
}

void *page_slab_alloc(struct page_slab *s, size_t size)
{
    CHECK_OBJ_NOTNULL(s, PAGE_SLAB_MAGIC);
    if (size == 0 || size > PAGE_SLAB_MAX_PAGES * s->page)
        return NULL;
    size_t pages = (size + s->page - 1) / s->page;
    struct free_stack *fs = &s->free[pages];
    size_t i;
    if (fs->n > 0) {
        i = fs->first[--fs->n];
    } else if (s->n_pages - s->carved >= pages) {
        i = s->carved;
        s->carved += pages;
    } else {
        return NULL;
    }
    FC_ASSERT(s->meta[i] == 0 || s->meta[i] == pages);
    s->meta[i] = (uint8_t)(pages | META_LIVE);
    s->live++;
    char *p = s->base + i * s->page;
    UNPOISON(p, pages * s->page);
    return p;
}

void page_slab_free(struct page_slab *s, void *p)
{
    CHECK_OBJ_NOTNULL(s, PAGE_SLAB_MAGIC);
    size_t i = block_index(s, p);
    size_t pages = block_pages(s, i);
    struct free_stack *fs = &s->free[pages];
    if (fs->n == fs->cap) {
        size_t cap = fs->cap ? 2 * fs->cap : 16;
        uint32_t *n = realloc(fs->first, cap * sizeof *n);
        AN(n);
        fs->first = n;
        fs->cap = cap;
    }
    /* Given back now: the slab's memory is what live blocks use, and the
     * next owner gets zeros (the invariant). */
    AZ(madvise(p, pages * s->page, MADV_DONTNEED));
    POISON(p, pages * s->page);
    s->meta[i] = (uint8_t)pages;
    fs->first[fs->n++] = (uint32_t)i;
    s->live--;
}

size_t page_slab_block_size(const struct page_slab *s, const void *p)
{
    CHECK_OBJ_NOTNULL(s, PAGE_SLAB_MAGIC);
    return block_pages(s, block_index(s, p)) * s->page;
}

size_t page_slab_discard(struct page_slab *s, void *p)
{
    size_t len = page_slab_block_size(s, p);
    AZ(madvise(p, len, MADV_DONTNEED));
    return len;
}

/* Reads the whole page, including what a sanitizer may not know the
 * owner uses (a block's tail past the size asked for). */
NO_ASAN static bool page_is_zero(const char *p, size_t len)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    for (size_t i = 0; i < len / sizeof *w; i++)
        if (w[i] != 0)
            return false;
    return true;
}

size_t page_slab_discard_zeros(struct page_slab *s, void *p)
{
    size_t len = page_slab_block_size(s, p), given = 0;
    char *c = p, *run = NULL;
    /* Runs of zero pages, one madvise each. */
    for (size_t off = 0; off <= len; off += s->page) {
        bool zero = off < len && page_is_zero(c + off, s->page);
        if (zero && run == NULL)
            run = c + off;
        if (!zero && run != NULL) {
            AZ(madvise(run, (size_t)(c + off - run), MADV_DONTNEED));
            given += (size_t)(c + off - run);
            run = NULL;
        }
    }
    return given;
}

size_t page_slab_resident_pages(const struct page_slab *s, const void *p)
{
    size_t len = page_slab_block_size(s, p), pages = len / s->page, n = 0;
    unsigned char vec[PAGE_SLAB_MAX_PAGES];
    AZ(mincore((void *)(uintptr_t)p, len, vec));
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n;
}

size_t page_slab_live(const struct page_slab *s)
{
    CHECK_OBJ_NOTNULL(s, PAGE_SLAB_MAGIC);
    return s->live;
}
