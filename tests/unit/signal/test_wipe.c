/*
 * A patient's name and typed answers are wiped before their memory goes back (P2, S4;
 * docs/signal.md, "State"): when the record ends, when a second arrive replaces them, when a
 * record update brings new ones. ar_free is wrapped at link time (-Wl,--wrap=ar_free) to look
 * at each watched block just before it is freed.
 */
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

void __real_ar_free(void *p);
void __wrap_ar_free(void *p);

/* The blocks watched, their lengths, and how many were freed with a byte left in them. */
#define WATCH_MAX 8
static const void *watched[WATCH_MAX];
static size_t watched_len[WATCH_MAX];
static int nwatched, freed_watched, freed_unwiped;

void __wrap_ar_free(void *p)
{
    for (int i = 0; p && i < nwatched; i++) {
        if (watched[i] != p)
            continue;
        freed_watched++;
        for (size_t k = 0; k < watched_len[i]; k++)
            if (((const unsigned char *)p)[k] != 0) {
                freed_unwiped++;
                break;
            }
        watched[i] = NULL;
    }
    __real_ar_free(p);
}

static void watch(const char *s)
{
    assert_true(nwatched < WATCH_MAX);
    watched[nwatched] = s;
    watched_len[nwatched++] = strlen(s);
}

static char *dup(const char *s)
{
    return ar_strndup(s, strlen(s));
}

/* A waiting patient's record with a name and two answers, each watched. */
static ar__sig_rec_t *patient(ar__sig_srv_t *srv)
{
    nwatched = freed_watched = freed_unwiped = 0;
    ar__sig_rec_t *r = ar__sig_rec_get(srv, su_peer('p'));
    assert_non_null(r);
    ar__sig_recq_t *q = ar__sig_rec_q(r);
    assert_non_null(q);
    r->name = dup("Alice Example");
    watch(r->name);
    q->ans = ar_calloc(2, sizeof(*q->ans));
    assert_non_null(q->ans);
    const char *text[4] = {"reason", "chest pain", "allergies", "penicillin"};
    for (int i = 0; i < 2; i++) {
        char *qs = dup(text[2 * i]), *as = dup(text[2 * i + 1]);
        q->ans[i].q = (ar_sig_str_t){qs, strlen(qs)};
        q->ans[i].a = (ar_sig_str_t){as, strlen(as)};
        watch(qs);
        watch(as);
    }
    r->nans = 2;
    return r;
}

static void test_record_end(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_rec_free(srv, patient(srv));
    assert_int_equal(freed_watched, 5);
    assert_int_equal(freed_unwiped, 0);
    ar_free(srv);
}

static void test_replaced(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_rec_t *r = patient(srv);
    /* What area.c's second arrive and rec.c's update do before taking the new ones. */
    ar__sig_name_wipe(&r->name);
    assert_null(r->name);
    ar__sig_answers_wipe(r, r->q);
    assert_int_equal(r->nans, 0);
    assert_int_equal(freed_watched, 5);
    assert_int_equal(freed_unwiped, 0);
    ar__sig_rec_free(srv, r);
    ar_free(srv);
}

/* An answer whose copy found no memory (NULL, its length set) is skipped, not wiped through. */
static void test_failed_copy(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_rec_t *r = patient(srv);
    ar__sig_recq_t *q = r->q;
    ar_free((void *)q->ans[1].a.p);
    q->ans[1].a.p = NULL; /* as ar_strndup leaves it; .len stays */
    ar__sig_answers_wipe(r, q);
    assert_int_equal(r->nans, 0);
    assert_int_equal(freed_watched, 4); /* the other three answers went with the wipe */
    assert_int_equal(freed_unwiped, 1); /* the block freed by hand above, not wiped */
    ar__sig_rec_free(srv, r);
    ar_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_end),
        cmocka_unit_test(test_replaced),
        cmocka_unit_test(test_failed_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
