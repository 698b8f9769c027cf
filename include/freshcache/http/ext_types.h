/*
 * ext_types.h — the media types a file name's extension claims, and
 * media-type matching.
 *
 * Web cache deception: a path such as /account/settings/x-12345678.css
 * claims a stylesheet; an origin that ignores the suffix answers with the
 * logged-in user's HTML page.  A policy that matched the path (a
 * "hashed assets" regex) must not store that page for everyone, so the
 * cache checks that the response's Content-Type is one the extension
 * stands for.  This file holds the built-in table (the table itself is in
 * ext_types.c, documented in docs/security.md and freshcache.yaml(5));
 * a policy may replace entries (`extension_types`, config.h).
 *
 * Patterns are lower-case "type/subtype", or "type/ *" (without the space)
 * for any subtype of a type.
 */
#ifndef FRESHCACHE_EXT_TYPES_H
#define FRESHCACHE_EXT_TYPES_H

#include <stdbool.h>
#include <stddef.h>

/* The extension of the last segment of `path` (the query, if any, is not
 * part of it): "CSS" for "/a/b.min.CSS?v=1", as written (callers compare
 * case-insensitively).  NULL with *len 0 when the last segment has no dot,
 * ends with one, or is only a dot-file name (".htaccess" claims nothing). */
const char *path_extension(const char *path, size_t path_len, size_t *ext_len);

/* The built-in patterns for extension `ext` (case-insensitive), in a
 * NULL-terminated array; NULL when the table does not know the extension
 * (it then claims no type). */
const char *const *ext_types_builtin(const char *ext, size_t ext_len);

/* Is the media type of Content-Type value `ct` (parameters and
 * surrounding blanks ignored, case-insensitive) one of the `n` patterns? */
bool media_type_in(const char *ct, size_t ct_len, const char *const *patterns, size_t n);

#endif
