/*
 * etag_history.c — the first-seen history behind content-hash
 * Last-Modified, kept in a file of state_dir.  See
 * include/freshcache/cache/etag.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/cache/etag.h"

/* The first-seen history: a set-associative table of 16-byte entries in
 * STATE_DIR/etag-history, read and written one 128-byte bucket at a time
 * with pread/pwrite under the bucket's stripe lock.  It outlives every
 * purge by design (a deploy must not make unchanged content look new), and
 * now restarts too (a restart used to make every Last-Modified younger).
 * Why a file and not memory: what the history holds is what stayed in the
 * process after a deploy freed the cache (4 MiB at the cap, issue 19).
 * The pages pread/pwrite reach are the kernel's page cache, not the
 * process's: they count in no RSS, and the kernel writes them back and
 * reclaims them under memory pressure.  Not mmap: mapped file pages would
 * count in RSS again.
 *
 * The file is sparse and has its final size from the start: a header
 * (HISTORY_DATA_OFF bytes, its first 64 used) then 2^bits buckets.  Blocks
 * never written take no disk, so there is no doubling: the table is its
 * cap at once, and a lookup is one pread (a key seen again with the same
 * bytes), a change or a new key one pwrite more.
 *
 * An entry: 32 bits of the (mixed) key hash, the first 8 bytes of the body
 * hash (enough to tell changed bytes: a 2^-64 chance to miss one) and the
 * first-seen time in unsigned 32-bit seconds (to 2106).  first_seen 0:
 * unused (what a hole reads as).
 *
 * Where a key lives: its bucket is the top `bits` bits of the mixed key
 * hash, its check the 32 bits right below them: a key is told apart from
 * others by bits + 32 bits.  A mistaken match (two URLs sharing all of
 * them) is treated as a change of content, which only makes Last-Modified
 * younger.
 *
 * Why no false 304 can come out of it: an entry's time only rises while it
 * lives (a change gives max(now, old + 1)), a new entry starts at `now`,
 * and a key always maps to the same bucket — so the time returned for
 * changed bytes is later than any time returned before for that key.  A
 * key pushed out of a full bucket is forgotten: its next sighting is a new
 * entry at `now` (a younger Last-Modified).  (Pushed out and back with
 * other bytes within the second it was last given, it can get that second
 * again: HTTP dates cannot tell changes within one second apart anyway,
 * and the ETag, which clients send with it, does.  Giving forgotten keys a
 * later second instead would let times run ahead of the clock without
 * bound under pressure.)
 *
 * What a crash can leave.  A bucket is 128 bytes at a multiple of 128
 * from a 4096-aligned start, so it never straddles a 512-byte sector: the
 * disk holds each bucket whole, as of some write, never a torn mix.  A
 * crash of the process loses nothing (every pwrite is in the page cache,
 * which the next start reads).  A crash of the machine can lose writes
 * that were not written back: a bucket may come back as it was before
 * its last writes.  A lost new entry is harmless (forgotten: younger), but
 * a lost change is not: the old bytes' entry would come back with its old
 * time, and if the origin then served those old bytes again, a client
 * holding the newer ones with a later Last-Modified would get a wrong 304
 * to If-Modified-Since.  So the header says whether the file was closed
 * cleanly (every write made durable, then the flag) and which boot opened
 * it last (/proc/sys/kernel/random/boot_id): a file left open by another
 * boot — the machine went down under it — starts afresh, as does one whose
 * magic, format version or size differ from this build's (logged once).
 * The header is written and made durable before the first bucket write.
 *
 * A read or write that fails (EIO, ENOSPC filling a hole) drops the
 * history: the file is truncated (so the next start begins afresh rather
 * than trust what the failed write left), the error is logged once, and
 * until a restart every Last-Modified is the time the bytes are seen. */
#define HISTORY_HASH_BYTES 8
#define BUCKET_WAYS 8           /* 8 x 16 B: two cache lines, one pread */
#define HISTORY_LOCKS 64
/* At least 2^6 buckets (512 entries, 64 KiB of file)... */
#define HISTORY_MIN_BITS 6
/* ... and at most 2^32 (the check is the 32 bits below the bucket's). */
#define HISTORY_MAX_BITS 32
#define HISTORY_FILE "etag-history"
/* The buckets start one page in: 128-byte buckets then sit inside 512-byte
 * sectors, and the header has a block of its own. */
#define HISTORY_DATA_OFF 4096
/* "FCETAGH1" read as a little-endian number: on a machine of the other
 * byte order it does not match, and the file starts afresh. */
#define HISTORY_FILE_MAGIC 0x3148474154454346ull
/* Bump with any change to what a file means: the entry or header layout,
 * where a key goes, and cache_key_hash() or mix(), which place it. */
