/*
 * check_etag.c — content-hash ETags (src/cache/etag.c): the streaming
 * SHA-256 hasher against OpenSSL's one-shot SHA256() and the FIPS 180-2
 * vectors, the exact ETag text, and the first-seen history behind
 * Last-Modified (src/cache/etag_history.c), in its file: restarts, crashes,
 * headers that do not match, files that cannot be opened or written.
 */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "freshcache/cache/etag.h"
#include "tmpdir.h"

static void hash_of(const void *data, size_t len, unsigned char out[32])
{
    struct etag_hasher *h = etag_hasher_new();
    ck_assert_ptr_nonnull(h);
    etag_hasher_update(h, data, len);
    etag_hasher_final(h, out);
    etag_hasher_free(h);
}

static void hex(const unsigned char hash[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", hash[i]);
}

static const char *etag_of(const void *data, size_t len)
{
    static char out[67];
    unsigned char hash[32];
    hash_of(data, len, hash);
    etag_format(hash, out);
    return out;
}

/* ---------------------------------------------------------------- hasher */

START_TEST(known_vectors)
{
    unsigned char hash[32];
    char h[65];

    hash_of("", 0, hash);
    hex(hash, h);
    ck_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    hash_of("abc", 3, hash);
    hex(hash, h);
    ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hash_of(two_blocks, strlen(two_blocks), hash);
    hex(hash, h);
    ck_assert_str_eq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

/* An empty update changes nothing; no update at all is the hash of "". */
START_TEST(empty_updates)
{
    unsigned char a[32], b[32];
    struct etag_hasher *h = etag_hasher_new();
    etag_hasher_final(h, a);
    etag_hasher_free(h);
    SHA256((const unsigned char *)"", 0, b);
    ck_assert_mem_eq(a, b, 32);

    h = etag_hasher_new();
    etag_hasher_update(h, "", 0);
    etag_hasher_update(h, "ab", 2);
    etag_hasher_update(h, "", 0);
    etag_hasher_update(h, "c", 1);
    etag_hasher_final(h, a);
    etag_hasher_free(h);
    SHA256((const unsigned char *)"abc", 3, b);
    ck_assert_mem_eq(a, b, 32);
}
END_TEST

/* A body arriving in pieces of any sizes hashes like the whole body. */
START_TEST(pieces_equal_one_shot)
{
    const size_t n = 1000003;           /* not a multiple of the 64-byte block */
    unsigned char *data = malloc(n);
    ck_assert_ptr_nonnull(data);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (unsigned char)x;
    }
    unsigned char want[32];
    SHA256(data, n, want);

    static const size_t pieces[] = { 1, 7, 63, 64, 65, 4096, 16384, 100000 };
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
        struct etag_hasher *h = etag_hasher_new();
        size_t step = pieces[k];
        for (size_t off = 0; off < n; off += step)
            etag_hasher_update(h, data + off, off + step <= n ? step : n - off);
        unsigned char got[32];
        etag_hasher_final(h, got);
        etag_hasher_free(h);
        ck_assert_msg(memcmp(got, want, 32) == 0, "pieces of %zu bytes hash differently", step);
    }

    /* irregular pieces, as a socket delivers them */
    struct etag_hasher *h = etag_hasher_new();
    size_t off = 0, step = 1;
    while (off < n) {
        size_t len = off + step <= n ? step : n - off;
        etag_hasher_update(h, data + off, len);
        off += len;
        step = step * 3 % 9973 + 1;
    }
    unsigned char got[32];
    etag_hasher_final(h, got);
    etag_hasher_free(h);
    ck_assert_mem_eq(got, want, 32);

    /* and one byte changed anywhere gives another hash */
    data[n / 2] ^= 1;
    hash_of(data, n, got);
    ck_assert(memcmp(got, want, 32) != 0);
    free(data);
}
END_TEST

/* Hashers are independent of each other (one per fetch, interleaved). */
START_TEST(interleaved_hashers)
{
    struct etag_hasher *a = etag_hasher_new(), *b = etag_hasher_new();
    etag_hasher_update(a, "a", 1);
    etag_hasher_update(b, "x", 1);
    etag_hasher_update(a, "bc", 2);
    etag_hasher_update(b, "yz", 2);
    unsigned char ha[32], hb[32], wa[32], wb[32];
    etag_hasher_final(a, ha);
    etag_hasher_final(b, hb);
    etag_hasher_free(a);
    etag_hasher_free(b);
    SHA256((const unsigned char *)"abc", 3, wa);
    SHA256((const unsigned char *)"xyz", 3, wb);
    ck_assert_mem_eq(ha, wa, 32);
    ck_assert_mem_eq(hb, wb, 32);
    etag_hasher_free(NULL);                 /* like free(NULL) */
}
END_TEST

