/*
 * cache_store.c — sharded index, LRU and byte bound.
 * See include/freshcache/cache_store.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/generation.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/http/http_msg.h"

TAILQ_HEAD(obj_list, cache_obj);

/* A shard's index starts with this many buckets and never shrinks below. */
#define SHARD_MIN_BUCKETS 1024

struct shard {
    pthread_rwlock_t mu;        /* read: store_lookup's shared path; write: all else */
    struct cache_obj **buckets;
    size_t n_buckets;           /* power of two */
    size_t count;               /* linked objects */
    uint32_t seq;               /* last link sequence number (wraps: obj_seq_after) */
    struct obj_list lru;        /* READY objects, most recent first */
} __attribute__((aligned(64)));

/* Every change to a shard (its index, its LRU order, an object's linkage
 * or last_used) is made under the write lock; only store_lookup's shared
 * path reads under the read lock.  Why not a mutex: a popular object puts
 * every worker on one shard, and with more runnable threads than CPUs a
 * worker preempted inside the critical section put the others to sleep on
 * the futex until the scheduler ran it again — milliseconds, seen as the
 * p99 of hits with 2 workers (docs/performance.md). */
static void shard_lock(struct shard *sh)
{
    AZ(pthread_rwlock_wrlock(&sh->mu));
}

static void shard_rdlock(struct shard *sh)
{
    AZ(pthread_rwlock_rdlock(&sh->mu));
}

static void shard_unlock(struct shard *sh)
{
    AZ(pthread_rwlock_unlock(&sh->mu));
}

struct cache_store {
#define STORE_MAGIC 0x5702e000u
    unsigned magic;
    unsigned n_shards;          /* power of two */
    uint64_t max_bytes;
    _Atomic uint64_t bytes;
    _Atomic uint64_t objects;
    _Atomic uint64_t evictions;
    pthread_mutex_t evict_mu;   /* one evictor at a time; never held with a shard lock */
    unsigned sweep_shard;       /* store_sweep's cursor (one caller) */
    size_t sweep_bucket;
    unsigned sweep_shards_left; /* of the pass under way */
    uint64_t sweep_pass_epoch;  /* generation_epoch() when that pass began */
    uint64_t sweep_clean_epoch; /* a whole pass found nothing older than this epoch */
    struct shard *shards;
};

static size_t obj_footprint(const struct cache_obj *o)
{
    size_t fixed = sizeof *o + o->key_len + o->vary_len + o->head_len + o->etag_len;
    if (o->inline_body)     /* a merged copy counts the bytes it shares, as below */
        return fixed + obj_body_owner(o)->sealed_len;
    return fixed + sizeof(struct cache_body) + o->body->allocated;
}

/* What an object is charged, in the 32 bits it keeps: an object over
 * 4 GiB counts as 4 GiB against the bound (cache.memory itself is 64-bit;
 * only such an object's share is capped). */
static uint32_t charge_of(size_t bytes)
{
    return bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)bytes;
}

/* ---- store ------------------------------------------------------------ */

struct cache_store *store_new(uint64_t max_bytes, unsigned n_shards)
{
    unsigned n = 1;
    while (n < n_shards)
        n <<= 1;
    struct cache_store *s = calloc(1, sizeof *s);
    AN(s);
    s->magic = STORE_MAGIC;
    s->n_shards = n;
    s->max_bytes = max_bytes;
    s->sweep_clean_epoch = UINT64_MAX;  /* no pass yet */
    AZ(pthread_mutex_init(&s->evict_mu, NULL));
    /* Writers first: a stream of hits on one hot shard must not hold off
     * the insert or sweep waiting for it.  Nobody takes a shard lock
     * twice, so the non-recursive kind is safe. */
    pthread_rwlockattr_t attr;
    AZ(pthread_rwlockattr_init(&attr));
    AZ(pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP));
    s->shards = aligned_alloc(64, sizeof(struct shard) * n);
    AN(s->shards);
    for (unsigned i = 0; i < n; i++) {
        struct shard *sh = &s->shards[i];
        memset(sh, 0, sizeof *sh);
        AZ(pthread_rwlock_init(&sh->mu, &attr));
        sh->n_buckets = SHARD_MIN_BUCKETS;
        sh->buckets = calloc(sh->n_buckets, sizeof *sh->buckets);
        AN(sh->buckets);
        TAILQ_INIT(&sh->lru);
    }
    AZ(pthread_rwlockattr_destroy(&attr));
    return s;
}

