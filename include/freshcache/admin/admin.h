/*
 * admin.h — the admin API: HTTP/1.1 with JSON bodies over a Unix socket
 * (see ../../docs/admin-api.md and the spec's Admin API table).
 *
 * Runs on the main thread's event loop, apart from the workers, so a slow
 * admin client never delays traffic.  The socket is created with
 * admin.mode; a stale socket file left by a crashed run is replaced, but a
 * socket some live process still answers on is not stolen.
 */
#ifndef FRESHCACHE_ADMIN_H
#define FRESHCACHE_ADMIN_H

#include <stddef.h>

struct event_base;
struct server;
struct admin;
struct cluster;

struct admin *admin_start(struct server *srv, struct event_base *base, char *err, size_t errlen);
void admin_stop(struct admin *a);
/* With `cluster:`: purges go to the cluster, and GET /nodes answers. */
void admin_set_cluster(struct admin *a, struct cluster *cl);

#endif
