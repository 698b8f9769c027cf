/*
 * policy.c — see include/freshcache/policy.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "freshcache/cache/policy.h"
#include "freshcache/http/ext_types.h"

static bool type_matches(const struct fc_policy *p, const char *ct, size_t len)
{
    return media_type_in(ct, len, (const char *const *)p->content_types, p->n_content_types);
}

int policy_match(const struct fc_config *cfg, const char *path, size_t path_len,
                 const char *content_type, size_t ct_len)
{
    const char *q = memchr(path, '?', path_len);
    if (q)
        path_len = (size_t)(q - path);
    char stack[2048];
    char *p = path_len < sizeof stack ? stack : malloc(path_len + 1);
    if (p == NULL)
        return -1;
    memcpy(p, path, path_len);
    p[path_len] = '\0';
    int found = -1;
    for (size_t i = 0; i < cfg->n_policies && found < 0; i++) {
        const struct fc_policy *pol = &cfg->policies[i];
        if (pol->path_pattern && regexec(&pol->path_re, p, 0, NULL, 0) != 0)
            continue;
        if (pol->n_content_types &&
            (content_type == NULL || !type_matches(pol, content_type, ct_len)))
            continue;
        found = (int)i;
    }
    if (p != stack)
        free(p);
    return found;
}

bool policy_is_hashed_assets(const struct fc_policy *p)
{
    return p->path_pattern != NULL && !p->ttl_origin && p->ttl_ms >= 86400ULL * 1000;
}

/* The policy's own entry for `ext`, or NULL. */
static const struct fc_ext_types *own_entry(const struct fc_policy *p, const char *ext, size_t len)
{
    for (size_t i = 0; i < p->n_ext_types; i++)
        if (strlen(p->ext_types[i].ext) == len && strncasecmp(p->ext_types[i].ext, ext, len) == 0)
            return &p->ext_types[i];
    return NULL;
}

/* The patterns the extension of the last segment of `path` claims, in
 * *types; the count (0: no claim). */
static size_t claimed_types(const struct fc_policy *p, const char *path, size_t path_len,
                            const char *const **types)
{
    size_t el, n = 0;
    const char *ext = path_extension(path, path_len, &el);
    if (ext == NULL)
        return 0;
    const struct fc_ext_types *own = own_entry(p, ext, el);
    if (own) {
        *types = (const char *const *)own->types;
        return own->n_types;
    }
    *types = ext_types_builtin(ext, el);
    while (*types && (*types)[n])
        n++;
    return n;
}

bool policy_type_agrees(const struct fc_policy *p, const char *path, size_t path_len,
                        const char *content_type, size_t ct_len)
{
    if (p->path_pattern == NULL)
        return true;
    const char *q = memchr(path, '?', path_len);
    if (q)
        path_len = (size_t)(q - path);
    const char *const *types = NULL;
    size_t n = claimed_types(p, path, path_len, &types);
    if (n == 0) {
        /* "/x.css;jsessionid=1": many servers read what follows a ';' in
         * a segment as parameters, so the name before it counts too (and
         * "/account;x.css" claims css as written). */
        const char *seg = path;
        for (size_t i = 0; i < path_len; i++)
            if (path[i] == '/')
                seg = path + i + 1;
        const char *semi = memchr(seg, ';', path_len - (size_t)(seg - path));
        if (semi)
            n = claimed_types(p, path, (size_t)(semi - path), &types);
    }
    if (n == 0)
        return true;        /* the path claims no type */
    /* A claim and no Content-Type: a browser would sniff it, maybe as a
     * page.  Not what the path promised. */
    return content_type != NULL && media_type_in(content_type, ct_len, types, n);
}
