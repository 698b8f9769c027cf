/*
 * fuzz_config.c — the YAML config loader (src/config/config.c) from
 * memory (config_load_string, what config_load() calls after reading the
 * file), and the size and duration syntaxes the admin API shares.
 *
 * Checks: a config comes back exactly when no error was reported, and
 * every error reads "FILE:LINE:COLUMN: message" with a line and column
 * inside the input (the end of the document counts as inside).
 *
 * origin.url names a host that config.c resolves: here getaddrinfo() is
 * replaced by one that only takes numeric addresses, so fuzzing never
 * sends a DNS query and a name fails the way an unknown one does.
 */
#include <dlfcn.h>
#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "freshcache/base/assert.h"
#include "freshcache/config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int getaddrinfo_fn(const char *, const char *, const struct addrinfo *,
                           struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static getaddrinfo_fn *real;
    if (real == NULL) {
        real = (getaddrinfo_fn *)dlsym(RTLD_NEXT, "getaddrinfo");
        AN(real);
    }
    struct addrinfo h = { 0 };
    if (hints != NULL)
        h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    return real(node, service, &h, res);
}

#define NAME "fuzz.yaml"

static void check_error(const char *line, size_t lines_in_input)
{
    size_t n = strlen(NAME);
    FC_ASSERT(strncmp(line, NAME ":", n + 1) == 0);
    char *end;
    unsigned long l = strtoul(line + n + 1, &end, 10);
    FC_ASSERT(*end == ':' && l >= 1 && l <= lines_in_input + 1);
    unsigned long c = strtoul(end + 1, &end, 10);
    FC_ASSERT(*end == ':' && c >= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *yaml = (const char *)data;
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n' || data[i] == '\r';

    struct config_errors errs = { 0 };
    struct fc_config *cfg = config_load_string(NAME, yaml, size, &errs);
    FC_ASSERT((cfg == NULL) == (errs.n > 0));
    for (size_t i = 0; i < errs.n; i++)
        check_error(errs.lines[i], lines);
    config_errors_free(&errs);
    if (cfg != NULL)
        config_free(cfg);

    /* Counted only, as the daemon's reload check does. */
    cfg = config_load_string(NAME, yaml, size, NULL);
    if (cfg != NULL)
        config_free(cfg);

    if (size < 64 && memchr(data, '\0', size) == NULL) {
        char s[64];
        memcpy(s, data, size);
        s[size] = '\0';
        uint64_t v;
        (void)config_parse_size(s, &v);
        (void)config_parse_duration(s, &v);
    }
    return 0;
}
