/*
 * config.c — load and validate freshcache.yaml.  See include/freshcache/config.h
 * and the "Config" section of the interface spec.
 *
 * libyaml's document API turns the file into a node tree that keeps the
 * line and column of every key and value.  The tree is then walked against
 * a schema made of small tables (key name -> handler).  A problem is
 * recorded as "FILE:LINE:COLUMN: message" and the walk goes on, so an
 * operator sees every mistake in one `freshcached -t` run, like a compiler.
 * Checks that involve several keys (policy order, duplicate listeners,
 * max_object_size against memory) run once their parts have been read.
 *
 * The walk follows the schema, never the tree: it descends only into keys
 * it knows, to a fixed depth.  That keeps hostile input (alias cycles such
 * as `&a [*a]`, deep nesting) from recursing without bound.
 *
 * This file holds the walk, the value syntaxes, the handlers for plain
 * values and the plain sections (workers, origin, cache, admin, log,
 * limits, metrics); listen, cluster and policies, which have rules of
 * their own, are in config_listen.c, config_cluster.c and
 * config_policy.c, all sharing config_schema.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml.h>

#include "freshcache/base/assert.h"
#include "freshcache/config/config.h"
#include "freshcache/config/hostname.h"
#include "config_schema.h"

#define MAX_WORKERS 1024
#define DEFAULT_LISTEN "127.0.0.1:8080"

/* ------------------------------------------------------------------------
 * Allocation.  The config is small and read at start or on reload; running
 * out of memory there is not an input error to report, so we stop.
 */

static _Noreturn void oom(void)
{
    fc_panic(__FILE__, __LINE__, __func__, "out of memory");
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom();
    return p;
}

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (p == NULL)
        oom();
    return p;
}

char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        oom();
    return d;
}

/* Replace the string a field owns (a default or NULL) with a copy of `s`. */
void set_string(char **field, const char *s)
{
    free(*field);
    *field = xstrdup(s);
}

/* ------------------------------------------------------------------------
 * Value syntaxes: sizes and durations.  Strict on purpose: "1KB", "1.5h",
 * "1 MiB", "-1" are rejected rather than guessed at, so a typo in a limit
 * can never turn into a surprising number.
 */

/* Read decimal digits at *sp (at least one), advancing *sp.  false on no
 * digit or on overflow. */
bool parse_digits(const char **sp, uint64_t *out)
{
    const char *p = *sp;
    uint64_t n = 0;

    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *sp = p;
    *out = n;
    return true;
}

struct unit {
    const char *suffix;
    uint64_t factor;
};

static const struct unit size_units[] = {
    { "", 1 }, { "B", 1 }, { "KiB", KiB }, { "MiB", MiB }, { "GiB", GiB },
};

/* A bare number of a duration means seconds, as in most daemons' configs. */
static const struct unit duration_units[] = {
    { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 },
    { "h", 60 * 60 * 1000 }, { "d", 24 * 60 * 60 * 1000 },
};

static int parse_number_with_unit(const char *s, const struct unit *units, size_t n_units,
                                  uint64_t *out)
{
    uint64_t n;

    if (s == NULL || !parse_digits(&s, &n))
        return -1;
    for (size_t i = 0; i < n_units; i++) {
        if (strcmp(s, units[i].suffix) == 0) {
            if (n > UINT64_MAX / units[i].factor)
                return -1;
            *out = n * units[i].factor;
            return 0;
        }
    }
    return -1;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
    return parse_number_with_unit(s, size_units, FC_ARRAY_LEN(size_units), bytes);
}

int config_parse_duration(const char *s, uint64_t *ms)
{
    return parse_number_with_unit(s, duration_units, FC_ARRAY_LEN(duration_units), ms);
}


/* A user-supplied value for a message between `quote` characters, control
 * bytes escaped and a long value cut, so a bad line can neither garble nor
 * flood the log.  '"' escapes quotes and backslashes with a backslash, as
 * in a C or YAML double-quoted string; '\'' doubles quotes and leaves
 * backslashes alone, as in a YAML single-quoted string. */
void quote_into(char *out, size_t size, const char *v, char quote)
{
    const size_t limit = size - 5;          /* room for `...'` and NUL */
    size_t o = 0;

    out[o++] = quote;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (o + 4 > limit) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (*p == (unsigned char)quote) {
            out[o++] = quote == '"' ? '\\' : quote;
            out[o++] = (char)*p;
        } else if (*p == '\\' && quote == '"') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o++] = quote;
    out[o] = '\0';
}

struct text quoted(const char *v)
{
    struct text t;
    quote_into(t.s, sizeof t.s, v, '"');
    return t;
}

/* The largest unit that expresses `v` exactly: 1048576 -> "1MiB". */
static struct text format_with_unit(uint64_t v, const struct unit *units, size_t n_units)
{
    struct text t;
    const struct unit *best = NULL;

    for (size_t i = 0; i < n_units; i++) {
        if (units[i].suffix[0] == '\0')
            continue;
        if (v % units[i].factor == 0 && (best == NULL || units[i].factor > best->factor))
            best = &units[i];
    }
    FC_ASSERT(best != NULL);
    snprintf(t.s, sizeof t.s, "%llu%s", (unsigned long long)(v / best->factor), best->suffix);
    return t;
}

#define format_size(v)     format_with_unit(v, size_units, FC_ARRAY_LEN(size_units))
#define format_duration(v) format_with_unit(v, duration_units, FC_ARRAY_LEN(duration_units))

/* ------------------------------------------------------------------------
 * Errors.
 */

