/*
 * config_check.c — a loaded config against what it will meet: this
 * version's abilities, the file system, the config already running.
 * See include/freshcache/config/config_check.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "freshcache/base/assert.h"
#include "freshcache/config/config_check.h"

/* The directory part of `path` ("." for a bare name) into out. */
static void dir_of(const char *path, char *out, size_t len)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        snprintf(out, len, ".");
    else if (slash == path)
        snprintf(out, len, "/");
    else
        snprintf(out, len, "%.*s", (int)(slash - path), path);
}

/* What is wrong with `dir` as a directory that must exist ("does not
 * exist"), or NULL when nothing is, or when we cannot tell (EACCES: the
 * daemon's user may well see it). */
static const char *missing_dir(const char *dir, char *why, size_t len)
{
    struct stat st;

    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return NULL;
        snprintf(why, len, "is not a directory");
        return why;
    }
    if (errno == ENOENT)
        snprintf(why, len, "does not exist");
    else if (errno == ENOTDIR)
        snprintf(why, len, "has a part that is not a directory");
    else
        return NULL;
    return why;
}

/* The same for a directory the daemon creates when it is missing (mkdir,
 * not mkdir -p): it must be a directory, or its parent must be one. */
static const char *uncreatable_dir(const char *dir, char *why, size_t len)
{
    struct stat st;
    char parent[PATH_MAX], inner[64];

    if (stat(dir, &st) == 0 || errno != ENOENT)
        return missing_dir(dir, why, len);
    dir_of(dir, parent, sizeof parent);
    if (missing_dir(parent, inner, sizeof inner) == NULL)
        return NULL;
    snprintf(why, len, "cannot be created: its parent %s %s", parent, inner);
    return why;
}

/* " (the default)" when `path` was left out of the file. */
static const char *if_default(const struct fc_config *cfg, const char *path)
{
    return config_written(cfg, path) ? "" : " (the default)";
}

size_t config_check_paths(const struct fc_config *cfg, struct config_errors *errs)
{
    char dir[PATH_MAX], why[PATH_MAX + 128];
    size_t n = 0;
    struct stat st;

    if (uncreatable_dir(cfg->state_dir, why, sizeof why) != NULL) {
        config_error_at(cfg, "state_dir", errs, "state_dir: %s%s %s", cfg->state_dir,
                        if_default(cfg, "state_dir"), why);
        n++;
    }

    const char *sock = cfg->admin.socket;
    dir_of(sock, dir, sizeof dir);
    if (uncreatable_dir(dir, why, sizeof why) != NULL) {
        config_error_at(cfg, "admin.socket", errs, "admin.socket: %s%s: its directory %s %s",
                        sock, if_default(cfg, "admin.socket"), dir, why);
        n++;
    } else if (lstat(sock, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        /* The daemon replaces a stale socket, never anything else. */
        config_error_at(cfg, "admin.socket", errs, "admin.socket: %s exists and is not a "
                        "socket; freshcached does not replace it", sock);
        n++;
    }

    const char *access = cfg->log.access;
    if (strcmp(access, "stdout") != 0 && strcmp(access, "off") != 0) {
        dir_of(access, dir, sizeof dir);
        if (missing_dir(dir, why, sizeof why) != NULL) {
            config_error_at(cfg, "log.access", errs, "log.access: %s: its directory %s %s",
                            access, dir, why);
            n++;
        } else if (stat(access, &st) == 0 && S_ISDIR(st.st_mode)) {
            config_error_at(cfg, "log.access", errs, "log.access: %s is a directory; give a "
                            "file name", access);
            n++;
        }
    }
    return n;
}

static bool same_string(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

size_t config_restart_keys(const struct fc_config *running, const struct fc_config *next,
                           const char **keys, size_t max)
{
    /* What threads, memory, files and sockets set up at start depend on. */
    const struct {
        const char *key;
        bool changed;
    } fixed[] = {
        { "workers", running->workers != next->workers },
        { "cache.memory", running->cache.memory != next->cache.memory },
        { "state_dir", !same_string(running->state_dir, next->state_dir) },
        { "admin.socket", !same_string(running->admin.socket, next->admin.socket) },
        { "admin.mode", running->admin.mode != next->admin.mode },
        { "log.access", !same_string(running->log.access, next->log.access) },
        { "metrics.listen", !same_string(running->metrics.listen, next->metrics.listen) },
    };
    _Static_assert(FC_ARRAY_LEN(fixed) <= CONFIG_RESTART_KEYS_MAX, "CONFIG_RESTART_KEYS_MAX");
    size_t n = 0;

    for (size_t i = 0; i < FC_ARRAY_LEN(fixed); i++)
        if (fixed[i].changed && n < max)
            keys[n++] = fixed[i].key;
    return n;
}
