/*
 * Frame blocks kept for reuse (frame_pool.c): a released block comes back, wiped, for the next
 * frame of its capacity; blocks past 1 KiB and past the worker's bound go back to malloc; what
 * is kept is freed with the worker (su_srv_free, under LeakSanitizer in the ASan build).
 */
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static ar__sig_frame_t *filled(ar__sig_srv_t *srv, size_t len)
{
    ar__sig_frame_t *f = ar__sig_frame_alloc(srv, len);
    assert_non_null(f);
    memset(f, 0x5a, sizeof(*f) + len + 1);
    f->len = (uint32_t)len;
    return f;
}

/* The next frame of the same capacity gets the block back, with nothing of the last one in it;
 * one of another capacity does not. */
static void test_reused_wiped(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_frame_t *f = filled(srv, 150);
    ar__sig_frame_release(srv, f);
    /* 40 + 150 + 1 bytes: kept at 200, what fills a 208-byte chunk (64-byte steps kept 192 in
     * a 208-byte chunk, 300 in a 320-byte one) */
    assert_int_equal(srv->frame_pool_bytes, 200);
    ar__sig_frame_t *other = ar__sig_frame_alloc(srv, 600);
    assert_ptr_not_equal(other, f);
    ar__sig_frame_t *h = ar__sig_frame_alloc(srv, 140); /* 181 bytes: the class below, 184 */
    assert_ptr_not_equal(h, f);
    ar__sig_frame_t *g = ar__sig_frame_alloc(srv, 145); /* 186 bytes: the same 200 */
    assert_ptr_equal(g, f);
    assert_int_equal(srv->frame_pool_bytes, 0);
    static const unsigned char zero[200];
    assert_memory_equal(g, zero, 200);
    ar__sig_frame_release(srv, h);
    ar__sig_frame_release(srv, g);
    ar__sig_frame_release(srv, other);
    su_srv_free(srv);
}

/* A frame past the largest class (1,016 bytes, a 1,024-byte chunk) is freed, not kept; the kept
 * bytes never pass the bound. */
static void test_bounded(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_frame_release(srv, filled(srv, 4000));
    assert_int_equal(srv->frame_pool_bytes, 0);
    ar__sig_frame_release(srv, filled(srv, 976)); /* 1,017 bytes */
    assert_int_equal(srv->frame_pool_bytes, 0);
    ar__sig_frame_release(srv, filled(srv, 975)); /* 1,016 */
    assert_int_equal(srv->frame_pool_bytes, 1016);
    ar__sig_frame_pool_free(srv);
    size_t n = AR__SIG_FRAME_POOL_BYTES / 900 + 8;
    ar__sig_frame_t **fs = ar_calloc(n, sizeof(*fs));
    assert_non_null(fs);
    for (size_t i = 0; i < n; i++)
        fs[i] = filled(srv, 900);
    for (size_t i = 0; i < n; i++)
        ar__sig_frame_release(srv, fs[i]);
    /* 941 bytes each, kept at 952 (a 960-byte chunk): as many as fit in the bound */
    assert_int_equal(srv->frame_pool_bytes, AR__SIG_FRAME_POOL_BYTES / 952 * 952);
    ar_free(fs);
    su_srv_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reused_wiped),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
