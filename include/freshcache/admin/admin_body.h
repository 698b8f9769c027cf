/*
 * admin_body.h — the admin API's JSON request bodies, read and checked
 * without a connection: admin.c hands over the body's bytes and answers
 * with what comes back (the request's fields, or a status and a message).
 * Pure functions, so they are unit-tested and fuzzed (tests/fuzz/admin-body)
 * on their own.
 *
 * Ownership: on success `out->root` is a JSON reference the caller owns
 * (json_decref); the strings and arrays in *out point into it and live as
 * long as it does.  On failure nothing is left to free.
 */
#ifndef FRESHCACHE_ADMIN_BODY_H
#define FRESHCACHE_ADMIN_BODY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "freshcache/cache/purge.h"

/* Why a body was refused: an HTTP status (400) and the text of the
 * answer's "error", always valid UTF-8 (a long message is cut at a
 * character boundary). */
struct admin_body_error {
    int status;
    char msg[1024];
};

/* Blank (nothing but spaces, tabs, CR, LF)? */
bool admin_body_blank(const char *body, size_t len);

/* The body as a JSON object (an empty one when blank and not `required`)
 * with no members but `allowed` (NULL-terminated); `what` says what it
 * should hold.  The caller owns the result; NULL after filling *e.  For
 * the endpoints whose fields are checked where they are used (POST /warm). */
json_t *admin_body_object(const char *body, size_t len, bool required, const char *what,
                          const char *const *allowed, struct admin_body_error *e);

/* POST /purge  {"url"|"prefix"|"tag": STR [, "soft": BOOL]} */
struct admin_purge_body {
    json_t *root;
    const char *key;            /* "url", "prefix" or "tag" */
    enum purge_kind kind;
    const char *arg;            /* non-empty, no NUL */
    bool soft;
};
int admin_body_purge(const char *body, size_t len, struct admin_purge_body *out,
                     struct admin_body_error *e);

/* POST /purge/generation  [{"policy": NAME}]: policy NULL for all.  Whether
 * the policy exists is the caller's question (404). */
struct admin_generation_body {
    json_t *root;
    const char *policy;
};
int admin_body_generation(const char *body, size_t len, struct admin_generation_body *out,
                          struct admin_body_error *e);

/* POST /verify  {"urls": ["/path", ...]}: 1..max_urls paths, each starting
 * with "/", shorter than path_max, without NUL. */
struct admin_verify_body {
    json_t *root;
    json_t *urls;               /* the array, borrowed from root */
    size_t n;
};
int admin_body_verify(const char *body, size_t len, size_t max_urls, size_t path_max,
                      struct admin_verify_body *out, struct admin_body_error *e);
/* The i-th path of a checked /verify body. */
const char *admin_verify_path(const struct admin_verify_body *v, size_t i);

/* POST /reload: blank or {}. */
int admin_body_reload(const char *body, size_t len, struct admin_body_error *e);

#endif
