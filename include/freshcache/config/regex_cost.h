/*
 * regex_cost.h — a bound on how large glibc's compiled form of a POSIX
 * extended regular expression gets, checked before regcomp() sees a
 * pattern from the config.
 *
 * glibc expands repetition by copying the repeated subtree: x{n,m} holds
 * up to m copies of x, x+ is x followed by x*, so stacked and nested
 * repetitions multiply.  "a++++++++++++++++++++" (20 '+', which POSIX
 * leaves undefined) took 700 MB and a few more '+' take all the memory
 * there is; "(((a*)+)*)+..." ten deep takes seconds of CPU in glibc's
 * closure computation, which grows faster than the size.  A reload with
 * such a pattern would stall or get the serving daemon killed instead of
 * being refused.  Found by tests/fuzz/config.
 */
#ifndef FRESHCACHE_REGEX_COST_H
#define FRESHCACHE_REGEX_COST_H

#include <stdint.h>

/* Above this, a pattern is refused: a few MB of glibc's nodes and at most
 * a few seconds of CPU for the worst shape (nested "(x*)+"), far beyond
 * any path pattern ("(/[^/]{1,100}){1,10}" costs about 1000). */
#define REGEX_COST_MAX 8192

/* An upper bound of the atoms `pattern` expands to (saturating at
 * UINT32_MAX).  Stacked repetition ("a+*", "a{2}?": undefined in POSIX
 * ERE), and repeating what can match "" more than 16 times ("(a*)+",
 * "(a?b?){1,100}": glibc's closures over them take minutes) return the
 * saturated value.  Syntax errors are left to regcomp(). */
uint64_t regex_cost(const char *pattern);

#endif
