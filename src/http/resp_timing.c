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
    size_t len;
    const char *v = http_msg_get(r, "Age", &len);
    if (v == NULL)
        return 0;
    unsigned lines = 0;
    uint32_t it = 0;
    while (http_msg_next(r, "Age", &it) != NULL)
        lines++;
    int64_t a = 0;
    size_t i = 0;
    /* Stop growing once past 2^31 (RFC 9111 §1.2.2), clamp at the end. */
    for (; i < len && v[i] >= '0' && v[i] <= '9'; i++)
        if (a <= CC_DELTA_MAX)
            a = a * 10 + (v[i] - '0');
    bool ok = lines == 1 && i > 0 &&
              (i == len || (v[i] == ',' && i + 1 < len && v[i + 1] >= '0' && v[i + 1] <= '9'));
    return ok && a < CC_DELTA_MAX ? a : CC_DELTA_MAX;
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
