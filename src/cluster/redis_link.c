/*
 * redis_link.c — one asynchronous Redis connection.  See
 * include/freshcache/cluster/redis_link.h.
 *
 *   IDLE ──connect──▶ CONNECTING ──connected──▶ LOGIN ──AUTH/SELECT ok──▶ UP
 *     ▲                    │                      │                        │
 *     └──── "down" ◀───────┴────── DYING ◀────────┴──── drop / error ──────┘
 *
 * hiredis frees its context itself after a failed connect and after its
 * disconnect callback, and calling redisAsyncFree() from inside some of
 * its callbacks is unsafe in 0.14, so a drop only marks the link DYING and
 * frees the context from a deferred event, outside any hiredis callback.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/cluster/redis_link.h"
#include "freshcache/config/redis_url.h"

enum link_state { LINK_IDLE = 0, LINK_CONNECTING, LINK_LOGIN, LINK_UP, LINK_DYING };

struct redis_link {
#define REDIS_LINK_MAGIC 0x7ed15e00u
    unsigned magic;
    struct event_base *base;
    const struct redis_url *url;
    char name[32];                  /* "commands", "events": for debug logs */
    uint64_t timeout_ms;
    redis_link_state_fn state_fn;
    void *arg;

    redisAsyncContext *ac;          /* NULL when idle */
    enum link_state state;
    bool down_reported;             /* for the current connection */
    bool freeing;                   /* redis_link_free(): tell the owner nothing more */
    unsigned n_pending;             /* commands sent, reply not yet seen */
    unsigned login_left;            /* AUTH/SELECT replies before "up" */
    uint64_t since_ms;              /* connect start, or since a reply is awaited */
    char why[256];                  /* reason for the coming "down" */
    struct event *kill;             /* deferred redisAsyncFree */
};

/* One command in flight: hiredis' privdata. */
struct pending {
    struct redis_link *l;
    redis_reply_fn fn;              /* NULL: a login command */
    void *arg;
    const char *what;               /* login: "AUTH" or "SELECT" */
};

uint64_t redis_link_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A message from Redis (or the OS) made safe to log: should it ever echo
 * the password, that part is replaced. */
static void scrub(const struct redis_link *l, char *s)
{
    const char *pw = l->url->password;
    size_t n = pw ? strlen(pw) : 0;
    char *p;
    while (n > 0 && (p = strstr(s, pw)) != NULL) {
        memset(p, '*', n > 3 ? 3 : n);
        memmove(p + (n > 3 ? 3 : n), p + n, strlen(p + n) + 1);
    }
}

static void set_why(struct redis_link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_why(struct redis_link *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->why, sizeof l->why, fmt, ap);
    va_end(ap);
    scrub(l, l->why);
}

/* The connection is gone: tell the owner once. */
static void report_down(struct redis_link *l)
{
    l->ac = NULL;
    l->state = LINK_IDLE;
    l->n_pending = 0;
    /* A close still scheduled is for this connection, now gone: it must
     * not reach the next one. */
    event_del(l->kill);
    if (l->down_reported)
        return;
    l->down_reported = true;
    log_debug("cluster: Redis %s connection down: %s", l->name, l->why);
    if (!l->freeing)
        l->state_fn(l->arg, l, false, l->why[0] ? l->why : "connection closed");
}

static void report_up(struct redis_link *l)
{
    l->state = LINK_UP;
    log_debug("cluster: Redis %s connection up", l->name);
    if (!l->freeing)
        l->state_fn(l->arg, l, true, NULL);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct pending *p = privdata;
    struct redis_link *l = p->l;
    CHECK_OBJ_NOTNULL(l, REDIS_LINK_MAGIC);
    redisReply *reply = r;
    FC_ASSERT(l->n_pending > 0);
    l->n_pending--;
    l->since_ms = redis_link_now_ms();
    if (p->fn != NULL) {
        p->fn(l, reply, p->arg);
    } else if (reply != NULL && l->state == LINK_LOGIN) {
        if (reply->type == REDIS_REPLY_ERROR) {
            set_why(l, "%s refused: %s", p->what, reply->str);
            redis_link_drop(l, l->why);
        } else if (--l->login_left == 0) {
            report_up(l);
        }
    }
    free(p);
}

