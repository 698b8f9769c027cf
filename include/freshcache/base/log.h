/*
 * log.h — the error log (stderr, journald-friendly) and fc_panic().
 *
 * Lines go to stderr with a syslog-style "<N>" priority prefix when stderr is
 * the journal (JOURNAL_STREAM set), otherwise with a level word, so both
 * `journalctl -p warning` and a terminal read them well.  The level in force
 * is the one global the logger keeps (set at start and on reload).
 */
#ifndef FRESHCACHE_LOG_H
#define FRESHCACHE_LOG_H

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* `s` (from a client or a peer) made safe for one log line: control
 * bytes, quotes and backslashes escaped as \xNN, cut with "..." to fit
 * out[outlen].  Returns out. */
const char *log_escape(const char *s, char *out, size_t outlen);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_get_level() >= LOG_LEVEL_DEBUG) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

#endif
