/*
 * Internals shared by the files of ar_app: the server (server.c), static files (static.c),
 * sessions and CSRF (session.c), the request pipeline (pipeline.c) and handlers (api.c).
 */
#ifndef ANTEROOM_APP_INTERNAL_H
#define ANTEROOM_APP_INTERNAL_H

#include "app.h"
#include "routes.h"
#include "sql.h"

#include "anteroom/tls.h"
#include "https.h"

#include <h2o.h>
#include <jansson.h>

#define AR__SID_BYTES 32
/* base64url without padding of 32 bytes */
#define AR__SID_TEXT 43
#define AR__COOKIE_NAME "__Host-ar_session"

typedef struct ar__static_s ar__static_t;
typedef struct ar__keep_sweep_s ar__keep_sweep_t;

/* h2guard.c: HTTP/2 rapid reset (CVE-2023-44487), per-connection accounting. */
#define AR__H2GUARD_JOBS_MAX 32u
#define AR__H2GUARD_ABANDON_MIN 64u
typedef struct ar__h2guard_s ar__h2guard_t;

/* Patient entries per client address and minute (entry.c): a small table on the loop thread,
 * keyed by a keyed hash of the address so the table holds no addresses. Per instance: behind
 * a load balancer the limit is per instance, which still bounds one address's rate. */
#define AR__ENTRY_RL_SLOTS 1024
typedef struct ar__entry_rl_s {
    uint64_t key[AR__ENTRY_RL_SLOTS];
    uint16_t count[AR__ENTRY_RL_SLOTS];
    int64_t minute;
    uint8_t hash_key[16];
} ar__entry_rl_t;

/* The CSP header: the fixed policy plus up to 16 x 16 signalling origins of 256 bytes. */
#define AR__CSP_MAX ((size_t)70 * 1024)

struct ar_app_s {
    uv_loop_t *loop;
    ar_app_opts_t opts; /* strings point into owned copies below */
    char *origin;
    ar_https_t https; /* the listener (src/https) */
    ar__static_t *files;
    char dummy_hash[128]; /* verified against when an account is unknown (equal timing) */
    uint8_t seal_key[32]; /* seals TOTP secrets at rest (ar_app_opts_t.seal_key) */
    ar__entry_rl_t entry_rl;
    char csp[AR__CSP_MAX];   /* the Content-Security-Policy header, with the signalling origins */
    ar__keep_sweep_t *sweep; /* expired keeping uploads (keep_sweep.c); NULL when off */
};

/* The session a request carries, as loaded from the store. */
typedef struct ar__session_s {
    uint8_t id[AR__SID_BYTES];
    uint8_t id_hash[32];
    int present;        /* the request had a well-formed cookie */
    int64_t account_id; /* 0 when no valid session */
    int is_operator;
    unsigned clinic_roles;    /* roles in the route's {clinic} */
    int64_t authenticated_at; /* when the password was last proven (re-authentication) */
    int mfa_missing;          /* the account must enrol a second factor before clinic work */
} ar__session_t;

/*
 * One API request in flight. Owned by the pipeline (ar_malloc), not by h2o: a store job may
 * complete after h2o has dropped the request (the peer went away), and then `req` is NULL and
 * nothing is sent.
 */
typedef struct ar__req_s {
    ar_app_t *app;
    h2o_req_t *req;
    ar__h2guard_t *guard;    /* an HTTP/2 request holding a store job (h2guard.c); else NULL */
    struct ar__req_s **link; /* slot in h2o's pool that clears `req` on dispose */
    const ar_app_route_t *route;
    int64_t clinic_id;
    ar_app_params_t params; /* every path parameter (clinic_id repeats params.clinic) */
    int64_t now;
    ar__session_t s;
    json_t *body;
    /* Handler scratch: filled on a store worker, read on the loop after completion. */
    json_t *out;
    int out_status;
    char *secret; /* a password being verified; wiped and freed with the request */
    size_t secret_len;
    void *aux; /* a handler's own data for its job (keeping.c); the handler frees it */
    uint8_t new_sid[AR__SID_BYTES];
    uint8_t addr[32];    /* hash of the peer's address (or IPv6 /64), for the backoff */
    int64_t retry_after; /* seconds, when an address is told to wait */
    /* A job's refusal: HTTP status in out_status with these literals (ar__account_done). */
    const char *err_code;
    const char *err_msg;
} ar__req_t;