#define HISTORY_FORMAT_VERSION 1u
#define BOOT_ID_LEN 40

struct history_slot {
    uint32_t key_check;
    uint32_t first_seen;
    unsigned char hash[HISTORY_HASH_BYTES];
};

_Static_assert(sizeof(struct history_slot) == 16, "a history slot is 16 bytes");

struct history_bucket {
    struct history_slot way[BUCKET_WAYS];
};

_Static_assert(sizeof(struct history_bucket) == 128, "a bucket is 128 bytes");
_Static_assert(512 % sizeof(struct history_bucket) == 0 && HISTORY_DATA_OFF % 512 == 0,
               "a bucket never straddles a 512-byte sector");

struct history_header {
    uint64_t magic;                     /* HISTORY_FILE_MAGIC */
    uint32_t version;                   /* HISTORY_FORMAT_VERSION */
    uint32_t bits;                      /* 2^bits buckets */
    uint32_t bucket_bytes;
    uint32_t clean;                     /* 1: closed with every write durable */
    char boot_id[BOOT_ID_LEN];          /* the boot that opened it last */
};

_Static_assert(sizeof(struct history_header) == 64, "the header is 64 bytes");

struct etag_history {
#define ETAG_HISTORY_MAGIC 0xe7a6415bu
    unsigned magic;
    int fd;
    unsigned bits;                      /* 2^bits buckets */
    atomic_size_t used;                 /* entries with first_seen != 0 */
    atomic_bool failed;                 /* a read or write failed: dropped */
    struct history_header hd;           /* as written at open */
    char path[PATH_MAX];
    /* A note holds its bucket's stripe lock from its pread to its pwrite. */
    pthread_mutex_t locks[HISTORY_LOCKS];
};

static size_t n_buckets(unsigned bits) { return (size_t)1 << bits; }

static off_t file_size(unsigned bits)
{
    return HISTORY_DATA_OFF + (off_t)n_buckets(bits) * (off_t)sizeof(struct history_bucket);
}

static off_t bucket_off(size_t bi)
{
    return HISTORY_DATA_OFF + (off_t)bi * (off_t)sizeof(struct history_bucket);
}

/* This boot's id, or "" when it cannot be read (then a file not closed
 * cleanly is never trusted). */
static void read_boot_id(char out[BOOT_ID_LEN])
{
    memset(out, 0, BOOT_ID_LEN);
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, out, BOOT_ID_LEN - 1);
    close(fd);
    if (n <= 0) {
        out[0] = '\0';
        return;
    }
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
}

/* May the file be used as it is?  true, or false with why not in `why`
 * ("" for a new, empty file: nothing to say). */
static bool reusable(int fd, const struct stat *sb, unsigned bits, const char *boot_id, char *why,
                     size_t whylen)
{
    why[0] = '\0';
    if (sb->st_size == 0)
        return false;
    struct history_header hd;
    if (pread(fd, &hd, sizeof hd, 0) != (ssize_t)sizeof hd) {
        snprintf(why, whylen, "too short for a header");
        return false;
    }
    hd.boot_id[BOOT_ID_LEN - 1] = '\0';
    if (hd.magic != HISTORY_FILE_MAGIC)
        snprintf(why, whylen, "not a history file (or one of another byte order)");
    else if (hd.version != HISTORY_FORMAT_VERSION || hd.bucket_bytes != sizeof(struct history_bucket))
        snprintf(why, whylen, "format version %u, this build's is %u", hd.version,
                 HISTORY_FORMAT_VERSION);
    else if (hd.bits != bits)
        snprintf(why, whylen, "sized for %zu entries, this build's is %zu",
                 hd.bits <= HISTORY_MAX_BITS ? n_buckets(hd.bits) * BUCKET_WAYS : 0,
                 n_buckets(bits) * BUCKET_WAYS);
    else if (sb->st_size != file_size(bits))
        snprintf(why, whylen, "%lld bytes, expected %lld", (long long)sb->st_size,
                 (long long)file_size(bits));
    else if (hd.clean != 1 && (boot_id[0] == '\0' || strcmp(hd.boot_id, boot_id) != 0))
        snprintf(why, whylen, "not closed before the machine went down: its last writes "
                              "may be lost");
    return why[0] == '\0';
}

/* Entries in use, read from the parts of the file that hold data (holes
 * read as nothing, and are skipped without reading them). */