void config_errors_free(struct config_errors *errs)
{
    if (errs == NULL)
        return;
    for (size_t i = 0; i < errs->n; i++)
        free(errs->lines[i]);
    free(errs->lines);
    errs->lines = NULL;
    errs->n = 0;
}

/* "NAME:LINE:COLUMN: ..." -> LINE * 2^32 + COLUMN, for sorting. */
static uint64_t error_position(const char *text, size_t name_len)
{
    unsigned long line = 0, column = 0;

    if (strlen(text) > name_len)
        sscanf(text + name_len, ":%lu:%lu:", &line, &column);
    return ((uint64_t)line << 32) | (column & 0xffffffffu);
}

static int by_position(const void *a, const void *b, void *arg)
{
    size_t name_len = *(const size_t *)arg;
    uint64_t pa = error_position(*(char *const *)a, name_len);
    uint64_t pb = error_position(*(char *const *)b, name_len);

    return pa < pb ? -1 : pa > pb;
}

void config_errors_sort(struct config_errors *errs, size_t from, const char *name)
{
    size_t name_len = strlen(name);

    if (errs != NULL && from < errs->n)
        qsort_r(errs->lines + from, errs->n - from, sizeof *errs->lines, by_position, &name_len);
}

static void errors_append(struct config_errors *errs, const char *name, size_t line,
                          size_t column, const char *fmt, va_list ap)
{
    char msg[1024];
    char *text;

    vsnprintf(msg, sizeof msg, fmt, ap);
    if (errs == NULL)
        return;
    if (asprintf(&text, "%s:%zu:%zu: %s", name, line, column, msg) < 0)
        oom();
    errs->lines = xrealloc(errs->lines, (errs->n + 1) * sizeof *errs->lines);
    errs->lines[errs->n++] = text;
}

/* `line0` and `column0` are 0-based, as libyaml counts. */
void error_at_mark(struct loader *ld, size_t line0, size_t column0, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    errors_append(ld->errs, ld->name, line0 + 1, column0 + 1, fmt, ap);
    va_end(ap);
    ld->n_errors++;
}

/* An error located at `node` (its first character), or at the start of the
 * file when there is no node (e.g. a required section that is absent). */
void error_at(struct loader *ld, const yaml_node_t *node, const char *fmt, ...)
{
    va_list ap;
    size_t line = node ? node->start_mark.line : 0;
    size_t column = node ? node->start_mark.column : 0;

    va_start(ap, fmt);
    errors_append(ld->errs, ld->name, line + 1, column + 1, fmt, ap);
    va_end(ap);
    ld->n_errors++;
}

/* ------------------------------------------------------------------------
 * Nodes.
 */

const yaml_node_t *node_at(const struct loader *ld, int index)
{
    const yaml_node_t *n = yaml_document_get_node(ld->doc, index);
    FC_ASSERT(n != NULL);
    return n;
}

const char *scalar_text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* `key:` with nothing after it, `~` or `null`: YAML's null.  A quoted ""
 * is a string, not null. */
bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = scalar_text(n);
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}


struct description describe(const yaml_node_t *n)
{
    struct description t;

    if (n->type == YAML_MAPPING_NODE)
        snprintf(t.s, sizeof t.s, "a mapping");
    else if (n->type == YAML_SEQUENCE_NODE)
        snprintf(t.s, sizeof t.s, "a list");
    else if (is_null(n))
        snprintf(t.s, sizeof t.s, "nothing");
    else
        snprintf(t.s, sizeof t.s, "the value %s", quoted(scalar_text(n)).s);
    return t;
}

/* The text of a single-value node, or NULL (error reported) when `n` is a
 * mapping or list, is empty, or hides a NUL byte that would silently cut a
 * path or header short. */
const char *get_scalar(struct loader *ld, const char *path, const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE) {
        error_at(ld, n, "%s: expected a single value, got %s", path, describe(n).s);
        return NULL;
    }
    if (is_null(n) || n->data.scalar.length == 0) {
        error_at(ld, n, "%s: missing value", path);
        return NULL;
    }
    if (strlen(scalar_text(n)) != n->data.scalar.length) {
        error_at(ld, n, "%s: value contains a NUL byte", path);
        return NULL;
    }
    return scalar_text(n);
}

/* ------------------------------------------------------------------------
 * The schema: for each mapping a table of key -> handler.  A handler gets
 * the value node and the object the table's offsets are relative to.
 */


void field_string(struct loader *ld, const struct field *f, const char *path,
                  const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);
    if (s != NULL)
        set_string(TARGET(obj, f, char *), s);
}

void field_size(struct loader *ld, const struct field *f, const char *path,
                const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);
    uint64_t v;

    if (s == NULL)
        return;
    if (config_parse_size(s, &v) != 0)
        error_at(ld, val, "%s: invalid size %s (use e.g. 256MiB)", path, quoted(s).s);
    else if (v < f->min)
        error_at(ld, val, "%s: %s is too small (at least %s)", path, quoted(s).s,
                 format_size(f->min).s);
    else if (f->max != 0 && v > f->max)
        error_at(ld, val, "%s: %s is too large (at most %s)", path, quoted(s).s,
                 format_size(f->max).s);
    else
        *TARGET(obj, f, uint64_t) = v;
}

/* Read a duration into *ms; false (error reported) if invalid.  Shared by
 * plain duration fields and the policy fields that also record that they
 * were given. */