static struct shard *shard_of(struct cache_store *s, uint64_t hash)
{
    return &s->shards[(unsigned)(hash >> 48) & (s->n_shards - 1)];
}

static struct cache_obj **bucket_of(struct shard *sh, uint64_t hash)
{
    return &sh->buckets[hash & (sh->n_buckets - 1)];
}

/* Rehash into `nb` buckets (a power of two). */
static void shard_resize(struct shard *sh, size_t nb)
{
    struct cache_obj **b = calloc(nb, sizeof *b);
    AN(b);
    for (size_t i = 0; i < sh->n_buckets; i++) {
        struct cache_obj *o = sh->buckets[i];
        while (o) {
            struct cache_obj *next = o->hash_next;
            struct cache_obj **slot = &b[o->hash & (nb - 1)];
            o->hash_next = *slot;
            *slot = o;
            o = next;
        }
    }
    free(sh->buckets);
    sh->buckets = b;
    sh->n_buckets = nb;
}

static void shard_grow(struct shard *sh)
{
    shard_resize(sh, sh->n_buckets * 2);
}

size_t store_shrink_index(struct cache_store *s)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    size_t freed = 0;
    for (unsigned i = 0; i < s->n_shards; i++) {
        struct shard *sh = &s->shards[i];
        shard_lock(sh);
        /* Below a quarter full: down to at most half full, so that the
         * next growth (past full) is far. */
        if (sh->n_buckets > SHARD_MIN_BUCKETS && sh->count < sh->n_buckets / 4) {
            size_t nb = SHARD_MIN_BUCKETS;
            while (nb < 2 * sh->count)
                nb *= 2;
            freed += (sh->n_buckets - nb) * sizeof *sh->buckets;
            shard_resize(sh, nb);
        }
        shard_unlock(sh);
    }
    return freed;
}

static bool same_key(const struct cache_obj *o, uint64_t hash, const char *key, size_t len)
{
    return o->hash == hash && o->key_len == len && memcmp(o->key, key, len) == 0;
}

static bool same_variant(const struct cache_obj *a, const struct cache_obj *b)
{
    return a->vary_len == b->vary_len &&
           (a->vary_len == 0 || memcmp(obj_vary(a), obj_vary(b), a->vary_len) == 0);
}

/* Link under the shard lock; the index takes a reference. */
static void link_locked(struct cache_store *s, struct shard *sh, struct cache_obj *o)
{
    FC_ASSERT(!o->linked);
    if (sh->count + 1 > sh->n_buckets)
        shard_grow(sh);
    struct cache_obj **slot = bucket_of(sh, o->hash);
    o->hash_next = *slot;
    *slot = o;
    o->linked = true;
    o->seq = ++sh->seq;
    sh->count++;
    obj_ref(o);
    atomic_fetch_add_explicit(&s->objects, 1, memory_order_relaxed);
}

/* Unlink under the shard lock.  Returns the object whose index reference
 * the caller must drop after unlocking. */
static struct cache_obj *unlink_locked(struct cache_store *s, struct shard *sh, struct cache_obj *o)
{
    FC_ASSERT(o->linked);
    struct cache_obj **pp = bucket_of(sh, o->hash);
    while (*pp != o) {
        FC_ASSERT(*pp != NULL);
        pp = &(*pp)->hash_next;
    }
    *pp = o->hash_next;
    o->hash_next = NULL;
    if (obj_ready(o))
        TAILQ_REMOVE(&sh->lru, o, lru);
    o->linked = false;
    sh->count--;
    atomic_fetch_sub_explicit(&s->bytes, o->charged, memory_order_relaxed);
    o->charged = 0;
    atomic_fetch_sub_explicit(&s->objects, 1, memory_order_relaxed);
    return o;
}

