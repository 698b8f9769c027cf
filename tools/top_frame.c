/*
 * top_frame.c — see top_frame.h.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "human.h"
#include "top_frame.h"

/* The series top shows (docs/operating.md lists them all). */
#define M_REQUESTS "freshcache_requests_total"
#define M_HITS "freshcache_cache_hits_total"
#define M_MISSES "freshcache_cache_misses_total"
#define M_STALE "freshcache_cache_stale_total"
#define M_OUTCOMES "freshcache_responses_total"
#define M_ORIGIN "freshcache_origin_requests_total"
#define M_ORIGIN_ERRORS "freshcache_origin_errors_total"
#define M_LATENCY "freshcache_origin_latency_seconds"
#define M_BYTES_SENT "freshcache_bytes_sent_total"
#define M_OBJECTS "freshcache_objects"
#define M_BYTES "freshcache_bytes"
#define M_MAX_BYTES "freshcache_max_bytes"
#define M_EVICTIONS "freshcache_cache_evictions_total"
#define M_CONNECTIONS "freshcache_connections"
#define M_ACCEPTED "freshcache_connections_accepted_total"
#define M_GENERATION "freshcache_generation"
#define M_GEN_CHANGED "freshcache_generation_changed_timestamp_seconds"
#define M_UPTIME "freshcache_uptime_seconds"
#define M_BUILD_INFO "freshcache_build_info"

/* ------------------------------------------------------------------ */
/* Parsing                                                              */

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* Past the label set `{...}` that starts at p, or NULL when it does not
 * close on this line.  Quoted values may hold '}' and escaped quotes. */
static const char *skip_labels(const char *p, const char *end)
{
    bool quoted = false;
    for (p++; p < end; p++) {
        if (quoted) {
            if (*p == '\\' && p + 1 < end)
                p++;
            else if (*p == '"')
                quoted = false;
        } else if (*p == '"') {
            quoted = true;
        } else if (*p == '}') {
            return p + 1;
        }
    }
    return NULL;
}

/* One sample line (no comment, not blank): 0 kept or left out, -1 malformed. */
static int parse_line(struct top_sample *s, const char *p, const char *end)
{
    const char *name = p;
    if (!is_name_start(*p))
        return -1;
    while (p < end && is_name_char(*p))
        p++;
    if (p < end && *p == '{' && (p = skip_labels(p, end)) == NULL)
        return -1;
    size_t name_len = (size_t)(p - name);
    if (p == end || !is_blank(*p))
        return -1;
    while (p < end && is_blank(*p))
        p++;

    /* The value: a float, or +Inf, -Inf, NaN (strtod reads those too).
     * LC_NUMERIC stays "C" in proxyctl, so the decimal point is '.'. */
    char num[64];
    size_t vlen = 0;
    while (p + vlen < end && !is_blank(p[vlen]))
        vlen++;
    if (vlen == 0 || vlen >= sizeof num)
        return -1;
    memcpy(num, p, vlen);
    num[vlen] = '\0';
    char *num_end;
    double v = strtod(num, &num_end);
    if (*num_end != '\0')
        return -1;
    p += vlen;

    /* An optional timestamp (integer ms), then nothing. */
    while (p < end && is_blank(*p))
        p++;
    if (p < end) {
        if (*p == '-')
            p++;
        const char *digits = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        while (p < end && is_blank(*p))
            p++;
        if (p == digits || p != end)
            return -1;
    }

    if (name_len >= TOP_SERIES_NAME_MAX || s->n == TOP_MAX_SERIES)
        return 0;
    memcpy(s->series[s->n].name, name, name_len);
    s->series[s->n].name[name_len] = '\0';
    s->series[s->n].value = v;
    s->n++;
    return 0;
}

int top_sample_parse(struct top_sample *s, const char *text, size_t len, char *err,
                     size_t errlen)
{
    s->n = 0;
    const char *p = text, *end = text + len;
    for (unsigned lineno = 1; p < end; lineno++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *line_end = eol;
        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        const char *q = p;
        while (q < line_end && is_blank(*q))
            q++;
        if (q < line_end && *q != '#' && parse_line(s, q, line_end) != 0) {
            snprintf(err, errlen, "line %u is not a Prometheus sample: %.*s", lineno,
                     (int)(line_end - q > 80 ? 80 : line_end - q), q);
            return -1;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

bool top_sample_get(const struct top_sample *s, const char *name, double *out)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->series[i].name, name) == 0) {
            *out = s->series[i].value;
            return true;
        }
    }
    return false;
}

