/*
 * check_top_frame.c — proxyctl top's numbers (tools/top_frame.c): parsing
 * the Prometheus text of GET /metrics, labels, histogram quantiles as
 * Prometheus computes them, and the frame's rates, ratios and times,
 * including a first sample, a daemon restarted between two samples and
 * metrics an older daemon does not have.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "top_frame.h"

static struct top_sample *parse_ok(const char *text)
{
    struct top_sample *s = calloc(1, sizeof *s);
    char err[256] = "";
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(top_sample_parse(s, text, strlen(text), err, sizeof err) == 0, "%s", err);
    return s;
}

static double get(const struct top_sample *s, const char *name)
{
    double v = NAN;
    ck_assert_msg(top_sample_get(s, name, &v), "no series %s", name);
    return v;
}

/* ------------------------------------------------------------- parsing */

START_TEST(parse_exposition)
{
    struct top_sample *s = parse_ok(
        "# HELP freshcache_requests_total Client requests received.\n"
        "# TYPE freshcache_requests_total counter\n"
        "freshcache_requests_total 42\n"
        "\n"
        "freshcache_responses_total{cache=\"hit\"} 40\r\n"
        "  freshcache_responses_total{cache=\"miss\"}\t2\n"
        "freshcache_origin_latency_seconds_bucket{le=\"0.005\"} 1.5e1\n"
        "freshcache_origin_latency_seconds_bucket{le=\"+Inf\"} +Inf\n"
        "with_timestamp 7 1700000000000\n"
        "neg_timestamp 8 -5\n"
        "not_a_number NaN\n"
        "odd{l=\"a } b \\\" c\"} 3\n"
        "freshcache_build_info{version=\"0.1.0\"} 1");    /* no final newline */
    ck_assert_uint_eq(s->n, 10);
    ck_assert(get(s, "freshcache_requests_total") == 42);
    ck_assert(get(s, "freshcache_responses_total{cache=\"hit\"}") == 40);
    ck_assert(get(s, "freshcache_responses_total{cache=\"miss\"}") == 2);
    ck_assert(get(s, "freshcache_origin_latency_seconds_bucket{le=\"0.005\"}") == 15);
    ck_assert(isinf(get(s, "freshcache_origin_latency_seconds_bucket{le=\"+Inf\"}")));
    ck_assert(get(s, "with_timestamp") == 7);
    ck_assert(get(s, "neg_timestamp") == 8);
    ck_assert(isnan(get(s, "not_a_number")));
    ck_assert(get(s, "odd{l=\"a } b \\\" c\"}") == 3);
    double v;
    ck_assert(!top_sample_get(s, "freshcache_responses_total", &v));
    ck_assert(!top_sample_get(s, "nothing", &v));
    free(s);
}
END_TEST

