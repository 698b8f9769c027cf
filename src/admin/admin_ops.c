/*
 * admin_ops.c — the effects behind the admin API.  See admin_ops.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "freshcache/admin/admin_ops.h"
#include "freshcache/server/tls.h"
#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/generation.h"
#include "freshcache/config/config_check.h"

int ops_purge_generation(struct server *srv, const char *policy, uint64_t *now, uint64_t *prev,
                         char *err, size_t errlen)
{
    if (generation_bump(srv->gens, policy, now, prev, err, errlen) != 0)
        return -1;
    /* The caller (admin.c) logs it, with who asked. */
    atomic_fetch_add(&srv->purges, 1);
    return 0;
}

void ops_generation(struct server *srv, struct gen_state *out)
{
    generation_snapshot(srv->gens, out);
}

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

unsigned ops_purge(struct server *srv, enum purge_kind kind, const char *arg, bool soft)
{
    static const store_match_fn fns[] = { match_url, match_prefix, match_tag };
    FC_ASSERT((unsigned)kind < FC_ARRAY_LEN(fns));
    unsigned n = store_purge(srv->store, fns[kind], arg, soft);
    atomic_fetch_add(&srv->purges, 1);
    return n;
}

void ops_stats(struct server *srv, struct ops_stats *out)
{
    memset(out, 0, sizeof *out);
    server_sum_counters(srv, &out->counters);
    struct store_stats st;
    store_get_stats(srv->store, &st);
    out->objects = st.objects;
    out->bytes = st.bytes;
    out->max_bytes = st.max_bytes;
    out->evictions = st.evictions;
    out->purges = atomic_load(&srv->purges);
    out->generation = generation_global(srv->gens);
    out->generation_changed_ms = generation_changed_ms(srv->gens);
    out->uptime_seconds = (uint64_t)(time(NULL) - srv->started);
    out->connections = atomic_load(&srv->n_clients);
}

size_t ops_tls_certs(struct server *srv, const struct tls_cert_info **out)
{
    return tls_config_certs(srv->tls, out);
}

int ops_reload(struct server *srv, char *err, size_t errlen)
{
    return server_reload(srv, err, errlen);
}

size_t ops_restart_pending(struct server *srv, const char **keys, size_t max)
{
    /* A reload keeps every replaced config until exit, the first one being
     * the config the daemon started with (server.h). */
    const struct fc_config *started = srv->n_old_cfgs ? srv->old_cfgs[0] : srv->cfg;
    return config_restart_keys(started, srv->cfg, keys, max);
}