/* ---- keep_sweep.c ---- */
/* Every interval_ms (the first run after at most 1 s) a store job deletes expired keeping
 * uploads and logs how many. 0 with *out set, AR_ENOMEM or AR_ESYS. */
int ar__keep_sweep_start(ar_app_t *app, uint64_t interval_ms, ar__keep_sweep_t **out);
/* Stops the timer (NULL is a no-op). The sweep frees itself once the timer has closed and a job
 * still in flight has completed; from here on nothing in it reaches the app. */
void ar__keep_sweep_stop(ar__keep_sweep_t *s);

/* ---- server.c ---- */
int64_t ar__now(ar_app_t *app);

/* ---- h2guard.c ---- */
/* Counts a request about to hold a store job against its HTTP/2 connection: 0 with *out set
 * (NULL for HTTP/1.1, whose requests come one at a time), or AR_EQUOTA when the connection
 * already holds AR__H2GUARD_JOBS_MAX (answer 503 without a job). */
int ar__h2guard_take(h2o_req_t *req, ar__h2guard_t **out);
/* The request that took g is done: answered (its stream still open) or abandoned (reset). */
void ar__h2guard_done(ar__h2guard_t *g, int answered);

/* ---- pipeline.c ---- */
int ar__api_handle(ar_app_t *app, h2o_req_t *req);
/* Sends a JSON body (stolen reference) with the status and frees r. */
void ar__reply_json(ar__req_t *r, int status, json_t *body);
/* Sends {"error": {"code", "message"}} and frees r. code and message are literals or texts
 * built from field names, never from input. */
void ar__reply_error(ar__req_t *r, int status, const char *code, const char *message);
/* 204 without a body; frees r. */
void ar__reply_empty(ar__req_t *r, int status);
/* Answers 503 for a failed store job (logged with its error) and frees r. */
void ar__store_failed(ar__req_t *r, int status);
/* Replies with r->out (status) and frees r. */
void ar__reply_out(ar__req_t *r, int status);
/* The usual end of a store job that has no refusals of its own: 503 for an error, else r->out
 * with r->out_status (200 when unset), or no body (204 when unset) when there is no r->out. */
void ar__reply_result(ar__req_t *r, int status);
/* Adds a response header copied into the request's pool (no-op when the request is gone). */
void ar__add_header(ar__req_t *r, const char *name, const char *value, size_t len);
/* Submits a store job for r; on refusal (queue full) answers 503 and frees r. Returns 0 when
 * submitted. */
int ar__submit(ar__req_t *r, ar_store_job_cb job, ar_store_done_cb done);
void ar__req_free(ar__req_t *r);
void ar__send_error(h2o_req_t *req, int status, const char *code, const char *message);

/* ---- session.c ---- */
/* Reads the session cookie from the request headers into s (s->present). */
void ar__session_from_cookie(h2o_req_t *req, ar__session_t *s);
/* The CSRF token for a session id: base64url(BLAKE2b-256(key = id, "anteroom-csrf-v1")). out
 * holds AR__SID_TEXT + 1 bytes. */
void ar__csrf_token(const uint8_t id[AR__SID_BYTES], char *out);
/* Encodes a session id for the cookie; out holds AR__SID_TEXT + 1 bytes. */
void ar__sid_encode(const uint8_t id[AR__SID_BYTES], char *out);
void ar__sid_hash(const uint8_t id[AR__SID_BYTES], uint8_t out[32]);
/* Store job: loads and refreshes r->s (idle and absolute timeouts against r->now) and the
 * roles in r->clinic_id. Returns 0, AR_EAUTH (no such or expired session) or a store error. */
int ar__session_load_job(ar_store_conn_t *c, void *arg);
/* Set-Cookie for a new session id, or one that clears the cookie when id is NULL. */
void ar__session_set_cookie(ar__req_t *r, const uint8_t *id);

/* ---- static.c ---- */
int ar__static_load(const char *dir, ar__static_t **out);
void ar__static_free(ar__static_t *st);
/* Answers a GET or HEAD for a page or asset; returns -1 when there is no such file. */
int ar__static_serve(ar__static_t *st, h2o_req_t *req);

/* ---- api.c: handlers ---- */
void ar__h_session_create(ar__req_t *r);
void ar__h_session_delete(ar__req_t *r);
void ar__h_sessions_delete_all(ar__req_t *r);
void ar__h_me(ar__req_t *r);
void ar__h_clinic_get(ar__req_t *r);
/* The answer of a job that leaves a clinic in r->out: 200 with it, 404 for AR_ENOTFOUND (the
 * GET in api.c and the PATCH in clinic_edit.c). */
