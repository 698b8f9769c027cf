/*
 * proxyctl — the admin CLI: talks HTTP/1.1 with JSON bodies to freshcached
 * over its admin Unix socket (see docs/proxyctl.1.scd and the spec's
 * "Admin API" table).
 *
 *     proxyctl [-s SOCKET] [--json] COMMAND [ARGS...]
 *
 * One request per connection ("Connection: close"), on a blocking-style
 * loop with poll() so every wait is bounded by the timeout.  The answer is
 * read by answer.c: the project's llhttp glue (http_parse.h), its body
 * with jansson.
 *
 * Exit status: 0 ok; 1 the daemon reported a failure (non-2xx, "ok": false,
 * verify found stale content, a cluster node did not acknowledge a purge)
 * or the answer never came; 2 usage error; 3 cannot connect to the socket,
 * or (503) the daemon cannot reach the cluster's Redis: nothing was purged.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "freshcache/base/assert.h"
#include "answer.h"
#include "human.h"
#include "proxyctl.h"

#if __has_include("build_config.h")
#include "build_config.h"
#endif
#ifndef FRESHCACHE_VERSION
#define FRESHCACHE_VERSION "unknown"
#endif

#define DEFAULT_SOCKET "/run/freshcache/admin.sock"
#define DEFAULT_TIMEOUT_S 30.0

static const char usage_text[] =
    "Usage: proxyctl [-s SOCKET] [--json] COMMAND [ARGS...]\n"
    "\n"
    "Control a running freshcached through its admin socket.\n"
    "\n"
    "Commands:\n"
    "  purge --generation [--policy NAME]\n"
    "                      start a new generation (of one policy): nothing stored\n"
    "                      before is served fresh any more\n"
    "  purge [--soft] PATH...\n"
    "                      purge these URLs (/path?query or http://host/path)\n"
    "  purge [--soft] --prefix PREFIX\n"
    "                      purge every URL whose path starts with PREFIX\n"
    "  purge [--soft] --tag TAG\n"
    "                      purge every response tagged TAG (Surrogate-Key, Cache-Tag)\n"
    "  generation          print the generations: global and each policy's\n"
    "  stats               print the counters\n"
    "  reload              reload the configuration (like SIGHUP)\n"
    "  verify PATH...      compare the cached bodies with the origin's;\n"
    "                      exit 1 if any is stale\n"
    "  nodes               the cluster's nodes, their generations, when last heard from\n"
    "  warm [-j N] [--host HOST] URL... | --from FILE | --sitemap PATH\n"
    "                      fetch URLs into the cache (FILE: one a line, - for stdin;\n"
    "                      PATH: a sitemap on the origin); exit 1 if any failed\n"
    "  deploy [--policy NAME] [--from FILE | --sitemap PATH] [--verify PATH...]\n"
    "                      bump the generation, warm, verify: one summary, one exit\n"
    "                      status (1 if the bump, a warm or a verify failed)\n"
    "  top [--once]        a live view, refreshed every second (q quits);\n"
    "                      --once prints one frame without the screen\n"
    "\n"
    "Options:\n"
    "  -s, --socket SOCKET  admin socket (default: $FRESHCACHE_ADMIN, else\n"
    "                       " DEFAULT_SOCKET ")\n"
    "      --json           print the daemon's JSON answer instead of text\n"
    "  -t, --timeout SECS   wait at most SECS seconds for an answer (default 30)\n"
    "      --soft           (purge) mark stale instead of removing\n"
    "  -h, --help           show this help\n"
    "      --version        show the version\n"
    "\n"
    "Exit status: 0 ok, 1 the daemon reported a failure (or verify found stale\n"
    "content, or a cluster node did not acknowledge a purge in time), 2 usage\n"
    "error, 3 cannot connect to the daemon, or it cannot reach the cluster's\n"
    "Redis (nothing was purged).\n";

int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("proxyctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n\n", stderr);
    va_end(ap);
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

void errmsg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("proxyctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* One request, one answer                                              */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for `events` or the deadline passes.
 * 1 ready, 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = { .fd = fd, .events = events };
        int n = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n > 0)
            return 1;
        if (n == 0)
            continue;           /* re-check the deadline */
        if (errno != EINTR)
            return -1;
    }
}

static int connect_admin(const char *path, double timeout_s)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* A daemon too busy to accept fills the listen backlog and a blocking
     * connect() then waits: bound that wait too (AF_UNIX honours
     * SO_SNDTIMEO in connect). */
    struct timeval tv = { .tv_sec = (time_t)timeout_s,
                          .tv_usec = (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6) };
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc;
    do
        rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    return fd;
}

static void connect_error(const char *path, int e)
{
    const char *hint = "is freshcached running?";
    if (e == EACCES || e == EPERM)
        hint = "does this user have access to the socket (admin.mode)?";
    else if (e == EAGAIN || e == EWOULDBLOCK)
        hint = "freshcached is not accepting connections (overloaded or stuck?)";
    else if (e == ENAMETOOLONG)
        hint = "use a shorter socket path";
    fprintf(stderr, "proxyctl: cannot connect to %s: %s \xe2\x80\x94 %s\n", path, strerror(e),
            hint);
}

