/*
 * warn_once.h — "log this once per URL" in bounded memory.
 *
 * A direct-mapped set of the last WARN_ONCE_SLOTS hashes seen: the first
 * time a hash is offered it is remembered and the caller logs; offered
 * again while still remembered, the caller stays quiet.  A hash pushed out
 * by another that maps to the same slot is reported again later, which is
 * the price of a fixed 2 KiB: an attacker sending a million URLs gets at
 * most one line each, never unbounded memory.  Shared by every worker:
 * each slot is swapped atomically, so two threads offering the same new
 * hash at once log it once (one of them sees the other's).  Hash 0 is
 * never remembered (the empty slot): it is always "first".
 */
#ifndef FRESHCACHE_WARN_ONCE_H
#define FRESHCACHE_WARN_ONCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define WARN_ONCE_SLOTS 256

struct warn_once {
    _Atomic uint64_t slot[WARN_ONCE_SLOTS];
};

/* true when `hash` is not remembered (log now); it is remembered after. */
bool warn_once_first(struct warn_once *w, uint64_t hash);

#endif
