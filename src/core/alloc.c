#include "anteroom/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Negative: hook off. Otherwise the number of allocations still allowed to succeed. */
static _Atomic long fail_countdown = -1;
static _Atomic long failed_count = 0;
/* Per thread, so that a parse on one thread never sees another thread's failures. */
static _Thread_local unsigned long thread_failures;

static void *counted(void *p)
{
    if (p == NULL)
        thread_failures++;
    return p;
}

unsigned long ar_alloc_failures(void)
{
    return thread_failures;
}

static int should_fail(void)
{
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n < 0)
        return 0;
    if (n == 0) {
        atomic_fetch_add(&failed_count, 1);
        return 1;
    }
    /* Another thread may race us past zero; that only makes a later allocation fail. */
    atomic_fetch_sub(&fail_countdown, 1);
    return 0;
}

int ar_alloc_check(void)
{
    if (should_fail()) {
        thread_failures++;
        return -1;
    }
    return 0;
}

void *ar_malloc(size_t size)
{
    if (should_fail())
        return counted(NULL);
    return counted(malloc(size ? size : 1));
}

void *ar_calloc(size_t count, size_t size)
{
    if (should_fail())
        return counted(NULL);
    return counted(calloc(count ? count : 1, size ? size : 1));
}

void *ar_realloc(void *ptr, size_t size)
{
    if (should_fail())
        return counted(NULL);
    return counted(realloc(ptr, size ? size : 1));
}

void ar_free(void *ptr)
{
    free(ptr);
}

char *ar_strndup(const char *s, size_t len)
{
    char *copy = ar_malloc(len + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

long ar_alloc_fail_after(long countdown)
{
    atomic_store(&fail_countdown, countdown);
    return atomic_exchange(&failed_count, 0);
}
