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
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
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
#include "freshcache/config/regex_cost.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

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

static void *xcalloc(size_t n, size_t size)
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

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        oom();
    return d;
}

/* Replace the string a field owns (a default or NULL) with a copy of `s`. */
static void set_string(char **field, const char *s)
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
static bool parse_digits(const char **sp, uint64_t *out)
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

/* Short texts for messages.  Returned by value so they can be used inline in
 * a printf argument list (C11 gives the temporary's array a lifetime up to
 * the end of the full expression). */
struct text {
    char s[96];
};

/* A user-supplied value for a message between `quote` characters, control
 * bytes escaped and a long value cut, so a bad line can neither garble nor
 * flood the log.  '"' escapes quotes and backslashes with a backslash, as
 * in a C or YAML double-quoted string; '\'' doubles quotes and leaves
 * backslashes alone, as in a YAML single-quoted string. */
static void quote_into(char *out, size_t size, const char *v, char quote)
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

static struct text quoted(const char *v)
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

static void error_at_mark(struct loader *ld, size_t line0, size_t column0, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void error_at(struct loader *ld, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* `line0` and `column0` are 0-based, as libyaml counts. */
static void error_at_mark(struct loader *ld, size_t line0, size_t column0, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    errors_append(ld->errs, ld->name, line0 + 1, column0 + 1, fmt, ap);
    va_end(ap);
    ld->n_errors++;
}

/* An error located at `node` (its first character), or at the start of the
 * file when there is no node (e.g. a required section that is absent). */
static void error_at(struct loader *ld, const yaml_node_t *node, const char *fmt, ...)
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

static const yaml_node_t *node_at(const struct loader *ld, int index)
{
    const yaml_node_t *n = yaml_document_get_node(ld->doc, index);
    FC_ASSERT(n != NULL);
    return n;
}

static const char *scalar_text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* `key:` with nothing after it, `~` or `null`: YAML's null.  A quoted ""
 * is a string, not null. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = scalar_text(n);
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* What the operator wrote instead, for "expected X, got Y" messages.  Its
 * own type: it holds a quoted() text and more. */
struct description {
    char s[sizeof(struct text) + 16];
};

static struct description describe(const yaml_node_t *n)
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
static const char *get_scalar(struct loader *ld, const char *path, const yaml_node_t *n)
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

static bool walk_mapping(struct loader *ld, const char *path, const yaml_node_t *node,
                         const struct field *fields, size_t n_fields, void *obj);

static void field_string(struct loader *ld, const struct field *f, const char *path,
                         const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);
    if (s != NULL)
        set_string(TARGET(obj, f, char *), s);
}

static void field_size(struct loader *ld, const struct field *f, const char *path,
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
static bool read_duration(struct loader *ld, const struct field *f, const char *path,
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

static void field_duration(struct loader *ld, const struct field *f, const char *path,
                           const yaml_node_t *val, void *obj)
{
    read_duration(ld, f, path, val, TARGET(obj, f, uint64_t));
}

static void field_bool(struct loader *ld, const struct field *f, const char *path,
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

static void field_enum(struct loader *ld, const struct field *f, const char *path,
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

static void field_unsigned(struct loader *ld, const struct field *f, const char *path,
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

static void field_section(struct loader *ld, const struct field *f, const char *path,
                          const yaml_node_t *val, void *obj)
{
    walk_mapping(ld, path, val, f->sub, f->n_sub, obj);
}

static void field_hostname(struct loader *ld, const struct field *f, const char *path,
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
 * listen
 */

/* Parse "1.2.3.4:80", "[::1]:80" or "*:80" (all IPv4 addresses).  NULL on
 * success, else what is wrong. */
static const char *parse_listen_address(const char *s, struct sockaddr_storage *ss,
                                        socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
    const char *h, *port;
    size_t hlen;
    bool v6;
    uint64_t portnum;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return "missing ']' after the IPv6 address";
        if (close[1] != ':')
            return "missing :PORT";
        h = s + 1;
        hlen = (size_t)(close - h);
        port = close + 2;
        v6 = true;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL)
            return "missing :PORT";
        h = s;
        hlen = (size_t)(colon - s);
        if (memchr(h, ':', hlen) != NULL)
            return "an IPv6 address must be in brackets";
        port = colon + 1;
        v6 = false;
    }
    const char *p = port;
    if (!parse_digits(&p, &portnum) || *p != '\0' || portnum < 1 || portnum > 65535)
        return "the port must be a number from 1 to 65535";
    if (hlen == 0 || hlen >= sizeof host)
        return "missing or overlong address";
    memcpy(host, h, hlen);
    host[hlen] = '\0';

    memset(ss, 0, sizeof *ss);
    if (!v6) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)portnum);
        if (strcmp(host, "*") == 0)
            sin->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return "not a numeric IPv4 address";
        *len = sizeof *sin;
        return NULL;
    }

    /* getaddrinfo rather than inet_pton so a zone ("[fe80::1%eth0]:80")
     * works; AI_NUMERICHOST keeps it from ever touching DNS. */
    struct addrinfo hints = { .ai_family = AF_INET6, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
    struct addrinfo *res;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)portnum);
    if (getaddrinfo(host, portstr, &hints, &res) != 0)
        return "not a numeric IPv6 address";
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return NULL;
}

static void field_listen_address(struct loader *ld, const struct field *f, const char *path,
                                 const yaml_node_t *val, void *obj)
{
    struct fc_listen *l = obj;
    const char *s = get_scalar(ld, path, val);
    const char *why;

    (void)f;
    if (s == NULL)
        return;
    /* Kept even when invalid, so "address is required" does not pile on. */
    set_string(&l->address, s);
    why = parse_listen_address(s, &l->addr, &l->addrlen);
    if (why != NULL)
        error_at(ld, val, "%s: invalid address %s: %s (use e.g. 127.0.0.1:8080, [::1]:8080 "
                 "or *:8080)", path, quoted(s).s, why);
}

/* ------------------------------------------------------------------------
 * TLS: certificates and keys (loaded and checked later by the server,
 * which reports at the positions kept here), versions, ciphers.
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

static void field_path(struct loader *ld, const struct field *f, const char *path,
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

static const struct field tls_cert_fields[] = {
    { .key = "certificate", .fn = field_path, .off = offsetof(struct fc_tls_cert, certificate) },
    { .key = "key",         .fn = field_path, .off = offsetof(struct fc_tls_cert, key) },
};

static bool cert_complete(struct loader *ld, const char *path, const yaml_node_t *node,
                          const struct fc_tls_cert *c)
{
    if (c->certificate != NULL && c->key != NULL)
        return true;
    error_at(ld, node, "%s: both certificate and key are required", path);
    return false;
}

static void free_cert(struct fc_tls_cert *c)
{
    free(c->certificate);
    free(c->key);
}

static void free_listen_tls(struct fc_listen_tls *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_certs; i++)
        free_cert(&t->certs[i]);
    free(t->certs);
    free(t->ciphers);
    free(t);
}

static void field_tls_certificates(struct loader *ld, const struct field *f, const char *path,
                                   const yaml_node_t *val, void *obj)
{
    struct fc_listen_tls *t = TARGET(obj, f, struct fc_listen_tls);
    if (val->type != YAML_SEQUENCE_NODE || val->data.sequence.items.top ==
                                               val->data.sequence.items.start) {
        error_at(ld, val, "%s: expected a list of { certificate: FILE, key: FILE }, got %s",
                 path, describe(val).s);
        return;
    }
    const yaml_node_item_t *items = val->data.sequence.items.start;
    size_t n = (size_t)(val->data.sequence.items.top - items);
    t->certs = xcalloc(n, sizeof *t->certs);
    t->n_certs = n;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = node_at(ld, items[i]);
        char ipath[96];
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        size_t before = ld->n_errors;
        walk_mapping(ld, ipath, item, tls_cert_fields, FC_ARRAY_LEN(tls_cert_fields),
                     &t->certs[i]);
        if (ld->n_errors == before)
            cert_complete(ld, ipath, item, &t->certs[i]);
    }
}

static const struct choice tls_version_choices[] = {
    { "TLSv1.2", FC_TLS_1_2 }, { "TLSv1.3", FC_TLS_1_3 }, { NULL, 0 },
};

static void field_tls_protocols(struct loader *ld, const struct field *f, const char *path,
                                const yaml_node_t *val, void *obj)
{
    struct fc_listen_tls *t = TARGET(obj, f, struct fc_listen_tls);
    if (val->type != YAML_SEQUENCE_NODE || val->data.sequence.items.top ==
                                               val->data.sequence.items.start) {
        error_at(ld, val, "%s: expected a list such as [TLSv1.2, TLSv1.3], got %s", path,
                 describe(val).s);
        return;
    }
    int lo = 99, hi = 0;
    for (const yaml_node_item_t *it = val->data.sequence.items.start;
         it < val->data.sequence.items.top; it++) {
        const yaml_node_t *item = node_at(ld, *it);
        const char *s = get_scalar(ld, path, item);
        if (s == NULL)
            return;
        const struct choice *c = tls_version_choices;
        while (c->word && strcmp(c->word, s) != 0)
            c++;
        if (c->word == NULL) {
            /* TLS 1.0 and 1.1 are broken (RFC 8996): say so, not just "invalid". */
            bool old = strcmp(s, "TLSv1") == 0 || strcmp(s, "TLSv1.0") == 0 ||
                       strcmp(s, "TLSv1.1") == 0 || strncmp(s, "SSL", 3) == 0;
            error_at(ld, item, "%s: %s %s (expected TLSv1.2 or TLSv1.3)", path, quoted(s).s,
                     old ? "is deprecated and not supported (RFC 8996)" : "is not a TLS version");
            return;
        }
        if (c->value < lo)
            lo = c->value;
        if (c->value > hi)
            hi = c->value;
    }
    t->min_version = lo;
    t->max_version = hi;
}

