/*
 * The TLS 1.3 record layer (RFC 8446 section 5) for connections whose handshake OpenSSL has
 * finished: keys from the traffic secrets (7.1, 7.3), sealing and opening records (5.2, 5.3),
 * and the key schedule's "traffic upd" step for KeyUpdate (7.2). The cryptography is OpenSSL's
 * (HMAC, AES-GCM, ChaCha20-Poly1305 through EVP); only the framing is ours. No I/O here.
 *
 * Why: OpenSSL 3.0 keeps about 13.5 KiB per idle connection after the handshake, 7.6 KiB of it
 * the SSL object itself (docs/performance.md, "Which TLS library"), and no public setting frees
 * it. What an idle TLS 1.3 connection needs is two keys, two IVs, two sequence numbers and the
 * two traffic secrets (for KeyUpdate): 280 bytes with the rest of tls_openssl.c's state. This is
 * what kernel TLS does with the same secrets, in user space (the kernel here has no TLS module).
 */
#include "tls13_rec.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

/* Per thread, one context per AEAD, keyed again for every record (a key setup is well under a
 * microsecond; a context per connection is what we are avoiding). */
static _Thread_local EVP_CIPHER_CTX *t_ctx[AR__T13_SUITES];

const ar__t13_suite_t *ar__t13_suite(uint16_t protocol_id)
{
    static const ar__t13_suite_t suites[] = {
        {0x1301, 1, 16, 32, "AES-128-GCM"},
        {0x1302, 2, 32, 48, "AES-256-GCM"},
        {0x1303, 3, 32, 32, "ChaCha20-Poly1305"},
    };
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
        if (suites[i].id == protocol_id)
            return &suites[i];
    return NULL;
}

/* HKDF-Expand-Label(secret, label, "", len) for len <= the hash length: one HMAC block. */
int ar__t13_expand_label(const ar__t13_suite_t *s, const uint8_t *secret, const char *label,
                         uint8_t *out, size_t len)
{
    uint8_t info[2 + 1 + 6 + 16 + 1 + 1];
    size_t ll = strlen(label);
    if (ll > 16 || len > s->hash_len)
        return AR_EINVAL;
    size_t n = 0;
    info[n++] = (uint8_t)(len >> 8);
    info[n++] = (uint8_t)len;
    info[n++] = (uint8_t)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0; /* empty context */
    info[n++] = 1; /* T(1) = HMAC(PRK, info | 0x01) */
    uint8_t t[EVP_MAX_MD_SIZE];
    unsigned tl = 0;
    const EVP_MD *md = s->hash_len == 48 ? EVP_sha384() : EVP_sha256();
    if (!HMAC(md, secret, (int)s->hash_len, info, n, t, &tl) || tl < len)
        return AR_ETLS;
    memcpy(out, t, len);
    OPENSSL_cleanse(t, sizeof(t));
    return 0;
}

int ar__t13_dir_init(const ar__t13_suite_t *s, ar__t13_dir_t *d)
{
    d->seq = 0;
    if (ar__t13_expand_label(s, d->secret, "key", d->key, s->key_len) != 0 ||
        ar__t13_expand_label(s, d->secret, "iv", d->iv, sizeof(d->iv)) != 0)
        return AR_ETLS;
    return 0;
}

int ar__t13_dir_update(const ar__t13_suite_t *s, ar__t13_dir_t *d)
{
    uint8_t next[48];
    int err = ar__t13_expand_label(s, d->secret, "traffic upd", next, s->hash_len);
    if (err == 0) {
        memcpy(d->secret, next, s->hash_len);
        err = ar__t13_dir_init(s, d);
    }
    OPENSSL_cleanse(next, sizeof(next));
    return err;
}

