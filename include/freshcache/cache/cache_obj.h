/*
 * cache_obj.h — one stored response: its pre-serialised head, the metadata
 * freshness and conditionals need, and a shared body.
 *
 * Reference counted (obj_ref/obj_unref); the index holds one reference while
 * the object is linked.  Once READY, nothing in an object changes except its
 * index linkage, so any thread may read it without locks.
 */
#ifndef FRESHCACHE_CACHE_OBJ_H
#define FRESHCACHE_CACHE_OBJ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_body.h"
#include "freshcache/http/cache_control.h"
#include "freshcache/cache/cache_key.h"
#include "freshcache/cache/freshness.h"

struct evbuffer;
struct http_msg;

/* The bits of o->aflags: one atomic byte, changed by atomic or/and. */
enum {
    OBJ_READY = 1,              /* published: BUSY until then (obj_ready) */
    OBJ_SOFT_PURGED = 2,        /* treat as stale: revalidate on next use */
    OBJ_REVALIDATING = 4,       /* one background refresh at a time */
};

/* Laid out for size: every stored object carries one, so pointers and
 * 64-bit fields come first, narrow ones last, no padding between; the
 * directives and times are kept packed (struct cc_packed, struct
 * stored_timing) and durations in 32 bits (every one is clamped to
 * CC_DELTA_MAX = 2^31 anyway).  The key is allocated with the object; the
 * head, the ETag and the tags share one allocation (obj_head()).  What a
 * sealed object never needs (the head and Vary pointers, the placeholder's
 * outcome) is not here but in struct obj_fill, after the key of an object
 * that is not sealed. */
struct cache_obj {
#define OBJ_MAGIC 0x0bc0ffeeu
    unsigned magic;
    atomic_uint refcnt;

    /* index linkage: guarded by the shard mutex */
    struct cache_obj *hash_next;
    TAILQ_ENTRY(cache_obj) lru;
    union {
        uint64_t last_used;             /* READY: monotonic ms of the last hit */
        uint64_t epoch;                 /* BUSY placeholders: generation_epoch() at creation */
    };

    uint64_t hash;
    /* The body: a shared cache_body (filled while read, chunked), or, for
     * a sealed object and the 304-merged copies of one (inline_body), the
     * bytes at the end of a sealed object's block (obj_seal, one block:
     * the object, key, Vary, head block and the complete body, freed
     * together; obj_head and obj_vary find them there).  A sealed object
     * keeps its body's length here; a merged copy holds a reference to the
     * sealed object whose bytes it serves (obj_body_owner).  Read through
     * obj_body_*(). */
    union {
        struct cache_body *body;        /* !inline_body */
        struct cache_obj *body_owner;   /* inline_body && !sealed */
        uint64_t sealed_len;            /* sealed */
    };

    struct stored_timing timing;        /* obj_age(), obj_timing() */

    struct cc_packed cc;                /* response directives (obj_cc()) */
    uint32_t lifetime;                  /* freshness lifetime, seconds */
    uint32_t stale_while_revalidate;    /* seconds of allowed staleness, policy or origin */
    uint32_t stale_if_error;

    /* Deploy generations in force when the fetch that stored it *began*
     * (generation.h), their low 32 bits: the object is current only while
     * they still equal the numbers in force (obj_current).  A number would
     * have to move by exactly 2^32 between a store and a lookup to be
     * mistaken. */
    uint32_t generation;
    uint32_t policy_gen;
    uint32_t policy_layout;             /* generation_layout() the policy index refers to */

    /* keep_after_deploy: until when (wall clock, unsigned 32-bit seconds:
     * to 2106) the copy outlives generation sweeps, as the fallback for an
     * origin that dropped it (404/410); 0: not kept.  obj_kept(). */
    uint32_t keep_until;
    uint32_t chash_first_seen;          /* when this URL first had this hash (the same) */
    uint32_t key_len;
    uint32_t vary_len;
    uint32_t head_len;
    uint32_t etag_len;
    uint32_t tags_len;
    uint32_t seq;                       /* link order in its shard, newest wins a tie
                                         * (obj_seq_after: wraps) */
    uint32_t charged;                   /* bytes counted against the bound (obj_charge:
                                         * at most 4 GiB) */
    short status;
    uint8_t fields_off;                 /* where the fields start in head: after the
                                         * status line, its reason at most 127 bytes */
    int8_t policy;                      /* index in cfg->policies (CONFIG_MAX_POLICIES
                                         * 64), -1: none */
    _Atomic uint8_t aflags;             /* OBJ_READY, OBJ_SOFT_PURGED, OBJ_REVALIDATING */

