/*
 * proxyctl.h — what proxyctl.c shares with the commands kept in files of
 * their own (top.c): the options, the arguments, one admin request and its
 * answer, and the error conventions (messages prefixed "proxyctl: " on
 * stderr, the exit statuses below).
 */
#ifndef FRESHCACHE_PROXYCTL_H
#define FRESHCACHE_PROXYCTL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,
    EXIT_USAGE = 2,
    EXIT_CONNECT = 3,
};

struct opts {
    const char *socket;
    bool json;
    double timeout_s;
};

/* A command's own arguments (after its name). */
struct args {
    int n;
    char **v;
};

/* One line of a streamed answer (without its newline). */
typedef void (*line_fn)(void *arg, const char *line, size_t len);

struct response {
    int status;
    char *reason;               /* NUL-terminated */
    char *body;                 /* NUL-terminated, body_len bytes before the NUL */
    size_t body_len;
    bool body_too_large;
    json_t *json;               /* NULL when the body is not JSON */
    /* admin_request_lines: a 2xx body goes to `line` as it arrives */
    line_fn line;
    void *line_arg;
    bool streaming;
};

/* Send METHOD PATH (with an optional JSON body) to o->socket and read the
 * whole answer into *r.  EXIT_OK when an answer (any status) was read, else
 * it prints why and returns EXIT_CONNECT or EXIT_FAIL. */
int admin_request(const struct opts *o, const char *method, const char *path,
                  const json_t *body, struct response *r);
/* The same for an answer streamed as lines (POST /warm): each line of a
 * 2xx body goes to `line` as soon as it is complete, and the timeout
 * bounds each wait for more, not the whole answer.  Another status is
 * read whole into *r, as admin_request does. */
int admin_request_lines(const struct opts *o, const char *method, const char *path,
                        const json_t *body, struct response *r, line_fn line, void *arg);
/* Reading it (response_free, report_failure): answer.h. */

/* "proxyctl: MESSAGE" and the usage on stderr; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "proxyctl: MESSAGE" on stderr. */
void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "--name VALUE", "--name=VALUE", "-x VALUE", "-xVALUE": 1 taken (value
 * in *val, *i advanced), 0 not this option, -1 missing value (printed). */
int take_value(const struct args *a, int *i, const char *lng, const char *shrt,
               const char **val);

/* Commands other commands run too (deploy). */
int purge_generation(const struct opts *o, const char *policy);
int cmd_verify(const struct opts *o, struct args *a);

/* top.c */
int cmd_top(const struct opts *o, struct args *a);
/* warm.c */
int cmd_warm(const struct opts *o, struct args *a);
int cmd_deploy(const struct opts *o, struct args *a);

#endif