/* What a tls section holds while it is read: the single-certificate form
 * (certificate and key directly under tls) or the list (certificates),
 * plus the settings.  Both forms at once is an error. */
struct tls_section {
    struct fc_tls_cert single;
    struct fc_listen_tls t;
};

static const struct field listen_tls_fields[] = {
    { .key = "certificate",  .fn = field_path,
      .off = offsetof(struct tls_section, single.certificate) },
    { .key = "key",          .fn = field_path, .off = offsetof(struct tls_section, single.key) },
    { .key = "certificates", .fn = field_tls_certificates, .off = offsetof(struct tls_section, t) },
    { .key = "protocols",    .fn = field_tls_protocols, .off = offsetof(struct tls_section, t) },
    { .key = "ciphers",      .fn = field_string, .off = offsetof(struct tls_section, t.ciphers) },
};

static void field_listen_tls(struct loader *ld, const struct field *f, const char *path,
                             const yaml_node_t *val, void *obj)
{
    struct fc_listen *l = obj;
    size_t before = ld->n_errors;
    struct tls_section sec = { .t = { .min_version = FC_TLS_1_2, .max_version = FC_TLS_1_3 } };

    (void)f;
    if (is_null(val) || !walk_mapping(ld, path, val, listen_tls_fields,
                                      FC_ARRAY_LEN(listen_tls_fields), &sec)) {
        if (is_null(val))
            error_at(ld, val, "%s: a certificate is required: { certificate: FILE, key: FILE }",
                     path);
        goto drop;
    }
    if (ld->n_errors != before)
        goto drop;
    bool has_single = sec.single.certificate != NULL || sec.single.key != NULL;
    if (has_single && sec.t.n_certs > 0) {
        error_at(ld, val, "%s: give either certificate and key, or certificates, not both", path);
        goto drop;
    }
    if (has_single) {
        if (!cert_complete(ld, path, val, &sec.single))
            goto drop;
        sec.t.certs = xcalloc(1, sizeof *sec.t.certs);
        sec.t.certs[0] = sec.single;
        sec.t.n_certs = 1;
        sec.single = (struct fc_tls_cert){ 0 };
    } else if (sec.t.n_certs == 0) {
        error_at(ld, val, "%s: a certificate is required: { certificate: FILE, key: FILE }", path);
        goto drop;
    }
    free_listen_tls(l->tls);
    l->tls = xcalloc(1, sizeof *l->tls);
    *l->tls = sec.t;
    return;
drop:
    free_cert(&sec.single);
    for (size_t i = 0; i < sec.t.n_certs; i++)
        free_cert(&sec.t.certs[i]);
    free(sec.t.certs);
    free(sec.t.ciphers);
}

