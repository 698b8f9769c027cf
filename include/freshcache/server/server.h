/*
 * server.h — starting, reloading and stopping the server (the state it
 * owns is runtime.h).  The top of the server layer: main.c and the admin
 * layer call these; nothing below calls up into them.
 */
#ifndef FRESHCACHE_SERVER_H
#define FRESHCACHE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "freshcache/server/counters.h"
#include "freshcache/server/runtime.h"

/* Create the store and workers, bind every listener, start the threads.
 * -1 on error (logged). */
int server_start(struct server *srv, struct fc_config *cfg);
/* Stop accepting; let in-flight responses finish up to `drain_ms`; join. */
void server_stop(struct server *srv, uint64_t drain_ms);
void server_free(struct server *srv);
/* Re-read the config file and apply it (see docs/operating.md for what
 * needs a restart).  0, or -1 with the first error in err. */
int server_reload(struct server *srv, char *err, size_t errlen);
/* Reclaim memory of purged generations: called periodically. */
void server_sweep(struct server *srv);
/* What a start would refuse beyond the config's syntax (certificates and
 * keys that do not load or match, CA files): 0, or -1 with
 * FILE:LINE:COLUMN lines appended to errs.  For `freshcached -t`. */
struct config_errors;
int server_check_config(const struct fc_config *cfg, struct config_errors *errs);
/* A new session-ticket key (the previous one still decrypts). */
void server_rotate_tickets(struct server *srv);
/* Certificates expiring within this many days are logged at start and
 * reload. */
#define TLS_EXPIRY_WARN_DAYS 14
/* The counters of every worker, summed. */
void server_sum_counters(struct server *srv, struct counters *out);

#endif
