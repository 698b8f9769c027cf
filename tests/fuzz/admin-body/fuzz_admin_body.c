/*
 * fuzz_admin_body.c — the admin API's JSON request bodies
 * (src/admin/admin_body.c, jansson underneath): POST /purge,
 * /purge/generation, /verify and /reload.
 *
 * Input: a control byte (which endpoint; for /verify the limits on urls
 * and path length, small so they are reached), then the body.  Checks:
 * an accepted body gives what its contract says (a purge's kind and a
 * non-empty argument without NUL, verify paths starting with "/" within
 * the limits); a refused one gives 400 and a non-empty message that a
 * JSON answer can carry (valid UTF-8).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "freshcache/admin/admin_body.h"
#include "freshcache/base/assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_refusal(const struct admin_body_error *e)
{
    FC_ASSERT(e->status == 400);
    FC_ASSERT(e->msg[0] != '\0');
    json_t *s = json_string(e->msg);
    FC_ASSERT(s != NULL);
    json_decref(s);
}

static void purge(const char *body, size_t len)
{
    struct admin_purge_body b;
    struct admin_body_error e;
    if (admin_body_purge(body, len, &b, &e) != 0) {
        check_refusal(&e);
        return;
    }
    AN(b.root);
    FC_ASSERT(b.arg != NULL && b.arg[0] != '\0');
    FC_ASSERT(strlen(b.arg) == json_string_length(json_object_get(b.root, b.key)));
    switch (b.kind) {
    case PURGE_URL:
        FC_ASSERT(strcmp(b.key, "url") == 0);
        FC_ASSERT(b.arg[0] == '/' || strncmp(b.arg, "http://", 7) == 0 ||
                  strncmp(b.arg, "https://", 8) == 0);
        break;
    case PURGE_PREFIX:
        FC_ASSERT(strcmp(b.key, "prefix") == 0 && b.arg[0] == '/');
        break;
    case PURGE_TAG:
        FC_ASSERT(strcmp(b.key, "tag") == 0);
        break;
    case PURGE_ALL:
        FC_ASSERT(!"PURGE_ALL from a body");
    }
    json_decref(b.root);
}

static void generation(const char *body, size_t len)
{
    struct admin_generation_body b;
    struct admin_body_error e;
    if (admin_body_generation(body, len, &b, &e) != 0) {
        check_refusal(&e);
        return;
    }
    AN(b.root);
    FC_ASSERT(b.policy == NULL || b.policy[0] != '\0');
    json_decref(b.root);
}

static void verify(const char *body, size_t len, size_t max_urls, size_t path_max)
{
    struct admin_verify_body b;
    struct admin_body_error e;
    if (admin_body_verify(body, len, max_urls, path_max, &b, &e) != 0) {
        check_refusal(&e);
        return;
    }
    AN(b.root);
    FC_ASSERT(b.n >= 1 && b.n <= max_urls);
    for (size_t i = 0; i < b.n; i++) {
        const char *p = admin_verify_path(&b, i);
        FC_ASSERT(p[0] == '/' && strlen(p) < path_max);
    }
    json_decref(b.root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    (void)admin_body_blank(body, len);
    switch (ctl & 3) {
    case 0:
        purge(body, len);
        break;
    case 1:
        generation(body, len);
        break;
    case 2:
        verify(body, len, 1 + ((ctl >> 2) & 7), (ctl & 0x20) ? 8 : 1024);
        break;
    case 3: {
        struct admin_body_error e;
        if (admin_body_reload(body, len, &e) != 0)
            check_refusal(&e);
        break;
    }
    }
    return 0;
}
