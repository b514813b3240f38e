/*
 * The second factor: TOTP (RFC 6238 over RFC 4226's HOTP with HMAC-SHA1, 30-second steps,
 * 6 digits: what every authenticator app speaks), its otpauth:// URI and QR code, sealing of the
 * secret at rest, and recovery codes.
 */
#include "accounts.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <qrencode.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t ar_app_hotp(const uint8_t *key, size_t keylen, uint64_t step, unsigned digits)
{
    uint8_t msg[8], mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    for (int i = 0; i < 8; i++)
        msg[i] = (uint8_t)(step >> (56 - 8 * i));
    if (HMAC(EVP_sha1(), key, (int)keylen, msg, sizeof(msg), mac, &maclen) == NULL || maclen != 20)
        return UINT32_MAX; /* never a valid code: the caller's compare fails */
    /* Dynamic truncation (RFC 4226 section 5.3). */
    unsigned off = mac[19] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
                   ((uint32_t)mac[off + 2] << 8) | mac[off + 3];
    uint32_t mod = 1;
    for (unsigned i = 0; i < digits; i++)
        mod *= 10;
    sodium_memzero(mac, sizeof(mac));
    return bin % mod;
}

int ar_app_totp_check(const uint8_t *key, size_t keylen, int64_t now, const char *code, size_t len,
                      int64_t last_step, int64_t *step)
{
    if (len != AR_TOTP_DIGITS || now < 0)
        return AR_EAUTH;
    uint32_t typed = 0;
    for (size_t i = 0; i < len; i++) {
        if (code[i] < '0' || code[i] > '9')
            return AR_EAUTH;
        typed = typed * 10 + (uint32_t)(code[i] - '0');
    }
    int64_t cur = now / AR_TOTP_STEP_S;
    int found = 0;
    /* Every step of the window is computed, matched or not, so timing says nothing about
     * which one matched. */
    for (int64_t s = cur - AR_TOTP_WINDOW; s <= cur + AR_TOTP_WINDOW; s++) {
        uint32_t want = ar_app_hotp(key, keylen, (uint64_t)s, AR_TOTP_DIGITS);
        if (sodium_memcmp(&want, &typed, sizeof(want)) == 0 && s > last_step && !found) {
            *step = s;
            found = 1;
        }
    }
    return found ? 0 : AR_EAUTH;
}

void ar_app_base32(const uint8_t *in, size_t len, char *out)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = alphabet[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = alphabet[(acc << (5 - bits)) & 31];
    out[o] = '\0';
}

/* Percent-encodes everything but RFC 3986's unreserved characters and '@'. */
static size_t pct(const char *s, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '@') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return o;
}

char *ar_app_otpauth_uri(const char *email, const uint8_t *key, size_t keylen)
{
    size_t elen = strlen(email);
    if (elen > 512 || keylen > 64)
        return NULL;
    char label[3 * 512 + 1], secret[128];
    pct(email, label);
    ar_app_base32(key, keylen, secret);
    size_t cap = strlen(label) + strlen(secret) + 128;
    char *uri = malloc(cap);
    if (uri != NULL)
        snprintf(uri, cap,
                 "otpauth://totp/Anteroom:%s?secret=%s&issuer=Anteroom&algorithm=SHA1&digits=%d"
                 "&period=%d",
                 label, secret, AR_TOTP_DIGITS, AR_TOTP_STEP_S);
    sodium_memzero(secret, sizeof(secret));
    return uri;
}

char *ar_app_qr_svg(const char *text)
{
    QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (q == NULL)
        return NULL;
    /* One path of unit squares, with the 4-module quiet zone the standard asks for. Drawn on
     * the server so the page needs no script library and no other origin (CSP). */
    int w = q->width, size = w + 8;
    size_t cap = 256 + (size_t)w * (size_t)w * 24;
    char *svg = malloc(cap);
    if (svg == NULL) {
        QRcode_free(q);
        return NULL;
    }
    int o = snprintf(svg, cap,
                     "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                     "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" "
                     "fill=\"#fff\"/><path fill=\"#000\" d=\"",
                     size, size, size, size);
    for (int y = 0; y < w; y++)
        for (int x = 0; x < w; x++)
            if (q->data[y * w + x] & 1)
                o += snprintf(svg + o, cap - (size_t)o, "M%d %dh1v1h-1z", x + 4, y + 4);
    snprintf(svg + o, cap - (size_t)o, "\"/></svg>");
    QRcode_free(q);
    return svg;
}

void ar_app_seal(const uint8_t key[AR_SEAL_KEY_BYTES], const uint8_t *in, size_t len, uint8_t *out)
{
    randombytes_buf(out, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(out + crypto_secretbox_NONCEBYTES, in, len, out, key);
}

int ar_app_unseal(const uint8_t key[AR_SEAL_KEY_BYTES], const uint8_t *in, size_t len, uint8_t *out)
{
    if (len < AR_SEALED_BYTES(0))
        return AR_EAUTH;
    return crypto_secretbox_open_easy(out, in + crypto_secretbox_NONCEBYTES,
                                      len - crypto_secretbox_NONCEBYTES, in, key) == 0
               ? 0
               : AR_EAUTH;
}

int ar_app_recovery_hash(const char *code, size_t len, uint8_t out[32])
{
    static const char label[] = "anteroom-recovery-v1";
    char norm[16];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = code[i];
        if (ch == '-' || ch == ' ')
            continue;
        if (ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= '2' && ch <= '7')) || n == 12)
            return AR_EINVAL;
        norm[n++] = ch;
    }
    if (n != 12)
        return AR_EINVAL;
    crypto_generichash(out, 32, (const uint8_t *)norm, n, (const uint8_t *)label,
                       sizeof(label) - 1);
    sodium_memzero(norm, sizeof(norm));
    return 0;
}
