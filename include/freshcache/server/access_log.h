/*
 * access_log.h — one line per request, to a file, stdout, or nowhere.
 *
 * Each worker formats into its own buffer and writes whole lines, flushed
 * every ACCESS_LOG_FLUSH_MS or when the buffer fills, so lines from
 * different workers never interleave and no request pays a syscall.
 * Client-supplied text (request line, referer, user agent) is escaped:
 * control characters, '"' and '\' become \xNN, so no line can be forged.
 *
 * log.format text (space separated, like nginx's combined plus cache fields):
 *   CLIENT [TIME] "REQUEST LINE" STATUS BYTES "REFERER" "USER AGENT"
 *   "CACHE-STATUS" gen=N origin_ms=N total_ms=N
 * log.format json: the same fields as one JSON object a line (see
 * access_log_format_json), for log pipelines.
 */
#ifndef FRESHCACHE_ACCESS_LOG_H
#define FRESHCACHE_ACCESS_LOG_H

#include <stdint.h>
#include <time.h>

#include "freshcache/server/runtime.h"

struct worker;

#define ACCESS_LOG_FLUSH_MS 200

struct http_msg;
struct evbuffer;

struct access_entry {
    const char *client;
    const struct http_msg *req;     /* method, target, Referer, User-Agent */
    int status;
    uint64_t bytes;                 /* body bytes sent */
    const char *cache_status;
    uint64_t generation;
    int64_t origin_ms;              /* -1: no origin exchange */
    int64_t total_ms;
};

/* Open the destination of log.access into srv->access_fd (-1 for off). */
int access_log_open(struct server *srv, char *err, size_t errlen);
/* SIGUSR1: reopen the same path in place (after logrotate moved it). */
int access_log_reopen(struct server *srv, char *err, size_t errlen);
void access_log_close(struct server *srv);

/* A worker's line buffer and its flush timer (every ACCESS_LOG_FLUSH_MS):
 * made before the worker runs, flushed and freed after it stopped. */
void access_log_attach(struct worker *w);
void access_log_detach(struct worker *w);
/* Format `e` (in the configured log.format) into the worker's buffer. */
void access_log_write(struct worker *w, const struct access_entry *e);

/* One line for `e`, logged at `now`, appended to `out` with its newline.
 * No state: callable from any thread, and from tests. */
void access_log_format_text(const struct access_entry *e, time_t now, struct evbuffer *out);
/* {"time":"2026-05-04T09:12:44Z","client":...,"method":...,"uri":...,
 *  "protocol":...,"status":N,"bytes":N,"referer":...,"user_agent":...,
 *  "cache_status":...,"generation":N,"origin_ms":N,"total_ms":N}
 * null for what the text line writes "-" (and origin_ms when the origin
 * was not asked); strings escaped by jansson, invalid UTF-8 bytes replaced
 * by U+FFFD so the line is always valid JSON (access_log_json.c). */
void access_log_format_json(const struct access_entry *e, time_t now, struct evbuffer *out);
void access_log_flush(struct worker *w);

#endif
