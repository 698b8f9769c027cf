/*
 * generation.c — deploy generations and their state-file backend.
 * See include/freshcache/generation.h.
 *
 * State file format (text, one line each, so an operator can read it):
 *     generation 7
 *     policy html 3
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/cache/generation.h"
#include "freshcache/config/config.h"

/* The config refuses what the state could not hold. */
_Static_assert(GEN_MAX_POLICIES >= CONFIG_MAX_POLICIES, "GEN_MAX_POLICIES");
_Static_assert(GEN_POLICY_NAME_MAX > CONFIG_POLICY_NAME_MAX, "GEN_POLICY_NAME_MAX");

struct generations {
#define GENS_MAGIC 0x6e4e0000u
    unsigned magic;
    struct generation_backend be;
    pthread_mutex_t mu;                 /* serialises bumps (not lookups) */
    struct gen_state st;                /* last saved state (under mu) */
    _Atomic uint64_t global;
    _Atomic uint64_t epoch;
    _Atomic int64_t changed_ms;         /* gen_state.changed_ms, for readers */
    _Atomic bool catching_up;           /* see generation_set_catching_up() */
    _Atomic uint64_t layout;            /* policy indexing version */
    _Atomic size_t n_indexed;
    _Atomic uint64_t by_index[GEN_MAX_POLICIES];    /* config order */
    char names[GEN_MAX_POLICIES][GEN_POLICY_NAME_MAX];
};

/* ---- state file backend ------------------------------------------------ */

struct file_backend {
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    char dir[PATH_MAX];
};

static bool parse_gen(const char *s, uint64_t *out)
{
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < 1)
        return false;
    *out = v;
    return true;
}

static int file_load(void *ctx, struct gen_state *st, char *err, size_t errlen)
{
    struct file_backend *fb = ctx;
    memset(st, 0, sizeof *st);
    st->global = 1;
    FILE *f = fopen(fb->path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot read %s: %s", fb->path, strerror(errno));
        return -1;
    }
    /* The file is rewritten on every bump and only then, so its mtime is
     * the time of the last one: no need to store it in the text. */
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0)
        st->changed_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
    char line[256];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char name[GEN_POLICY_NAME_MAX];
        char num[32];
        uint64_t v;
        /* Strict: digits only, nothing after them; a state that cannot
         * be read must stop the daemon, never restart it at 1. */
        int end = 0;
        if (sscanf(line, "generation %31[0-9]%n", num, &end) == 1 && (line[end] == '\n' || line[end] == '\0') &&
            parse_gen(num, &v)) {
            st->global = v;
        } else if (sscanf(line, "policy %63s %31[0-9]%n", name, num, &end) == 2 &&
                   (line[end] == '\n' || line[end] == '\0') && parse_gen(num, &v)) {
            if (st->n_policies < GEN_MAX_POLICIES) {
                snprintf(st->policies[st->n_policies].name, GEN_POLICY_NAME_MAX, "%s", name);
                st->policies[st->n_policies].gen = v;
                st->n_policies++;
            }
        } else if (line[0] != '\n' && line[0] != '#') {
            snprintf(err, errlen, "%s:%d: unreadable line", fb->path, lineno);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", fb->path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc;
}

