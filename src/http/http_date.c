/*
 * http_date.c — HTTP-date parsing and formatting (RFC 9110 §5.6.7).
 *
 * Three forms are accepted, exactly as the grammar spells them:
 *
 *   IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT     (the only one we send)
 *   RFC 850      Sunday, 06-Nov-94 08:49:37 GMT    (obsolete)
 *   asctime      Sun Nov  6 08:49:37 1994          (obsolete)
 *
 * The parser is hand-written instead of strptime(): strptime depends on the
 * locale (day and month names), accepts far more than the grammar, and is
 * slow.  Names (day-name, month, "GMT") are matched case-insensitively:
 * the ABNF spells them %s"..." for senders, and §5.6.7 asks recipients to
 * be robust in parsing timestamps ("sun, 06 NOV 1994 08:49:37 gmt" is
 * read, not turned into "invalid", which for Expires would mean expired).
 *
 * Decisions worth knowing:
 *
 *  - The day name must be a valid name for the form (short for IMF-fixdate
 *    and asctime, long for RFC 850), but it is NOT checked against the
 *    date.  It is redundant information, and §5.6.7 asks recipients to be
 *    robust when parsing timestamps; the numeric date is authoritative.
 *  - Every numeric field is range checked (day against the month's real
 *    length, leap years included; hour 0-23; minute 0-59; second 0-60,
 *    60 being the leap second the grammar allows).  A leap second is
 *    folded into the next minute, as timegm() does.
 *  - Surrounding OWS (SP / HTAB) is ignored; anything else before or after
 *    the date makes it invalid.
 *  - RFC 850's two-digit year is resolved with the current year as
 *    §5.6.7 requires: a year that appears to be more than 50 years in the
 *    future means the most recent past year with the same last two digits.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "freshcache/http/http_date.h"

static const char short_days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const long_days[7] = { "Sunday", "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday" };
static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* A tiny cursor over the input; every helper fails without moving on error. */
struct cursor {
    const char *p;
    const char *end;
};

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool expect_char(struct cursor *c, char ch)
{
    if (c->p >= c->end || *c->p != ch)
        return false;
    c->p++;
    return true;
}

/* Exactly `n` digits (the grammar never has variable-width numbers). */
static bool expect_digits(struct cursor *c, int n, int *out)
{
    if (c->end - c->p < n)
        return false;
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(c->p[i]))
            return false;
        v = v * 10 + (c->p[i] - '0');
    }
    c->p += n;
    *out = v;
    return true;
}

