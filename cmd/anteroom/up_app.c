/*
 * What `anteroom up` does for anteroom-app before it starts: the store (DIR/app.db, SQLite) is
 * migrated; on first start an operator account is made and its one-time password printed once;
 * with --demo a demo clinic with a waiting area is added once; and DIR/servers.json names this
 * machine's relay (and the signalling URL it will have) under one jurisdiction, "local", so the
 * app's jurisdiction check passes and clients are handed this machine's servers only.
 */
#include "admin.h"
#include "keys.h"
#include "up.h"

#include "anteroom/log.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define OPERATOR_EMAIL "operator@anteroom.localhost"

/* The host name in URLs clients use: the bind address, or localhost for a wildcard. */
const char *ar__up_public_host(const ar__up_conf_t *conf)
{
    if (strcmp(conf->bind, "0.0.0.0") == 0 || strcmp(conf->bind, "::") == 0)
        return "localhost";
    return conf->bind;
}

static int write_servers(const ar__up_conf_t *conf, const ar__up_state_t *st)
{
    const char *host = ar__up_public_host(conf);
    int v6 = strchr(host, ':') != NULL;
    char json[1024], path[PATH_MAX + 16];
    /*
     * Clients get one turns: URL; with a second TLS listener (443) it is that one, the port a
     * firewall that passes only HTTPS lets through; clients on open networks use UDP anyway.
     */
    int64_t tls_port = conf->turn_alt_tls_port != 0 ? conf->turn_alt_tls_port : conf->turn_tls_port;
    /* anteroom-signal will serve on the port after the app's and anteroom-monitor two after it
     * (its reports URL; browsers send statistics there only with a monitor token). */
    snprintf(json, sizeof(json),
             "{\"jurisdiction\": \"local\",\n"
             " \"jurisdictions\": {\"local\": {\n"
             "   \"signal\": [\"wss://%s%s%s:%lld/ws\"],\n"
             "   \"turn\": [{\"node\": \"turn\", \"host\": \"%s\", \"port\": %lld, "
             "\"tls_port\": %lld}],\n"
             "   \"monitor\": \"https://%s%s%s:%lld/v1/stats\"}}}\n",
             v6 ? "[" : "", host, v6 ? "]" : "", (long long)conf->app_port + 1, host,
             (long long)conf->turn_port, (long long)tls_port, v6 ? "[" : "", host, v6 ? "]" : "",
             (long long)conf->app_port + 2);
    snprintf(path, sizeof(path), "%s/servers.json", st->dir);
    return ar__state_write_file(path, json, strlen(json));
}

/*
 * Makes sure the store holds a token signing key (and the relay's TURN secret), then exports the
 * public keys to DIR/secrets/token-keys.pub, one "kid base64url-key" line each: the file
 * anteroom-signal and anteroom-monitor verify tokens with. Rotating keys later with `anteroom
 * admin` needs a restart of `anteroom up` to re-export them.
 */
static int export_token_keys(ar_store_conn_t *c, const ar__up_state_t *st, const uint8_t *seal)
{
    int64_t now = (int64_t)time(NULL);
    int rc = ar_app_keys_ensure(c, seal, now, st->turn_secret);
    ar_token_keyring_t ring;
    memset(&ring, 0, sizeof(ring));
    if (rc == 0)
        rc = ar_app_keys_keyring(c, now, &ring);
    char text[AR_TOKEN_KEYS_MAX * 128];
    size_t len = 0;
    for (size_t i = 0; rc == 0 && i < ring.count; i++) {
        char pk[64];
        sodium_bin2base64(pk, sizeof(pk), ring.keys[i].pk, sizeof(ring.keys[i].pk),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        int n = snprintf(text + len, sizeof(text) - len, "%s %s\n", ring.keys[i].kid, pk);
        if (n < 0 || (size_t)n >= sizeof(text) - len)
            rc = AR_ETOOBIG;
        else
            len += (size_t)n;
    }
    ar_token_keyring_wipe(&ring);
    if (rc == 0) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/secrets/token-keys.pub", st->dir);
        rc = ar__state_write_file(path, text, len);
    }
    return rc;
}

/*
 * The seal key the app seals secrets with: DIR/secrets/seal-key (0600, 64 hex digits), made on
 * first start and handed to the app as --seal-key-file (daemons.c). A state directory from
 * before it existed has TOTP secrets sealed under the all-zero key (the app had none) and keys
 * in clear: they are re-sealed under the new key here, once; rows already under it are left.
 */