static size_t count_used(int fd, unsigned bits)
{
    enum { CHUNK = 64 };
    struct history_bucket buf[CHUNK];
    const off_t end = file_size(bits);
    const off_t bsz = (off_t)sizeof buf[0];
    size_t used = 0;
    off_t off = HISTORY_DATA_OFF;
    while (off < end) {
        off_t data = lseek(fd, off, SEEK_DATA);
        if (data < 0 || data >= end)
            break;                          /* ENXIO: no data after off */
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0 || hole > end)
            hole = end;
        off = HISTORY_DATA_OFF + (data - HISTORY_DATA_OFF) / bsz * bsz;
        while (off < hole) {
            size_t want = (size_t)(hole - off < (off_t)sizeof buf ? hole - off : (off_t)sizeof buf);
            ssize_t n = pread(fd, buf, want, off);
            if (n < bsz)
                return used;                /* a read error: the notes will say */
            for (ssize_t b = 0; b < n / bsz; b++)
                for (int w = 0; w < BUCKET_WAYS; w++)
                    used += buf[b].way[w].first_seen != 0;
            off += n / bsz * bsz;
        }
    }
    return used;
}

/* DIR/etag-history into path[PATH_MAX]; -1 (err) when it does not fit. */
static int history_path(const char *dir, char path[PATH_MAX], char *err, size_t errlen)
{
    if ((size_t)snprintf(path, PATH_MAX, "%s/" HISTORY_FILE, dir) < PATH_MAX)
        return 0;
    snprintf(err, errlen, "%s/" HISTORY_FILE ": path too long", dir);
    return -1;
}

struct etag_history *etag_history_new(const char *dir, size_t max_slots, char *err, size_t errlen)
{
    char boot_id[BOOT_ID_LEN];
    read_boot_id(boot_id);
    return etag_history_new_boot(dir, max_slots, boot_id, err, errlen);
}

struct etag_history *etag_history_new_boot(const char *dir, size_t max_slots, const char *boot_id,
                                           char *err, size_t errlen)
{
    unsigned bits = HISTORY_MIN_BITS;
    while (bits < HISTORY_MAX_BITS && n_buckets(bits + 1) * BUCKET_WAYS <= max_slots)
        bits++;
    char path[PATH_MAX];
    if (history_path(dir, path, err, errlen) != 0)
        return NULL;
    /* O_NOFOLLOW: a link planted in state_dir must not make us truncate
     * whatever it points to. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    char why[128];
    bool reuse = reusable(fd, &sb, bits, boot_id, why, sizeof why);
    if (!reuse) {
        if (why[0] != '\0')
            log_warn("%s: %s; starting afresh (each URL's Last-Modified restarts at the time "
                     "its bytes are next seen)", path, why);
        /* Truncating first frees every old block: the new file is all hole. */
        if (ftruncate(fd, 0) != 0 || ftruncate(fd, file_size(bits)) != 0) {
            snprintf(err, errlen, "cannot size %s: %s", path, strerror(errno));
            close(fd);
            return NULL;
        }
    }
    struct history_header hd = {
        .magic = HISTORY_FILE_MAGIC,
        .version = HISTORY_FORMAT_VERSION,
        .bits = bits,
        .bucket_bytes = sizeof(struct history_bucket),
        .clean = 0,
    };
    snprintf(hd.boot_id, sizeof hd.boot_id, "%s", boot_id);
    /* Durable before any bucket is written: "open, and by this boot". */
    errno = 0;
    if (pwrite(fd, &hd, sizeof hd, 0) != (ssize_t)sizeof hd || fdatasync(fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, errno ? strerror(errno) : "short write");
        close(fd);
        return NULL;
    }
    struct etag_history *h = calloc(1, sizeof *h);
    AN(h);
    h->magic = ETAG_HISTORY_MAGIC;
    h->fd = fd;
    h->bits = bits;
    h->hd = hd;
    snprintf(h->path, sizeof h->path, "%s", path);
    atomic_init(&h->used, reuse ? count_used(fd, bits) : 0);
    atomic_init(&h->failed, false);
    for (int i = 0; i < HISTORY_LOCKS; i++)
        AZ(pthread_mutex_init(&h->locks[i], NULL));
    return h;
}

int etag_history_check(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (history_path(dir, path, err, errlen) != 0)
        return -1;
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return 0;       /* none yet (the start creates it), or not ours to see */
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        return -1;
    }
    return 0;
}

void etag_history_free(struct etag_history *h)
{
    if (h == NULL)
        return;
    CHECK_OBJ(h, ETAG_HISTORY_MAGIC);
    /* Clean: every bucket durable first, then the flag that says so. */
    if (!atomic_load(&h->failed)) {
        h->hd.clean = 1;
        if (fdatasync(h->fd) != 0 || pwrite(h->fd, &h->hd, sizeof h->hd, 0) != (ssize_t)sizeof h->hd ||
            fdatasync(h->fd) != 0)
            log_warn("%s: cannot close cleanly (%s): a restart after a crash of the machine "
                     "starts it afresh", h->path, strerror(errno));
    }
    close(h->fd);
    for (int i = 0; i < HISTORY_LOCKS; i++)
        pthread_mutex_destroy(&h->locks[i]);
    h->magic = 0;
    free(h);
}

