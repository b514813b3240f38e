/*
 * STUN (RFC 8489) and TURN (RFC 8656, RFC 6062, RFC 6156) message codec. No I/O, no globals,
 * no allocation: parsing is zero-copy over the caller's buffer, building writes into the caller's
 * buffer. Everything a peer sends passes through ar_stun_parse() first; it never reads outside
 * [buf, buf+len) and rejects anything malformed with AR_EPARSE.
 */
#ifndef AR_PROTO_STUN_H
#define AR_PROTO_STUN_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define AR_STUN_HEADER_LEN 20
#define AR_STUN_MAGIC_COOKIE 0x2112A442u
#define AR_STUN_TID_LEN 12
#define AR_STUN_MAX_ATTRS 40 /* more attributes than this in one message is malformed */
#define AR_STUN_MAX_MSG 65535

/* Methods */
#define AR_STUN_BINDING 0x001
#define AR_TURN_ALLOCATE 0x003
#define AR_TURN_REFRESH 0x004
#define AR_TURN_SEND 0x006
#define AR_TURN_DATA 0x007
#define AR_TURN_CREATE_PERMISSION 0x008
#define AR_TURN_CHANNEL_BIND 0x009
#define AR_TURN_CONNECT 0x00a            /* RFC 6062 */
#define AR_TURN_CONNECTION_BIND 0x00b    /* RFC 6062 */
#define AR_TURN_CONNECTION_ATTEMPT 0x00c /* RFC 6062 */

/* Classes */
#define AR_STUN_REQUEST 0
#define AR_STUN_INDICATION 1
#define AR_STUN_SUCCESS 2
#define AR_STUN_ERROR 3

/* Attributes */
#define AR_STUN_ATTR_MAPPED_ADDRESS 0x0001
#define AR_STUN_ATTR_USERNAME 0x0006
#define AR_STUN_ATTR_MESSAGE_INTEGRITY 0x0008
#define AR_STUN_ATTR_ERROR_CODE 0x0009
#define AR_STUN_ATTR_UNKNOWN_ATTRIBUTES 0x000a
#define AR_TURN_ATTR_CHANNEL_NUMBER 0x000c
#define AR_TURN_ATTR_LIFETIME 0x000d
#define AR_TURN_ATTR_XOR_PEER_ADDRESS 0x0012
#define AR_TURN_ATTR_DATA 0x0013
#define AR_STUN_ATTR_REALM 0x0014
#define AR_STUN_ATTR_NONCE 0x0015
#define AR_TURN_ATTR_XOR_RELAYED_ADDRESS 0x0016
#define AR_TURN_ATTR_REQUESTED_ADDRESS_FAMILY 0x0017
#define AR_TURN_ATTR_EVEN_PORT 0x0018
#define AR_TURN_ATTR_REQUESTED_TRANSPORT 0x0019
#define AR_TURN_ATTR_DONT_FRAGMENT 0x001a
#define AR_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 0x001c
#define AR_STUN_ATTR_PASSWORD_ALGORITHM 0x001d
#define AR_STUN_ATTR_USERHASH 0x001e
#define AR_STUN_ATTR_XOR_MAPPED_ADDRESS 0x0020
#define AR_TURN_ATTR_RESERVATION_TOKEN 0x0022
#define AR_STUN_ATTR_PRIORITY 0x0024
#define AR_STUN_ATTR_USE_CANDIDATE 0x0025
#define AR_TURN_ATTR_CONNECTION_ID 0x002a /* RFC 6062 */
#define AR_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY 0x8000
#define AR_TURN_ATTR_ADDRESS_ERROR_CODE 0x8001
#define AR_TURN_ATTR_ICMP 0x8004
#define AR_STUN_ATTR_PASSWORD_ALGORITHMS 0x8002
#define AR_STUN_ATTR_ALTERNATE_DOMAIN 0x8003
#define AR_STUN_ATTR_SOFTWARE 0x8022
#define AR_STUN_ATTR_ALTERNATE_SERVER 0x8023
#define AR_STUN_ATTR_FINGERPRINT 0x8028
#define AR_STUN_ATTR_ICE_CONTROLLED 0x8029
#define AR_STUN_ATTR_ICE_CONTROLLING 0x802a

typedef struct ar_stun_attr_s {
    uint16_t type;
    uint16_t len;         /* value length, without padding */
    const uint8_t *value; /* points into the parsed buffer */
} ar_stun_attr_t;