/* ---------------------------------------------------------------- format */

START_TEST(format_exact)
{
    unsigned char hash[32];
    char out[67];
    memset(out, 'X', sizeof out);
    hash_of("abc", 3, hash);
    etag_format(hash, out);
    ck_assert_str_eq(out, "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
    ck_assert_uint_eq(strlen(out), 66);

    for (int i = 0; i < 32; i++)
        hash[i] = (unsigned char)(i * 8 + 7);
    etag_format(hash, out);
    ck_assert_str_eq(out, "\"070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff\"");

    memset(hash, 0, 32);
    etag_format(hash, out);
    ck_assert_str_eq(out, "\"0000000000000000000000000000000000000000000000000000000000000000\"");
    memset(hash, 0xff, 32);
    etag_format(hash, out);
    ck_assert_str_eq(out, "\"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"");
}
END_TEST

/* The property clients rely on: same bytes, same strong ETag; different
 * bytes of the same size (the deploy the seed describes), another one. */
START_TEST(same_bytes_same_etag)
{
    char a[67], b[67];
    snprintf(a, sizeof a, "%s", etag_of("<h1>v1</h1>\n", 12));
    snprintf(b, sizeof b, "%s", etag_of("<h1>v1</h1>\n", 12));
    ck_assert_str_eq(a, b);
    snprintf(b, sizeof b, "%s", etag_of("<h1>v2</h1>\n", 12));
    ck_assert_str_ne(a, b);
    /* strong: no W/ prefix, quoted */
    ck_assert_int_eq(a[0], '"');
    ck_assert_int_eq(a[65], '"');
}
END_TEST

/* --------------------------------------------------------------- history */

/* The history lives in DIR/etag-history (tmp_dir: each test its own). */
static char hist_path[256];

static struct etag_history *hist_open_boot(size_t slots, const char *boot)
{
    char err[512] = "";
    struct etag_history *h = boot ? etag_history_new_boot(tmp_dir, slots, boot, err, sizeof err)
                                  : etag_history_new(tmp_dir, slots, err, sizeof err);
    ck_assert_msg(h != NULL, "etag_history_new: %s", err);
    snprintf(hist_path, sizeof hist_path, "%s/etag-history", tmp_dir);
    return h;
}

static struct etag_history *hist_open(size_t slots)
{
    return hist_open_boot(slots, NULL);
}

static void fill_hash(unsigned char h[32], int v)
{
    memset(h, 0, 32);
    h[0] = (unsigned char)v;
    h[31] = (unsigned char)(v >> 8);
}

START_TEST(history_first_time_is_now)
{
    struct etag_history *hist = hist_open(1024);
    unsigned char h[32];
    fill_hash(h, 1);
    bool changed = true;
    ck_assert_int_eq(etag_history_note(hist, 42, h, 1000, &changed), 1000);
    ck_assert(!changed);
    etag_history_free(hist);
    etag_history_free(NULL);
}
END_TEST

START_TEST(history_same_hash_keeps_first_time)
{
    struct etag_history *hist = hist_open(1024);
    unsigned char h[32];
    fill_hash(h, 1);
    bool changed = true;
    ck_assert_int_eq(etag_history_note(hist, 42, h, 1000, &changed), 1000);
    ck_assert_int_eq(etag_history_note(hist, 42, h, 2000, &changed), 1000);
    ck_assert(!changed);
    ck_assert_int_eq(etag_history_note(hist, 42, h, 999999, &changed), 1000);
    ck_assert(!changed);
    etag_history_free(hist);
}
END_TEST

START_TEST(history_new_hash_changes)
{
    struct etag_history *hist = hist_open(1024);
    unsigned char v1[32], v2[32];
    fill_hash(v1, 1);
    fill_hash(v2, 2);
    bool changed = false;
    ck_assert_int_eq(etag_history_note(hist, 42, v1, 1000, &changed), 1000);
    ck_assert(!changed);
    ck_assert_int_eq(etag_history_note(hist, 42, v2, 2000, &changed), 2000);
    ck_assert(changed);
    /* the new hash is now the remembered one */
    ck_assert_int_eq(etag_history_note(hist, 42, v2, 3000, &changed), 2000);
    ck_assert(!changed);
    /* going back to the old bytes is a change too, with a new time: an
     * If-Modified-Since from the v2 era must not validate v1 */
    ck_assert_int_eq(etag_history_note(hist, 42, v1, 4000, &changed), 4000);
    ck_assert(changed);
    /* a hash differing only in the last byte the history keeps (it keeps
     * 8 of SHA-256's 32: two bodies sharing those are a 2^-64 chance) */
    unsigned char v1b[32];
    memcpy(v1b, v1, 32);
    v1b[7] ^= 0x80;
    ck_assert_int_eq(etag_history_note(hist, 42, v1b, 5000, &changed), 5000);
    ck_assert(changed);
    etag_history_free(hist);
}
END_TEST

/* Changes within one second: each one a second later than the last, so
 * an If-Modified-Since taken from any earlier version never matches. */
START_TEST(history_change_within_a_second)
{
    struct etag_history *hist = hist_open(1024);
    unsigned char v[32];
    bool changed;
    fill_hash(v, 0);
    ck_assert_int_eq(etag_history_note(hist, 42, v, 1000, &changed), 1000);
    for (int i = 1; i <= 5; i++) {
        fill_hash(v, i);
        ck_assert_int_eq(etag_history_note(hist, 42, v, 1000, &changed), 1000 + i);
        ck_assert(changed);
    }
    /* the clock catching up gives the clock's time again */
    fill_hash(v, 6);
    ck_assert_int_eq(etag_history_note(hist, 42, v, 1003, &changed), 1006);
    fill_hash(v, 7);
    ck_assert_int_eq(etag_history_note(hist, 42, v, 2000, &changed), 2000);
    etag_history_free(hist);
}
END_TEST

/* Different URLs are independent, even with the same bytes. */
START_TEST(history_keys_independent)
{
    struct etag_history *hist = hist_open(1024);
    unsigned char h[32], other[32];
    fill_hash(h, 7);
    fill_hash(other, 8);
    bool changed;
    ck_assert_int_eq(etag_history_note(hist, 1, h, 100, &changed), 100);
    ck_assert_int_eq(etag_history_note(hist, 2, h, 200, &changed), 200);
    ck_assert(!changed);
    ck_assert_int_eq(etag_history_note(hist, 3, other, 300, &changed), 300);
    ck_assert(!changed);
    ck_assert_int_eq(etag_history_note(hist, 1, h, 400, &changed), 100);
    ck_assert_int_eq(etag_history_note(hist, 2, h, 500, &changed), 200);
    ck_assert_int_eq(etag_history_note(hist, 3, other, 600, &changed), 300);
    ck_assert(!changed);
    etag_history_free(hist);
}
END_TEST

/* The history places a key by its hash after MurmurHash3's fmix64; these
 * undo it, so a test can choose where keys land (fmix64 is a bijection:
 * xor-shifts by 33 undo themselves, odd multipliers have inverses). */
static uint64_t mul_inverse(uint64_t a)
{
    uint64_t x = a;             /* Newton: each step doubles the good bits */
    for (int i = 0; i < 6; i++)
        x *= 2 - a * x;
    return x;
}

static uint64_t unmix(uint64_t m)
{
    m ^= m >> 33;
    m *= mul_inverse(0xc4ceb9fe1a85ec53ULL);
    m ^= m >> 33;
    m *= mul_inverse(0xff51afd7ed558ccdULL);
    m ^= m >> 33;
    return m;
}

/* A key whose mixed hash has `top` in its top 6 bits (its bucket in a
 * table of 512 entries) and `check` in the 32 bits below them (its check
 * there).  In a bigger table, keys with the same top, check and low bits
 * up to 2^26 still share bucket and check. */
static uint64_t key_at(uint64_t top, uint32_t check, uint32_t low)
{
    return unmix((top << 58) | ((uint64_t)check << 26) | (low & 0x3ffffff));
}

START_TEST(history_unmix_roundtrip)
{
    /* the test's keys mean what they say: same bucket, chosen checks */
    struct etag_history *hist = hist_open(512);
    unsigned char a[32];
    fill_hash(a, 1);
    bool changed;
    ck_assert_int_eq(etag_history_note(hist, key_at(3, 77, 1), a, 100, &changed), 100);
    /* same top bits and check, other low bits: the history cannot tell
     * them apart, and says so with the old time */
    ck_assert_int_eq(etag_history_note(hist, key_at(3, 77, 2), a, 200, &changed), 100);
    ck_assert(!changed);
    etag_history_free(hist);
}
END_TEST

/* A bucket holds eight keys; a ninth pushes one out, which is then
 * forgotten: its next note is a first sighting (younger time, and no
 * "changed" since nothing is remembered to compare with). */
START_TEST(history_full_bucket_forgets)
{
    struct etag_history *hist = hist_open(512);
    unsigned char a[32];
    fill_hash(a, 1);
    bool changed = true;
    for (uint32_t k = 0; k < 8; k++) {
        ck_assert_int_eq(etag_history_note(hist, key_at(5, 1000 + k, 0), a, 100 + k, &changed),
                         100 + k);
        ck_assert(!changed);
    }
    for (uint32_t k = 0; k < 8; k++)
        ck_assert_int_eq(etag_history_note(hist, key_at(5, 1000 + k, 0), a, 200, &changed), 100 + k);
    /* the ninth takes way (check % 8) = 1001's */
    ck_assert_int_eq(etag_history_note(hist, key_at(5, 2001, 0), a, 300, &changed), 300);
    ck_assert(!changed);
    ck_assert_int_eq(etag_history_note(hist, key_at(5, 1001, 0), a, 400, &changed), 400);
    ck_assert(!changed);
    /* the others, and keys of other buckets, are unaffected */
    ck_assert_int_eq(etag_history_note(hist, key_at(5, 1000, 0), a, 500, &changed), 100);
    ck_assert_int_eq(etag_history_note(hist, key_at(6, 1001, 0), a, 600, &changed), 600);
    ck_assert_int_eq(etag_history_note(hist, key_at(6, 1001, 0), a, 700, &changed), 600);
    etag_history_free(hist);
}
END_TEST

/* Zero (or too few) slots is the smallest table: every key works,
 * nothing crashes. */
START_TEST(history_zero_slots)
{
    struct etag_history *hist = hist_open(0);
    ck_assert_uint_eq(etag_history_slots(hist), 512);
    unsigned char a[32];
    fill_hash(a, 1);
    bool changed;
    ck_assert_int_eq(etag_history_note(hist, 1, a, 10, &changed), 10);
    ck_assert_int_eq(etag_history_note(hist, 1, a, 20, &changed), 10);
    ck_assert_int_eq(etag_history_note(hist, UINT64_MAX, a, 50, &changed), 50);
    for (uint64_t k = 100; k < 5000; k++)
        etag_history_note(hist, k, a, 60, &changed);
    ck_assert_uint_eq(etag_history_slots(hist), 512);
    ck_assert_uint_le(etag_history_used(hist), 512);
    etag_history_free(hist);
}
END_TEST

/* The file has its full size from the start, as a hole: what it takes on
 * disk grows with the keys noted, never its size, and the table holds
 * its cap at once. */
START_TEST(history_sparse_file_of_cap)
{
    struct etag_history *hist = hist_open(8192 + 100);      /* 8192: a power of two */
    ck_assert_uint_eq(etag_history_slots(hist), 8192);
    ck_assert_uint_eq(etag_history_used(hist), 0);
    struct stat sb;
    ck_assert_int_eq(stat(hist_path, &sb), 0);
    ck_assert_int_eq(sb.st_size, 4096 + 8192 * 16);
    ck_assert_int_le((long long)sb.st_blocks * 512, 8192);     /* the header's block */
    unsigned char a[32];
    fill_hash(a, 1);
    bool changed;
    for (uint64_t k = 0; k < 2000; k++)
        etag_history_note(hist, k * 0x9e3779b97f4a7c15ULL, a, 100, &changed);
    size_t used = etag_history_used(hist);
    ck_assert_uint_le(used, 2000);
    ck_assert_uint_ge(used, 1990);          /* 2000 of 8192: few full buckets */
    for (uint64_t k = 2000; k < 50000; k++)
        etag_history_note(hist, k * 0x9e3779b97f4a7c15ULL, a, 100, &changed);
    ck_assert_uint_eq(etag_history_slots(hist), 8192);
    ck_assert_uint_le(etag_history_used(hist), 8192);
    ck_assert_uint_ge(etag_history_used(hist), 8000);
    ck_assert_int_eq(stat(hist_path, &sb), 0);
    ck_assert_int_eq(sb.st_size, 4096 + 8192 * 16);
    etag_history_free(hist);
}
END_TEST

/* Notes of a run with `boot`, with changes; what a reopened history must
 * give for them (see check_remembered). */
enum { RESTART_KEYS = 300 };

static void note_some(struct etag_history *hist)
{
    unsigned char a[32];
    bool changed;
    for (int k = 0; k < RESTART_KEYS; k++) {
        fill_hash(a, k);
        ck_assert_int_eq(etag_history_note(hist, key_at((uint64_t)k % 64, (uint32_t)k * 2654435761u, 0),
                                           a, 1000 + k, &changed), 1000 + k);
    }
    /* key 0 changed its bytes twice within its second */
    for (int v = 1; v <= 2; v++) {
        fill_hash(a, 10000 + v);
        ck_assert_int_eq(etag_history_note(hist, key_at(0, 0, 0), a, 1000, &changed), 1000 + v);
    }
}

static void check_remembered(struct etag_history *hist, bool remembered)
{
    unsigned char a[32];
    bool changed;
    ck_assert_uint_eq(etag_history_used(hist), remembered ? RESTART_KEYS : 0);
    for (int k = 1; k < RESTART_KEYS; k++) {
        fill_hash(a, k);
        ck_assert_int_eq(etag_history_note(hist, key_at((uint64_t)k % 64, (uint32_t)k * 2654435761u, 0),
                                           a, 5000, &changed), remembered ? 1000 + k : 5000);
        ck_assert(!changed);
    }
    /* key 0's latest bytes keep their time; its first bytes back, in the
     * same second as before the restart, are a change, later still */
    fill_hash(a, 10002);
    ck_assert_int_eq(etag_history_note(hist, key_at(0, 0, 0), a, 1000, &changed),
                     remembered ? 1002 : 1000);
    fill_hash(a, 0);
    ck_assert_int_eq(etag_history_note(hist, key_at(0, 0, 0), a, 1000, &changed),
                     remembered ? 1003 : 1001);
    ck_assert(changed);
}

/* A restart with the same state_dir reuses the file: Last-Modified times
 * survive it (they used to restart with every daemon). */
START_TEST(history_restart_reuses_file)
{
    struct etag_history *hist = hist_open(512);
    note_some(hist);
    ck_assert_uint_eq(etag_history_used(hist), RESTART_KEYS);
    etag_history_free(hist);
    hist = hist_open(512);
    check_remembered(hist, true);
    etag_history_free(hist);
}
END_TEST

/* Closed cleanly, the file is trusted whatever boot opens it next. */
START_TEST(history_clean_close_survives_reboot)
{
    struct etag_history *hist = hist_open_boot(512, "boot-a");
    note_some(hist);
    etag_history_free(hist);
    hist = hist_open_boot(512, "boot-b");
    check_remembered(hist, true);
    etag_history_free(hist);
}
END_TEST

/* A process that dies with the file open: `boot` opens it again. */
static void crash_with_notes(const char *boot)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char err[256];
        struct etag_history *hist = etag_history_new_boot(tmp_dir, 512, boot, err, sizeof err);
        if (hist == NULL)
            _exit(2);
        note_some(hist);
        _exit(0);               /* no etag_history_free: a crash */
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The process crashed, the machine did not: the page cache held every
 * write, so the next start keeps them. */
START_TEST(history_process_crash_keeps)
{
    crash_with_notes("boot-a");
    struct etag_history *hist = hist_open_boot(512, "boot-a");
    check_remembered(hist, true);
    etag_history_free(hist);
}
END_TEST

/* Left open by another boot (the machine went down under it): its last
 * writes may be lost, a lost change would bring old bytes back with
 * their old time (a false 304), so it starts afresh. */
START_TEST(history_machine_crash_starts_afresh)
{
    crash_with_notes("boot-a");
    struct etag_history *hist = hist_open_boot(512, "boot-b");
    check_remembered(hist, false);
    etag_history_free(hist);
    /* the boot id unknown: not closed cleanly is never trusted */
    ck_assert_int_eq(unlink(hist_path), 0);
    crash_with_notes("boot-a");
    hist = hist_open_boot(512, "");
    check_remembered(hist, false);
    etag_history_free(hist);
}
END_TEST

/* Another size, another format version, a torn or foreign file: started
 * afresh (truncated: no old block stays), never misread. */
START_TEST(history_header_mismatch_starts_afresh)
{
    struct etag_history *hist = hist_open(512);
    note_some(hist);
    etag_history_free(hist);
    /* another size (ETAG_HISTORY_SLOTS changed) */
    hist = hist_open(1024);
    ck_assert_uint_eq(etag_history_slots(hist), 1024);
    ck_assert_uint_eq(etag_history_used(hist), 0);
    etag_history_free(hist);

    ck_assert_int_eq(unlink(hist_path), 0);
    hist = hist_open(512);
    note_some(hist);
    etag_history_free(hist);
    /* another format version: the header's second field (bytes 8-11) */
    int fd = open(hist_path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    uint32_t version = 999;
    ck_assert_int_eq(pwrite(fd, &version, sizeof version, 8), sizeof version);
    close(fd);
    hist = hist_open(512);
    check_remembered(hist, false);
    etag_history_free(hist);

    /* cut short (a torn creation), or not a history at all */
    const char *junk[] = { "", "FCETAG", "not a history, just some bytes of text" };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        fd = open(hist_path, O_WRONLY | O_TRUNC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, junk[i], strlen(junk[i])), (ssize_t)strlen(junk[i]));
        close(fd);
        hist = hist_open(512);
        check_remembered(hist, false);
        etag_history_free(hist);
    }
    /* the right header, the wrong length */
    ck_assert_int_eq(unlink(hist_path), 0);
    hist = hist_open(512);
    note_some(hist);
    etag_history_free(hist);
    ck_assert_int_eq(truncate(hist_path, 4096 + 100 * 128), 0);
    hist = hist_open(512);
    check_remembered(hist, false);
    etag_history_free(hist);
    struct stat sb;
    ck_assert_int_eq(stat(hist_path, &sb), 0);
    ck_assert_int_eq(sb.st_size, 4096 + 512 * 16);
}
END_TEST

/* What cannot be opened or created is an error with the path and the
 * reason, and nothing is touched. */
START_TEST(history_unopenable)
{
    char err[512], path[300], dir[300];
    snprintf(dir, sizeof dir, "%s/missing", tmp_dir);
    ck_assert_ptr_null(etag_history_new(dir, 512, err, sizeof err));
    ck_assert_msg(strstr(err, "missing/etag-history") && strstr(err, "No such file"), "%s", err);
    ck_assert_int_eq(etag_history_check(dir, err, sizeof err), 0);   /* the start will tell */

    /* a directory in its place */
    snprintf(path, sizeof path, "%s/etag-history", tmp_dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_ptr_null(etag_history_new(tmp_dir, 512, err, sizeof err));
    ck_assert_msg(strstr(err, path) && strstr(err, "directory"), "%s", err);
    ck_assert_int_eq(etag_history_check(tmp_dir, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "not a regular file"), "%s", err);
    ck_assert_int_eq(rmdir(path), 0);

    /* a FIFO (opens read-write, is no file) */
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_ptr_null(etag_history_new(tmp_dir, 512, err, sizeof err));
    ck_assert_msg(strstr(err, path) && strstr(err, "not a regular file"), "%s", err);
    ck_assert_int_eq(etag_history_check(tmp_dir, err, sizeof err), -1);
    ck_assert_int_eq(unlink(path), 0);

    /* a symbolic link is not followed: what it points to stays whole */
    char target[300];
    snprintf(target, sizeof target, "%s/precious", tmp_dir);
    FILE *f = fopen(target, "w");
    ck_assert_ptr_nonnull(f);
    fputs("keep me\n", f);
    fclose(f);
    ck_assert_int_eq(symlink(target, path), 0);
    ck_assert_ptr_null(etag_history_new(tmp_dir, 512, err, sizeof err));
    ck_assert_msg(strstr(err, path), "%s", err);
    ck_assert_int_eq(etag_history_check(tmp_dir, err, sizeof err), -1);
    struct stat sb;
    ck_assert_int_eq(stat(target, &sb), 0);
    ck_assert_int_eq(sb.st_size, 8);
    ck_assert_int_eq(unlink(path), 0);

    /* a directory we may not write in (unless root, who may) */
    if (geteuid() != 0) {
        ck_assert_int_eq(chmod(tmp_dir, 0500), 0);
        ck_assert_ptr_null(etag_history_new(tmp_dir, 512, err, sizeof err));
        ck_assert_msg(strstr(err, "Permission denied"), "%s", err);
        ck_assert_int_eq(chmod(tmp_dir, 0700), 0);
    }
    /* a state_dir whose path leaves no room for the file's name */
    static char longdir[PATH_MAX];
    memset(longdir, 'd', sizeof longdir - 8);
    longdir[0] = '/';
    longdir[sizeof longdir - 8] = '\0';
    static char longerr[PATH_MAX + 64];
    ck_assert_ptr_null(etag_history_new(longdir, 512, longerr, sizeof longerr));
    ck_assert_msg(strstr(longerr, "/etag-history: path too long"), "%.80s", longerr);
    ck_assert_int_eq(etag_history_check(longdir, longerr, sizeof longerr), -1);
    ck_assert_msg(strstr(longerr, "/etag-history: path too long"), "%.80s", longerr);

    /* and a regular file is fine */
    ck_assert_int_eq(etag_history_check(tmp_dir, err, sizeof err), 0);
}
END_TEST

/* A write that fails (here: beyond RLIMIT_FSIZE, as ENOSPC filling a hole
 * would) drops the history: this note's time is still right, later ones
 * are the time the bytes are seen, and the truncated file makes the next
 * start begin afresh rather than trust a file that missed a write. */
START_TEST(history_write_failure_drops)
{
    struct etag_history *hist = hist_open(1u << 18);       /* 2^15 buckets, 4 MiB */
    unsigned char a[32], b[32];
    fill_hash(a, 1);
    fill_hash(b, 2);
    bool changed;
    uint64_t near = key_at(0, 1, 0), far = key_at(63, 1, 0);   /* first and last pages */
    ck_assert_int_eq(etag_history_note(hist, near, a, 100, &changed), 100);
    ck_assert_int_eq(etag_history_note(hist, far, a, 100, &changed), 100);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    /* a change of far's bytes (its bucket beyond the limit) in its second */
    ck_assert_int_eq(etag_history_note(hist, far, b, 100, &changed), 101);
    ck_assert(changed);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    /* dropped: near is forgotten too, and nothing is written any more */
    ck_assert_int_eq(etag_history_note(hist, near, a, 200, &changed), 200);
    ck_assert_int_eq(etag_history_note(hist, near, b, 300, &changed), 300);
    ck_assert(!changed);
    struct stat sb;
    ck_assert_int_eq(stat(hist_path, &sb), 0);
    ck_assert_int_eq(sb.st_size, 0);
    etag_history_free(hist);
    ck_assert_int_eq(stat(hist_path, &sb), 0);
    ck_assert_int_eq(sb.st_size, 0);
    hist = hist_open(1u << 18);
    ck_assert_uint_eq(etag_history_used(hist), 0);
    ck_assert_int_eq(etag_history_note(hist, near, a, 400, &changed), 400);
    etag_history_free(hist);
}
END_TEST

/* The property that matters: when a URL's bytes change, the time
 * returned is later than any time returned for that URL before, so no
 * If-Modified-Since from an older version can validate the new one —
 * across restarts (the file reopened every RESTART_EVERY steps), and for
 * keys the history cannot tell apart (pairs sharing bucket and check
 * here).  With `cap` below the keys, keys get pushed out: a forgotten
 * key's change gets at least `now`. */
static void changed_bytes_run(size_t cap, bool pressure)
{
    struct etag_history *hist = hist_open(cap);
    enum { KEYS = 6000, STEPS = 120000, RESTART_EVERY = 30000 };
    static time_t latest[KEYS];
    static int version[KEYS];
    static uint64_t key[KEYS];
    for (int k = 0; k < KEYS; k++) {
        key[k] = key_at((uint64_t)(k / 2) % 64, (uint32_t)(k / 2) * 2654435761u, (uint32_t)k);
        latest[k] = 0;
        version[k] = -1;
    }
    uint64_t rnd = 88172645463325252ULL;
    time_t now = 1000;
    unsigned char h[32];
    int changes = 0;
    for (int i = 0; i < STEPS; i++) {
        if (i > 0 && i % RESTART_EVERY == 0) {
            etag_history_free(hist);
            hist = hist_open(cap);
        }
        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        int k = (int)(rnd % KEYS);
        int v = version[k] < 0 ? 0 : version[k] + (int)((rnd >> 32) % 4 == 0);
        if (i % 50 == 0)
            now++;
        fill_hash(h, v + 7 * (k % 3));  /* some keys share bytes */
        bool changed;
        time_t t = etag_history_note(hist, key[k], h, now, &changed);
        ck_assert_int_ge(t, 1000);
        ck_assert_int_le(t, now + 5);   /* changes within a second: +1 each */
        if (version[k] >= 0 && v != version[k]) {
            if (pressure)
                ck_assert(t > latest[k] || t >= now);
            else
                ck_assert_int_gt(t, latest[k]);
            changes++;
        }
        if (t > latest[k])
            latest[k] = t;
        version[k] = v;
    }
    ck_assert_int_gt(changes, 1000);
    ck_assert_uint_le(etag_history_slots(hist), cap < 512 ? 512 : cap);
    etag_history_free(hist);
}

START_TEST(history_changed_bytes_never_older)
{
    changed_bytes_run(1u << 18, false);
}
END_TEST

START_TEST(history_changed_bytes_under_pressure)
{
    changed_bytes_run(2048, true);
}
END_TEST

/* Workers note at once: each key's first time is the one its first note
 * got, whichever thread made it (the stripe lock covers pread to pwrite:
 * no note is lost between them). */
struct race_arg {
    struct etag_history *hist;
    int base;
};

static void *race_thread(void *p)
{
    struct race_arg *ra = p;
    unsigned char a[32];
    fill_hash(a, 1);
    bool changed;
    for (int k = 0; k < 4000; k++)
        etag_history_note(ra->hist, (uint64_t)(k % 400) * 0x9e3779b97f4a7c15ULL, a,
                          ra->base + k / 400, &changed);
    return NULL;
}

START_TEST(history_threads)
{
    struct etag_history *hist = hist_open(1u << 14);
    pthread_t th[4];
    struct race_arg ra[4];
    for (int i = 0; i < 4; i++) {
        ra[i] = (struct race_arg){ hist, 1000 };
        ck_assert_int_eq(pthread_create(&th[i], NULL, race_thread, &ra[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ck_assert_uint_eq(etag_history_used(hist), 400);
    unsigned char a[32];
    fill_hash(a, 1);
    bool changed;
    for (int k = 0; k < 400; k++)
        ck_assert_int_eq(etag_history_note(hist, (uint64_t)k * 0x9e3779b97f4a7c15ULL, a, 9999,
                                           &changed), 1000);
    etag_history_free(hist);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *etag_suite(void)
{
    Suite *s = suite_create("etag");
    TCase *tc;

    tc = tcase_create("hasher");
    tcase_add_test(tc, known_vectors);
    tcase_add_test(tc, empty_updates);
    tcase_add_test(tc, pieces_equal_one_shot);
    tcase_add_test(tc, interleaved_hashers);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_test(tc, format_exact);
    tcase_add_test(tc, same_bytes_same_etag);
    suite_add_tcase(s, tc);

    tc = tcase_create("history");
    tcase_add_unchecked_fixture(tc, tmp_base_make, tmp_base_remove);
    tcase_add_checked_fixture(tc, tmp_dir_make, NULL);
    tcase_add_test(tc, history_first_time_is_now);
    tcase_add_test(tc, history_same_hash_keeps_first_time);
    tcase_add_test(tc, history_new_hash_changes);
    tcase_add_test(tc, history_change_within_a_second);
    tcase_add_test(tc, history_keys_independent);
    tcase_add_test(tc, history_unmix_roundtrip);
    tcase_add_test(tc, history_full_bucket_forgets);
    tcase_add_test(tc, history_zero_slots);
    tcase_add_test(tc, history_sparse_file_of_cap);
    tcase_add_test(tc, history_restart_reuses_file);
    tcase_add_test(tc, history_clean_close_survives_reboot);
    tcase_add_test(tc, history_process_crash_keeps);
    tcase_add_test(tc, history_machine_crash_starts_afresh);
    tcase_add_test(tc, history_header_mismatch_starts_afresh);
    tcase_add_test(tc, history_unopenable);
    tcase_add_test(tc, history_write_failure_drops);
    tcase_add_test(tc, history_changed_bytes_never_older);
    tcase_add_test(tc, history_changed_bytes_under_pressure);
    tcase_add_test(tc, history_threads);
    tcase_set_timeout(tc, 60);      /* the property runs, under ASan on a busy machine */
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(etag_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
