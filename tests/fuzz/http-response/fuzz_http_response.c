/*
 * fuzz_http_response.c — origin bytes through the response parser (the
 * llhttp glue in http_parse.c), as a fetch and proxyctl read them: 1xx
 * before the final answer, responses to HEAD, close-delimited bodies, and
 * the response's caching fields.  Input: one control byte (fuzz_http.h),
 * then the connection's bytes.
 */
#include <stddef.h>
#include <stdint.h>

#include "../fuzz_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_http_stream(data, size, HTTP_RESPONSE);
    return 0;
}
