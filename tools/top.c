/*
 * top.c — `proxyctl top [--once]`: a live view of a running freshcached,
 * like varnishstat or htop.  Every second it reads GET /metrics over the
 * admin socket and draws the frame top_frame.c computes from the last two
 * samples; `q` quits.  `--once` takes two samples a second apart and prints
 * that one frame as plain text, for scripts and for terminals without
 * curses.
 *
 * The screen is ncurses': it knows every terminal's escape sequences,
 * restores the terminal on exit, and turns SIGWINCH into KEY_RESIZE.
 */
#include <curses.h>
#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "answer.h"
#include "proxyctl.h"
#include "top_frame.h"

#define TOP_INTERVAL_S 1.0
/* Live, a daemon that does not answer must not freeze the screen (and `q`)
 * for proxyctl's usual 30 s. */
#define TOP_LIVE_TIMEOUT_S 2.0

static double mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One GET /metrics into *s.  EXIT_OK, or what admin_request() returned
 * (it said why on stderr). */
static int take_sample(const struct opts *o, struct top_sample *s)
{
    struct response r;
    int rc = admin_request(o, "GET", "/metrics", NULL, &r);
    if (rc != EXIT_OK)
        return rc;
    char err[200];
    if (report_failure(&r)) {
        rc = EXIT_FAIL;
    } else if (top_sample_parse(s, r.body, r.body_len, err, sizeof err) != 0) {
        errmsg("unexpected answer to GET /metrics: %s", err);
        rc = EXIT_FAIL;
    }
    s->taken = mono_seconds();
    response_free(&r);
    return rc;
}

static void sleep_until(double when)
{
    double left;
    while ((left = when - mono_seconds()) > 0) {
        struct timespec ts = { .tv_sec = (time_t)left,
                               .tv_nsec = (long)((left - (double)(time_t)left) * 1e9) };
        nanosleep(&ts, NULL);
    }
}

