/*
 * What one server-side TLS object costs before any handshake: 2,000 objects are created (new +
 * set_fd) under each library and the process's RssAnon delta is divided by 2,000. This separates
 * the library's fixed per-connection cost from what a handshake adds (see ws_bench.c).
 * The two libraries' headers cannot share a file (wolfSSL's compatibility layer redefines
 * OpenSSL's names), so wolfSSL's half is built from this file again with AR_PROBE_WOLFSSL, and
 * BoringSSL's (same API as OpenSSL here) with AR_PROBE_BORINGSSL and its own include path.
 * Usage: ar_bench_tls_object_size CERT KEY
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef AR_PROBE_WOLFSSL
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#define LIB "wolfSSL"
#else
#include <openssl/ssl.h>
#ifdef AR_PROBE_BORINGSSL /* built with BoringSSL's include path first */
#define LIB "BoringSSL"
#else
#define LIB "OpenSSL"
#endif
#endif

#define N 2000

static long rss_anon_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "RssAnon:", 8) == 0)
            v = atol(line + 8);
    if (f)
        fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    static void *objs[N];
#ifdef AR_PROBE_WOLFSSL
    wolfSSL_Init();
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, argv[1]) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_file(ctx, argv[2], WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        return 1;
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
    long before = rss_anon_kib();
    for (int i = 0; i < N; i++) {
        objs[i] = wolfSSL_new(ctx);
        wolfSSL_set_fd(objs[i], 0);
    }
#else
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1)
        return 1;
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    long before = rss_anon_kib();
    for (int i = 0; i < N; i++) {
        objs[i] = SSL_new(ctx);
        SSL_set_fd(objs[i], 0);
    }
#endif
    long after = rss_anon_kib();
    printf("%s: %.0f B per server TLS object (new + set_fd, no handshake)\n", LIB,
           (double)(after - before) * 1024.0 / N);
    return 0;
}
