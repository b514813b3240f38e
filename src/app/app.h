/*
 * anteroom-app: the HTTPS application server (HTTP/1.1 and HTTP/2 over TLS through libh2o on a
 * libuv loop). It serves the built web client from memory and the JSON API described by the
 * route table (routes.c, docs/api.md, docs/openapi.yaml).
 *
 * Stateless (X1): everything about a user (sessions, accounts, roles) lives in the store and is
 * read per request through the store's asynchronous pool, so any instance serves any request and
 * the loop never waits on the database.
 */
#ifndef ANTEROOM_APP_APP_H
#define ANTEROOM_APP_APP_H

#include "anteroom/err.h"
#include "anteroom/store.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ar_app_s ar_app_t;

/* Seconds since the Unix epoch. Injected so tests can move time; called on the loop thread. */
typedef int64_t (*ar_app_clock_cb)(void *data);

typedef struct ar_app_opts_s {
    const char *host;      /* numeric address to bind; NULL means "127.0.0.1" */
    uint16_t port;         /* 0 picks a free port (tests); see ar_app_port */
    const char *cert_path; /* PEM chain and key, re-read by ar_app_reload_tls */
    const char *key_path;
    /* The public origin browsers use ("https://app.example.org"); state-changing requests whose
     * Origin header names another origin are refused (CSRF, docs/api.md). Required. */
    const char *origin;
    const char *web_dir;    /* the built web client (manifest.json); NULL serves no pages */
    ar_store_pool_t *store; /* borrowed; must outlive the app */
    int64_t session_idle_s; /* 0 means 30 minutes */
    int64_t session_max_s;  /* absolute lifetime; 0 means 12 hours */
    size_t max_body;        /* bytes of a request body; 0 means 16 KiB */
    /* Open connections at most; more are accepted and closed at once, so the backlog cannot
     * fill and file descriptors stay below the process limit. 0 means 10000. */
    unsigned max_conns;
    ar_app_clock_cb clock; /* NULL means the system clock */
    void *clock_data;
    /* Argon2id cost of the dummy verification run for unknown accounts, so that "no such
     * account" takes as long as "wrong password" (docs/api.md). 0 means the production values
     * (AR_APP_PWHASH_OPS, AR_APP_PWHASH_MEM). */
    unsigned long long pwhash_ops;
    size_t pwhash_mem;
    /* 32 bytes sealing TOTP secrets at rest (crypto_secretbox), the same on every instance.
     * NULL uses an all-zero key and logs a warning at start: the secrets are then only as
     * safe as the database. */
    const uint8_t *seal_key;
    /* Signalling and TURN servers per jurisdiction (servers.h); borrowed. NULL answers the
     * token and entry routes with 503 (the daemon always passes one). */
    const struct ar_app_servers_s *servers;
    /* Patient entries allowed per client address per minute (0 means 10). */
    unsigned entry_per_minute;
    /* How often expired keeping uploads are deleted (docs/keeping.md), in milliseconds; the
     * first run comes after at most 1 s. 0 means 60 s; negative turns the sweep off (uploads
     * then go only when the next one starts). */
    int64_t keeping_sweep_ms;
} ar_app_opts_t;

/* Argon2id parameters for new password hashes; cost measured in docs/api.md. New hashes made by
 * the app (invitations, password changes) use pwhash_ops/pwhash_mem when set (tests). */
#define AR_APP_PWHASH_OPS 3ULL
#define AR_APP_PWHASH_MEM ((size_t)64 * 1024 * 1024)

/*
 * Loads the TLS context and the web client, binds and starts serving on loop. Returns 0 with
 * *out set, AR_EINVAL (missing option, bad host), AR_ETLS, AR_EIO (web_dir unreadable),
 * AR_EPARSE (bad manifest), AR_EADDRINUSE, AR_ESYS, AR_ENOMEM.
 */
AR_MUST_CHECK int ar_app_start(uv_loop_t *loop, const ar_app_opts_t *opts, ar_app_t **out);
uint16_t ar_app_port(const ar_app_t *app);
/* Re-reads the certificate and key (SIGHUP). New connections get the new certificate; on error
 * the old one stays in use. Call on the loop thread. */
AR_MUST_CHECK int ar_app_reload_tls(ar_app_t *app);
/* Stops listening and frees the app once the loop has closed its handles. Requests still waiting
 * on the store complete without a response. Call on the loop thread. */
void ar_app_stop(ar_app_t *app);

/*
 * Hashes a password for storage with the given Argon2id cost (0, 0 means the production values).
 * out must hold crypto_pwhash_STRBYTES (128) bytes. Blocking and slow by design: call it off
 * the loop (tools, tests, store jobs). Returns 0, AR_ENOMEM, AR_EINVAL.
 */
AR_MUST_CHECK int ar_app_password_hash(const char *pw, size_t len, unsigned long long ops,
                                       size_t mem, char *out, size_t outlen);

#endif