typedef struct ar_stun_msg_s {
    uint16_t method;
    uint8_t cls; /* AR_STUN_REQUEST ... AR_STUN_ERROR */
    uint8_t tid[AR_STUN_TID_LEN];
    const uint8_t *raw;
    size_t raw_len; /* header + attributes, as the length field says */
    ar_stun_attr_t attrs[AR_STUN_MAX_ATTRS];
    size_t nattrs;
    /* Byte offsets of these attributes' headers in raw, or 0 when absent. */
    size_t integrity_off;
    size_t integrity_sha256_off;
    size_t fingerprint_off;
} ar_stun_msg_t;

/*
 * Classifies the first bytes of a datagram or stream: 1 for a STUN message (top bits 00, magic
 * cookie present, length a multiple of 4), 2 for TURN ChannelData (first byte 0x40-0x7f), 0 for
 * anything else. *need (may be NULL) gets how many bytes the whole frame takes on a stream, 0
 * when not yet known (fewer than 4 bytes): 20 + length for STUN, 4 + length rounded up to 4 for
 * ChannelData (RFC 8656 section 12.5 pads it over TCP/TLS; over UDP use the length field). A
 * prefix shorter than 8 bytes that could still be STUN returns 1 so a stream reader waits for
 * more; ar_stun_parse() then has the last word.
 */
int ar_stun_classify(const uint8_t *buf, size_t len, size_t *need);

/*
 * Parses one STUN message that starts at buf. Checks the header (top two bits zero), the magic
 * cookie, the length (a multiple of 4, within len), every attribute's bounds, at most
 * AR_STUN_MAX_ATTRS attributes, that MESSAGE-INTEGRITY (20 bytes) is followed only by
 * MESSAGE-INTEGRITY-SHA256 (16-32 bytes, in steps of 4) and/or FINGERPRINT (4 bytes), each at
 * most once, and that FINGERPRINT is last. Bytes after raw_len are not looked at (the next
 * frame on a stream); a datagram server may insist on raw_len == len. out's pointers point into
 * buf. Returns 0 or AR_EPARSE (out is then unspecified).
 */
AR_MUST_CHECK int ar_stun_parse(const uint8_t *buf, size_t len, ar_stun_msg_t *out);

/* The first attribute of a type, or NULL. */
const ar_stun_attr_t *ar_stun_find(const ar_stun_msg_t *msg, uint16_t type);

/* Decoders for attribute values; AR_EPARSE on a bad length or family. */
AR_MUST_CHECK int ar_stun_attr_u32(const ar_stun_attr_t *a, uint32_t *out);
/* (XOR-)MAPPED/PEER/RELAYED-ADDRESS into a sockaddr_in or sockaddr_in6. */
AR_MUST_CHECK int ar_stun_attr_xor_addr(const ar_stun_attr_t *a, const uint8_t tid[12],
                                        struct sockaddr_storage *out);
AR_MUST_CHECK int ar_stun_attr_addr(const ar_stun_attr_t *a, struct sockaddr_storage *out);
/* ERROR-CODE: the code (300-699) and a pointer/length to the reason phrase (at most 763 bytes). */
AR_MUST_CHECK int ar_stun_attr_error(const ar_stun_attr_t *a, int *code, const uint8_t **reason,
                                     size_t *reason_len);

/*
 * REQUESTED-ADDRESS-FAMILY or ADDITIONAL-ADDRESS-FAMILY (RFC 8656 sections 18.7 and 18.11): *family
 * gets 4 (0x01) or 6 (0x02). AR_EPARSE for a length other than 4, AR_EINVAL for another family
 * value (answered 440 Address Family not Supported).
 */
AR_MUST_CHECK int ar_stun_attr_family(const ar_stun_attr_t *a, int *family);
/* ADDRESS-ERROR-CODE (RFC 8656 section 18.12): the family (4 or 6) a dual allocation could not
 * get, and why, as in ERROR-CODE. */
AR_MUST_CHECK int ar_stun_attr_address_error(const ar_stun_attr_t *a, int *family, int *code,
                                             const uint8_t **reason, size_t *reason_len);

/* Verifies FINGERPRINT if present: 0 when absent or correct, AR_EAUTH when wrong. */
int ar_stun_check_fingerprint(const ar_stun_msg_t *msg);
/*
 * Verifies MESSAGE-INTEGRITY (HMAC-SHA1) with key in constant time: 0 when correct, AR_EAUTH
 * when wrong or absent, AR_ENOMEM when OpenSSL could not allocate its digest context.
 */
int ar_stun_check_integrity(const ar_stun_msg_t *msg, const uint8_t *key, size_t keylen);
/*
 * Long-term credential key: MD5(username ":" realm ":" password) (RFC 8489 section 9.2.2),
 * without SASLprep (callers pass the bytes they configured). Returns 0, or AR_ENOMEM with key
 * zeroed.
 */
