/*
 * human.c — see human.h.
 */
#include <inttypes.h>
#include <stdio.h>

#include "human.h"

void human_bytes(uint64_t b, char *out, size_t len)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    if (b < 1024) {
        snprintf(out, len, "%" PRIu64 " B", b);
        return;
    }
    double v = (double)b;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0])
        v /= 1024.0, u++;
    snprintf(out, len, "%.1f %s", v, units[u]);
}

void human_duration(uint64_t s, char *out, size_t len)
{
    uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
    if (d)
        snprintf(out, len, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "m %" PRIu64 "s", d, h, m, sec);
    else if (h)
        snprintf(out, len, "%" PRIu64 "h %" PRIu64 "m %" PRIu64 "s", h, m, sec);
    else if (m)
        snprintf(out, len, "%" PRIu64 "m %" PRIu64 "s", m, sec);
    else
        snprintf(out, len, "%" PRIu64 "s", sec);
}
