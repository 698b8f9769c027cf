/*
 * regex_cost.c — see include/freshcache/config/regex_cost.h.
 *
 * One pass over the pattern with a stack of open groups.  In each group,
 * `total` sums the atoms finished so far (alternatives add: all of them
 * are compiled) and `last` is the cost of the atom a following
 * repetition applies to; a repetition multiplies `last`.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include "freshcache/config/regex_cost.h"

#define COST_CAP UINT64_C(0xffffffff)
#define MAX_DEPTH 64

struct group {
    uint64_t total;
    uint64_t last;
};

static uint64_t add(uint64_t a, uint64_t b)
{
    return a + b > COST_CAP ? COST_CAP : a + b;
}

static uint64_t mul(uint64_t a, uint64_t b)
{
    return b != 0 && a > COST_CAP / b ? COST_CAP : a * b;
}

static void finish_atom(struct group *g)
{
    g->total = add(g->total, g->last);
    g->last = 0;
}

/* Past a bracket expression starting at p ('['): "[]a]", "[^]a]" and
 * "[[:alpha:]]" included.  At the end of the string when unterminated. */
static const char *skip_bracket(const char *p)
{
    p++;
    if (*p == '^')
        p++;
    if (*p == ']')
        p++;
    while (*p && *p != ']') {
        if (*p == '[' && (p[1] == ':' || p[1] == '=' || p[1] == '.')) {
            char kind = p[1];
            p += 2;
            while (*p && !(p[0] == kind && p[1] == ']'))
                p++;
            if (*p)
                p += 2;
            continue;
        }
        p++;
    }
    return *p ? p + 1 : p;
}

/* How many copies "{n}", "{n,}" or "{n,m}" at p makes; *end past it.
 * false when it is not a valid interval (then '{' is a literal). */
static bool interval(const char *p, uint64_t *copies, const char **end)
{
    char *e;
    if (!isdigit((unsigned char)p[1]))
        return false;
    unsigned long n = strtoul(p + 1, &e, 10), m = n;
    if (*e == ',') {
        if (isdigit((unsigned char)e[1]))
            m = strtoul(e + 1, &e, 10);
        else {
            m = n + 1;          /* x{n,} is n copies and x* */
            e++;
        }
    }
    if (*e != '}')
        return false;
    *copies = (m > n ? m : n) + 1;
    *end = e + 1;
    return true;
}

uint64_t regex_cost(const char *pattern)
{
    struct group stack[MAX_DEPTH + 1] = { { 0, 0 } };
    size_t depth = 0;
    uint64_t deep = 0;          /* groups opened past MAX_DEPTH, still open */
    const char *p = pattern;

    while (*p) {
        struct group *g = &stack[depth];
        uint64_t copies;
        const char *end;
        switch (*p) {
        case '(':
            finish_atom(g);
            if (depth < MAX_DEPTH) {
                stack[++depth] = (struct group){ 0, 0 };
            } else {
                deep++;
            }
            p++;
            break;
        case ')':
            if (deep > 0) {
                deep--;
            } else if (depth > 0) {
                finish_atom(g);
                uint64_t inner = add(g->total, 1);
                depth--;
                stack[depth].last = inner;
            } else {
                finish_atom(g);
                g->last = 1;        /* a stray ')' is a literal in ERE */
            }
            p++;
            break;
        case '|':
            finish_atom(g);
            p++;
            break;
        case '*':
        case '?':
        case '+':
            /* glibc: x+ is x x*; x* and x? keep one copy */
            g->last = add(mul(g->last ? g->last : 1, *p == '+' ? 2 : 1), 1);
            p++;
            break;
        case '{':
            if (interval(p, &copies, &end)) {
                g->last = add(mul(g->last ? g->last : 1, copies), 1);
                p = end;
                break;
            }
            finish_atom(g);
            g->last = 1;
            p++;
            break;
        case '[':
            finish_atom(g);
            g->last = 1;
            p = skip_bracket(p);
            break;
        case '\\':
            finish_atom(g);
            g->last = 1;
            p += p[1] ? 2 : 1;
            break;
        default:
            finish_atom(g);
            g->last = 1;
            p++;
            break;
        }
    }
    /* Unclosed groups (regcomp refuses them) count what they hold. */
    while (depth > 0) {
        finish_atom(&stack[depth]);
        uint64_t inner = stack[depth].total;
        depth--;
        stack[depth].last = add(stack[depth].last, inner);
    }
    finish_atom(&stack[0]);
    return stack[0].total;
}