    /* Flags in bits.  A bit field's write rewrites its neighbours, so
     * the bits share a byte only with bits written by the same party at
     * the same stage: these are set by whoever makes or fills the object,
     * before it is published (OBJ_READY) or shared. */
    bool has_etag : 1;                  /* the origin sent one (obj_etag) */
    bool private : 1;                   /* a response that is not stored: one reader */
    bool sie_from_policy : 1;           /* stale_if_error set by the operator, not the origin */
    bool policy_ttl : 1;                /* the policy's ttl, not the origin's headers, set
                                         * the lifetime (policy_lifetime) */
    bool authorized : 1;                /* stored from a request with Authorization (RFC
                                         * 9111 §3.5): the policy's ttl and
                                         * response_cache_control do not apply */
    /* Content hash of the complete body (cache.etag: content-hash), in
     * the head's allocation (obj_chash), which has room for it when the
     * head was made in content-hash mode (chash_room): 32 bytes only where
     * they are used. */
    bool chash_room : 1;
    bool : 0;
    /* Set when the object is made, before anyone else sees it; read by
     * readers at any time, so not in a byte written later. */
    bool sealed : 1;                    /* one block (obj_seal; see body above) */
    bool inline_body : 1;               /* body_owner or sealed_len, not body (above) */
    bool : 0;
    /* Written under the shard mutex only. */
    bool linked : 1;
    bool sealed_away : 1;               /* store_seal replaced it */
    /* Written by the fetch after publication, before the body turns
     * COMPLETE, read only after: a byte of its own. */
    bool has_chash;

    char key[];                         /* key_len bytes and a NUL */
};
/* The bytes of an object with a key of `key_len`: the key starts where
 * the fields end, not at sizeof (which rounds up to 8). */
#define OBJ_SIZE(key_len) (offsetof(struct cache_obj, key) + (size_t)(key_len) + 1)

/* An object that is not sealed (one being filled, a placeholder, a 304
 * merge's copy, a large or pass-through response) has this after its key,
 * 8-aligned (obj_fill): the pointers to its separately allocated head
 * block and Vary data, and what became of it as a placeholder.  A sealed
 * object finds its head and Vary in its own block instead, and was never
 * a placeholder. */
