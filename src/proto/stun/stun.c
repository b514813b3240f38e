/*
 * STUN/TURN parsing: classification of the first bytes of a datagram or stream, the message
 * parser, attribute decoders and ChannelData framing. Everything here reads only inside the
 * caller's buffer and keeps pointers into it instead of copying.
 */
#include "stun/stun.h"
#include "internal.h"

#include <netinet/in.h>
#include <string.h>

/* Longest reason phrase and realm/nonce values the RFC allows (RFC 8489 section 14.8). */
#define AR__STUN_MAX_REASON 763

int ar_stun_classify(const uint8_t *buf, size_t len, size_t *need)
{
    size_t dummy;
    if (need == NULL)
        need = &dummy;
    *need = 0;
    if (buf == NULL || len == 0)
        return 0;
    if ((buf[0] & 0xc0) == 0) {
        /*
         * A STUN message: the two top bits are zero (RFC 8489 section 5). A prefix too short
         * to show the cookie is still reported as STUN so a stream reader waits for more.
         */
        if (len >= 4) {
            uint16_t mlen = ar__stun_rd16(buf + 2);
            if (mlen % 4 != 0)
                return 0;
            *need = AR_STUN_HEADER_LEN + (size_t)mlen;
        }
        if (len >= 8 && ar__stun_rd32(buf + 4) != AR_STUN_MAGIC_COOKIE)
            return 0;
        return 1;
    }
    if (buf[0] >= 0x40 && buf[0] <= 0x7f) {
        /*
         * ChannelData: over TCP and TLS the data is padded to a multiple of 4 bytes (RFC 8656
         * section 12.5), so a stream frame is that long; datagram callers ignore *need.
         */
        if (len >= 4) {
            size_t dlen = ar__stun_rd16(buf + 2);
            *need = 4 + ((dlen + 3) & ~(size_t)3);
        }
        return 2;
    }
    return 0;
}

/* The 14-bit type interleaves method and class bits: M11-M7 C1 M6-M4 C0 M3-M0. */
static void decode_type(uint16_t type, uint16_t *method, uint8_t *cls)
{
    *method = (uint16_t)((type & 0x000f) | ((type >> 1) & 0x0070) | ((type >> 2) & 0x0f80));
    *cls = (uint8_t)(((type >> 7) & 0x2) | ((type >> 4) & 0x1));
}

int ar_stun_parse(const uint8_t *buf, size_t len, ar_stun_msg_t *out)
{
    if (buf == NULL || out == NULL || len < AR_STUN_HEADER_LEN)
        return AR_EPARSE;
    uint16_t type = ar__stun_rd16(buf);
    size_t mlen = ar__stun_rd16(buf + 2);
    if ((type & 0xc000) != 0 || ar__stun_rd32(buf + 4) != AR_STUN_MAGIC_COOKIE)
        return AR_EPARSE;
    if (mlen % 4 != 0 || mlen > len - AR_STUN_HEADER_LEN)
        return AR_EPARSE;

    decode_type(type, &out->method, &out->cls);
    memcpy(out->tid, buf + 8, AR_STUN_TID_LEN);
    out->raw = buf;
    out->raw_len = AR_STUN_HEADER_LEN + mlen;
    out->nattrs = 0;
    out->integrity_off = 0;
    out->integrity_sha256_off = 0;
    out->fingerprint_off = 0;

    size_t off = AR_STUN_HEADER_LEN;
    const size_t end = out->raw_len;
    while (off < end) {
        /* The length is a multiple of 4, so at least 4 bytes (one attribute header) remain. */
        uint16_t atype = ar__stun_rd16(buf + off);
        uint16_t alen = ar__stun_rd16(buf + off + 2);
        size_t padded = ((size_t)alen + 3) & ~(size_t)3;
        if (padded > end - off - 4)
            return AR_EPARSE;
        /* FINGERPRINT must be the last attribute (RFC 8489 section 14.7). */
        if (out->fingerprint_off != 0)
            return AR_EPARSE;
        if (atype == AR_STUN_ATTR_FINGERPRINT) {
            if (alen != 4)
                return AR_EPARSE;
            out->fingerprint_off = off;
        } else if (atype == AR_STUN_ATTR_MESSAGE_INTEGRITY_SHA256) {
            /* 16 to 32 bytes in steps of 4 (RFC 8489 section 14.6); only FINGERPRINT follows. */
            if (out->integrity_sha256_off != 0 || alen < 16 || alen > 32 || alen % 4 != 0)
                return AR_EPARSE;
            out->integrity_sha256_off = off;
        } else if (atype == AR_STUN_ATTR_MESSAGE_INTEGRITY) {
            /* MESSAGE-INTEGRITY-SHA256 may follow MESSAGE-INTEGRITY, never precede it. */
            if (out->integrity_off != 0 || out->integrity_sha256_off != 0 ||
                alen != AR__STUN_SHA1_LEN)
                return AR_EPARSE;
            out->integrity_off = off;
        } else if (out->integrity_off != 0 || out->integrity_sha256_off != 0) {
            /*
             * The RFC tells receivers to ignore attributes after the integrity check; we refuse
             * them outright, so no later code can mistake unauthenticated bytes for covered ones.
             */
            return AR_EPARSE;
        }
        if (out->nattrs == AR_STUN_MAX_ATTRS)
            return AR_EPARSE;
        ar_stun_attr_t *a = &out->attrs[out->nattrs++];
        a->type = atype;
        a->len = alen;
        a->value = buf + off + 4;
        off += 4 + padded;
    }
    return 0;
}

