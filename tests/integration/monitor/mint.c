/*
 * monitor_mint: call tokens for the monitor's daemon test and benchmark, where the app is not
 * running to mint them.
 *   monitor_mint keys DIR                 writes DIR/signing.key and DIR/token-keys.pub
 *   monitor_mint token DIR CLINIC AREA N  prints N patient tokens (aud "monitor", 24 h)
 */
#include "anteroom/rand.h"
#include "anteroom/token.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int keys(const char *dir)
{
    ar_token_key_t k;
    char path[4096], b64[200];
    if (ar_token_key_generate(&k, "bench") != 0)
        return 1;
    snprintf(path, sizeof(path), "%s/signing.key", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return 1;
    sodium_bin2base64(b64, sizeof(b64), k.sk, sizeof(k.sk),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    fprintf(f, "%s %s\n", k.kid, b64);
    fclose(f);
    snprintf(path, sizeof(path), "%s/token-keys.pub", dir);
    f = fopen(path, "w");
    if (f == NULL)
        return 1;
    sodium_bin2base64(b64, sizeof(b64), k.pk, sizeof(k.pk),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    fprintf(f, "# token public keys\n%s %s\n", k.kid, b64);
    fclose(f);
    return 0;
}

static int tokens(const char *dir, const char *clinic, const char *area, long n)
{
    char path[4096], kid[40], b64[200];
    snprintf(path, sizeof(path), "%s/signing.key", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL || fscanf(f, "%39s %199s", kid, b64) != 2)
        return 1;
    fclose(f);
    ar_token_key_t k;
    memset(&k, 0, sizeof(k));
    size_t len = 0;
    if (sodium_base642bin(k.sk, sizeof(k.sk), b64, strlen(b64), NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        len != sizeof(k.sk))
        return 1;
    crypto_sign_ed25519_sk_to_pk(k.pk, k.sk);
    snprintf(k.kid, sizeof(k.kid), "%.32s", kid);
    k.has_sk = 1;
    for (long i = 0; i < n; i++) {
        ar_token_claims_t c;
        memset(&c, 0, sizeof(c));
        snprintf(c.aud, sizeof(c.aud), "monitor");
        snprintf(c.sub, sizeof(c.sub), "s%ld-%u", i, randombytes_random());
        snprintf(c.room, sizeof(c.room), "r%ld-%u", i, randombytes_random());
        snprintf(c.clinic, sizeof(c.clinic), "%s", clinic);
        snprintf(c.area, sizeof(c.area), "%s", area);
        snprintf(c.jur, sizeof(c.jur), "eu");
        c.role = AR_TOKEN_PATIENT;
        c.iat = (int64_t)time(NULL) - 5;
        c.exp = c.iat + AR_TOKEN_MAX_LIFETIME - 60;
        char tok[AR_TOKEN_MAX];
        if (ar_token_mint(&k, &c, tok, sizeof(tok)) < 0)
            return 1;
        printf("%s\n", tok);
    }
    sodium_memzero(&k, sizeof(k));
    return 0;
}

int main(int argc, char **argv)
{
    if (ar_rand_init() != 0)
        return 1;
    if (argc == 3 && strcmp(argv[1], "keys") == 0)
        return keys(argv[2]);
    if (argc == 6 && strcmp(argv[1], "token") == 0)
        return tokens(argv[2], argv[3], argv[4], strtol(argv[5], NULL, 10));
    fprintf(stderr, "usage: monitor_mint keys DIR | token DIR CLINIC AREA N\n");
    return 2;
}
