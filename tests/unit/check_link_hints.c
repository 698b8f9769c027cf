/*
 * check_link_hints.c — which Link members go into a 103 Early Hints
 * (src/http/link_hints.c): preload, modulepreload and preconnect only, as
 * written, one "Link:" line each; commas and semicolons inside <...> and
 * quoted strings; malformed members skipped without losing the others;
 * the output bound.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/http/link_hints.h"

struct hint_case {
    const char *value;
    const char *want;               /* the lines appended */
    size_t n;
};

static void run_cases(const struct hint_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char out[1024];
        size_t used = 0;
        size_t got = link_hints_filter(c[i].value, strlen(c[i].value), out, sizeof out, &used);
        out[used] = '\0';
        ck_assert_msg(got == c[i].n && strcmp(out, c[i].want) == 0,
                      "%s: %zu lines \"%s\", expected %zu \"%s\"", c[i].value, got, out, c[i].n,
                      c[i].want);
    }
}

#define RUN(table) run_cases(table, sizeof table / sizeof table[0])

START_TEST(kept_rels)
{
    static const struct hint_case c[] = {
        { "</app.js>; rel=preload; as=script", "Link: </app.js>; rel=preload; as=script\r\n", 1 },
        { "</m.js>; rel=modulepreload", "Link: </m.js>; rel=modulepreload\r\n", 1 },
        { "<https://cdn.example>; rel=preconnect",
          "Link: <https://cdn.example>; rel=preconnect\r\n", 1 },
        { "</a.css>; rel=\"preload\"; as=style", "Link: </a.css>; rel=\"preload\"; as=style\r\n", 1 },
        { "</a.css>; REL=PreLoad; as=style", "Link: </a.css>; REL=PreLoad; as=style\r\n", 1 },
        /* one of several relation types */
        { "</f.woff2>; rel=\"prefetch preload\"; as=font; crossorigin",
          "Link: </f.woff2>; rel=\"prefetch preload\"; as=font; crossorigin\r\n", 1 },
        /* OWS around ; and = */
        { "</a.js> ;rel = preload", "Link: </a.js> ;rel = preload\r\n", 1 },
    };
    RUN(c);
}
END_TEST

START_TEST(dropped_rels)
{
    static const struct hint_case c[] = {
        { "</>; rel=canonical", "", 0 },
        { "</next>; rel=next", "", 0 },
        { "</x.js>; rel=prefetch", "", 0 },
        { "</x.js>; rel=preloader", "", 0 },
        { "</x.js>", "", 0 },                           /* no rel */
        { "</x.js>; as=script", "", 0 },
        { "</x.js>; rel", "", 0 },                      /* rel without a value */
        /* only the first rel counts (RFC 8288 §3.3) */
        { "</x.js>; rel=next; rel=preload", "", 0 },
        { "", "", 0 },
        { " , ,", "", 0 },
    };
    RUN(c);
}
END_TEST

START_TEST(lists)
{
    static const struct hint_case c[] = {
        { "</a.js>; rel=preload; as=script, </>; rel=canonical, <https://cdn>; rel=preconnect",
          "Link: </a.js>; rel=preload; as=script\r\nLink: <https://cdn>; rel=preconnect\r\n", 2 },
        /* commas and semicolons inside <...> and quotes do not split */
        { "</a,b;c.js>; rel=preload; title=\"x, y; rel=next\", </d.js>; rel=modulepreload",
          "Link: </a,b;c.js>; rel=preload; title=\"x, y; rel=next\"\r\n"
          "Link: </d.js>; rel=modulepreload\r\n", 2 },
        { "</q.js>; title=\"a \\\" , b\"; rel=preload",
          "Link: </q.js>; title=\"a \\\" , b\"; rel=preload\r\n", 1 },
    };
    RUN(c);
}
END_TEST

START_TEST(malformed)
{
    static const struct hint_case c[] = {
        /* junk before a good member, junk members between good ones */
        { "garbage; rel=preload, </ok.js>; rel=preload", "Link: </ok.js>; rel=preload\r\n", 1 },
        { "</a.js>; rel=preload junk, </b.js>; rel=preload", "Link: </b.js>; rel=preload\r\n", 1 },
        { "</a.js>; =x; rel=preload, </b.js>; rel=preload", "Link: </b.js>; rel=preload\r\n", 1 },
        { "</a.js>; rel=\"preload, </b.js>; rel=preload", "", 0 },    /* unterminated quote */
        { "</a.js; rel=preload", "", 0 },                             /* no '>' */
        { "</a.js>; rel=", "", 0 },
    };
    RUN(c);
}
END_TEST

/* A member that does not fit is left out whole; later smaller ones still
 * go in; what was written stays intact. */
START_TEST(bounded)
{
    const char *v = "</long-long-long-long.js>; rel=preload, </s.js>; rel=preload";
    char out[64];
    size_t used = 0;
    memset(out, 'Z', sizeof out);
    size_t n = link_hints_filter(v, strlen(v), out, 40, &used);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(used, strlen("Link: </s.js>; rel=preload\r\n"));
    ck_assert(memcmp(out, "Link: </s.js>; rel=preload\r\n", used) == 0);
    ck_assert_int_eq(out[40], 'Z');
    /* appending: a second call continues at *used */
    size_t n2 = link_hints_filter("</t.js>; rel=preload", 20, out, sizeof out, &used);
    ck_assert_uint_eq(n2, 1);
    ck_assert(memcmp(out + 28, "Link: </t.js>; rel=preload\r\n", 28) == 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("link_hints");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, kept_rels);
    tcase_add_test(tc, dropped_rels);
    tcase_add_test(tc, lists);
    tcase_add_test(tc, malformed);
    tcase_add_test(tc, bounded);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