const ar_stun_attr_t *ar_stun_find(const ar_stun_msg_t *msg, uint16_t type)
{
    for (size_t i = 0; i < msg->nattrs; i++) {
        if (msg->attrs[i].type == type)
            return &msg->attrs[i];
    }
    return NULL;
}

int ar_stun_attr_u32(const ar_stun_attr_t *a, uint32_t *out)
{
    if (a == NULL || a->len != 4)
        return AR_EPARSE;
    *out = ar__stun_rd32(a->value);
    return 0;
}

/*
 * Shared by the plain and XOR forms: family 0x01 carries 4 address bytes, 0x02 carries 16
 * (RFC 8489 section 14.1). mask is 16 bytes XORed over port (first 2) and address, or NULL.
 */
static int decode_addr(const ar_stun_attr_t *a, const uint8_t *mask, struct sockaddr_storage *out)
{
    if (a == NULL || a->len < 4)
        return AR_EPARSE;
    const uint8_t *v = a->value;
    uint16_t port = ar__stun_rd16(v + 2);
    if (mask != NULL)
        port ^= ar__stun_rd16(mask);
    memset(out, 0, sizeof(*out));
    if (v[1] == 0x01 && a->len == 8) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        uint8_t *ip = (uint8_t *)&sin->sin_addr;
        for (int i = 0; i < 4; i++)
            ip[i] = (uint8_t)(v[4 + i] ^ (mask ? mask[i] : 0));
        return 0;
    }
    if (v[1] == 0x02 && a->len == 20) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        for (int i = 0; i < 16; i++)
            sin6->sin6_addr.s6_addr[i] = (uint8_t)(v[4 + i] ^ (mask ? mask[i] : 0));
        return 0;
    }
    return AR_EPARSE;
}

int ar_stun_attr_xor_addr(const ar_stun_attr_t *a, const uint8_t tid[12],
                          struct sockaddr_storage *out)
{
    /* The XOR key is the magic cookie followed by the transaction id (RFC 8489 section 14.2). */
    uint8_t mask[16];
    ar__stun_wr32(mask, AR_STUN_MAGIC_COOKIE);
    memcpy(mask + 4, tid, AR_STUN_TID_LEN);
    return decode_addr(a, mask, out);
}

int ar_stun_attr_addr(const ar_stun_attr_t *a, struct sockaddr_storage *out)
{
    return decode_addr(a, NULL, out);
}

int ar_stun_attr_error(const ar_stun_attr_t *a, int *code, const uint8_t **reason,
                       size_t *reason_len)
{
    if (a == NULL || a->len < 4 || a->len - 4 > AR__STUN_MAX_REASON)
        return AR_EPARSE;
    int cls = a->value[2] & 0x07;
    int num = a->value[3];
    if (cls < 3 || cls > 6 || num > 99)
        return AR_EPARSE;
    *code = cls * 100 + num;
    *reason = a->value + 4;
    *reason_len = a->len - 4u;
    return 0;
}

int ar_stun_attr_family(const ar_stun_attr_t *a, int *family)
{
    if (a == NULL || a->len != 4)
        return AR_EPARSE;
    if (a->value[0] == 0x01)
        *family = 4;
    else if (a->value[0] == 0x02)
        *family = 6;
    else
        return AR_EINVAL;
    return 0;
}

int ar_stun_attr_address_error(const ar_stun_attr_t *a, int *family, int *code,
                               const uint8_t **reason, size_t *reason_len)
{
    /* The same layout as ERROR-CODE, with the family in the first byte. */
    if (a == NULL || a->len < 4 || (a->value[0] != 0x01 && a->value[0] != 0x02))
        return AR_EPARSE;
    ar_stun_attr_t plain = *a;
    int rc = ar_stun_attr_error(&plain, code, reason, reason_len);
    if (rc != 0)
        return rc;
    *family = a->value[0] == 0x01 ? 4 : 6;
    return 0;
}

int ar_turn_channel_parse(const uint8_t *buf, size_t len, uint16_t *channel, const uint8_t **data,
                          size_t *data_len)
{
    if (buf == NULL || len < 4)
        return AR_EPARSE;
    uint16_t ch = ar__stun_rd16(buf);
    size_t dlen = ar__stun_rd16(buf + 2);
    if (ch < AR_TURN_CHANNEL_MIN || ch > AR_TURN_CHANNEL_MAX || dlen > len - 4)
        return AR_EPARSE;
    *channel = ch;
    *data = buf + 4;
    *data_len = dlen;
    return 0;
}

int ar_turn_channel_header(uint8_t hdr[4], uint16_t channel, size_t len)
{
    if (channel < AR_TURN_CHANNEL_MIN || channel > AR_TURN_CHANNEL_MAX || len > 0xffff)
        return AR_EINVAL;
    ar__stun_wr16(hdr, channel);
    ar__stun_wr16(hdr + 2, (uint16_t)len);
    return (int)((4 - len % 4) % 4);
}
