/*
 * The security audit log (A3): sign-ins, failures, sign-outs (and, as they arrive, MFA and role
 * changes and admissions). Rows hold a time, the acting account, a clinic and a fixed event
 * name, never free text or health data. Each row's hash is BLAKE2b-256 over the previous row's
 * hash and this row's fields, and audit_head keeps the count and the last hash, so editing,
 * deleting, reordering or cutting off rows shows when the chain is verified.
 */
#ifndef ANTEROOM_APP_AUDIT_H
#define ANTEROOM_APP_AUDIT_H

#include "anteroom/store.h"

#include <stdint.h>

/* Event names: only these literals are ever written. */
#define AR_AUDIT_SIGNIN "signin"
#define AR_AUDIT_SIGNIN_FAILED "signin_failed"
#define AR_AUDIT_SIGNOUT "signout"
#define AR_AUDIT_SIGNOUT_ALL "signout_all"
/* Accounts (issue 4). */
#define AR_AUDIT_SIGNIN_MFA_FAILED "signin_mfa_failed"
#define AR_AUDIT_SIGNIN_LOCKED "signin_locked"
#define AR_AUDIT_REAUTH "reauth"
#define AR_AUDIT_REAUTH_FAILED "reauth_failed"
#define AR_AUDIT_MFA_ENROLLED "mfa_enrolled"
#define AR_AUDIT_MFA_RECOVERY_USED "mfa_recovery_code_used"
#define AR_AUDIT_MFA_RESET "mfa_reset"
#define AR_AUDIT_ROLES_CHANGED "roles_changed"
#define AR_AUDIT_INVITATION_CREATED "invitation_created"
#define AR_AUDIT_INVITATION_ACCEPTED "invitation_accepted"
#define AR_AUDIT_STAFF_DEACTIVATED "staff_deactivated"
#define AR_AUDIT_PASSWORD_CHANGED "password_changed"

/*
 * Appends one entry inside the caller's open transaction (so the entry commits or rolls back
 * with what it records). actor and clinic are 0 when there is none. Returns 0 or a store error;
 * on error roll the transaction back.
 */
AR_MUST_CHECK int ar_app_audit_append(ar_store_conn_t *c, int64_t at, int64_t actor, int64_t clinic,
                                      const char *event);
/* The same with the account the entry is about (subject), when that is not the actor. */
AR_MUST_CHECK int ar_app_audit_append_subject(ar_store_conn_t *c, int64_t at, int64_t actor,
                                              int64_t subject, int64_t clinic, const char *event);
/* The same in a transaction of its own. */
AR_MUST_CHECK int ar_app_audit_append_tx(ar_store_conn_t *c, int64_t at, int64_t actor,
                                         int64_t clinic, const char *event);

/*
 * Walks the whole chain. Returns 0 with *rows set when every link and hash holds and the head
 * matches the last row, AR_EAUTH at the first broken one (*rows: the entries checked before
 * it), or a store error.
 */
AR_MUST_CHECK int ar_app_audit_verify(ar_store_conn_t *c, int64_t *rows);

/*
 * Anchoring (A3): whoever can write the database could rebuild the whole chain, so an operator
 * records the head outside it (`anteroom admin audit-head`: the entry count and the last hash)
 * and later checks the chain against that record (`anteroom admin audit-verify --count N
 * --hash H`). ar_app_audit_head reads the head (0 and a zero hash before any entry);
 * ar_app_audit_verify_anchor verifies the chain as above and that its entry number n has the
 * hash recorded: AR_EAUTH when the chain is broken, shorter than n, or was rebuilt.
 */
AR_MUST_CHECK int ar_app_audit_head(ar_store_conn_t *c, int64_t *n, uint8_t hash[32]);
AR_MUST_CHECK int ar_app_audit_verify_anchor(ar_store_conn_t *c, int64_t n, const uint8_t hash[32],
                                             int64_t *rows);

#endif