/* Send `data` fully.  0, or -1 with errno (ETIMEDOUT when the deadline passed). */
static int send_all(int fd, const char *data, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(fd, POLLOUT, deadline);
            if (w == 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            if (w < 0)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/*
 * Send METHOD PATH with an optional JSON body and read the whole answer
 * into *r.  Returns EXIT_OK when an answer (any status) was read, else
 * prints why and returns EXIT_CONNECT or EXIT_FAIL.
 */
static int admin_call(const struct opts *o, const char *method, const char *path,
                      const json_t *body, struct response *r, line_fn line, void *line_arg);

int admin_request(const struct opts *o, const char *method, const char *path,
                  const json_t *body, struct response *r)
{
    return admin_call(o, method, path, body, r, NULL, NULL);
}

int admin_request_lines(const struct opts *o, const char *method, const char *path,
                        const json_t *body, struct response *r, line_fn line, void *arg)
{
    return admin_call(o, method, path, body, r, line, arg);
}

static int admin_call(const struct opts *o, const char *method, const char *path,
                      const json_t *body, struct response *r, line_fn line, void *line_arg)
{
    memset(r, 0, sizeof *r);
    char *payload = NULL;
    if (body) {
        payload = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!payload) {
            errmsg("out of memory");
            return EXIT_FAIL;
        }
    }

    int fd = connect_admin(o->socket, o->timeout_s);
    if (fd < 0) {
        connect_error(o->socket, errno);
        free(payload);
        return EXIT_CONNECT;
    }

    int64_t timeout_ms = (int64_t)(o->timeout_s * 1000.0);
    int64_t deadline = now_ms() + timeout_ms;

    struct evbuffer *req = evbuffer_new();
    if (!req) {
        errmsg("out of memory");
        close(fd);
        free(payload);
        return EXIT_FAIL;
    }
    evbuffer_add_printf(req, "%s %s HTTP/1.1\r\nHost: localhost\r\n"
                        "User-Agent: proxyctl/" FRESHCACHE_VERSION "\r\n"
                        "Accept: application/json\r\n", method, path);
    if (payload)
        evbuffer_add_printf(req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                            strlen(payload));
    else if (strcmp(method, "GET") != 0)
        evbuffer_add_printf(req, "Content-Length: 0\r\n");
    evbuffer_add_printf(req, "Connection: close\r\n\r\n");
    if (payload)
        evbuffer_add(req, payload, strlen(payload));
    free(payload);

    size_t req_len = evbuffer_get_length(req);
    const char *req_data = (const char *)evbuffer_pullup(req, -1);
    int send_rc = send_all(fd, req_data, req_len, deadline);
    int send_errno = errno;
    evbuffer_free(req);
    if (send_rc < 0 && send_errno == ETIMEDOUT) {
        errmsg("timed out after %g s sending the request to %s", o->timeout_s, o->socket);
        close(fd);
        return EXIT_FAIL;
    }
    /* On EPIPE/ECONNRESET the daemon may still have answered (an error, say):
     * read what it sent before giving up. */

    struct answer_reader ar;
    if (answer_init(&ar, r) != 0) {
        errmsg("out of memory");
        close(fd);
        return EXIT_FAIL;
    }
    if (line)
        answer_stream_lines(&ar, line, line_arg);
    int rc = EXIT_FAIL;
    char buf[16384];
    for (;;) {
        switch (answer_step(&ar)) {
        case ANSWER_DONE:
            rc = EXIT_OK;
            goto out;
        case ANSWER_TOO_LARGE:
            errmsg("the answer from %s is too large (over %u MiB)", o->socket,
                   ANSWER_MAX_BODY_BYTES / (1024 * 1024));
            goto out;
        case ANSWER_MALFORMED:
            errmsg("malformed answer from %s: %s", o->socket, answer_error(&ar));
            goto out;
        case ANSWER_TRUNCATED:
            goto closed;
        case ANSWER_MORE:
            break;
        }
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            answer_add(&ar, buf, (size_t)n);
            if (r->streaming)
                deadline = now_ms() + timeout_ms;   /* progress: wait as long again */
            continue;
        }
        if (n == 0) {
            answer_eof(&ar);
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(fd, POLLIN, deadline);
            if (w > 0)
                continue;
            if (w == 0) {
                errmsg("timed out after %g s waiting for an answer from %s", o->timeout_s,
                       o->socket);
                goto out;
            }
        }
        if (errno == ECONNRESET) {
            answer_eof(&ar);
            continue;
        }
        errmsg("reading from %s: %s", o->socket, strerror(errno));
        goto out;
    }

closed:
    if (send_rc < 0)
        errmsg("sending the request to %s: %s", o->socket, strerror(send_errno));
    else
        errmsg("%s closed the connection before the answer was complete", o->socket);
out:
    answer_free(&ar);
    close(fd);
    if (rc != EXIT_OK)
        response_free(r);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Output helpers                                                       */

/* JSON we compose ourselves (the answers to several purges), on one line
 * like the daemon's own answers. */
static void print_json(const json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(0) | JSON_ENCODE_ANY);
    fputc('\n', stdout);
}

/* --json: the daemon's answer byte for byte, so a script sees exactly
 * what the API sent (only a missing final newline is added). */
static void print_body(const struct response *r)
{
    if (r->body_len > 0) {
        fwrite(r->body, 1, r->body_len, stdout);
        if (r->body[r->body_len - 1] != '\n')
            fputc('\n', stdout);
    }
}

static void unexpected(const struct response *r, const char *what)
{
    char *s = r->json ? json_dumps(r->json, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    errmsg("unexpected answer from the daemon (%s): %s", what, s ? s : r->body ? r->body : "");
    free(s);
}

/* An integer member, accepting integral reals too.  false when absent. */
static bool get_u64(const json_t *obj, const char *key, uint64_t *out)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v) && json_real_value(v) >= 0) {
        *out = (uint64_t)json_real_value(v);
        return true;
    }
    return false;
}

/* 503: the daemon is in a cluster and cannot reach its Redis, so nothing
 * was done anywhere; like not reaching the daemon at all. */
static int failure_status(const struct response *r)
{
    return r->status == 503 ? EXIT_CONNECT : EXIT_FAIL;
}

