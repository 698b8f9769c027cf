/*
 * config_policy.c — the policies list: each policy's name, what it matches
 * (path glob, content type, extension types), its TTL, stale and cookie
 * rules, and the rules across policies (unique names, only the last may
 * catch everything).  Read through the schema in config_schema.h.
 */
#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "freshcache/base/assert.h"
#include "freshcache/config/config.h"
#include "freshcache/config/regex_cost.h"
#include "config_schema.h"

static const struct choice set_cookie_choices[] = {
    { "pass", SET_COOKIE_PASS }, { "store", SET_COOKIE_STORE }, { "strip", SET_COOKIE_STRIP },
    { NULL, 0 },
};

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

void policy_free(struct fc_policy *p)
{
    free(p->name);
    if (p->path_pattern != NULL) {
        regfree(&p->path_re);
        free(p->path_pattern);
    }
    for (size_t i = 0; i < p->n_content_types; i++)
        free(p->content_types[i]);
    free(p->content_types);
    free(p->response_cache_control);
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

void field_policies(struct loader *ld, const struct field *f, const char *path,
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
