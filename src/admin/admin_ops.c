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
#include "freshcache/server/worker.h"
#include "freshcache/base/assert.h"
#include "freshcache/cache/cache_store.h"
#include "freshcache/cache/generation.h"
#include "freshcache/config/config_check.h"
#include "freshcache/cache/purge.h"

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

unsigned ops_purge(struct server *srv, enum purge_kind kind, const char *arg, bool soft)
{
    unsigned n = purge_apply(srv->store, kind, arg, soft);
    atomic_fetch_add(&srv->purges, 1);
    return n;
}

void ops_cluster_purge(struct server *srv, struct cluster *cl, const struct cluster_purge *p,
                       cluster_done_fn done, void *arg)
{
    atomic_fetch_add(&srv->purges, 1);
    cluster_purge(cl, p, done, arg);
}

int ops_nodes(struct cluster *cl, const struct cluster_node **nodes, size_t *n, char *err,
              size_t errlen)
{
    return cluster_nodes(cl, nodes, n, err, errlen);
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

unsigned ops_workers(struct server *srv)
{
    return srv->n_workers;
}

unsigned ops_worker_connections(struct server *srv, unsigned i)
{
    FC_ASSERT(i < srv->n_workers);
    return atomic_load_explicit(&srv->workers[i].n_conns, memory_order_relaxed);
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
