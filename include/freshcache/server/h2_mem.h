/*
 * h2_mem.h — nghttp2's memory for one HTTP/2 session, given back while
 * the connection is idle.
 *
 * nghttp2 keeps, for a session's whole life, a 16 KiB buffer it packs
 * outbound frames into (nghttp2_session's aob.framebufs) and a 4 KiB
 * stream map: 20 of the 23 KiB an idle HTTP/2 connection used to cost
 * over an idle HTTP/1.1 one.  Through nghttp2_mem, blocks of a page or
 * more come from the worker's page slab (base/page_slab.h) and the rest
 * from malloc; h2_mem_idle, called when the connection has no stream,
 * nothing for nghttp2 to send and nothing queued for the socket, gives
 * back:
 *
 * - the frame buffer, whatever it holds.  nghttp2 packs each frame from
 *   the start of that buffer (nghttp2_bufs_reset before every frame) and
 *   reads it only to send the frame just packed; with nothing to send
 *   (nghttp2_session_want_write() == 0, so no frame in progress) its
 *   contents are never read again before being rewritten.  It is the one
 *   block of 16 KiB or more nghttp2_session_server_new3 allocates
 *   (nghttp2_bufs_init3, one chunk kept); if a future nghttp2 allocates
 *   more than one, none is treated as the frame buffer and only the rule
 *   below applies;
 * - every page of its other large blocks that holds only zeros (an empty
 *   stream map), which reads the same after.
 *
 * One block under a page goes to the slab as well: the HPACK deflater's
 * table (1 KiB of entry pointers, the first of the two HPACK tables
 * nghttp2_session_server_new3 makes).  Our deflater indexes nothing
 * (h2.c's DEFLATE_TABLE 0), so its page is never written and never costs
 * memory.  Not the inflater's: a browser's requests fill it, and a page
 * written for 1 KiB of pointers would cost more than malloc's 1 KiB.
 *
 * The next frame or stream touches them again and the kernel supplies
 * zeroed pages.  Without a slab (it could not be mapped, or is full) all
 * goes to malloc and nothing is given back.
 */
#ifndef FRESHCACHE_H2_MEM_H
#define FRESHCACHE_H2_MEM_H

#include <stdbool.h>
#include <stddef.h>

#include <nghttp2/nghttp2.h>

struct page_slab;

/* Large blocks of a session tracked for h2_mem_idle; more (a session
 * with many streams' large header blocks at once) are freed as usual but
 * not given back while idle. */
#define H2_MEM_TRACKED 4
/* The smallest block that goes to the slab (a page: smaller ones would
 * waste most of theirs). */
#define H2_MEM_SLAB_MIN 4096
/* The size of an HPACK table's ring of entries as nghttp2 makes it
 * (4096 / 32 entries). */
#define H2_MEM_HPACK_RING (128 * sizeof(void *))
/* The smallest block that can be the frame buffer. */
#define H2_MEM_FRAMEBUF_MIN 16384

struct h2_mem {
#define H2_MEM_MAGIC 0x4802e3e3u
    unsigned magic;
    nghttp2_mem mem;                /* what nghttp2 calls; mem_user_data is this */
    struct page_slab *slab;         /* the worker's (NULL: malloc only) */
    bool creating;                  /* inside nghttp2_session_server_new3 */
    bool ring_seen;                 /* the deflater's table is made */
    unsigned n_framebuf;            /* frame-buffer candidates seen while creating */
    unsigned n;                     /* tracked blocks */
    struct {
        void *p;
        bool framebuf;              /* contents dead between frames */
    } block[H2_MEM_TRACKED];
};

/* Ready `m` to serve one session from `slab` (may be NULL). */
void h2_mem_init(struct h2_mem *m, struct page_slab *slab);
/* The allocator to pass to nghttp2_session_server_new3; call
 * h2_mem_created() right after it. */
nghttp2_mem *h2_mem_creating(struct h2_mem *m);
void h2_mem_created(struct h2_mem *m);
/* The connection is idle (see above): give back what can be.  Returns
 * the bytes given back. */
size_t h2_mem_idle(struct h2_mem *m);

#endif
