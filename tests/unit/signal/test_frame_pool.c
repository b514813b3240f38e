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
    assert_int_equal(srv->frame_pool_bytes, 192); /* 40 + 150 + 1, rounded up to 64s */
    ar__sig_frame_t *other = ar__sig_frame_alloc(srv, 600);
    assert_ptr_not_equal(other, f);
    ar__sig_frame_t *g = ar__sig_frame_alloc(srv, 140); /* 181 bytes: the same 192 */
    assert_ptr_equal(g, f);
    assert_int_equal(srv->frame_pool_bytes, 0);
    static const unsigned char zero[192];
    assert_memory_equal(g, zero, 192);
    ar__sig_frame_release(srv, g);
    ar__sig_frame_release(srv, other);
    su_srv_free(srv);
}

/* A frame past the largest class is freed, not kept; the kept bytes never pass the bound. */
static void test_bounded(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_frame_release(srv, filled(srv, 4000));
    assert_int_equal(srv->frame_pool_bytes, 0);
    size_t n = AR__SIG_FRAME_POOL_BYTES / 900 + 8;
    ar__sig_frame_t **fs = ar_calloc(n, sizeof(*fs));
    assert_non_null(fs);
    for (size_t i = 0; i < n; i++)
        fs[i] = filled(srv, 900);
    for (size_t i = 0; i < n; i++)
        ar__sig_frame_release(srv, fs[i]);
    /* 941 bytes each, kept at 960: as many as fit in the bound */
    assert_int_equal(srv->frame_pool_bytes, AR__SIG_FRAME_POOL_BYTES / 960 * 960);
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
