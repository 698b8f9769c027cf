/*
 * fuzz_msg.c — see fuzz_msg.h.
 */
#include <stdbool.h>
#include <string.h>

#include "freshcache/http/http_msg.h"

#include "fuzz_msg.h"

static bool blank(uint8_t c) { return c == ' ' || c == '\t'; }

/* RFC 9110 §5.6.2 tchar: all a parser lets into a field name. */
static bool token(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL)))
            return false;
    }
    return n > 0;
}

/* The next line of s[*off..len): its start and length, without '\n' and a
 * final '\r'.  false at the end of the input. */
static bool next_line(const uint8_t *s, size_t len, size_t *off, const uint8_t **line,
                      size_t *llen)
{
    if (*off >= len)
        return false;
    const uint8_t *start = s + *off;
    const uint8_t *nl = memchr(start, '\n', len - *off);
    size_t n = nl ? (size_t)(nl - start) : len - *off;
    *off += n + (nl ? 1 : 0);
    if (n > 0 && start[n - 1] == '\r')
        n--;
    *line = start;
    *llen = n;
    return true;
}

/* A value as a parser hands it: no NUL or CR, no blanks around it. */
static bool field_value(const uint8_t **v, size_t *vlen)
{
    if (memchr(*v, '\0', *vlen) != NULL || memchr(*v, '\r', *vlen) != NULL)
        return false;
    while (*vlen > 0 && blank(**v)) {
        (*v)++;
        (*vlen)--;
    }
    while (*vlen > 0 && blank((*v)[*vlen - 1]))
        (*vlen)--;
    return true;
}

size_t fuzz_msg_add_lines(struct http_msg *m, const uint8_t *s, size_t len)
{
    size_t off = 0, llen;
    const uint8_t *line;
    while (next_line(s, len, &off, &line, &llen)) {
        if (llen == 0)
            break;
        const uint8_t *colon = memchr(line, ':', llen);
        if (colon == NULL || colon == line)
            continue;
        size_t nlen = (size_t)(colon - line);
        const uint8_t *v = colon + 1;
        size_t vlen = llen - nlen - 1;
        if (!token(line, nlen) || !field_value(&v, &vlen))
            continue;
        http_msg_add(m, (const char *)line, nlen, (const char *)v, vlen);
    }
    http_msg_fields_done(m);
    return off;
}

size_t fuzz_msg_add_values(struct http_msg *m, const char *const *names, size_t n_names,
                           const uint8_t *s, size_t len)
{
    size_t off = 0, llen;
    const uint8_t *line;
    while (next_line(s, len, &off, &line, &llen)) {
        if (llen == 0)
            break;
        const char *name = names[line[0] % n_names];
        const uint8_t *v = line + 1;
        size_t vlen = llen - 1;
        if (!field_value(&v, &vlen))
            continue;
        http_msg_add(m, name, strlen(name), (const char *)v, vlen);
    }
    http_msg_fields_done(m);
    return off;
}
