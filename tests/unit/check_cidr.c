/*
 * check_cidr.c — trusted_proxies ranges (src/config/cidr.c): parsing
 * (IPv4, IPv6, a lone host, prefixes at every boundary, host bits set past
 * the prefix refused with the range named, garbage refused) and matching
 * (inside, just outside, /0, IPv4-mapped IPv6 peers as IPv4, families
 * never mixed, text that is no address).
 */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "freshcache/config/cidr.h"

static struct cidr parse_ok(const char *s)
{
    struct cidr c;
    char why[160] = "";
    ck_assert_msg(cidr_parse(s, &c, why, sizeof why) == 0, "%s refused: %s", s, why);
    return c;
}

static void parse_bad(const char *s, const char *why_part)
{
    struct cidr c;
    char why[160] = "";
    ck_assert_msg(cidr_parse(s, &c, why, sizeof why) == -1, "%s accepted", s);
    ck_assert_msg(strstr(why, why_part) != NULL, "%s: \"%s\" lacks \"%s\"", s, why, why_part);
}

START_TEST(parse)
{
    struct cidr c = parse_ok("10.0.0.0/8");
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_uint_eq(c.prefix, 8);
    c = parse_ok("192.0.2.7");
    ck_assert_uint_eq(c.prefix, 32);
    c = parse_ok("2001:db8::/32");
    ck_assert_int_eq(c.family, AF_INET6);
    ck_assert_uint_eq(c.prefix, 32);
    c = parse_ok("::1");
    ck_assert_uint_eq(c.prefix, 128);
    ck_assert_uint_eq(parse_ok("0.0.0.0/0").prefix, 0);
    ck_assert_uint_eq(parse_ok("::/0").prefix, 0);
    ck_assert_uint_eq(parse_ok("172.16.0.0/12").prefix, 12);
    ck_assert_uint_eq(parse_ok("fe80::/10").prefix, 10);
    ck_assert_uint_eq(parse_ok("10.1.2.3/32").prefix, 32);
    ck_assert_uint_eq(parse_ok("2001:db8::1/128").prefix, 128);

    parse_bad("10.0.0.1/8", "10.0.0.0/8");          /* a typo for a host or a range */
    parse_bad("172.17.0.0/12", "172.16.0.0/12");
    parse_bad("2001:db8::1/64", "2001:db8::/64");
    parse_bad("10.0.0.0/33", "0 to 32");
    parse_bad("::/129", "0 to 128");
    parse_bad("10.0.0.0/", "prefix");
    parse_bad("10.0.0.0/8x", "prefix");
    parse_bad("10.0.0.0/-1", "prefix");
    parse_bad("10.0.0.0/ 8", "prefix");
    parse_bad("localhost", "not an IPv4 or IPv6 address");
    parse_bad("10.0.0", "not an IPv4 or IPv6 address");
    parse_bad("", "not an IPv4 or IPv6 address");
    parse_bad("/8", "not an IPv4 or IPv6 address");
    parse_bad("[::1]", "not an IPv4 or IPv6 address");
    parse_bad("10.0.0.0/8/8", "prefix");
}
END_TEST

START_TEST(match)
{
    struct cidr list[3] = { parse_ok("10.0.0.0/8"), parse_ok("192.0.2.7"),
                            parse_ok("2001:db8:1::/48") };
    static const struct {
        const char *addr;
        bool in;
    } c[] = {
        { "10.0.0.0", true },
        { "10.255.255.255", true },
        { "11.0.0.0", false },
        { "9.255.255.255", false },
        { "192.0.2.7", true },
        { "192.0.2.8", false },
        { "192.0.2.6", false },
        { "2001:db8:1::1", true },
        { "2001:db8:1:ffff:ffff:ffff:ffff:ffff", true },
        { "2001:db8:2::1", false },
        { "::ffff:10.1.2.3", true },              /* an IPv4 peer on a dual-stack socket */
        { "::ffff:11.1.2.3", false },
        { "::10.1.2.3", false },                  /* IPv4-compatible is not mapped */
        { "::1", false },
        { "127.0.0.1", false },
        { "unknown", false },
        { "", false },
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        ck_assert_msg(cidr_list_contains(list, 3, c[i].addr) == c[i].in, "%s: %s", c[i].addr,
                      c[i].in ? "not trusted" : "trusted");
    ck_assert(!cidr_list_contains(list, 0, "10.0.0.1"));      /* the default: nobody */
    ck_assert(!cidr_list_contains(NULL, 0, "10.0.0.1"));
}
END_TEST

START_TEST(match_boundaries)
{
    struct cidr all4 = parse_ok("0.0.0.0/0"), all6 = parse_ok("::/0");
    ck_assert(cidr_list_contains(&all4, 1, "203.0.113.9"));
    ck_assert(!cidr_list_contains(&all4, 1, "2001:db8::9"));   /* families never mix */
    ck_assert(cidr_list_contains(&all6, 1, "2001:db8::9"));
    ck_assert(!cidr_list_contains(&all6, 1, "203.0.113.9"));
    /* a prefix that is not a whole number of bytes */
    struct cidr odd = parse_ok("172.16.0.0/12");
    ck_assert(cidr_list_contains(&odd, 1, "172.31.255.255"));
    ck_assert(!cidr_list_contains(&odd, 1, "172.32.0.0"));
    ck_assert(!cidr_list_contains(&odd, 1, "172.15.255.255"));
    struct cidr odd6 = parse_ok("fe80::/10");
    ck_assert(cidr_list_contains(&odd6, 1, "febf::1"));
    ck_assert(!cidr_list_contains(&odd6, 1, "fec0::1"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cidr");
    TCase *tc = tcase_create("cidr");
    tcase_add_test(tc, parse);
    tcase_add_test(tc, match);
    tcase_add_test(tc, match_boundaries);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