static bool expect_word(struct cursor *c, const char *w, size_t n)
{
    if ((size_t)(c->end - c->p) < n || strncasecmp(c->p, w, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* day-name: 3 letters.  Returns 0..6 or -1. */
static int match_short_day(struct cursor *c)
{
    for (int i = 0; i < 7; i++)
        if (expect_word(c, short_days[i], 3))
            return i;
    return -1;
}

/* day-name-l: the full name. */
static int match_long_day(struct cursor *c)
{
    for (int i = 0; i < 7; i++)
        if (expect_word(c, long_days[i], strlen(long_days[i])))
            return i;
    return -1;
}

/* month: returns 0..11 or -1. */
static int match_month(struct cursor *c)
{
    for (int i = 0; i < 12; i++)
        if (expect_word(c, months[i], 3))
            return i;
    return -1;
}

/* time-of-day = hour ":" minute ":" second */
static bool parse_time_of_day(struct cursor *c, struct tm *tm)
{
    return expect_digits(c, 2, &tm->tm_hour) && expect_char(c, ':') &&
           expect_digits(c, 2, &tm->tm_min) && expect_char(c, ':') &&
           expect_digits(c, 2, &tm->tm_sec);
}

static bool is_leap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/* Range checks on the broken-down fields; tm_year is years since 1900. */
static bool fields_valid(const struct tm *tm)
{
    static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int year = tm->tm_year + 1900;
    if (tm->tm_mon < 0 || tm->tm_mon > 11)
        return false;
    int dim = mdays[tm->tm_mon] + (tm->tm_mon == 1 && is_leap(year));
    if (tm->tm_mday < 1 || tm->tm_mday > dim)
        return false;
    /* RFC 9110 §5.6.7: "00:00:00 - 23:59:60 (leap second)". */
    return tm->tm_hour <= 23 && tm->tm_min <= 59 && tm->tm_sec <= 60;
}

/* Sun, 06 Nov 1994 08:49:37 GMT */
static bool parse_imf_fixdate(struct cursor *c, struct tm *tm)
{
    int year;
    if (match_short_day(c) < 0 || !expect_char(c, ',') || !expect_char(c, ' ') ||
        !expect_digits(c, 2, &tm->tm_mday) || !expect_char(c, ' ') ||
        (tm->tm_mon = match_month(c)) < 0 || !expect_char(c, ' ') ||
        !expect_digits(c, 4, &year) || !expect_char(c, ' ') ||
        !parse_time_of_day(c, tm) || !expect_char(c, ' ') || !expect_word(c, "GMT", 3))
        return false;
    tm->tm_year = year - 1900;
    return true;
}

/* Sunday, 06-Nov-94 08:49:37 GMT */
static bool parse_rfc850(struct cursor *c, struct tm *tm, int current_year)
{
    int yy;
    if (match_long_day(c) < 0 || !expect_char(c, ',') || !expect_char(c, ' ') ||
        !expect_digits(c, 2, &tm->tm_mday) || !expect_char(c, '-') ||
        (tm->tm_mon = match_month(c)) < 0 || !expect_char(c, '-') ||
        !expect_digits(c, 2, &yy) || !expect_char(c, ' ') ||
        !parse_time_of_day(c, tm) || !expect_char(c, ' ') || !expect_word(c, "GMT", 3))
        return false;
    /* §5.6.7: "MUST interpret a timestamp that appears to be more than 50
     * years in the future as representing the most recent year in the past
     * that had the same last two digits."  So the year is the one with
     * these last two digits in the window (current-50, current+50]. */
    int year = current_year - current_year % 100 + yy;
    if (year > current_year + 50)
        year -= 100;
    else if (year <= current_year - 50)
        year += 100;
    tm->tm_year = year - 1900;
    return true;
}

/* Sun Nov  6 08:49:37 1994   (date3 = month SP ( 2DIGIT / ( SP DIGIT ))) */
static bool parse_asctime(struct cursor *c, struct tm *tm)
{
    int year;
    if (match_short_day(c) < 0 || !expect_char(c, ' ') ||
        (tm->tm_mon = match_month(c)) < 0 || !expect_char(c, ' '))
        return false;
    if (expect_char(c, ' ')) {
        if (!expect_digits(c, 1, &tm->tm_mday))
            return false;
    } else if (!expect_digits(c, 2, &tm->tm_mday)) {
        return false;
    }
    if (!expect_char(c, ' ') || !parse_time_of_day(c, tm) || !expect_char(c, ' ') ||
        !expect_digits(c, 4, &year))
        return false;
    tm->tm_year = year - 1900;
    return true;
}

static bool is_ows(char ch) { return ch == ' ' || ch == '\t'; }

/* The current UTC year, for RFC 850 two-digit years. */
static int year_of(time_t now)
{
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL)
        return 1970;
    return tm.tm_year + 1900;
}

bool http_date_parse_at(const char *s, size_t len, time_t now, time_t *out)
{
    if (s == NULL)
        return false;
    struct cursor c = { s, s + len };
    while (c.p < c.end && is_ows(*c.p))
        c.p++;
    while (c.end > c.p && is_ows(c.end[-1]))
        c.end--;
    if (c.end - c.p < 3)
        return false;

    struct tm tm;
    memset(&tm, 0, sizeof tm);
    /* The form is told apart by what follows the day name: "," after a
     * 3-letter name is IMF-fixdate, " " is asctime, and a longer name is
     * RFC 850.  Each parser then insists on its exact grammar. */
    bool ok;
    if (c.end - c.p > 3 && c.p[3] == ',') {
        ok = parse_imf_fixdate(&c, &tm);
    } else if (c.end - c.p > 3 && c.p[3] == ' ') {
        ok = parse_asctime(&c, &tm);
    } else {
        ok = parse_rfc850(&c, &tm, year_of(now));
    }
    if (!ok || c.p != c.end || !fields_valid(&tm))
        return false;

    time_t t = timegm(&tm);
    /* timegm() returns -1 on overflow, but -1 is also 1969-12-31 23:59:59;
     * the fields were range checked, so only a narrow time_t can hit this. */
    if (t == (time_t)-1 && !(tm.tm_year == 69 && tm.tm_mon == 11 && tm.tm_mday == 31 &&
                             tm.tm_hour == 23 && tm.tm_min == 59 && tm.tm_sec == 59))
        return false;
    *out = t;
    return true;
}

bool http_date_parse(const char *s, size_t len, time_t *out)
{
    return http_date_parse_at(s, len, time(NULL), out);
}

/* Bounds of what IMF-fixdate's 4DIGIT year can say:
 * 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z. */
#define HTTP_DATE_MIN ((time_t)INT64_C(-62167219200))
#define HTTP_DATE_MAX ((time_t)INT64_C(253402300799))

static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

void http_date_format(time_t t, char out[HTTP_DATE_LEN + 1])
{
    /* Clamp instead of failing: the result must always be a valid date. */
    if (t < HTTP_DATE_MIN)
        t = HTTP_DATE_MIN;
    if (t > HTTP_DATE_MAX)
        t = HTTP_DATE_MAX;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    /* Built by hand rather than strftime(): %a and %b follow the locale. */
    int year = tm.tm_year + 1900;
    memcpy(out, short_days[tm.tm_wday], 3);
    out[3] = ',';
    out[4] = ' ';
    put2(out + 5, tm.tm_mday);
    out[7] = ' ';
    memcpy(out + 8, months[tm.tm_mon], 3);
    out[11] = ' ';
    put2(out + 12, year / 100);
    put2(out + 14, year % 100);
    out[16] = ' ';
    put2(out + 17, tm.tm_hour);
    out[19] = ':';
    put2(out + 20, tm.tm_min);
    out[22] = ':';
    put2(out + 23, tm.tm_sec);
    memcpy(out + 25, " GMT", 4);
    out[HTTP_DATE_LEN] = '\0';
}
