/*
 * config_check.h — judging a loaded config against what it will meet:
 * this version's abilities, the file system, and the config already
 * running.  config.c reads a file; these say whether starting (or
 * reloading) with it can work, so `freshcached -t` refuses what a start
 * would refuse, with the same FILE:LINE:COLUMN positions.
 *
 * Each check appends one "FILE:LINE:COLUMN: message" per problem to `errs`
 * (config_error_at) and returns how many it found.
 */
#ifndef FRESHCACHE_CONFIG_CHECK_H
#define FRESHCACHE_CONFIG_CHECK_H

#include <stddef.h>

#include "freshcache/config/config.h"

/* The directories and files a start needs, as far as they can be judged
 * without starting: state_dir and the admin socket's directory exist or
 * can be created (their parent exists), the admin socket's path is not
 * some other kind of file, the access log's directory exists.  Permissions
 * are not judged: -t may run as another user than the daemon (root, or an
 * operator in its group).  Checked by -t and at start. */
size_t config_check_paths(const struct fc_config *cfg, struct config_errors *errs);

/* The settings `next` changes that a reload cannot apply to a daemon
 * started with `running` (threads, memory, files and sockets set up at
 * start): their dotted names into keys[], at most `max`; returns how many. */
#define CONFIG_RESTART_KEYS_MAX 16
size_t config_restart_keys(const struct fc_config *running, const struct fc_config *next,
                           const char **keys, size_t max);

#endif
