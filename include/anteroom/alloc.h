/*
 * All project allocation goes through these functions so that tests can make the Nth allocation
 * fail (as SQLite's test_malloc.c and curl's torture tests do) and prove that every caller
 * returns AR_ENOMEM instead of crashing or leaking. Library code never aborts on NULL.
 */
#ifndef ANTEROOM_ALLOC_H
#define ANTEROOM_ALLOC_H

#include <stddef.h>

void *ar_malloc(size_t size);
void *ar_calloc(size_t count, size_t size);
void *ar_realloc(void *ptr, size_t size);
void ar_free(void *ptr);
/*
 * Wipes the whole block (every byte the allocator gave it, malloc_usable_size, which covers
 * whatever length the caller asked for) and frees it with ar_free; NULL does nothing. For
 * blocks that held personal data or secrets (P5, S4): one wipe that cannot miss a header or
 * a length kept elsewhere. Only for blocks from ar_malloc, ar_calloc or ar_realloc.
 */
void ar_free_wiped(void *ptr);
/*
 * For memory a caller maps and carves itself (signal's frame slabs): taking more of it counts as
 * one allocation for the test hook below. 0 when it may go ahead; -1 when the hook fails it,
 * counted as a failed malloc is (ar_alloc_failures).
 */
int ar_alloc_check(void);
/* A copy of len bytes of s followed by a NUL; NULL when out of memory. */
char *ar_strndup(const char *s, size_t len);

/*
 * How many allocations have failed on the calling thread since it started. A caller compares it
 * before and after a call into a library that reports an allocation failure as something else
 * (jansson's parser reports most as syntax errors) to return AR_ENOMEM all the same.
 */
unsigned long ar_alloc_failures(void);

/*
 * Test hook: after `countdown` more successful allocations, every allocation fails until the
 * hook is reset with a negative countdown. Thread-safe. Returns how many allocations failed
 * since the last call.
 */
long ar_alloc_fail_after(long countdown);

#endif