/* Anything that is not a sample fails the parse and names the line. */
START_TEST(parse_errors)
{
    static const struct {
        const char *text;
        const char *line;
    } bad[] = {
        { "a 1\nb\n", "line 2" },                       /* no value */
        { "a 1\n{x=\"1\"} 2\n", "line 2" },             /* no name */
        { "9a 1\n", "line 1" },                         /* name starts with a digit */
        { "a{x=\"1\" 2\n", "line 1" },                  /* labels not closed */
        { "a{x=\"}\n", "line 1" },                      /* quote not closed */
        { "a one\n", "line 1" },                        /* not a number */
        { "a 1 2 3\n", "line 1" },                      /* too many fields */
        { "a 1 12x\n", "line 1" },                      /* bad timestamp */
        { "a 1 -\n", "line 1" },                        /* bad timestamp */
        { "a\t\n", "line 1" },                          /* blank value */
        { "a 1\n\n# c\nb 1234567890123456789012345678901234567890123456789012345678901234567\n",
          "line 4" },                                   /* value longer than any number */
        { "HTTP/1.1 200 OK\n", "line 1" },
        { "<html>\n", "line 1" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct top_sample *s = calloc(1, sizeof *s);
        char err[256] = "";
        ck_assert_msg(top_sample_parse(s, bad[i].text, strlen(bad[i].text), err, sizeof err) == -1,
                      "accepted %s", bad[i].text);
        ck_assert_msg(strstr(err, bad[i].line) != NULL, "%s: %s", bad[i].text, err);
        ck_assert_msg(strstr(err, "not a Prometheus sample") != NULL, "%s", err);
        free(s);
    }
}
END_TEST

/* Over-long names and series past the table are left out, not errors. */
START_TEST(parse_limits)
{
    char *text = malloc(TOP_MAX_SERIES * 32 + 400);
    ck_assert_ptr_nonnull(text);
    size_t o = 0;
    o += (size_t)sprintf(text + o, "x{l=\"");
    for (int i = 0; i < TOP_SERIES_NAME_MAX; i++)
        text[o++] = 'v';
    o += (size_t)sprintf(text + o, "\"} 1\n");
    for (int i = 0; i < TOP_MAX_SERIES + 10; i++)
        o += (size_t)sprintf(text + o, "s%d %d\n", i, i);
    text[o] = '\0';
    struct top_sample *s = parse_ok(text);
    ck_assert_uint_eq(s->n, TOP_MAX_SERIES);
    ck_assert(get(s, "s0") == 0);
    ck_assert(get(s, "s255") == 255);
    double v;
    ck_assert(!top_sample_get(s, "s256", &v));
    free(s);
    free(text);
}
END_TEST

START_TEST(label_values)
{
    char v[16];
    ck_assert(top_label_value("m{a=\"1\",le=\"0.5\"}", "le", v, sizeof v));
    ck_assert_str_eq(v, "0.5");
    ck_assert(top_label_value("m{a=\"1\", le=\"0.5\"}", "a", v, sizeof v));
    ck_assert_str_eq(v, "1");
    ck_assert(top_label_value("m{a=\"x\\\"y\\\\z\\n\"}", "a", v, sizeof v));
    ck_assert_str_eq(v, "x\"y\\z\n");
    ck_assert(top_label_value("m{a=\"0123456789abcdefghij\"}", "a", v, sizeof v));
    ck_assert_str_eq(v, "0123456789abcde");    /* cut to the buffer */
    ck_assert(!top_label_value("m{a=\"1\"}", "le", v, sizeof v));
    ck_assert(!top_label_value("m{aa=\"1\"}", "a", v, sizeof v));
    ck_assert(!top_label_value("m", "a", v, sizeof v));
    ck_assert(!top_label_value("m{a=1}", "a", v, sizeof v));
    ck_assert(!top_label_value("m{a=\"1}", "a", v, sizeof v));
}
END_TEST

/* ---------------------------------------------------------- quantiles */

#define H "h_bucket"

START_TEST(quantile_interpolates)
{
    /* 100 observations: 50 up to 10 ms, 40 more up to 100 ms, 10 over 1 s */
    struct top_sample *s = parse_ok(H "{le=\"0.01\"} 50\n" H "{le=\"0.1\"} 90\n"
                                    H "{le=\"1\"} 90\n" H "{le=\"+Inf\"} 100\n");
    double v;
    bool above;
    ck_assert(top_histogram_quantile(NULL, s, "h", 0.5, &v, &above));
    ck_assert(!above);
    ck_assert_double_eq_tol(v, 0.01, 1e-9);
    ck_assert(top_histogram_quantile(NULL, s, "h", 0.25, &v, &above));
    ck_assert_double_eq_tol(v, 0.005, 1e-9);       /* halfway into the first bucket */
    ck_assert(top_histogram_quantile(NULL, s, "h", 0.7, &v, &above));
    ck_assert_double_eq_tol(v, 0.01 + 0.09 * 20 / 40, 1e-9);
    ck_assert(top_histogram_quantile(NULL, s, "h", 0.99, &v, &above));
    ck_assert(above);                              /* in +Inf: the largest bound */
    ck_assert_double_eq_tol(v, 1, 1e-9);
    /* another family, or none at all */
    ck_assert(!top_histogram_quantile(NULL, s, "g", 0.5, &v, &above));
    free(s);
}
END_TEST

/* Between two samples only the new observations count, whatever the bucket
 * order on the wire. */
START_TEST(quantile_of_the_span)
{
    struct top_sample *a = parse_ok(H "{le=\"+Inf\"} 1000\n" H "{le=\"0.01\"} 1000\n"
                                    H "{le=\"0.1\"} 1000\n");
    struct top_sample *b = parse_ok(H "{le=\"0.1\"} 1010\n" H "{le=\"+Inf\"} 1010\n"
                                    H "{le=\"0.01\"} 1000\n");
    double v;
    bool above;
    ck_assert(top_histogram_quantile(a, b, "h", 0.5, &v, &above));
    ck_assert(!above);
    ck_assert_double_eq_tol(v, 0.055, 1e-9);       /* all ten in (0.01, 0.1] */
    /* nothing observed in the span */
    ck_assert(!top_histogram_quantile(a, a, "h", 0.5, &v, &above));
    free(a);
    free(b);
}
END_TEST

START_TEST(quantile_needs_inf_bucket)
{
    struct top_sample *s = parse_ok(H "{le=\"0.1\"} 5\n" H "{le=\"1\"} 9\n");
    double v;
    bool above;
    ck_assert(!top_histogram_quantile(NULL, s, "h", 0.5, &v, &above));
    free(s);
    /* everything in +Inf with no finite bucket: 0, above */
    s = parse_ok(H "{le=\"+Inf\"} 3\n");
    ck_assert(top_histogram_quantile(NULL, s, "h", 0.5, &v, &above));
    ck_assert(above);
    ck_assert_double_eq(v, 0);
    free(s);
    /* a bucket without a readable le is skipped */
    s = parse_ok(H "{le=\"fast\"} 3\n" H "{x=\"1\"} 3\n" H "{le=\"1\"} 2\n" H "{le=\"+Inf\"} 2\n");
    ck_assert(top_histogram_quantile(NULL, s, "h", 0.5, &v, &above));
    ck_assert(!above);
    ck_assert_double_eq_tol(v, 0.5, 1e-9);
    free(s);
}
END_TEST

/* ---------------------------------------------------------------- frame */

/* A daemon's /metrics with the given counters. */
static struct top_sample *metrics(double taken, double uptime, double requests, double hits,
                                  double misses, double fast, double slow, double changed)
{
    char text[4096];
    snprintf(text, sizeof text,
             "freshcache_requests_total %g\n"
             "freshcache_cache_hits_total %g\n"
             "freshcache_cache_misses_total %g\n"
             "freshcache_cache_stale_total 0\n"
             "freshcache_responses_total{cache=\"hit\"} %g\n"
             "freshcache_responses_total{cache=\"miss\"} %g\n"
             "freshcache_responses_total{cache=\"revalidated\"} 0\n"
             "freshcache_origin_requests_total %g\n"
             "freshcache_origin_errors_total 0\n"
             "freshcache_bytes_sent_total %g\n"
             "freshcache_cache_evictions_total 0\n"
             "freshcache_objects 12\n"
             "freshcache_bytes 16777216\n"
             "freshcache_max_bytes 67108864\n"
             "freshcache_generation 7\n"
             "freshcache_generation_changed_timestamp_seconds %.3f\n"
             "freshcache_uptime_seconds %g\n"
             "freshcache_connections 3\n"
             "freshcache_connections_accepted_total %g\n"
             "freshcache_origin_latency_seconds_bucket{le=\"0.005\"} %g\n"
             "freshcache_origin_latency_seconds_bucket{le=\"0.05\"} %g\n"
             "freshcache_origin_latency_seconds_bucket{le=\"+Inf\"} %g\n"
             "freshcache_build_info{version=\"9.8.7\"} 1\n",
             requests, hits, misses, hits, misses, misses, requests * 1024, changed, uptime,
             requests, fast, fast + slow, fast + slow);
    struct top_sample *s = parse_ok(text);
    s->taken = taken;
    return s;
}

static const char *find_line(const struct top_frame *f, const char *start)
{
    for (size_t i = 0; i < f->n; i++)
        if (strncmp(f->line[i], start, strlen(start)) == 0)
            return f->line[i];
    return NULL;
}

static void assert_line(const struct top_frame *f, const char *start, const char *contains)
{
    const char *l = find_line(f, start);
    ck_assert_msg(l != NULL, "no line starting %s", start);
    ck_assert_msg(strstr(l, contains) != NULL, "line \"%s\" lacks \"%s\"", l, contains);
}

static void utc(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
}

#define T0 1700000000       /* 2023-11-14 22:13:20 UTC */

START_TEST(frame_rates_over_the_span)
{
    utc();
    struct top_sample *a = metrics(100.0, 3600, 1000, 800, 200, 150, 50, T0 - 90);
    struct top_sample *b = metrics(102.0, 3602, 1100, 890, 210, 155, 55, T0 - 90);
    struct top_frame f;
    top_frame_render(a, b, "/run/fc.sock", T0, &f);
    ck_assert_uint_le(f.n, TOP_FRAME_LINES);
    assert_line(&f, "freshcache 9.8.7 on /run/fc.sock", "up 1h 0m 2s, 22:13:20");
    assert_line(&f, "generation 7", "last bump 2023-11-14 22:11:50 UTC (1m 30s ago)");
    assert_line(&f, "rates:", "over the last 2.0 s");
    assert_line(&f, "requests ", "50.0/s");
    assert_line(&f, "requests ", "hit ratio 90.0 %");            /* 90 of 100 */
    assert_line(&f, "  hit ", "45.0/s");
    assert_line(&f, "  miss ", "5.0/s");
    assert_line(&f, "  revalidated ", "0.0/s");
    assert_line(&f, "  stale served ", "0.0/s");
    assert_line(&f, "origin requests ", "5.0/s");
    /* 5 fast (<= 5 ms), 5 slow (5..50 ms): p50 at 5 ms, p90 at 41 ms */
    assert_line(&f, "  latency ", "p50 5.0 ms");
    assert_line(&f, "  latency ", "p90 41.0 ms");
    assert_line(&f, "bytes out ", "50.0 KiB/s");
    assert_line(&f, "objects ", "12");
    assert_line(&f, "memory ", "16.0 MiB of 64.0 MiB (25.0 %)  [#####...............]");
    assert_line(&f, "connections ", "3");
    assert_line(&f, "connections ", "accepted 50.0/s");
    free(a);
    free(b);
}
END_TEST

/* The first frame has no previous sample: averages since the start. */
START_TEST(frame_first_sample)
{
    utc();
    struct top_sample *b = metrics(5.0, 100, 1000, 800, 200, 200, 0, 0);
    struct top_frame f;
    top_frame_render(NULL, b, "s", T0, &f);
    assert_line(&f, "rates:", "averaged since the daemon started");
    assert_line(&f, "requests ", "10.0/s");
    assert_line(&f, "requests ", "hit ratio 80.0 %");
    assert_line(&f, "generation 7", "never bumped");
    assert_line(&f, "  latency ", "p50 2.5 ms");
    free(b);
}
END_TEST

/* A daemon restarted between two samples: its counters start again, so
 * differences would be negative; the frame shows averages since the
 * restart and says so. */
START_TEST(frame_after_restart)
{
    utc();
    struct top_sample *a = metrics(100.0, 5000, 90000, 80000, 10000, 10000, 0, T0 - 10);
    struct top_sample *b = metrics(101.0, 4, 40, 30, 10, 10, 0, T0 - 10);
    struct top_frame f;
    top_frame_render(a, b, "s", T0, &f);
    assert_line(&f, "rates:", "averaged since the daemon started");
    assert_line(&f, "requests ", "10.0/s");
    assert_line(&f, "requests ", "hit ratio 75.0 %");
    free(a);
    free(b);
}
END_TEST

/* No traffic in the span: rates are 0, ratio and latency "-". */
START_TEST(frame_idle)
{
    utc();
    struct top_sample *a = metrics(100.0, 50, 10, 5, 5, 5, 0, T0);
    struct top_sample *b = metrics(101.0, 51, 10, 5, 5, 5, 0, T0);
    struct top_frame f;
    top_frame_render(a, b, "s", T0, &f);
    assert_line(&f, "requests ", "0.0/s   hit ratio -");
    assert_line(&f, "  latency ", "p50 -   p90 -   p99 -");
    assert_line(&f, "generation 7", "(0s ago)");
    free(a);
    free(b);
}
END_TEST

/* An older daemon without some metrics: what is missing shows "-" or is
 * left out, never a made-up number. */
START_TEST(frame_missing_metrics)
{
    utc();
    struct top_sample *a = parse_ok("freshcache_requests_total 10\nfreshcache_generation 3\n");
    struct top_sample *b = parse_ok("freshcache_requests_total 30\nfreshcache_generation 3\n");
    a->taken = 1;
    b->taken = 2;
    struct top_frame f;
    top_frame_render(a, b, "s", T0, &f);
    assert_line(&f, "freshcache (version unknown) on s", "up ?");
    ck_assert_str_eq(find_line(&f, "generation"), "generation 3");
    assert_line(&f, "requests ", "20.0/s   hit ratio -");
    assert_line(&f, "origin requests ", "-/s");
    assert_line(&f, "bytes out ", "-/s");
    assert_line(&f, "objects ", "-");
    ck_assert_ptr_null(find_line(&f, "memory"));
    /* a first sample without uptime: no rate at all */
    top_frame_render(NULL, b, "s", T0, &f);
    assert_line(&f, "rates:", "none yet");
    assert_line(&f, "requests ", "-/s");
    /* two samples taken at the same instant: none either */
    top_frame_render(b, b, "s", T0, &f);
    assert_line(&f, "rates:", "none yet");
    free(a);
    free(b);
}
END_TEST

/* Large rates drop the decimal so the column stays narrow. */
START_TEST(frame_large_rates)
{
    utc();
    struct top_sample *a = metrics(0.0, 10, 0, 0, 0, 0, 0, 0);
    struct top_sample *b = metrics(1.0, 11, 123456, 123456, 0, 0, 0, 0);
    struct top_frame f;
    top_frame_render(a, b, "s", T0, &f);
    assert_line(&f, "requests ", " 123456/s");
    assert_line(&f, "requests ", "hit ratio 100.0 %");
    free(a);
    free(b);
}
END_TEST

/* Values no integer holds (a foreign or broken exporter): the frame shows
 * them without converting them (the fuzzer found the generation timestamp
 * +Inf cast to time_t, undefined behaviour). */
START_TEST(frame_values_out_of_range)
{
    utc();
    struct top_sample *b = parse_ok("freshcache_uptime_seconds +Inf\n"
                                    "freshcache_generation 3\n"
                                    "freshcache_generation_changed_timestamp_seconds +Inf\n"
                                    "freshcache_bytes 1e300\n"
                                    "freshcache_max_bytes NaN\n");
    struct top_frame f;
    top_frame_render(NULL, b, "s", T0, &f);
    assert_line(&f, "freshcache (version unknown) on s", "up ");
    assert_line(&f, "generation 3", "last bump at inf (not a time before now)");
    free(b);

    b = parse_ok("freshcache_uptime_seconds -1\n"
                 "freshcache_generation 3\n"
                 "freshcache_generation_changed_timestamp_seconds NaN\n"
                 "freshcache_bytes +Inf\n"
                 "freshcache_max_bytes 1e300\n");
    top_frame_render(NULL, b, "s", T0, &f);
    assert_line(&f, "freshcache (version unknown) on s", "up ?");
    assert_line(&f, "generation 3", "last bump at nan (not a time before now)");
    assert_line(&f, "memory ", "[####################]");
    free(b);

    b = parse_ok("freshcache_bytes 5\nfreshcache_max_bytes +Inf\n");
    top_frame_render(NULL, b, "s", T0, &f);
    assert_line(&f, "memory ", "[....................]");
    free(b);
}
END_TEST

static Suite *top_frame_suite(void)
{
    Suite *s = suite_create("top_frame");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, parse_exposition);
    tcase_add_test(tc, parse_errors);
    tcase_add_test(tc, parse_limits);
    tcase_add_test(tc, label_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("quantile");
    tcase_add_test(tc, quantile_interpolates);
    tcase_add_test(tc, quantile_of_the_span);
    tcase_add_test(tc, quantile_needs_inf_bucket);
    suite_add_tcase(s, tc);

    tc = tcase_create("frame");
    tcase_add_test(tc, frame_rates_over_the_span);
    tcase_add_test(tc, frame_first_sample);
    tcase_add_test(tc, frame_after_restart);
    tcase_add_test(tc, frame_idle);
    tcase_add_test(tc, frame_missing_metrics);
    tcase_add_test(tc, frame_large_rates);
    tcase_add_test(tc, frame_values_out_of_range);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(top_frame_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
