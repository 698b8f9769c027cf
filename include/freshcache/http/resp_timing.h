/*
 * resp_timing.h — the fields of a response that tell how old it is and when
 * it expires (RFC 9111 §4.2): Date, Age, Expires, Last-Modified, read once
 * when the response arrives.
 */
#ifndef FRESHCACHE_RESP_TIMING_H
#define FRESHCACHE_RESP_TIMING_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct http_msg;

/* Times first, flags last: no padding (every stored object carries one). */
struct resp_timing {
    time_t request_time;     /* when the request that fetched it was sent */
    time_t response_time;    /* when its header was received */
    time_t date;             /* Date field, or response_time when it had none */
    int64_t age_value;       /* Age field in seconds, 0 if absent; huge if untrustworthy */
    time_t expires;
    time_t last_modified;
    bool has_date;
    bool has_expires;
    bool expires_valid;      /* false: present but unparseable → already expired */
    bool has_last_modified;
};

/* Read `resp`'s timing fields.  A response without Date gets
 * response_time as its date: the cache adds that Date when it forwards
 * it (RFC 9110 §6.6.1). */
void resp_timing_parse(const struct http_msg *resp, time_t request_time, time_t response_time,
                       struct resp_timing *t);

/* The Age field's value in seconds: one line of digits.  A list written
 * without spaces ("0,7200") counts by its first member; any other shape
 * (two lines, "0, 0", a sign, a fraction, parameters) cannot be trusted
 * to be small and reads as CC_DELTA_MAX (the response counts as stale).
 * 0 when there is no Age. */
int64_t resp_age_value(const struct http_msg *resp);

#endif