static const struct field listen_fields[] = {
    { .key = "address", .fn = field_listen_address },
    { .key = "tls",     .fn = field_listen_tls },
    { .key = "http2",   .fn = field_bool, .off = offsetof(struct fc_listen, http2) },
};

static void field_listen(struct loader *ld, const struct field *f, const char *path,
                         const yaml_node_t *val, void *obj)
{
    struct fc_config *cfg = obj;
    const yaml_node_item_t *items;
    size_t n;

    (void)f;
    ld->listen_seen = true;
    if (val->type != YAML_SEQUENCE_NODE) {
        error_at(ld, val, "%s: expected a list of listeners (- address: HOST:PORT), got %s",
                 path, describe(val).s);
        return;
    }
    items = val->data.sequence.items.start;
    n = (size_t)(val->data.sequence.items.top - items);
    if (n == 0) {
        error_at(ld, val, "%s: no listeners; give at least one (- address: HOST:PORT)", path);
        return;
    }
    cfg->listen = xcalloc(n, sizeof *cfg->listen);
    cfg->n_listen = n;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = node_at(ld, items[i]);
        struct fc_listen *l = &cfg->listen[i];
        size_t before = ld->n_errors;
        char ipath[64];

        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        walk_mapping(ld, ipath, item, listen_fields, FC_ARRAY_LEN(listen_fields), l);
        if (ld->n_errors != before)
            continue;
        if (l->address == NULL) {
            error_at(ld, item, "%s: address is required", ipath);
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (cfg->listen[j].addrlen == l->addrlen &&
                memcmp(&cfg->listen[j].addr, &l->addr, l->addrlen) == 0) {
                error_at(ld, item, "%s: %s is already listened on by %s[%zu]", ipath,
                         quoted(l->address).s, path, j);
                break;
            }
        }
    }
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

