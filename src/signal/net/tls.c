/*
 * Picks the TLS library of a listener. The library calls live in one file each (tls_openssl.c,
 * tls_wolfssl.c) behind ar__sn_tls_ops_t, so the listener can be measured on both and switched
 * by configuration; docs/architecture.md says which one we run and why.
 */
#include "internal.h"

#include "anteroom/alloc.h"

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