bool read_duration(struct loader *ld, const struct field *f, const char *path,
                   const yaml_node_t *val, uint64_t *ms)
{
    const char *s = get_scalar(ld, path, val);
    uint64_t v;

    if (s == NULL)
        return false;
    if (config_parse_duration(s, &v) != 0) {
        error_at(ld, val, "%s: invalid duration %s (use e.g. 250ms, 30s, 5m, 1h or 365d)",
                 path, quoted(s).s);
        return false;
    }
    if (v < f->min) {
        if (f->min == 1)
            error_at(ld, val, "%s: must be greater than 0", path);
        else
            error_at(ld, val, "%s: %s is too short (at least %s)", path, quoted(s).s,
                     format_duration(f->min).s);
        return false;
    }
    *ms = v;
    return true;
}

void field_duration(struct loader *ld, const struct field *f, const char *path,
                    const yaml_node_t *val, void *obj)
{
    read_duration(ld, f, path, val, TARGET(obj, f, uint64_t));
}

void field_bool(struct loader *ld, const struct field *f, const char *path,
                const yaml_node_t *val, void *obj)
{
    /* YAML 1.1 spellings too: configs written for other tools use them. */
    static const char *const yes[] = { "true", "yes", "on" };
    static const char *const no[] = { "false", "no", "off" };
    const char *s = get_scalar(ld, path, val);

    if (s == NULL)
        return;
    for (size_t i = 0; i < FC_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *TARGET(obj, f, bool) = true;
            return;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *TARGET(obj, f, bool) = false;
            return;
        }
    }
    error_at(ld, val, "%s: invalid boolean %s (expected true or false)", path, quoted(s).s);
}

/* Enum fields are written as int: the enums in config.h are int-sized. */
_Static_assert(sizeof(enum host_header_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum etag_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum after_purge_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum access_log_format) == sizeof(int), "enum size");
_Static_assert(sizeof(enum on_disconnect_mode) == sizeof(int), "enum size");

void field_enum(struct loader *ld, const struct field *f, const char *path,
                const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);
    char expected[256] = "";

    if (s == NULL)
        return;
    for (const struct choice *c = f->choices; c->word != NULL; c++) {
        if (strcmp(s, c->word) == 0) {
            memcpy(TARGET(obj, f, char), &c->value, sizeof c->value);
            return;
        }
    }
    /* "a, b or c" */
    for (const struct choice *c = f->choices; c->word != NULL; c++) {
        const char *sep = c == f->choices ? "" : (c + 1)->word == NULL ? " or " : ", ";
        size_t len = strlen(expected);
        snprintf(expected + len, sizeof expected - len, "%s%s", sep, c->word);
    }
    error_at(ld, val, "%s: invalid value %s (expected %s)", path, quoted(s).s, expected);
}

void field_unsigned(struct loader *ld, const struct field *f, const char *path,
                    const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);
    const char *p = s;
    uint64_t v;

    if (s == NULL)
        return;
    if (!parse_digits(&p, &v) || *p != '\0' || v < f->min || v > f->max)
        error_at(ld, val, "%s: invalid number %s (expected a whole number from %llu to %llu)",
                 path, quoted(s).s, (unsigned long long)f->min, (unsigned long long)f->max);
    else
        *TARGET(obj, f, unsigned) = (unsigned)v;
}

void field_section(struct loader *ld, const struct field *f, const char *path,
                   const yaml_node_t *val, void *obj)
{
    walk_mapping(ld, path, val, f->sub, f->n_sub, obj);
}

void field_hostname(struct loader *ld, const struct field *f, const char *path,
                    const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);

    if (s == NULL)
        return;
    if (!hostname_valid(s, strlen(s)))
        error_at(ld, val, "%s: invalid host name %s", path, quoted(s).s);
    else
        set_string(TARGET(obj, f, char *), s);
}

/* ------------------------------------------------------------------------
 * Paths and lists, for the sections.
 */

/* A path as written, made absolute against the config file's directory:
 * `certificate: site.pem` next to freshcache.yaml means that file, whatever
 * the daemon's working directory. */
static char *resolve_path(const struct loader *ld, const char *s)
{
    if (s[0] == '/' || strchr(ld->name, '/') == NULL)
        return xstrdup(s);
    const char *slash = strrchr(ld->name, '/');
    size_t dl = (size_t)(slash - ld->name);
    char *out = xcalloc(1, dl + 1 + strlen(s) + 1);
    memcpy(out, ld->name, dl);
    out[dl] = '/';
    strcpy(out + dl + 1, s);
    return out;
}

void field_path(struct loader *ld, const struct field *f, const char *path,
                const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);
    if (s == NULL)
        return;
    if (*s == '\0') {
        error_at(ld, val, "%s: empty path", path);
        return;
    }
    char **target = TARGET(obj, f, char *);
    free(*target);
    *target = resolve_path(ld, s);
}

size_t list_count(const yaml_node_t *val)
{
    if (val->type == YAML_SEQUENCE_NODE)
        return (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
    return 1;
}

void for_each_item(struct loader *ld, const char *path, const yaml_node_t *val,
                   item_fn *add, void *ctx)
{
    if (val->type != YAML_SEQUENCE_NODE) {
        add(ld, path, val, ctx);
        return;
    }
    const yaml_node_item_t *items = val->data.sequence.items.start;
    for (size_t i = 0; i < list_count(val); i++) {
        char ipath[160];
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        add(ld, ipath, node_at(ld, items[i]), ctx);
    }
}

/* ------------------------------------------------------------------------
 * workers, admin, log
 */

static unsigned cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (unsigned)n;
}

static void field_workers(struct loader *ld, const struct field *f, const char *path,
                          const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);
    const char *p = s;
    uint64_t n;

    if (s == NULL)
        return;
    if (strcmp(s, "auto") == 0)
        *TARGET(obj, f, unsigned) = 0;     /* resolved after the walk */
    else if (parse_digits(&p, &n) && *p == '\0' && n >= 1 && n <= MAX_WORKERS)
        *TARGET(obj, f, unsigned) = (unsigned)n;
    else
        error_at(ld, val, "%s: invalid value %s (expected auto or a number of threads "
                 "from 1 to %d)", path, quoted(s).s, MAX_WORKERS);
}

