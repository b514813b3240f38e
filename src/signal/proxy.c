/*
 * The client's address behind a load balancer, for the per-address cap. A connection from a
 * configured trusted proxy (trusted-proxy, CIDR list) is counted under the address that
 * X-Forwarded-For names; from anyone else the header is ignored, since a client can write
 * whatever it likes there. The list is read from the right, each proxy having appended the
 * address it received from: the first hop that is not a trusted proxy is the client (a client
 * that prepends made-up hops only changes the part left of the real one, which is never read).
 * Addresses are 16-byte keys: IPv4 as ::ffff:a.b.c.d, so an IPv4 peer on a dual-stack socket
 * matches an IPv4 prefix and nothing else (no 6to4 or NAT64 mapping: a proxy is trusted by the
 * address it really connects from).
 */
#include "internal.h"

#include "anteroom/addr_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* The key parsing and prefix matching are the relay's peer policy's (anteroom/addr_policy.h). */
int ar__sig_cidr_parse(const char *spec, ar__sig_cidr_t *out)
{
    unsigned plen;
    if (ar_addr_prefix_parse(spec, strlen(spec), out->key, &plen) != 0)
        return AR_ECONFIG;
    out->bits = (uint8_t)plen;
    return 0;
}

int ar__sig_cidr_match(const ar__sig_cidr_t *list, size_t n, const uint8_t key[16])
{
    for (size_t i = 0; i < n; i++)
        if (ar_addr_key_match(key, list[i].key, list[i].bits))
            return 1;
    return 0;
}

int ar__sig_addr_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
    return ar_addr_key_of((const struct sockaddr *)ss, key);
}

/* One X-Forwarded-For entry: "a.b.c.d", "a.b.c.d:port", "v6" or "[v6]:port". */
static int parse_hop(const char *p, size_t len, uint8_t key[16])
{
    while (len && (*p == ' ' || *p == '\t'))
        p++, len--;
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    if (len == 0)
        return AR_EPARSE;
    if (p[0] == '[') {
        const char *end = memchr(p, ']', len);
        if (!end)
            return AR_EPARSE;
        p++;
        len = (size_t)(end - p);
    } else {
        const char *c1 = memchr(p, ':', len);
        if (c1 && !memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - p)))
            len = (size_t)(c1 - p); /* one colon: IPv4 with a port */
    }
    unsigned bits;
    return ar_addr_key_parse(p, len, key, &bits) == 0 ? 0 : AR_EPARSE;
}

int ar__sig_client_key(const uint8_t peer[16], const char *xff, size_t len, int cut,
                       const ar__sig_cidr_t *trusted, size_t ntrusted, uint8_t out[16])
{
    memcpy(out, peer, 16);
    if (!ntrusted || !ar__sig_cidr_match(trusted, ntrusted, peer) || len == 0)
        return 0;
    /* From the right: every hop a trusted proxy vouches for, until one that is not trusted. */
    size_t end = len;
    int used = 0;
    for (;;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        if (start == 0 && cut)
            break; /* the leftmost entry of a cut header may be a fragment */
        uint8_t hop[16];
        if (parse_hop(xff + start, end - start, hop) != 0)
            break; /* garbage: stop at the last proxy that vouched for something */
        memcpy(out, hop, 16);
        used = 1;
        if (!ar__sig_cidr_match(trusted, ntrusted, hop) || start == 0)
            break;
        end = start - 1;
    }
    return used;
}
