/*
 * assert.c — the one place a failed invariant ends the process.  See
 * include/freshcache/base/assert.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "freshcache/base/assert.h"

_Noreturn void fc_panic(const char *file, int line, const char *func, const char *cond)
{
    fprintf(stderr, "freshcached: assertion failed: %s at %s:%d (%s)\n", cond, file, line, func);
    fflush(stderr);
    abort();
}
