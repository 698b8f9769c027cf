/*
 * main.c — freshcached: command line, config, signals, readiness.
 *
 *   freshcached [-c FILE] [-t] [--version] [--help]
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "build_config.h"
#include "freshcache/server/access_log.h"
#include "freshcache/admin/admin.h"
#include "freshcache/base/lockfile.h"
#include "freshcache/cache/etag.h"
#include "freshcache/cache/generation.h"
#include "freshcache/cluster/cluster.h"
#include "freshcache/config/config.h"
#include "freshcache/config/config_check.h"
#include "freshcache/base/log.h"
#include "freshcache/server/server.h"
#include "freshcache/server/tls.h"

#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#define NOTIFY(...) sd_notifyf(0, __VA_ARGS__)
#else
#define NOTIFY(...) ((void)0)
#endif

/* How often purged generations' memory is swept (store_sweep). */
#define SWEEP_INTERVAL_MS 100

/* In state_dir: held (flock) for the daemon's lifetime, see lock_state_dir. */
#define STATE_LOCK_NAME "freshcached.lock"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: freshcached [-c FILE] [-t] [--version] [--help]\n"
            "\n"
            "  -c, --config FILE    configuration file (default %s)\n"
            "  -t, --check-config   validate the configuration, print OK or errors, exit\n"
            "      --version        print the version and exit\n"
            "  -h, --help           this help\n"
            "\n"
            "Signals: HUP reload, TERM/INT graceful stop, USR1 reopen logs.\n",
            FRESHCACHE_DEFAULT_CONFIG);
}

static void print_errors(const struct config_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->lines[i]);
}

/* Everything that would make a start with `cfg` fail and can be known
 * without starting, so that -t refuses what the start would: settings
 * this version cannot serve, missing directories, an unreadable state
 * file.  Not tried: binding the addresses and taking the state_dir lock,
 * which a daemon already running with this config holds (-t runs before
 * every reload).  Returns how many problems were appended to errs. */
static size_t preflight(const struct fc_config *cfg, struct config_errors *errs)
{
    size_t before = errs->n;
    size_t n = config_check_paths(cfg, errs);
    if (server_check_config(cfg, errs) != 0)    /* certificates, keys, CA files */
        n++;
    char err[PATH_MAX + 128];
    if (generation_file_check(cfg->state_dir, err, sizeof err) != 0) {
        config_error_at(cfg, "state_dir", errs, "state_dir: %s", err);
        n++;
    }
    if (etag_history_check(cfg->state_dir, err, sizeof err) != 0) {
        config_error_at(cfg, "state_dir", errs, "state_dir: %s", err);
        n++;
    }
    config_errors_sort(errs, before, cfg->path);
    return n;
}

/* Two daemons on one state_dir would both write the generation file, and
 * the one that bumps last would make the other's next start go backwards:
 * hold an exclusive lock on it for our lifetime (lockfile.h).  state_dir
 * is created here, because the lock must be held before the generation is
 * read.  The descriptor to keep open, or -1 (logged). */
static int lock_state_dir(const char *state_dir)
{
    if (mkdir(state_dir, 0750) != 0 && errno != EEXIST) {
        log_error("cannot create state_dir %s: %s", state_dir, strerror(errno));
        return -1;
    }
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/" STATE_LOCK_NAME, state_dir) >= sizeof path) {
        log_error("state_dir %s: path too long", state_dir);
        return -1;
    }
    char err[PATH_MAX + 64];
    pid_t holder;
    int fd = lockfile_acquire(path, &holder, err, sizeof err);
    if (fd >= 0)
        return fd;
    if (errno != EWOULDBLOCK)
        log_error("state_dir %s: %s", state_dir, err);
    else if (holder > 0)
        log_error("state_dir %s is in use by another freshcached (pid %ld, holding %s); "
                  "two daemons must not share a state_dir", state_dir, (long)holder, path);
    else
        log_error("state_dir %s is in use by another freshcached (holding %s); two daemons "
                  "must not share a state_dir", state_dir, path);
    return -1;
}

struct main_ctx {
    struct server srv;
    struct event_base *base;
    struct admin *admin;
    struct cluster *cluster;        /* cluster: in the config, else NULL */
};

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct main_ctx *m = arg;
    log_info("received %s: stopping (draining for up to %llu ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
             (unsigned long long)m->srv.cfg->limits.drain_timeout_ms);
    NOTIFY("STOPPING=1");
    event_base_loopbreak(m->base);
}

static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct main_ctx *m = arg;
#if HAVE_LIBSYSTEMD
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
#endif
    char err[1024];
    if (server_reload(&m->srv, err, sizeof err) != 0)
        log_error("SIGHUP: configuration refused, the old one keeps serving");
    NOTIFY("READY=1");
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct main_ctx *m = arg;
    server_sweep(&m->srv);
}

