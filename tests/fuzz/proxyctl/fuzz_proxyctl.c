/*
 * fuzz_proxyctl.c — proxyctl's reading of the daemon's answers: the
 * HTTP response and its JSON body (tools/answer.c, over the llhttp glue)
 * and `proxyctl top`'s reading of /metrics (tools/top_frame.c: the
 * Prometheus text, labels, histogram quantiles, the frame drawn from two
 * samples).
 *
 * Input: a control byte; bit 0 picks the reader.  Answers: bits 1-6 the
 * size of the reads (0: one read), then the bytes the daemon sent, then
 * the end of the connection.  Metrics: the exposition text, parsed, then
 * drawn against itself as the previous sample.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/base/assert.h"

#include "answer.h"
#include "top_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* answer.c reports with errmsg(); proxyctl.c prints it, the fuzzer does not. */
void errmsg(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
}

static void read_answer(const char *in, size_t len, size_t chunk)
{
    struct answer_reader a;
    struct response r;
    AZ(answer_init(&a, &r));
    size_t off = 0;
    enum answer_state st;
    while ((st = answer_step(&a)) == ANSWER_MORE) {
        if (off == len) {
            answer_eof(&a);
            continue;
        }
        size_t n = chunk == 0 || len - off < chunk ? len - off : chunk;
        answer_add(&a, in + off, n);
        off += n;
    }
    if (st == ANSWER_DONE) {
        FC_ASSERT(r.status >= 200 || r.status < 100);
        AN(r.reason);
        AN(r.body);
        FC_ASSERT(r.body[r.body_len] == '\0');
        (void)report_failure(&r);
        (void)response_status_ok(&r);
        (void)response_error_text(&r);
    } else if (st == ANSWER_MALFORMED) {
        AN(answer_error(&a));
    }
    answer_free(&a);
    response_free(&r);
}

static void read_metrics(const char *in, size_t len)
{
    static struct top_sample cur, prev;
    char err[256];
    memset(&cur, 0, sizeof cur);
    if (top_sample_parse(&cur, in, len, err, sizeof err) != 0) {
        FC_ASSERT(err[0] != '\0');
        return;
    }
    double v;
    bool above;
    (void)top_sample_get(&cur, "freshcache_uptime_seconds", &v);
    (void)top_histogram_quantile(NULL, &cur, "freshcache_request_duration_seconds", 0.99, &v,
                                 &above);
    for (size_t i = 0; i < cur.n && i < 8; i++) {
        char label[64];
        (void)top_label_value(cur.series[i].name, "cache", label, sizeof label);
    }
    cur.taken = 10.0;
    prev = cur;
    prev.taken = 9.0;
    static struct top_frame f;
    top_frame_render(NULL, &cur, "fuzz.sock", 1700000000, &f);
    top_frame_render(&prev, &cur, "fuzz.sock", 1700000000, &f);
    FC_ASSERT(f.n <= TOP_FRAME_LINES);
    for (size_t i = 0; i < f.n; i++)
        FC_ASSERT(memchr(f.line[i], '\0', TOP_LINE_MAX) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    if (ctl & 1)
        read_metrics(in, len);
    else
        read_answer(in, len, (ctl >> 1) & 0x3f);
    return 0;
}
