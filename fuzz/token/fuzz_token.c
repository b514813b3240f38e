/*
 * Tokens come from anyone. Two entry points: the verifier on raw input (form, base64, signature
 * checks), and the claims parser behind a valid signature, reached by signing the fuzzer's bytes
 * as a payload with a fixed test key, so the JSON claims table is fuzzed too.
 */
#include "anteroom/token.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ar_token_key_t signer;
static ar_token_keyring_t ring;

static void init_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    if (sodium_init() < 0)
        __builtin_trap();
    /* A fixed seed keeps runs reproducible. */
    unsigned char seed[crypto_sign_SEEDBYTES] = {1};
    crypto_sign_seed_keypair(signer.pk, signer.sk, seed);
    snprintf(signer.kid, sizeof(signer.kid), "fz");
    signer.has_sk = 1;
    ar_token_key_t pub = signer;
    memset(pub.sk, 0, sizeof(pub.sk));
    pub.has_sk = 0;
    if (ar_token_keyring_add(&ring, &pub) != 0)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    ar_token_claims_t claims;
    /* Raw input from nobody we trust must never verify: it carries no valid signature. */
    if (ar_token_verify(&ring, (const char *)data, size, "signal", 1800000000, &claims) == 0)
        __builtin_trap();

    if (size > AR_TOKEN_PAYLOAD_MAX)
        return 0;
    char tok[AR_TOKEN_MAX * 2];
    int n = snprintf(tok, sizeof(tok), "AR1.fz.");
    sodium_bin2base64(tok + n, sizeof(tok) - (size_t)n, data, size,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t signed_len = strlen(tok);
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (unsigned char *)tok, signed_len, signer.sk);
    tok[signed_len] = '.';
    sodium_bin2base64(tok + signed_len + 1, sizeof(tok) - signed_len - 1, sig, sizeof(sig),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (ar_token_verify(&ring, tok, strlen(tok), "signal", 1, &claims) == 0) {
        /* Accepted claims must mint again into a token that verifies to the same room. */
        char again[AR_TOKEN_MAX + 1];
        ar_token_claims_t back;
        int m = ar_token_mint(&signer, &claims, again, sizeof(again));
        if (m < 0 || ar_token_verify(&ring, again, (size_t)m, "signal", 1, &back) != 0 ||
            strcmp(back.room, claims.room) != 0 || back.role != claims.role)
            __builtin_trap();
    }
    return 0;
}
