/*
 * A patient's name and typed answers are wiped before their memory goes back (P2, S4;
 * docs/signal.md, "State"): when the record ends, when a second arrive replaces them, when a
 * record update brings new ones; what jansson parsed, and a bus inbox item, when freed. ar_free
 * is wrapped at link time (-Wl,--wrap=ar_free) to look at each watched block just before it is
 * freed, or at every block for a marker string.
 */
#include "bus_worker.h"
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

void __real_ar_free(void *p);
void __wrap_ar_free(void *p);

/* The blocks watched, their lengths, and how many were freed with a byte left in them. */
#define WATCH_MAX 8
static const void *watched[WATCH_MAX];
static size_t watched_len[WATCH_MAX];
static int nwatched, freed_watched, freed_unwiped;

/* While marker is set: blocks freed (that the allocator sized), and those still holding it. */
static const char *marker;
static int freed_scanned, freed_marked;

void __wrap_ar_free(void *p)
{
    if (p && marker) {
        freed_scanned++;
        if (memmem(p, malloc_usable_size(p), marker, strlen(marker)))
            freed_marked++;
    }
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

static char *dup_str(const char *s)
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
    q->name = dup_str("Alice Example");
    watch(q->name);
    q->ans = ar_calloc(2, sizeof(*q->ans));
    assert_non_null(q->ans);
    const char *text[4] = {"reason", "chest pain", "allergies", "penicillin"};
    for (int i = 0; i < 2; i++) {
        char *qs = dup_str(text[2 * i]), *as = dup_str(text[2 * i + 1]);
        q->ans[i].q = (ar_sig_str_t){qs, strlen(qs)};
        q->ans[i].a = (ar_sig_str_t){as, strlen(as)};
        watch(qs);
        watch(as);
    }
    q->nans = 2;
    return r;
}

static void test_record_end(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_rec_free(srv, patient(srv));
    assert_int_equal(freed_watched, 5);
    assert_int_equal(freed_unwiped, 0);
    su_srv_free(srv);
}

static void test_replaced(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_rec_t *r = patient(srv);
    /* What area.c's second arrive and rec.c's update do before taking the new ones. */
    ar__sig_name_wipe(&r->q->name);
    assert_null(ar__sig_rec_name(r));
    ar__sig_answers_wipe(r->q);
    assert_int_equal(r->q->nans, 0);
    assert_int_equal(freed_watched, 5);
    assert_int_equal(freed_unwiped, 0);
    ar__sig_rec_free(srv, r);
    su_srv_free(srv);
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
    ar__sig_answers_wipe(q);
    assert_int_equal(q->nans, 0);
    assert_int_equal(freed_watched, 4); /* the other three answers went with the wipe */
    assert_int_equal(freed_unwiped, 1); /* the block freed by hand above, not wiped */
    ar__sig_rec_free(srv, r);
    su_srv_free(srv);
}

/* A staff member's name from the bus, the record's only queue fact (internal.h, ar__sig_recq_t):
 * wiped when an update clears it, and when the record ends. */
static void apply_name(ar__sig_srv_t *srv, const char *name)
{
    json_t *o = json_pack("{s:s,s:s,s:i,s:s}", "o", "0000000000000009", "p", su_peer('s'), "role",
                          AR_SIG_ROLE_STAFF, "name", name);
    assert_non_null(o);
    ar__sig_rec_apply(srv, o);
    json_decref(o);
}

static void test_staff_name(void **state)
{
    (void)state;
    ar_sig_init();
    ar__sig_srv_t *srv = su_srv_new(1);
    nwatched = freed_watched = freed_unwiped = 0;
    apply_name(srv, "Dr Ana Example");
    ar__sig_rec_t *r = ar__sig_rec_find(srv, su_peer('s'));
    assert_non_null(r);
    assert_non_null(ar__sig_rec_name(r));
    watch(ar__sig_rec_name(r));
    apply_name(srv, "");
    assert_null(ar__sig_rec_name(r));
    assert_int_equal(freed_watched, 1);
    apply_name(srv, "Dr Bo Example");
    watch(ar__sig_rec_name(r));
    ar__sig_rec_free(srv, r);
    assert_int_equal(freed_watched, 2);
    assert_int_equal(freed_unwiped, 0);
    su_srv_free(srv);
}

static void scan_for(const char *m)
{
    marker = m;
    freed_scanned = freed_marked = 0;
}

/* A patient's arrive as the codec parses it (jansson's tree and strings): once freed, no block
 * holds the name or an answer. */
static void test_parsed_json(void **state)
{
    (void)state;
    ar_sig_init();
    static const char frame[] = "{\"v\":1,\"type\":\"arrive\",\"clinic\":\"c1\",\"area\":\"knee\","
                                "\"name\":\"Quentin Marker-7Q\",\"consent\":true,"
                                "\"answers\":[{\"q\":\"reason\",\"a\":\"Marker-7Q hurts\"}]}";
    ar_sig_msg_t m;
    ar_sig_err_t err;
    scan_for("Marker-7Q");
    assert_int_equal(ar_sig_parse(AR_SIG_FROM_CLIENT, frame, sizeof(frame) - 1, &m, &err), 0);
    assert_int_equal((int)m.u.arrive.name.len, 17);
    ar_sig_msg_free(&m);
    marker = NULL;
    assert_true(freed_scanned > 0);
    assert_int_equal(freed_marked, 0);
}

/* A record update from the bus (a name in it) in a worker's inbox: wiped when handled. */
static void test_inbox_item(void **state)
{
    (void)state;
    ar_sig_init();
    su_worker_t w = {0};
    w.conf.admit_lag = 60000;
    su_worker_new(&w, 1, 0, 1 << 20);
    char subj[64], rec[256];
    snprintf(subj, sizeof(subj), "ar.eu.sess.%s", su_peer('p'));
    int n = snprintf(rec, sizeof(rec),
                     "{\"k\":\"upd\",\"p\":\"%s\",\"name\":\"Quentin Marker-7Q\"}", su_peer('p'));
    scan_for("Marker-7Q");
    ar__sig_bus_put(w.srv->bus, subj, rec, (size_t)n);
    ar__sig_bus_wake(w.srv);
    marker = NULL;
    assert_true(freed_scanned > 0);
    assert_int_equal(freed_marked, 0);
    su_worker_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_end),  cmocka_unit_test(test_replaced),
        cmocka_unit_test(test_failed_copy), cmocka_unit_test(test_parsed_json),
        cmocka_unit_test(test_inbox_item),  cmocka_unit_test(test_staff_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
