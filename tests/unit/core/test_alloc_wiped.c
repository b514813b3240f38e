/*
 * ar_free_wiped (src/core/alloc_wiped.c): every byte of the block, up to the allocator's usable
 * size and not only the length asked for, is zero when the block reaches ar_free, and NULL is
 * no call at all. ar_free is wrapped at link time (CMakeLists.txt) to look at each block just
 * before it goes back.
 */
#include "anteroom/alloc.h"

#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static int freed;         /* blocks that reached ar_free */
static int freed_dirty;   /* of those, with a byte left in them */
static size_t freed_size; /* the last one's usable size */

void __real_ar_free(void *p);
void __wrap_ar_free(void *p);
void __wrap_ar_free(void *p)
{
    if (p) {
        freed++;
        freed_size = malloc_usable_size(p);
        for (size_t i = 0; i < freed_size; i++)
            if (((const unsigned char *)p)[i] != 0) {
                freed_dirty++;
                break;
            }
    }
    __real_ar_free(p);
}

static void test_block_wiped_whole(void **state)
{
    (void)state;
    /* Odd lengths, so that the usable size is longer than asked for in most allocators. */
    static const size_t lens[] = {1, 13, 100, 4093};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        freed = freed_dirty = 0;
        unsigned char *p = ar_malloc(lens[k]);
        assert_non_null(p);
        size_t usable = malloc_usable_size(p);
        assert_true(usable >= lens[k]);
        memset(p, 0xA5, usable); /* the slack too: a wipe of only lens[k] bytes is caught */
        ar_free_wiped(p);
        assert_int_equal(freed, 1);
        assert_int_equal(freed_size, usable);
        assert_int_equal(freed_dirty, 0);
    }
}

/* The check above can fail: a plain ar_free of a written block is seen dirty. */
static void test_plain_free_seen_dirty(void **state)
{
    (void)state;
    freed = freed_dirty = 0;
    char *p = ar_strndup("a secret", 8);
    assert_non_null(p);
    ar_free(p);
    assert_int_equal(freed, 1);
    assert_int_equal(freed_dirty, 1);
}

static void test_null(void **state)
{
    (void)state;
    freed = freed_dirty = 0;
    ar_free_wiped(NULL);
    assert_int_equal(freed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_wiped_whole),
        cmocka_unit_test(test_plain_free_seen_dirty),
        cmocka_unit_test(test_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
