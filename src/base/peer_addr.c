/*
 * peer_addr.c — see include/freshcache/base/peer_addr.h.
 */
#include <arpa/inet.h>
#include <string.h>

#include "freshcache/base/assert.h"
#include "freshcache/base/peer_addr.h"

void peer_addr_set(struct peer_addr *pa, const struct sockaddr *sa)
{
    memset(pa, 0, sizeof *pa);
    pa->family = AF_UNSPEC;
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET) {
        pa->family = AF_INET;
        memcpy(pa->bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        pa->family = AF_INET6;
        memcpy(pa->bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

char *peer_addr_format(const struct peer_addr *pa, char out[PEER_ADDR_TEXT])
{
    if (pa->family == AF_INET || pa->family == AF_INET6)
        AN(inet_ntop(pa->family, pa->bytes, out, PEER_ADDR_TEXT));
    else
        memcpy(out, "unknown", sizeof "unknown");
    return out;
}

bool peer_addr_equal(const struct peer_addr *a, const struct peer_addr *b)
{
    return a->family == b->family &&
           memcmp(a->bytes, b->bytes, a->family == AF_INET ? 4 : sizeof a->bytes) == 0;
}
