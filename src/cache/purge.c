/*
 * purge.c — the matchers behind purges by URL, prefix and tag.  See
 * include/freshcache/cache/purge.h.
 */
#include <string.h>
#include <strings.h>

#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/purge.h"

/* The path+query part of an object's key (the key is host then path). */
static const char *obj_path(const struct cache_obj *o)
{
    const char *slash = memchr(o->key, '/', o->key_len);
    return slash ? slash : o->key + o->key_len;
}

static bool match_url(const struct cache_obj *o, const void *arg)
{
    const char *url = arg;
    if (url[0] == '/')
        return strcmp(obj_path(o), url) == 0;
    /* absolute: http://host/path — compare host and path */
    const char *auth = strstr(url, "://");
    if (auth == NULL)
        return false;
    auth += 3;
    size_t hl = strcspn(auth, "/");
    const char *path = auth[hl] ? auth + hl : "/";
    size_t ohl = (size_t)(obj_path(o) - o->key);
    return ohl == hl && strncasecmp(o->key, auth, hl) == 0 && strcmp(obj_path(o), path) == 0;
}

static bool match_prefix(const struct cache_obj *o, const void *arg)
{
    const char *prefix = arg;
    return strncmp(obj_path(o), prefix, strlen(prefix)) == 0;
}

static bool match_tag(const struct cache_obj *o, const void *arg)
{
    const char *tag = arg;
    for (const char *t = o->tags; t && t < o->tags + o->tags_len; t += strlen(t) + 1)
        if (strcmp(t, tag) == 0)
            return true;
    return false;
}

static bool match_all(const struct cache_obj *o, const void *arg)
{
    (void)o;
    (void)arg;
    return true;
}

unsigned purge_apply(struct cache_store *s, enum purge_kind kind, const char *arg, bool soft)
{
    static const store_match_fn fns[] = { match_url, match_prefix, match_tag, match_all };
    FC_ASSERT((unsigned)kind < FC_ARRAY_LEN(fns));
    FC_ASSERT(kind == PURGE_ALL || arg != NULL);
    return store_purge(s, fns[kind], arg, soft);
}
