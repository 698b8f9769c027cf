/*
 * listener.h — a worker's listening sockets, and what an accepted
 * connection becomes.
 *
 * Every worker binds its own socket to each configured address
 * (SO_REUSEPORT), so the kernel spreads connections between workers
 * without a shared accept lock.  An accepted connection is counted against
 * limits.max_connections, handed to the least loaded worker when the
 * kernel's spread left the accepting one busier by a margin (listener.c,
 * "Accept balancing"), wrapped in its transport and given to its protocol
 * front end.
 */
#ifndef FRESHCACHE_LISTENER_H
#define FRESHCACHE_LISTENER_H

struct fc_listen;
struct worker;

/* Open every configured address on `w`.  Worker 0 first checks that no
 * other socket holds an address (a second daemon).  0, or -1 (logged). */
int listeners_open(struct worker *w);
/* On the worker's own thread after a reload: open the config's new
 * addresses, close the ones it no longer has (connections stay). */
void listeners_sync(struct worker *w);
/* Stop accepting on every address of `w`. */
void listeners_close(struct worker *w);
/* Shutdown: close the sockets other workers handed `w` that it did not
 * take, and free its hand-off queue. */
void listeners_free_handoffs(struct worker *w);
/* Shutdown: free the TLS connections still in their handshake. */
void listeners_free_handshakes(struct worker *w);
/* Can `l` be bound, or is it held by some other socket?  0 or -1 (errno). */
int listener_probe(const struct fc_listen *l);

#endif
