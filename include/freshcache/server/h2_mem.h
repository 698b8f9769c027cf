/*
 * h2_mem.h — nghttp2's memory for one HTTP/2 session, given back while
 * the connection is idle.
 *
 * Through nghttp2_mem, a session's blocks go where they can be given back
 * while the connection sits idle (no stream, nothing for nghttp2 to send,
 * nothing queued for the socket):
 *
 * - blocks of a page or more come from the worker's page slab
 *   (base/page_slab.h): nghttp2's outbound frame buffer (16 KiB,
 *   aob.framebufs) and its stream map (4 KiB);
 * - the small blocks nghttp2_session_server_new3 makes — the session
 *   struct itself (2.9 KiB: settings, windows, stream ids, the HPACK
 *   contexts), the inflater's HPACK table (1 KiB of entry pointers) and
 *   the frame buffer's chain — are carved one after another from one
 *   slab page, the session's *state page*;
 * - the deflater's HPACK table (1 KiB, the first of the two tables
 *   nghttp2 makes) gets a slab page of its own: our deflater indexes
 *   nothing (h2.c's DEFLATE_TABLE 0), so that page is never written and
 *   never costs memory.
 *
 * h2_mem_sleep, for an idle connection, gives all those pages back:
 *
 * - the frame buffer whatever it holds: nghttp2 packs each frame from the
 *   start of that buffer (nghttp2_bufs_reset before every frame) and
 *   reads it only to send the frame just packed; with nothing to send
 *   (nghttp2_session_want_write() == 0, so no frame in progress) its
 *   contents are never read again before being rewritten.  It is the one
 *   block of 16 KiB or more nghttp2_session_server_new3 allocates
 *   (nghttp2_bufs_init3, one chunk kept); if a future nghttp2 allocates
 *   more than one, none is treated as the frame buffer;
 * - every other block (the state page, the stream map, the tables) after
 *   copying its words into one small malloc'ed block, but for those equal
 *   to the pool's reference (the state page) or zero (the others)
 *   (base/sparse_pack.h: an idle session's state page packs to a few
 *   hundred bytes).
 *
 * h2_mem_wake puts those words back at the same addresses — the
 * session is then what it was, byte for byte — and must run before
 * nghttp2 is given the session again: h2.c reaches the session only
 * through h2_session(), which wakes it.  Pages nobody writes stay given
 * back (the empty stream map, the deflater's table); the frame buffer
 * comes back as fresh zeroed pages when the next frame is packed.
 *
 * Without a slab (it could not be mapped, or is full) blocks come from
 * malloc and are not given back; if the packed copy cannot be allocated,
 * sleeping gives back only the frame buffer and pages of zeros, which
 * need no copy.
 */
#ifndef FRESHCACHE_H2_MEM_H
#define FRESHCACHE_H2_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

struct page_slab;

/* Slab blocks of a session tracked for h2_mem_sleep; more (a session
 * with many streams' large header blocks at once) are freed as usual but
 * not given back while idle. */
#define H2_MEM_TRACKED 5
/* The smallest block that goes to the slab on its own (a page: smaller
 * ones would waste most of theirs). */
#define H2_MEM_SLAB_MIN 4096
/* The size of an HPACK table's ring of entries as nghttp2 makes it
 * (4096 / 32 entries). */
#define H2_MEM_HPACK_RING (128 * sizeof(void *))
/* The smallest block that can be the frame buffer. */
#define H2_MEM_FRAMEBUF_MIN 16384
/* Blocks carved from the state page are aligned to this. */
#define H2_MEM_STATE_ALIGN 16

enum h2_mem_kind {
    H2_MEM_STATE = 1,               /* the state page: packed up to state_used */
    H2_MEM_FRAMEBUF,                /* contents dead between frames: not packed */
    H2_MEM_BLOCK,                   /* any other: packed whole */
};

/* What one worker's sessions share: the slab their pages come from, and
 * the reference their state pages are packed against — a copy of the
 * first one packed, since one idle session's state differs from
 * another's in a few dozen words (pointers to its other blocks, its
 * windows, stream ids), where most of its non-zero words (callbacks,
 * settings, the allocator, pointers into the page itself once moved
 * with it) are the same in all. */
struct h2_mem_pool {
#define H2_MEM_POOL_MAGIC 0x4802900fu
    unsigned magic;
    struct page_slab *slab;
    void *ref;                      /* a page */
    bool ref_set;                   /* it holds the first state page packed (else zeros) */
    uintptr_t ref_origin;           /* where that page was: its pointers into itself
                                     * are expected moved with each page packed */
};

/* A pool whose slab reserves `slab_bytes` of address space, or NULL if it
 * cannot be made (sessions then use malloc). */
struct h2_mem_pool *h2_mem_pool_new(size_t slab_bytes);
/* Every session made from it must be deleted first. */
void h2_mem_pool_destroy(struct h2_mem_pool *p);

struct h2_mem {
#define H2_MEM_MAGIC 0x4802e3e3u
    unsigned magic;
    bool creating;                  /* inside nghttp2_session_server_new3 */
    bool ring_seen;                 /* the deflater's table is made */
    uint8_t n_framebuf;             /* frame-buffer candidates seen while creating */
    uint8_t n;                      /* tracked blocks */
    uint16_t state_used;            /* bytes of the state page carved */
    uint16_t state_live;            /* blocks carved and not freed */
    struct h2_mem_pool *pool;       /* the worker's (NULL: malloc only) */
    char *state;                    /* the state page, or NULL */
    void *packed;                   /* asleep: the tracked blocks' words (NULL: awake) */
    void *block[H2_MEM_TRACKED];
    uint8_t kind[H2_MEM_TRACKED];   /* enum h2_mem_kind */
};

/* Ready `m` to serve one session from `pool` (may be NULL). */
void h2_mem_init(struct h2_mem *m, struct h2_mem_pool *pool);
/* The allocator to pass to nghttp2_session_server_new3, which copies it
 * (the pointer need not outlive the call); call h2_mem_created() right
 * after it. */
nghttp2_mem h2_mem_creating(struct h2_mem *m);
/* The same allocator, outside session creation (tests). */
nghttp2_mem h2_mem_allocator(struct h2_mem *m);
void h2_mem_created(struct h2_mem *m);
/* The connection is idle (see above): give back what can be.  Returns
 * the bytes given back.  Unless it returns with h2_mem_asleep() false
 * (no slab, or no memory for the copy: only dead and zero pages went),
 * nghttp2 must not see the session before h2_mem_wake(). */
size_t h2_mem_sleep(struct h2_mem *m);
/* Restore what h2_mem_sleep packed (nothing if it is not asleep). */
void h2_mem_wake(struct h2_mem *m);
static inline bool h2_mem_asleep(const struct h2_mem *m) { return m->packed != NULL; }

#endif