struct obj_fill {
    /* The stored head, pre-serialised: "HTTP/1.1 200 OK\r\n" then fields,
     * each "Name: value\r\n", without Content-Length, Transfer-Encoding,
     * hop-by-hop fields, Age, or the final CRLF.  The same allocation holds
     * after it the ETag (obj_etag), the tags (obj_tags) and the content
     * hash (obj_chash), each where the lengths before it end. */
    char *head;
    /* Vary: NUL-separated lower-case field names, then for each the
     * normalised request value; NULL when the response has no Vary. */
    char *vary;
    /* What became of a placeholder (an object a fetch was given to fill,
     * linked as BUSY in the store or not linked at all).  The fetch writes
     * these before it publishes the object (OBJ_READY) or fails its body;
     * readers look only after.  A failed placeholder (failed) has a reason
     * and no merged copy: one pointer holds either. */
    union {
        struct cache_obj *merged;       /* a 304 refreshed the stale copy: serve this one */
        const char *fail_reason;        /* failed: static text */
    };
    int32_t origin_ms;                  /* request sent to response head, -1: none */
    short fail_status;                  /* failed before a head: 502 or 504 */
    bool failed;                        /* obj_fail: fail_reason, not merged */
    bool kept;                          /* merged is a copy kept for an origin's 404/410
                                         * (keep_after_deploy), not a refresh */
};
static inline size_t obj_fill_off(size_t key_len)
{
    return (OBJ_SIZE(key_len) + _Alignof(struct obj_fill) - 1) &
           ~(_Alignof(struct obj_fill) - 1);
}
/* The allocation of an object that is not sealed. */
#define OBJ_FILL_SIZE(key_len) (obj_fill_off(key_len) + sizeof(struct obj_fill))
static inline struct obj_fill *obj_fill(const struct cache_obj *o)
{
    FC_ASSERT(!o->sealed);
    return (struct obj_fill *)((char *)o + obj_fill_off(o->key_len));
}
/* The head block (see struct obj_fill), NULL before obj_set_head. */
static inline char *obj_head(const struct cache_obj *o)
{
    return o->sealed ? (char *)o->key + o->key_len + 1 + o->vary_len : obj_fill(o)->head;
}
/* The Vary data (see struct obj_fill), NULL when the response has none. */
static inline const char *obj_vary(const struct cache_obj *o)
{
    if (o->sealed)
        return o->vary_len ? o->key + o->key_len + 1 : NULL;
    return obj_fill(o)->vary;
}
/* The placeholder's outcome (struct obj_fill): a sealed object has none. */
static inline struct cache_obj *obj_merged(const struct cache_obj *o)
{
    return o->sealed ? NULL : obj_fill(o)->merged;
}
static inline bool obj_was_kept(const struct cache_obj *o)
{
    return !o->sealed && obj_fill(o)->kept;
}
static inline bool obj_failed(const struct cache_obj *o)
{
    return !o->sealed && obj_fill(o)->failed;
}

/* Was `a` linked after `b` in their shard?  32-bit sequence numbers wrap
 * after 2^32 links of one shard; compared as a signed distance, the order
 * holds for copies linked within 2^31 links of each other. */
static inline bool obj_seq_after(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) > 0;
}

/* The origin's ETag as it sent it (NUL-terminated, etag_len bytes), or
 * NULL: right after the head in its allocation. */
static inline const char *obj_etag(const struct cache_obj *o)
{
    return o->has_etag ? obj_head(o) + o->head_len : NULL;
}
/* Surrogate-Key / Cache-Tag values, each NUL-terminated, back to back
 * (tags_len bytes), or NULL: after the ETag. */
static inline const char *obj_tags(const struct cache_obj *o)
{
    return o->tags_len ? obj_head(o) + o->head_len + (o->has_etag ? o->etag_len + 1 : 0) : NULL;
}
/* The content hash's 32 bytes, after the ETag and tags (see chash_room). */
static inline unsigned char *obj_chash(const struct cache_obj *o)
{
    FC_ASSERT(o->chash_room && obj_head(o) != NULL);
    return (unsigned char *)obj_head(o) + o->head_len + (o->has_etag ? o->etag_len + 1 : 0) +
           o->tags_len;
}
#define OBJ_CHASH_LEN 32

/* Bytes of the head's allocation: head, ETag and NUL, tags, the hash. */
static inline size_t obj_head_block_len(const struct cache_obj *o)
{
    return o->head_len + (o->has_etag ? o->etag_len + 1 : 0) + o->tags_len +
           (o->chash_room ? OBJ_CHASH_LEN : 0);
}

/* ---- the body, whichever way it is held ---------------------------------
 * Readers go through these: a chunked body (cache_body.h) may still be
 * filling; an inline one is complete, so it never makes anyone wait. */

/* Sealing copies a complete body of at most this many bytes (obj_seal):
 * beyond it the copy costs more than the bytes it saves matter. */
#define OBJ_SEAL_MAX (64u * 1024)

/* The sealed object whose block holds an inline body's bytes: o itself
 * or, for a 304 merge's copy, the object it holds. */
static inline struct cache_obj *obj_body_owner(const struct cache_obj *o)
{
    FC_ASSERT(o->inline_body);
    struct cache_obj *w = o->sealed ? (struct cache_obj *)o : o->body_owner;
    FC_ASSERT(w->sealed);
    return w;
}
/* Where an inline body's bytes are: after its owner's head block. */
static inline const char *obj_inline_data(const struct cache_obj *o)
{
    const struct cache_obj *w = obj_body_owner(o);
    return obj_head(w) + obj_head_block_len(w);
}
static inline enum body_state obj_body_state(const struct cache_obj *o)
{
    return o->inline_body ? BODY_COMPLETE : body_state(o->body);
}
static inline size_t obj_body_total(const struct cache_obj *o)
{
    return o->inline_body ? obj_body_owner(o)->sealed_len : body_total(o->body);
}
/* The Content-Length the origin declared, UINT64_MAX: none (an inline
 * body's length is known). */