int ar_stun_long_term_key(const char *user, size_t ulen, const char *realm, size_t rlen,
                          const char *pass, size_t plen, uint8_t key[16]);

/*
 * Builder: writes a message into a caller buffer. Errors (no room, a bad argument, an attribute
 * after MESSAGE-INTEGRITY or FINGERPRINT) are sticky and reported by ar_stun_build_finish(), so
 * a sequence of adds needs one check. The fields are the builder's own; read, do not write.
 */
typedef struct ar_stun_builder_s {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int err;
    int sealed; /* 1 after MESSAGE-INTEGRITY, 2 after FINGERPRINT: later attributes are errors */
} ar_stun_builder_t;

void ar_stun_build_start(ar_stun_builder_t *b, uint8_t *buf, size_t cap, uint16_t method,
                         uint8_t cls, const uint8_t tid[12]);
void ar_stun_build_attr(ar_stun_builder_t *b, uint16_t type, const void *value, size_t len);
void ar_stun_build_u32(ar_stun_builder_t *b, uint16_t type, uint32_t value);
void ar_stun_build_xor_addr(ar_stun_builder_t *b, uint16_t type, const struct sockaddr *sa);
void ar_stun_build_addr(ar_stun_builder_t *b, uint16_t type, const struct sockaddr *sa);
/* ERROR-CODE with the RFC's reason phrase for code when reason is NULL. */
void ar_stun_build_error(ar_stun_builder_t *b, int code, const char *reason);
/* REQUESTED-ADDRESS-FAMILY or ADDITIONAL-ADDRESS-FAMILY for family 4 or 6. */
void ar_stun_build_family(ar_stun_builder_t *b, uint16_t type, int family);
/* ADDRESS-ERROR-CODE for family 4 or 6, with the RFC's reason phrase when reason is NULL. */
void ar_stun_build_address_error(ar_stun_builder_t *b, int family, int code, const char *reason);
/* MESSAGE-INTEGRITY over everything so far (length field adjusted as the RFC requires). */
void ar_stun_build_integrity(ar_stun_builder_t *b, const uint8_t *key, size_t keylen);
void ar_stun_build_fingerprint(ar_stun_builder_t *b);
/*
 * Returns the message length, or AR_ETOOBIG when it did not fit (in cap or in 65535 bytes),
 * AR_EINVAL for a bad argument or order, AR_ENOMEM when the HMAC could not be computed.
 */
AR_MUST_CHECK int ar_stun_build_finish(ar_stun_builder_t *b);

/*
 * Answers an RFC 3489 ("classic STUN") Binding request: one without the magic cookie, as Debian's
 * `stun` client sends. Writes a Binding response with MAPPED-ADDRESS = mapped (the request's
 * source) into out. Returns its length, 0 when req is not such a request or asks for something we
 * do not do (a CHANGE-REQUEST for another address or port), AR_ETOOBIG or AR_EINVAL.
 */
int ar_stun_classic_binding_response(const uint8_t *req, size_t len, const struct sockaddr *mapped,
                                     uint8_t *out, size_t cap);

/*
 * ChannelData (RFC 8656 section 12.4): 4-byte header, then data; padded to 4 over streams.
 * RFC 8656 narrowed channel numbers to 0x4000-0x4fff, but RFC 5766 clients (coturn's
 * turnutils_uclient among them) still pick up to 0x7fff, and the leading bits 01 keep those
 * apart from STUN and DTLS, so the codec accepts RFC 5766's wider range.
 */
#define AR_TURN_CHANNEL_MIN 0x4000
#define AR_TURN_CHANNEL_MAX 0x7fff
/*
 * Parses a ChannelData message at buf: channel 0x4000-0x7fff and data within len (trailing
 * padding or further bytes are left to the caller). Returns 0 or AR_EPARSE.
 */
AR_MUST_CHECK int ar_turn_channel_parse(const uint8_t *buf, size_t len, uint16_t *channel,
                                        const uint8_t **data, size_t *data_len);
/*
 * Writes the 4-byte ChannelData header for len data bytes. Returns how many zero bytes of
 * padding a stream (TCP/TLS) frame needs after the data (0-3; UDP sends none), or AR_EINVAL for
 * a channel outside 0x4000-0x7fff or len above 65535.
 */
AR_MUST_CHECK int ar_turn_channel_header(uint8_t hdr[4], uint16_t channel, size_t len);

#endif
