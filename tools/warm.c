/*
 * warm.c — `proxyctl warm` and `proxyctl deploy` (docs/proxyctl.1.scd).
 *
 * warm sends one POST /warm and follows the answer the daemon streams, a
 * JSON object a line per URL and a summary last: a progress bar when
 * stdout is a terminal, one plain line per URL otherwise (logs, CI), the
 * daemon's lines as they come with --json.  deploy is the pipeline's one
 * command: bump, warm, verify, one summary, one exit status.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "answer.h"
#include "proxyctl.h"

#define WARM_MAX_JOBS 64
#define BAR_WIDTH 30

struct warm_opts {
    json_t *urls;               /* given, then read from --from */
    const char *from;
    const char *sitemap;
    const char *host;
    long jobs;                  /* 0: the daemon's default */
};

/* What the stream said, for the bar and the summary. */
struct warm_progress {
    const struct opts *o;
    bool tty;
    size_t expected;            /* URLs known so far (given + sitemaps' lists) */
    size_t done, stored, fresh, not_stored, failed;
    bool have_summary;
    uint64_t elapsed_ms;
    bool bar_shown;
};

/* ---- arguments ----------------------------------------------------------- */

/* --from FILE ("-": stdin): one URL a line; blank lines and # comments are
 * skipped.  false after saying why. */
static bool read_url_file(const char *path, json_t *urls)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        errmsg("cannot read %s: %s", path, strerror(errno));
        return false;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t len = strlen(s);
        while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
                       s[len - 1] == '\t'))
            s[--len] = '\0';
        if (len == 0 || s[0] == '#')
            continue;
        json_array_append_new(urls, json_string(s));
    }
    bool ok = !ferror(f);
    if (!ok)
        errmsg("reading %s: %s", path, strerror(errno));
    free(line);
    if (f != stdin)
        fclose(f);
    return ok;
}

static int parse_jobs(const char *v, long *out)
{
    char *end;
    errno = 0;
    long j = strtol(v, &end, 10);
    if (errno || end == v || *end || j < 1 || j > WARM_MAX_JOBS)
        return usage_error("bad -j '%s' (concurrent fetches, 1 to %d)", v, WARM_MAX_JOBS);
    *out = j;
    return EXIT_OK;
}

/* One of warm's own options at a->v[*i]: 1 taken, 0 not one, -1 usage
 * error (printed). */
static int warm_option(struct args *a, int *i, struct warm_opts *w)
{
    const char *val;
    int t;
    if ((t = take_value(a, i, "--from", NULL, &val)) != 0) {
        if (t > 0)
            w->from = val;
        return t;
    }
    if ((t = take_value(a, i, "--sitemap", NULL, &val)) != 0) {
        if (t > 0)
            w->sitemap = val;
        return t;
    }
    if ((t = take_value(a, i, "--host", NULL, &val)) != 0) {
        if (t > 0)
            w->host = val;
        return t;
    }
    if ((t = take_value(a, i, "--jobs", "-j", &val)) != 0) {
        if (t > 0 && parse_jobs(val, &w->jobs) != EXIT_OK)
            return -1;
        return t;
    }
    return 0;
}

/* The POST /warm body; NULL after a message (reading --from failed). */
static json_t *warm_body(struct warm_opts *w)
{
    if (w->from && !read_url_file(w->from, w->urls))
        return NULL;
    json_t *body = json_object();
    if (json_array_size(w->urls) > 0)
        json_object_set(body, "urls", w->urls);
    if (w->sitemap)
        json_object_set_new(body, "sitemap", json_string(w->sitemap));
    if (w->host)
        json_object_set_new(body, "host", json_string(w->host));
    if (w->jobs)
        json_object_set_new(body, "concurrency", json_integer(w->jobs));
    return body;
}

/* ---- the stream ---------------------------------------------------------- */

static void bar_clear(struct warm_progress *p)
{
    if (p->bar_shown) {
        fputs("\r\033[K", stdout);
        p->bar_shown = false;
    }
}