/* A cluster purge's "nodes": {"live": N, "acked": N, "missing": [...]}. */
struct nodes_ack {
    bool present;
    uint64_t live, acked;
    char missing[512];              /* "edge-3, edge-4", or "" */
};

static void read_nodes_ack(const json_t *root, struct nodes_ack *out)
{
    memset(out, 0, sizeof *out);
    const json_t *n = json_is_object(root) ? json_object_get(root, "nodes") : NULL;
    if (!json_is_object(n) || !get_u64(n, "live", &out->live) || !get_u64(n, "acked", &out->acked))
        return;
    out->present = true;
    const json_t *m = json_object_get(n, "missing");
    size_t i, o = 0;
    const json_t *v;
    json_array_foreach(m, i, v) {
        if (json_is_string(v) && o < sizeof out->missing)
            o += (size_t)snprintf(out->missing + o, sizeof out->missing - o, "%s%s",
                                  o ? ", " : "", json_string_value(v));
    }
}

/* ", 3/3 nodes" for a purge's line; false when a live node did not
 * acknowledge in time (say so with report_missing, after the line). */
static bool nodes_ok(const struct nodes_ack *n, char *suffix, size_t len)
{
    suffix[0] = '\0';
    if (n->present)
        snprintf(suffix, len, ", %" PRIu64 "/%" PRIu64 " nodes", n->acked, n->live);
    return !n->present || n->missing[0] == '\0';
}

static void report_missing(const struct nodes_ack *n)
{
    if (n->present && n->missing[0])
        errmsg("not acknowledged within cluster.ack_timeout by: %s", n->missing);
}

/* ------------------------------------------------------------------ */
/* Argument helpers                                                     */

/* "--name VALUE" or "--name=VALUE" (and "-x VALUE", "-xVALUE" for a short
 * alias).  Returns 1 matched (value in *val, *i advanced), 0 not this
 * option, -1 missing value (usage error already printed). */
