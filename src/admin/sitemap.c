/*
 * sitemap.c — sitemap XML to URLs, URLs to warm targets.  See
 * include/freshcache/admin/sitemap.h.
 *
 * libxml2 with XML_PARSE_NONET and without XML_PARSE_NOENT / DTDLOAD:
 * external entities and DTDs are never fetched or expanded (XXE), and its
 * default limits stop entity amplification ("billion laughs").  A sitemap
 * comes from the origin, which we trust with our content but not with the
 * daemon's file system.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "freshcache/admin/sitemap.h"
#include "freshcache/base/assert.h"

static bool name_is(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

/* The trimmed text of the first <loc> child of `entry`, or NULL. */
static char *entry_loc(const xmlNode *entry)
{
    for (const xmlNode *c = entry->children; c; c = c->next) {
        if (!name_is(c, "loc"))
            continue;
        xmlChar *text = xmlNodeGetContent(c);
        if (text == NULL)
            return NULL;
        const char *s = (const char *)text;
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
            s++;
        size_t len = strlen(s);
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' ||
                       s[len - 1] == '\n'))
            len--;
        char *loc = len ? strndup(s, len) : NULL;
        xmlFree(text);
        return loc;
    }
    return NULL;
}

int sitemap_parse(const char *xml, size_t len, size_t max_locs, struct sitemap *out, char *err,
                  size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len > (size_t)0x7fffffff) {
        snprintf(err, errlen, "too large to parse");
        return -1;
    }
    xmlInitParser();
    /* libxml2 keeps the last error per thread, and a parse that succeeds
     * may leave one it recovered from: without this, a later failure that
     * records none (an empty document) would report an earlier sitemap's
     * error. */
    xmlResetLastError();
    xmlDoc *doc = xmlReadMemory(xml, (int)len, "sitemap.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc == NULL) {
        const xmlError *e = xmlGetLastError();
        char msg[200] = "not well-formed XML";
        if (e && e->message) {
            snprintf(msg, sizeof msg, "%s", e->message);
            size_t ml = strlen(msg);
            while (ml && msg[ml - 1] == '\n')
                msg[--ml] = '\0';
        }
        if (e && e->line > 0)
            snprintf(err, errlen, "not a sitemap: line %d: %s", e->line, msg);
        else
            snprintf(err, errlen, "not a sitemap: %s", msg);
        xmlResetLastError();
        return -1;
    }
    const xmlNode *root = xmlDocGetRootElement(doc);
    const char *entry_name;
    if (root && name_is(root, "urlset")) {
        out->kind = SITEMAP_URLSET;
        entry_name = "url";
    } else if (root && name_is(root, "sitemapindex")) {
        out->kind = SITEMAP_INDEX;
        entry_name = "sitemap";
    } else {
        snprintf(err, errlen, "not a sitemap: the root element is <%s>, not <urlset> or "
                 "<sitemapindex>", root ? (const char *)root->name : "");
        xmlFreeDoc(doc);
        return -1;
    }
    size_t cap = 0;
    for (const xmlNode *c = root->children; c; c = c->next) {
        if (!name_is(c, entry_name))
            continue;
        if (out->n == max_locs) {
            out->truncated = true;
            break;
        }
        char *loc = entry_loc(c);
        if (loc == NULL)
            continue;       /* an entry without a <loc> names nothing */
        if (out->n == cap) {
            cap = cap ? cap * 2 : 64;
            out->locs = realloc(out->locs, cap * sizeof *out->locs);
            AN(out->locs);
        }
        out->locs[out->n++] = loc;
    }
    xmlFreeDoc(doc);
    return 0;
}

void sitemap_free(struct sitemap *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->locs[i]);
    free(s->locs);
    memset(s, 0, sizeof *s);
}

/* `len` bytes of a host[:port], lower-cased and without ":80"/":443".
 * false when it does not fit in `out`: cut to fit, a longer host would
 * compare equal to any other sharing its first bytes. */
static bool host_norm(const char *h, size_t len, char *out, size_t outlen)
{
    if (len >= 3 && memcmp(h + len - 3, ":80", 3) == 0)
        len -= 3;
    else if (len >= 4 && memcmp(h + len - 4, ":443", 4) == 0)
        len -= 4;
    if (len >= outlen)
        return false;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] + 32 : h[i]);
    out[len] = '\0';
    return true;
}

int url_to_target(const char *url, const char *host, char *out, size_t outlen, char *err,
                  size_t errlen)
{
    const char *path = url;
    if (url[0] != '/') {
        size_t skip = 0;
        if (strncasecmp(url, "http://", 7) == 0)
            skip = 7;
        else if (strncasecmp(url, "https://", 8) == 0)
            skip = 8;
        if (skip == 0) {
            snprintf(err, errlen, "not a path or an http(s) URL");
            return -1;
        }
        const char *auth = url + skip;
        size_t alen = strcspn(auth, "/?#");
        if (alen == 0 || memchr(auth, '@', alen)) {
            snprintf(err, errlen, "no host, or user information in the URL");
            return -1;
        }
        char a[256], h[256];
        if (!host_norm(auth, alen, a, sizeof a) || !host_norm(host, strlen(host), h, sizeof h) ||
            strcmp(a, h) != 0) {
            snprintf(err, errlen, "host %.*s is not the warm host %s", (int)(alen > 100 ? 100 : alen),
                     auth, host);
            return -1;
        }
        path = auth + alen;
    }
    size_t plen = strcspn(path, "#");
    for (size_t i = 0; i < plen; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch <= 0x20 || ch == 0x7f) {
            snprintf(err, errlen, "control character or space in the URL");
            return -1;
        }
    }
    bool add_slash = plen == 0 || path[0] != '/';   /* "http://h" or "http://h?q" */
    if (plen + add_slash >= outlen) {
        snprintf(err, errlen, "URL longer than %zu bytes", outlen - 1);
        return -1;
    }
    size_t o = 0;
    if (add_slash)
        out[o++] = '/';
    memcpy(out + o, path, plen);
    out[o + plen] = '\0';
    return 0;
}
