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

/* ASCII letters compared without case, inline: strncasecmp per name was
 * most of parsing a date (callgrind: a revalidated request parses two). */
static bool word_eq(const char *p, const char *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char a = p[i], b = w[i];
        if (a != b && ((a | 0x20) != (b | 0x20) || (unsigned char)((a | 0x20) - 'a') > 25))
            return false;
    }
    return true;
}

static bool expect_word(struct cursor *c, const char *w, size_t n)
{
    if ((size_t)(c->end - c->p) < n || !word_eq(c->p, w, n))
        return false;
    c->p += n;
    return true;
}

/* Three letters folded to lower case in one integer, -1 when they are
 * not all letters: a name is then found by integer compares, not by a
 * string compare per candidate (17 of those a date, callgrind). */
#define KEY3(a, b, c) (((a) << 16) | ((b) << 8) | (c))

static int32_t key3(const struct cursor *c)
{
    if (c->end - c->p < 3)
        return -1;
    int32_t k = 0;
    for (int i = 0; i < 3; i++) {
        unsigned char ch = (unsigned char)(c->p[i] | 0x20);
        if (ch < 'a' || ch > 'z')
            return -1;
        k = (k << 8) | ch;
    }
    return k;
}

static int match_key3(struct cursor *c, const int32_t *keys, int n)
{
    int32_t k = key3(c);
    for (int i = 0; i < n; i++) {
        if (keys[i] == k) {
            c->p += 3;
            return i;
        }
    }
    return -1;
}

/* day-name: 3 letters.  Returns 0..6 or -1. */
static int match_short_day(struct cursor *c)
{
    static const int32_t keys[7] = {
        KEY3('s', 'u', 'n'), KEY3('m', 'o', 'n'), KEY3('t', 'u', 'e'), KEY3('w', 'e', 'd'),
        KEY3('t', 'h', 'u'), KEY3('f', 'r', 'i'), KEY3('s', 'a', 't'),
    };
    return match_key3(c, keys, 7);
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
    static const int32_t keys[12] = {
        KEY3('j', 'a', 'n'), KEY3('f', 'e', 'b'), KEY3('m', 'a', 'r'), KEY3('a', 'p', 'r'),
        KEY3('m', 'a', 'y'), KEY3('j', 'u', 'n'), KEY3('j', 'u', 'l'), KEY3('a', 'u', 'g'),
        KEY3('s', 'e', 'p'), KEY3('o', 'c', 't'), KEY3('n', 'o', 'v'), KEY3('d', 'e', 'c'),
    };
    return match_key3(c, keys, 12);
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

/* Days from 1970-01-01 to year-month-day of the proleptic Gregorian
 * calendar (month 1..12), and back: the civil-calendar algorithms of
 * Howard Hinnant ("chrono-Compatible Low-Level Date Algorithms"), exact
 * for every year a 4-digit field can hold. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                    /* [0, 399] */
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;   /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;            /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

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

    /* What timegm() gives for these (range-checked) fields, a leap second
     * included (it is the next minute's first), without timegm's
     * normalisation and time-zone machinery. */
    int64_t days = days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    *out = (time_t)(days * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
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
    /* Built by hand rather than strftime() (%a and %b follow the locale)
     * or gmtime_r() (its time-zone machinery was half the cost). */
    int64_t secs = (int64_t)t;
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t year;
    int month, mday;
    civil_from_days(days, &year, &month, &mday);
    int wday = (int)((days % 7 + 11) % 7);       /* 1970-01-01 was a Thursday (4) */
    memcpy(out, short_days[wday], 3);
    out[3] = ',';
    out[4] = ' ';
    put2(out + 5, mday);
    out[7] = ' ';
    memcpy(out + 8, months[month - 1], 3);
    out[11] = ' ';
    put2(out + 12, (int)(year / 100));
    put2(out + 14, (int)(year % 100));
    out[16] = ' ';
    put2(out + 17, (int)(rem / 3600));
    out[19] = ':';
    put2(out + 20, (int)(rem / 60 % 60));
    out[22] = ':';
    put2(out + 23, (int)(rem % 60));
    memcpy(out + 25, " GMT", 4);
    out[HTTP_DATE_LEN] = '\0';
}
