/*
 * sitemap.h — the URLs of a sitemap (https://www.sitemaps.org/protocol.html)
 * for `proxyctl warm --sitemap`, and the reduction of a URL to the
 * request target a warm request sends.
 *
 * Pure functions of their input (libxml2 parses, nothing is fetched and no
 * entity or DTD is loaded from anywhere), so the unit tests need no daemon.
 */
#ifndef FRESHCACHE_SITEMAP_H
#define FRESHCACHE_SITEMAP_H

#include <stdbool.h>
#include <stddef.h>

enum sitemap_kind {
    SITEMAP_URLSET,             /* <urlset><url><loc>: pages */
    SITEMAP_INDEX,              /* <sitemapindex><sitemap><loc>: more sitemaps */
};

struct sitemap {
    enum sitemap_kind kind;
    char **locs;                /* each <loc>, trimmed, entities decoded */
    size_t n;
    bool truncated;             /* more than max_locs: the rest was left out */
};

/* Parse `len` bytes of XML.  0, or -1 with the reason in err (not XML, not
 * a sitemap).  At most max_locs entries are kept. */
int sitemap_parse(const char *xml, size_t len, size_t max_locs, struct sitemap *out, char *err,
                  size_t errlen);
void sitemap_free(struct sitemap *s);

/* The request target ("/path?query", no fragment) of `url`: a path as it
 * is, or an absolute http(s) URL whose host is `host` (compared without
 * case, ":80" and ":443" not counted).  0, or -1 with the reason in err:
 * another host, another scheme, no path, control characters, too long. */
int url_to_target(const char *url, const char *host, char *out, size_t outlen, char *err,
                  size_t errlen);

#endif
