/* The resume tests' shared pieces: resume_fixture.h. */
#include "resume_fixture.h"
#include "fake_nats.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

void rf_start(rf_resume_t *a, long inbox_max)
{
    memset(a, 0, sizeof(*a));
    fake_nats_reset();
    lh_start(1, inbox_max);
    su_claims(&a->cl, AR_TOKEN_PATIENT, "patient-1");
}

int rf_setup(void **state)
{
    rf_start(*state, 1 << 20);
    return 0;
}

int rf_teardown(void **state)
{
    (void)state;
    ar_alloc_fail_after(-1);
    lh_stop();
    return 0;
}

void rf_resume_text(char *out, const char *peer)
{
    snprintf(out, AR__SIG_RESUME_LEN + 1, "%s" RF_SECRET, peer);
}

int rf_sess_secret(ar__sig_sess_t *s)
{
    char text[AR__SIG_RESUME_LEN + 1];
    rf_resume_text(text, s->rec->peer);
    return ar__sig_sess_resume_set(s, text);
}

void rf_resume_start(rf_resume_t *a, const char *peer)
{
    char resume[AR__SIG_RESUME_LEN + 1];
    rf_resume_text(resume, peer);
    a->rc = ar__sig_resume_start(LH.last, &a->cl, resume, 0);
    a->state_after = LH.last->state;
}

ar__sig_rec_t *rf_resume_o(rf_resume_t *a, uint64_t owner)
{
    ar__sig_rec_t *r = ar__sig_rec_get(LH.srv, su_peer('o'));
    if (!r) {
        lh_check_failed("the record of 'o' made", __FILE__, __LINE__);
        return NULL;
    }
    if (!r->local)
        r->owner = owner;
    r->role = (unsigned)a->cl.role & 3u;
    rf_resume_start(a, r->peer);
    return r;
}

void rf_resume_o_of_2(void *a)
{
    (void)rf_resume_o(a, 2);
}

void rf_taken(const char *fields)
{
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "{\"k\":\"taken\",\"p\":\"%s\",%s}", su_peer('o'), fields);
    if (n < 0 || (size_t)n >= sizeof(msg)) {
        lh_check_failed("the answer fits its buffer", __FILE__, __LINE__);
        return;
    }
    ar__sig_proc_msg(LH.srv, msg, (size_t)n, NULL);
}

int rf_dial_resuming(void (*start)(void *), rf_resume_t *a)
{
    int fd = lh_dial("/ok");
    lh_run(start, a);
    assert_int_equal(a->rc, 0);
    assert_int_equal(a->state_after, AR__SIG_C_RESUMING); /* waiting for the owner */
    return fd;
}

void rf_expect_text(int fd, char *text, size_t cap, const char *want, const char *want2)
{
    uint16_t code = 0;
    int op = lh_read(fd, text, cap, &code);
    if (op != 1 || !strstr(text, want) || (want2 && !strstr(text, want2)))
        fail_msg("not a text frame with %s%s%s (op %d, code %u): %s", want, want2 ? " and " : "",
                 want2 ? want2 : "", op, code, op == 1 ? text : "");
}

void rf_expect_resumed(int fd, char *text, size_t cap)
{
    rf_expect_text(fd, text, cap, "\"type\":\"welcome\"", "\"resumed\":true");
}

void rf_expect_error(int fd, const char *name)
{
    char text[1024], want[64];
    snprintf(want, sizeof(want), "\"name\":\"%s\"", name);
    rf_expect_text(fd, text, sizeof(text), want, NULL);
}

void rf_expect_close(int fd, uint16_t want)
{
    char text[1024];
    uint16_t code = 0;
    int op = lh_read(fd, text, sizeof(text), &code);
    if (op != 8)
        fail_msg("no close %u (op %d): %s", want, op, op == 1 ? text : "");
    assert_int_equal(code, want);
}
