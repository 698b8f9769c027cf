/*
 * page_slab.h — page-aligned blocks whose memory can be given back to the
 * system while they stay allocated.
 *
 * A connection that sits idle for minutes may hold buffers it will fill
 * again before it reads them (a frame buffer) or that hold only zeros (an
 * empty hash table).  malloc cannot give such memory back: it is in the
 * middle of the heap.  A page slab hands out blocks of whole pages, carved
 * from one reserved range of address space per owner (one mapping, so a
 * thousand connections do not cost a thousand mappings against
 * vm.max_map_count), and gives their pages back with
 * madvise(MADV_DONTNEED): the block keeps its address and reads as zeros
 * until written again, when the kernel supplies fresh pages.
 *
 * Invariant: a block is all zeros when handed out (a fresh range is, and
 * a freed block's pages are given back at once), so page_slab_alloc is
 * also a calloc.
 *
 * Blocks are 1 to PAGE_SLAB_MAX_PAGES pages; a size above that, or a full
 * range, returns NULL and the caller uses malloc (page_slab_owns tells the
 * two apart on free).  Not thread-safe: one slab per worker.
 */
#ifndef FRESHCACHE_PAGE_SLAB_H
#define FRESHCACHE_PAGE_SLAB_H

#include <stdbool.h>
#include <stddef.h>

#define PAGE_SLAB_MAX_PAGES 16

struct page_slab;

/* A slab of `reserve` bytes of address space (rounded to pages), of which
 * only the pages of live blocks cost memory.  NULL if it cannot be
 * mapped. */
struct page_slab *page_slab_new(size_t reserve);
/* Unmap it; every block must have been freed. */
void page_slab_destroy(struct page_slab *s);

/* A zeroed block of at least `size` bytes (whole pages), or NULL if
 * `size` is 0, over PAGE_SLAB_MAX_PAGES pages, or the range is full. */
void *page_slab_alloc(struct page_slab *s, size_t size);
/* Free a block: its pages go back to the system now. */
void page_slab_free(struct page_slab *s, void *p);
/* Whether `p` is a block of this slab (any other pointer: false). */
bool page_slab_owns(const struct page_slab *s, const void *p);
/* The usable bytes of block `p` (its pages). */
size_t page_slab_block_size(const struct page_slab *s, const void *p);

/* The block's contents are no longer needed: its pages go back to the
 * system; it stays allocated and reads as zeros.  Returns the bytes given
 * back. */
size_t page_slab_discard(struct page_slab *s, void *p);
/* Give back the pages of block `p` that hold only zeros (lossless: they
 * read the same after).  Returns the bytes given back. */
size_t page_slab_discard_zeros(struct page_slab *s, void *p);

/* Pages of block `p` mapped now (mincore): written ones, and ones only
 * read since they were given back (mapped to the kernel's shared zero
 * page, which costs nothing). */
size_t page_slab_resident_pages(const struct page_slab *s, const void *p);
/* Blocks allocated now. */
size_t page_slab_live(const struct page_slab *s);

#endif