/* Octal, as for chmod: "0660" or "660".  Quoting it in YAML is advised but
 * an unquoted 0660 reads the same, since we take the text as written. */
static void field_mode(struct loader *ld, const struct field *f, const char *path,
                       const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);
    unsigned mode = 0;
    size_t len;

    if (s == NULL)
        return;
    len = strlen(s);
    bool ok = len >= 1 && len <= 4;
    for (size_t i = 0; ok && i < len; i++) {
        if (s[i] < '0' || s[i] > '7')
            ok = false;
        else
            mode = mode * 8 + (unsigned)(s[i] - '0');
    }
    if (!ok || mode > 0777)
        error_at(ld, val, "%s: invalid file mode %s (expected octal permissions such as \"0660\")",
                 path, quoted(s).s);
    else
        *TARGET(obj, f, unsigned) = mode;
}

static void field_socket_path(struct loader *ld, const struct field *f, const char *path,
                              const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);
    const size_t max = sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1;

    if (s == NULL)
        return;
    if (strlen(s) > max)
        error_at(ld, val, "%s: path is %zu bytes long; a Unix socket path can have at most %zu",
                 path, strlen(s), max);
    else
        set_string(TARGET(obj, f, char *), s);
}

/* ------------------------------------------------------------------------
 * origin
 */

/* Parse and resolve "http[s]://HOST[:PORT][/]".  NULL on success, else the
 * message.  The origin is a server, not a prefix: freshcache forwards the
 * client's path unchanged, so a path in the URL would be silently ignored —
 * we refuse it instead. */
