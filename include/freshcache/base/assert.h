/*
 * assert.h — invariant checks that stay on in release builds.
 *
 * Following Varnish's vas.h/miniobj.h: every long-lived object carries a
 * `magic` field checked on each use, so a use-after-free or a wrong cast
 * aborts at the first touch instead of corrupting the cache silently.
 * A failed check is a bug in freshcache, never a reaction to input: input
 * errors take the ordinary error paths.
 */
#ifndef FRESHCACHE_ASSERT_H
#define FRESHCACHE_ASSERT_H

#include <stdlib.h>

_Noreturn void fc_panic(const char *file, int line, const char *func, const char *cond);

#define FC_ASSERT(c) \
    do { if (__builtin_expect(!(c), 0)) fc_panic(__FILE__, __LINE__, __func__, #c); } while (0)
/* AN: "assert non-zero", AZ: "assert zero" — for return codes that cannot fail. */
#define AN(x) FC_ASSERT((x) != 0)
#define AZ(x) FC_ASSERT((x) == 0)
#define WRONG(msg) fc_panic(__FILE__, __LINE__, __func__, msg)

#define CHECK_OBJ(p, m)          FC_ASSERT((p)->magic == (m))
#define CHECK_OBJ_NOTNULL(p, m)  do { FC_ASSERT((p) != NULL); CHECK_OBJ(p, m); } while (0)

#define FC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
