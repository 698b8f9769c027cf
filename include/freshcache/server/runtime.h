/*
 * runtime.h — struct server: the process-wide state, and the one
 * documented place for global mutable state.
 *
 * A single struct server owns the config in force, the cache store, the
 * deploy generations, the content-hash history, the workers and the
 * access-log descriptor.  Everything else reaches it through the worker it
 * runs on (w->srv), never through a global variable.  This header holds
 * only the types every module of the server layer reads; the functions
 * that start, reload and stop a server are server.h, at the top of the
 * layer.
 *
 * Threading: cfg is swapped by a reload (an atomic pointer store) and read
 * by workers per use; store, gens and etag_hist are thread-safe objects;
 * the rest is written before the workers start or is atomic.
 */
#ifndef FRESHCACHE_RUNTIME_H
#define FRESHCACHE_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "freshcache/base/warn_once.h"
#include "freshcache/config/config.h"

struct cache_store;
struct generations;
struct etag_history;
struct tls_config;
struct tls_tickets;
struct worker;

struct server {
#define SERVER_MAGIC 0x5e4fe400u
    unsigned magic;
    /* The config in force.  A reload swaps the pointer; workers load it
     * per use.  Replaced configs are kept until exit (old_cfgs), because a
     * request in flight may still read one. */
    struct fc_config *_Atomic cfg;
    struct fc_config **old_cfgs;
    size_t n_old_cfgs;
    /* The TLS contexts of the config in force (server/tls.h), swapped with
     * it; replaced ones are kept until exit like old configs. */
    struct tls_config *_Atomic tls;
    struct tls_config **old_tls;
    size_t n_old_tls;
    struct tls_tickets *tickets;    /* session-ticket keys every listener shares */
    struct cache_store *store;
    struct generations *gens;       /* deploy generations (cache/generation.h) */
    struct etag_history *etag_hist; /* content-hash first-seen times (cache/etag.h) */
    _Atomic uint64_t purges;        /* purge commands served */
    struct warn_once deception_warned;  /* URLs whose deception refusal was logged */
    struct worker *workers;
    unsigned n_workers;
    _Atomic unsigned n_clients;     /* across workers, for limits.max_connections */
    time_t started;
    _Atomic bool stopping;
    int access_fd;                  /* log.access destination, -1: off */
    uint64_t trim_mark;             /* store bytes at the last memory trim (server_sweep) */
    bool trim_pending;              /* workers asked to shed their pools, trim next */
    _Atomic unsigned trim_shed;     /* ... and how many did */
};

#endif