static inline uint64_t obj_body_expected(const struct cache_obj *o)
{
    return o->inline_body ? obj_body_owner(o)->sealed_len : o->body->expected;
}
/* body_read_into(): references to the bytes, each holding the body (an
 * inline body: its owner object) until the evbuffer lets go of it. */
size_t obj_body_read(struct cache_obj *o, struct body_cursor *cur, struct evbuffer *out,
                     size_t max);
/* body_cursor_seek() */
void obj_body_seek(struct cache_obj *o, struct body_cursor *cur, size_t pos);
/* body_wait(): an inline body is complete, so never (false). */
bool obj_body_wait(struct cache_obj *o, struct body_waiter *w, size_t pos, enum body_state seen);
/* body_unwait(): nothing to undo for an inline body. */
void obj_body_unwait(struct cache_obj *o, struct body_waiter *w);
/* body_wake(): an inline body has no waiters. */
void obj_body_wake(struct cache_obj *o);

/* A sealed copy of `o` (READY, stored, its chunked body COMPLETE and at
 * most OBJ_SEAL_MAX bytes): one allocation holding the object, key, Vary,
 * head block and body, so a stored small object costs one malloc and no
 * body or chunk header.  Not linked, reference count 1; the index-only
 * fields (linkage, charged, revalidating) start clear and store_seal fills
 * them in under the shard lock.  NULL when `o` does not qualify. */
struct cache_obj *obj_seal(const struct cache_obj *o);

/* The stored directives and timing, as the parsed structs. */
static inline void obj_cc(const struct cache_obj *o, struct cache_control *out)
{
    cc_unpack(&o->cc, out);
}
static inline void obj_timing(const struct cache_obj *o, struct resp_timing *out)
{
    stored_timing_unpack(&o->timing, out);
}
/* Store a response's directives and timing in `o`. */
static inline void obj_set_cc_timing(struct cache_obj *o, const struct cache_control *cc,
                                     const struct resp_timing *t)
{
    cc_pack(cc, &o->cc);
    stored_timing_pack(t, &o->timing);
}
/* current_age() of `o` at `now` (RFC 9111 §4.2.3). */
static inline int64_t obj_age(const struct cache_obj *o, time_t now)
{
    return stored_age(&o->timing, now);
}
/* A wall-clock time in the unsigned 32-bit seconds an object keeps
 * (keep_until, chash_first_seen): 1970 to 2106, clamped. */
static inline uint32_t obj_time32(time_t t)
{
    return t < 0 ? 0 : (uint64_t)t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}
/* A lifetime or staleness allowance, in the 32 bits an object keeps:
 * clamped to [0, CC_DELTA_MAX]. */
static inline uint32_t obj_delta(int64_t v)
{
    return v < 0 ? 0 : v > CC_DELTA_MAX ? (uint32_t)CC_DELTA_MAX : (uint32_t)v;
}

/* A new BUSY object for key `k` (NULL: an object that will never be
 * stored, for a pass-through). */
struct cache_obj *obj_new(const struct cache_key *k);
/* A new BUSY object for `stale`'s key and Vary variant that shares its
 * body (for a 304 merge); policy carried over, the content hash with the
 * head (obj_copy_head, or obj_set_head inheriting from `stale`). */
struct cache_obj *obj_new_sharing(const struct cache_obj *stale);
/* Give `o` (no head yet) a copy of `from`'s head, ETag and tags. */
void obj_copy_head(struct cache_obj *o, const struct cache_obj *from);
/* The fetch filling placeholder `o` publishes it: READY, waiters woken.
 * For an object linked as BUSY in the store use store_publish instead. */
void obj_publish(struct cache_obj *o);
/* The fetch filling `o` failed before any head: waiters see
 * BODY_FAILED and obj_fill(o)->fail_status. */
