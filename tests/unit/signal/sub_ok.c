/*
 * For a test linked with -Wl,--wrap=ar__sig_bus_sub_to whose workers have no bus: a session made
 * there (a resume's copy, an orphan promoted on a death) subscribes to its frames' subject as if
 * NATS had taken the subscription.
 */
#include "internal.h"

int __wrap_ar__sig_bus_sub_to(ar__sig_srv_t *srv, ar__sig_sess_t *s);
int __wrap_ar__sig_bus_sub_to(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    (void)srv;
    (void)s;
    return 0;
}
