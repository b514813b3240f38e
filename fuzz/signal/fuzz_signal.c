/*
 * Signalling frames come from anyone (mission S9). The first input byte picks the direction
 * ('s': a server frame, anything else: a client frame), the rest is the frame. Beyond "no
 * crash", it checks the codec's promises:
 *   - a refusal carries a code and a text, and that text makes a valid error frame;
 *   - an accepted frame rebuilds (never larger than it came), and the rebuilt frame parses to
 *     a fixed point;
 *   - an accepted client offer, answer or candidate relays: rebuilt as a server frame with the
 *     longest peer id and sequence number, it still fits a server frame;
 *   - the relay's parse (AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW: the SDP kept as
 *     sent, flat frames read without jansson) gives the full parse's answer: the same refusal,
 *     or a message that builds to the same frame once its kept SDP is decoded;
 *   - a client offer, answer or candidate the flat parse read relays from its own bytes
 *     (ar_sig_build_relay) to exactly the builder's frame, and is refused as too big at exactly
 *     the builder's size; one the full parse read is left to the builder;
 *   - the ordered parse (frames in the clients' order, ar__sig_parse_ordered) reads a frame only
 *     where the pairs' parse (ar__sig_parse_flat) reads it too, to the same message and err,
 *     with either flag set (tests/unit/proto_signal/agree.h).
 */
#include "signal/signal.h"

#include "agree.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char out1[AR_SIG_OUT_MAX + 1];
static char out2[AR_SIG_OUT_MAX + 1];
static char out3[AR_SIG_OUT_MAX + 1];
static char out4[AR_SIG_OUT_MAX + 1];
static char out5[AR_SIG_OUT_MAX + 1];

/* The peer of a relayed offer, answer or candidate ("to" or "from"); NULL for any other type. */
static ar_sig_str_t *relay_peer(ar_sig_msg_t *m)
{
    if (m->type == AR_SIG_OFFER || m->type == AR_SIG_ANSWER)
        return &m->u.sdp.peer;
    return m->type == AR_SIG_CANDIDATE ? &m->u.cand.peer : NULL;
}

/* The relay of a client frame f read by the relay's parse: from the client's bytes when the
 * flat parse read it, the builder's frame byte for byte, at the server's cap (AR_SIG_OUT_MAX less
 * what the seq and fid splice adds, src/signal/internal.h) and one byte short of the frame. */
static void check_relay_build(ar_sig_msg_t *f)
{
    ar_sig_str_t *peer = relay_peer(f);
    if (peer == NULL)
        return;
    static const char from[] = "Ab-_0123456789abcdefgh";
    *peer = (ar_sig_str_t){from, sizeof(from) - 1};
    f->seq = 0;
    size_t cap = AR_SIG_OUT_MAX + 1 - (15 + 8 + AR_SIG_FID_LEN + 1);
    int n = ar_sig_build_relay(f, out4, cap);
    int b = ar_sig_build(AR_SIG_FROM_SERVER, f, out5, cap);
    if ((f->flat_ != NULL) != (n != 0) || b == AR_EINVAL)
        __builtin_trap();
    if (n != 0 && (n != b || (n > 0 && memcmp(out5, out4, (size_t)n + 1) != 0)))
        __builtin_trap();
    if (n > 0 && (ar_sig_build_relay(f, out4, (size_t)n) != AR_ETOOBIG ||
                  ar_sig_build(AR_SIG_FROM_SERVER, f, out5, (size_t)n) != AR_ETOOBIG))
        __builtin_trap();
}

/* The relay's parse against the full one (rc, err: the full parse's answer; m: its message). */
static void check_relay_parse(ar_sig_dir_t dir, const char *frame, size_t len, int rc,
                              const ar_sig_err_t *err, const ar_sig_msg_t *m)
{
    ar_sig_msg_t f, g;
    ar_sig_err_t e;
    int r =
        ar_sig_parse2(dir, frame, len, AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW, &f, &e);
    if (r == AR_ENOMEM || rc == AR_ENOMEM)
        return;
    if (r != rc || e.type != err->type || e.id != err->id)
        __builtin_trap();
    if (r != 0) {
        if (e.code != err->code || strcmp(e.text, err->text) != 0)
            __builtin_trap();
        return;
    }
    int n = ar_sig_build(dir, &f, out3, sizeof(out3));
    if (n <= 0)
        __builtin_trap();
    if (dir == AR_SIG_FROM_CLIENT)
        check_relay_build(&f);
    ar_sig_msg_free(&f);
    /* A kept SDP is written back escaped as it came: decode it through the full parse. */
    if (ar_sig_parse(dir, out3, (size_t)n, &g, &e) != 0)
        __builtin_trap();
    int n3 = ar_sig_build(dir, &g, out3, sizeof(out3));
    int n1 = ar_sig_build(dir, m, out2, sizeof(out2));
    ar_sig_msg_free(&g);
    if (n3 != n1 || n1 <= 0 || memcmp(out2, out3, (size_t)n1) != 0)
        __builtin_trap();
}

static void check_refusal(const ar_sig_err_t *err)
{
    if (err->code <= 0 || err->text[0] == '\0')
        __builtin_trap();
    ar_sig_msg_t e;
    ar_sig_error_msg(&e, err);
    if (ar_sig_build(AR_SIG_FROM_SERVER, &e, out1, sizeof(out1)) <= 0)
        __builtin_trap();
}

static void check_relay(ar_sig_msg_t *m)
{
    static const char longest[] = "ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp";
    ar_sig_str_t *peer = relay_peer(m);
    if (peer == NULL)
        return;
    ar_sig_str_t keep = *peer;
    *peer = (ar_sig_str_t){longest, sizeof(longest) - 1};
    m->seq = 9007199254740991LL;
    if (ar_sig_build(AR_SIG_FROM_SERVER, m, out1, sizeof(out1)) <= 0)
        __builtin_trap();
    *peer = keep;
    m->seq = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        ar_sig_init();
        ready = 1;
    }
    if (size == 0)
        return 0;
    ar_sig_dir_t dir = data[0] == 's' ? AR_SIG_FROM_SERVER : AR_SIG_FROM_CLIENT;
    const char *frame = (const char *)data + 1;
    size_t len = size - 1;

    ar_sig_msg_t m, again;
    ar_sig_err_t err;
    if (ordered_agrees_both(dir, frame, len) < 0)
        __builtin_trap();
    int rc = ar_sig_parse(dir, frame, len, &m, &err);
    if (rc == AR_ENOMEM)
        return 0;
    check_relay_parse(dir, frame, len, rc, &err, rc == 0 ? &m : NULL);
    if (rc != 0) {
        check_refusal(&err);
        return 0;
    }
    int n1 = ar_sig_build(dir, &m, out1, sizeof(out1));
    if (n1 <= 0 || (size_t)n1 > len)
        __builtin_trap();
    if (ar_sig_parse(dir, out1, (size_t)n1, &again, &err) != 0)
        __builtin_trap();
    int n2 = ar_sig_build(dir, &again, out2, sizeof(out2));
    if (n2 != n1 || memcmp(out1, out2, (size_t)n1) != 0)
        __builtin_trap();
    if (dir == AR_SIG_FROM_CLIENT)
        check_relay(&m);
    ar_sig_msg_free(&again);
    ar_sig_msg_free(&m);
    return 0;
}