void store_free(struct cache_store *s)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    for (unsigned i = 0; i < s->n_shards; i++) {
        struct shard *sh = &s->shards[i];
        for (size_t b = 0; b < sh->n_buckets; b++) {
            while (sh->buckets[b]) {
                struct cache_obj *o = unlink_locked(s, sh, sh->buckets[b]);
                obj_unref(o);
            }
        }
        free(sh->buckets);
        AZ(pthread_rwlock_destroy(&sh->mu));
    }
    free(s->shards);
    pthread_mutex_destroy(&s->evict_mu);
    s->magic = 0;
    free(s);
}

/* A copy of an older generation kept for keep_after_deploy: first in line
 * for eviction (LRU tail, and a last use older than any other shard's
 * tail), however recently it was served before the bump.  Lock held. */
static void demote_locked(struct shard *sh, struct cache_obj *o)
{
    if (o->last_used == 0)
        return;
    o->last_used = 0;
    TAILQ_REMOVE(&sh->lru, o, lru);
    TAILQ_INSERT_TAIL(&sh->lru, o, lru);
}

/* What one bucket chain holds for a key, read without changing anything. */
struct chain_scan {
    struct cache_obj *found;    /* the most recent READY match for the request */
    struct cache_obj *busy;     /* a placeholder made since the last bump */
    bool any_ready;             /* some current READY copy, matching or not */
    bool has_old;               /* copies of older generations to drop */
};

static void scan_chain(struct shard *sh, const struct cache_key *k, const struct http_msg *req,
                       uint64_t epoch, const struct generations *gens, bool drop_old,
                       struct chain_scan *sc)
{
    memset(sc, 0, sizeof *sc);
    for (struct cache_obj *o = *bucket_of(sh, k->hash); o; o = o->hash_next) {
        if (!same_key(o, k->hash, k->buf, k->len))
            continue;
        if (!obj_ready(o)) {
            if (o->epoch == epoch)
                sc->busy = o;
        } else if (gens && drop_old && !obj_current(o, gens)) {
            sc->has_old = true;
        } else {
            sc->any_ready = true;
            /* the most recent matching response (RFC 9111 §4.1) */
            if ((sc->found == NULL || obj_seq_after(o->seq, sc->found->seq)) &&
                (req == NULL || vary_match(o, req)))
                sc->found = o;
        }
    }
}

/* Older generations' copies of the key go (after_purge: refetch); a kept
 * copy stays, demoted, for the origin's 404 (store_find_key).  Write lock
 * held; returns how many references `dead` holds for the caller to drop. */
static unsigned drop_old_locked(struct cache_store *s, struct shard *sh, const struct cache_key *k,
                                const struct generations *gens, struct cache_obj **dead,
                                unsigned max_dead)
{
    unsigned n = 0;
    time_t now = 0;             /* wall clock, read only for a kept copy */
    struct cache_obj *o = *bucket_of(sh, k->hash);
    while (o) {
        struct cache_obj *next = o->hash_next;
        if (same_key(o, k->hash, k->buf, k->len) && obj_ready(o) && !obj_current(o, gens)) {
            if (o->keep_until != 0 && now == 0)
                now = time(NULL);
            if (obj_kept(o, now))
                demote_locked(sh, o);
            else if (n < max_dead)
                dead[n++] = unlink_locked(s, sh, o);
        }
        o = next;
    }
    return n;
}

/* A hit moves its object to the head of the LRU order at most once per
 * STORE_LRU_BUMP_MS (Varnish's lru_interval, memcached's bump interval):
 * the hits in between change nothing and share the shard's read lock. */
static bool lru_bump_due(const struct cache_obj *o, uint64_t now_ms)
{
    return now_ms < o->last_used || now_ms - o->last_used >= STORE_LRU_BUMP_MS;
}

/* The answer to a lookup from what the scan found, when giving it changes
 * nothing in the index: a hit whose object moved up the LRU order lately,
 * a wait on a fetch under way, a miss that leaves no placeholder.  False:
 * the answer needs the write lock (older copies to drop, an LRU move, a
 * placeholder to make).  Either lock held. */
