/*
 * What the resume tests over the loop harness share (test_resume_*.c, test_lost_resume.c): a
 * worker loop with the bus's inbox over the libnats stand-in, and a client that resumes session
 * 'o' on this worker while another worker owns it, so that its resume waits for that owner's
 * answer (src/signal/resume.c). Also the checks of the frames such a client reads.
 */
#ifndef AR_TEST_RESUME_FIXTURE_H
#define AR_TEST_RESUME_FIXTURE_H

#include "loop_harness.h"

#include <stddef.h>
#include <stdint.h>

/* The secret part of the resume text the tests' clients hold ("<peer>" RF_SECRET). */
#define RF_SECRET ".AAAAAAAAAAAAAAAAAAAA"

/* One client's resume of 'o'. */
typedef struct rf_resume_s {
    ar_token_claims_t cl; /* the client's token */
    int rc;               /* what ar__sig_resume_start returned */
    int state_after;      /* the connection's state once it had (AR__SIG_C_*) */
} rf_resume_t;

/* The start of a test's setup: the stand-in reset, the loop started with the bus's inbox of
 * inbox_max bytes (lh_start), and *a zeroed but for a patient's claims (subject "patient-1"). */
void rf_start(rf_resume_t *a, long inbox_max);
/* A cmocka setup (cmocka_unit_test_prestate_setup_teardown) whose prestate is the test's
 * rf_resume_t: rf_start with an inbox of 1 MiB. */
int rf_setup(void **state);
/* A cmocka teardown for it: allocations no longer fail (a test may have left the hook set),
 * then the loop stops (lh_stop). */
int rf_teardown(void **state);

/* The resume text out (AR__SIG_RESUME_LEN + 1 bytes) of a client of session peer. */
void rf_resume_text(char *out, const char *peer);
/* s's resume secret becomes the one rf_resume_text gives for its peer: 0, or AR_EINVAL. */
int rf_sess_secret(ar__sig_sess_t *s);
/* On the loop's thread: the last connection's hello resumes session peer with a's claims and
 * the client's secret; a->rc and a->state_after tell how it went. */
void rf_resume_start(rf_resume_t *a, const char *peer);
/*
 * On the loop's thread: the last connection's hello resumes session 'o' with a's claims and the
 * client's secret. The record of 'o' is made if new, with a's role; while this worker has no
 * copy of the session, the record names worker `owner` its owner (the resume then asks it and
 * waits). a->rc and a->state_after tell how it went. Returns the record (NULL: none, a failed
 * LH_CHECK for lh_run to report).
 */
ar__sig_rec_t *rf_resume_o(rf_resume_t *a, uint64_t owner);
/* On the loop's thread (lh_run(rf_resume_o_of_2, a)): rf_resume_o(a, 2). */
void rf_resume_o_of_2(void *a);
/* On the loop's thread: the owner's answer to this worker's "take" for 'o' (sess.c's "taken"), with
 * fields (JSON members, after "p") as the owner sends them, handled as the bus hands it over. */
void rf_taken(const char *fields);
/*
 * On the test's thread: a client on "/ok" whose hello resumes 'o' through start (run on the
 * loop with a; rf_resume_o_of_2 or a step that calls rf_resume_o) while another worker owns it:
 * the resume must have started (rc 0) and wait for the owner's answer (AR__SIG_C_RESUMING).
 * Returns the client's socket.
 */
int rf_dial_resuming(void (*start)(void *), rf_resume_t *a);

/* The next frame on fd is a text frame that contains want and, when not NULL, want2; fails the
 * test otherwise, naming what came. text (cap bytes) keeps the frame for further checks. */
void rf_expect_text(int fd, char *text, size_t cap, const char *want, const char *want2);
/* The next frame is a welcome of a resumed session. */
void rf_expect_resumed(int fd, char *text, size_t cap);
/* The next frame is error `name` (its "name" field). */
void rf_expect_error(int fd, const char *name);
/* The next frame is a close frame with code want. */
void rf_expect_close(int fd, uint16_t want);

#endif
