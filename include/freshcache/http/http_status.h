/*
 * http_status.h — the reason phrases of the status codes RFC 9110 defines
 * (and the few others a proxy meets), for every response freshcache writes
 * itself and for origin status lines that came without one.
 */
#ifndef FRESHCACHE_HTTP_STATUS_H
#define FRESHCACHE_HTTP_STATUS_H

/* "Not Found" for 404; a generic phrase by class for codes not in the
 * table ("Success", "Client Error", ...); never NULL. */
const char *http_status_reason(int status);

#endif
