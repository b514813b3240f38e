/* Secure random bytes and ids from libsodium's CSPRNG (getrandom underneath). */
#ifndef ANTEROOM_RAND_H
#define ANTEROOM_RAND_H

#include <stddef.h>
#include <stdint.h>

/* Initialises libsodium; call once at start. Returns 0 or AR_ESYS. */
int ar_rand_init(void);
void ar_rand_bytes(void *out, size_t n);
uint32_t ar_rand_u32(void);
/*
 * Writes a random id of `bytes` random bytes (16 for a 128-bit room id) as unpadded base64url
 * text into out, NUL-terminated. Returns the text length or AR_ETOOBIG if out is too small.
 */
int ar_rand_id(char *out, size_t outlen, size_t bytes);

#endif
