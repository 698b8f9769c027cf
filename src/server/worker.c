/*
 * worker.c — see include/freshcache/server/worker.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "freshcache/base/assert.h"
#include "freshcache/http/http_date.h"
#include "freshcache/server/worker.h"

time_t worker_now(struct worker *w)
{
    struct timeval tv;
    event_base_gettimeofday_cached(w->base, &tv);
    return tv.tv_sec;
}

uint64_t worker_now_ms(struct worker *w)
{
    struct timeval tv;
    event_base_gettimeofday_cached(w->base, &tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

const char *worker_date(struct worker *w)
{
    time_t now = worker_now(w);
    if (now != w->date_sec) {
        http_date_format(now, w->date_buf);
        w->date_sec = now;
    }
    return w->date_buf;
}

int worker_init(struct worker *w, struct server *srv, unsigned id)
{
    memset(w, 0, sizeof *w);
    w->magic = WORKER_MAGIC;
    w->id = id;
    w->srv = srv;
    struct event_config *ec = event_config_new();
    AN(ec);
    /* One thread per base: libevent needs no locking of its own here, but
     * bodies written on other threads wake our clients with event_active,
     * which is why the base is made after evthread_use_pthreads(). */
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (w->base == NULL)
        return -1;
    LIST_INIT(&w->handshakes);
    LIST_INIT(&w->h1_conns);
    LIST_INIT(&w->h2_conns);
    LIST_INIT(&w->fetches);
    LIST_INIT(&w->fetch_pool);
    LIST_INIT(&w->internals);
    TAILQ_INIT(&w->idle_upstreams);
    TAILQ_INIT(&w->reval_open);
    TAILQ_INIT(&w->reval_sent);
    return 0;
}

void *worker_main(void *arg)
{
    struct worker *w = arg;
    CHECK_OBJ_NOTNULL(w, WORKER_MAGIC);
    /* "fc-worker 0": what top -H, perf and gdb show for this thread. */
    char name[16];
    snprintf(name, sizeof name, "fc-worker %u", w->id % 1000);
    pthread_setname_np(pthread_self(), name);
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

void worker_free(struct worker *w)
{
    if (w->magic != WORKER_MAGIC)
        return;
    FC_ASSERT(LIST_EMPTY(&w->h1_conns) && LIST_EMPTY(&w->h2_conns) && LIST_EMPTY(&w->fetches) &&
              LIST_EMPTY(&w->handshakes) && LIST_EMPTY(&w->internals) &&
              TAILQ_EMPTY(&w->reval_open) && TAILQ_EMPTY(&w->reval_sent) &&
              w->reval_send == NULL);
    tls_session_slot_clear(&w->origin_tls);
    FC_ASSERT(w->n_listeners == 0 && w->access_buf == NULL);
    free(w->listeners);
    if (w->base)
        event_base_free(w->base);
    w->magic = 0;
}
