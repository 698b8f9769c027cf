/*
 * admin_verify.c — POST /verify: fetch the given paths from the origin and
 * compare them with what is stored (admin/verify.c does the work).  The
 * answer comes from a callback; a verify_pending outlives the connection
 * if the client leaves, and the callback then only frees it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "freshcache/admin/admin_body.h"
#include "freshcache/admin/admin_ops.h"
#include "freshcache/base/assert.h"
#include "freshcache/base/log.h"
#include "freshcache/server/server.h"
#include "admin_int.h"

static void verify_pending_free(struct verify_pending *vp)
{
    CHECK_OBJ_NOTNULL(vp, VERIFY_PENDING_MAGIC);
    for (size_t i = 0; i < vp->n; i++)
        free(vp->paths[i]);
    free(vp->paths);
    vp->magic = 0;
    free(vp);
}

/* Called once by ops_verify on our event loop (possibly from inside the
 * ops_verify call itself). */
static void verify_done(void *arg, struct verify_result *results, size_t n)
{
    struct verify_pending *vp = arg;
    CHECK_OBJ_NOTNULL(vp, VERIFY_PENDING_MAGIC);
    struct admin_conn *c = vp->conn;
    if (c == NULL) {
        log_debug("admin: verify finished after its client left");
        verify_pending_free(vp);
        return;
    }
    CHECK_OBJ_NOTNULL(c, ADMIN_CONN_MAGIC);
    FC_ASSERT(c->pending == vp);
    c->pending = NULL;
    vp->conn = NULL;

    json_t *list = json_array();
    unsigned stale = 0;
    for (size_t i = 0; i < n; i++) {
        const struct verify_result *vr = &results[i];
        json_t *e = json_object();
        json_object_set_new(e, "url", json_stringn(vr->path, strnlen(vr->path, sizeof vr->path)));
        json_object_set_new(e, "proxy_sha256", json_string(vr->proxy_sha256));
        json_object_set_new(e, "origin_sha256", json_string(vr->origin_sha256));
        json_object_set_new(e, "proxy_status", json_integer(vr->proxy_status));
        json_object_set_new(e, "origin_status", json_integer(vr->origin_status));
        json_object_set_new(e, "stored", json_boolean(vr->proxy_sha256[0] != '\0'));
        json_object_set_new(e, "stale", json_boolean(vr->stale));
        if (vr->error[0])
            json_object_set_new(e, "error", json_string(vr->error));
        json_array_append_new(list, e);
        if (vr->stale)
            stale++;
    }
    log_info("admin: verified %zu url%s: %u stale [%s]", n, n == 1 ? "" : "s", stale, c->who);
    json_t *r = json_object();
    json_object_set_new(r, "results", list);
    json_object_set_new(r, "stale", json_integer(stale));
    verify_pending_free(vp);

    /* The read timeout was lifted while waiting; parse on from the loop. */
    struct timeval *t = &c->a->timeout;
    bufferevent_set_timeouts(c->bev, t, t);
    reply_json(c, 200, r, NULL);
    event_active(c->kick, EV_WRITE, 0);
}

/* POST /verify  {"urls": ["/", "/app.js"]} */
void do_verify(struct admin_conn *c)
{
    struct admin_verify_body b;
    struct admin_body_error e;
    size_t len;
    const char *text = body_text(c, &len);
    if (admin_body_verify(text, len, ADMIN_MAX_VERIFY_URLS,
                          sizeof ((struct verify_result *)0)->path, &b, &e) != 0) {
        reply_body_error(c, &e);
        return;
    }
    json_t *o = b.root;
    size_t n = b.n;
    struct verify_pending *vp = calloc(1, sizeof *vp);
    AN(vp);
    vp->magic = VERIFY_PENDING_MAGIC;
    vp->conn = c;
    vp->n = n;
    vp->paths = calloc(n, sizeof *vp->paths);
    AN(vp->paths);
    for (size_t i = 0; i < n; i++) {
        vp->paths[i] = strdup(admin_verify_path(&b, i));
        AN(vp->paths[i]);
    }
    json_decref(o);

    /* While the origin is asked: no idle timeout, but keep reading so a
     * client that leaves is noticed (conn_event). */
    struct timeval *t = &c->a->timeout;
    bufferevent_set_timeouts(c->bev, NULL, t);
    c->pending = vp;
    log_debug("admin: verifying %zu url%s [%s]", n, n == 1 ? "" : "s", c->who);
    int rc = ops_verify(c->a->srv, c->a->base, (const char *const *)vp->paths, n, verify_done, vp);
    if (rc != 0 && c->pending == vp) {
        /* Not started, and the callback will not come. */
        c->pending = NULL;
        verify_pending_free(vp);
        bufferevent_set_timeouts(c->bev, t, t);
        log_error("admin: verify could not be started [%s]", c->who);
        reply_error(c, 500, NULL, "verify could not be started");
    }
}
