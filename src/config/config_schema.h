/*
 * config_schema.h — the config loader's internals, shared by the files that
 * read freshcache.yaml's sections (config.c: the walk, the value syntaxes
 * and the plain sections; config_listen.c, config_cluster.c,
 * config_policy.c: the sections with rules of their own).  Not a public
 * header: only src/config/config*.c include it.
 *
 * A section is read by walking its YAML mapping against a table of fields
 * (key -> handler).  A handler reports a problem with error_at() at the
 * node's line and column and returns; the walk goes on, so one
 * `freshcached -t` shows every mistake.
 */
#ifndef FRESHCACHE_CONFIG_SCHEMA_H
#define FRESHCACHE_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <yaml.h>

#include "freshcache/config/config.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* Short texts for messages.  Returned by value so they can be used inline in
 * a printf argument list (C11 gives the temporary's array a lifetime up to
 * the end of the full expression). */
struct text {
    char s[96];
};

/* What the operator wrote instead, for "expected X, got Y" messages.  Its
 * own type: it holds a quoted() text and more. */
struct description {
    char s[sizeof(struct text) + 16];
};

/* State of one load.  Lives on config_load_string()'s stack. */
struct policy_nodes;

struct loader {
    const char *name;               /* file name used in messages */
    struct config_errors *errs;     /* may be NULL: errors are then only counted */
    size_t n_errors;                /* found by this load */
    yaml_document_t *doc;
    struct fc_config *cfg;

    const yaml_node_t *key;         /* key of the value being handled */
    const yaml_node_t *origin_tls;  /* origin.tls, where a lone certificate or key is reported */

    /* Remembered for the checks that run after the walk. */
    const yaml_node_t *origin_key;
    bool origin_url_seen;           /* or reported as part of a broken origin */
    bool listen_seen;
    const yaml_node_t *max_object_size_node;
    bool cache_ok;                  /* cache section read without error */
    struct policy_nodes *policy;    /* the policy being read */
    char *cluster_file_password;    /* read from cluster.password_file (owned) */
    const yaml_node_t *cluster_password_file_node;
};

/* ---- the schema: for each mapping a table of key -> handler.  A handler
 * gets the value node and the object the table's offsets are relative to. */

struct field;
typedef void field_fn(struct loader *ld, const struct field *f, const char *path,
                      const yaml_node_t *val, void *obj);

struct choice {
    const char *word;
    int value;
};

struct field {
    const char *key;
    field_fn *fn;
    size_t off;                     /* target inside obj */
    const struct choice *choices;   /* field_enum: NULL-terminated */
    const struct field *sub;        /* field_section: the nested table */
    size_t n_sub;
    uint64_t min, max;              /* sizes, durations, numbers; max 0 = none */
};

#define TARGET(obj, f, type) ((type *)(void *)((char *)(obj) + (f)->off))
#define SECTION(table) .sub = table, .n_sub = FC_ARRAY_LEN(table)
#define CFG(member) offsetof(struct fc_config, member)

/* Walk a mapping against `fields`; false when `node` is not a mapping
 * (reported). */
bool walk_mapping(struct loader *ld, const char *path, const yaml_node_t *node,
                  const struct field *fields, size_t n_fields, void *obj);

/* ---- handlers for plain values (config.c) ---- */
field_fn field_string, field_size, field_duration, field_bool, field_enum, field_unsigned,
    field_section, field_hostname;
/* A file's path, made absolute against the config file's directory. */
field_fn field_path;
/* A duration into *ms: true when it was read (not null, no error). */
bool read_duration(struct loader *ld, const struct field *f, const char *path,
                   const yaml_node_t *val, uint64_t *ms);

/* A list of values, or one as a plain string: `add` for each, its path
 * "PATH[i]" (or PATH for the lone string).  The count, for allocating
 * before the walk, is list_count(). */
typedef void item_fn(struct loader *ld, const char *path, const yaml_node_t *val, void *ctx);
size_t list_count(const yaml_node_t *val);
void for_each_item(struct loader *ld, const char *path, const yaml_node_t *val, item_fn *add,
                   void *ctx);

/* ---- nodes ---- */
const yaml_node_t *node_at(const struct loader *ld, int index);
const char *scalar_text(const yaml_node_t *n);
/* `key:` with nothing after it, `~` or `null`. */
bool is_null(const yaml_node_t *n);
struct description describe(const yaml_node_t *n);
/* The text of a single-value node, or NULL (reported). */
const char *get_scalar(struct loader *ld, const char *path, const yaml_node_t *n);

/* ---- errors ---- */
void error_at(struct loader *ld, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void error_at_mark(struct loader *ld, size_t line0, size_t column0, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A value for a message, quoted, control bytes escaped, long ones cut. */
struct text quoted(const char *v);
void quote_into(char *out, size_t size, const char *v, char quote);

/* ---- values and memory (out of memory stops the daemon) ---- */
bool parse_digits(const char **sp, uint64_t *out);
void *xcalloc(size_t n, size_t size);
char *xstrdup(const char *s);
/* Replace the string a field owns with a copy of `s`. */
void set_string(char **field, const char *s);

/* ---- the sections with files of their own ---- */

/* config_listen.c: listen (addresses, TLS certificates and versions) and
 * trusted_proxies. */
field_fn field_listen, field_trusted_proxies;
/* "ADDRESS:PORT" or "[V6]:PORT" into *ss: NULL, or why not. */
const char *parse_listen_address(const char *s, struct sockaddr_storage *ss, socklen_t *len);
void free_cert(struct fc_tls_cert *c);
void free_listen_tls(struct fc_listen_tls *t);

/* config_cluster.c: the cluster section (its own table). */
field_fn field_cluster;

/* config_policy.c: the policies list and what one policy owns. */
field_fn field_policies;
void policy_free(struct fc_policy *p);

#endif