size_t etag_history_slots(struct etag_history *h)
{
    CHECK_OBJ(h, ETAG_HISTORY_MAGIC);
    return n_buckets(h->bits) * BUCKET_WAYS;
}

size_t etag_history_used(struct etag_history *h)
{
    CHECK_OBJ(h, ETAG_HISTORY_MAGIC);
    return atomic_load_explicit(&h->used, memory_order_relaxed);
}

/* A read or write failed: drop the history (see the comment on top). */
static void history_failed(struct etag_history *h, const char *what, int e)
{
    if (atomic_exchange(&h->failed, true))
        return;
    if (ftruncate(h->fd, 0) != 0)
        log_error("%s: cannot truncate after a failed %s: %s", h->path, what, strerror(errno));
    log_error("%s: %s failed (%s): the Last-Modified history is dropped; until a restart, "
              "Last-Modified is the time bytes are seen", h->path, what, strerror(e));
}

/* The key hash is a cache key's (FNV-1a, mixed for its low bits); the
 * history takes its top bits, so mix it once more (MurmurHash3's fmix64). */
static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint32_t key_check(uint64_t m, unsigned bits)
{
    return (uint32_t)(m >> (64 - bits - 32));
}

static size_t bucket_of(uint64_t m, unsigned bits)
{
    return (size_t)(m >> (64 - bits));
}

/* Seconds as a slot keeps them: 1 .. UINT32_MAX (0 is "unused"). */
static uint32_t slot_time(time_t t)
{
    return t < 1 ? 1 : (uint64_t)t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

time_t etag_history_note(struct etag_history *h, uint64_t key_hash, const unsigned char hash[32],
                         time_t now, bool *changed)
{
    CHECK_OBJ(h, ETAG_HISTORY_MAGIC);
    *changed = false;
    if (atomic_load_explicit(&h->failed, memory_order_relaxed))
        return now;
    uint64_t m = mix(key_hash);
    uint32_t check = key_check(m, h->bits);
    size_t bi = bucket_of(m, h->bits);
    time_t first = now;
    bool added = false, dirty = false;
    struct history_bucket b;
    pthread_mutex_t *mu = &h->locks[bi % HISTORY_LOCKS];
    pthread_mutex_lock(mu);
    ssize_t n = pread(h->fd, &b, sizeof b, bucket_off(bi));
    if (n != (ssize_t)sizeof b) {
        int e = n < 0 ? errno : EIO;
        pthread_mutex_unlock(mu);
        history_failed(h, "read", e);
        return now;
    }
    struct history_slot *s = NULL, *empty = NULL;
    for (int w = 0; w < BUCKET_WAYS && s == NULL; w++) {
        struct history_slot *x = &b.way[w];
        if (x->first_seen == 0)
            empty = empty ? empty : x;
        else if (x->key_check == check)
            s = x;
    }
    if (s != NULL) {
        if (memcmp(s->hash, hash, HISTORY_HASH_BYTES) == 0) {
            first = (time_t)s->first_seen;
        } else {
            /* New bytes must look newer than the old ones even within the
             * same second, or an If-Modified-Since from the old version
             * would get a wrong 304. */
            *changed = true;
            memcpy(s->hash, hash, HISTORY_HASH_BYTES);
            first = now > (time_t)s->first_seen ? now : (time_t)s->first_seen + 1;
            s->first_seen = slot_time(first);
            dirty = true;
        }
    } else {
        /* A full bucket forgets one key, chosen by the newcomer's check
         * (spread evenly, and the same for the same keys in a test). */
        s = empty ? empty : &b.way[check % BUCKET_WAYS];
        added = empty != NULL;
        s->key_check = check;
        memcpy(s->hash, hash, HISTORY_HASH_BYTES);
        s->first_seen = slot_time(now);
        dirty = true;
    }
    /* Only a bucket that changed is written: a key seen again with the
     * same bytes (most notes) costs one pread. */
    n = dirty ? pwrite(h->fd, &b, sizeof b, bucket_off(bi)) : (ssize_t)sizeof b;
    int e = n < 0 ? errno : EIO;
    pthread_mutex_unlock(mu);
    if (n != (ssize_t)sizeof b) {
        /* `first` is still right for this call (the memory of it is what
         * failed) */
        history_failed(h, "write", e);
        return first;
    }
    if (added)
        atomic_fetch_add_explicit(&h->used, 1, memory_order_relaxed);
    return first;
}