int take_value(const struct args *a, int *i, const char *lng, const char *shrt,
                      const char **val)
{
    const char *arg = a->v[*i];
    size_t ll = strlen(lng);
    if (strncmp(arg, lng, ll) == 0 && arg[ll] == '=') {
        *val = arg + ll + 1;
        return 1;
    }
    bool is_short = shrt && strncmp(arg, shrt, strlen(shrt)) == 0;
    if (strcmp(arg, lng) == 0 || (is_short && arg[strlen(shrt)] == '\0')) {
        if (*i + 1 >= a->n) {
            usage_error("option '%s' needs an argument", arg);
            return -1;
        }
        *val = a->v[++*i];
        return 1;
    }
    if (is_short) {
        *val = arg + strlen(shrt);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Commands                                                             */

/* A GET command without arguments: request, --json or failure handling,
 * then `show` prints the body for a person (false: it was not what the
 * daemon should answer). */
static int simple_get(const struct opts *o, struct args *a, const char *cmd, const char *path,
                      bool (*show)(struct response *r))
{
    if (a->n > 0)
        return usage_error("%s takes no arguments (got '%s')", cmd, a->v[0]);
    struct response r;
    int rc = admin_request(o, "GET", path, NULL, &r);
    if (rc != EXIT_OK)
        return rc;
    if (o->json)
        print_body(&r);
    if (report_failure(&r))
        rc = EXIT_FAIL;
    else if (!o->json && !show(&r))
        rc = EXIT_FAIL;
    response_free(&r);
    return rc;
}

/* "generation 8", then "policy html generation 3" for each policy, the
 * form purge --generation prints. */
static bool show_generation(struct response *r)
{
    uint64_t g;
    if (!get_u64(r->json, "generation", &g)) {
        unexpected(r, "no \"generation\"");
        return false;
    }
    printf("generation %" PRIu64 "\n", g);
    json_t *policies = json_object_get(r->json, "policies");
    const char *name;
    json_t *v;
    json_object_foreach(policies, name, v) {
        uint64_t pg;
        if (get_u64(policies, name, &pg))
            printf("policy %s generation %" PRIu64 "\n", name, pg);
    }
    return true;
}

static int cmd_generation(const struct opts *o, struct args *a)
{
    return simple_get(o, a, "generation", "/generation", show_generation);
}

int purge_generation(const struct opts *o, const char *policy)
{
    json_t *body = NULL;
    if (policy)
        body = json_pack("{s:s}", "policy", policy);
    struct response r;
    int rc = admin_request(o, "POST", "/purge/generation", body, &r);
    json_decref(body);
    if (rc != EXIT_OK)
        return rc;
    if (o->json)
        print_body(&r);
    struct nodes_ack na;
    char suffix[64];
    read_nodes_ack(r.json, &na);
    if (report_failure(&r)) {
        rc = failure_status(&r);
    } else if (!o->json) {
        uint64_t g, prev;
        if (!get_u64(r.json, "generation", &g)) {
            unexpected(&r, "no \"generation\"");
            rc = EXIT_FAIL;
        } else {
            bool all = nodes_ok(&na, suffix, sizeof suffix);
            if (policy)
                printf("policy %s ", policy);
            if (get_u64(r.json, "previous", &prev))
                printf("generation %" PRIu64 " (was %" PRIu64 ")%s\n", g, prev, suffix);
            else
                printf("generation %" PRIu64 "%s\n", g, suffix);
            if (!all)
                rc = EXIT_FAIL;
        }
    } else if (!nodes_ok(&na, suffix, sizeof suffix)) {
        rc = EXIT_FAIL;
    }
    report_missing(&na);
    response_free(&r);
    return rc;
}

/* One POST /purge.  *count gets "purged", *na the cluster's nodes.  With
 * --json the answer is printed as it came, or with body_out (several
 * purges, one array) handed back instead. */
static int purge_one(const struct opts *o, const char *kind, const char *arg, bool soft,
                     uint64_t *count, struct nodes_ack *na, json_t **body_out, bool *failed)
{
    json_t *body = json_pack("{s:s}", kind, arg);
    if (soft)
        json_object_set_new(body, "soft", json_true());
    struct response r;
    int rc = admin_request(o, "POST", "/purge", body, &r);
    json_decref(body);
    if (rc != EXIT_OK)
        return rc;
    *failed = false;
    if (body_out)
        *body_out = r.json ? json_incref(r.json) : json_string(r.body);
    else if (o->json)
        print_body(&r);
    read_nodes_ack(r.json, na);
    if (report_failure(&r)) {
        *failed = true;
        if (failure_status(&r) == EXIT_CONNECT) {
            /* Redis unreachable: the next paths would fail alike. */
            if (body_out)
                json_decref(*body_out), *body_out = NULL;
            response_free(&r);
            return EXIT_CONNECT;
        }
    } else if (!get_u64(r.json, "purged", count)) {
        if (!o->json) {
            unexpected(&r, "no \"purged\"");
            *failed = true;
        }
    }
    response_free(&r);
    return EXIT_OK;
}

static int cmd_purge(const struct opts *o, struct args *a)
{
    bool generation = false, soft = false, end_opts = false;
    const char *policy = NULL, *prefix = NULL, *tag = NULL;
    char **paths = calloc((size_t)a->n + 1, sizeof *paths);
    int n_paths = 0;
    if (!paths) {
        errmsg("out of memory");
        return EXIT_FAIL;
    }
    int rc = EXIT_OK;
    for (int i = 0; i < a->n; i++) {
        const char *arg = a->v[i];
        const char *val;
        int t;
        if (end_opts || arg[0] != '-' || strcmp(arg, "-") == 0) {
            paths[n_paths++] = a->v[i];
        } else if (strcmp(arg, "--") == 0) {
            end_opts = true;
        } else if (strcmp(arg, "--generation") == 0) {
            generation = true;
        } else if (strcmp(arg, "--soft") == 0) {
            soft = true;
        } else if ((t = take_value(a, &i, "--policy", NULL, &val)) != 0) {
            if (t < 0)
                goto usage;
            policy = val;
        } else if ((t = take_value(a, &i, "--prefix", NULL, &val)) != 0) {
            if (t < 0)
                goto usage;
            if (prefix) {
                rc = usage_error("purge: --prefix given twice");
                goto out;
            }
            prefix = val;
        } else if ((t = take_value(a, &i, "--tag", NULL, &val)) != 0) {
            if (t < 0)
                goto usage;
            if (tag) {
                rc = usage_error("purge: --tag given twice");
                goto out;
            }
            tag = val;
        } else {
            rc = usage_error("purge: unknown option '%s'", arg);
            goto out;
        }
    }

    int kinds = (generation ? 1 : 0) + (prefix ? 1 : 0) + (tag ? 1 : 0) + (n_paths ? 1 : 0);
    if (kinds == 0) {
        rc = usage_error("purge: what? give PATH..., --prefix, --tag or --generation");
        goto out;
    }
    if (kinds > 1) {
        rc = usage_error("purge: give only one of PATH..., --prefix, --tag, --generation");
        goto out;
    }
    if (policy && !generation) {
        rc = usage_error("purge: --policy goes with --generation");
        goto out;
    }
    if (generation && soft) {
        rc = usage_error("purge: --soft does not apply to --generation");
        goto out;
    }
    if ((policy && !*policy) || (prefix && !*prefix) || (tag && !*tag)) {
        rc = usage_error("purge: empty argument");
        goto out;
    }

    if (generation) {
        rc = purge_generation(o, policy);
        goto out;
    }

    if (prefix || tag) {
        uint64_t count = 0;
        bool failed;
        struct nodes_ack na;
        char suffix[64];
        rc = purge_one(o, prefix ? "prefix" : "tag", prefix ? prefix : tag, soft, &count, &na,
                       NULL, &failed);
        if (rc == EXIT_OK) {
            bool acked = failed || nodes_ok(&na, suffix, sizeof suffix);
            if (!o->json && !failed)
                printf("purged %" PRIu64 "%s\n", count, suffix);
            if (!acked) {
                report_missing(&na);
                failed = true;
            }
            if (failed)
                rc = EXIT_FAIL;
        }
        goto out;
    }

    /* PATH...: one request each; go on after a failure, exit 1 at the end. */
    {
        uint64_t total = 0;
        bool any_failed = false;
        json_t *all = json_array();
        for (int i = 0; i < n_paths; i++) {
            uint64_t count = 0;
            json_t *body = NULL;
            bool failed;
            struct nodes_ack na;
            char suffix[64] = "";
            rc = purge_one(o, "url", paths[i], soft, &count, &na,
                           o->json && n_paths > 1 ? &body : NULL, &failed);
            if (rc != EXIT_OK) {
                /* cannot talk to the daemon: what was printed so far stays
                 * valid, the rest was not purged */
                json_decref(all);
                goto out;
            }
            bool acked = failed || nodes_ok(&na, suffix, sizeof suffix);
            if (o->json) {
                if (n_paths > 1)
                    json_array_append_new(all, body ? body : json_null());
            } else if (!failed) {
                if (n_paths == 1)
                    printf("purged %" PRIu64 "%s\n", count, suffix);
                else
                    printf("purged %" PRIu64 "  %s%s\n", count, paths[i], suffix);
                fflush(stdout);
            }
            if (!acked) {
                report_missing(&na);
                any_failed = true;
            }
            if (failed) {
                if (n_paths > 1)
                    errmsg("%s was not purged", paths[i]);
                any_failed = true;
            }
            total += count;
        }
        if (o->json && n_paths > 1)
            print_json(all);
        else if (!o->json && n_paths > 1)
            printf("purged %" PRIu64 "  in total\n", total);
        json_decref(all);
        rc = any_failed ? EXIT_FAIL : EXIT_OK;
    }
    goto out;

usage:
    rc = EXIT_USAGE;
out:
    free(paths);
    return rc;
}

static int cmd_reload(const struct opts *o, struct args *a)
{
    if (a->n > 0)
        return usage_error("reload takes no arguments (got '%s')", a->v[0]);
    struct response r;
    int rc = admin_request(o, "POST", "/reload", NULL, &r);
    if (rc != EXIT_OK)
        return rc;
    if (o->json)
        print_body(&r);
    bool ok_false = json_is_object(r.json) && json_is_false(json_object_get(r.json, "ok"));
    if (!response_status_ok(&r) || ok_false || response_error_text(&r)) {
        /* Config errors as the compiler-style lines they are, nothing
         * prefixed, so editors and CI annotate them. */
        const json_t *errs = json_is_object(r.json) ? json_object_get(r.json, "errors") : NULL;
        const char *e = response_error_text(&r);
        if (json_is_array(errs) && json_array_size(errs) > 0) {
            size_t i;
            const json_t *v;
            json_array_foreach(errs, i, v) {
                if (json_is_string(v))
                    fprintf(stderr, "%s\n", json_string_value(v));
            }
        } else if (e) {
            fprintf(stderr, "%s\n", e);
        } else {
            report_failure(&r);
        }
        rc = EXIT_FAIL;
    } else {
        if (!o->json)
            printf("reload OK\n");
        /* Applied except these: a warning each, still a success (exit 0),
         * so a deploy does not believe a restart-only change is in force. */
        const json_t *pending = json_object_get(r.json, "restart_required");
        size_t i;
        const json_t *v;
        json_array_foreach(pending, i, v) {
            if (json_is_string(v))
                errmsg("warning: %s changed; takes effect on restart", json_string_value(v));
        }
    }
    response_free(&r);
    return rc;
}

/* --- stats --- */

struct stat_row {
    char *key;                  /* dotted path for nested objects */
    const char *leaf;           /* last component */
    int depth;
    const json_t *val;
    bool used;
};

struct stat_rows {
    struct stat_row *v;
    size_t n, cap;
};

static void rows_add(struct stat_rows *rs, const char *key, const char *leaf, int depth,
                     const json_t *val)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 32;
        struct stat_row *nv = realloc(rs->v, cap * sizeof *nv);
        if (!nv)
            return;
        rs->v = nv;
        rs->cap = cap;
    }
    struct stat_row *row = &rs->v[rs->n++];
    row->key = strdup(key);
    row->leaf = row->key ? row->key + (leaf - key) : "";
    row->depth = depth;
    row->val = val;
    row->used = false;
}

