/*
 * Store operations behind `anteroom admin` (admin.c), shared with `anteroom up` (the first
 * operator account and the demo clinic). Each takes a synchronous store connection; each change
 * is audited in the same transaction. Returns 0 or a negative AR_E* code (AR_EEXIST, AR_EINVAL,
 * AR_ENOTFOUND, store errors).
 */
#ifndef ANTEROOM_CMD_ADMIN_H
#define ANTEROOM_CMD_ADMIN_H

#include "anteroom/store.h"

#include <stddef.h>
#include <stdint.h>

/* kind "sqlite" or "postgresql"; opens and migrates. */
AR_MUST_CHECK int ar__admin_open(const char *kind, const char *target, ar_store_conn_t **out);
AR_MUST_CHECK int ar__admin_create_clinic(ar_store_conn_t *c, const char *name, const char *jur,
                                          int64_t *id);
AR_MUST_CHECK int ar__admin_create_area(ar_store_conn_t *c, int64_t clinic, const char *slug,
                                        const char *name, const char *tz, const char *hours,
                                        const char *welcome);
/* Writes a fresh one-time password (24 characters) into pw (pwcap >= 33). fast_hash uses the
 * cheapest Argon2id cost (tests); otherwise the production cost. */
AR_MUST_CHECK int ar__admin_create_account(ar_store_conn_t *c, const char *email, const char *name,
                                           int is_operator, int fast_hash, char *pw, size_t pwcap,
                                           int64_t *id);
AR_MUST_CHECK int ar__admin_add_role(ar_store_conn_t *c, const char *email, int64_t clinic,
                                     const char *role);
AR_MUST_CHECK int ar__admin_reset_mfa(ar_store_conn_t *c, const char *email);
AR_MUST_CHECK int ar__admin_has_operator(ar_store_conn_t *c, int *yes);

int ar__admin_main(int argc, char **argv);

#endif
