/*
 * redis_link.h — one asynchronous connection to Redis (hiredis with its
 * libevent adapter) on the main thread's event loop.
 *
 * A link connects when asked (TCP or Unix socket), logs in (AUTH with the
 * password, or user and password; SELECT the database) and reports "up"
 * only after both succeeded.  It reports "down" exactly once per
 * connection, when the hiredis context is gone, with a reason; reconnecting
 * is the owner's decision (cluster.c backs off).  hiredis 0.14 has no
 * command timeout, so the owner calls redis_link_check() periodically: a
 * reply overdue by more than the link's timeout (a hung or partitioned
 * Redis) drops the connection, and every pending callback then gets a NULL
 * reply.
 *
 * Credentials: the link never logs, and never puts in a reason, anything
 * but the redacted address it was given.
 *
 * Threading: main thread only.  Ownership: the owner frees the link with
 * redis_link_free(), which drops the connection first.
 */
#ifndef FRESHCACHE_REDIS_LINK_H
#define FRESHCACHE_REDIS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redis_url;
struct redisReply;
struct redis_link;

/* up: logged in and ready for commands.  !up: the connection is gone
 * (`why` says why); no callback of it will run any more. */
typedef void (*redis_link_state_fn)(void *arg, struct redis_link *l, bool up, const char *why);
/* A reply, or NULL when the connection went away first.  Called exactly
 * once per command that redis_link_command() accepted. */
typedef void (*redis_reply_fn)(struct redis_link *l, struct redisReply *reply, void *arg);

/* `url` must outlive the link.  `timeout_ms` bounds connecting and each
 * reply's wait (redis_link_check). */
struct redis_link *redis_link_new(struct event_base *base, const struct redis_url *url,
                                  const char *name, uint64_t timeout_ms,
                                  redis_link_state_fn state_fn, void *arg);
void redis_link_free(struct redis_link *l);

/* Start connecting; a no-op unless idle. */
void redis_link_connect(struct redis_link *l);
/* Close the connection (pending callbacks get NULL, then "down" is
 * reported).  Safe from inside the link's own callbacks: the close itself
 * runs from the event loop. */
void redis_link_drop(struct redis_link *l, const char *why);
bool redis_link_up(const struct redis_link *l);
/* No connection at all (not even one closing): connect() would start one. */
bool redis_link_idle(const struct redis_link *l);

/* The command as separate arguments, built with the helpers below. */
#define REDIS_CMD_MAX_ARGS 160
struct redis_cmd {
    int argc;
    const char *argv[REDIS_CMD_MAX_ARGS];
    size_t len[REDIS_CMD_MAX_ARGS];
    char arena[8192];               /* copies of formatted arguments */
    size_t used;
    bool overflow;                  /* too many or too long: not sent */
};
void redis_cmd_init(struct redis_cmd *c);
/* Borrowed: `s` must live until redis_link_command() returns. */
void redis_cmd_arg(struct redis_cmd *c, const char *s);
/* Copied into the command's arena. */
void redis_cmd_argf(struct redis_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Send; -1 when the link is not up (or the command overflowed): fn is
 * then never called. */
int redis_link_command(struct redis_link *l, const struct redis_cmd *c, redis_reply_fn fn,
                       void *arg);

/* Drop the connection if it took too long to connect or a reply is
 * overdue.  Call every 100 ms or so with a monotonic clock in ms. */
void redis_link_check(struct redis_link *l, uint64_t now_ms);

/* Monotonic milliseconds (CLOCK_MONOTONIC). */
uint64_t redis_link_now_ms(void);

#endif