static const struct choice set_cookie_choices[] = {
    { "pass", SET_COOKIE_PASS }, { "store", SET_COOKIE_STORE }, { "strip", SET_COOKIE_STRIP },
    { NULL, 0 },
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
 * cluster
 */

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
static void field_cluster(struct loader *ld, const struct field *f, const char *path,
                          const yaml_node_t *val, void *obj)
{
    struct fc_cluster *c = &((struct fc_config *)obj)->cluster;
    size_t before = ld->n_errors;

    c->enabled = true;
    if (!walk_mapping(ld, path, val, f->sub, f->n_sub, obj) || ld->n_errors != before)
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

/* ------------------------------------------------------------------------
 * policies
 */

/* Where a policy's parts were written, for the checks across policies. */
struct policy_nodes {
    const yaml_node_t *item;
    const yaml_node_t *name;
    const yaml_node_t *match_key;
    const yaml_node_t *ext_types_key;
};

/* Names appear in `proxyctl purge --policy NAME`, JSON and metrics labels:
 * keep them to characters that need no quoting anywhere. */
static void field_policy_name(struct loader *ld, const struct field *f, const char *path,
                              const yaml_node_t *val, void *obj)
{
    struct fc_policy *p = obj;
    const char *s = get_scalar(ld, path, val);

    (void)f;
    if (s == NULL)
        return;
    for (const char *c = s; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.')) {
            error_at(ld, val, "%s: invalid policy name %s (use letters, digits, '-', '_' and '.')",
                     path, quoted(s).s);
            return;
        }
    }
    if (strlen(s) > CONFIG_POLICY_NAME_MAX) {
        error_at(ld, val, "%s: policy name is %zu characters long; at most %d", path, strlen(s),
                 CONFIG_POLICY_NAME_MAX);
        return;
    }
    set_string(&p->name, s);
    ld->policy->name = val;
}

/* A pattern shown as the operator writes it in YAML single quotes, where
 * a backslash is just a backslash ('\.js$'; quoted() would double it).
 * Longer than a struct text: patterns are. */
struct pattern_text {
    char s[160];
};

static struct pattern_text as_pattern(const char *v)
{
    struct pattern_text t;
    quote_into(t.s, sizeof t.s, v, '\'');
    return t;
}

/* The regular expression a glob such as `*.js` or `img-*.png` stands for:
 * `\.js$`, `^img-.*\.png$`.  Empty when `glob` has no wildcard, or the
 * result would match everything or not compile either. */
static void glob_to_regex(const char *glob, char *out, size_t len)
{
    char re[256];
    size_t o = 0;
    regex_t check;

    out[0] = '\0';
    if (strpbrk(glob, "*?") == NULL || len == 0)
        return;
    re[o++] = '^';
    for (const char *g = glob; *g && o + 4 < sizeof re; g++) {
        if (*g == '*') {
            while (g[1] == '*')
                g++;            /* "**" (any directories) is "*" here */
            re[o++] = '.';
            re[o++] = '*';
        } else if (*g == '?') {
            re[o++] = '.';
        } else if (*g == '\\' && g[1] != '\0') {
            re[o++] = '\\';
            re[o++] = *++g;
        } else {
            if (strchr(".+(){}|^$\\", *g) != NULL)
                re[o++] = '\\';
            re[o++] = *g;
        }
    }
    re[o++] = '$';
    re[o] = '\0';
    /* A search, not a full match: "^.*" and ".*$" add nothing. */
    char *start = re, *end = re + o;
    if (start[0] == '^' && start[1] == '.' && start[2] == '*')
        start += 3;
    if (end - start >= 3 && strcmp(end - 3, ".*$") == 0 && (end - 4 < start || end[-4] != '\\'))
        *(end -= 3) = '\0';
    if (*start == '\0' || strcmp(start, "$") == 0 ||
        regcomp(&check, start, REG_EXTENDED | REG_NOSUB) != 0)
        return;
    regfree(&check);
    snprintf(out, len, "%s", start);
}

static void field_policy_path(struct loader *ld, const struct field *f, const char *path,
                              const yaml_node_t *val, void *obj)
{
    struct fc_policy *p = obj;
    const char *s = get_scalar(ld, path, val);
    int rc;

    (void)f;
    if (s == NULL)
        return;
    if (regex_cost(s) > REGEX_COST_MAX) {
        error_at(ld, val, "%s: regular expression %s repeats too much (nested or stacked "
                 "repetition would take more than %u copies of its parts)", path,
                 as_pattern(s).s, (unsigned)REGEX_COST_MAX);
        return;
    }
    rc = regcomp(&p->path_re, s, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[256], re[256];
        /* glibc frees a failed compilation itself; no regfree here. */
        regerror(rc, &p->path_re, msg, sizeof msg);
        /* `*.js` is the usual slip: a glob where a regex is expected. */
        glob_to_regex(s, re, sizeof re);
        if (re[0] != '\0')
            error_at(ld, val, "%s: invalid regular expression %s: %s; the value is a POSIX "
                     "extended regular expression, not a glob: for %s write %s", path,
                     as_pattern(s).s, msg, s, as_pattern(re).s);
        else
            error_at(ld, val, "%s: invalid regular expression %s: %s; the value is a POSIX "
                     "extended regular expression (see regex(7))", path, as_pattern(s).s, msg);
        return;
    }
    /* path_pattern != NULL is what tells config_free to regfree. */
    p->path_pattern = xstrdup(s);
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* "Text/HTML; charset=utf-8" -> "text/html"; NULL if not type/subtype. */
static char *normalize_media_type(const char *s)
{
    const char *end = strchr(s, ';');
    size_t len;
    char *out;
    int slashes = 0;

    if (end == NULL)
        end = s + strlen(s);
    while (*s == ' ' || *s == '\t')
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    len = (size_t)(end - s);
    if (len < 3)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '/')
            slashes++;
        else if (!is_tchar(s[i]))
            return NULL;
    }
    if (slashes != 1 || s[0] == '/' || s[len - 1] == '/')
        return NULL;
    out = xcalloc(1, len + 1);
    for (size_t i = 0; i < len; i++)
        out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    return out;
}