static void flatten(struct stat_rows *rs, const json_t *obj, const char *prefix, int depth)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        char key[512];
        int off = snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", k);
        if (off < 0 || (size_t)off >= sizeof key)
            continue;
        if (json_is_object(v) && json_object_size(v) > 0 && depth < 4)
            flatten(rs, v, key, depth + 1);
        else
            rows_add(rs, key, key + strlen(key) - strlen(k), depth, v);
    }
}

/* The row for `name`: a top-level key first, else a key one level down. */
static struct stat_row *rows_find(struct stat_rows *rs, const char *name)
{
    for (size_t i = 0; i < rs->n; i++)
        if (!rs->v[i].used && rs->v[i].depth == 0 && strcmp(rs->v[i].key, name) == 0)
            return &rs->v[i];
    for (size_t i = 0; i < rs->n; i++)
        if (!rs->v[i].used && rs->v[i].depth == 1 && strcmp(rs->v[i].leaf, name) == 0)
            return &rs->v[i];
    return NULL;
}

static bool row_u64(const struct stat_row *row, uint64_t *out)
{
    if (!row)
        return false;
    if (json_is_integer(row->val) && json_integer_value(row->val) >= 0) {
        *out = (uint64_t)json_integer_value(row->val);
        return true;
    }
    if (json_is_real(row->val) && json_real_value(row->val) >= 0) {
        *out = (uint64_t)json_real_value(row->val);
        return true;
    }
    return false;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static bool is_bytes_key(const char *leaf)
{
    return strcmp(leaf, "bytes") == 0 || strcmp(leaf, "memory") == 0 ||
           strncmp(leaf, "bytes_", 6) == 0 || ends_with(leaf, "_bytes") ||
           ends_with(leaf, "_memory");
}

static bool is_seconds_key(const char *leaf)
{
    return strcmp(leaf, "uptime") == 0 || ends_with(leaf, "_seconds");
}

/* The text of one value, human-readable where the key says what it is. */
static void format_value(const char *leaf, const json_t *v, char *out, size_t len)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        uint64_t n = (uint64_t)json_integer_value(v);
        if (is_bytes_key(leaf) && n >= 1024) {
            char h[32];
            human_bytes(n, h, sizeof h);
            snprintf(out, len, "%s (%" PRIu64 ")", h, n);
        } else if (is_seconds_key(leaf) && n >= 60) {
            char h[64];
            human_duration(n, h, sizeof h);
            snprintf(out, len, "%s (%" PRIu64 " s)", h, n);
        } else if (is_seconds_key(leaf)) {
            snprintf(out, len, "%" PRIu64 "s", n);
        } else {
            snprintf(out, len, "%" PRIu64, n);
        }
    } else if (json_is_string(v)) {
        snprintf(out, len, "%s", json_string_value(v));
    } else if (json_is_real(v)) {
        snprintf(out, len, "%g", json_real_value(v));
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(out, len, "%s", s ? s : "?");
        free(s);
    }
}

