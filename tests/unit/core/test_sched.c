/*
 * ar_sched_batch (src/core/sched.c) when the system refuses to say the thread's policy:
 * AR_ESYS with errno set, as its header promises for a refusal, not 1 ("another policy kept"),
 * which callers take as fine. pthread_getschedparam is wrapped at link time (CMakeLists.txt).
 */
#include "anteroom/err.h"
#include "anteroom/sched.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static int refuse; /* the error pthread_getschedparam returns; 0: the real one answers */

int __real_pthread_getschedparam(pthread_t t, int *policy, struct sched_param *sp);
int __wrap_pthread_getschedparam(pthread_t t, int *policy, struct sched_param *sp);
int __wrap_pthread_getschedparam(pthread_t t, int *policy, struct sched_param *sp)
{
    if (refuse)
        return refuse;
    return __real_pthread_getschedparam(t, policy, sp);
}

static void test_getschedparam_refused(void **state)
{
    (void)state;
    refuse = EPERM;
    errno = 0;
    assert_int_equal(ar_sched_batch(), AR_ESYS);
    assert_int_equal(errno, EPERM);
    refuse = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_getschedparam_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
