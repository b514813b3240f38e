/*
 * The TLS 1.3 record layer after OpenSSL's handshake (tls13_rec.c): keys, seal, open, KeyUpdate.
 */
#ifndef ANTEROOM_SIGNAL_NET_TLS13_REC_H
#define ANTEROOM_SIGNAL_NET_TLS13_REC_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>

#define AR__T13_HDR 5
#define AR__T13_TAG 16
#define AR__T13_MAX_PLAIN 16384          /* 2^14 (RFC 8446 5.1) */
#define AR__T13_MAX_CIPHER (16384 + 256) /* TLSCiphertext.length cap (5.2) */
#define AR__T13_MAX_RECORD (AR__T13_HDR + AR__T13_MAX_CIPHER)
#define AR__T13_SUITES 3

typedef struct ar__t13_suite_s {
    uint16_t id;      /* the cipher suite's code point: 0x1301, 0x1302, 0x1303 */
    uint8_t index;    /* 1..AR__T13_SUITES */
    uint8_t key_len;  /* 16 or 32 */
    uint8_t hash_len; /* 32 (SHA-256) or 48 (SHA-384) */
    const char *name;
} ar__t13_suite_t;

/* One direction: its traffic secret (kept for KeyUpdate), key, IV and sequence number. */
typedef struct ar__t13_dir_s {
    uint8_t secret[48];
    uint8_t key[32];
    uint8_t iv[12];
    uint64_t seq;
} ar__t13_dir_t;

/* The suite for a code point, or NULL when it is not one of TLS 1.3's AEAD suites we handle. */
const ar__t13_suite_t *ar__t13_suite(uint16_t protocol_id);
/* HKDF-Expand-Label(secret, label, "", len), len at most the hash length. */
int ar__t13_expand_label(const ar__t13_suite_t *s, const uint8_t *secret, const char *label,
                         uint8_t *out, size_t len);
/* key and iv from d->secret; sequence number 0. */
int ar__t13_dir_init(const ar__t13_suite_t *s, ar__t13_dir_t *d);
/* The next generation of d's secret (KeyUpdate), then its key and iv. */
int ar__t13_dir_update(const ar__t13_suite_t *s, ar__t13_dir_t *d);
/*
 * Seals len bytes of pt (at most AR__T13_MAX_PLAIN; pt may overlap out + AR__T13_HDR) as one
 * record of content type `type` into out (room for len + 22). Returns the record's length, or 0.
 */
size_t ar__t13_seal(const ar__t13_suite_t *s, ar__t13_dir_t *d, uint8_t type, const uint8_t *pt,
                    size_t len, uint8_t *out);
/*
 * Opens one whole record (header included) in place: the content is at rec + AR__T13_HDR,
 * *pt_len bytes, of content type *type. 0 or AR_ETLS (bad tag, bad framing: the record's bytes
 * are then garbage, and the connection is over).
 */
int ar__t13_open(const ar__t13_suite_t *s, ar__t13_dir_t *d, uint8_t *rec, size_t len,
                 uint8_t *type, size_t *pt_len);
/* Frees this thread's cipher contexts. */
void ar__t13_thread_end(void);

#endif
