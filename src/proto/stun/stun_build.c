/*
 * STUN message builder. Each add checks room first and records the first failure in b->err,
 * so callers write a sequence of adds and check once in ar_stun_build_finish().
 */
#include "stun/stun.h"
#include "internal.h"

#include <netinet/in.h>
#include <string.h>

/* The body length field is 16 bits and always a multiple of 4. */
#define MAX_BODY 65532u

static void set_err(ar_stun_builder_t *b, int err)
{
    if (b->err == 0)
        b->err = err;
}

static void set_body_len(ar_stun_builder_t *b, size_t body)
{
    ar__stun_wr16(b->buf + 2, (uint16_t)body);
}

/* Reserves an attribute of len value bytes (plus padding) and returns its value pointer. */
static uint8_t *reserve(ar_stun_builder_t *b, uint16_t type, size_t len)
{
    if (b->err != 0)
        return NULL;
    size_t padded = (len + 3) & ~(size_t)3;
    if (len > 0xffff || b->len - AR_STUN_HEADER_LEN + 4 + padded > MAX_BODY ||
        4 + padded > b->cap - b->len) {
        set_err(b, AR_ETOOBIG);
        return NULL;
    }
    uint8_t *p = b->buf + b->len;
    ar__stun_wr16(p, type);
    ar__stun_wr16(p + 2, (uint16_t)len);
    /* Padding is zeroed so no stale caller memory leaks onto the wire. */
    memset(p + 4 + len, 0, padded - len);
    b->len += 4 + padded;
    set_body_len(b, b->len - AR_STUN_HEADER_LEN);
    return p + 4;
}

/* Ordinary attributes may not follow MESSAGE-INTEGRITY(-SHA256) or FINGERPRINT. */
static uint8_t *reserve_plain(ar_stun_builder_t *b, uint16_t type, size_t len)
{
    if (b->err == 0 && b->sealed != 0) {
        set_err(b, AR_EINVAL);
        return NULL;
    }
    return reserve(b, type, len);
}

void ar_stun_build_start(ar_stun_builder_t *b, uint8_t *buf, size_t cap, uint16_t method,
                         uint8_t cls, const uint8_t tid[12])
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->err = 0;
    b->sealed = 0;
    if (buf == NULL || cap < AR_STUN_HEADER_LEN) {
        set_err(b, AR_ETOOBIG);
        return;
    }
    if (method > 0xfff || cls > 3) {
        set_err(b, AR_EINVAL);
        return;
    }
    uint16_t type = (uint16_t)((method & 0x000f) | ((method & 0x0070) << 1) |
                               ((method & 0x0f80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7));
    ar__stun_wr16(buf, type);
    ar__stun_wr16(buf + 2, 0);
    ar__stun_wr32(buf + 4, AR_STUN_MAGIC_COOKIE);
    memcpy(buf + 8, tid, AR_STUN_TID_LEN);
    b->len = AR_STUN_HEADER_LEN;
}

void ar_stun_build_attr(ar_stun_builder_t *b, uint16_t type, const void *value, size_t len)
{
    if (value == NULL && len > 0) {
        set_err(b, AR_EINVAL);
        return;
    }
    uint8_t *p = reserve_plain(b, type, len);
    if (p != NULL && len > 0)
        memcpy(p, value, len);
}

void ar_stun_build_u32(ar_stun_builder_t *b, uint16_t type, uint32_t value)
{
    uint8_t *p = reserve_plain(b, type, 4);
    if (p != NULL)
        ar__stun_wr32(p, value);
}

static void build_addr(ar_stun_builder_t *b, uint16_t type, const struct sockaddr *sa, int xor)
{
    if (b->err != 0)
        return;
    uint8_t mask[16] = {0};
    if (xor) {
        ar__stun_wr32(mask, AR_STUN_MAGIC_COOKIE);
        memcpy(mask + 4, b->buf + 8, AR_STUN_TID_LEN);
    }
    const uint8_t *ip;
    uint16_t port;
    size_t iplen;
    uint8_t family;
    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        ip = (const uint8_t *)&sin->sin_addr;
        port = ntohs(sin->sin_port);
        iplen = 4;
        family = 0x01;
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        ip = sin6->sin6_addr.s6_addr;
        port = ntohs(sin6->sin6_port);
        iplen = 16;
        family = 0x02;
    } else {
        set_err(b, AR_EINVAL);
        return;
    }
    uint8_t *p = reserve_plain(b, type, 4 + iplen);
    if (p == NULL)
        return;
    p[0] = 0;
    p[1] = family;
    ar__stun_wr16(p + 2, (uint16_t)(port ^ ar__stun_rd16(mask)));
    for (size_t i = 0; i < iplen; i++)
        p[4 + i] = (uint8_t)(ip[i] ^ mask[i]);
}

