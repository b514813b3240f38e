#include "sent_capture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

sc_frame_t sc_sent[SC_MAX];
size_t sc_nsent;

int __wrap_ar__sig_bus_sub_to(ar__sig_srv_t *srv, ar__sig_sess_t *s);
int __wrap_ar__sig_bus_sub_to(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    (void)srv;
    (void)s;
    return 0; /* no bus to subscribe on */
}

void __wrap_ar__sig_bus_to(ar__sig_srv_t *srv, const char *peer, uint8_t action, size_t len);
void __wrap_ar__sig_bus_to(ar__sig_srv_t *srv, const char *peer, uint8_t action, size_t len)
{
    assert_true(sc_nsent < SC_MAX);
    assert_true(len < sizeof(sc_sent[0].frame));
    snprintf(sc_sent[sc_nsent].peer, sizeof(sc_sent[0].peer), "%s", peer);
    sc_sent[sc_nsent].action = action;
    memcpy(sc_sent[sc_nsent].frame, srv->pub + AR__SIG_TO_HDR, len);
    sc_sent[sc_nsent].frame[len] = '\0';
    sc_sent[sc_nsent++].len = len;
}
