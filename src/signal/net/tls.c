/*
 * Picks the TLS library of a listener. The library calls live in one file each (tls_openssl.c,
 * tls_wolfssl.c, tls_boringssl.c) behind ar__sn_tls_ops_t, so the listener can be measured on
 * each; the build picks the one the daemon uses (AR_SN_TLS_DEFAULT, CMake AR_SIGNAL_TLS) and
 * docs/architecture.md says which and why.
 */
#include "internal.h"

#include "anteroom/alloc.h"

#ifdef AR_SN_BORINGSSL_MODULE
#include <dlfcn.h>

/*
 * BoringSSL and OpenSSL export the same symbol names, so the BoringSSL module is opened with
 * RTLD_LOCAL (its names stay out of the global scope, where OpenSSL's live) and RTLD_DEEPBIND
 * (its libssl binds to its own libcrypto before looking at the global scope). A separate link
 * namespace (dlmopen) was tried and crashed in BoringSSL's ERR_clear_error (per-thread state;
 * that namespace has a second libc of its own, the likely cause). RTLD_DEEPBIND is refused by
 * the sanitizer runtimes, so sanitized builds leave BoringSSL out (CMakeLists.txt).
 * Loaded once, never unloaded: the module holds contexts and connections for the process's life.
 */
static const ar__sn_tls_ops_t *boringssl_ops(void)
{
    static const ar__sn_tls_ops_t *ops;
    if (!ops) {
        void *h = dlopen(AR_SN_BORINGSSL_MODULE, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
        if (h)
            ops = dlsym(h, "ar__sn_tls_boringssl");
    }
    return ops;
}
#endif

int ar_sn_tls_ctx_new(ar_sn_tls_lib_t lib, const char *cert_pem, const char *key_pem,
                      ar_sn_tls_ctx_t **out)
{
    const ar__sn_tls_ops_t *ops = NULL;
    *out = NULL;
    if (lib == AR_SN_TLS_OPENSSL)
        ops = &ar__sn_tls_openssl;
#ifdef AR_HAVE_WOLFSSL
    else if (lib == AR_SN_TLS_WOLFSSL)
        ops = &ar__sn_tls_wolfssl;
#endif
#ifdef AR_SN_BORINGSSL_MODULE
    else if (lib == AR_SN_TLS_BORINGSSL)
        ops = boringssl_ops();
#endif
    if (!ops)
        return AR_EUNSUPPORTED;
    ar_sn_tls_ctx_t *t = ar_calloc(1, sizeof(*t));
    if (!t)
        return AR_ENOMEM;
    t->ops = ops;
    int err = ops->ctx_new(cert_pem, key_pem, &t->ctx);
    if (err) {
        ar_free(t);
        return err;
    }
    *out = t;
    return 0;
}

void ar_sn_tls_ctx_free(ar_sn_tls_ctx_t *t)
{
    if (!t)
        return;
    t->ops->ctx_free(t->ctx);
    ar_free(t);
}