static int file_save(void *ctx, const struct gen_state *st, char *err, size_t errlen)
{
    struct file_backend *fb = ctx;
    int fd = open(fb->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", fb->tmp, strerror(errno));
        return -1;
    }
    char buf[GEN_MAX_POLICIES * (GEN_POLICY_NAME_MAX + 32) + 64];
    int n = snprintf(buf, sizeof buf, "generation %" PRIu64 "\n", st->global);
    for (size_t i = 0; i < st->n_policies; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "policy %s %" PRIu64 "\n",
                      st->policies[i].name, st->policies[i].gen);
    /* temp file, fsync, rename, fsync the directory: after a crash the file
     * holds either the old numbers or the new ones, never a torn mix. */
    if (write(fd, buf, (size_t)n) != n || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", fb->tmp, strerror(errno));
        close(fd);
        unlink(fb->tmp);
        return -1;
    }
    close(fd);
    if (rename(fb->tmp, fb->path) != 0) {
        snprintf(err, errlen, "cannot rename %s: %s", fb->tmp, strerror(errno));
        unlink(fb->tmp);
        return -1;
    }
    int dfd = open(fb->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static void file_close(void *ctx) { free(ctx); }

int generation_file_backend(const char *state_dir, struct generation_backend *out, char *err,
                            size_t errlen)
{
    if (mkdir(state_dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create state_dir %s: %s", state_dir, strerror(errno));
        return -1;
    }
    struct file_backend *fb = calloc(1, sizeof *fb);
    AN(fb);
    snprintf(fb->dir, sizeof fb->dir, "%s", state_dir);
    snprintf(fb->path, sizeof fb->path, "%s/generation", state_dir);
    snprintf(fb->tmp, sizeof fb->tmp, "%s/generation.tmp", state_dir);
    out->load = file_load;
    out->save = file_save;
    out->close = file_close;
    out->ctx = fb;
    return 0;
}

int generation_file_check(const char *state_dir, char *err, size_t errlen)
{
    struct file_backend fb;
    struct gen_state st;

    snprintf(fb.path, sizeof fb.path, "%s/generation", state_dir);
    if (access(fb.path, R_OK) != 0)
        return 0;       /* none yet, or not ours to read: the start will tell */
    return file_load(&fb, &st, err, errlen);
}

/* ---- generations -------------------------------------------------------- */


static int state_find(const struct gen_state *st, const char *name)
{
    for (size_t i = 0; i < st->n_policies; i++)
        if (strcmp(st->policies[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* The state's entry for `policy`, added (at 1) when missing; -1 when the
 * state is full. */
static int state_entry(struct gen_state *st, const char *policy)
{
    int at = state_find(st, policy);
    if (at >= 0)
        return at;
    if (st->n_policies == GEN_MAX_POLICIES)
        return -1;
    at = (int)st->n_policies++;
    snprintf(st->policies[at].name, GEN_POLICY_NAME_MAX, "%s", policy);
    st->policies[at].gen = 1;
    return at;
}

struct generations *generations_open(struct generation_backend *be, const char *const *names,
                                     size_t n_names, char *err, size_t errlen)
{
    if (n_names > GEN_MAX_POLICIES) {
        snprintf(err, errlen, "at most %d policies", GEN_MAX_POLICIES);
        be->close(be->ctx);
        return NULL;
    }
    struct generations *g = calloc(1, sizeof *g);
    AN(g);
    g->magic = GENS_MAGIC;
    g->be = *be;
    AZ(pthread_mutex_init(&g->mu, NULL));
    if (g->be.load(g->be.ctx, &g->st, err, errlen) != 0) {
        generations_close(g);
        return NULL;
    }
    atomic_store(&g->global, g->st.global);
    atomic_store(&g->changed_ms, g->st.changed_ms);
    g->n_indexed = n_names;
    for (size_t i = 0; i < n_names; i++) {
        snprintf(g->names[i], GEN_POLICY_NAME_MAX, "%s", names[i]);
        int at = state_find(&g->st, names[i]);
        atomic_store(&g->by_index[i], at >= 0 ? g->st.policies[at].gen : 1);
    }
    return g;
}

void generations_close(struct generations *g)
{
    if (g == NULL)
        return;
    CHECK_OBJ(g, GENS_MAGIC);
    g->be.close(g->be.ctx);
    pthread_mutex_destroy(&g->mu);
    g->magic = 0;
    free(g);
}

uint64_t generation_global(const struct generations *g)
{
    return atomic_load_explicit(&((struct generations *)g)->global, memory_order_acquire);
}

void generations_reindex(struct generations *g, const char *const *names, size_t n_names)
{
    CHECK_OBJ_NOTNULL(g, GENS_MAGIC);
    if (n_names > GEN_MAX_POLICIES)
        n_names = GEN_MAX_POLICIES;
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < n_names; i++) {
        snprintf(g->names[i], GEN_POLICY_NAME_MAX, "%s", names[i]);
        int at = state_find(&g->st, names[i]);
        atomic_store(&g->by_index[i], at >= 0 ? g->st.policies[at].gen : 1);
    }
    atomic_store(&g->n_indexed, n_names);
    atomic_fetch_add(&g->layout, 1);
    atomic_fetch_add(&g->epoch, 1);
    pthread_mutex_unlock(&g->mu);
}

void generation_snapshot(struct generations *g, struct gen_state *out)
{
    CHECK_OBJ_NOTNULL(g, GENS_MAGIC);
    memset(out, 0, sizeof *out);
    /* Under the bump lock: no number changes while they are copied. */
    pthread_mutex_lock(&g->mu);
    out->global = atomic_load(&g->global);
    out->n_policies = atomic_load(&g->n_indexed);
    for (size_t i = 0; i < out->n_policies; i++) {
        memcpy(out->policies[i].name, g->names[i], GEN_POLICY_NAME_MAX);
        out->policies[i].gen = atomic_load(&g->by_index[i]);
    }
    pthread_mutex_unlock(&g->mu);
}

uint64_t generation_layout(const struct generations *g)
{
    return atomic_load_explicit(&((struct generations *)g)->layout, memory_order_acquire);
}

uint64_t generation_epoch(const struct generations *g)
{
    return atomic_load_explicit(&((struct generations *)g)->epoch, memory_order_acquire);
}

int64_t generation_changed_ms(const struct generations *g)
{
    return atomic_load_explicit(&((struct generations *)g)->changed_ms, memory_order_acquire);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The deploy timeline in the log: one line per change, whatever made it,
 * in one shape a log search can follow (docs/deploying.md). */
static void log_change(const char *policy, uint64_t before, uint64_t after, const char *source)
{
    if (policy)
        log_info("generation changed: policy %s %" PRIu64 " -> %" PRIu64 " (source: %s)", policy,
                 before, after, source);
    else
        log_info("generation changed: global %" PRIu64 " -> %" PRIu64 " (source: %s)", before,
                 after, source);
}

uint64_t generation_policy(const struct generations *g, unsigned policy_index)
{
    if (policy_index >= g->n_indexed)
        return 0;
    return atomic_load_explicit(&((struct generations *)g)->by_index[policy_index],
                                memory_order_acquire);
}

int generation_bump(struct generations *g, const char *policy, uint64_t *now, uint64_t *prev,
                    char *err, size_t errlen)
{
    CHECK_OBJ_NOTNULL(g, GENS_MAGIC);
    int idx = -1;
    if (policy) {
        for (size_t i = 0; i < g->n_indexed; i++)
            if (strcmp(g->names[i], policy) == 0)
                idx = (int)i;
        if (idx < 0) {
            snprintf(err, errlen, "unknown policy \"%s\"", policy);
            return -1;
        }
    }
    pthread_mutex_lock(&g->mu);
    struct gen_state next = g->st;
    uint64_t before, after;
    if (policy == NULL) {
        before = next.global;
        after = ++next.global;
    } else {
        int at = state_entry(&next, policy);
        if (at < 0) {
            pthread_mutex_unlock(&g->mu);
            snprintf(err, errlen, "too many policies in the state");
            return -1;
        }
        before = next.policies[at].gen;
        after = ++next.policies[at].gen;
    }
    next.changed_ms = wall_ms();
    /* Persist first: a bump that is acknowledged survives a crash. */
    if (g->be.save(g->be.ctx, &next, err, errlen) != 0) {
        pthread_mutex_unlock(&g->mu);
        return -1;
    }
    g->st = next;
    if (policy == NULL)
        atomic_store_explicit(&g->global, after, memory_order_seq_cst);
    else
        atomic_store_explicit(&g->by_index[idx], after, memory_order_seq_cst);
    atomic_fetch_add_explicit(&g->epoch, 1, memory_order_seq_cst);
    atomic_store_explicit(&g->changed_ms, next.changed_ms, memory_order_release);
    pthread_mutex_unlock(&g->mu);
    log_change(policy, before, after, "admin");
    *now = after;
    *prev = before;
    return 0;
}

int generation_raise(struct generations *g, const char *policy, uint64_t value, bool *raised,
                     char *err, size_t errlen)
{
    CHECK_OBJ_NOTNULL(g, GENS_MAGIC);
    *raised = false;
    pthread_mutex_lock(&g->mu);
    struct gen_state next = g->st;
    uint64_t *slot = &next.global;
    if (policy != NULL) {
        int at = state_entry(&next, policy);
        if (at < 0) {
            pthread_mutex_unlock(&g->mu);
            snprintf(err, errlen, "too many policies in the state");
            return -1;
        }
        slot = &next.policies[at].gen;
    }
    if (value <= *slot) {
        pthread_mutex_unlock(&g->mu);
        return 0;
    }
    uint64_t before = *slot;
    *slot = value;
    int rc = g->be.save(g->be.ctx, &next, err, errlen);
    g->st = next;
    if (policy == NULL) {
        atomic_store_explicit(&g->global, value, memory_order_seq_cst);
    } else {
        for (size_t i = 0; i < g->n_indexed; i++)
            if (strcmp(g->names[i], policy) == 0)
                atomic_store_explicit(&g->by_index[i], value, memory_order_seq_cst);
    }
    atomic_fetch_add_explicit(&g->epoch, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&g->mu);
    log_change(policy, before, value, "cluster");
    *raised = true;
    return rc;
}

void generation_saved_state(struct generations *g, struct gen_state *out)
{
    CHECK_OBJ_NOTNULL(g, GENS_MAGIC);
    pthread_mutex_lock(&g->mu);
    *out = g->st;
    pthread_mutex_unlock(&g->mu);
}

void generation_set_catching_up(struct generations *g, bool on)
{
    CHECK_OBJ_NOTNULL(g, GENS_MAGIC);
    atomic_store_explicit(&g->catching_up, on, memory_order_seq_cst);
}

bool generation_catching_up(const struct generations *g)
{
    return atomic_load_explicit(&((struct generations *)g)->catching_up, memory_order_acquire);
}