/* SIGUSR1: logrotate moved the access log; the error log is stderr. */
/* Session-ticket keys rotate: a stolen key opens at most two periods of
 * sessions, and every worker shares the ring so a session resumes on any. */
static void on_rotate_tickets(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct main_ctx *m = arg;
    server_rotate_tickets(&m->srv);
    log_info("TLS session-ticket key rotated");
}

static void on_usr1(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct main_ctx *m = arg;
    char err[512];
    if (access_log_reopen(&m->srv, err, sizeof err) != 0)
        log_error("SIGUSR1: %s", err);
    else
        log_info("SIGUSR1: access log reopened");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, 't' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = FRESHCACHE_DEFAULT_CONFIG;
    bool check_only = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:th", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': config_path = optarg; break;
        case 't': check_only = true; break;
        case 'V': printf("freshcached %s\n", FRESHCACHE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    struct config_errors errs = { 0 };
    struct fc_config *cfg = config_load(config_path, &errs);
    if (cfg != NULL && preflight(cfg, &errs) != 0) {
        config_free(cfg);
        cfg = NULL;
    }
    if (cfg == NULL) {
        print_errors(&errs);
        config_errors_free(&errs);
        return 1;
    }
    if (check_only) {
        printf("OK\n");
        config_free(cfg);
        return 0;
    }
    log_set_level(cfg->log.level);
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() != 0) {
        log_error("libevent has no pthreads support");
        config_free(cfg);
        return 1;
    }
    int lock_fd = lock_state_dir(cfg->state_dir);
    if (lock_fd < 0) {
        config_free(cfg);
        return 1;
    }

    struct main_ctx m = { 0 };
    m.base = event_base_new();
    if (m.base == NULL) {
        log_error("cannot create the event loop");
        config_free(cfg);
        lockfile_release(lock_fd);
        return 1;
    }
    /* From here the server owns cfg (and every config a reload brings). */
    if (server_start(&m.srv, cfg) != 0) {
        server_stop(&m.srv, 0);
        server_free(&m.srv);
        event_base_free(m.base);
        lockfile_release(lock_fd);
        return 1;
    }
    char err[512];
    m.admin = admin_start(&m.srv, m.base, err, sizeof err);
    if (m.admin == NULL) {
        log_error("admin socket: %s", err);
        server_stop(&m.srv, 0);
        server_free(&m.srv);
        event_base_free(m.base);
        lockfile_release(lock_fd);
        return 1;
    }
    if (cfg->cluster.enabled) {
        /* On the admin socket's loop: purges go through it. */
        m.cluster = cluster_start(&m.srv, m.base, err, sizeof err);
        if (m.cluster == NULL) {
            log_error("cluster: %s", err);
            admin_stop(m.admin);
            server_stop(&m.srv, 0);
            server_free(&m.srv);
            event_base_free(m.base);
            lockfile_release(lock_fd);
            return 1;
        }
        admin_set_cluster(m.admin, m.cluster);
    }
    struct event *sweep = event_new(m.base, -1, EV_PERSIST, on_sweep, &m);
    struct timeval sweep_tv = { 0, SWEEP_INTERVAL_MS * 1000 };
    event_add(sweep, &sweep_tv);
    struct event *tickets = event_new(m.base, -1, EV_PERSIST, on_rotate_tickets, &m);
    struct timeval tickets_tv = { TLS_TICKET_ROTATE_SECONDS, 0 };
    event_add(tickets, &tickets_tv);
    struct event *sig_term = evsignal_new(m.base, SIGTERM, on_stop_signal, &m);
    struct event *sig_int = evsignal_new(m.base, SIGINT, on_stop_signal, &m);
    struct event *sig_hup = evsignal_new(m.base, SIGHUP, on_reload_signal, &m);
    struct event *sig_usr1 = evsignal_new(m.base, SIGUSR1, on_usr1, &m);
    event_add(sig_term, NULL);
    event_add(sig_int, NULL);
    event_add(sig_hup, NULL);
    event_add(sig_usr1, NULL);

    for (size_t i = 0; i < cfg->n_listen; i++)
        log_info("listening on %s, origin %s, %u workers", cfg->listen[i].address, cfg->origin.url,
                 m.srv.n_workers);
    NOTIFY("READY=1\nSTATUS=serving");

    event_base_dispatch(m.base);

    admin_stop(m.admin);
    cluster_stop(m.cluster);
    event_free(sweep);
    event_free(tickets);
    server_stop(&m.srv, m.srv.cfg->limits.drain_timeout_ms);
    server_free(&m.srv);
    event_free(sig_term);
    event_free(sig_int);
    event_free(sig_hup);
    event_free(sig_usr1);
    event_base_free(m.base);
    libevent_global_shutdown();
    /* Last: the state is written and nothing of ours touches it any more. */
    lockfile_release(lock_fd);
    log_info("stopped");
    return 0;
}
