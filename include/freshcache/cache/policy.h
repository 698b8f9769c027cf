/*
 * policy.h — which configured policy a response falls under.
 *
 * First match wins.  A policy matching on `path` tests the request path
 * (without the query) against its POSIX ERE; one matching on
 * `content_type` tests the response's media type (parameters dropped,
 * case-insensitive; "text/ *" without the space matches any text type); a policy with both
 * needs both; a policy with neither matches everything.  The path is known
 * at request time, the content type only when the origin answers, so the
 * decision is made when the response head arrives.
 */
#ifndef FRESHCACHE_POLICY_H
#define FRESHCACHE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "freshcache/config/config.h"

/* Index into cfg->policies, or -1 when none matches. */
int policy_match(const struct fc_config *cfg, const char *path, size_t path_len,
                 const char *content_type, size_t ct_len);

/* A policy for content-hashed file names: matched by path, with a fixed
 * TTL of a day or more.  A changed body under such a URL is a deploy bug
 * (the asset changed without being renamed) worth a warning. */
bool policy_is_hashed_assets(const struct fc_policy *p);

/* Web cache deception: under a policy that matched on path, a response is
 * stored only when its Content-Type (NULL: none) is one the extension of
 * the path's last segment stands for: the policy's extension_types entry,
 * else the built-in table (http/ext_types.h).  True when the policy does
 * not match on path, or the path claims no extension either knows. */
bool policy_type_agrees(const struct fc_policy *p, const char *path, size_t path_len,
                        const char *content_type, size_t ct_len);

#endif
