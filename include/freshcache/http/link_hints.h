/*
 * link_hints.h — which Link field members (RFC 8288) are worth sending
 * ahead of a response as 103 Early Hints (RFC 8297): the ones a browser
 * acts on before it has the page, rel=preload, modulepreload and
 * preconnect.  Anything else in a stored response's Link fields (canonical,
 * alternate, next, ...) waits for the final response.
 */
#ifndef FRESHCACHE_LINK_HINTS_H
#define FRESHCACHE_LINK_HINTS_H

#include <stddef.h>

/* Append "Link: <link-value>\r\n" to out (at *used, at most cap bytes in
 * all) for every member of the Link field value `v` whose first rel
 * parameter names preload, modulepreload or preconnect (case-insensitive,
 * among space-separated relation types).  Members are copied as written;
 * a malformed member is skipped, the rest still read; one that does not
 * fit in what is left of `out` is left out whole.  Returns how many were
 * appended. */
size_t link_hints_filter(const char *v, size_t len, char *out, size_t cap, size_t *used);

#endif
