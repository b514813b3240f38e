/*
 * The STUN codec's cryptography: FINGERPRINT's CRC-32, MESSAGE-INTEGRITY's HMAC-SHA1 and the
 * long-term credential key. OpenSSL supplies the hashes; its EVP digest interface is used because
 * OpenSSL 3 deprecates the low-level SHA1_* and HMAC_CTX_* functions.
 */
#include "stun/stun.h"
#include "crc_tables.h"
#include "internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

/* Slicing by 8 (crc_tables.h): eight table loads per 8 bytes instead of a chain of eight
 * dependent ones; FINGERPRINT is checked on every request and added to every answer. */
uint32_t ar__stun_crc32(const uint8_t *p, size_t n)
{
    const uint32_t(*t)[256] = ar__stun_crc_tab;
    uint32_t c = 0xffffffffu;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
            t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    }
    for (; n > 0; p++, n--)
        c = t[0][(c ^ *p) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

#define SHA1_BLOCK 64

/*
 * SHA-1 fetched from the default provider once. Passing EVP_sha1() to EVP_DigestInit_ex makes
 * OpenSSL 3 fetch the implementation again on every init (a locked name lookup), three times per
 * HMAC; the fetched object is immutable and thread-safe, and lives as long as the process.
 */
static EVP_MD *g_sha1;
static pthread_once_t g_sha1_once = PTHREAD_ONCE_INIT;

static void sha1_fetch(void)
{
    g_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
}

static const EVP_MD *sha1(void)
{
    pthread_once(&g_sha1_once, sha1_fetch);
    return g_sha1 ? g_sha1 : EVP_sha1();
}

int ar__stun_hmac_sha1(const uint8_t *key, size_t keylen, const uint8_t hdr[20],
                       const uint8_t *body, size_t body_len, uint8_t out[AR__STUN_SHA1_LEN])
{
    /* HMAC (RFC 2104) spelled out over EVP so the message can be fed in two pieces. */
    uint8_t k[SHA1_BLOCK] = {0};
    uint8_t pad[SHA1_BLOCK];
    uint8_t inner[AR__STUN_SHA1_LEN];
    int rc = AR_ENOMEM;
    const EVP_MD *md = sha1();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return AR_ENOMEM;
    if (keylen > SHA1_BLOCK) {
        if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, key, keylen) != 1 ||
            EVP_DigestFinal_ex(ctx, k, NULL) != 1)
            goto done;
    } else if (keylen > 0) {
        memcpy(k, key, keylen);
    }
    for (int i = 0; i < SHA1_BLOCK; i++)
        pad[i] = (uint8_t)(k[i] ^ 0x36);
    if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, pad, SHA1_BLOCK) != 1 ||
        EVP_DigestUpdate(ctx, hdr, 20) != 1 ||
        (body_len > 0 && EVP_DigestUpdate(ctx, body, body_len) != 1) ||
        EVP_DigestFinal_ex(ctx, inner, NULL) != 1)
        goto done;
    for (int i = 0; i < SHA1_BLOCK; i++)
        pad[i] = (uint8_t)(k[i] ^ 0x5c);
    if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, pad, SHA1_BLOCK) != 1 ||
        EVP_DigestUpdate(ctx, inner, sizeof(inner)) != 1 || EVP_DigestFinal_ex(ctx, out, NULL) != 1)
        goto done;
    rc = 0;
done:
    /* The padded key is as secret as the key itself. */
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    EVP_MD_CTX_free(ctx);
    return rc;
}

int ar_stun_check_fingerprint(const ar_stun_msg_t *msg)
{
    if (msg->fingerprint_off == 0)
        return 0;
    /* FINGERPRINT is last, so the header's length field already counts it as the RFC wants. */
    uint32_t want = ar__stun_crc32(msg->raw, msg->fingerprint_off) ^ AR__STUN_FINGERPRINT_XOR;
    uint32_t got = ar__stun_rd32(msg->raw + msg->fingerprint_off + 4);
    return want == got ? 0 : AR_EAUTH;
}

int ar_stun_check_integrity(const ar_stun_msg_t *msg, const uint8_t *key, size_t keylen)
{
    size_t off = msg->integrity_off;
    if (off == 0)
        return AR_EAUTH;
    /*
     * The HMAC covers the message up to MESSAGE-INTEGRITY with the length field set as if
     * MESSAGE-INTEGRITY were the last attribute (RFC 8489 section 14.5).
     */
    uint8_t hdr[AR_STUN_HEADER_LEN];
    memcpy(hdr, msg->raw, sizeof(hdr));
    ar__stun_wr16(hdr + 2, (uint16_t)(off - AR_STUN_HEADER_LEN + 4 + AR__STUN_SHA1_LEN));
    uint8_t mac[AR__STUN_SHA1_LEN];
    int rc = ar__stun_hmac_sha1(key, keylen, hdr, msg->raw + AR_STUN_HEADER_LEN,
                                off - AR_STUN_HEADER_LEN, mac);
    if (rc != 0)
        return rc;
    /* Constant time, so the comparison does not tell an attacker how many bytes matched. */
    rc = CRYPTO_memcmp(mac, msg->raw + off + 4, sizeof(mac)) == 0 ? 0 : AR_EAUTH;
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

int ar_stun_long_term_key(const char *user, size_t ulen, const char *realm, size_t rlen,
                          const char *pass, size_t plen, uint8_t key[16])
{
    /* MD5(username ":" realm ":" password), RFC 8489 section 9.2.2; SASLprep is not applied. */
    int rc = AR_ENOMEM;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        goto fail;
    if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 && EVP_DigestUpdate(ctx, user, ulen) == 1 &&
        EVP_DigestUpdate(ctx, ":", 1) == 1 && EVP_DigestUpdate(ctx, realm, rlen) == 1 &&
        EVP_DigestUpdate(ctx, ":", 1) == 1 && EVP_DigestUpdate(ctx, pass, plen) == 1 &&
        EVP_DigestFinal_ex(ctx, key, NULL) == 1)
        rc = 0;
    EVP_MD_CTX_free(ctx);
    if (rc == 0)
        return 0;
fail:
    /* Callers that ignore the error still get a defined key rather than stack garbage. */
    memset(key, 0, 16);
    return rc;
}
