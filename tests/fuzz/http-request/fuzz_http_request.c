/*
 * fuzz_http_request.c — client bytes through the request parser (the
 * llhttp glue in http_parse.c filling an http_msg), and what the proxy
 * reads from each head: Host, the cache key, request Cache-Control and
 * Pragma, hop-by-hop fields.  Input: one control byte (fuzz_http.h), then
 * the connection's bytes.
 */
#include <stddef.h>
#include <stdint.h>

#include "../fuzz_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_http_stream(data, size, HTTP_REQUEST);
    return 0;
}