void ar__clinic_done(int status, void *arg);
/* clinic_edit.c: PATCH /api/v1/clinics/{clinic} */
void ar__h_clinic_update(ar__req_t *r);

/* ---- accounts (issue 4): signin.c, invite.c, staff.c, me.c ---- */
void ar__h_session_create(ar__req_t *r);
void ar__h_session_mfa(ar__req_t *r);
void ar__h_session_reauth(ar__req_t *r);
void ar__h_invitation_create(ar__req_t *r);
void ar__h_invitation_accept(ar__req_t *r);
void ar__h_staff_list(ar__req_t *r);
void ar__h_staff_roles(ar__req_t *r);
void ar__h_staff_deactivate(ar__req_t *r);
void ar__h_staff_mfa_reset(ar__req_t *r);
void ar__h_totp_begin(ar__req_t *r);
void ar__h_totp_confirm(ar__req_t *r);
void ar__h_password_change(ar__req_t *r);
#define AR__FIELDS(name)                                                                           \
    extern const ar_app_field_t ar__f_##name[];                                                    \
    extern const size_t ar__f_##name##_n
AR__FIELDS(session_create);
AR__FIELDS(session_mfa);
AR__FIELDS(session_reauth);
AR__FIELDS(invitation_create);
AR__FIELDS(invitation_accept);
AR__FIELDS(staff_roles);
AR__FIELDS(staff_account);
AR__FIELDS(totp_confirm);
AR__FIELDS(password_change);
/* Field counts the route table needs as constants; each table's file asserts its own. */
#define AR__N_session_mfa 3
#define AR__N_session_reauth 3
#define AR__N_invitation_create 2
#define AR__N_invitation_accept 3
#define AR__N_staff_roles 2
#define AR__N_staff_account 1
#define AR__N_totp_confirm 1
#define AR__N_password_change 1
AR__FIELDS(clinic_update);
#define AR__N_clinic_update 4
#define AR__CHECK_N(name)                                                                          \
    _Static_assert(sizeof(ar__f_##name) / sizeof(ar__f_##name[0]) == AR__N_##name,                 \
                   "AR__N_" #name " is the size of ar__f_" #name)

/* signin.c, shared with the other account handlers (store jobs unless said otherwise). */
/* Hashes the peer's address into r->addr (on the loop). */
void ar__addr_hash(ar__req_t *r);
/* Opens a session for account in one transaction with its audit entry, clearing the account's
 * failures and the address's backoff; r->new_sid gets the id. */
int ar__session_open(ar_store_conn_t *c, ar__req_t *r, int64_t account, const char *event);
/* Records a failed proof: the audit entry, the account's failure (account may be 0) and the
 * address's backoff, in one transaction. */
int ar__record_failure(ar_store_conn_t *c, ar__req_t *r, int64_t account, const char *event);
/* Checks the body's "code" (TOTP) or "recovery_code" for account and consumes it (a code once,
 * a recovery code once). 0, AR_EAUTH, or a store error. */
int ar__second_factor(ar_store_conn_t *c, ar__req_t *r, int64_t account);
/* The answer for a finished job: r->out with r->out_status, or the error the status means.
 * On the loop. Sets the session cookie when r->new_sid is set. */
void ar__account_done(int status, void *arg);
/* 1 when this session proved the password within AR_REAUTH_S (on the loop). */
int ar__reauth_fresh(const ar__req_t *r);
/* The refusal of a sensitive change without a fresh re-authentication, the same on every
 * route: 403 reauth_required. */
#define AR__REAUTH_CODE "reauth_required"
#define AR__REAUTH_MSG "confirm your password first (POST /api/v1/session/reauth)"
/* On the loop: 0 when the re-authentication is fresh, else answers the refusal (r is freed)
 * and returns 1. */
int ar__reauth_refused(ar__req_t *r);
/* In a store job: the refusal ar__account_done answers (status, code and message literals). */
void ar__refuse(ar__req_t *r, int status, const char *code, const char *msg);
/* base64url without padding of a 256-bit token (an invitation or second-step token) */
#define AR__TOKEN_TEXT 43
/* A new 256-bit random token: its text for the holder and its SHA-256, the form the store
 * keeps; the raw bytes are wiped. The caller wipes text once it is handed out. */
void ar__token_new(uint8_t hash[32], char text[AR__TOKEN_TEXT + 1]);
/* Decodes a 256-bit base64url token (an invitation or second-step token) from a JSON string and
 * writes its SHA-256, the form the store keeps, into hash; the raw token is wiped. Returns 0, or
 * -1 when the text is not such a token. */
int ar__token_text_hash(const json_t *jt, uint8_t hash[32]);
/* ---- areas.c, entry.c, tokens_api.c: clinics, waiting areas, rooms, entry, tokens ---- */
void ar__h_areas_list(ar__req_t *r);
void ar__h_area_create(ar__req_t *r);
void ar__h_area_update(ar__req_t *r);
void ar__h_area_delete(ar__req_t *r);
void ar__h_rooms_list(ar__req_t *r);
void ar__h_room_create(ar__req_t *r);
void ar__h_room_delete(ar__req_t *r);
void ar__h_entry_get(ar__req_t *r);
void ar__h_entry_post(ar__req_t *r);
void ar__h_signal_token(ar__req_t *r);
void ar__h_keys(ar__req_t *r);
void ar__h_invite_token(ar__req_t *r); /* invite_tokens.c */
void ar__h_room_token(ar__req_t *r);
/* A call-monitor token (aud monitor) for the holder of `from`: its role, jurisdiction, clinic
 * (the first of a staff token's) and area, a fresh subject (and for a patient a random room,
 * not the call's); 0 or AR_E*. */
struct ar_token_key_s;
struct ar_token_claims_s;
int ar__mint_monitor_token(const struct ar_token_key_s *key, const struct ar_token_claims_s *from,
                           int64_t now, char *out, size_t cap);
/* tokens_api.c: the subject of r's signed-in session's staff tokens in jurisdiction jur, into
 * sub (AR_TOKEN_ID_MAX bytes): 22 characters of base64url of a keyed hash (key: the session id)
 * of jur. The same for every token of one sign-in, so that signalling can renew a session's
 * token in place (`refresh`, docs/protocol.md 5.15) or resume it with a newer one; opaque, and
 * no two sign-ins share it. */
void ar__staff_subject(const ar__req_t *r, const char *jur, char *sub);
/* What a call client is handed (invite_tokens.c): cl gets a fresh random subject (unless it has
 * one: a staff room token's, ar__staff_subject); then the
 * signalling token for `cl` and its monitor token, both signed with the newest key, and the
 * servers of cl's jurisdiction with a fresh TURN credential (*servers, a new reference). Key
 * and secret are wiped before it returns. 0, AR_EUNSUPPORTED when this node serves no such
 * jurisdiction, or another AR_E* (nothing to free in either case). */
int ar__mint_call(ar_store_conn_t *c, ar__req_t *r, struct ar_token_claims_s *cl, char *token,
                  char *mon, size_t cap, json_t **servers);
extern const ar_app_field_t ar__f_invite_token[];
extern const size_t ar__f_invite_token_n;
extern const ar_app_field_t ar__f_area_create[], ar__f_area_update[], ar__f_room_create[],
    ar__f_entry[];
extern const size_t ar__f_area_create_n, ar__f_area_update_n, ar__f_room_create_n;
/* 1 when p names a quality profile (low, standard, high): an area's or a clinic's default. */
int ar__profile_ok(const char *p);
/* ---- keeping.c (S5) ---- */
void ar__h_keeping_get(ar__req_t *r);
void ar__h_keeping_put(ar__req_t *r);
void ar__h_keeping_upload_create(ar__req_t *r);
void ar__h_keeping_upload_chunk(ar__req_t *r);
void ar__h_keeping_upload_finish(ar__req_t *r);
void ar__h_keeping_upload_delete(ar__req_t *r);
void ar__h_keeping_items_list(ar__req_t *r);
void ar__h_keeping_item_get(ar__req_t *r);
/* Deletes every upload expired at now, of every clinic (their chunks cascade); *removed says
 * how many. On a store connection, in the caller's transaction or on its own. Used by the upload
 * route and by the periodic sweep (keep_sweep.c). */
int ar__keeping_delete_expired(ar_store_conn_t *c, int64_t now, int64_t *removed);
#define AR__N_keeping_put 2
#define AR__N_keeping_upload 5
#define AR__N_keeping_chunk 2
extern const ar_app_field_t ar__f_keeping_put[], ar__f_keeping_upload[], ar__f_keeping_chunk[];

#endif