void obj_fail(struct cache_obj *o, int status, const char *reason);
void obj_ref(struct cache_obj *o);
void obj_unref(struct cache_obj *o);
static inline bool obj_ready(const struct cache_obj *o)
{
    return atomic_load_explicit(&o->aflags, memory_order_acquire) & OBJ_READY;
}
/* BUSY -> READY: what the filler wrote before is visible to whoever sees
 * obj_ready(). */
static inline void obj_set_ready(struct cache_obj *o)
{
    atomic_fetch_or_explicit(&o->aflags, OBJ_READY, memory_order_release);
}
static inline bool obj_soft_purged(const struct cache_obj *o)
{
    return atomic_load_explicit(&o->aflags, memory_order_relaxed) & OBJ_SOFT_PURGED;
}
static inline void obj_soft_purge(struct cache_obj *o)
{
    atomic_fetch_or_explicit(&o->aflags, OBJ_SOFT_PURGED, memory_order_relaxed);
}
/* Claim the one background refresh of `o`: false when one is running. */
static inline bool obj_revalidate_claim(struct cache_obj *o)
{
    return !(atomic_fetch_or(&o->aflags, OBJ_REVALIDATING) & OBJ_REVALIDATING);
}
static inline void obj_revalidate_release(struct cache_obj *o)
{
    atomic_fetch_and(&o->aflags, (uint8_t)~OBJ_REVALIDATING);
}

/* Serialise `resp` into obj_head(o) (status line with `reason`, fields less
 * hop-by-hop, Content-Length and Age; Date added if missing; Via appended)
 * and copy its ETag. */
struct head_rewrite {
    const char *cache_control;          /* replaces Cache-Control, or NULL */
    const struct cache_obj *inherit;    /* ETag and tags when resp has none (a 304 merge) */
    bool drop_validators;               /* content-hash mode: ETag, Last-Modified are ours
                                         * (and the head has room for the hash) */
    bool via_done;                      /* the head already names us in Via (a 304 merge) */
    bool passthrough;                   /* not stored: keep the origin's Age and Cache-Status */
    bool drop_set_cookie;               /* the policy's set_cookie: strip */
};
void obj_set_head(struct cache_obj *o, const struct http_msg *resp, const char *reason,
                  time_t response_time, const struct head_rewrite *rw);
/* Is the object stored under the generations now in force? */
struct generations;
bool obj_current(const struct cache_obj *o, const struct generations *g);
/* Content-hash validators (cache.etag: content-hash), the ETag made from
 * the body's hash and Last-Modified from when that hash was first seen,
 * describe a representation of the resource, which only a 2xx carries: a
 * stored 404 or redirect gets neither, and its hash is not remembered as
 * the URL's.  The fetch hashes a body (has_chash) only when this holds. */
static inline bool obj_content_etag_applies(const struct cache_obj *o)
{
    return o->status >= 200 && o->status < 300;
}
/* Is `o` within its keep_after_deploy window at wall-clock `now`?  Such a
 * copy of an older generation is never served as current, but it stays
 * stored (first in line for eviction) as the stand-in for an origin that
 * no longer has the resource. */
static inline bool obj_kept(const struct cache_obj *o, time_t now)
{
    return o->keep_until != 0 && now <= (time_t)o->keep_until;
}
/* Hex of the content hash into out[65]. */
void obj_chash_hex(const struct cache_obj *o, char out[65]);
/* Response fields meant for this cache only, never sent to clients:
 * purge tags and targeted cache-control fields (RFC 9213). */
bool obj_field_internal(const char *name, size_t len);
/* Parse obj_head(o)'s fields back into a message (for a 304 merge). */
void obj_head_to_msg(const struct cache_obj *o, struct http_msg *m);
const char *obj_reason(const struct cache_obj *o, size_t *len);
/* The stored head's fields named `name` (case-insensitive), one per call:
 * start with iter at 0; true with the value and its length pointing into
 * obj_head(o) (valid while `o` is referenced), false after the last. */
bool obj_field_next(const struct cache_obj *o, const char *name, size_t *iter,
                    const char **value, size_t *vlen);

#endif
