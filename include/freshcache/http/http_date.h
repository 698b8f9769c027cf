/*
 * http_date.h — HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, and the obsolete
 * RFC 850 and asctime forms that recipients must still accept.
 */
#ifndef FRESHCACHE_HTTP_DATE_H
#define FRESHCACHE_HTTP_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define HTTP_DATE_LEN 29   /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* Parse `len` bytes at `s` (surrounding whitespace allowed).  true and *out
 * (seconds since the epoch, UTC) on success; false for anything that is not
 * one of the three forms, including out-of-range fields. */
bool http_date_parse(const char *s, size_t len, time_t *out);
/* The same with an explicit clock: RFC 850 dates carry a two-digit year,
 * which §5.6.7 resolves relative to the current year (a year more than 50
 * years in the future is read as the previous century).  http_date_parse()
 * uses time(NULL); tests and callers that already hold `now` use this.
 * The day name is checked for syntax only, not against the date. */
bool http_date_parse_at(const char *s, size_t len, time_t now, time_t *out);

/* Write the IMF-fixdate of `t` into out[HTTP_DATE_LEN + 1], NUL-terminated.
 * `t` is clamped to years 0000..9999, the range a 4-digit year can express. */
void http_date_format(time_t t, char out[HTTP_DATE_LEN + 1]);

#endif
