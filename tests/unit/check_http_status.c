/*
 * check_http_status.c — reason phrases (src/http/http_status.c): the RFC
 * 9110 §15 phrase of every code in its table, a generic phrase by class
 * (§15: the first digit) for any other code, and never NULL.
 */
#include <check.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/http/http_status.h"

struct status_case {
    int code;
    const char *reason;
};

static void run_cases(const struct status_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *got = http_status_reason(c[i].code);
        ck_assert_msg(got != NULL, "%d: NULL", c[i].code);
        ck_assert_msg(strcmp(got, c[i].reason) == 0, "%d: \"%s\", expected \"%s\"", c[i].code,
                      got, c[i].reason);
    }
}

#define RUN(table) run_cases(table, sizeof table / sizeof table[0])

/* RFC 9110 §15.2-§15.6 (and 102 / 103 / 429 / 431 / 451 from their RFCs),
 * with the phrases RFC 9110 gives them (413, 422 were renamed). */
START_TEST(known_codes)
{
    static const struct status_case c[] = {
        { 100, "Continue" },
        { 101, "Switching Protocols" },
        { 102, "Processing" },
        { 103, "Early Hints" },
        { 200, "OK" },
        { 201, "Created" },
        { 202, "Accepted" },
        { 203, "Non-Authoritative Information" },
        { 204, "No Content" },
        { 205, "Reset Content" },
        { 206, "Partial Content" },
        { 300, "Multiple Choices" },
        { 301, "Moved Permanently" },
        { 302, "Found" },
        { 303, "See Other" },
        { 304, "Not Modified" },
        { 307, "Temporary Redirect" },
        { 308, "Permanent Redirect" },
        { 400, "Bad Request" },
        { 401, "Unauthorized" },
        { 402, "Payment Required" },
        { 403, "Forbidden" },
        { 404, "Not Found" },
        { 405, "Method Not Allowed" },
        { 406, "Not Acceptable" },
        { 407, "Proxy Authentication Required" },
        { 408, "Request Timeout" },
        { 409, "Conflict" },
        { 410, "Gone" },
        { 411, "Length Required" },
        { 412, "Precondition Failed" },
        { 413, "Content Too Large" },
        { 414, "URI Too Long" },
        { 415, "Unsupported Media Type" },
        { 416, "Range Not Satisfiable" },
        { 417, "Expectation Failed" },
        { 421, "Misdirected Request" },
        { 422, "Unprocessable Content" },
        { 425, "Too Early" },
        { 426, "Upgrade Required" },
        { 428, "Precondition Required" },
        { 429, "Too Many Requests" },
        { 431, "Request Header Fields Too Large" },
        { 451, "Unavailable For Legal Reasons" },
        { 500, "Internal Server Error" },
        { 501, "Not Implemented" },
        { 502, "Bad Gateway" },
        { 503, "Service Unavailable" },
        { 504, "Gateway Timeout" },
        { 505, "HTTP Version Not Supported" },
    };
    RUN(c);
}
END_TEST

/* §15: a code not in the table is understood by its class; the phrase
 * says which. */
START_TEST(unknown_codes_by_class)
{
    static const struct status_case c[] = {
        { 104, "Informational" }, { 150, "Informational" }, { 199, "Informational" },
        { 207, "Success" },       { 226, "Success" },       { 299, "Success" },
        { 305, "Redirection" },   { 306, "Redirection" },   { 399, "Redirection" },
        { 418, "Client Error" },  { 420, "Client Error" },  { 499, "Client Error" },
        { 506, "Server Error" },  { 511, "Server Error" },   { 599, "Server Error" },
    };
    RUN(c);
}
END_TEST

/* Outside 100..599 there is no class, but a phrase is still returned:
 * callers print it without checking. */
START_TEST(never_null)
{
    static const int odd[] = { INT_MIN, -404, -1, 0, 1, 42, 99, 600, 700, 999, 1000, INT_MAX };
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        const char *r = http_status_reason(odd[i]);
        ck_assert_msg(r != NULL && r[0] != '\0', "%d", odd[i]);
    }
    for (int code = 100; code < 600; code++) {
        const char *r = http_status_reason(code);
        ck_assert_msg(r != NULL && r[0] != '\0', "%d", code);
        /* a reason-phrase is printable text without CR / LF (§4) */
        ck_assert_msg(strpbrk(r, "\r\n") == NULL, "%d", code);
    }
}
END_TEST

static Suite *http_status_suite(void)
{
    Suite *s = suite_create("http_status");
    TCase *t = tcase_create("reasons");
    tcase_add_test(t, known_codes);
    tcase_add_test(t, unknown_codes_by_class);
    tcase_add_test(t, never_null);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_status_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
