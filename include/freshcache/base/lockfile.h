/*
 * lockfile.h — an exclusive lock held for the life of the process.
 *
 * freshcached locks STATE_DIR/freshcached.lock so that two daemons never
 * share a state directory: both would write the generation file, and the
 * one that bumps last would make the other's next start go backwards.
 *
 * flock(2) rather than a pid file checked by hand: the kernel drops the
 * lock when the holder exits, however it exits, so a crash never leaves a
 * stale lock behind.  The holder's pid is written into the file only to
 * name it in the refusal message.
 */
#ifndef FRESHCACHE_LOCKFILE_H
#define FRESHCACHE_LOCKFILE_H

#include <stddef.h>
#include <sys/types.h>

/* Create `path` if needed, lock it exclusively without waiting and write
 * our pid into it.  Returns the descriptor to keep open (close-on-exec).
 * -1 on failure, with a message in err and errno set; errno is
 * EWOULDBLOCK when another process holds the lock, and *holder is then its
 * pid (0 if it has not written it yet). */
int lockfile_acquire(const char *path, pid_t *holder, char *err, size_t errlen);

/* Drop the lock (the file stays: removing it would race with a process
 * that has just opened it). */
void lockfile_release(int fd);

#endif