static void add_content_type(struct loader *ld, const char *path, const yaml_node_t *val,
                             struct fc_policy *p)
{
    const char *s = get_scalar(ld, path, val);
    char *mt;

    if (s == NULL)
        return;
    mt = normalize_media_type(s);
    if (mt == NULL) {
        error_at(ld, val, "%s: invalid media type %s (use e.g. text/html)", path, quoted(s).s);
        return;
    }
    p->content_types[p->n_content_types++] = mt;
}

/* A list of media types, or one as a plain string. */
static void field_policy_content_type(struct loader *ld, const struct field *f, const char *path,
                                      const yaml_node_t *val, void *obj)
{
    struct fc_policy *p = obj;

    (void)f;
    if (val->type == YAML_SEQUENCE_NODE) {
        const yaml_node_item_t *items = val->data.sequence.items.start;
        size_t n = (size_t)(val->data.sequence.items.top - items);
        if (n == 0) {
            error_at(ld, val, "%s: empty list; give at least one media type", path);
            return;
        }
        p->content_types = xcalloc(n, sizeof *p->content_types);
        for (size_t i = 0; i < n; i++) {
            char ipath[128];
            snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
            add_content_type(ld, ipath, node_at(ld, items[i]), p);
        }
    } else if (val->type == YAML_SCALAR_NODE) {
        p->content_types = xcalloc(1, sizeof *p->content_types);
        add_content_type(ld, path, val, p);
    } else {
        error_at(ld, val, "%s: expected a list of media types, got %s", path, describe(val).s);
    }
}

static const struct field match_fields[] = {
    { .key = "path",         .fn = field_policy_path },
    { .key = "content_type", .fn = field_policy_content_type },
};