bool top_label_value(const char *series, const char *label, char *out, size_t outlen)
{
    const char *p = strchr(series, '{');
    if (p == NULL || outlen == 0)
        return false;
    size_t label_len = strlen(label);
    p++;
    while (*p && *p != '}') {
        const char *key = p;
        while (*p && *p != '=')
            p++;
        if (*p != '=' || p[1] != '"')
            return false;
        bool match = (size_t)(p - key) == label_len && strncmp(key, label, label_len) == 0;
        p += 2;
        size_t o = 0;
        while (*p && *p != '"') {
            char c = *p++;
            if (c == '\\' && *p) {
                c = *p++;
                if (c == 'n')
                    c = '\n';
            }
            if (match && o + 1 < outlen)
                out[o++] = c;
        }
        if (*p != '"')
            return false;
        p++;
        if (match) {
            out[o] = '\0';
            return true;
        }
        while (*p == ',' || is_blank(*p))
            p++;
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* Histograms                                                           */

#define MAX_BUCKETS 64

struct bucket {
    double le;          /* upper bound, +Inf last */
    double count;       /* cumulative, observations in the span */
};

static int bucket_cmp(const void *a, const void *b)
{
    double x = ((const struct bucket *)a)->le, y = ((const struct bucket *)b)->le;
    return x < y ? -1 : x > y ? 1 : 0;
}

bool top_histogram_quantile(const struct top_sample *prev, const struct top_sample *cur,
                            const char *family, double q, double *out, bool *above)
{
    char prefix[TOP_SERIES_NAME_MAX];
    int plen = snprintf(prefix, sizeof prefix, "%s_bucket{", family);
    if (plen < 0 || (size_t)plen >= sizeof prefix)
        return false;
    struct bucket b[MAX_BUCKETS];
    size_t n = 0;
    for (size_t i = 0; i < cur->n && n < MAX_BUCKETS; i++) {
        const char *name = cur->series[i].name;
        char le[32];
        if (strncmp(name, prefix, (size_t)plen) != 0 || !top_label_value(name, "le", le, sizeof le))
            continue;
        char *le_end;
        double bound = strtod(le, &le_end);
        if (*le_end != '\0')
            continue;
        double before = 0;
        if (prev)
            (void)top_sample_get(prev, name, &before);
        b[n].le = bound;
        b[n].count = cur->series[i].value - before;
        n++;
    }
    if (n == 0)
        return false;
    qsort(b, n, sizeof b[0], bucket_cmp);
    double total = b[n - 1].count;
    if (!isinf(b[n - 1].le) || !(total > 0))
        return false;

    /* Prometheus' histogram_quantile: the first bucket holding the rank,
     * linear between its lower and upper bounds. */
    double rank = q * total;
    size_t i = 0;
    while (i < n - 1 && b[i].count < rank)
        i++;
    if (isinf(b[i].le)) {
        *out = i > 0 ? b[i - 1].le : 0;
        *above = true;
        return true;
    }
    double lo = i > 0 ? b[i - 1].le : 0, count_lo = i > 0 ? b[i - 1].count : 0;
    double in_bucket = b[i].count - count_lo;
    *out = in_bucket > 0 ? lo + (b[i].le - lo) * (rank - count_lo) / in_bucket : b[i].le;
    *above = false;
    return true;
}

/* ------------------------------------------------------------------ */
/* The frame                                                            */

/* What the rates are computed over. */
struct span {
    const struct top_sample *prev;      /* NULL: since the daemon started */
    const struct top_sample *cur;
    double seconds;                     /* 0: no rate can be computed */
};

static struct span make_span(const struct top_sample *prev, const struct top_sample *cur)
{
    struct span sp = { .prev = prev, .cur = cur };
    double up_prev, up_cur;
    bool have_up = top_sample_get(cur, M_UPTIME, &up_cur);
    /* A daemon restarted between the samples counts from zero again: its
     * uptime went down.  Differences would be negative, so fall back to
     * averages since its start. */
    if (prev && have_up && top_sample_get(prev, M_UPTIME, &up_prev) && up_cur < up_prev)
        sp.prev = NULL;
    if (sp.prev && cur->taken > sp.prev->taken)
        sp.seconds = cur->taken - sp.prev->taken;
    else if (!sp.prev && have_up)
        sp.seconds = up_cur;
    else
        sp.prev = NULL;
    return sp;
}

/* How much counter `name` grew over the span.  false when it is absent. */
static bool growth(const struct span *sp, const char *name, double *out)
{
    double now, before = 0;
    if (!top_sample_get(sp->cur, name, &now))
        return false;
    if (sp->prev && !top_sample_get(sp->prev, name, &before))
        return false;
    *out = now > before ? now - before : 0;
    return true;
}

static bool rate(const struct span *sp, const char *name, double *out)
{
    double g;
    if (sp->seconds <= 0 || !growth(sp, name, &g))
        return false;
    *out = g / sp->seconds;
    return true;
}

/* "12.5" under 100, "1234" above: a column that does not jump about. */
static const char *fmt_rate(char *buf, size_t len, const struct span *sp, const char *name)
{
    double v;
    if (!rate(sp, name, &v))
        snprintf(buf, len, "-");
    else if (v < 100)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.0f", v);
    return buf;
}

static const char *fmt_quantile(char *buf, size_t len, const struct span *sp, double q)
{
    double v;
    bool above;
    if (!top_histogram_quantile(sp->prev, sp->cur, M_LATENCY, q, &v, &above))
        snprintf(buf, len, "-");
    else if (v < 1)
        snprintf(buf, len, "%s%.1f ms", above ? ">" : "", v * 1000);
    else
        snprintf(buf, len, "%s%.2f s", above ? ">" : "", v);
    return buf;
}

static const char *fmt_percent(char *buf, size_t len, double part, double whole)
{
    if (whole > 0)
        snprintf(buf, len, "%.1f %%", 100.0 * part / whole);
    else
        snprintf(buf, len, "-");
    return buf;
}

static void add(struct top_frame *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct top_frame *f, const char *fmt, ...)
{
    if (f->n == TOP_FRAME_LINES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->line[f->n++], TOP_LINE_MAX, fmt, ap);
    va_end(ap);
}

/* The label of a series labelled by one thing (`{cache="hit"}`): its
 * value, whatever the label is called. */
static bool only_label(const char *series, char *out, size_t len)
{
    const char *open = strchr(series, '{'), *eq = open ? strchr(open, '=') : NULL;
    char label[64];
    if (eq == NULL || (size_t)(eq - open - 1) >= sizeof label)
        return false;
    memcpy(label, open + 1, (size_t)(eq - open - 1));
    label[eq - open - 1] = '\0';
    return top_label_value(series, label, out, len);
}

/*
 * A sample's value as a whole number of something (bytes, seconds).  Values
 * come from whatever answered on the admin socket, so NaN, infinities and
 * numbers past 2^64 are possible; converting those to an integer type is
 * undefined behaviour in C, hence the clamp: NaN and negatives read as 0,
 * anything too large as the largest count.
 */
static uint64_t sample_count(double v)
{
    if (!(v > 0))
        return 0;
    if (v >= 18446744073709551615.0)
        return UINT64_MAX;
    return (uint64_t)v;
}

static void render_header(const struct span *sp, const char *where, time_t now,
                          struct top_frame *f)
{
    const struct top_sample *cur = sp->cur;
    char version[64] = "", up[64] = "?", clock[16] = "";
    for (size_t i = 0; i < cur->n; i++)
        if (strncmp(cur->series[i].name, M_BUILD_INFO "{", strlen(M_BUILD_INFO) + 1) == 0)
            top_label_value(cur->series[i].name, "version", version, sizeof version);
    double v;
    if (top_sample_get(cur, M_UPTIME, &v) && v >= 0)
        human_duration(sample_count(v), up, sizeof up);
    struct tm tm;
    if (localtime_r(&now, &tm))
        strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    add(f, "freshcache %s on %s, up %s, %s", version[0] ? version : "(version unknown)", where,
        up, clock);

    double gen, changed;
    if (top_sample_get(cur, M_GENERATION, &gen)) {
        if (!top_sample_get(cur, M_GEN_CHANGED, &changed)) {
            add(f, "generation %.0f", gen);
        } else if (changed <= 0) {
            add(f, "generation %.0f, never bumped", gen);
        } else if (!(changed < (double)now + 1)) {
            /* in the future, or NaN: print what came, compute nothing from it */
            add(f, "generation %.0f, last bump at %g (not a time before now)", gen, changed);
        } else {
            time_t t = (time_t)changed; /* 0 < changed < now + 1: fits */
            char when[64] = "", ago[64];
            if (localtime_r(&t, &tm))
                strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", &tm);
            human_duration(now > t ? (uint64_t)(now - t) : 0, ago, sizeof ago);
            add(f, "generation %.0f, last bump %s (%s ago)", gen, when, ago);
        }
    }
    if (sp->seconds <= 0)
        add(f, "rates: none yet");
    else if (sp->prev == NULL)
        add(f, "rates: per second, averaged since the daemon started");
    else
        add(f, "rates: per second, over the last %.1f s", sp->seconds);
}

static void render_requests(const struct span *sp, struct top_frame *f)
{
    char a[32], b[32], c[32];
    double hits, misses;
    const char *ratio = "-";
    if (growth(sp, M_HITS, &hits) && growth(sp, M_MISSES, &misses))
        ratio = fmt_percent(b, sizeof b, hits, hits + misses);
    add(f, "%-16s %8s/s   hit ratio %s", "requests", fmt_rate(a, sizeof a, sp, M_REQUESTS),
        ratio);

    /* by outcome, in the daemon's order (hit, miss, revalidated, ...) */
    const struct top_sample *cur = sp->cur;
    for (size_t i = 0; i < cur->n; i++) {
        const char *name = cur->series[i].name;
        char outcome[32];
        if (strncmp(name, M_OUTCOMES "{", strlen(M_OUTCOMES) + 1) != 0 ||
            !only_label(name, outcome, sizeof outcome))
            continue;
        add(f, "  %-14s %8s/s", outcome, fmt_rate(a, sizeof a, sp, name));
    }
    add(f, "  %-14s %8s/s", "stale served", fmt_rate(a, sizeof a, sp, M_STALE));
    add(f, "%s", "");

    add(f, "%-16s %8s/s   errors %s/s", "origin requests", fmt_rate(a, sizeof a, sp, M_ORIGIN),
        fmt_rate(b, sizeof b, sp, M_ORIGIN_ERRORS));
    char p50[32], p90[32], p99[32];
    add(f, "  %-14s p50 %s   p90 %s   p99 %s", "latency", fmt_quantile(p50, sizeof p50, sp, 0.5),
        fmt_quantile(p90, sizeof p90, sp, 0.9), fmt_quantile(p99, sizeof p99, sp, 0.99));
    double out;
    if (rate(sp, M_BYTES_SENT, &out))
        human_bytes(sample_count(out), c, sizeof c);
    else
        snprintf(c, sizeof c, "-");
    add(f, "%-16s %8s/s", "bytes out", c);
    add(f, "%s", "");
}

static void render_store(const struct span *sp, struct top_frame *f)
{
    const struct top_sample *cur = sp->cur;
    char a[32], b[32], c[32];
    double objects, bytes, max_bytes, conns;

    if (top_sample_get(cur, M_OBJECTS, &objects))
        snprintf(c, sizeof c, "%.0f", objects);
    else
        snprintf(c, sizeof c, "-");
    add(f, "%-16s %8s     evictions %s/s", "objects", c, fmt_rate(a, sizeof a, sp, M_EVICTIONS));

    if (top_sample_get(cur, M_BYTES, &bytes) && top_sample_get(cur, M_MAX_BYTES, &max_bytes) &&
        max_bytes > 0) {
        /* a bar of 20: how close the store is to evicting */
        char bar[21];
        double share = bytes / max_bytes; /* NaN if both are infinite */
        int full = share >= 1 ? 20 : share > 0 ? (int)(20.0 * share + 0.5) : 0;
        for (int i = 0; i < 20; i++)
            bar[i] = i < full ? '#' : '.';
        bar[20] = '\0';
        human_bytes(sample_count(bytes), a, sizeof a);
        human_bytes(sample_count(max_bytes), b, sizeof b);
        add(f, "%-16s %s of %s (%s)  [%s]", "memory", a, b,
            fmt_percent(c, sizeof c, bytes, max_bytes), bar);
    }

    if (top_sample_get(cur, M_CONNECTIONS, &conns))
        snprintf(c, sizeof c, "%.0f", conns);
    else
        snprintf(c, sizeof c, "-");
    add(f, "%-16s %8s     accepted %s/s", "connections", c, fmt_rate(a, sizeof a, sp, M_ACCEPTED));
}

void top_frame_render(const struct top_sample *prev, const struct top_sample *cur,
                      const char *where, time_t now, struct top_frame *f)
{
    f->n = 0;
    struct span sp = make_span(prev, cur);
    render_header(&sp, where, now, f);
    add(f, "%s", "");
    render_requests(&sp, f);
    render_store(&sp, f);
}