static bool answer_unchanged(const struct chain_scan *sc, bool create_busy, uint64_t now_ms,
                             const struct generations *gens, struct cache_obj **out,
                             enum lookup_result *r)
{
    if (sc->has_old)
        return false;
    if (sc->found) {
        if (lru_bump_due(sc->found, now_ms))
            return false;
        /* Catching up (generation.h): this node may have missed purges, so
         * what it finds is revalidated before it is served, as after a soft
         * purge (an atomic flag: fine under the read lock). */
        if (gens && generation_catching_up(gens))
            obj_soft_purge(sc->found);
        obj_ref(sc->found);
        *out = sc->found;
        *r = LOOKUP_FOUND;
    } else if (sc->busy) {
        obj_ref(sc->busy);
        *out = sc->busy;
        *r = LOOKUP_BUSY;
    } else if (create_busy) {
        return false;
    } else {
        *out = NULL;
        *r = sc->any_ready ? LOOKUP_VARY_MISS : LOOKUP_MISS;
    }
    return true;
}

enum lookup_result store_lookup(struct cache_store *s, const struct cache_key *k,
                                const struct http_msg *req, bool create_busy,
                                uint64_t now_ms, const struct generations *gens, bool drop_old,
                                struct cache_obj **out)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    struct shard *sh = shard_of(s, k->hash);
    struct cache_obj *dead[8];
    unsigned n_dead = 0;
    enum lookup_result r;
    uint64_t epoch = gens ? generation_epoch(gens) : 0;
    struct chain_scan sc;

    /* Most lookups: under the read lock, side by side with the other
     * workers'. */
    shard_rdlock(sh);
    scan_chain(sh, k, req, epoch, gens, drop_old, &sc);
    bool done = answer_unchanged(&sc, create_busy, now_ms, gens, out, &r);
    shard_unlock(sh);
    if (done)
        return r;

    /* The rest under the write lock, from a fresh scan: what the shared
     * one saw may have changed since. */
    shard_lock(sh);
    if (gens && drop_old)
        n_dead = drop_old_locked(s, sh, k, gens, dead, FC_ARRAY_LEN(dead));
    scan_chain(sh, k, req, epoch, gens, drop_old, &sc);
    sc.has_old = false;     /* dropped, or kept and demoted (or past dead[]) */
    if (sc.found && lru_bump_due(sc.found, now_ms)) {
        sc.found->last_used = now_ms;
        TAILQ_REMOVE(&sh->lru, sc.found, lru);
        TAILQ_INSERT_HEAD(&sh->lru, sc.found, lru);
    }
    if (!answer_unchanged(&sc, create_busy, now_ms, gens, out, &r)) {
        FC_ASSERT(create_busy && sc.found == NULL && sc.busy == NULL);
        struct cache_obj *nb = obj_new(k);
        nb->epoch = epoch;
        link_locked(s, sh, nb);
        *out = nb;  /* the caller keeps obj_new's reference */
        r = LOOKUP_CREATED;
    }
    shard_unlock(sh);
    for (unsigned i = 0; i < n_dead; i++)
        obj_unref(dead[i]);
    return r;
}

/* Drop the index references of objects unlinked under a shard lock and
 * chained through hash_next; called after unlocking. */
static void unref_chain(struct cache_obj *dead)
{
    while (dead) {
        struct cache_obj *next = dead->hash_next;
        dead->hash_next = NULL;
        obj_unref(dead);
        dead = next;
    }
}

unsigned store_purge(struct cache_store *s, store_match_fn match, const void *arg, bool soft)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    unsigned n = 0;
    for (unsigned i = 0; i < s->n_shards; i++) {
        struct shard *sh = &s->shards[i];
        struct cache_obj *dead = NULL;  /* chained through hash_next once unlinked */
        shard_lock(sh);
        for (size_t b = 0; b < sh->n_buckets; b++) {
            struct cache_obj *o = sh->buckets[b];
            while (o) {
                struct cache_obj *next = o->hash_next;
                if (match(o, arg)) {
                    if (soft && obj_ready(o)) {
                        obj_soft_purge(o);
                        n++;
                    } else if (!soft) {
                        if (obj_ready(o))
                            n++;
                        unlink_locked(s, sh, o);
                        o->hash_next = dead;
                        dead = o;
                    }
                }
                o = next;
            }
        }
        shard_unlock(sh);
        unref_chain(dead);
    }
    return n;
}