/* --once: one frame, plain text on stdout. */
static int top_once(const struct opts *o, struct top_sample *prev, struct top_sample *cur)
{
    int rc = take_sample(o, prev);
    if (rc != EXIT_OK)
        return rc;
    sleep_until(prev->taken + TOP_INTERVAL_S);
    rc = take_sample(o, cur);
    if (rc != EXIT_OK)
        return rc;
    struct top_frame f;
    top_frame_render(prev, cur, o->socket, time(NULL), &f);
    for (size_t i = 0; i < f.n; i++)
        printf("%s\n", f.line[i]);
    return EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* Live                                                                 */

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/*
 * While curses owns the terminal, anything written to stderr would land in
 * the middle of the screen, and admin_request() reports a lost daemon
 * there.  So stderr goes to a temporary file for the duration; the last
 * line written is shown in the status line instead.
 */
struct err_capture {
    int saved_fd;       /* the real stderr, -1 when not capturing */
    int file_fd;
};

static void capture_start(struct err_capture *c)
{
    c->saved_fd = c->file_fd = -1;
    FILE *tmp = tmpfile();
    if (tmp == NULL)
        return;         /* no capture: messages may smear the screen, no worse */
    c->file_fd = dup(fileno(tmp));
    fclose(tmp);
    fflush(stderr);
    c->saved_fd = dup(STDERR_FILENO);
    if (c->file_fd < 0 || c->saved_fd < 0 || dup2(c->file_fd, STDERR_FILENO) < 0) {
        if (c->file_fd >= 0)
            close(c->file_fd);
        if (c->saved_fd >= 0)
            close(c->saved_fd);
        c->saved_fd = -1;
    }
}

/* The last line written to stderr since the previous call, without the
 * "proxyctl: " prefix; "" when nothing was. */
static void capture_take(struct err_capture *c, char *out, size_t len)
{
    out[0] = '\0';
    if (c->saved_fd < 0)
        return;
    fflush(stderr);
    char buf[4096];
    off_t size = lseek(c->file_fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
    ssize_t n = size > 0 ? pread(c->file_fd, buf, (size_t)(size - from), from) : 0;
    if (ftruncate(c->file_fd, 0) == 0)
        lseek(c->file_fd, 0, SEEK_SET);
    if (n <= 0)
        return;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    const char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    if (strncmp(line, "proxyctl: ", 10) == 0)
        line += 10;
    size_t l = strlen(line);        /* cut to the status line */
    if (l >= len)
        l = len - 1;
    memcpy(out, line, l);
    out[l] = '\0';
}

static void capture_end(struct err_capture *c)
{
    if (c->saved_fd < 0)
        return;
    fflush(stderr);
    dup2(c->saved_fd, STDERR_FILENO);
    close(c->saved_fd);
    close(c->file_fd);
    c->saved_fd = -1;
}

static void draw(const struct top_frame *f, const char *problem)
{
    erase();
    for (size_t i = 0; i < f->n && (int)i < LINES - 1; i++) {
        if (i == 0)
            attron(A_BOLD);
        mvaddnstr((int)i, 0, f->line[i], COLS);
        if (i == 0)
            attroff(A_BOLD);
    }
    /* The status line: the keys, and why the numbers stopped moving. */
    char status[TOP_LINE_MAX + 64];
    if (problem[0])
        snprintf(status, sizeof status, " q quit | %s (retrying)", problem);
    else
        snprintf(status, sizeof status, " q quit | every %.0f s", TOP_INTERVAL_S);
    attron(A_REVERSE);
    mvaddnstr(LINES - 1, 0, status, COLS);
    attroff(A_REVERSE);
    refresh();
}

static int top_live(const struct opts *user_opts, struct top_sample *prev,
                    struct top_sample *cur)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        errmsg("top: needs a terminal (for scripts: proxyctl top --once)");
        return EXIT_USAGE;
    }
    struct opts o = *user_opts;
    if (o.timeout_s > TOP_LIVE_TIMEOUT_S)
        o.timeout_s = TOP_LIVE_TIMEOUT_S;

    /* The first sample before the screen: a daemon that is not there is
     * reported like every other command's, exit 3. */
    int rc = take_sample(&o, cur);
    if (rc != EXIT_OK)
        return rc;

    /* Set before newterm(): curses installs its own SIGINT/SIGTERM
     * handlers (which exit at once) only where none is set. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    setlocale(LC_CTYPE, "");        /* not LC_NUMERIC: the parser wants '.' */
    struct err_capture cap;
    capture_start(&cap);
    SCREEN *screen = newterm(NULL, stdout, stdin);
    if (screen == NULL) {
        capture_end(&cap);
        const char *term = getenv("TERM");
        errmsg("top: cannot drive this terminal (TERM=%s); try proxyctl top --once",
               term ? term : "unset");
        return EXIT_FAIL;
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);

    struct top_frame f;
    char problem[TOP_LINE_MAX] = "";
    top_frame_render(NULL, cur, o.socket, time(NULL), &f);
    draw(&f, problem);
    bool have_prev = false;
    double next = cur->taken + TOP_INTERVAL_S;
    while (!stop_requested) {
        double left = next - mono_seconds();
        timeout(left > 0 ? (int)(left * 1000) + 1 : 0);
        int ch = getch();
        if (ch == 'q' || ch == 'Q')
            break;
        if (ch == KEY_RESIZE) {
            draw(&f, problem);
            continue;
        }
        if (ch != ERR || mono_seconds() < next)
            continue;       /* another key, or a signal woke us early */

        struct top_sample *t = prev;
        prev = cur;
        cur = t;
        if (take_sample(&o, cur) == EXIT_OK) {
            problem[0] = '\0';
            have_prev = true;
        } else {
            /* keep the last good numbers on screen, say why they froze */
            capture_take(&cap, problem, sizeof problem);
            if (!problem[0])
                snprintf(problem, sizeof problem, "no answer from %s", o.socket);
            t = prev;
            prev = cur;
            cur = t;
        }
        if (problem[0] == '\0')
            top_frame_render(have_prev ? prev : NULL, cur, o.socket, time(NULL), &f);
        draw(&f, problem);
        next += TOP_INTERVAL_S;
        if (next < mono_seconds())
            next = mono_seconds() + TOP_INTERVAL_S;     /* fell behind: no burst */
    }
    endwin();
    delscreen(screen);
    capture_end(&cap);
    return EXIT_OK;
}

int cmd_top(const struct opts *o, struct args *a)
{
    bool once = false;
    for (int i = 0; i < a->n; i++) {
        if (strcmp(a->v[i], "--once") == 0)
            once = true;
        else
            return usage_error("top: unknown argument '%s'", a->v[i]);
    }
    if (o->json)
        return usage_error("top: --json does not apply (proxyctl --json stats gives the counters)");

    /* Two samples of about 40 KiB each: on the heap, not the stack. */
    struct top_sample *prev = calloc(1, sizeof *prev), *cur = calloc(1, sizeof *cur);
    int rc;
    if (prev == NULL || cur == NULL) {
        errmsg("out of memory");
        rc = EXIT_FAIL;
    } else if (once) {
        rc = top_once(o, prev, cur);
    } else {
        rc = top_live(o, prev, cur);
    }
    free(prev);
    free(cur);
    return rc;
}
