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
    const char *tags = obj_tags(o);
    for (const char *t = tags; t && t < tags + o->tags_len; t += strlen(t) + 1)
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

static const store_match_fn matchers[] = { match_url, match_prefix, match_tag, match_all };

unsigned purge_apply(struct cache_store *s, enum purge_kind kind, const char *arg, bool soft)
{
    FC_ASSERT((unsigned)kind < FC_ARRAY_LEN(matchers));
    FC_ASSERT(kind == PURGE_ALL || arg != NULL);
    return store_purge(s, matchers[kind], arg, soft);
}

struct batch {
    struct purge_item *items;
    size_t n;
    bool soft;                  /* which of the items this walk applies */
};

/* Does any item of this walk's kind (hard or soft) reach `o`?  Counts
 * every one that does (a placeholder still filling is purged, not
 * counted, as store_purge does).  Called by store_purge on the calling thread only,
 * so counting here needs no lock. */
static bool match_batch(const struct cache_obj *o, const void *arg)
{
    const struct batch *b = arg;
    bool hit = false;
    for (size_t i = 0; i < b->n; i++) {
        struct purge_item *it = &b->items[i];
        if (it->soft == b->soft && matchers[it->kind](o, it->arg)) {
            if (obj_ready(o))       /* as store_purge counts */
                it->count++;
            hit = true;
        }
    }
    return hit;
}

void purge_apply_batch(struct cache_store *s, struct purge_item *items, size_t n)
{
    bool any_hard = false, any_soft = false;
    for (size_t i = 0; i < n; i++) {
        FC_ASSERT(items[i].kind == PURGE_URL || items[i].kind == PURGE_PREFIX ||
                  items[i].kind == PURGE_TAG);
        AN(items[i].arg);
        items[i].count = 0;
        any_hard = any_hard || !items[i].soft;
        any_soft = any_soft || items[i].soft;
    }
    /* Hard first: what they remove, soft items need not mark. */
    struct batch hard = { items, n, false }, soft = { items, n, true };
    if (any_hard)
        store_purge(s, match_batch, &hard, false);
    if (any_soft)
        store_purge(s, match_batch, &soft, true);
}
