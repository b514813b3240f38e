/* Helpers shared by the STUN codec's files; not part of the public API. */
#ifndef AR_PROTO_STUN_INTERNAL_H
#define AR_PROTO_STUN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

static inline uint16_t ar__stun_rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t ar__stun_rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void ar__stun_wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void ar__stun_wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* FINGERPRINT's value is the CRC-32 of the message XORed with this (RFC 8489 section 14.7). */
#define AR__STUN_FINGERPRINT_XOR 0x5354554eu
#define AR__STUN_SHA1_LEN 20

/* CRC-32 as in ISO/IEC 13239 (the zlib and Ethernet polynomial), over one contiguous range. */
uint32_t ar__stun_crc32(const uint8_t *p, size_t n);

/*
 * HMAC-SHA1 of hdr (the 20-byte header, with its length field already adjusted) followed by body.
 * Returns 0 or AR_ENOMEM. Split in two parts so a received message is authenticated without
 * copying it just to rewrite its length field.
 */
int ar__stun_hmac_sha1(const uint8_t *key, size_t keylen, const uint8_t hdr[20],
                       const uint8_t *body, size_t body_len, uint8_t out[AR__STUN_SHA1_LEN]);

#endif