static void bar_draw(struct warm_progress *p)
{
    size_t total = p->expected > p->done ? p->expected : p->done;
    size_t filled = total ? p->done * BAR_WIDTH / total : 0;
    char bar[BAR_WIDTH + 1];
    for (size_t i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    printf("\r\033[K[%s] %zu/%zu  stored %zu  fresh %zu  failed %zu", bar, p->done, total,
           p->stored, p->fresh, p->failed);
    fflush(stdout);
    p->bar_shown = true;
}

static const char *str_member(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void on_line(void *arg, const char *line, size_t len)
{
    struct warm_progress *p = arg;
    if (p->o->json) {
        printf("%.*s\n", (int)len, line);
        fflush(stdout);
    }
    json_t *o = json_loadb(line, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return;
    }
    const char *result = str_member(o, "result");
    const char *err = str_member(o, "error");
    const char *cs = str_member(o, "cache_status");
    const char *sitemap = str_member(o, "sitemap");
    const char *url = str_member(o, "url");
    json_int_t status = json_integer_value(json_object_get(o, "status"));
    bool failed = result && strcmp(result, "failed") == 0;
    char what[64] = "";
    if (json_is_true(json_object_get(o, "summary"))) {
        p->have_summary = true;
        p->elapsed_ms = (uint64_t)json_integer_value(json_object_get(o, "elapsed_ms"));
        p->stored = (size_t)json_integer_value(json_object_get(o, "stored"));
        p->fresh = (size_t)json_integer_value(json_object_get(o, "fresh"));
        p->not_stored = (size_t)json_integer_value(json_object_get(o, "not_stored"));
        p->failed = (size_t)json_integer_value(json_object_get(o, "failed"));
        p->done = (size_t)json_integer_value(json_object_get(o, "urls"));
    } else if (sitemap) {
        json_int_t listed = json_integer_value(json_object_get(o, "listed"));
        if (failed)
            p->failed++;
        else
            p->expected += (size_t)listed;
        snprintf(what, sizeof what, "%" JSON_INTEGER_FORMAT " listed", listed);
        if (!p->o->json && (!p->tty || failed)) {
            bar_clear(p);
            printf("%-10s %s  %s\n", failed ? "failed" : "sitemap", sitemap, failed ? err : what);
        }
    } else if (url && result) {
        p->done++;
        if (strcmp(result, "stored") == 0)
            p->stored++;
        else if (strcmp(result, "fresh") == 0)
            p->fresh++;
        else if (strcmp(result, "not_stored") == 0)
            p->not_stored++;
        else
            p->failed++;
        if (!p->o->json && (!p->tty || failed || strcmp(result, "not_stored") == 0)) {
            bar_clear(p);
            if (failed)
                printf("%-10s %s  %s\n", "failed", url, err ? err : "?");
            else if (status)
                printf("%-10s %s  %" JSON_INTEGER_FORMAT " %s\n", result, url, status,
                       cs ? cs : "");
            else
                printf("%-10s %s\n", result, url);
        }
    }
    if (p->tty && !p->o->json && !p->have_summary)
        bar_draw(p);
    json_decref(o);
}

/* One warm run; *out gets the counts.  The exit status. */
static int run_warm(const struct opts *o, json_t *body, struct warm_progress *p)
{
    memset(p, 0, sizeof *p);
    p->o = o;
    p->tty = isatty(STDOUT_FILENO);
    p->expected = json_array_size(json_object_get(body, "urls"));
    struct response r;
    int rc = admin_request_lines(o, "POST", "/warm", body, &r, on_line, p);
    if (rc != EXIT_OK)
        return rc;
    bar_clear(p);
    if (!r.streaming) {
        if (o->json && r.body_len)
            printf("%s\n", r.body);
        report_failure(&r);
        response_free(&r);
        return EXIT_FAIL;
    }
    response_free(&r);
    if (!p->have_summary) {
        errmsg("the warm's answer ended before its summary");
        return EXIT_FAIL;
    }
    if (!o->json)
        printf("warmed %zu url%s: %zu stored, %zu already fresh, %zu not stored, %zu failed "
               "(%.1f s)\n", p->done, p->done == 1 ? "" : "s", p->stored, p->fresh, p->not_stored,
               p->failed, (double)p->elapsed_ms / 1000.0);
    return p->failed ? EXIT_FAIL : EXIT_OK;
}

int cmd_warm(const struct opts *o, struct args *a)
{
    struct warm_opts w = { .urls = json_array() };
    bool end_opts = false;
    int rc = EXIT_OK;
    for (int i = 0; i < a->n && rc == EXIT_OK; i++) {
        const char *arg = a->v[i];
        int t;
        if (!end_opts && strcmp(arg, "--") == 0) {
            end_opts = true;
        } else if (!end_opts && (t = warm_option(a, &i, &w)) != 0) {
            if (t < 0)
                rc = EXIT_USAGE;
        } else if (!end_opts && arg[0] == '-' && arg[1] != '\0') {
            rc = usage_error("warm: unknown option '%s'", arg);
        } else {
            json_array_append_new(w.urls, json_string(arg));
        }
    }
    if (rc == EXIT_OK && json_array_size(w.urls) == 0 && !w.from && !w.sitemap)
        rc = usage_error("warm: give URLs, --from FILE or --sitemap PATH");
    if (rc != EXIT_OK) {
        json_decref(w.urls);
        return rc;
    }
    json_t *body = warm_body(&w);
    json_decref(w.urls);
    if (body == NULL)
        return EXIT_USAGE;
    if (json_object_size(body) == 0 || (!json_object_get(body, "urls") && !w.sitemap)) {
        json_decref(body);
        errmsg("warm: %s lists no URLs", w.from);
        return EXIT_USAGE;
    }
    struct warm_progress p;
    rc = run_warm(o, body, &p);
    json_decref(body);
    return rc;
}

/* ---- deploy -------------------------------------------------------------- */

int cmd_deploy(const struct opts *o, struct args *a)
{
    struct warm_opts w = { .urls = json_array() };
    const char *policy = NULL;
    char **verify = calloc((size_t)a->n + 1, sizeof *verify);
    if (verify == NULL) {
        json_decref(w.urls);
        errmsg("out of memory");
        return EXIT_FAIL;
    }
    int n_verify = 0, rc = EXIT_OK;
    bool in_verify = false;
    for (int i = 0; i < a->n && rc == EXIT_OK; i++) {
        const char *arg = a->v[i];
        const char *val;
        int t;
        if ((t = take_value(a, &i, "--policy", NULL, &val)) != 0) {
            in_verify = false;
            if (t < 0)
                rc = EXIT_USAGE;
            policy = val;
        } else if ((t = warm_option(a, &i, &w)) != 0) {
            in_verify = false;
            if (t < 0)
                rc = EXIT_USAGE;
        } else if (strcmp(arg, "--verify") == 0) {
            in_verify = true;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            rc = usage_error("deploy: unknown option '%s'", arg);
        } else if (in_verify) {
            verify[n_verify++] = a->v[i];
        } else {
            rc = usage_error("deploy: '%s' is not an option (paths to check follow --verify)",
                             arg);
        }
    }
    if (rc == EXIT_OK && in_verify && n_verify == 0)
        rc = usage_error("deploy: --verify needs at least one PATH");
    json_t *body = NULL;
    if (rc == EXIT_OK && (w.from || w.sitemap)) {
        body = warm_body(&w);
        if (body == NULL)
            rc = EXIT_USAGE;
    }
    json_decref(w.urls);
    if (rc != EXIT_OK) {
        free(verify);
        return rc;
    }

    /* 1. the bump: nothing else makes sense if it failed */
    int bump_rc = purge_generation(o, policy);
    if (bump_rc != EXIT_OK) {
        errmsg("deploy: the generation bump failed; nothing warmed or verified");
        json_decref(body);
        free(verify);
        return bump_rc;
    }
    /* 2. warm, 3. verify: both run, whatever the other found */
    int warm_rc = EXIT_OK, verify_rc = EXIT_OK;
    struct warm_progress p = { 0 };
    if (body)
        warm_rc = run_warm(o, body, &p);
    json_decref(body);
    if (n_verify > 0) {
        struct args va = { .n = n_verify, .v = verify };
        verify_rc = cmd_verify(o, &va);
    }
    free(verify);
    if (warm_rc == EXIT_CONNECT || verify_rc == EXIT_CONNECT)
        rc = EXIT_CONNECT;
    else if (warm_rc != EXIT_OK || verify_rc != EXIT_OK)
        rc = EXIT_FAIL;
    if (!o->json) {
        char warm_s[128] = "not warmed", verify_s[64] = "not verified";
        if (p.have_summary)
            snprintf(warm_s, sizeof warm_s, "%zu url%s warmed, %zu failed", p.done,
                     p.done == 1 ? "" : "s", p.failed);
        else if (warm_rc != EXIT_OK)
            snprintf(warm_s, sizeof warm_s, "warm failed");
        if (n_verify > 0)
            snprintf(verify_s, sizeof verify_s, "%d path%s verified%s", n_verify,
                     n_verify == 1 ? "" : "s", verify_rc == EXIT_OK ? "" : ": NOT all fresh");
        printf("deploy %s: generation bumped, %s, %s\n", rc == EXIT_OK ? "ok" : "FAILED", warm_s,
               verify_s);
    }
    return rc;
}
