/*
 * RFC 3489 ("classic STUN") Binding requests. Before RFC 5389 the four bytes after the length
 * were part of a 128-bit transaction id instead of the magic cookie; clients such as Debian's
 * `stun` 0.97 still send such requests. A relay answers them with MAPPED-ADDRESS alone: enough for
 * a client to learn its reflexive address, nothing more. RESPONSE-ADDRESS is never honoured (it
 * would make us a reflector aimed at a third party) and a CHANGE-REQUEST asking for another
 * address or port gets no answer, since we have no second address to answer from.
 */
#include "internal.h"
#include "stun/stun.h"

#include <netinet/in.h>
#include <string.h>

#define CLASSIC_BINDING_REQUEST 0x0001
#define CLASSIC_BINDING_RESPONSE 0x0101
#define CLASSIC_ATTR_CHANGE_REQUEST 0x0003
#define CLASSIC_MAX_BODY 512 /* a Binding request carries a few small attributes at most */

int ar_stun_classic_binding_response(const uint8_t *req, size_t len, const struct sockaddr *mapped,
                                     uint8_t *out, size_t cap)
{
    if (len < AR_STUN_HEADER_LEN || ar__stun_rd16(req) != CLASSIC_BINDING_REQUEST ||
        ar__stun_rd32(req + 4) == AR_STUN_MAGIC_COOKIE)
        return 0;
    size_t body = ar__stun_rd16(req + 2);
    if (body % 4 != 0 || body > CLASSIC_MAX_BODY || AR_STUN_HEADER_LEN + body != len)
        return 0;
    for (size_t off = AR_STUN_HEADER_LEN; off < len;) {
        if (len - off < 4)
            return 0;
        uint16_t type = ar__stun_rd16(req + off);
        size_t alen = ar__stun_rd16(req + off + 2);
        if (alen > len - off - 4)
            return 0;
        if (type == CLASSIC_ATTR_CHANGE_REQUEST &&
            (alen != 4 || (ar__stun_rd32(req + off + 4) & 0x6) != 0))
            return 0;
        off += 4 + ((alen + 3) & ~(size_t)3);
    }

    size_t alen = mapped->sa_family == AF_INET6 ? 20 : 8;
    size_t total = AR_STUN_HEADER_LEN + 4 + alen;
    if (mapped->sa_family != AF_INET && mapped->sa_family != AF_INET6)
        return AR_EINVAL;
    if (cap < total)
        return AR_ETOOBIG;
    memset(out, 0, total);
    out[0] = CLASSIC_BINDING_RESPONSE >> 8;
    out[1] = CLASSIC_BINDING_RESPONSE & 0xff;
    out[3] = (uint8_t)(4 + alen);
    memcpy(out + 4, req + 4, 16); /* the 128-bit transaction id */
    uint8_t *a = out + AR_STUN_HEADER_LEN;
    a[1] = AR_STUN_ATTR_MAPPED_ADDRESS;
    a[3] = (uint8_t)alen;
    if (mapped->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)mapped;
        a[5] = 0x01;
        memcpy(a + 6, &v4->sin_port, 2);
        memcpy(a + 8, &v4->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)mapped;
        a[5] = 0x02;
        memcpy(a + 6, &v6->sin6_port, 2);
        memcpy(a + 8, &v6->sin6_addr, 16);
    }
    return (int)total;
}