static void field_policy_match(struct loader *ld, const struct field *f, const char *path,
                               const yaml_node_t *val, void *obj)
{
    struct fc_policy *p = obj;
    size_t before = ld->n_errors;

    ld->policy->match_key = ld->key;
    if (is_null(val) || (val->type == YAML_MAPPING_NODE &&
                         val->data.mapping.pairs.top == val->data.mapping.pairs.start)) {
        error_at(ld, val, "%s: empty; give path and/or content_type, or remove match "
                 "to match everything", path);
        return;
    }
    walk_mapping(ld, path, val, f->sub, f->n_sub, obj);
    /* Every key valid but none of them a criterion cannot happen today; this
     * guards the invariant "has match => has a criterion" for the matcher. */
    if (ld->n_errors == before && p->path_pattern == NULL && p->n_content_types == 0)
        error_at(ld, val, "%s: give path and/or content_type", path);
}

static void field_policy_ttl(struct loader *ld, const struct field *f, const char *path,
                             const yaml_node_t *val, void *obj)
{
    struct fc_policy *p = obj;
    const char *s;

    (void)f;
    if (val->type == YAML_SCALAR_NODE && strcmp(scalar_text(val), "origin") == 0) {
        p->ttl_origin = true;
        return;
    }
    s = get_scalar(ld, path, val);
    if (s == NULL)
        return;
    if (config_parse_duration(s, &p->ttl_ms) != 0) {
        error_at(ld, val, "%s: invalid ttl %s (expected origin or a duration such as 0s, "
                 "10m, 365d)", path, quoted(s).s);
        return;
    }
    p->ttl_origin = false;
}

/* Sent to clients as a header value: no control characters (CR/LF would
 * split the response). */
static void field_header_value(struct loader *ld, const struct field *f, const char *path,
                               const yaml_node_t *val, void *obj)
{
    const char *s = get_scalar(ld, path, val);

    if (s == NULL)
        return;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c < 0x20 && *c != '\t') || *c == 0x7f) {
            error_at(ld, val, "%s: control characters are not allowed in a header value", path);
            return;
        }
    }
    set_string(TARGET(obj, f, char *), s);
}

static void field_stale_while_revalidate(struct loader *ld, const struct field *f,
                                         const char *path, const yaml_node_t *val, void *obj)
{
    struct fc_policy *p = obj;
    if (read_duration(ld, f, path, val, &p->stale_while_revalidate_ms))
        p->has_stale_while_revalidate = true;
}

static void field_stale_if_error(struct loader *ld, const struct field *f, const char *path,
                                 const yaml_node_t *val, void *obj)
{
    struct fc_policy *p = obj;
    if (read_duration(ld, f, path, val, &p->stale_if_error_ms))
        p->has_stale_if_error = true;
}

/* A list of values, or one as a plain string: `add` for each, its path
 * "PATH[i]" (or PATH for the lone string).  The count, for allocating
 * before the walk, is list_count(). */
typedef void item_fn(struct loader *ld, const char *path, const yaml_node_t *val, void *ctx);

