/*
 * top_frame.h — the numbers behind `proxyctl top`, with no I/O: a sample is
 * one GET /metrics answer, parsed; a frame is the text of one screen,
 * computed from two samples (rates are their differences over the time
 * between them).  Kept apart from the screen and the socket (top.c) so the
 * arithmetic is unit-tested alone (tests/unit/check_top_frame.c).
 *
 * top reads /metrics rather than /stats because only /metrics has the
 * outcome breakdown and the latency histogram, and because it is what the
 * dashboards graph: top and Grafana show the same numbers.
 */
#ifndef FRESHCACHE_TOP_FRAME_H
#define FRESHCACHE_TOP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define TOP_MAX_SERIES 256
#define TOP_SERIES_NAME_MAX 160         /* NAME{LABELS} as exposed */

struct top_sample {
    double taken;                       /* monotonic seconds, set by the caller */
    size_t n;
    struct {
        char name[TOP_SERIES_NAME_MAX];
        double value;
    } series[TOP_MAX_SERIES];
};

/* Parse a Prometheus text exposition (format 0.0.4) into *s (s->taken is
 * left alone).  Comments and blank lines are skipped; a series whose name
 * and labels are too long, or past TOP_MAX_SERIES, is left out.  A line
 * that is not `NAME[{LABELS}] VALUE [TIMESTAMP]` fails the whole parse
 * (-1, the line number in err): better to say the answer is odd than to
 * show wrong numbers. */
int top_sample_parse(struct top_sample *s, const char *text, size_t len, char *err,
                     size_t errlen);

/* The value of a series named exactly as exposed, labels included (e.g.
 * `freshcache_responses_total{cache="hit"}`).  false when absent. */
bool top_sample_get(const struct top_sample *s, const char *name, double *out);

/* The value of label `label` in `series` ("NAME{a="x",b="y"}"), unescaped
 * into out.  false when the series has no such label. */
bool top_label_value(const char *series, const char *label, char *out, size_t outlen);

/* The q-quantile (0 < q < 1) of the observations of histogram `family`
 * made between prev and cur (prev NULL: since the daemon started),
 * interpolated within a bucket as Prometheus' histogram_quantile() does.
 * false when there was no observation.  When it falls in the +Inf bucket,
 * *out is the largest finite bound and *above is set. */
bool top_histogram_quantile(const struct top_sample *prev, const struct top_sample *cur,
                            const char *family, double q, double *out, bool *above);

#define TOP_FRAME_LINES 32
#define TOP_LINE_MAX 160

struct top_frame {
    size_t n;
    char line[TOP_FRAME_LINES][TOP_LINE_MAX];
};

/* The lines of one frame.  Rates are per second between prev and cur; with
 * prev NULL (the first sample), or after the daemon restarted (its uptime
 * went down), they are averages since the daemon started and the frame says
 * so.  `where` names the daemon (its socket); `now` is the wall clock, for
 * "last bump ... ago" (local time, as a terminal user reads it). */
void top_frame_render(const struct top_sample *prev, const struct top_sample *cur,
                      const char *where, time_t now, struct top_frame *f);

#endif