static const char *parse_origin_url(const char *url, struct fc_origin *o, char *why, size_t whylen)
{
    const char *rest, *h, *tail;
    size_t authlen, hlen;
    bool bracketed = false;
    uint64_t port;

    if (strncasecmp(url, "http://", 7) == 0) {
        o->https = false;
        port = 80;
        rest = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        o->https = true;
        port = 443;
        rest = url + 8;
    } else {
        return "must start with http:// or https://";
    }

    authlen = strcspn(rest, "/?#");
    tail = rest + authlen;
    if (memchr(rest, '@', authlen) != NULL)
        return "user credentials in the URL are not supported";

    const char *port_at;
    if (rest[0] == '[') {
        const char *close = memchr(rest, ']', authlen);
        if (close == NULL)
            return "missing ']' after the IPv6 address";
        h = rest + 1;
        hlen = (size_t)(close - h);
        port_at = close + 1;
        bracketed = true;
    } else {
        const char *colon = memchr(rest, ':', authlen);
        h = rest;
        hlen = colon ? (size_t)(colon - rest) : authlen;
        port_at = rest + hlen;
    }
    if (hlen == 0)
        return "missing host";
    if (port_at < tail) {
        const char *p = port_at + 1;
        if (*port_at != ':' || !parse_digits(&p, &port) || p != tail || port < 1 || port > 65535)
            return "the port must be a number from 1 to 65535";
    }
    if (bracketed) {
        char tmp[INET6_ADDRSTRLEN];
        struct in6_addr a;
        if (hlen >= sizeof tmp)
            return "invalid IPv6 address";
        memcpy(tmp, h, hlen);
        tmp[hlen] = '\0';
        if (inet_pton(AF_INET6, tmp, &a) != 1)
            return "invalid IPv6 address";
    } else if (!hostname_valid(h, hlen)) {
        return "invalid host name";
    }
    if (*tail == '?' || *tail == '#')
        return "a query or fragment is not allowed";
    if (tail[0] != '\0' && strcmp(tail, "/") != 0)
        return "a path is not supported; the client's path is forwarded unchanged";

    free(o->host);
    o->host = xcalloc(1, hlen + 1);
    memcpy(o->host, h, hlen);
    o->port = (uint16_t)port;
    /* The Host header form: brackets for IPv6, the port only when it is not
     * the scheme's default. */
    char portpart[8] = "";
    if (port != (o->https ? 443 : 80))
        snprintf(portpart, sizeof portpart, ":%u", (unsigned)port);
    free(o->authority);
    if (asprintf(&o->authority, "%s%s%s%s", bracketed ? "[" : "", o->host, bracketed ? "]" : "",
                 portpart) < 0)
        oom();

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    int rc = getaddrinfo(o->host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(why, whylen, "cannot resolve %s: %s", quoted(o->host).s,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return why;
    }
    memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
    o->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return NULL;
}

static void field_origin_url(struct loader *ld, const struct field *f, const char *path,
                             const yaml_node_t *val, void *obj)
{
    struct fc_origin *o = TARGET(obj, f, struct fc_origin);
    const char *s = get_scalar(ld, path, val);
    char buf[256];
    const char *why;

    ld->origin_url_seen = true;
    if (s == NULL)
        return;
    set_string(&o->url, s);
    why = parse_origin_url(s, o, buf, sizeof buf);
    if (why != NULL)
        error_at(ld, val, "%s: invalid origin URL %s: %s", path, quoted(s).s, why);
}

static void field_origin(struct loader *ld, const struct field *f, const char *path,
                         const yaml_node_t *val, void *obj)
{
    ld->origin_key = ld->key;
    /* `origin: http://...` (a common slip) is one mistake: do not also
     * report url as missing. */
    if (!walk_mapping(ld, path, val, f->sub, f->n_sub, obj))
        ld->origin_url_seen = true;
}

static const struct choice host_header_choices[] = {
    { "preserve", HOST_HEADER_PRESERVE }, { "origin", HOST_HEADER_ORIGIN }, { NULL, 0 },
};

static const struct field origin_tls_fields[] = {
    { .key = "verify",      .fn = field_bool,     .off = CFG(origin.tls_verify) },
    { .key = "ca_file",     .fn = field_path,     .off = CFG(origin.tls_ca_file) },
    { .key = "server_name", .fn = field_hostname, .off = CFG(origin.tls_server_name) },
    { .key = "certificate", .fn = field_path,     .off = CFG(origin.tls_client.certificate) },
    { .key = "key",         .fn = field_path,     .off = CFG(origin.tls_client.key) },
};

static void field_origin_tls(struct loader *ld, const struct field *f, const char *path,
                             const yaml_node_t *val, void *obj)
{
    ld->origin_tls = val;
    field_section(ld, f, path, val, obj);
}

static const struct field origin_fields[] = {
    /* The url handler fills the whole struct fc_origin (host, port, addr). */
    { .key = "url",             .fn = field_origin_url, .off = CFG(origin) },
    { .key = "host_header",     .fn = field_enum,       .off = CFG(origin.host_header),
      .choices = host_header_choices },
    { .key = "connect_timeout", .fn = field_duration,   .off = CFG(origin.connect_timeout_ms),
      .min = 1 },
    { .key = "read_timeout",    .fn = field_duration,   .off = CFG(origin.read_timeout_ms),
      .min = 1 },
    { .key = "tls",             .fn = field_origin_tls, SECTION(origin_tls_fields) },
};

/* ------------------------------------------------------------------------
 * cache, admin, log, limits
 */

static const struct choice etag_choices[] = {
    { "content-hash", ETAG_CONTENT_HASH }, { "origin", ETAG_ORIGIN }, { NULL, 0 },
};

static const struct choice after_purge_choices[] = {
    { "refetch", AFTER_PURGE_REFETCH }, { "revalidate", AFTER_PURGE_REVALIDATE }, { NULL, 0 },
};

static void field_max_object_size(struct loader *ld, const struct field *f, const char *path,
                                  const yaml_node_t *val, void *obj)
{
    ld->max_object_size_node = val;
    field_size(ld, f, path, val, obj);
}

static void field_cache(struct loader *ld, const struct field *f, const char *path,
                        const yaml_node_t *val, void *obj)
{
    size_t before = ld->n_errors;

    walk_mapping(ld, path, val, f->sub, f->n_sub, obj);
    ld->cache_ok = ld->n_errors == before;
}

static const struct field cache_fields[] = {
    { .key = "memory",          .fn = field_size,            .off = CFG(cache.memory),
      .min = 1 },
    { .key = "max_object_size", .fn = field_max_object_size, .off = CFG(cache.max_object_size),
      .min = 1 },
    { .key = "etag",            .fn = field_enum,            .off = CFG(cache.etag),
      .choices = etag_choices },
    { .key = "coalesce",        .fn = field_bool,            .off = CFG(cache.coalesce) },
    { .key = "after_purge",     .fn = field_enum,            .off = CFG(cache.after_purge),
      .choices = after_purge_choices },
};

static const struct field admin_fields[] = {
    { .key = "socket", .fn = field_socket_path, .off = CFG(admin.socket) },
    { .key = "mode",   .fn = field_mode,        .off = CFG(admin.mode) },
};

static const struct choice log_level_choices[] = {
    { "error", LOG_LEVEL_ERROR }, { "warn", LOG_LEVEL_WARN }, { "info", LOG_LEVEL_INFO },
    { "debug", LOG_LEVEL_DEBUG }, { NULL, 0 },
};

static const struct choice log_format_choices[] = {
    { "text", ACCESS_LOG_TEXT }, { "json", ACCESS_LOG_JSON }, { NULL, 0 },
};

static const struct field log_fields[] = {
    { .key = "access", .fn = field_string, .off = CFG(log.access) },
    { .key = "format", .fn = field_enum,   .off = CFG(log.format), .choices = log_format_choices },
    { .key = "level",  .fn = field_enum,   .off = CFG(log.level), .choices = log_level_choices },
};

static const struct field limits_fields[] = {
    /* A request line and ordinary headers need about 1KiB; past 1MiB the
     * number is surely a typo and a per-connection buffer a liability. */
    { .key = "max_header_bytes", .fn = field_size,     .off = CFG(limits.max_header_bytes),
      .min = KiB, .max = MiB },
    { .key = "max_connections",  .fn = field_unsigned, .off = CFG(limits.max_connections),
      .min = 1, .max = UINT32_MAX },
    { .key = "client_timeout",   .fn = field_duration, .off = CFG(limits.client_timeout_ms),
      .min = 1 },
    { .key = "drain_timeout",    .fn = field_duration, .off = CFG(limits.drain_timeout_ms) },
    { .key = "handshake_timeout", .fn = field_duration, .off = CFG(limits.handshake_timeout_ms),
      .min = 1 },
    { .key = "max_concurrent_streams", .fn = field_unsigned,
      .off = CFG(limits.max_concurrent_streams), .min = 1, .max = 100000 },
    /* Slow clients (slowloris): the head as a whole, the body on average. */
    { .key = "header_timeout",   .fn = field_duration, .off = CFG(limits.header_timeout_ms),
      .min = 1 },
    { .key = "min_body_rate",    .fn = field_size,     .off = CFG(limits.min_body_rate),
      .max = 1024 * MiB },
};

/* The metrics endpoint has no authentication: loopback only. */
static void field_metrics_listen(struct loader *ld, const struct field *f, const char *path,
                                 const yaml_node_t *val, void *obj)
{
    struct fc_config *cfg = obj;
    const char *s = get_scalar(ld, path, val);

    (void)f;
    if (s == NULL)
        return;
    const char *why = parse_listen_address(s, &cfg->metrics.addr, &cfg->metrics.addrlen);
    if (why != NULL) {
        error_at(ld, val, "%s: invalid address %s: %s (use e.g. 127.0.0.1:9101)", path,
                 quoted(s).s, why);
        return;
    }
    bool loopback = false;
    if (cfg->metrics.addr.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&cfg->metrics.addr;
        loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    } else if (cfg->metrics.addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&cfg->metrics.addr;
        loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    }
    if (!loopback) {
        error_at(ld, val, "%s: %s is not a loopback address: the metrics endpoint has no "
                 "authentication (use 127.0.0.1:PORT or [::1]:PORT, or the admin socket's "
                 "/metrics)", path, quoted(s).s);
        return;
    }
    set_string(&cfg->metrics.listen, s);
}

static const struct field metrics_fields[] = {
    { .key = "listen", .fn = field_metrics_listen },
};

/* ------------------------------------------------------------------------
 * The top level and the walk.
 */

static const struct field top_fields[] = {
    { .key = "listen",    .fn = field_listen },
    { .key = "trusted_proxies", .fn = field_trusted_proxies },
    { .key = "workers",   .fn = field_workers, .off = CFG(workers) },
    { .key = "origin",    .fn = field_origin,  SECTION(origin_fields) },
    { .key = "cache",     .fn = field_cache,   SECTION(cache_fields) },
    { .key = "admin",     .fn = field_section, SECTION(admin_fields) },
    { .key = "state_dir", .fn = field_string,  .off = CFG(state_dir) },
    { .key = "log",       .fn = field_section, SECTION(log_fields) },
    { .key = "limits",    .fn = field_section, SECTION(limits_fields) },
    { .key = "metrics",   .fn = field_section, SECTION(metrics_fields) },
    { .key = "cluster",   .fn = field_cluster },
    { .key = "policies",  .fn = field_policies },
};

static void report_unknown_key(struct loader *ld, const char *path, const yaml_node_t *key,
                               const struct field *fields, size_t n_fields)
{
    char valid[512] = "";

    for (size_t i = 0; i < n_fields; i++) {
        size_t len = strlen(valid);
        snprintf(valid + len, sizeof valid - len, "%s%s", i ? ", " : "", fields[i].key);
    }
    if (path[0] == '\0')
        error_at(ld, key, "unknown key %s at the top level (valid keys: %s)",
                 quoted(scalar_text(key)).s, valid);
    else
        error_at(ld, key, "unknown key %s in %s (valid keys: %s)",
                 quoted(scalar_text(key)).s, path, valid);
}

/* Remember where `path` was written, for config_error_at(). */
static void record_where(struct loader *ld, const char *path, const yaml_node_t *at)
{
    struct fc_config *cfg = ld->cfg;

    cfg->where = xrealloc(cfg->where, (cfg->n_where + 1) * sizeof *cfg->where);
    cfg->where[cfg->n_where].path = xstrdup(path);
    cfg->where[cfg->n_where].at.line = (unsigned)at->start_mark.line + 1;
    cfg->where[cfg->n_where].at.column = (unsigned)at->start_mark.column + 1;
    cfg->n_where++;
}

/* Check that `node` is a mapping and hand each known key to its handler.
 * A null value (`cache:` with nothing under it) is an empty mapping: all
 * defaults.  false if `node` is not a mapping at all. */
bool walk_mapping(struct loader *ld, const char *path, const yaml_node_t *node,
                  const struct field *fields, size_t n_fields, void *obj)
{
    const yaml_node_pair_t *pairs, *end;

    if (is_null(node))
        return true;
    if (node->type != YAML_MAPPING_NODE) {
        error_at(ld, node, "%s: expected a mapping (key: value), got %s",
                 path[0] ? path : "top level", describe(node).s);
        return false;
    }
    pairs = node->data.mapping.pairs.start;
    end = node->data.mapping.pairs.top;
    for (const yaml_node_pair_t *pair = pairs; pair < end; pair++) {
        const yaml_node_t *key = node_at(ld, pair->key);
        const yaml_node_t *val = node_at(ld, pair->value);
        const struct field *f = NULL;
        const char *name;
        bool dup = false;

        if (key->type != YAML_SCALAR_NODE) {
            error_at(ld, key, "%s: a key must be a plain name, got %s",
                     path[0] ? path : "top level", describe(key).s);
            continue;
        }
        name = scalar_text(key);
        for (const yaml_node_pair_t *prev = pairs; prev < pair && !dup; prev++) {
            const yaml_node_t *pk = node_at(ld, prev->key);
            size_t len = key->data.scalar.length;
            if (pk->type == YAML_SCALAR_NODE && pk->data.scalar.length == len &&
                memcmp(pk->data.scalar.value, key->data.scalar.value, len) == 0) {
                error_at(ld, key, "duplicate key %s in %s (first at line %zu)", quoted(name).s,
                         path[0] ? path : "the top level", pk->start_mark.line + 1);
                dup = true;
            }
        }
        if (dup)
            continue;
        for (size_t i = 0; i < n_fields && f == NULL; i++)
            if (strcmp(fields[i].key, name) == 0 && strlen(name) == key->data.scalar.length)
                f = &fields[i];
        if (f == NULL) {
            report_unknown_key(ld, path, key, fields, n_fields);
            continue;
        }

        char child[128];
        snprintf(child, sizeof child, "%s%s%s", path, path[0] ? "." : "", f->key);
        record_where(ld, child, val->type == YAML_SCALAR_NODE ? val : key);
        ld->key = key;
        f->fn(ld, f, child, val, obj);
    }
    return true;
}

static void set_defaults(struct fc_config *cfg)
{
    cfg->workers = 0;                       /* auto */
    cfg->origin.host_header = HOST_HEADER_PRESERVE;
    cfg->origin.connect_timeout_ms = 2 * 1000;
    cfg->origin.read_timeout_ms = 30 * 1000;
    cfg->origin.tls_verify = true;
    cfg->cache.memory = 256 * MiB;
    cfg->cache.max_object_size = 16 * MiB;
    cfg->cache.etag = ETAG_CONTENT_HASH;
    cfg->cache.coalesce = true;
    cfg->cache.after_purge = AFTER_PURGE_REFETCH;
    cfg->admin.socket = xstrdup("/run/freshcache/admin.sock");
    cfg->admin.mode = 0660;
    cfg->state_dir = xstrdup("/var/lib/freshcache");
    cfg->log.access = xstrdup("stdout");
    cfg->log.level = LOG_LEVEL_INFO;
    cfg->log.format = ACCESS_LOG_TEXT;
    cfg->limits.max_header_bytes = 16 * KiB;
    cfg->limits.max_connections = 10000;
    cfg->limits.client_timeout_ms = 30 * 1000;
    cfg->limits.drain_timeout_ms = 10 * 1000;
    cfg->limits.handshake_timeout_ms = 10 * 1000;
    cfg->limits.max_concurrent_streams = 100;
    cfg->limits.header_timeout_ms = 10 * 1000;
    cfg->limits.min_body_rate = KiB;
    cfg->cluster.name = xstrdup("freshcache");
    cfg->cluster.ack_timeout_ms = 2 * 1000;
    cfg->cluster.max_disconnect_ms = 10 * 1000;
    cfg->cluster.on_disconnect = ON_DISCONNECT_REVALIDATE;
}

/* What cannot be checked key by key. */
static void finish(struct loader *ld)
{
    struct fc_config *cfg = ld->cfg;

    /* At the origin section that lacks it, or where the document ends,
     * which is where the section would be added; not at 1:1, which in a
     * file that starts with comments points at a comment. */
    if (!ld->origin_url_seen && ld->origin_key != NULL)
        error_at(ld, ld->origin_key, "origin.url is required: the origin server's address, "
                 "e.g. http://127.0.0.1:8000");
    else if (!ld->origin_url_seen)
        error_at_mark(ld, cfg->end.line - 1, cfg->end.column - 1,
                      "origin.url is required: the file has no origin section; add one with "
                      "the origin server's address, e.g. origin: { url: http://127.0.0.1:8000 }");
    if (cfg->origin.tls_client.certificate && !cfg->origin.tls_client.key)
        error_at(ld, ld->origin_tls, "origin.tls: certificate needs its key");
    if (cfg->origin.tls_client.key && !cfg->origin.tls_client.certificate)
        error_at(ld, ld->origin_tls, "origin.tls: key needs its certificate");

    /* Compare sizes only if both were read: a rejected memory value would
     * make its default look like the operator's choice. */
    if (ld->max_object_size_node != NULL) {
        if (ld->cache_ok && cfg->cache.max_object_size > cfg->cache.memory)
            error_at(ld, ld->max_object_size_node,
                     "cache.max_object_size: %s is larger than cache.memory (%s)",
                     format_size(cfg->cache.max_object_size).s, format_size(cfg->cache.memory).s);
    } else if (cfg->cache.max_object_size > cfg->cache.memory) {
        /* Only the default is too large for a small cache: shrink it. */
        cfg->cache.max_object_size = cfg->cache.memory;
    }

    if (!ld->listen_seen) {
        cfg->listen = xcalloc(1, sizeof *cfg->listen);
        cfg->n_listen = 1;
        cfg->listen[0].address = xstrdup(DEFAULT_LISTEN);
        AZ(parse_listen_address(DEFAULT_LISTEN, &cfg->listen[0].addr, &cfg->listen[0].addrlen));
    }

    if (cfg->workers == 0)
        cfg->workers = cpu_count();
}

/* A reader error (bad encoding) has only a byte offset: turn it into a
 * line and column. */
static void offset_to_mark(const char *buf, size_t len, size_t offset, size_t *line,
                           size_t *column)
{
    *line = 0;
    *column = 0;
    for (size_t i = 0; i < offset && i < len; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *column = 0;
        } else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
            (*column)++;                    /* count characters, as libyaml does */
        }
    }
}