static EVP_CIPHER_CTX *ctx_for(const ar__t13_suite_t *s)
{
    EVP_CIPHER_CTX **slot = &t_ctx[s->index - 1];
    if (*slot)
        return *slot;
    const char *name = s->index == 1   ? "AES-128-GCM"
                       : s->index == 2 ? "AES-256-GCM"
                                       : "ChaCha20-Poly1305";
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, name, NULL);
    EVP_CIPHER_CTX *ctx = c ? EVP_CIPHER_CTX_new() : NULL;
    if (ctx && !EVP_CipherInit_ex2(ctx, c, NULL, NULL, 1, NULL)) {
        EVP_CIPHER_CTX_free(ctx);
        ctx = NULL;
    }
    EVP_CIPHER_free(c); /* the context holds its own reference */
    *slot = ctx;
    return ctx;
}

void ar__t13_thread_end(void)
{
    for (int i = 0; i < AR__T13_SUITES; i++) {
        EVP_CIPHER_CTX_free(t_ctx[i]);
        t_ctx[i] = NULL;
    }
}

/* The per-record nonce: the IV XORed with the sequence number, big-endian, on the right. */
static void nonce(const ar__t13_dir_t *d, uint8_t out[12])
{
    memcpy(out, d->iv, 12);
    for (int i = 0; i < 8; i++)
        out[11 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

size_t ar__t13_seal(const ar__t13_suite_t *s, ar__t13_dir_t *d, uint8_t type, const uint8_t *pt,
                    size_t len, uint8_t *out)
{
    if (len > AR__T13_MAX_PLAIN)
        return 0;
    EVP_CIPHER_CTX *ctx = ctx_for(s);
    size_t ct_len = len + 1 + AR__T13_TAG;
    out[0] = 23; /* application_data, as every protected record looks */
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(ct_len >> 8);
    out[4] = (uint8_t)ct_len;
    uint8_t n[12];
    nonce(d, n);
    uint8_t *body = out + AR__T13_HDR;
    memmove(body, pt, len);
    body[len] = type;
    int l1 = 0, l2 = 0, l3 = 0;
    int ok = ctx && EVP_CipherInit_ex2(ctx, NULL, d->key, n, 1, NULL) &&
             EVP_CipherUpdate(ctx, NULL, &l1, out, AR__T13_HDR) &&
             EVP_CipherUpdate(ctx, body, &l2, body, (int)(len + 1)) &&
             EVP_CipherFinal_ex(ctx, body + l2, &l3) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, AR__T13_TAG, body + len + 1) > 0;
    if (!ok || (size_t)l2 + (size_t)l3 != len + 1)
        return 0;
    d->seq++;
    return AR__T13_HDR + ct_len;
}

int ar__t13_open(const ar__t13_suite_t *s, ar__t13_dir_t *d, uint8_t *rec, size_t len,
                 uint8_t *type, size_t *pt_len)
{
    if (len < AR__T13_HDR + AR__T13_TAG + 1 || rec[0] != 23 ||
        len - AR__T13_HDR > AR__T13_MAX_CIPHER)
        return AR_ETLS;
    EVP_CIPHER_CTX *ctx = ctx_for(s);
    uint8_t *body = rec + AR__T13_HDR;
    size_t blen = len - AR__T13_HDR - AR__T13_TAG;
    uint8_t n[12];
    nonce(d, n);
    int l1 = 0, l2 = 0, l3 = 0;
    int ok = ctx && EVP_CipherInit_ex2(ctx, NULL, d->key, n, 0, NULL) &&
             EVP_CipherUpdate(ctx, NULL, &l1, rec, AR__T13_HDR) &&
             EVP_CipherUpdate(ctx, body, &l2, body, (int)blen) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, AR__T13_TAG, body + blen) > 0 &&
             EVP_CipherFinal_ex(ctx, body + l2, &l3) > 0;
    if (!ok)
        return AR_ETLS; /* bad_record_mac: the connection is over */
    d->seq++;
    /* TLSInnerPlaintext: content, the real type, then zero padding. */
    size_t i = blen;
    while (i > 0 && body[i - 1] == 0)
        i--;
    if (i == 0 || i - 1 > AR__T13_MAX_PLAIN)
        return AR_ETLS;
    *type = body[i - 1];
    *pt_len = i - 1;
    return 0;
}