struct table_line {
    char *label;
    char *value;
};

struct table {
    struct table_line *v;
    size_t n, cap;
};

static void table_add(struct table *t, const char *label, const char *value)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        struct table_line *nv = realloc(t->v, cap * sizeof *nv);
        if (!nv)
            return;
        t->v = nv;
        t->cap = cap;
    }
    t->v[t->n].label = strdup(label);
    t->v[t->n].value = strdup(value);
    for (char *p = t->v[t->n].label; p && *p; p++)
        if (*p == '_')
            *p = ' ';
    t->n++;
}

/* A row under `label`, or its own dotted key when label is NULL. */
static void table_add_row(struct table *t, struct stat_row *row, const char *label)
{
    char val[512];
    format_value(row->leaf, row->val, val, sizeof val);
    table_add(t, label ? label : row->key, val);
    row->used = true;
}

static void print_stats(const json_t *root)
{
    struct stat_rows rs = { 0 };
    struct table t = { 0 };
    char val[512];
    flatten(&rs, root, "", 0);

    /* The order a person reads them in; every other key follows as sent. */
    static const char *const before_ratio[] = { "generation", "uptime", "uptime_seconds",
                                                "requests", "hits", "misses" };
    static const char *const after_ratio[] = { "revalidations", "stale", "objects", "bytes",
                                               "max_bytes", "evictions", "purges" };
    for (size_t i = 0; i < FC_ARRAY_LEN(before_ratio); i++) {
        struct stat_row *row = rows_find(&rs, before_ratio[i]);
        if (!row)
            continue;
        /* "uptime_seconds" reads as "uptime" once the value says "3h 2m 1s" */
        table_add_row(&t, row, strcmp(row->leaf, "uptime_seconds") == 0 ? "uptime" : row->leaf);
    }
    uint64_t hits, misses;
    struct stat_row *rh = NULL, *rm = NULL;
    for (size_t i = 0; i < rs.n; i++) {
        if (rs.v[i].depth <= 1 && strcmp(rs.v[i].leaf, "hits") == 0 && !rh)
            rh = &rs.v[i];
        if (rs.v[i].depth <= 1 && strcmp(rs.v[i].leaf, "misses") == 0 && !rm)
            rm = &rs.v[i];
    }
    struct stat_row *given_ratio = rows_find(&rs, "hit_ratio");
    if (given_ratio) {
        table_add_row(&t, given_ratio, "hit ratio");
    } else if (row_u64(rh, &hits) && row_u64(rm, &misses)) {
        if (hits + misses > 0)
            snprintf(val, sizeof val, "%.1f%%", 100.0 * (double)hits / (double)(hits + misses));
        else
            snprintf(val, sizeof val, "-");
        table_add(&t, "hit ratio", val);
    }
    for (size_t i = 0; i < FC_ARRAY_LEN(after_ratio); i++) {
        struct stat_row *row = rows_find(&rs, after_ratio[i]);
        if (row)
            table_add_row(&t, row, row->leaf);
    }
    for (size_t i = 0; i < rs.n; i++)
        if (!rs.v[i].used && rs.v[i].key)
            table_add_row(&t, &rs.v[i], NULL);

    size_t width = 0;
    for (size_t i = 0; i < t.n; i++)
        if (t.v[i].label && strlen(t.v[i].label) > width)
            width = strlen(t.v[i].label);
    for (size_t i = 0; i < t.n; i++) {
        if (t.v[i].label && t.v[i].value)
            printf("%-*s  %s\n", (int)width, t.v[i].label, t.v[i].value);
        free(t.v[i].label);
        free(t.v[i].value);
    }
    free(t.v);
    for (size_t i = 0; i < rs.n; i++)
        free(rs.v[i].key);
    free(rs.v);
}

static bool show_stats(struct response *r)
{
    if (!json_is_object(r->json)) {
        unexpected(r, "not a JSON object");
        return false;
    }
    print_stats(r->json);
    return true;
}

static int cmd_stats(const struct opts *o, struct args *a)
{
    return simple_get(o, a, "stats", "/stats", show_stats);
}

/* --- verify --- */

static const char *first_string(const json_t *obj, const char *const *keys)
{
    for (; *keys; keys++) {
        const json_t *v = json_object_get(obj, *keys);
        if (json_is_string(v))
            return json_string_value(v);
        if (json_is_object(v) && json_is_string(json_object_get(v, "sha256")))
            return json_string_value(json_object_get(v, "sha256"));
    }
    return NULL;
}

/* "sha256:abcd1234…" from a hex digest (with or without "sha256:"). */
static void short_hash(const char *h, char *out, size_t len)
{
    if (strncmp(h, "sha256:", 7) == 0)
        h += 7;
    if (strlen(h) > 8)
        snprintf(out, len, "sha256:%.8s\xe2\x80\xa6", h);
    else
        snprintf(out, len, "sha256:%s", h);
}

struct verify_line {
    const char *word;
    const char *path;
    char detail[256];
};

/* The per-URL results, whatever the container: a top-level array, an
 * object with "results" (or "urls") holding an array, or an object keyed
 * by URL.  Returns how many; *out is malloc'd. */