static void report_yaml_error(struct loader *ld, const yaml_parser_t *parser, const char *buf,
                              size_t len)
{
    const char *problem = parser->problem ? parser->problem : "unknown error";

    switch (parser->error) {
    case YAML_MEMORY_ERROR:
        oom();
    case YAML_READER_ERROR: {
        size_t line, column;
        offset_to_mark(buf, len, parser->problem_offset, &line, &column);
        if (parser->problem_value != -1)
            error_at_mark(ld, line, column, "invalid input: %s (byte 0x%02x)", problem,
                          (unsigned)parser->problem_value);
        else
            error_at_mark(ld, line, column, "invalid input: %s", problem);
        break;
    }
    default:
        if (parser->context != NULL)
            error_at_mark(ld, parser->problem_mark.line, parser->problem_mark.column,
                          "YAML syntax error: %s (%s at line %zu, column %zu)", problem,
                          parser->context, parser->context_mark.line + 1,
                          parser->context_mark.column + 1);
        else
            error_at_mark(ld, parser->problem_mark.line, parser->problem_mark.column,
                          "YAML syntax error: %s", problem);
        break;
    }
}

struct fc_config *config_load_string(const char *name, const char *yaml, size_t len,
                                     struct config_errors *errs)
{
    struct loader ld = { .name = name ? name : "<config>", .errs = errs, .cache_ok = true };
    struct fc_config *cfg = xcalloc(1, sizeof *cfg);
    yaml_parser_t parser;
    yaml_document_t doc;

