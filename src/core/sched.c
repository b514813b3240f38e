/* The event-loop threads' scheduling policy: include/anteroom/sched.h says why. */
#include "anteroom/sched.h"

#include "anteroom/err.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>

int ar_sched_batch(void)
{
    struct sched_param sp = {0};
    int policy = SCHED_OTHER;
    int rc = pthread_getschedparam(pthread_self(), &policy, &sp);
    if (rc != 0) { /* refused: not "another policy kept", which the caller takes as fine */
        errno = rc;
        return AR_ESYS;
    }
    if (policy != SCHED_OTHER)
        return policy == SCHED_BATCH ? 0 : 1;
    sp.sched_priority = 0;
    rc = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    if (rc == 0)
        return 0;
    errno = rc;
    return AR_ESYS;
}
