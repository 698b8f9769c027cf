/*
 * generation.h — the deploy generation: the single source of truth for
 * "which stored responses are still current".
 *
 * One global generation and one per policy (by policy name), each starting
 * at 1 and never decreasing.  Every stored object records the numbers in
 * force when its fetch *began*; it is current only while both still equal
 * the numbers now in force.  A bump is O(1): it persists the new numbers,
 * then publishes them with one atomic store each, so every worker's next
 * lookup sees them — before the bump is acknowledged.
 *
 * Where the numbers live is behind struct generation_backend: a state file
 * (write temp, fsync, rename, fsync dir).  In a cluster (src/cluster/) the
 * next number is decided by Redis, not by +1 here: the cluster hands it to
 * generation_raise(), and the state file stays this node's floor.
 */
#ifndef FRESHCACHE_GENERATION_H
#define FRESHCACHE_GENERATION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GEN_MAX_POLICIES 64
#define GEN_POLICY_NAME_MAX 64

struct gen_state {
    uint64_t global;
    /* When a number (global or a policy's) last changed, Unix time in ms;
     * 0: never (or the backend cannot tell).  Operators read it as "the
     * last deploy" (GET /stats last_bump, proxyctl top, dashboards). */
    int64_t changed_ms;
    size_t n_policies;
    struct {
        char name[GEN_POLICY_NAME_MAX];
        uint64_t gen;
    } policies[GEN_MAX_POLICIES];
};

struct generation_backend {
    /* Fill *st from the source of truth; a missing source is an empty
     * state (everything 1).  0 or -1 with a message in err. */
    int (*load)(void *ctx, struct gen_state *st, char *err, size_t errlen);
    /* Durably record *st.  Only after it returns 0 may the bump be
     * published. */
    int (*save)(void *ctx, const struct gen_state *st, char *err, size_t errlen);
    void (*close)(void *ctx);
    void *ctx;
};

/* The state-file backend: STATE_DIR/generation. */
int generation_file_backend(const char *state_dir, struct generation_backend *out, char *err,
                            size_t errlen);
/* Would the file backend's load succeed?  Reads STATE_DIR/generation when
 * it exists and we may read it, creates nothing (freshcached -t).  0, or
 * -1 with the reason in err. */
int generation_file_check(const char *state_dir, char *err, size_t errlen);

struct generations;

/* Load through `be` (taking ownership of it) and index the policies named
 * in `names` (config order).  NULL on error, with a message in err. */
struct generations *generations_open(struct generation_backend *be, const char *const *names,
                                     size_t n_names, char *err, size_t errlen);
void generations_close(struct generations *g);

/* Hot path: a relaxed-enough atomic read each. */
uint64_t generation_global(const struct generations *g);
/* Policy by index in the config's policies (index < n_names), else 0. */
uint64_t generation_policy(const struct generations *g, unsigned policy_index);

/* The numbers in force: the global one, and each configured policy's by
 * name in config order (the policies of the config in force, not every
 * name the state file remembers).  One consistent snapshot. */
void generation_snapshot(struct generations *g, struct gen_state *out);

/* A reload changed the policies list: index them anew.  Objects stored
 * under the old indexing stop being current (their policy index may now
 * name another policy). */
void generations_reindex(struct generations *g, const char *const *names, size_t n_names);
uint64_t generation_layout(const struct generations *g);

/* Changes on every bump, global or per policy: a coalescing placeholder
 * made before a bump must not gather requests made after it. */
uint64_t generation_epoch(const struct generations *g);

/* When the last bump (global or per policy) happened, Unix time in ms; 0
 * when none ever did.  Survives restarts: the file backend takes it from
 * the state file's modification time. */
int64_t generation_changed_ms(const struct generations *g);

/* Every change, by bump or raise, is logged at info as
 *     generation changed: global 6 -> 7 (source: admin)
 *     generation changed: policy html 3 -> 4 (source: cluster)
 * a bump being this node's own (asked through the admin API), a raise a
 * number decided by the cluster. */

/* Bump the global generation (policy == NULL) or one policy's.  Persists
 * first; on success *now and *prev are the new and previous numbers of what
 * was bumped.  -1 (nothing changed) on an unknown policy or a failed save. */
int generation_bump(struct generations *g, const char *policy, uint64_t *now, uint64_t *prev,
                    char *err, size_t errlen);

/* Raise the global generation (policy == NULL) or a policy's, by name, to
 * `value` if it is higher (a number decided elsewhere: a cluster's).  A
 * policy this node does not index is recorded in the state all the same,
 * for a later reload that adds it.  *raised tells whether anything
 * changed.  The new number is published even when it cannot be persisted
 * (-1, message in err): serving the previous release is worse than a floor
 * left too low in the state file, which the cluster raises again. */
int generation_raise(struct generations *g, const char *policy, uint64_t value, bool *raised,
                     char *err, size_t errlen);

/* A copy of the saved state: the global number and every policy's the
 * state file remembers, configured here or not (a cluster node's floors). */
void generation_saved_state(struct generations *g, struct gen_state *out);

/* "Catching up": this node may have missed purges (a cluster node cut off
 * from the others, or not yet in touch after it started).  While set,
 * store_lookup() marks every object it finds soft-purged, so it is
 * revalidated with the origin before it is served; nothing is dropped.
 * Set and cleared by the cluster on the main thread; read by workers. */
void generation_set_catching_up(struct generations *g, bool on);
bool generation_catching_up(const struct generations *g);

#endif