    cfg->path = xstrdup(ld.name);
    set_defaults(cfg);
    ld.cfg = cfg;

    if (!yaml_parser_initialize(&parser))
        oom();
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        report_yaml_error(&ld, &parser, yaml, len);
    } else {
        const yaml_node_t *root = yaml_document_get_root_node(&doc);
        yaml_document_t next;

        ld.doc = &doc;
        /* An empty document (nothing, or only comments) has no root: the
         * reader's position is then the end of the input. */
        const yaml_mark_t *end = root ? &root->end_mark : &parser.mark;
        cfg->end.line = (unsigned)end->line + 1;
        cfg->end.column = (unsigned)end->column + 1;
        /* Not a mapping at all (a list, a lone word): that one error says
         * it; "origin.url is required" and the like would only add noise. */
        if (root == NULL || walk_mapping(&ld, "", root, top_fields, FC_ARRAY_LEN(top_fields), cfg))
            finish(&ld);
        ld.doc = NULL;
        yaml_document_delete(&doc);

        /* A second document ("---" again) would be ignored silently. */
        if (!yaml_parser_load(&parser, &next)) {
            report_yaml_error(&ld, &parser, yaml, len);
        } else {
            if (yaml_document_get_root_node(&next) != NULL)
                error_at_mark(&ld, next.start_mark.line, next.start_mark.column,
                              "only one YAML document is allowed in the config file");
            yaml_document_delete(&next);
        }
    }
    yaml_parser_delete(&parser);
    if (ld.cluster_file_password != NULL) {
        explicit_bzero(ld.cluster_file_password, strlen(ld.cluster_file_password));
        free(ld.cluster_file_password);
    }

    if (ld.n_errors != 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

struct fc_config *config_load(const char *path, struct config_errors *errs)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    struct fc_config *cfg;

    if (f != NULL) {
        for (;;) {
            if (len == cap) {
                cap = cap ? cap * 2 : 16 * 1024;
                buf = xrealloc(buf, cap);
            }
            size_t n = fread(buf + len, 1, cap - len, f);
            len += n;
            if (n == 0)
                break;
        }
    }
    if (f == NULL || ferror(f)) {
        /* No line to point at; 1:1 keeps the FILE:LINE:COLUMN form that
         * scripts and the admin API rely on. */
        struct loader ld = { .name = path, .errs = errs };
        error_at(&ld, NULL, "cannot read the config file: %s", strerror(errno));
        if (f != NULL)
            fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    cfg = config_load_string(path, buf, len, errs);
    free(buf);
    return cfg;
}

void config_free(struct fc_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    for (size_t i = 0; i < cfg->n_listen; i++) {
        free(cfg->listen[i].address);
        free_listen_tls(cfg->listen[i].tls);
    }
    free(cfg->listen);
    free(cfg->origin.url);
    free(cfg->origin.host);
    free(cfg->origin.authority);
    free(cfg->origin.tls_ca_file);
    free(cfg->origin.tls_server_name);
    free_cert(&cfg->origin.tls_client);
    free(cfg->admin.socket);
    free(cfg->state_dir);
    free(cfg->metrics.listen);
    free(cfg->log.access);
    free(cfg->cluster.redis);
    redis_url_free(&cfg->cluster.url);
    free(cfg->cluster.redis_display);
    free(cfg->cluster.password_file);
    free(cfg->cluster.name);
    free(cfg->cluster.node);
    for (size_t i = 0; i < cfg->n_policies; i++)
        policy_free(&cfg->policies[i]);
    free(cfg->policies);
    free(cfg->trusted_proxies);
    for (size_t i = 0; i < cfg->n_where; i++)
        free(cfg->where[i].path);
    free(cfg->where);
    free(cfg);
}

/* The entry for `path`, or NULL when it was not written. */
static const struct fc_where *where_of(const struct fc_config *cfg, const char *path, size_t len)
{
    for (size_t i = 0; i < cfg->n_where; i++)
        if (strlen(cfg->where[i].path) == len && memcmp(cfg->where[i].path, path, len) == 0)
            return &cfg->where[i];
    return NULL;
}

bool config_written(const struct fc_config *cfg, const char *path)
{
    return where_of(cfg, path, strlen(path)) != NULL;
}

void config_error_at(const struct fc_config *cfg, const char *path, struct config_errors *errs,
                     const char *fmt, ...)
{
    struct fc_mark at = cfg->end;
    size_t len = strlen(path);
    va_list ap;

    /* "listen[0].tls" -> "listen[0]" -> "listen": the nearest written. */
    while (len > 0) {
        const struct fc_where *w = where_of(cfg, path, len);
        if (w != NULL) {
            at = w->at;
            break;
        }
        while (len > 0 && path[len - 1] != '.' && path[len - 1] != '[')
            len--;
        if (len > 0)
            len--;
    }
    if (at.line == 0)
        at = (struct fc_mark){ 1, 1 };
    va_start(ap, fmt);
    errors_append(errs, cfg->path, at.line, at.column, fmt, ap);
    va_end(ap);
}