static int send_argv(struct redis_link *l, int argc, const char *const *argv, const size_t *len,
                     redis_reply_fn fn, void *arg, const char *what)
{
    struct pending *p = calloc(1, sizeof *p);
    AN(p);
    p->l = l;
    p->fn = fn;
    p->arg = arg;
    p->what = what;
    if (redisAsyncCommandArgv(l->ac, on_reply, p, argc, (const char **)argv, len) != REDIS_OK) {
        free(p);
        return -1;
    }
    if (l->n_pending++ == 0)
        l->since_ms = redis_link_now_ms();
    return 0;
}

/* Connected: log in, then report "up". */
static void on_connect(const redisAsyncContext *cac, int status)
{
    struct redis_link *l = cac->data;
    CHECK_OBJ_NOTNULL(l, REDIS_LINK_MAGIC);
    if (status != REDIS_OK) {
        /* hiredis frees the context when we return. */
        set_why(l, "cannot connect: %s", cac->errstr);
        report_down(l);
        return;
    }
    if (l->state == LINK_DYING)
        return;                     /* the kill event will free it */
    l->state = LINK_LOGIN;
    l->since_ms = redis_link_now_ms();
    l->login_left = 0;
    const struct redis_url *u = l->url;
    if (u->password) {
        const char *argv[3] = { "AUTH" };
        size_t len[3] = { 4 };
        int argc = 1;
        if (u->username) {
            argv[argc] = u->username;
            len[argc++] = strlen(u->username);
        }
        argv[argc] = u->password;
        len[argc++] = strlen(u->password);
        if (send_argv(l, argc, argv, len, NULL, NULL, "AUTH") == 0)
            l->login_left++;
    }
    if (u->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%u", u->db);
        const char *argv[2] = { "SELECT", db };
        size_t len[2] = { 6, strlen(db) };
        if (send_argv(l, 2, argv, len, NULL, NULL, "SELECT") == 0)
            l->login_left++;
    }
    if (l->login_left == 0)
        report_up(l);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    struct redis_link *l = cac->data;
    CHECK_OBJ_NOTNULL(l, REDIS_LINK_MAGIC);
    if (status != REDIS_OK && cac->errstr[0])
        set_why(l, "%s", cac->errstr);
    else if (l->state != LINK_DYING)
        set_why(l, "Redis closed the connection");
    report_down(l);
}

/* Deferred close: outside every hiredis callback. */
static void on_kill(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct redis_link *l = arg;
    CHECK_OBJ_NOTNULL(l, REDIS_LINK_MAGIC);
    redisAsyncContext *ac = l->ac;
    if (ac != NULL) {
        /* Pending callbacks get NULL; on_disconnect runs (and reports) if
         * it was connected. */
        redisAsyncFree(ac);
    }
    /* Still connecting (no on_disconnect), or never started: report here,
     * unless the owner already started a new connection meanwhile. */
    if (ac == NULL || l->ac == ac)
        report_down(l);
}

struct redis_link *redis_link_new(struct event_base *base, const struct redis_url *url,
                                  const char *name, uint64_t timeout_ms,
                                  redis_link_state_fn state_fn, void *arg)
{
    struct redis_link *l = calloc(1, sizeof *l);
    AN(l);
    l->magic = REDIS_LINK_MAGIC;
    l->base = base;
    l->url = url;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->timeout_ms = timeout_ms;
    l->state_fn = state_fn;
    l->arg = arg;
    l->kill = event_new(base, -1, 0, on_kill, l);
    AN(l->kill);
    return l;
}

