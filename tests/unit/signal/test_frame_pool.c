/*
 * Frame blocks in slabs (frame_pool.c): a released block comes back, wiped, for the next frame
 * of its class; frames past 1 KiB come from malloc; a slab whose frames all went is handed back
 * to the kernel once it has been empty AR__SIG_SLAB_IDLE_S seconds, its pages no longer
 * resident; without memory a frame is refused, not crashed on.
 */
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

static ar__sig_frame_t *filled(ar__sig_srv_t *srv, size_t len)
{
    ar__sig_frame_t *f = ar__sig_frame_alloc(srv, len);
    assert_non_null(f);
    memset(f, 0x5a, sizeof(*f) + len + 1);
    f->len = (uint32_t)len;
    return f;
}

/* The next frame of the same class gets the block back, with nothing of the last one in it; one
 * of another class does not while the slab holds a frame. */
static void test_reused_wiped(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_frame_t *f = filled(srv, 150); /* 40 + 150 + 1 bytes: a 192-byte block */
    assert_int_equal(ar__sig_frame_cap(srv, f), 192);
    ar__sig_frame_t *k = filled(srv, 150); /* so that the slab does not empty (and change class) */
    ar__sig_frame_release(srv, f);
    ar__sig_frame_t *other = ar__sig_frame_alloc(srv, 600);
    assert_ptr_not_equal(other, f);
    ar__sig_frame_t *h = ar__sig_frame_alloc(srv, 135); /* 176 bytes: the class below */
    assert_ptr_not_equal(h, f);
    assert_int_equal(ar__sig_frame_cap(srv, h), 176);
    ar__sig_frame_t *g = ar__sig_frame_alloc(srv, 136); /* 177 bytes: the same 192 */
    assert_ptr_equal(g, f);
    static const unsigned char zero[192];
    assert_memory_equal(g, zero, 192);
    ar__sig_frame_release(srv, h);
    ar__sig_frame_release(srv, g);
    ar__sig_frame_release(srv, other);
    ar__sig_frame_release(srv, k);
    su_srv_free(srv);
}

/* A frame past the largest class (1,024 bytes) comes from malloc and goes back to it; one that
 * fills the largest block exactly is a slab's. */
static void test_large_from_malloc(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_frame_t *big = filled(srv, 4000), *edge = filled(srv, 984), *top = filled(srv, 983);
    assert_true(ar__sig_frame_cap(srv, big) >= 4041);
    assert_true(ar__sig_frame_cap(srv, edge) >= 1025);
    assert_int_equal(ar__sig_frame_cap(srv, top), 1024);
    assert_int_equal(ar__sig_frame_slabs_resident(srv), 1); /* top's slab alone */
    ar__sig_frame_release(srv, big);
    ar__sig_frame_release(srv, edge);
    ar__sig_frame_release(srv, top);
    su_srv_free(srv);
}

/* How many of the pages from p for n bytes are resident. */
static size_t resident_pages(const void *p, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), k = n / page, in = 0;
    unsigned char v[64];
    assert_true(k <= sizeof(v) && (uintptr_t)p % page == 0);
    assert_int_equal(mincore((void *)p, n, v), 0);
    for (size_t i = 0; i < k; i++)
        in += v[i] & 1;
    return in;
}

/* Slabs whose frames all went are handed back AR__SIG_SLAB_IDLE_S seconds later, their pages no
 * longer resident; a slab with one frame left stays; the memory serves again afterwards. */
static void test_empty_slabs_handed_back(void **state)
{
    (void)state;
    enum { N = 300 }; /* 192-byte blocks, 85 a 16 KiB slab: four slabs */
    size_t slab = (size_t)1 << AR__SIG_SLAB_SHIFT;
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_frame_t *f[N];
    for (int i = 0; i < N; i++)
        f[i] = filled(srv, 150);
    assert_int_equal(ar__sig_frame_slabs_resident(srv), 4);
    char *first = (char *)f[0]; /* the first block of the first slab */
    assert_true(resident_pages(first, slab) > 0);
    for (int i = 1; i < N; i++) /* f[0] still held: its slab stays */
        ar__sig_frame_release(srv, f[i]);
    ar__sig_frame_slabs_tick(srv);
    assert_int_equal(ar__sig_frame_slabs_resident(srv), 4); /* empty only now */
    srv->now += AR__SIG_SLAB_IDLE_S - 1;
    ar__sig_frame_slabs_tick(srv);
    assert_int_equal(ar__sig_frame_slabs_resident(srv), 4);
    srv->now += 1;
    ar__sig_frame_slabs_tick(srv);
    assert_int_equal(ar__sig_frame_slabs_resident(srv), 1);
    char *second = first + slab; /* the next slab in the region, handed back */
    assert_int_equal(resident_pages(second, slab), 0);
    assert_true(resident_pages(first, slab) > 0);

    ar__sig_frame_release(srv, f[0]);
    srv->now += AR__SIG_SLAB_IDLE_S;
    ar__sig_frame_slabs_tick(srv);
    assert_int_equal(ar__sig_frame_slabs_resident(srv), 0);
    assert_int_equal(resident_pages(first, slab), 0);

    /* Again, from the slabs handed back: zero pages, whole blocks. */
    static const unsigned char zero[192];
    for (int i = 0; i < N; i++) {
        f[i] = ar__sig_frame_alloc(srv, 150);
        assert_non_null(f[i]);
        assert_memory_equal(f[i], zero, 192);
    }
    assert_int_equal(ar__sig_frame_slabs_resident(srv), 4);
    for (int i = 0; i < N; i++)
        ar__sig_frame_release(srv, f[i]);
    su_srv_free(srv);
}

/* A slab that has a free block serves a class whatever the allocation hook says (memory the
 * worker holds), a new slab counts as an allocation: without memory the frame is refused. */
static void test_no_memory(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    /* No memory for the slabs' descriptors at the first frame: that frame is refused, and the
     * slabs are tried again at the next (not given up for good). */
    ar_alloc_fail_after(0);
    assert_null(ar__sig_frame_alloc(srv, 150));
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_int_equal(ar__sig_frame_slabs_resident(srv), 0);
    ar__sig_frame_t *f = filled(srv, 150);
    assert_int_equal(ar__sig_frame_slabs_resident(srv), 1);
    ar_alloc_fail_after(0);
    ar__sig_frame_t *g = ar__sig_frame_alloc(srv, 150); /* the same slab */
    ar__sig_frame_t *h = ar__sig_frame_alloc(srv, 300); /* a new slab, then malloc */
    long failed = ar_alloc_fail_after(-1);
    assert_non_null(g);
    assert_null(h);
    assert_int_equal(failed, 2);
    ar__sig_frame_release(srv, g);
    ar__sig_frame_release(srv, f);
    su_srv_free(srv);
}

/* A worker freed while a frame is held keeps the region (a stopping worker leaves sessions to its
 * backups): the frame can still be read and released. */
static void test_free_with_a_frame_held(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_frame_t *f = filled(srv, 100);
    ar__sig_frame_pool_free(srv);
    assert_int_equal(f->len, 100);
    assert_int_equal(ar__sig_frame_slabs_resident(srv), 1);
    ar__sig_frame_release(srv, f);
    su_srv_free(srv); /* now unmapped (LeakSanitizer: the descriptors freed) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reused_wiped),
        cmocka_unit_test(test_large_from_malloc),
        cmocka_unit_test(test_empty_slabs_handed_back),
        cmocka_unit_test(test_no_memory),
        cmocka_unit_test(test_free_with_a_frame_held),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