static size_t verify_entries(const json_t *root, const json_t ***out, const char ***keys)
{
    const json_t *arr = NULL;
    *out = NULL;
    *keys = NULL;
    if (json_is_array(root))
        arr = root;
    else if (json_is_object(root) && json_is_array(json_object_get(root, "results")))
        arr = json_object_get(root, "results");
    else if (json_is_object(root) && json_is_array(json_object_get(root, "urls")))
        arr = json_object_get(root, "urls");
    if (arr) {
        size_t n = json_array_size(arr);
        *out = calloc(n + 1, sizeof **out);
        *keys = calloc(n + 1, sizeof **keys);
        if (!*out || !*keys)
            return 0;
        for (size_t i = 0; i < n; i++)
            (*out)[i] = json_array_get(arr, i);
        return n;
    }
    if (!json_is_object(root))
        return 0;
    size_t n = json_object_size(root), i = 0;
    *out = calloc(n + 1, sizeof **out);
    *keys = calloc(n + 1, sizeof **keys);
    if (!*out || !*keys)
        return 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)root, k, v) {
        if (json_is_object(v)) {
            (*out)[i] = v;
            (*keys)[i] = k;
            i++;
        }
    }
    return i;
}

int cmd_verify(const struct opts *o, struct args *a)
{
    json_t *urls = json_array();
    bool end_opts = false;
    for (int i = 0; i < a->n; i++) {
        const char *arg = a->v[i];
        if (!end_opts && strcmp(arg, "--") == 0) {
            end_opts = true;
        } else if (!end_opts && arg[0] == '-' && arg[1] != '\0') {
            json_decref(urls);
            return usage_error("verify: unknown option '%s'", arg);
        } else {
            json_array_append_new(urls, json_string(arg));
        }
    }
    if (json_array_size(urls) == 0) {
        json_decref(urls);
        return usage_error("verify: give at least one PATH");
    }
    json_t *body = json_pack("{s:o}", "urls", urls);
    struct response r;
    int rc = admin_request(o, "POST", "/verify", body, &r);
    json_decref(body);
    if (rc != EXIT_OK)
        return rc;
    if (o->json)
        print_body(&r);
    if (report_failure(&r)) {
        response_free(&r);
        return EXIT_FAIL;
    }

    const json_t **entries;
    const char **keys;
    size_t n = verify_entries(r.json, &entries, &keys);
    if (n == 0) {
        if (!o->json)
            unexpected(&r, "no per-URL results");
        free(entries);
        free(keys);
        response_free(&r);
        return EXIT_FAIL;
    }

    static const char *const url_keys[] = { "url", "path", NULL };
    static const char *const proxy_keys[] = { "proxy_sha256", "proxy_hash", "proxy", "cache_sha256",
                                              "cached", "stored_sha256", NULL };
    static const char *const origin_keys[] = { "origin_sha256", "origin_hash", "origin", NULL };

    struct verify_line *lines = calloc(n, sizeof *lines);
    bool any_stale = false, any_error = false;
    size_t pathw = 0;
    for (size_t i = 0; i < n && lines; i++) {
        const json_t *e = entries[i];
        struct verify_line *l = &lines[i];
        l->path = first_string(e, url_keys);
        if (!l->path)
            l->path = keys[i] ? keys[i] : "?";
        const char *ph = first_string(e, proxy_keys);
        const char *oh = first_string(e, origin_keys);
        const json_t *stale = json_object_get(e, "stale");
        const json_t *stored = json_object_get(e, "stored");
        const json_t *err = json_object_get(e, "error");
        uint64_t ostatus = 0, pstatus = 0;
        bool have_ostatus = get_u64(e, "origin_status", &ostatus);
        bool have_pstatus = get_u64(e, "proxy_status", &pstatus) && pstatus > 0;
        char ps[64] = "", os[64] = "";
        if (ph && *ph)
            short_hash(ph, ps, sizeof ps);
        if (oh && *oh)
            short_hash(oh, os, sizeof os);

        if (json_is_true(stale)) {
            l->word = "STALE";
            /* The statuses when they differ (a stored 404 the origin now
             * serves), else the bodies' hashes say it. */
            if (have_pstatus && have_ostatus && pstatus != ostatus)
                snprintf(l->detail, sizeof l->detail,
                         "proxy %" PRIu64 " %s origin %" PRIu64 " %s", pstatus,
                         ps[0] ? ps : "?", ostatus, os[0] ? os : "?");
            else if (have_ostatus && ostatus != 200)
                snprintf(l->detail, sizeof l->detail, "proxy %s origin %s  (origin answered "
                         "%" PRIu64 ")", ps[0] ? ps : "?", os[0] ? os : "?", ostatus);
            else
                snprintf(l->detail, sizeof l->detail, "proxy %s origin %s", ps[0] ? ps : "?",
                         os[0] ? os : "?");
            any_stale = true;
        } else if (json_is_false(stored) || !ph || !*ph) {
            l->word = "missing";
            snprintf(l->detail, sizeof l->detail, "(not in cache)");
        } else if (json_is_string(err) || !oh || !*oh) {
            l->word = "error";
            if (json_is_string(err))
                snprintf(l->detail, sizeof l->detail, "%s  (origin: %s)", ps,
                         json_string_value(err));
            else if (have_ostatus && ostatus > 0)
                snprintf(l->detail, sizeof l->detail, "%s  (origin answered %" PRIu64 ")", ps,
                         ostatus);
            else
                snprintf(l->detail, sizeof l->detail, "%s  (origin unreachable)", ps);
            any_error = true;
        } else {
            l->word = "fresh";
            if (have_pstatus && pstatus != 200)
                snprintf(l->detail, sizeof l->detail, "%" PRIu64 " %s", pstatus, ps);
            else
                snprintf(l->detail, sizeof l->detail, "%s", ps);
        }
        if (strlen(l->path) > pathw)
            pathw = strlen(l->path);
    }
    if (pathw > 60)
        pathw = 60;
    if (!o->json && lines) {
        for (size_t i = 0; i < n; i++)
            printf("%-7s %-*s  %s\n", lines[i].word, (int)pathw, lines[i].path,
                   lines[i].detail);
    }
    if (any_stale && !o->json)
        errmsg("stale content in the cache: run 'proxyctl purge --generation' (or purge "
               "those paths)");
    free(lines);
    free(entries);
    free(keys);
    response_free(&r);
    return (any_stale || any_error) ? EXIT_FAIL : EXIT_OK;
}

