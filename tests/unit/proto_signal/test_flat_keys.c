/*
 * The flat parse's key matching (flat.c, ar__sig_flat_rows) names the same rows a search of the
 * field tables does: for each direction and flat type, the first row of the envelope and the
 * first of the type's table whose key is spelt exactly so, or none. Asked with every key of
 * every table, and with near misses of each (one byte changed, one byte short, one more, a NUL
 * inside, the empty key), which a matching on length or on first and last bytes alone would
 * take for a known key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <stdio.h>
#include <string.h>

/* The first row of t spelt k[0..n), or -1: the search the flat parse's index stands for. */
static int search(const ar__sig_table_t *t, const char *k, size_t n)
{
    for (size_t r = 0; t != NULL && r < t->count; r++) {
        const char *key = t->fields[r].key;
        if (key != NULL && strlen(key) == n && memcmp(key, k, n) == 0)
            return (int)r;
    }
    return -1;
}

static const int flat[] = {AR_SIG_OFFER, AR_SIG_ANSWER, AR_SIG_CANDIDATE,
                           AR_SIG_ACK,   AR_SIG_PING,   AR_SIG_PONG};

/* k[0..n) asked of every flat type in both directions, checked against the search. */
static void ask(const char *k, size_t n, int *hits)
{
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof(flat) / sizeof(flat[0]); i++) {
            const ar__sig_table_t *t = ar__sig_types[flat[i]].table[d];
            int env_row, row;
            int rc = ar__sig_flat_rows((ar_sig_dir_t)d, flat[i], k, n, &env_row, &row);
            if (t == NULL) {
                assert_int_equal(rc, -1);
                continue;
            }
            assert_int_equal(rc, 0);
            int want_env = search(&ar__sig_envelope[d], k, n), want = search(t, k, n);
            if (env_row != want_env || row != want)
                fail_msg("dir %d type %d key \"%.*s\" (%zu bytes): rows %d/%d, the search %d/%d", d,
                         flat[i], (int)n, k, n, env_row, row, want_env, want);
            *hits += row >= 0 || env_row >= 0;
        }
}

/* Every key of every table and its near misses. */
static void test_same_rows_as_search(void **state)
{
    (void)state;
    int hits = 0;
    ask("", 0, &hits);
    for (int t = 0; t < AR_SIG_TYPE_COUNT + 1; t++)
        for (int d = 0; d < 2; d++) {
            const ar__sig_table_t *tab =
                t < AR_SIG_TYPE_COUNT ? ar__sig_types[t].table[d] : &ar__sig_envelope[d];
            for (size_t r = 0; tab != NULL && r < tab->count; r++) {
                const char *key = tab->fields[r].key;
                if (key == NULL)
                    continue;
                size_t n = strlen(key);
                char k[64];
                assert_true(n + 2 < sizeof(k));
                ask(key, n, &hits);
                ask(key, n - 1, &hits); /* a prefix */
                for (size_t i = 0; i < n; i++) {
                    memcpy(k, key, n);
                    k[i] = (char)(k[i] + 1);
                    ask(k, n, &hits);
                    k[i] = (char)(k[i] - 2);
                    ask(k, n, &hits);
                    k[i] = '\0';
                    ask(k, n, &hits);
                }
                memcpy(k, key, n);
                k[n] = 'x';
                ask(k, n + 1, &hits);
                k[n] = '\0';
                ask(k, n + 1, &hits);
                /* First and last bytes and length kept, the middle changed. */
                if (n >= 3) {
                    memcpy(k, key, n);
                    memset(k + 1, 'Q', n - 2);
                    ask(k, n, &hits);
                }
            }
        }
    /* The relayed types' own keys were found, in both directions. */
    assert_true(hits > 40);
}

/* A ping or a pong is read flat under its exact name only: a name one byte short, one longer
 * or one byte off goes to the full parse (which refuses it). */
static void test_type_names(void **state)
{
    (void)state;
    static const char *const near[] = {"",      "p",      "pin",   "pon",      "pingg", "pongg",
                                       "ping ", "pinf",   "ponh",  "qing",     "Ping",  "pingping",
                                       "offe",  "offerr", "answe", "candidat", "ackk"};
    char frame[96];
    ar_sig_msg_t m;
    ar_sig_err_t e;
    for (int d = 0; d < 2; d++) {
        const char *env = d == AR_SIG_FROM_SERVER ? ",\"seq\":0" : ""; /* required there */
        int len = snprintf(frame, sizeof(frame), "{\"v\":1,\"type\":\"ping\",\"t\":5%s}", env);
        assert_int_equal(ar__sig_parse_flat((ar_sig_dir_t)d, frame, (size_t)len, 0, &m, &e), 1);
        assert_int_equal(m.type, AR_SIG_PING);
        len = snprintf(frame, sizeof(frame), "{\"v\":1,\"type\":\"pong\",\"t\":5%s}", env);
        assert_int_equal(ar__sig_parse_flat((ar_sig_dir_t)d, frame, (size_t)len, 0, &m, &e), 1);
        assert_int_equal(m.type, AR_SIG_PONG);
        for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
            len =
                snprintf(frame, sizeof(frame), "{\"v\":1,\"type\":\"%s\",\"t\":5%s}", near[i], env);
            if (ar__sig_parse_flat((ar_sig_dir_t)d, frame, (size_t)len, 0, &m, &e) != 0)
                fail_msg("type \"%s\" read flat", near[i]);
        }
    }
}

/* Types never parsed flat: no rows. */
static void test_other_types(void **state)
{
    (void)state;
    int env_row, row;
    assert_int_equal(ar__sig_flat_rows(AR_SIG_FROM_CLIENT, AR_SIG_JOIN, "room", 4, &env_row, &row),
                     -1);
    assert_int_equal(env_row, -1);
    assert_int_equal(row, -1);
    assert_int_equal(ar__sig_flat_rows(AR_SIG_FROM_SERVER, AR_SIG_ACK, "seq", 3, &env_row, &row),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_rows_as_search),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_other_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
