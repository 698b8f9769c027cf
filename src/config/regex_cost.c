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
/* What can match "" may be counted this many times ("(a?){2}"), no more:
 * glibc's closures over many such copies take minutes ("((a*)+){1,1000}"). */
#define NULLABLE_COPIES_MAX 16

struct group {
    uint64_t total;
    uint64_t last;
    bool repeated;              /* a repetition already applies to `last` */
    bool last_nullable;         /* `last` can match the empty string */
    bool branch_nullable;       /* so can every atom of this alternative so far */
    bool any_nullable;          /* some finished alternative can match "" */
};

#define GROUP_START ((struct group){ 0, 0, false, false, true, false })

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
    if (g->last > 0 && !g->last_nullable)
        g->branch_nullable = false;
    g->total = add(g->total, g->last);
    g->last = 0;
    g->repeated = false;
    g->last_nullable = false;
}

/* A new atom: one node, matching something (or, for an anchor, nothing). */
static void atom(struct group *g, bool nullable)
{
    finish_atom(g);
    g->last = 1;
    g->last_nullable = nullable;
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

/* How many copies "{n}", "{n,}" or "{n,m}" at p makes (one more than it
 * repeats), whether n is 0; *end past it.  false when it is not a valid
 * interval (then '{' is a literal). */
static bool interval(const char *p, uint64_t *copies, const char **end, bool *zero)
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
    *zero = n == 0;
    *end = e + 1;
    return true;
}

uint64_t regex_cost(const char *pattern)
{
    struct group stack[MAX_DEPTH + 1];
    stack[0] = GROUP_START;
    size_t depth = 0;
    uint64_t deep = 0;          /* groups opened past MAX_DEPTH, still open */
    const char *p = pattern;

    while (*p) {
        struct group *g = &stack[depth];
        uint64_t copies;
        bool nullable_min;
        const char *end;
        switch (*p) {
        case '(':
            finish_atom(g);
            if (depth < MAX_DEPTH) {
                stack[++depth] = GROUP_START;
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
                bool nullable = g->any_nullable || g->branch_nullable;
                depth--;
                stack[depth].last = inner;
                stack[depth].last_nullable = nullable;
            } else {
                atom(g, false);     /* a stray ')' is a literal in ERE */
            }
            p++;
            break;
        case '|':
            finish_atom(g);
            g->any_nullable = g->any_nullable || g->branch_nullable;
            g->branch_nullable = true;
            p++;
            break;
        case '*':
        case '?':
        case '+':
            /* Stacked ("a+*"): undefined in POSIX, and glibc's closure
             * computation over them grows far faster than their size.
             * So does copying what can match "" ("(a*)+", which is a*). */
            if (g->last == 0)
                return 0;           /* nothing to repeat: regcomp() refuses it */
            if (g->repeated || (*p == '+' && g->last_nullable))
                return COST_CAP;
            /* glibc: x+ is x x*; x* and x? keep one copy */
            g->last = add(mul(g->last, *p == '+' ? 2 : 1), 1);
            g->last_nullable = g->last_nullable || *p != '+';
            g->repeated = true;
            p++;
            break;
        case '{':
            if (interval(p, &copies, &end, &nullable_min)) {
                if (g->last == 0)
                    return 0;
                if (g->repeated || (g->last_nullable && copies > NULLABLE_COPIES_MAX + 1))
                    return COST_CAP;
                g->last = add(mul(g->last, copies), 1);
                g->last_nullable = g->last_nullable || nullable_min;
                g->repeated = true;
                p = end;
                break;
            }
            atom(g, false);
            p++;
            break;
        case '[':
            atom(g, false);
            p = skip_bracket(p);
            break;
        case '\\':
            atom(g, false);
            p += p[1] ? 2 : 1;
            break;
        case '^':
        case '$':
            atom(g, true);
            p++;
            break;
        default:
            atom(g, false);
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