/* nodes: the cluster's nodes, as GET /nodes lists them. */
static int cmd_nodes(const struct opts *o, struct args *a)
{
    if (a->n > 0)
        return usage_error("nodes takes no arguments (got '%s')", a->v[0]);
    struct response r;
    int rc = admin_request(o, "GET", "/nodes", NULL, &r);
    if (rc != EXIT_OK)
        return rc;
    if (o->json)
        print_body(&r);
    const json_t *nodes = json_is_object(r.json) ? json_object_get(r.json, "nodes") : NULL;
    if (report_failure(&r)) {
        rc = failure_status(&r);
    } else if (!json_is_array(nodes)) {
        unexpected(&r, "no \"nodes\"");
        rc = EXIT_FAIL;
    } else if (!o->json) {
        const json_t *name = json_object_get(r.json, "cluster");
        const json_t *self = json_object_get(r.json, "node");
        printf("cluster %s, this node %s\n", json_is_string(name) ? json_string_value(name) : "?",
               json_is_string(self) ? json_string_value(self) : "?");
        printf("%-24s %12s %12s  %s\n", "NODE", "GENERATION", "LAST SEEN", "STATE");
        size_t i;
        const json_t *n;
        json_array_foreach(nodes, i, n) {
            const json_t *nn = json_object_get(n, "node");
            uint64_t gen = 0, ms = 0;
            get_u64(n, "generation", &gen);
            get_u64(n, "last_seen_ms", &ms);
            char seen[32];
            snprintf(seen, sizeof seen, "%.1f s ago", (double)ms / 1000.0);
            printf("%-24s %12" PRIu64 " %12s  %s\n", json_is_string(nn) ? json_string_value(nn) : "?",
                   gen, seen, json_is_true(json_object_get(n, "live")) ? "live" : "not live");
        }
    }
    response_free(&r);
    return rc;
}

/* ------------------------------------------------------------------ */

static const struct command {
    const char *name;
    int (*run)(const struct opts *, struct args *);
} commands[] = {
    { "purge", cmd_purge },
    { "generation", cmd_generation },
    { "stats", cmd_stats },
    { "reload", cmd_reload },
    { "verify", cmd_verify },
    { "nodes", cmd_nodes },
    { "top", cmd_top },
    { "warm", cmd_warm },
    { "deploy", cmd_deploy },
};

int main(int argc, char **argv)
{
    struct opts o = { .socket = NULL, .json = false, .timeout_s = DEFAULT_TIMEOUT_S };
    const char *timeout_arg = NULL;

    /* Global options may come before or after the command; what is left
     * (command and its arguments) keeps its order.  "--" ends them. */
    struct args all = { .n = argc - 1, .v = argv + 1 };
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) {
        errmsg("out of memory");
        return EXIT_FAIL;
    }
    int n_rest = 0;
    bool help = false, version = false;
    for (int i = 0; i < all.n; i++) {
        const char *arg = all.v[i];
        const char *val;
        int t;
        if (strcmp(arg, "--") == 0) {
            while (i < all.n)
                rest[n_rest++] = all.v[i++];
            break;
        }
        if (strcmp(arg, "--json") == 0) {
            o.json = true;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            help = true;
        } else if (strcmp(arg, "--version") == 0) {
            version = true;
        } else if ((t = take_value(&all, &i, "--socket", "-s", &val)) != 0) {
            if (t < 0)
                return free(rest), EXIT_USAGE;
            o.socket = val;
        } else if ((t = take_value(&all, &i, "--timeout", "-t", &val)) != 0) {
            if (t < 0)
                return free(rest), EXIT_USAGE;
            timeout_arg = val;
        } else if (n_rest == 0 && arg[0] == '-' && arg[1] != '\0') {
            free(rest);
            return usage_error("unknown option '%s'", arg);
        } else {
            rest[n_rest++] = all.v[i];
        }
    }
    if (help) {
        fputs(usage_text, stdout);
        free(rest);
        return EXIT_OK;
    }
    if (version) {
        printf("proxyctl (freshcache) %s\n", FRESHCACHE_VERSION);
        free(rest);
        return EXIT_OK;
    }
    if (timeout_arg) {
        char *end;
        errno = 0;
        double t = strtod(timeout_arg, &end);
        if (errno || end == timeout_arg || *end || !(t > 0) || t > 86400.0) {
            free(rest);
            return usage_error("bad --timeout '%s' (seconds, more than 0)", timeout_arg);
        }
        o.timeout_s = t;
    }
    if (o.socket && !*o.socket) {
        free(rest);
        return usage_error("empty socket path");
    }
    if (!o.socket) {
        const char *env = getenv("FRESHCACHE_ADMIN");
        o.socket = env && *env ? env : DEFAULT_SOCKET;
    }

    int first = 0;
    if (first < n_rest && strcmp(rest[first], "--") == 0)
        first++;
    if (first >= n_rest) {
        free(rest);
        return usage_error("no command given");
    }
    const char *name = rest[first];
    struct args cmd_args = { .n = n_rest - first - 1, .v = rest + first + 1 };
    int rc = -1;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            rc = commands[i].run(&o, &cmd_args);
            break;
        }
    }
    if (rc < 0)
        rc = usage_error("unknown command '%s'", name);
    free(rest);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        errmsg("writing the output: %s", strerror(errno));
        if (rc == EXIT_OK)
            rc = EXIT_FAIL;
    }
    return rc;
}