static size_t list_count(const yaml_node_t *val)
{
    if (val->type == YAML_SEQUENCE_NODE)
        return (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
    return 1;
}

static void for_each_item(struct loader *ld, const char *path, const yaml_node_t *val,
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

/* extension_types: { css: [text/css], map: [application/json], php: [] }.
 * Each entry replaces the built-in one for that extension; [] turns the
 * check off for it.  Patterns as in match.content_type. */
static void add_ext_type(struct loader *ld, const char *path, const yaml_node_t *val, void *ctx)
{
    struct fc_ext_types *e = ctx;
    const char *s = get_scalar(ld, path, val);
    char *mt;

    if (s == NULL)
        return;
    mt = normalize_media_type(s);
    if (mt == NULL || mt[0] == '*') {
        error_at(ld, val, "%s: invalid media type %s (use e.g. text/css, or image/* for any "
                 "image; [] turns the check off for this extension)", path, quoted(s).s);
        free(mt);
        return;
    }
    e->types[e->n_types++] = mt;
}

static bool valid_extension(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CONFIG_EXTENSION_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

static void field_policy_ext_types(struct loader *ld, const struct field *f, const char *path,
                                   const yaml_node_t *val, void *obj)
{
    struct fc_policy *p = obj;
    const yaml_node_pair_t *pairs, *end;

    (void)f;
    ld->policy->ext_types_key = ld->key;
    if (val->type != YAML_MAPPING_NODE) {
        error_at(ld, val, "%s: expected a mapping of extensions to media types "
                 "({ css: [text/css] }), got %s", path, describe(val).s);
        return;
    }
    pairs = val->data.mapping.pairs.start;
    end = val->data.mapping.pairs.top;
    p->ext_types = xcalloc((size_t)(end - pairs) + 1, sizeof *p->ext_types);
    for (const yaml_node_pair_t *pair = pairs; pair < end; pair++) {
        const yaml_node_t *k = node_at(ld, pair->key), *v = node_at(ld, pair->value);
        const char *ext = k->type == YAML_SCALAR_NODE ? scalar_text(k) : "";
        char epath[128];

        if (ext[0] == '.')
            ext++;          /* ".css" reads as meant */
        if (!valid_extension(ext)) {
            error_at(ld, k, "%s: invalid extension %s (letters and digits, at most %d, "
                     "e.g. css or woff2)", path, k->type == YAML_SCALAR_NODE ?
                     quoted(scalar_text(k)).s : describe(k).s, CONFIG_EXTENSION_MAX);
            continue;
        }
        for (size_t i = 0; i < p->n_ext_types; i++) {
            if (strcasecmp(p->ext_types[i].ext, ext) == 0) {
                error_at(ld, k, "%s: extension %s given twice", path, quoted(ext).s);
                ext = NULL;
                break;
            }
        }
        if (ext == NULL)
            continue;
        struct fc_ext_types *e = &p->ext_types[p->n_ext_types++];
        e->ext = xstrdup(ext);
        for (char *c = e->ext; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        snprintf(epath, sizeof epath, "%s.%s", path, e->ext);
        e->types = xcalloc(list_count(v) + 1, sizeof *e->types);
        for_each_item(ld, epath, v, add_ext_type, e);
    }
}

static void free_ext_types(struct fc_policy *p)
{
    for (size_t i = 0; i < p->n_ext_types; i++) {
        for (size_t j = 0; j < p->ext_types[i].n_types; j++)
            free(p->ext_types[i].types[j]);
        free(p->ext_types[i].types);
        free(p->ext_types[i].ext);
    }
    free(p->ext_types);
}

static const struct field policy_fields[] = {
    { .key = "name",                   .fn = field_policy_name },
    { .key = "match",                  .fn = field_policy_match, SECTION(match_fields) },
    { .key = "ttl",                    .fn = field_policy_ttl },
    { .key = "response_cache_control", .fn = field_header_value,
      .off = offsetof(struct fc_policy, response_cache_control) },
    { .key = "stale_while_revalidate", .fn = field_stale_while_revalidate },
    { .key = "stale_if_error",         .fn = field_stale_if_error },
    { .key = "keep_after_deploy",      .fn = field_duration,
      .off = offsetof(struct fc_policy, keep_after_deploy_ms) },
    { .key = "early_hints",            .fn = field_bool,
      .off = offsetof(struct fc_policy, early_hints) },
    { .key = "set_cookie",             .fn = field_enum,
      .off = offsetof(struct fc_policy, set_cookie), .choices = set_cookie_choices },
    { .key = "negative_ttl",           .fn = field_duration,
      .off = offsetof(struct fc_policy, negative_ttl_ms) },
    { .key = "extension_types",        .fn = field_policy_ext_types },
};

/* The rules across policies: unique names; a policy without match catches
 * everything, so only the last may omit it; `default` is the catch-all by
 * convention and must be last too. */
static void check_policies(struct loader *ld, const char *path, const struct policy_nodes *pn)
{
    const struct fc_config *cfg = ld->cfg;

    for (size_t i = 0; i < cfg->n_policies; i++) {
        const struct fc_policy *p = &cfg->policies[i];
        bool last = i + 1 == cfg->n_policies;
        bool reported = false;

        if (p->name == NULL)
            continue;
        for (size_t j = 0; j < i; j++) {
            if (cfg->policies[j].name != NULL && strcmp(cfg->policies[j].name, p->name) == 0) {
                error_at(ld, pn[i].name, "%s[%zu].name: duplicate policy name %s "
                         "(first at line %zu)", path, i, quoted(p->name).s,
                         pn[j].name->start_mark.line + 1);
                break;
            }
        }
        if (strcmp(p->name, "default") == 0 && !last) {
            error_at(ld, pn[i].name, "%s[%zu].name: the \"default\" policy must be the last one",
                     path, i);
            reported = true;
        }
        if (pn[i].match_key == NULL && !last && !reported)
            error_at(ld, pn[i].item, "%s[%zu]: policy %s has no match, so it would catch every "
                     "request; only the last policy may omit match", path, i, quoted(p->name).s);
    }
}

static void field_policies(struct loader *ld, const struct field *f, const char *path,
                           const yaml_node_t *val, void *obj)
{
    struct fc_config *cfg = obj;
    const yaml_node_item_t *items;
    struct policy_nodes *pn;
    size_t n, before = ld->n_errors;

    (void)f;
    if (is_null(val))
        return;
    if (val->type != YAML_SEQUENCE_NODE) {
        error_at(ld, val, "%s: expected a list of policies (- name: NAME), got %s", path,
                 describe(val).s);
        return;
    }
    items = val->data.sequence.items.start;
    n = (size_t)(val->data.sequence.items.top - items);
    if (n == 0)
        return;
    if (n > CONFIG_MAX_POLICIES) {
        error_at(ld, val, "%s: %zu policies; at most %d", path, n, CONFIG_MAX_POLICIES);
        return;
    }
    cfg->policies = xcalloc(n, sizeof *cfg->policies);
    cfg->n_policies = n;
    pn = xcalloc(n, sizeof *pn);
    for (size_t i = 0; i < n; i++) {
        struct fc_policy *p = &cfg->policies[i];
        size_t item_before = ld->n_errors;
        char ipath[64];

        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        pn[i].item = node_at(ld, items[i]);
        p->ttl_origin = true;
        p->negative_ttl_ms = DEFAULT_NEGATIVE_TTL_MS;
        ld->policy = &pn[i];
        walk_mapping(ld, ipath, pn[i].item, policy_fields, FC_ARRAY_LEN(policy_fields), p);
        ld->policy = NULL;
        if (ld->n_errors == item_before && p->name == NULL)
            error_at(ld, pn[i].item, "%s: name is required", ipath);
        /* Only a path says which extension a request claims. */
        if (ld->n_errors == item_before && pn[i].ext_types_key && p->path_pattern == NULL)
            error_at(ld, pn[i].ext_types_key, "%s.extension_types: only a policy that matches "
                     "on path checks extensions; add match.path or remove it", ipath);
    }
    /* Order rules only make sense once each policy reads well. */
    if (ld->n_errors == before)
        check_policies(ld, path, pn);
    free(pn);
}

/* trusted_proxies: [10.0.0.0/8, "2001:db8::/32", 192.0.2.7], or one as a
 * plain string; [] (the default) trusts no peer. */
static void add_trusted_proxy(struct loader *ld, const char *path, const yaml_node_t *val,
                              void *ctx)
{
    struct fc_config *cfg = ctx;
    const char *s = get_scalar(ld, path, val);
    char why[160];

    if (s == NULL)
        return;
    if (cidr_parse(s, &cfg->trusted_proxies[cfg->n_trusted_proxies], why, sizeof why) != 0) {
        error_at(ld, val, "%s: %s: %s", path, quoted(s).s, why);
        return;
    }
    cfg->n_trusted_proxies++;
}

static void field_trusted_proxies(struct loader *ld, const struct field *f, const char *path,
                                  const yaml_node_t *val, void *obj)
{
    struct fc_config *cfg = obj;

    (void)f;
    if (is_null(val))
        return;
    if (val->type == YAML_MAPPING_NODE) {
        error_at(ld, val, "%s: expected a list of addresses or CIDR ranges "
                 "([10.0.0.0/8, \"::1\"]), got %s", path, describe(val).s);
        return;
    }
    cfg->trusted_proxies = xcalloc(list_count(val) + 1, sizeof *cfg->trusted_proxies);
    for_each_item(ld, path, val, add_trusted_proxy, cfg);
}

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
    { .key = "cluster",   .fn = field_cluster, SECTION(cluster_fields) },
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
static bool walk_mapping(struct loader *ld, const char *path, const yaml_node_t *node,
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
    for (size_t i = 0; i < cfg->n_policies; i++) {
        struct fc_policy *p = &cfg->policies[i];
        free(p->name);
        if (p->path_pattern != NULL) {
            regfree(&p->path_re);
            free(p->path_pattern);
        }
        for (size_t j = 0; j < p->n_content_types; j++)
            free(p->content_types[j]);
        free(p->content_types);
        free(p->response_cache_control);
        free_ext_types(p);
    }
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
