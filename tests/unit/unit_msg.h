/*
 * unit_msg.h — a helper the unit suites share: fields added to a message
 * from a va_list of NUL-terminated name, value pairs ending in NULL.
 */
#ifndef FRESHCACHE_UNIT_MSG_H
#define FRESHCACHE_UNIT_MSG_H

#include <stdarg.h>

#include "freshcache/http/http_msg.h"

static inline void msg_add_pairs(struct http_msg *m, va_list ap)
{
    const char *n;
    while ((n = va_arg(ap, const char *)) != NULL)
        http_msg_add_str(m, n, va_arg(ap, const char *));
}

#endif
