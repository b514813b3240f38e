/*
 * TLS contexts. Every OpenSSL call of the project's TLS lives in src/core/tls.c; the rest of the
 * code sees these opaque types and the connection interface (conn.h), which runs TLS over
 * memory BIOs fed from libuv streams.
 *
 * Server contexts: TLS 1.2 and 1.3 only; for 1.2 only ECDHE key exchange with AEAD ciphers
 * (AES-GCM, ChaCha20-Poly1305); no compression, no renegotiation; session tickets and the
 * server-side session cache are off (nothing to rotate, no resumption secrets to protect);
 * SSL_MODE_RELEASE_BUFFERS so idle connections hold no record buffers.
 *
 * Client contexts verify the peer's chain (against a CA file, or the system's store) and the
 * host name or IP address the caller names for each connection.
 *
 * Thread safety: a server context may be shared by every worker; ar_tls_server_reload() may run
 * on any thread (the main thread on SIGHUP) while workers accept connections. New connections
 * use the new certificate; established ones keep theirs.
 */
#ifndef ANTEROOM_TLS_H
#define ANTEROOM_TLS_H

#include "anteroom/err.h"

#include <stddef.h>

typedef struct ar_tls_server_s ar_tls_server_t;
typedef struct ar_tls_client_s ar_tls_client_t;

/*
 * Loads a certificate chain (PEM, leaf first) and its private key (PEM). The paths are copied
 * and re-read on reload. Returns 0, AR_ETLS (unreadable or mismatched files), AR_ENOMEM.
 */
AR_MUST_CHECK int ar_tls_server_new(const char *cert_path, const char *key_path,
                                    ar_tls_server_t **out);
/*
 * Re-reads the files given to ar_tls_server_new. On any error the current context stays in use
 * and AR_ETLS is returned (and logged), so a bad file on disk never takes a listener down.
 */
AR_MUST_CHECK int ar_tls_server_reload(ar_tls_server_t *s);
/* Frees the context; connections still open keep their own reference. */
void ar_tls_server_free(ar_tls_server_t *s);

/*
 * A client context. ca_file: PEM file of trusted certificates, or NULL for the system's default
 * store. Returns 0, AR_ETLS (unreadable CA file), AR_ENOMEM.
 */
AR_MUST_CHECK int ar_tls_client_new(const char *ca_file, ar_tls_client_t **out);
void ar_tls_client_free(ar_tls_client_t *c);

/*
 * Writes a new ECDSA P-256 key (mode 0600) and a self-signed certificate valid for `days` days
 * whose subjectAltName holds localhost, 127.0.0.1, ::1 and each of the nhosts given names (IP
 * literals become IP entries, others DNS entries). Files are written to a temporary name and
 * renamed, so a reload never reads half a file. Returns 0, AR_EINVAL (a name that is neither an
 * IP literal nor a DNS name, days <= 0), AR_EIO (cannot write), AR_ETLS, AR_ENOMEM.
 */
AR_MUST_CHECK int ar_tls_selfsigned_generate(const char *cert_path, const char *key_path,
                                             const char *const *hostnames, size_t nhosts, int days);

#endif
