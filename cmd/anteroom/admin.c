/*
 * `anteroom admin`: the operator's tool on the store directly (no running app needed), for what
 * must work before any account exists or when an account is locked out:
 *
 *   create-clinic --name N --jurisdiction J          prints the clinic id
 *   create-area --clinic ID --slug S --name N [--time-zone TZ] [--hours H]
 *   create-account --email E --name N [--operator] [--clinic ID --role R]
 *                                                    prints a one-time password, once
 *   add-role --email E --clinic ID --role R
 *   reset-mfa --email E                              second factor to be enrolled again
 *   rotate-keys                                      new token signing key (old one overlaps)
 *   rotate-turn-secret [--secret S]                  new TURN secret, printed for the relays
 *   reseal --old-seal-key-file F | --from-unkeyed    every sealed secret to the current seal key
 *   audit-head                                       the audit chain's count and last hash
 *   audit-verify [--count N --hash H]                the chain intact (and holding that head)
 *
 * Secrets in the store are sealed under the app's seal key: --seal-key-file F, else
 * ANTEROOM_APP_SEAL_KEY (64 hex digits), else the state directory's secrets/seal-key (what
 * `anteroom up` makes and gives the app), else none (all zero, as the app without a key).
 *
 * The store is the state directory's SQLite file (--state-dir, as `anteroom up` uses it) or
 * --store postgresql --store-target CONNINFO. Every change is audited in the hash chain, with
 * no actor (the operator at the console) and never with names or addresses.
 */
#include "admin.h"
#include "drain.h"

#include "app.h"
#include "audit.h"
#include "body.h"
#include "hours.h"
#include "keys.h"
#include "sql.h"

#include "anteroom/log.h"
#include "anteroom/rand.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int ar__admin_open(const char *kind, const char *target, ar_store_conn_t **out)
{
    ar_store_opts_t o = {.kind = strcmp(kind, "postgresql") == 0 ? AR_STORE_PG : AR_STORE_SQLITE,
                         .target = target};
    int rc = ar_store_open(&o, out);
    if (rc == 0 && (rc = ar_store_migrate(*out)) < 0) {
        ar_store_close(*out);
        *out = NULL;
    }
    return rc;
}

/* Runs an INSERT ... RETURNING id with text parameters then int64 ones; writes the id. */
static int insert(ar_store_conn_t *c, const char *sql, const char *const *t, int nt,
                  const int64_t *v, int nv, int64_t *id)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, sql, &st);
    if (rc < 0)
        return rc;
    for (int i = 0; rc == 0 && i < nt; i++)
        rc = ar_store_bind_text(st, i + 1, t[i], strlen(t[i]));
    for (int i = 0; rc == 0 && i < nv; i++)
        rc = ar_store_bind_int64(st, nt + i + 1, v[i]);
    if (rc == 0)
        rc = ar_store_step(st);
    if (rc == AR_STORE_ROW && id != NULL)
        *id = ar_store_col_int64(st, 0);
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

/* The change and its audit entry commit together. */
static int audited(ar_store_conn_t *c, int rc, int64_t account, int64_t clinic, const char *ev)
{
    if (rc == 0)
        rc = ar_app_audit_append(c, (int64_t)time(NULL), account, clinic, ev);
    return ar__finish(c, rc);
}

int ar__admin_create_clinic(ar_store_conn_t *c, const char *name, const char *jur, int64_t *id)
{
    const char *t[] = {name, jur};
    const int64_t v[] = {(int64_t)time(NULL)};
    int rc = ar_store_begin(c);
    if (rc == 0)
        rc = insert(c,
                    "INSERT INTO clinics (name, jurisdiction, created_at) VALUES ($1, $2, $3) "
                    "RETURNING id",
                    t, 2, v, 1, id);
    return audited(c, rc, 0, rc == 0 ? *id : 0, "admin_clinic_created");
}

