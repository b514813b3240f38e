/*
 * Frames sent to peers, caught instead of published: for a test linked with
 * -Wl,--wrap=ar__sig_bus_to -Wl,--wrap=ar__sig_bus_sub_to (sent_capture.c defines both wraps;
 * a session's subscription is then a no-op), so that it can look at each frame built for a peer
 * and the action it carries.
 */
#ifndef AR_TEST_SENT_CAPTURE_H
#define AR_TEST_SENT_CAPTURE_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

#define SC_MAX 16
typedef struct sc_frame_s {
    char peer[AR__SIG_PEER_LEN + 1];
    uint8_t action;
    char frame[256];
    size_t len;
} sc_frame_t;
extern sc_frame_t sc_sent[SC_MAX];
extern size_t sc_nsent;

#endif
