/*
 * cc_fields.h — which caching directives a message carries, read from its
 * fields: a request's Cache-Control (with Pragma: no-cache folded in, RFC
 * 9111 §5.4), and for a response the field this cache obeys (RFC 9213):
 * its own targeted field, else CDN-Cache-Control, else Surrogate-Control
 * (Edge Architecture 1.0, directives aimed at other targets skipped), else
 * Cache-Control.
 */
#ifndef FRESHCACHE_CC_FIELDS_H
#define FRESHCACHE_CC_FIELDS_H

#include <stdbool.h>

#include "freshcache/http/cache_control.h"

struct http_msg;

/* The name this cache answers to in targeted fields and Surrogate-Control
 * targets ("Freshcache-Cache-Control", "max-age=60;freshcache"). */
#define CC_TARGET "freshcache"

/* Every Cache-Control field of `m`, merged. */
void cc_fields_parse(const struct http_msg *m, struct cache_control *cc);
/* A request's directives: Cache-Control, or Pragma: no-cache without it. */
void cc_request_parse(const struct http_msg *req, struct cache_control *cc);
/* The response directives this cache obeys (see above). */
void cc_response_parse(const struct http_msg *resp, struct cache_control *cc);
/* Does the response carry any field cc_response_parse() reads? */
bool cc_response_has_fields(const struct http_msg *resp);

#endif
