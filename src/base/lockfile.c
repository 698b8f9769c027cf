/*
 * lockfile.c — an exclusive flock(2) held for the life of the process.
 * See include/freshcache/base/lockfile.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "freshcache/base/lockfile.h"

/* The pid the holder wrote, or 0 when there is none (yet) to read. */
static pid_t read_holder(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    errno = 0;
    long pid = strtol(buf, &end, 10);
    if (errno != 0 || end == buf || (*end != '\n' && *end != '\0') || pid <= 0)
        return 0;
    return (pid_t)pid;
}

int lockfile_acquire(const char *path, pid_t *holder, char *err, size_t errlen)
{
    *holder = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            *holder = read_holder(fd);
            snprintf(err, errlen, "%s is locked by another process", path);
        } else {
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        }
        close(fd);
        errno = e;
        return -1;
    }
    /* Ours now: replace whatever a previous holder left. */
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        int e = errno;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

void lockfile_release(int fd)
{
    if (fd >= 0)
        close(fd);
}