struct cache_obj *store_find_key(struct cache_store *s, const struct cache_key *k,
                                 store_match_fn match, const void *arg)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    struct shard *sh = shard_of(s, k->hash);
    struct cache_obj *found = NULL;
    shard_lock(sh);
    for (struct cache_obj *o = *bucket_of(sh, k->hash); o; o = o->hash_next) {
        if (same_key(o, k->hash, k->buf, k->len) && obj_ready(o) &&
            (found == NULL || obj_seq_after(o->seq, found->seq)) && match(o, arg))
            found = o;
    }
    if (found)
        obj_ref(found);
    shard_unlock(sh);
    return found;
}

struct cache_obj *store_find(struct cache_store *s, store_match_fn match, const void *arg)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    for (unsigned i = 0; i < s->n_shards; i++) {
        struct shard *sh = &s->shards[i];
        shard_lock(sh);
        for (size_t b = 0; b < sh->n_buckets; b++) {
            for (struct cache_obj *o = sh->buckets[b]; o; o = o->hash_next) {
                if (obj_ready(o) && match(o, arg)) {
                    obj_ref(o);
                    shard_unlock(sh);
                    return o;
                }
            }
        }
        shard_unlock(sh);
    }
    return NULL;
}

/* Once a whole pass has run under one epoch, every object of an older
 * generation is gone but the stragglers: objects whose fetch began before
 * the bump and ended after the pass went by.  Until the next bump the
 * sweep only trickles along (SWEEP_IDLE_BUDGET per call) to find those,
 * instead of walking the whole index every call: a full walk of 64 shards'
 * buckets cost ~10 M instructions per second of idle CPU on a store that
 * had nothing to reclaim (callgrind, docs/performance.md). */
#define SWEEP_IDLE_BUDGET 2048

size_t store_sweep(struct cache_store *s, const struct generations *gens, size_t budget)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    size_t removed = 0, seen = 0;
    uint64_t epoch = generation_epoch(gens);
    if (s->sweep_shards_left == 0) {        /* a new pass */
        s->sweep_shards_left = s->n_shards;
        s->sweep_pass_epoch = epoch;
    }
    if (epoch == s->sweep_clean_epoch && budget > SWEEP_IDLE_BUDGET)
        budget = SWEEP_IDLE_BUDGET;
    time_t now = time(NULL);
    /* Hold a shard lock for at most this many buckets, so lookups on the
     * shard wait microseconds, not the whole sweep. */
    const size_t slice = 512;
    /* Every bucket and every object examined counts against the budget:
     * empty buckets cost a walk too. */
    while (seen < budget) {
        struct shard *sh = &s->shards[s->sweep_shard];
        struct cache_obj *dead = NULL;
        shard_lock(sh);
        size_t end = s->sweep_bucket + slice;
        if (end > sh->n_buckets)
            end = sh->n_buckets;
        for (size_t b = s->sweep_bucket; b < end; b++) {
            struct cache_obj *o = sh->buckets[b];
            seen++;
            while (o) {
                struct cache_obj *next = o->hash_next;
                seen++;
                if (obj_ready(o) && !obj_current(o, gens) && obj_kept(o, now)) {
                    demote_locked(sh, o);   /* keep_after_deploy: stays, evicted first */
                } else if (obj_ready(o) && !obj_current(o, gens)) {
                    unlink_locked(s, sh, o);
                    o->hash_next = dead;
                    dead = o;
                    removed++;
                }
                o = next;
            }
        }
        bool shard_done = end >= sh->n_buckets;
        s->sweep_bucket = shard_done ? 0 : end;
        shard_unlock(sh);
        unref_chain(dead);
        if (shard_done) {
            s->sweep_shard = (s->sweep_shard + 1) & (s->n_shards - 1);
            if (--s->sweep_shards_left == 0) {
                /* A whole pass: clean for the epoch it began under, if
                 * that is still the one in force. */
                if (s->sweep_pass_epoch == generation_epoch(gens))
                    s->sweep_clean_epoch = s->sweep_pass_epoch;
                break;
            }
        }
    }
    return removed;
}

