/*
 * config_cluster.c — the cluster section: the Redis address and password
 * (inline or from a file), the cluster's and this node's names, and what
 * to do when Redis is gone.  Read through the schema in config_schema.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freshcache/base/assert.h"
#include "freshcache/config/config.h"
#include "freshcache/config/redis_url.h"
#include "config_schema.h"

/* Cluster and node names go into Redis key names, JSON and log lines: keep
 * them to characters that need no quoting anywhere (no '{' or '}' either,
 * which would break the keys' hash tag). */
static bool valid_cluster_word(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

static void field_cluster_word(struct loader *ld, const struct field *f, const char *path,
                               const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);

    if (s == NULL)
        return;
    if (!valid_cluster_word(s))
        error_at(ld, val, "%s: invalid name %s (use up to 64 letters, digits, '-', '_' and '.')",
                 path, quoted(s).s);
    else
        set_string(TARGET(obj, f, char *), s);
}

/* The address may hold a password: messages never quote it. */
static void field_cluster_redis(struct loader *ld, const struct field *f, const char *path,
                                const yaml_node_t *val, void *obj)
{
    struct fc_cluster *c = TARGET(obj, f, struct fc_cluster);
    const char *s = get_scalar(ld, path, val);
    char buf[128];

    if (s == NULL)
        return;
    set_string(&c->redis, s);
    const char *why = redis_url_parse(s, &c->url, buf, sizeof buf);
    if (why != NULL)
        error_at(ld, val, "%s: invalid Redis address: %s (use e.g. redis://127.0.0.1:6379/0 "
                 "or unix:///run/redis/redis.sock)", path, why);
}

/* The password on the file's first line; a final newline is not part of it. */
static void field_cluster_password_file(struct loader *ld, const struct field *f,
                                        const char *path, const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);
    char buf[1024];

    if (s == NULL)
        return;
    set_string(TARGET(obj, f, char *), s);
    ld->cluster_password_file_node = val;
    FILE *fp = fopen(s, "re");
    if (fp == NULL) {
        error_at(ld, val, "%s: cannot read %s: %s", path, quoted(s).s, strerror(errno));
        return;
    }
    size_t n = fread(buf, 1, sizeof buf, fp);
    bool too_long = n == sizeof buf, failed = ferror(fp);
    fclose(fp);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (failed)
        error_at(ld, val, "%s: cannot read %s", path, quoted(s).s);
    else if (too_long)
        error_at(ld, val, "%s: %s is too long for a password file", path, quoted(s).s);
    else if (n == 0)
        error_at(ld, val, "%s: %s is empty", path, quoted(s).s);
    else if (memchr(buf, '\n', n) != NULL || memchr(buf, '\0', n) != NULL)
        error_at(ld, val, "%s: %s must hold the password alone on one line", path, quoted(s).s);
    else {
        free(ld->cluster_file_password);
        ld->cluster_file_password = xcalloc(1, n + 1);
        memcpy(ld->cluster_file_password, buf, n);
    }
    explicit_bzero(buf, sizeof buf);
}

static const struct choice on_disconnect_choices[] = {
    { "revalidate", ON_DISCONNECT_REVALIDATE }, { "serve", ON_DISCONNECT_SERVE }, { NULL, 0 },
};

static const struct field cluster_fields[] = {
    { .key = "redis",          .fn = field_cluster_redis,         .off = CFG(cluster) },
    { .key = "password_file",  .fn = field_cluster_password_file,
      .off = CFG(cluster.password_file) },
    { .key = "name",           .fn = field_cluster_word,    .off = CFG(cluster.name) },
    { .key = "node",           .fn = field_cluster_word,    .off = CFG(cluster.node) },
    { .key = "ack_timeout",    .fn = field_duration,        .off = CFG(cluster.ack_timeout_ms),
      .min = 1 },
    { .key = "max_disconnect", .fn = field_duration,        .off = CFG(cluster.max_disconnect_ms) },
    { .key = "on_disconnect",  .fn = field_enum,            .off = CFG(cluster.on_disconnect),
      .choices = on_disconnect_choices },
};

/* What needs the whole section: the address is required, the password is
 * given once, the node name defaults to the host's. */
void field_cluster(struct loader *ld, const struct field *f, const char *path,
                   const yaml_node_t *val, void *obj)
{
    (void)f;
    struct fc_cluster *c = &((struct fc_config *)obj)->cluster;
    size_t before = ld->n_errors;

    c->enabled = true;
    if (!walk_mapping(ld, path, val, cluster_fields, FC_ARRAY_LEN(cluster_fields), obj) || ld->n_errors != before)
        return;
    if (c->redis == NULL) {
        error_at(ld, val, "%s.redis is required: the Redis address, e.g. "
                 "redis://127.0.0.1:6379/0", path);
        return;
    }
    if (ld->cluster_file_password != NULL) {
        if (c->url.password != NULL) {
            error_at(ld, ld->cluster_password_file_node, "%s.password_file: the password is "
                     "also in %s.redis; give it in one place", path, path);
            return;
        }
        c->url.password = ld->cluster_file_password;
        ld->cluster_file_password = NULL;
    }
    c->redis_display = redis_url_display(&c->url);
    if (c->node == NULL) {
        char host[256] = "";
        if (gethostname(host, sizeof host - 1) != 0 || !valid_cluster_word(host))
            error_at(ld, ld->key, "%s.node: the host name %s is not usable as a node name; "
                     "set %s.node", path, quoted(host).s, path);
        else
            c->node = xstrdup(host);
    }
}
