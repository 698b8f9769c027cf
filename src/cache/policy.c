/*
 * policy.c — see include/freshcache/policy.h.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "freshcache/cache/policy.h"

static bool type_matches(const struct fc_policy *p, const char *ct, size_t len)
{
    /* media type = up to ';', trimmed */
    const char *semi = memchr(ct, ';', len);
    if (semi)
        len = (size_t)(semi - ct);
    while (len && (ct[0] == ' ' || ct[0] == '\t')) {
        ct++;
        len--;
    }
    while (len && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
        len--;
    for (size_t i = 0; i < p->n_content_types; i++) {
        const char *want = p->content_types[i];
        size_t wl = strlen(want);
        if (wl >= 2 && want[wl - 1] == '*' && want[wl - 2] == '/') {
            if (len >= wl - 1 && strncasecmp(ct, want, wl - 1) == 0)
                return true;
        } else if (wl == len && strncasecmp(ct, want, len) == 0) {
            return true;
        }
    }
    return false;
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
