/*
 * ar_free_wiped lives apart from alloc.c on purpose: its call to ar_free is then a reference
 * the linker resolves, so tests that wrap ar_free (-Wl,--wrap=ar_free, signal_test_wipe and
 * core_test_alloc_wiped) see every wiped block freed, already wiped.
 */
#include "anteroom/alloc.h"

#include <malloc.h>
#include <sodium.h>

void ar_free_wiped(void *ptr)
{
    if (!ptr)
        return;
    sodium_memzero(ptr, malloc_usable_size(ptr));
    ar_free(ptr);
}
