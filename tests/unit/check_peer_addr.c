/*
 * check_peer_addr.c — a client address kept binary (src/base/peer_addr.c):
 * the text is what inet_ntop gave before for every family, equality is on
 * the address bytes only.
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/base/peer_addr.h"

static struct peer_addr v4(const char *text, uint16_t port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    ck_assert_int_eq(inet_pton(AF_INET, text, &sin.sin_addr), 1);
    struct peer_addr pa;
    memset(&pa, 0xa5, sizeof pa);           /* every byte set by peer_addr_set */
    peer_addr_set(&pa, (const struct sockaddr *)&sin);
    return pa;
}

static struct peer_addr v6(const char *text, uint16_t port)
{
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    ck_assert_int_eq(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
    struct peer_addr pa;
    peer_addr_set(&pa, (const struct sockaddr *)&sin6);
    return pa;
}

START_TEST(ipv4_text)
{
    char out[PEER_ADDR_TEXT];
    struct peer_addr pa = v4("127.0.0.1", 4242);
    ck_assert_int_eq(pa.family, AF_INET);
    ck_assert_str_eq(peer_addr_format(&pa, out), "127.0.0.1");
    pa = v4("255.255.255.255", 1);
    ck_assert_str_eq(peer_addr_format(&pa, out), "255.255.255.255");
    pa = v4("0.0.0.0", 1);
    ck_assert_str_eq(peer_addr_format(&pa, out), "0.0.0.0");
    pa = v4("192.0.2.10", 1);
    ck_assert_str_eq(peer_addr_format(&pa, out), "192.0.2.10");
}
END_TEST

START_TEST(ipv6_text)
{
    char out[PEER_ADDR_TEXT];
    struct peer_addr pa = v6("::1", 80);
    ck_assert_int_eq(pa.family, AF_INET6);
    ck_assert_str_eq(peer_addr_format(&pa, out), "::1");
    pa = v6("2001:DB8:0:0:0:0:0:1", 80);
    ck_assert_str_eq(peer_addr_format(&pa, out), "2001:db8::1");
    /* a dual-stack listener sees IPv4 clients mapped: logged as before */
    pa = v6("::ffff:192.0.2.1", 80);
    ck_assert_str_eq(peer_addr_format(&pa, out), "::ffff:192.0.2.1");
    /* the longest text fits */
    pa = v6("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 80);
    ck_assert_str_eq(peer_addr_format(&pa, out), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    ck_assert_uint_lt(strlen(out), PEER_ADDR_TEXT);
}
END_TEST

START_TEST(other_families_unknown)
{
    char out[PEER_ADDR_TEXT];
    struct sockaddr sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNIX;
    struct peer_addr pa;
    peer_addr_set(&pa, &sa);
    ck_assert_int_eq(pa.family, AF_UNSPEC);
    ck_assert_str_eq(peer_addr_format(&pa, out), "unknown");
    peer_addr_set(&pa, NULL);
    ck_assert_str_eq(peer_addr_format(&pa, out), "unknown");
}
END_TEST

START_TEST(equality)
{
    struct peer_addr a = v4("10.0.0.1", 1), b = v4("10.0.0.1", 2), c = v4("10.0.0.2", 1);
    ck_assert(peer_addr_equal(&a, &b));     /* the port is not kept */
    ck_assert(!peer_addr_equal(&a, &c));
    struct peer_addr m = v6("::ffff:10.0.0.1", 1);
    ck_assert(!peer_addr_equal(&a, &m));    /* same client, another family */
    struct peer_addr x = v6("2001:db8::1", 1), y = v6("2001:db8::1", 9), z = v6("2001:db8::2", 1);
    ck_assert(peer_addr_equal(&x, &y));
    ck_assert(!peer_addr_equal(&x, &z));
    struct peer_addr u1, u2;
    peer_addr_set(&u1, NULL);
    peer_addr_set(&u2, NULL);
    ck_assert(peer_addr_equal(&u1, &u2));
}
END_TEST

START_TEST(small)
{
    /* what an idle connection keeps instead of 46 bytes of text */
    ck_assert_uint_eq(sizeof(struct peer_addr), 17);
}
END_TEST

static Suite *peer_addr_suite(void)
{
    Suite *s = suite_create("peer_addr");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, ipv4_text);
    tcase_add_test(tc, ipv6_text);
    tcase_add_test(tc, other_families_unknown);
    tcase_add_test(tc, equality);
    tcase_add_test(tc, small);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(peer_addr_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