static int prepare_seal_key(ar_store_conn_t *c, const ar__up_state_t *st, uint8_t seal[32])
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/secrets/seal-key", st->dir);
    int have;
    int rc = ar_app_seal_key_load(NULL, path, seal, &have);
    if (rc == AR_ENOTFOUND) {
        char hex[66];
        randombytes_buf(seal, 32);
        sodium_bin2hex(hex, sizeof(hex), seal, 32);
        hex[64] = '\n';
        rc = ar__state_write_file(path, hex, 65);
        sodium_memzero(hex, sizeof(hex));
        if (rc == 0)
            ar_log(AR_LOG_INFO, "seal_key_generated", AR_LF_OPER("path", path));
    }
    if (rc < 0)
        return rc;
    static const uint8_t unkeyed[32];
    size_t n = 0;
    rc = ar_app_secrets_reseal(c, unkeyed, seal, &n);
    if (rc == 0 && n > 0)
        ar_log(AR_LOG_INFO, "secrets_sealed", AR_LF_UINT("count", n));
    return rc;
}

int ar__up_app_prepare(const ar__up_conf_t *conf, const ar__up_state_t *st, char *err,
                       size_t errlen)
{
    char db[PATH_MAX + 16];
    snprintf(db, sizeof(db), "%s/app.db", st->dir);
    int rc = write_servers(conf, st);
    if (rc < 0) {
        snprintf(err, errlen, "cannot write %s/servers.json", st->dir);
        return rc;
    }
    ar_store_conn_t *c;
    rc = ar__admin_open("sqlite", db, &c);
    if (rc < 0) {
        snprintf(err, errlen, "cannot open or migrate %s: %s", db, ar_strerror(rc));
        return rc;
    }
    uint8_t seal[32];
    rc = prepare_seal_key(c, st, seal);
    if (rc < 0) {
        snprintf(err, errlen, "cannot prepare %s/secrets/seal-key or seal the store's secrets: %s",
                 st->dir, ar_strerror(rc));
        sodium_memzero(seal, sizeof(seal));
        ar_store_close(c);
        return rc;
    }
    int has = 0;
    rc = ar__admin_has_operator(c, &has);
    if (rc == 0 && !has) {
        char pw[40];
        int64_t id;
        rc = ar__admin_create_account(c, OPERATOR_EMAIL, "Operator", 1, conf->fast_hash, pw,
                                      sizeof(pw), &id);
        if (rc == 0) {
            /* Printed once: only its Argon2id hash is kept. `anteroom admin` makes others. */
            printf("anteroom up: first start: operator account %s, one-time password %s\n"
                   "             (shown only now; sign in and change it)\n",
                   OPERATOR_EMAIL, pw);
            ar_log(AR_LOG_INFO, "operator_account_created");
        }
        sodium_memzero(pw, sizeof(pw));
    }
    if (rc == 0 && conf->demo) {
        ar_store_stmt_t *s;
        static const char q[] = "SELECT count(*) FROM waiting_areas WHERE slug = 'demo'";
        int exists = 0;
        rc = ar_store_prepare(c, q, sizeof(q) - 1, &s);
        if (rc == 0) {
            exists = ar_store_step(s) == AR_STORE_ROW && ar_store_col_int64(s, 0) > 0;
            ar_store_finalize(s);
        }
        int64_t clinic = 0;
        if (rc == 0 && !exists)
            rc = ar__admin_create_clinic(c, "Demo clinic", "local", &clinic);
        if (rc == 0 && !exists)
            rc = ar__admin_create_area(c, clinic, "demo", "Demo waiting area", "UTC", "",
                                       "Welcome to the demo waiting area.");
        if (rc == 0 && !exists)
            printf("anteroom up: demo clinic %lld, waiting area: https://%s:%lld/api/v1/entry/"
                   "%lld/demo\n",
                   (long long)clinic, ar__up_public_host(conf), (long long)conf->app_port,
                   (long long)clinic);
    }
    if (rc == 0)
        rc = export_token_keys(c, st, seal);
    sodium_memzero(seal, sizeof(seal));
    ar_store_close(c);
    if (rc < 0)
        snprintf(err, errlen, "cannot prepare the app's store: %s", ar_strerror(rc));
    return rc;
}
