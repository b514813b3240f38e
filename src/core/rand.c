#include "anteroom/rand.h"

#include "anteroom/err.h"

#include <sodium.h>

int ar_rand_init(void)
{
    return sodium_init() < 0 ? AR_ESYS : 0;
}

void ar_rand_bytes(void *out, size_t n)
{
    randombytes_buf(out, n);
}

uint32_t ar_rand_u32(void)
{
    return randombytes_random();
}

int ar_rand_id(char *out, size_t outlen, size_t bytes)
{
    unsigned char raw[64];
    if (bytes == 0 || bytes > sizeof(raw))
        return AR_EINVAL;
    size_t need = sodium_base64_ENCODED_LEN(bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (outlen < need)
        return AR_ETOOBIG;
    randombytes_buf(raw, bytes);
    sodium_bin2base64(out, outlen, raw, bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    return (int)(need - 1);
}
