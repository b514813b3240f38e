/*
 * One TLS session over memory buffers, for conn.c. The caller moves bytes: ciphertext from the
 * socket goes in with ar__tls_feed, ciphertext to send comes out with ar__tls_take_out, and
 * plaintext passes through ar__tls_read / ar__tls_write. Nothing here touches a socket.
 */
#ifndef ANTEROOM_TLS_INTERNAL_H
#define ANTEROOM_TLS_INTERNAL_H

#include "anteroom/tls.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ar__tls_s ar__tls_t;

/* A server session from s's current context. AR_ENOMEM or AR_ETLS on failure. */
int ar__tls_new_server(ar_tls_server_t *s, ar__tls_t **out);
/*
 * A client session verifying `host` (a DNS name, sent as SNI, or an IP literal, matched against
 * IP SANs). host must not be NULL: a client that verifies no name verifies nothing.
 */
int ar__tls_new_client(ar_tls_client_t *c, const char *host, ar__tls_t **out);
void ar__tls_free(ar__tls_t *t);

/* Ciphertext received from the peer. AR_ENOMEM when it cannot be buffered. */
int ar__tls_feed(ar__tls_t *t, const uint8_t *data, size_t len);
/* Advances the handshake: 0 when complete, AR_EAGAIN when it needs more input, AR_ETLS. */
int ar__tls_handshake(ar__tls_t *t);
/* Plaintext into buf: bytes read (> 0), AR_EAGAIN, AR_ECLOSED (close_notify), AR_ETLS. */
int ar__tls_read(ar__tls_t *t, uint8_t *buf, size_t len);
/* Encrypts all len bytes (after the handshake): 0, AR_ETLS. */
int ar__tls_write(ar__tls_t *t, const uint8_t *data, size_t len);
/* Queues a close_notify alert. */
void ar__tls_shutdown(ar__tls_t *t);
/* Ciphertext waiting to be sent, and a copy-out of up to len bytes of it (returns the count). */
size_t ar__tls_pending_out(ar__tls_t *t);
size_t ar__tls_take_out(ar__tls_t *t, uint8_t *buf, size_t len);

#endif
