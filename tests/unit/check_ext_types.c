/*
 * check_ext_types.c — the extension -> media type table and media-type
 * matching (src/http/ext_types.c): the extension of a path's last segment,
 * every family of the table (stylesheets, scripts, source maps, images,
 * SVG, fonts with their pre-RFC 8081 names), what it refuses (HTML for a
 * .css, octet-stream, an image type for an SVG), and type matching with
 * parameters, case and "type/ *" patterns.
 */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/http/ext_types.h"

static const char *ext_of(const char *path, char *buf, size_t cap)
{
    size_t n;
    const char *e = path_extension(path, strlen(path), &n);
    if (e == NULL) {
        ck_assert_uint_eq(n, 0);
        return NULL;
    }
    ck_assert_uint_lt(n, cap);
    memcpy(buf, e, n);
    buf[n] = '\0';
    return buf;
}

START_TEST(extension_of_last_segment)
{
    static const struct {
        const char *path, *ext;
    } c[] = {
        { "/app.3f9a2c1d.js", "js" },
        { "/account/settings/x-12345678.css", "css" },
        { "/a/b.min.CSS?v=1.2", "CSS" },        /* as written; the query is not the path */
        { "/a.css/b", NULL },                   /* the last segment has none */
        { "/a.css/", NULL },
        { "/dir.v2/file", NULL },
        { "/.htaccess", NULL },                 /* a dot-file name is no extension */
        { "/a/.env.css", "css" },
        { "/file.", NULL },
        { "/", NULL },
        { "", NULL },
        { "/x?y.css", NULL },
        { "/font.woff2", "woff2" },
        { "/x;y.css", "css" },                  /* parameters are the caller's business */
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        char buf[64];
        const char *got = ext_of(c[i].path, buf, sizeof buf);
        if (c[i].ext == NULL)
            ck_assert_msg(got == NULL, "%s: extension \"%s\", expected none", c[i].path, got);
        else
            ck_assert_msg(got && strcmp(got, c[i].ext) == 0, "%s: \"%s\", expected \"%s\"",
                          c[i].path, got ? got : "(none)", c[i].ext);
    }
    /* path_len is honoured: the bytes after it are not read */
    size_t n;
    const char *e = path_extension("/a.js.css", 5, &n);
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(memcmp(e, "js", 2), 0);
}
END_TEST

/* Does extension `ext` (built-in table) accept Content-Type `ct`? */
static bool accepts(const char *ext, const char *ct)
{
    const char *const *t = ext_types_builtin(ext, strlen(ext));
    ck_assert_msg(t != NULL, "%s: not in the table", ext);
    size_t n = 0;
    while (t[n])
        n++;
    ck_assert_uint_gt(n, 0);
    return media_type_in(ct, strlen(ct), t, n);
}

struct agree_case {
    const char *ext, *ct;
    bool ok;
};

START_TEST(table_families)
{
    static const struct agree_case c[] = {
        /* stylesheets */
        { "css", "text/css", true },
        { "css", "text/css; charset=utf-8", true },
        { "CSS", "Text/CSS", true },
        { "css", "text/html; charset=utf-8", false },   /* the deception page */
        { "css", "text/plain", false },
        { "css", "application/octet-stream", false },
        /* scripts, every name origins use */
        { "js", "text/javascript", true },
        { "js", "application/javascript", true },
        { "js", "application/x-javascript", true },
        { "js", "application/ecmascript", true },
        { "js", "text/ecmascript", true },
        { "mjs", "text/javascript;charset=UTF-8", true },
        { "cjs", "application/javascript", true },
        { "js", "text/html", false },
        { "js", "application/json", false },
        /* source maps */
        { "map", "application/json", true },
        { "map", "application/json; charset=utf-8", true },
        { "map", "text/html", false },
        /* raster images: any image type */
        { "png", "image/png", true },
        { "png", "image/webp", true },
        { "jpg", "image/jpeg", true },
        { "jpeg", "image/jpeg", true },
        { "gif", "image/gif", true },
        { "webp", "image/webp", true },
        { "avif", "image/avif", true },
        { "ico", "image/vnd.microsoft.icon", true },
        { "png", "text/html", false },
        { "png", "image/", false },                      /* no subtype */
        { "png", "imagex/png", false },
        /* SVG is a document: only its own type */
        { "svg", "image/svg+xml", true },
        { "svg", "image/png", false },
        { "svg", "text/html", false },
        /* fonts: font/ *, and the older application types */
        { "woff", "font/woff", true },
        { "woff2", "font/woff2", true },
        { "ttf", "font/ttf", true },
        { "otf", "font/otf", true },
        { "woff", "application/font-woff", true },
        { "woff", "application/x-font-woff", true },
        { "ttf", "application/x-font-ttf", true },
        { "ttf", "application/font-sfnt", true },
        { "eot", "application/vnd.ms-fontobject", true },
        { "otf", "application/x-font-opentype", true },
        { "woff2", "text/html", false },
        { "woff2", "application/octet-stream", false },
        /* data */
        { "json", "application/json", true },
        { "json", "text/html", false },
        { "txt", "text/plain; charset=us-ascii", true },
        { "xml", "text/xml", true },
        { "wasm", "application/wasm", true },
        { "webmanifest", "application/manifest+json", true },
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        ck_assert_msg(accepts(c[i].ext, c[i].ct) == c[i].ok, ".%s with %s: %s, expected %s",
                      c[i].ext, c[i].ct, c[i].ok ? "refused" : "accepted",
                      c[i].ok ? "accepted" : "refused");
}
END_TEST

START_TEST(unknown_extensions)
{
    static const char *const none[] = { "php", "html5", "aspx", "", "cs", "csss", "j" };
    for (size_t i = 0; i < sizeof none / sizeof *none; i++)
        ck_assert_msg(ext_types_builtin(none[i], strlen(none[i])) == NULL,
                      "\"%s\" should claim no type", none[i]);
    /* ext_len is honoured */
    ck_assert_ptr_nonnull(ext_types_builtin("cssx", 3));
    ck_assert_ptr_null(ext_types_builtin("css", 2));
}
END_TEST

START_TEST(media_type_matching)
{
    static const char *const pats[] = { "text/css", "font/*" };
    static const struct {
        const char *ct;
        bool ok;
    } c[] = {
        { "text/css", true },
        { "  text/css  ; charset=utf-8", true },
        { "TEXT/CSS", true },
        { "text/cssx", false },
        { "text/cs", false },
        { "text/css2; a=b", false },
        { "font/woff2", true },
        { "FONT/ttf;x=y", true },
        { "font/", false },
        { "font", false },
        { "fontx/woff", false },
        { "", false },
        { ";text/css", false },
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        ck_assert_msg(media_type_in(c[i].ct, strlen(c[i].ct), pats, 2) == c[i].ok,
                      "\"%s\": %s", c[i].ct, c[i].ok ? "no match" : "matched");
    /* ct_len is honoured, and no patterns match nothing */
    ck_assert(media_type_in("text/cssXYZ", 8, pats, 2));
    ck_assert(!media_type_in("text/css", 8, pats, 0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ext_types");
    TCase *tc = tcase_create("ext_types");
    tcase_add_test(tc, extension_of_last_segment);
    tcase_add_test(tc, table_families);
    tcase_add_test(tc, unknown_extensions);
    tcase_add_test(tc, media_type_matching);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
