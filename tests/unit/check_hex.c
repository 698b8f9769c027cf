/*
 * check_hex.c — bytes as lower-case hexadecimal text (src/base/hex.c):
 * two digits a byte, high nibble first, a NUL after, nothing written past
 * 2n + 1 bytes, and the empty input.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/base/hex.h"

START_TEST(known_bytes)
{
    static const unsigned char in[] = { 0x00, 0x01, 0x0f, 0x10, 0x7f, 0x80, 0xab, 0xcd, 0xef,
                                        0xff };
    char out[2 * sizeof in + 1];
    ck_assert_ptr_eq(hex_encode(in, sizeof in, out), out);
    ck_assert_str_eq(out, "00010f107f80abcdefff");
}
END_TEST

/* Every byte value, against printf's %02x: lower-case, zero-padded. */
START_TEST(every_byte)
{
    unsigned char in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (unsigned char)i;
    char out[2 * 256 + 1];
    hex_encode(in, sizeof in, out);
    ck_assert_uint_eq(strlen(out), 512);
    for (int i = 0; i < 256; i++) {
        char want[3];
        snprintf(want, sizeof want, "%02x", i);
        ck_assert_msg(out[2 * i] == want[0] && out[2 * i + 1] == want[1], "byte %d: %.2s", i,
                      out + 2 * i);
    }
    ck_assert_ptr_null(strpbrk(out, "ABCDEF"));
}
END_TEST

/* Exactly 2n digits and the NUL: the bytes after are untouched. */
START_TEST(writes_2n_plus_1)
{
    static const unsigned char in[] = { 0xde, 0xad, 0xbe, 0xef };
    char out[16];
    memset(out, '#', sizeof out);
    hex_encode(in, 3, out);
    ck_assert_str_eq(out, "deadbe");
    for (size_t i = 7; i < sizeof out; i++)
        ck_assert_int_eq(out[i], '#');
}
END_TEST

/* n = 0: just the NUL; the input is not read (NULL is fine). */
START_TEST(empty_input)
{
    char out[4] = { 'x', 'y', 'z', 'w' };
    ck_assert_ptr_eq(hex_encode(NULL, 0, out), out);
    ck_assert_int_eq(out[0], '\0');
    ck_assert_int_eq(out[1], 'y');
}
END_TEST

static Suite *hex_suite(void)
{
    Suite *s = suite_create("hex");
    TCase *t = tcase_create("encode");
    tcase_add_test(t, known_bytes);
    tcase_add_test(t, every_byte);
    tcase_add_test(t, writes_2n_plus_1);
    tcase_add_test(t, empty_input);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hex_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
