/*
 * Measures the Argon2id cost of sign-in: hash and verify times for the production parameters
 * and their neighbours (docs/api.md, "Argon2id parameters"). Not a test: run it by hand.
 *   cmake --build --preset default --target app_pwhash_cost
 *   build/default/src/app/app_pwhash_cost
 */
#include "app.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    static const struct {
        unsigned long long ops;
        size_t mem;
    } p[] = {{2, (size_t)64 << 20},
             {AR_APP_PWHASH_OPS, AR_APP_PWHASH_MEM},
             {3, (size_t)128 << 20},
             {4, (size_t)64 << 20}};
    const char pw[] = "correct horse battery staple";
    const int runs = 5;
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
        char h[crypto_pwhash_STRBYTES];
        double t0 = now_ms();
        for (int k = 0; k < runs; k++)
            if (crypto_pwhash_str(h, pw, strlen(pw), p[i].ops, p[i].mem) != 0)
                return 1;
        double t1 = now_ms();
        for (int k = 0; k < runs; k++)
            if (crypto_pwhash_str_verify(h, pw, strlen(pw)) != 0)
                return 1;
        double t2 = now_ms();
        printf("opslimit %llu memlimit %zu MiB: hash %.0f ms, verify %.0f ms%s\n", p[i].ops,
               p[i].mem >> 20, (t1 - t0) / runs, (t2 - t1) / runs,
               p[i].ops == AR_APP_PWHASH_OPS && p[i].mem == AR_APP_PWHASH_MEM ? " (chosen)" : "");
    }
    return 0;
}
