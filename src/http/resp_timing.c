/*
 * resp_timing.c — see include/freshcache/http/resp_timing.h.
 */
#include <string.h>

#include "freshcache/http/cache_control.h"
#include "freshcache/http/http_date.h"
#include "freshcache/http/http_msg.h"
#include "freshcache/http/resp_timing.h"

int64_t resp_age_value(const struct http_msg *r)
{
    /* RFC 9111 §5.1: a list-valued Age ("0, 7200", or two field lines,
     * which read as one list) counts by its first member; a value that is
     * not a non-negative integer is ignored, as if there were no Age: the
     * response stays fresh by its own max-age.  (The npm suite 0.4.5
     * still wants such a response stale: tests/conformance/expectations.txt.) */
    size_t len;
    const char *v = http_msg_get(r, "Age", &len);
    if (v == NULL)
        return 0;
    const char *e;
    size_t el;
    if (!http_list_next(&v, v + len, &e, &el))
        return 0;
    int64_t a = 0;
    /* Stop growing once past 2^31 (RFC 9111 §1.2.2), clamp at the end. */
    for (size_t i = 0; i < el; i++) {
        if (e[i] < '0' || e[i] > '9')
            return 0;
        if (a <= CC_DELTA_MAX)
            a = a * 10 + (e[i] - '0');
    }
    return a < CC_DELTA_MAX ? a : CC_DELTA_MAX;
}

void resp_timing_parse(const struct http_msg *r, time_t request_time, time_t response_time,
                       struct resp_timing *t)
{
    size_t len;
    const char *v;
    memset(t, 0, sizeof *t);
    t->request_time = request_time;
    t->response_time = response_time;
    if ((v = http_msg_get(r, "Date", &len)) != NULL)
        t->has_date = http_date_parse(v, len, &t->date);
    if (!t->has_date) {
        t->has_date = true;
        t->date = response_time;
    }
    t->age_value = resp_age_value(r);
    if ((v = http_msg_get(r, "Expires", &len)) != NULL) {
        t->has_expires = true;
        t->expires_valid = http_date_parse(v, len, &t->expires);
    }
    if ((v = http_msg_get(r, "Last-Modified", &len)) != NULL)
        t->has_last_modified = http_date_parse(v, len, &t->last_modified);
}
