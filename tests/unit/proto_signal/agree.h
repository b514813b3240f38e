/*
 * The ordered parse (flat.c, ar__sig_parse_ordered) against the pairs' parse (ar__sig_parse_flat)
 * on one frame: wherever the ordered parse reads a frame, the pairs' parse must read it too, to
 * the same message byte for byte (sdp_raw_, flat_ and flat_len_ included) and the same err. The
 * unit tests run it on every frame they have and the fuzz target on every input; it asks
 * nothing of cmocka.
 */
#ifndef AR_TEST_SIGNAL_AGREE_H
#define AR_TEST_SIGNAL_AGREE_H

#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* 1 when the ordered parse read the frame and agrees; 0 when it left it to the pairs' parse; -1
 * when the two disagree. Each message and err starts from a different fill, so a field that one
 * parse leaves unset shows. */
static inline int ordered_agrees(ar_sig_dir_t dir, const char *frame, size_t len, unsigned flags)
{
    ar_sig_msg_t a, b;
    ar_sig_err_t ea, eb;
    memset(&a, 0xa5, sizeof(a));
    memset(&ea, 0x5a, sizeof(ea));
    if (!ar__sig_parse_ordered(dir, frame, len, flags, &a, &ea))
        return 0;
    memset(&b, 0x3c, sizeof(b));
    memset(&eb, 0x5a, sizeof(eb));
    if (!ar__sig_parse_flat(dir, frame, len, flags, &b, &eb))
        return -1;
    return memcmp(&a, &b, sizeof(a)) == 0 && memcmp(&ea, &eb, sizeof(ea)) == 0 ? 1 : -1;
}

/* The same with both of the relay's flag sets: 1 when the ordered parse read the frame with
 * AR_SIG_PARSE_KEEP_SDP_JSON (and agreed both times), 0 when it left it, -1 on a disagreement
 * either way. The frame is read from a copy of exactly len bytes on the heap, so that a read
 * past its end shows under ASan (a test's string literal has its NUL there). */
static inline int ordered_agrees_both(ar_sig_dir_t dir, const char *frame, size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, frame, len);
    int kept = ordered_agrees(dir, copy, len, AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW);
    int decoded = ordered_agrees(dir, copy, len, AR_SIG_PARSE_BORROW);
    free(copy);
    return kept < 0 || decoded < 0 ? -1 : kept;
}

#endif
