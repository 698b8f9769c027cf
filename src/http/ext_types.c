/*
 * ext_types.c — see include/freshcache/http/ext_types.h.
 *
 * The table lists what origins in the wild send for each extension: the
 * registered type first, then the older names web servers and frameworks
 * still use (nginx's and Apache's mime.types, Express, Django, Rails).
 * It is deliberately not lenient beyond that: a type missing here costs a
 * response that is not stored (it still reaches the client), while a type
 * too many could store someone's page for everyone.  application/
 * octet-stream is in no entry: it is what a server says when it does not
 * know, and a private download can be one.  A policy's extension_types
 * replaces an entry when an origin needs another type.
 *
 * Keep docs/security.md's table in step with this one.
 */
#include <string.h>
#include <strings.h>

#include "freshcache/http/ext_types.h"

#define JAVASCRIPT                                                                           \
    "text/javascript", "application/javascript", "application/x-javascript",                 \
        "application/ecmascript", "application/x-ecmascript", "text/ecmascript",             \
        "text/x-javascript"
#define FONT                                                                                 \
    "font/*", "application/font-woff", "application/font-woff2", "application/x-font-woff",  \
        "application/x-font-ttf", "application/x-font-truetype", "application/x-font-otf",   \
        "application/x-font-opentype", "application/font-sfnt", "application/vnd.ms-fontobject"

static const struct {
    const char *ext;
    const char *const *types;       /* NULL-terminated */
} table[] = {
    /* stylesheets and scripts */
    { "css", (const char *const[]){ "text/css", NULL } },
    { "js", (const char *const[]){ JAVASCRIPT, NULL } },
    { "mjs", (const char *const[]){ JAVASCRIPT, NULL } },
    { "cjs", (const char *const[]){ JAVASCRIPT, NULL } },
    { "map", (const char *const[]){ "application/json", NULL } },
    { "wasm", (const char *const[]){ "application/wasm", NULL } },
    /* data */
    { "json", (const char *const[]){ "application/json", NULL } },
    { "webmanifest", (const char *const[]){ "application/manifest+json", "application/json",
                                             NULL } },
    { "xml", (const char *const[]){ "application/xml", "text/xml", NULL } },
    { "txt", (const char *const[]){ "text/plain", NULL } },
    { "pdf", (const char *const[]){ "application/pdf", NULL } },
    /* images: any raster type (origins mislabel png and jpeg); SVG is a
     * document with scripts, so only its own type */
    { "png", (const char *const[]){ "image/*", NULL } },
    { "apng", (const char *const[]){ "image/*", NULL } },
    { "jpg", (const char *const[]){ "image/*", NULL } },
    { "jpeg", (const char *const[]){ "image/*", NULL } },
    { "gif", (const char *const[]){ "image/*", NULL } },
    { "webp", (const char *const[]){ "image/*", NULL } },
    { "avif", (const char *const[]){ "image/*", NULL } },
    { "ico", (const char *const[]){ "image/*", NULL } },
    { "bmp", (const char *const[]){ "image/*", NULL } },
    { "svg", (const char *const[]){ "image/svg+xml", NULL } },
    /* fonts: font/ *, and the application/ names from before RFC 8081 */
    { "woff", (const char *const[]){ FONT, NULL } },
    { "woff2", (const char *const[]){ FONT, NULL } },
    { "ttf", (const char *const[]){ FONT, NULL } },
    { "otf", (const char *const[]){ FONT, NULL } },
    { "eot", (const char *const[]){ FONT, NULL } },
    /* media */
    { "mp4", (const char *const[]){ "video/mp4", NULL } },
    { "webm", (const char *const[]){ "video/webm", "audio/webm", NULL } },
    { "mp3", (const char *const[]){ "audio/mpeg", NULL } },
    { "ogg", (const char *const[]){ "audio/ogg", "video/ogg", "application/ogg", NULL } },
};

const char *path_extension(const char *path, size_t path_len, size_t *ext_len)
{
    const char *q = memchr(path, '?', path_len);
    if (q)
        path_len = (size_t)(q - path);
    const char *seg = path;
    for (size_t i = 0; i < path_len; i++)
        if (path[i] == '/')
            seg = path + i + 1;
    size_t seg_len = path_len - (size_t)(seg - path);
    const char *dot = NULL;
    for (size_t i = 1; i < seg_len; i++)   /* from 1: ".htaccess" has no extension */
        if (seg[i] == '.')
            dot = seg + i;
    *ext_len = 0;
    if (dot == NULL || dot + 1 == seg + seg_len)
        return NULL;
    *ext_len = seg_len - (size_t)(dot + 1 - seg);
    return dot + 1;
}

const char *const *ext_types_builtin(const char *ext, size_t ext_len)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strlen(table[i].ext) == ext_len && strncasecmp(table[i].ext, ext, ext_len) == 0)
            return table[i].types;
    return NULL;
}

bool media_type_in(const char *ct, size_t ct_len, const char *const *patterns, size_t n)
{
    /* the media type: up to ';', blanks trimmed */
    const char *semi = memchr(ct, ';', ct_len);
    if (semi)
        ct_len = (size_t)(semi - ct);
    while (ct_len && (ct[0] == ' ' || ct[0] == '\t')) {
        ct++;
        ct_len--;
    }
    while (ct_len && (ct[ct_len - 1] == ' ' || ct[ct_len - 1] == '\t'))
        ct_len--;
    for (size_t i = 0; i < n; i++) {
        const char *want = patterns[i];
        size_t wl = strlen(want);
        if (wl >= 2 && want[wl - 1] == '*' && want[wl - 2] == '/') {
            /* "type/ *": the type and its slash, and some subtype after */
            if (ct_len > wl - 1 && strncasecmp(ct, want, wl - 1) == 0)
                return true;
        } else if (wl == ct_len && strncasecmp(ct, want, ct_len) == 0) {
            return true;
        }
    }
    return false;
}