void redis_link_free(struct redis_link *l)
{
    if (l == NULL)
        return;
    CHECK_OBJ_NOTNULL(l, REDIS_LINK_MAGIC);
    l->freeing = true;
    if (l->ac != NULL)
        redisAsyncFree(l->ac);
    l->ac = NULL;
    event_free(l->kill);
    l->magic = 0;
    free(l);
}

void redis_link_connect(struct redis_link *l)
{
    CHECK_OBJ_NOTNULL(l, REDIS_LINK_MAGIC);
    if (l->state != LINK_IDLE)
        return;
    const struct redis_url *u = l->url;
    l->down_reported = false;
    l->why[0] = '\0';
    l->n_pending = 0;
    l->since_ms = redis_link_now_ms();
    redisAsyncContext *ac = u->unix_path ? redisAsyncConnectUnix(u->unix_path)
                                         : redisAsyncConnect(u->host, u->port);
    AN(ac);
    if (ac->err) {
        set_why(l, "cannot connect: %s", ac->errstr);
        redisAsyncFree(ac);
        l->state = LINK_DYING;      /* reported from the loop, like any drop */
        event_active(l->kill, 0, 0);
        return;
    }
    ac->data = l;
    l->ac = ac;
    l->state = LINK_CONNECTING;
    if (u->unix_path == NULL)
        redisEnableKeepAlive(&ac->c);
    AZ(redisLibeventAttach(ac, l->base));
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

void redis_link_drop(struct redis_link *l, const char *why)
{
    CHECK_OBJ_NOTNULL(l, REDIS_LINK_MAGIC);
    if (l->state == LINK_IDLE || l->state == LINK_DYING)
        return;
    if (why != l->why)
        set_why(l, "%s", why);
    l->state = LINK_DYING;
    event_active(l->kill, 0, 0);
}

bool redis_link_up(const struct redis_link *l)
{
    return l->state == LINK_UP;
}

bool redis_link_idle(const struct redis_link *l)
{
    return l->state == LINK_IDLE;
}

void redis_cmd_init(struct redis_cmd *c)
{
    c->argc = 0;
    c->used = 0;
    c->overflow = false;
}

void redis_cmd_arg(struct redis_cmd *c, const char *s)
{
    if (c->argc == REDIS_CMD_MAX_ARGS) {
        c->overflow = true;
        return;
    }
    c->argv[c->argc] = s;
    c->len[c->argc++] = strlen(s);
}

void redis_cmd_argf(struct redis_cmd *c, const char *fmt, ...)
{
    size_t room = sizeof c->arena - c->used;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->arena + c->used, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        c->overflow = true;
        return;
    }
    redis_cmd_arg(c, c->arena + c->used);
    c->used += (size_t)n + 1;
}

int redis_link_command(struct redis_link *l, const struct redis_cmd *c, redis_reply_fn fn,
                       void *arg)
{
    CHECK_OBJ_NOTNULL(l, REDIS_LINK_MAGIC);
    AN(fn);
    if (l->state != LINK_UP || c->overflow || c->argc == 0)
        return -1;
    return send_argv(l, c->argc, c->argv, c->len, fn, arg, NULL);
}

void redis_link_check(struct redis_link *l, uint64_t now_ms)
{
    CHECK_OBJ_NOTNULL(l, REDIS_LINK_MAGIC);
    uint64_t waited = now_ms > l->since_ms ? now_ms - l->since_ms : 0;
    if (waited <= l->timeout_ms)
        return;
    if (l->state == LINK_CONNECTING || l->state == LINK_LOGIN) {
        set_why(l, "no answer within %llu ms while connecting", (unsigned long long)l->timeout_ms);
        redis_link_drop(l, l->why);
    } else if (l->state == LINK_UP && l->n_pending > 0) {
        set_why(l, "no reply within %llu ms", (unsigned long long)l->timeout_ms);
        redis_link_drop(l, l->why);
    }
}