int ar__admin_create_area(ar_store_conn_t *c, int64_t clinic, const char *slug, const char *name,
                          const char *tz, const char *hours, const char *welcome)
{
    ar_hours_t h;
    if (!ar_app_charset_ok(AR_CS_SLUG, slug, strlen(slug)) || slug[0] == '\0' ||
        !ar_tz_valid(tz, strlen(tz)) || ar_hours_parse(hours, strlen(hours), &h) < 0)
        return AR_EINVAL;
    const char *t[] = {slug, name, tz, hours, welcome};
    const int64_t v[] = {clinic, (int64_t)time(NULL)};
    return insert(c,
                  "INSERT INTO waiting_areas (slug, name, time_zone, hours, welcome, clinic_id, "
                  "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                  t, 5, v, 2, NULL);
}

/* The address as the store keeps it (sql.h), as the app's own routes write it. */
static int lower_email(const char *in, char *out, size_t cap)
{
    int rc = ar__email_lower(in, strlen(in), out, cap);
    return rc < 0 ? rc : 0;
}

int ar__admin_create_account(ar_store_conn_t *c, const char *email, const char *name,
                             int is_operator, int fast_hash, char *pw, size_t pwcap, int64_t *id)
{
    char em[256];
    if (lower_email(email, em, sizeof(em)) < 0 || pwcap < 33)
        return AR_EINVAL;
    /* 24 base64url characters: 144 random bits, well over the 12-character policy. */
    if (ar_rand_id(pw, pwcap, 18) < 0)
        return AR_EINVAL;
    char hash[128];
    int rc = ar_app_password_hash(pw, strlen(pw), fast_hash ? crypto_pwhash_OPSLIMIT_MIN : 0,
                                  fast_hash ? crypto_pwhash_MEMLIMIT_MIN : 0, hash, sizeof(hash));
    if (rc < 0)
        return rc;
    const char *t[] = {em, name, hash};
    const int64_t v[] = {is_operator ? 1 : 0, (int64_t)time(NULL)};
    rc = ar_store_begin(c);
    if (rc == 0)
        rc = insert(c,
                    "INSERT INTO accounts (email, display_name, password_hash, is_operator, "
                    "created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    t, 3, v, 2, id);
    sodium_memzero(hash, sizeof(hash));
    rc = audited(c, rc, rc == 0 ? *id : 0, 0, "admin_account_created");
    if (rc < 0)
        sodium_memzero(pw, pwcap);
    return rc;
}

static int account_id(ar_store_conn_t *c, const char *email, int64_t *id)
{
    char em[256];
    if (lower_email(email, em, sizeof(em)) < 0)
        return AR_EINVAL;
    ar_store_stmt_t *st;
    int rc = ar__prep(c, "SELECT id FROM accounts WHERE email = $1", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_text(st, 1, em, strlen(em));
    if (rc == 0)
        rc = ar_store_step(st);
    if (rc == AR_STORE_ROW)
        *id = ar_store_col_int64(st, 0);
    ar_store_finalize(st);
    return rc < 0 ? rc : rc == AR_STORE_ROW ? 0 : AR_ENOTFOUND;
}

int ar__admin_add_role(ar_store_conn_t *c, const char *email, int64_t clinic, const char *role)
{
    int64_t acct;
    int rc = account_id(c, email, &acct);
    if (rc < 0)
        return rc;
    const char *t[] = {role};
    const int64_t v[] = {acct, clinic};
    rc = ar_store_begin(c);
    if (rc == 0)
        rc = insert(c, "INSERT INTO memberships (role, account_id, clinic_id) VALUES ($1, $2, $3)",
                    t, 1, v, 2, NULL);
    return audited(c, rc, acct, clinic, "admin_role_added");
}

int ar__admin_reset_mfa(ar_store_conn_t *c, const char *email)
{
    int64_t acct;
    int rc = account_id(c, email, &acct);
    if (rc < 0)
        return rc;
    /* The app's own reset (sql.h, as the staff route runs it). */
    rc = ar_store_begin(c);
    if (rc == 0)
        rc = ar__mfa_reset(c, acct);
    /* The entry is about the account, with no actor (the operator at the console). */
    if (rc == 0)
        rc = ar_app_audit_append_subject(c, (int64_t)time(NULL), 0, acct, 0, AR_AUDIT_MFA_RESET);
    return ar__finish(c, rc);
}

int ar__admin_has_operator(ar_store_conn_t *c, int *yes)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, "SELECT count(*) FROM accounts WHERE is_operator = 1", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_step(st);
    *yes = rc == AR_STORE_ROW && ar_store_col_int64(st, 0) > 0;
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

/* ---- the command line ---- */

typedef struct {
    const char *state_dir, *store, *target, *name, *jur, *email, *role, *slug, *tz, *hours, *secret,
        *welcome, *seal_file, *old_seal_file, *hash;
    int64_t clinic, count;
    int is_operator, fast, from_unkeyed, has_count;
    uint8_t seal[32]; /* the seal key in use (all zero when none) */
} args_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anteroom admin [--state-dir DIR | --store postgresql --store-target CONNINFO]\n"
            "                      <command> [flags]\n\n"
            "commands:\n"
            "  create-clinic --name N --jurisdiction J\n"
            "  create-area --clinic ID --slug S --name N [--time-zone TZ] [--hours H]\n"
            "  create-account --email E --name N [--operator] [--clinic ID --role R]\n"
            "  add-role --email E --clinic ID --role R\n"
            "  reset-mfa --email E\n"
            "  rotate-keys\n"
            "  rotate-turn-secret [--secret S]\n"
            "  reseal --old-seal-key-file F | --from-unkeyed\n"
            "  audit-head\n"
            "  audit-verify [--count N --hash H]\n"
            "  drain [--port N]   drain the signalling node whose operator listener is on\n"
            "                     127.0.0.1:N (default 9643, the one `anteroom up` runs)\n\n"
            "The state directory's store is DIR/app.db (default ./var/anteroom, or\n"
            "ANTEROOM_STATE_DIR). The seal key: --seal-key-file F (before the command), else\n"
            "ANTEROOM_APP_SEAL_KEY, else DIR/secrets/seal-key. See docs/anteroom-up.md.\n");
}

static int parse_args(int argc, char **argv, int first, args_t *a)
{
    for (int i = first; i < argc; i++) {
        const char *k = argv[i];
        if (strcmp(k, "--operator") == 0) {
            a->is_operator = 1;
            continue;
        }
        if (strcmp(k, "--fast-hash") == 0) { /* tests only: the cheapest Argon2id cost */
            a->fast = 1;
            continue;
        }
        if (strcmp(k, "--from-unkeyed") == 0) {
            a->from_unkeyed = 1;
            continue;
        }
        if (i + 1 >= argc)
            return -1;
        const char *v = argv[++i];
        static const struct {
            const char *flag;
            size_t off;
        } f[] = {{"--state-dir", offsetof(args_t, state_dir)},
                 {"--store", offsetof(args_t, store)},
                 {"--store-target", offsetof(args_t, target)},
                 {"--name", offsetof(args_t, name)},
                 {"--jurisdiction", offsetof(args_t, jur)},
                 {"--email", offsetof(args_t, email)},
                 {"--role", offsetof(args_t, role)},
                 {"--slug", offsetof(args_t, slug)},
                 {"--time-zone", offsetof(args_t, tz)},
                 {"--hours", offsetof(args_t, hours)},
                 {"--welcome", offsetof(args_t, welcome)},
                 {"--secret", offsetof(args_t, secret)},
                 {"--seal-key-file", offsetof(args_t, seal_file)},
                 {"--old-seal-key-file", offsetof(args_t, old_seal_file)},
                 {"--hash", offsetof(args_t, hash)}};
        int found = 0;
        for (size_t j = 0; j < sizeof(f) / sizeof(f[0]); j++)
            if (strcmp(k, f[j].flag) == 0) {
                *(const char **)((char *)a + f[j].off) = v;
                found = 1;
            }
        if (strcmp(k, "--clinic") == 0) {
            a->clinic = strtoll(v, NULL, 10);
            found = a->clinic > 0;
        }
        if (strcmp(k, "--count") == 0) {
            char *end;
            a->count = strtoll(v, &end, 10);
            found = a->has_count = *end == '\0' && a->count >= 0;
        }
        if (!found)
            return -1;
    }
    return 0;
}

/* Every sealed secret from the old key (a file, or none: all zero) to the current one. */
static int reseal(ar_store_conn_t *c, const args_t *a)
{
    uint8_t old[32];
    int have;
    int rc = ar_app_seal_key_load(NULL, a->old_seal_file, old, &have);
    if (rc < 0) {
        fprintf(stderr, "anteroom admin: cannot read the old seal key\n");
        return rc;
    }
    size_t n = 0;
    rc = ar_app_secrets_reseal(c, old, a->seal, &n);
    sodium_memzero(old, sizeof(old));
    if (rc == 0)
        rc = ar_app_audit_append_tx(c, (int64_t)time(NULL), 0, 0, "admin_secrets_resealed");
    if (rc == 0)
        printf("%zu secrets sealed under the current seal key\n", n);
    else if (rc == AR_EAUTH)
        fprintf(stderr, "anteroom admin: a secret opens with neither key; nothing changed\n");
    return rc;
}

static int audit_head(ar_store_conn_t *c)
{
    int64_t n;
    uint8_t h[32];
    int rc = ar_app_audit_head(c, &n, h);
    if (rc == 0) {
        char hex[65];
        sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
        /* One line an operator can paste into a log kept elsewhere, and back into audit-verify. */
        printf("audit head: --count %lld --hash %s\n", (long long)n, hex);
    }
    return rc;
}

static int audit_verify(ar_store_conn_t *c, const args_t *a)
{
    int64_t rows = 0;
    int rc;
    if (a->hash != NULL) {
        uint8_t h[32];
        size_t len = 0;
        if (sodium_hex2bin(h, sizeof(h), a->hash, strlen(a->hash), NULL, &len, NULL) != 0 ||
            len != sizeof(h))
            return AR_EINVAL;
        rc = ar_app_audit_verify_anchor(c, a->count, h, &rows);
    } else {
        rc = ar_app_audit_verify(c, &rows);
    }
    if (rc == 0)
        printf("audit chain intact: %lld entries%s\n", (long long)rows,
               a->hash ? ", and it holds the recorded head" : "");
    else if (rc == AR_EAUTH)
        fprintf(stderr,
                "anteroom admin: audit chain BROKEN after %lld good entries, or it does not hold "
                "the recorded head\n",
                (long long)rows);
    return rc;
}

static int run(ar_store_conn_t *c, const char *cmd, const args_t *a)
{
    int64_t id = 0;
    int rc = AR_EINVAL;
    if (strcmp(cmd, "create-clinic") == 0 && a->name && a->jur) {
        rc = ar__admin_create_clinic(c, a->name, a->jur, &id);
        if (rc == 0)
            printf("clinic %lld created\n", (long long)id);
    } else if (strcmp(cmd, "create-area") == 0 && a->clinic && a->slug && a->name) {
        rc = ar__admin_create_area(c, a->clinic, a->slug, a->name, a->tz ? a->tz : "UTC",
                                   a->hours ? a->hours : "", a->welcome ? a->welcome : "");
        if (rc == 0)
            printf("waiting area %s created: /api/v1/entry/%lld/%s\n", a->slug,
                   (long long)a->clinic, a->slug);
    } else if (strcmp(cmd, "create-account") == 0 && a->email && a->name &&
               (a->clinic == 0) == (a->role == NULL)) {
        char pw[40];
        rc = ar__admin_create_account(c, a->email, a->name, a->is_operator, a->fast, pw, sizeof(pw),
                                      &id);
        if (rc == 0 && a->role)
            rc = ar__admin_add_role(c, a->email, a->clinic, a->role);
        if (rc == 0)
            printf("account %lld created; one-time password (shown once): %s\n", (long long)id, pw);
        sodium_memzero(pw, sizeof(pw));
    } else if (strcmp(cmd, "add-role") == 0 && a->email && a->clinic && a->role) {
        rc = ar__admin_add_role(c, a->email, a->clinic, a->role);
        if (rc == 0)
            printf("role added\n");
    } else if (strcmp(cmd, "reset-mfa") == 0 && a->email) {
        rc = ar__admin_reset_mfa(c, a->email);
        if (rc == 0)
            printf("second factor reset: the account enrols again at its next sign-in\n");
    } else if (strcmp(cmd, "rotate-keys") == 0) {
        char kid[33];
        rc = ar_app_keys_rotate(c, a->seal, (int64_t)time(NULL), AR_APP_KEY_OVERLAP, kid);
        if (rc == 0)
            rc = ar_app_audit_append_tx(c, (int64_t)time(NULL), 0, 0, "admin_keys_rotated");
        if (rc == 0)
            printf("signing key %s is now used; older keys stay published for %d s\n", kid,
                   AR_APP_KEY_OVERLAP);
    } else if (strcmp(cmd, "rotate-turn-secret") == 0) {
        char s[AR_APP_TURN_SECRET_MAX];
        rc = ar_app_turn_secret_rotate(c, a->seal, (int64_t)time(NULL), AR_APP_TURN_TTL, a->secret,
                                       s, sizeof(s));
        if (rc == 0)
            rc = ar_app_audit_append_tx(c, (int64_t)time(NULL), 0, 0, "admin_turn_rotated");
        if (rc == 0)
            printf("new TURN secret (give it to every relay as static-auth-secret; the old one "
                   "is still minted with for %d s): %s\n",
                   AR_APP_TURN_TTL, s);
        sodium_memzero(s, sizeof(s));
    } else if (strcmp(cmd, "reseal") == 0 && (a->old_seal_file != NULL) != a->from_unkeyed) {
        rc = reseal(c, a);
    } else if (strcmp(cmd, "audit-head") == 0) {
        rc = audit_head(c);
    } else if (strcmp(cmd, "audit-verify") == 0 && a->has_count == (a->hash != NULL)) {
        rc = audit_verify(c, a);
    } else {
        return 1;
    }
    return rc;
}

int ar__admin_main(int argc, char **argv)
{
    args_t a = {0};
    int cmd_at = 1;
    /* Store flags come before the command; the command's flags after it. */
    while (cmd_at < argc && strncmp(argv[cmd_at], "--", 2) == 0) {
        if (strcmp(argv[cmd_at], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        cmd_at += 2;
    }
    /* drain talks to a running node, not to the store: the store flags do not matter to it. */
    if (cmd_at < argc && strcmp(argv[cmd_at], "drain") == 0)
        return ar__admin_drain(argc - cmd_at - 1, argv + cmd_at + 1);
    if (cmd_at >= argc || parse_args(cmd_at, argv, 1, &a) < 0 ||
        parse_args(argc, argv, cmd_at + 1, &a) < 0) {
        usage(stderr);
        return 2;
    }
    if (ar_rand_init() != 0)
        return 1;
    char path[4200];
    const char *store = a.store ? a.store : "sqlite";
    const char *target = a.target;
    if (strcmp(store, "sqlite") == 0 && target == NULL) {
        const char *dir = a.state_dir ? a.state_dir : getenv("ANTEROOM_STATE_DIR");
        snprintf(path, sizeof(path), "%s/app.db", dir && dir[0] ? dir : "./var/anteroom");
        target = path;
    }
    if (target == NULL || (strcmp(store, "sqlite") != 0 && strcmp(store, "postgresql") != 0)) {
        usage(stderr);
        return 2;
    }
    /* The seal key: a file named here, the app's environment variable, or the state
     * directory's (made by `anteroom up`). */
    char keyfile[4200];
    const char *env = getenv("ANTEROOM_APP_SEAL_KEY");
    const char *kf = a.seal_file;
    if (kf == NULL && (env == NULL || env[0] == '\0') && strcmp(store, "sqlite") == 0 &&
        a.target == NULL) {
        const char *dir = a.state_dir ? a.state_dir : getenv("ANTEROOM_STATE_DIR");
        snprintf(keyfile, sizeof(keyfile), "%s/secrets/seal-key",
                 dir && dir[0] ? dir : "./var/anteroom");
        if (access(keyfile, F_OK) == 0)
            kf = keyfile;
    }
    int have;
    if (ar_app_seal_key_load(kf == NULL && env && env[0] ? env : NULL, kf, a.seal, &have) < 0) {
        fprintf(stderr, "anteroom admin: the seal key is malformed or unreadable\n");
        return 1;
    }
    ar_store_conn_t *c;
    int rc = ar__admin_open(store, target, &c);
    if (rc < 0) {
        fprintf(stderr, "anteroom admin: cannot open the store: %s\n", ar_strerror(rc));
        return 1;
    }
    rc = run(c, argv[cmd_at], &a);
    sodium_memzero(a.seal, sizeof(a.seal));
    ar_store_close(c);
    if (rc == 1) {
        usage(stderr);
        return 2;
    }
    if (rc < 0) {
        fprintf(stderr, "anteroom admin: %s failed: %s\n", argv[cmd_at],
                rc == AR_EEXIST      ? "it exists already"
                : rc == AR_ENOTFOUND ? "no such account or clinic"
                : rc == AR_EINVAL    ? "a value is not allowed (see --help)"
                                     : ar_strerror(rc));
        return 1;
    }
    return 0;
}