bool store_sweep_caught_up(const struct cache_store *s, const struct generations *gens)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    return s->sweep_clean_epoch == generation_epoch(gens);
}

static void evict(struct cache_store *s);

/* Make `o` READY in the index, replacing its older copies.  Lock held. */
static unsigned replace_variants_locked(struct cache_store *s, struct shard *sh,
                                        struct cache_obj *o, struct cache_obj **dead,
                                        unsigned max_dead)
{
    unsigned n = 0;
    struct cache_obj *p = *bucket_of(sh, o->hash);
    while (p) {
        struct cache_obj *next = p->hash_next;
        if (p != o && obj_ready(p) && same_key(p, o->hash, o->key, o->key_len) &&
            same_variant(p, o) && n < max_dead)
            dead[n++] = unlink_locked(s, sh, p);
        p = next;
    }
    return n;
}

static void make_ready_locked(struct cache_store *s, struct shard *sh, struct cache_obj *o,
                              uint64_t now_ms)
{
    obj_set_ready(o);
    o->last_used = now_ms;
    TAILQ_INSERT_HEAD(&sh->lru, o, lru);
    o->charged = charge_of(obj_footprint(o));
    atomic_fetch_add_explicit(&s->bytes, o->charged, memory_order_relaxed);
}

void store_insert(struct cache_store *s, struct cache_obj *o, uint64_t now_ms)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    struct shard *sh = shard_of(s, o->hash);
    struct cache_obj *dead[8];
    shard_lock(sh);
    unsigned n = replace_variants_locked(s, sh, o, dead, FC_ARRAY_LEN(dead));
    link_locked(s, sh, o);
    make_ready_locked(s, sh, o, now_ms);
    shard_unlock(sh);
    for (unsigned i = 0; i < n; i++)
        obj_unref(dead[i]);
    obj_body_wake(o);       /* a reader may wait for it (a fetch's placeholder) */
    evict(s);
}

void store_publish(struct cache_store *s, struct cache_obj *o, uint64_t now_ms)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    struct shard *sh = shard_of(s, o->hash);
    struct cache_obj *dead[8];
    unsigned n = 0;
    shard_lock(sh);
    if (o->linked) {
        n = replace_variants_locked(s, sh, o, dead, FC_ARRAY_LEN(dead));
        make_ready_locked(s, sh, o, now_ms);
    } else {
        /* Removed while busy (a purge): it serves its waiters but is not kept. */
        obj_set_ready(o);
    }
    shard_unlock(sh);
    for (unsigned i = 0; i < n; i++)
        obj_unref(dead[i]);
    obj_body_wake(o);
    evict(s);
}

bool store_seal(struct cache_store *s, struct cache_obj *o)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    CHECK_OBJ_NOTNULL(o, OBJ_MAGIC);
    if (!o->linked)         /* a hint: checked again under the lock */
        return false;
    /* The copy is made outside the lock (up to OBJ_SEAL_MAX bytes); what
     * the index may change meanwhile is copied again under it. */
    struct cache_obj *n = obj_seal(o);
    if (n == NULL)
        return false;
    struct shard *sh = shard_of(s, o->hash);
    bool done = false;
    shard_lock(sh);
    if (o->linked && obj_ready(o)) {
        struct cache_obj **pp = bucket_of(sh, o->hash);
        while (*pp != o) {
            FC_ASSERT(*pp != NULL);
            pp = &(*pp)->hash_next;
        }
        n->hash_next = o->hash_next;
        *pp = n;
        o->hash_next = NULL;
        TAILQ_INSERT_BEFORE(o, n, lru);
        TAILQ_REMOVE(&sh->lru, o, lru);
        n->seq = o->seq;
        n->last_used = o->last_used;
        if (obj_soft_purged(o))
            obj_soft_purge(n);
        n->linked = true;
        o->linked = false;
        o->sealed_away = true;
        n->charged = charge_of(obj_footprint(n));
        /* the difference, in unsigned arithmetic: exact either way */
        atomic_fetch_add_explicit(&s->bytes, (uint64_t)n->charged - o->charged,
                                  memory_order_relaxed);
        o->charged = 0;
        done = true;
    }
    shard_unlock(sh);
    /* Done: the index's reference to o goes (n has obj_seal's); readers
     * still holding o finish with it.  Not done: o left the index first. */
    obj_unref(done ? o : n);
    return done;
}