void ar_stun_build_xor_addr(ar_stun_builder_t *b, uint16_t type, const struct sockaddr *sa)
{
    build_addr(b, type, sa, 1);
}

void ar_stun_build_addr(ar_stun_builder_t *b, uint16_t type, const struct sockaddr *sa)
{
    build_addr(b, type, sa, 0);
}

/* Reason phrases from RFC 8489 section 14.8, RFC 8656 section 19 and RFC 6062 section 6.3. */
static const char *default_reason(int code)
{
    switch (code) {
    case 300:
        return "Try Alternate";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthenticated";
    case 403:
        return "Forbidden";
    case 405:
        return "Mobility Forbidden";
    case 420:
        return "Unknown Attribute";
    case 437:
        return "Allocation Mismatch";
    case 438:
        return "Stale Nonce";
    case 440:
        return "Address Family not Supported";
    case 441:
        return "Wrong Credentials";
    case 442:
        return "Unsupported Transport Protocol";
    case 443:
        return "Peer Address Family Mismatch";
    case 446:
        return "Connection Already Exists";
    case 447:
        return "Connection Timeout or Failure";
    case 486:
        return "Allocation Quota Reached";
    case 500:
        return "Server Error";
    case 508:
        return "Insufficient Capacity";
    default:
        return "";
    }
}

void ar_stun_build_family(ar_stun_builder_t *b, uint16_t type, int family)
{
    if (b->err == 0 && family != 4 && family != 6) {
        set_err(b, AR_EINVAL);
        return;
    }
    uint8_t v[4] = {family == 4 ? 0x01 : 0x02, 0, 0, 0};
    ar_stun_build_attr(b, type, v, sizeof(v));
}

/* ERROR-CODE, or ADDRESS-ERROR-CODE when family is 4 or 6 (its first byte). */
static void build_error(ar_stun_builder_t *b, uint16_t type, int family, int code,
                        const char *reason)
{
    if (b->err != 0)
        return;
    if (code < 300 || code > 699) {
        set_err(b, AR_EINVAL);
        return;
    }
    if (reason == NULL)
        reason = default_reason(code);
    /* The RFC caps the phrase at 763 bytes (128 characters). */
    size_t rlen = strnlen(reason, 764);
    if (rlen > 763) {
        set_err(b, AR_EINVAL);
        return;
    }
    uint8_t *p = reserve_plain(b, type, 4 + rlen);
    if (p == NULL)
        return;
    p[0] = family == 4 ? 0x01 : family == 6 ? 0x02 : 0;
    p[1] = 0;
    p[2] = (uint8_t)(code / 100);
    p[3] = (uint8_t)(code % 100);
    memcpy(p + 4, reason, rlen);
}

void ar_stun_build_error(ar_stun_builder_t *b, int code, const char *reason)
{
    build_error(b, AR_STUN_ATTR_ERROR_CODE, 0, code, reason);
}

void ar_stun_build_address_error(ar_stun_builder_t *b, int family, int code, const char *reason)
{
    if (b->err == 0 && family != 4 && family != 6) {
        set_err(b, AR_EINVAL);
        return;
    }
    build_error(b, AR_TURN_ATTR_ADDRESS_ERROR_CODE, family, code, reason);
}

void ar_stun_build_integrity(ar_stun_builder_t *b, const uint8_t *key, size_t keylen)
{
    if (b->err == 0 && b->sealed != 0) {
        set_err(b, AR_EINVAL);
        return;
    }
    uint8_t *p = reserve(b, AR_STUN_ATTR_MESSAGE_INTEGRITY, AR__STUN_SHA1_LEN);
    if (p == NULL)
        return;
    /* reserve() already set the length field to count this attribute, as the HMAC needs. */
    size_t covered = (size_t)(p - 4 - b->buf);
    int rc = ar__stun_hmac_sha1(key, keylen, b->buf, b->buf + AR_STUN_HEADER_LEN,
                                covered - AR_STUN_HEADER_LEN, p);
    if (rc != 0)
        set_err(b, rc);
    b->sealed = 1;
}

void ar_stun_build_fingerprint(ar_stun_builder_t *b)
{
    if (b->err == 0 && b->sealed == 2) {
        set_err(b, AR_EINVAL);
        return;
    }
    uint8_t *p = reserve(b, AR_STUN_ATTR_FINGERPRINT, 4);
    if (p == NULL)
        return;
    size_t covered = (size_t)(p - 4 - b->buf);
    ar__stun_wr32(p, ar__stun_crc32(b->buf, covered) ^ AR__STUN_FINGERPRINT_XOR);
    b->sealed = 2;
}

int ar_stun_build_finish(ar_stun_builder_t *b)
{
    if (b->err != 0)
        return b->err;
    return (int)b->len;
}
