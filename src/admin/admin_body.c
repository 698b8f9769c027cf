/*
 * admin_body.c — see include/freshcache/admin/admin_body.h.  The messages
 * are the API's (docs/admin-api.md); tests/integration checks several.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "freshcache/admin/admin_body.h"
#include "freshcache/base/assert.h"

static int fail(struct admin_body_error *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Format the message so the answer can carry it as a JSON string (which
 * must be UTF-8): a cut in the middle of a character (a long member name
 * from the body) drops the partial character, and text that is still not
 * UTF-8 (jansson quotes the offending input in some parse errors) has
 * every non-ASCII byte replaced by '?'. */
static int fail(struct admin_body_error *e, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->status = status;
    if (n >= (int)sizeof e->msg) {
        size_t len = sizeof e->msg - 1;
        size_t i = len;
        /* back to the lead byte of the last character */
        while (i > 0 && ((unsigned char)e->msg[i - 1] & 0xc0) == 0x80)
            i--;
        if (i > 0 && ((unsigned char)e->msg[i - 1] & 0x80)) {
            unsigned char lead = (unsigned char)e->msg[i - 1];
            size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
            if (len - (i - 1) < need)
                e->msg[i - 1] = '\0';
        }
    }
    json_t *probe = json_string(e->msg);
    if (probe != NULL) {
        json_decref(probe);
    } else {
        for (char *p = e->msg; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
    }
    return -1;
}

bool admin_body_blank(const char *body, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n')
            return false;
    return true;
}

/* The body as a JSON object: an empty object when the body is blank and
 * not `required`.  NULL after filling *e. */
static json_t *body_object(const char *body, size_t len, bool required, const char *what,
                           struct admin_body_error *e)
{
    if (admin_body_blank(body, len)) {
        if (!required)
            return json_object();
        fail(e, 400, "request body required: %s", what);
        return NULL;
    }
    json_error_t jerr;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        fail(e, 400, "invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        fail(e, 400, "request body must be a JSON object: %s", what);
        return NULL;
    }
    return o;
}

/* Reject members other than `allowed` (NULL-terminated): a typo such as
 * {"polcy": "html"} must not silently bump every policy. */
static bool only_keys(json_t *o, const char *const *allowed, struct admin_body_error *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        bool ok = false;
        for (const char *const *k = allowed; *k; k++)
            ok = ok || strcmp(*k, key) == 0;
        if (!ok) {
            fail(e, 400, "unknown field \"%s\"", key);
            return false;
        }
    }
    return true;
}

/* body_object() and only_keys() together; NULL after filling *e. */
json_t *admin_body_object(const char *body, size_t len, bool required, const char *what,
                              const char *const *allowed, struct admin_body_error *e)
{
    json_t *o = body_object(body, len, required, what, e);
    if (o != NULL && !only_keys(o, allowed, e)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Fill *e and drop the object: every refusal after parsing ends so. */
#define REFUSE(o, e, ...) (json_decref(o), fail((e), 400, __VA_ARGS__))

int admin_body_purge(const char *body, size_t len, struct admin_purge_body *out,
                     struct admin_body_error *e)
{
    static const char usage[] =
        "exactly one of \"url\", \"prefix\" or \"tag\" (a string), and optionally \"soft\": true";
    static const char *const keys[] = { "url", "prefix", "tag", "soft", NULL };
    json_t *o = admin_body_object(body, len, true, usage, keys, e);
    if (o == NULL)
        return -1;
    static const struct { const char *key; enum purge_kind kind; } kinds[] = {
        { "url", PURGE_URL }, { "prefix", PURGE_PREFIX }, { "tag", PURGE_TAG },
    };
    memset(out, 0, sizeof *out);
    unsigned n = 0;
    json_t *argv = NULL;
    for (size_t i = 0; i < FC_ARRAY_LEN(kinds); i++) {
        json_t *v = json_object_get(o, kinds[i].key);
        if (v == NULL)
            continue;
        n++;
        if (!json_is_string(v) || json_string_length(v) == 0)
            return REFUSE(o, e, "\"%s\" must be a non-empty string", kinds[i].key);
        out->key = kinds[i].key;
        out->kind = kinds[i].kind;
        argv = v;
    }
    if (n != 1)
        return REFUSE(o, e, "%s", usage);
    out->arg = json_string_value(argv);
    if (strlen(out->arg) != json_string_length(argv))
        return REFUSE(o, e, "\"%s\" must not contain NUL", out->key);
    if (out->kind == PURGE_URL && out->arg[0] != '/' && strncmp(out->arg, "http://", 7) != 0 &&
        strncmp(out->arg, "https://", 8) != 0)
        return REFUSE(o, e, "\"url\" must be a path (\"/p?q\") or an absolute http(s) URL");
    if (out->kind == PURGE_PREFIX && out->arg[0] != '/')
        return REFUSE(o, e, "\"prefix\" must be a path prefix starting with \"/\"");
    json_t *sv = json_object_get(o, "soft");
    if (sv != NULL) {
        if (!json_is_boolean(sv))
            return REFUSE(o, e, "\"soft\" must be true or false");
        out->soft = json_is_true(sv);
    }
    out->root = o;
    return 0;
}

int admin_body_generation(const char *body, size_t len, struct admin_generation_body *out,
                          struct admin_body_error *e)
{
    static const char *const keys[] = { "policy", NULL };
    json_t *o = admin_body_object(body, len, false, "{} or {\"policy\": NAME}", keys, e);
    if (o == NULL)
        return -1;
    memset(out, 0, sizeof *out);
    json_t *pv = json_object_get(o, "policy");
    if (pv != NULL && !json_is_null(pv)) {
        if (!json_is_string(pv) || json_string_length(pv) == 0)
            return REFUSE(o, e, "\"policy\" must be a policy name (a non-empty string)");
        out->policy = json_string_value(pv);
    }
    out->root = o;
    return 0;
}

int admin_body_verify(const char *body, size_t len, size_t max_urls, size_t path_max,
                      struct admin_verify_body *out, struct admin_body_error *e)
{
    static const char usage[] = "{\"urls\": [\"/path\", ...]}";
    static const char *const keys[] = { "urls", NULL };
    json_t *o = admin_body_object(body, len, true, usage, keys, e);
    if (o == NULL)
        return -1;
    memset(out, 0, sizeof *out);
    json_t *urls = json_object_get(o, "urls");
    if (!json_is_array(urls) || json_array_size(urls) == 0)
        return REFUSE(o, e, "\"urls\" must be a non-empty array of paths: %s", usage);
    size_t n = json_array_size(urls);
    if (n > max_urls)
        return REFUSE(o, e, "at most %zu urls per request", max_urls);
    for (size_t i = 0; i < n; i++) {
        json_t *u = json_array_get(urls, i);
        const char *s = json_string_value(u);
        if (!json_is_string(u) || s[0] != '/' || strlen(s) != json_string_length(u) ||
            json_string_length(u) >= path_max)
            return REFUSE(o, e, "urls[%zu] must be a path starting with \"/\" (at most %zu bytes)",
                          i, path_max - 1);
    }
    out->root = o;
    out->urls = urls;
    out->n = n;
    return 0;
}

const char *admin_verify_path(const struct admin_verify_body *v, size_t i)
{
    FC_ASSERT(i < v->n);
    return json_string_value(json_array_get(v->urls, i));
}

int admin_body_reload(const char *body, size_t len, struct admin_body_error *e)
{
    static const char *const keys[] = { NULL };
    json_t *o = admin_body_object(body, len, false, "none", keys, e);
    if (o == NULL)
        return -1;
    json_decref(o);
    return 0;
}