void store_remove(struct cache_store *s, struct cache_obj *o)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    struct shard *sh = shard_of(s, o->hash);
    struct cache_obj *dead = NULL;
    shard_lock(sh);
    if (o->linked) {
        dead = unlink_locked(s, sh, o);
    } else if (o->sealed_away) {
        /* Replaced by its sealed copy (store_seal), which carries its
         * link sequence number: remove that copy instead. */
        for (struct cache_obj *p = *bucket_of(sh, o->hash); p; p = p->hash_next) {
            if (p->seq == o->seq && p->sealed && same_key(p, o->hash, o->key, o->key_len)) {
                dead = unlink_locked(s, sh, p);
                break;
            }
        }
    }
    shard_unlock(sh);
    if (dead)
        obj_unref(dead);
}

unsigned store_remove_key(struct cache_store *s, const struct cache_key *k)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    struct shard *sh = shard_of(s, k->hash);
    struct cache_obj *dead[64];
    unsigned n = 0;
    shard_lock(sh);
    struct cache_obj *p = *bucket_of(sh, k->hash);
    while (p && n < FC_ARRAY_LEN(dead)) {
        struct cache_obj *next = p->hash_next;
        if (obj_ready(p) && same_key(p, k->hash, k->buf, k->len))
            dead[n++] = unlink_locked(s, sh, p);
        p = next;
    }
    shard_unlock(sh);
    for (unsigned i = 0; i < n; i++)
        obj_unref(dead[i]);
    return n;
}

void store_charge(struct cache_store *s, struct cache_obj *o, size_t bytes)
{
    CHECK_OBJ_NOTNULL(s, STORE_MAGIC);
    if (bytes == 0)
        return;
    struct shard *sh = shard_of(s, o->hash);
    shard_lock(sh);
    bool counted = o->linked && obj_ready(o);
    if (counted) {
        /* What the object records is what the store counts: both or
         * neither, so an unlink takes back exactly what was added. */
        uint32_t was = o->charged;
        o->charged = charge_of((size_t)was + bytes);
        atomic_fetch_add_explicit(&s->bytes, o->charged - was, memory_order_relaxed);
    }
    shard_unlock(sh);
    if (counted)
        evict(s);
}

/* Evict least recently used READY objects until under the bound.  The
 * victim is the oldest LRU tail across shards; shard locks are taken one at
 * a time. */
static void evict(struct cache_store *s)
{
    if (atomic_load_explicit(&s->bytes, memory_order_relaxed) <= s->max_bytes)
        return;
    pthread_mutex_lock(&s->evict_mu);
    while (atomic_load_explicit(&s->bytes, memory_order_relaxed) > s->max_bytes) {
        unsigned best = UINT32_MAX;
        uint64_t best_used = UINT64_MAX;
        for (unsigned i = 0; i < s->n_shards; i++) {
            struct shard *sh = &s->shards[i];
            shard_lock(sh);
            struct cache_obj *t = TAILQ_LAST(&sh->lru, obj_list);
            if (t && t->last_used < best_used) {
                best_used = t->last_used;
                best = i;
            }
            shard_unlock(sh);
        }
        if (best == UINT32_MAX)
            break;
        struct shard *sh = &s->shards[best];
        struct cache_obj *dead = NULL;
        shard_lock(sh);
        struct cache_obj *t = TAILQ_LAST(&sh->lru, obj_list);
        if (t)
            dead = unlink_locked(s, sh, t);
        shard_unlock(sh);
        if (dead) {
            atomic_fetch_add_explicit(&s->evictions, 1, memory_order_relaxed);
            obj_unref(dead);
        }
    }
    pthread_mutex_unlock(&s->evict_mu);
}

void store_get_stats(struct cache_store *s, struct store_stats *st)
{
    st->objects = atomic_load(&s->objects);
    st->bytes = atomic_load(&s->bytes);
    st->max_bytes = s->max_bytes;
    st->evictions = atomic_load(&s->evictions);
}
