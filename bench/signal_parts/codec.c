/*
 * CPU per relayed offer in the codec: the full parse (jansson decodes the SDP), the relay parse
 * (ar_sig_parse2 with AR_SIG_PARSE_KEEP_SDP_JSON: the SDP checked and kept as sent) and the
 * server frame built from each, for a browser-sized offer (about 4 KB, CRLF escaped) and a
 * candidate. Process CPU time over many rounds, one thread.
 * Usage: ar_bench_sig_codec [rounds=20000]
 */
#include "signal/signal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static char out[AR_SIG_OUT_MAX + 1];

static void measure(const char *label, const char *frame, size_t len, int rounds)
{
    for (int mode = 0; mode < 3; mode++) {
        unsigned flags = mode == 0   ? 0
                         : mode == 1 ? AR_SIG_PARSE_KEEP_SDP_JSON
                                     : AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW;
        ar_sig_msg_t m;
        ar_sig_err_t e;
        double t0 = cpu_us();
        for (int i = 0; i < rounds; i++) {
            if (ar_sig_parse2(AR_SIG_FROM_CLIENT, frame, len, flags, &m, &e) != 0) {
                fprintf(stderr, "%s: refused: %s\n", label, e.text);
                exit(1);
            }
            ar_sig_msg_free(&m);
        }
        double t1 = cpu_us();
        if (ar_sig_parse2(AR_SIG_FROM_CLIENT, frame, len, flags, &m, &e) != 0)
            exit(1);
        ar_sig_str_t *peer = m.type == AR_SIG_CANDIDATE ? &m.u.cand.peer : &m.u.sdp.peer;
        *peer = (ar_sig_str_t){"BBBBBBBBBBBBBBBBBBBBBB", 22};
        int n = 0;
        double t2 = cpu_us();
        for (int i = 0; i < rounds; i++)
            n = ar_sig_build(AR_SIG_FROM_SERVER, &m, out, sizeof(out));
        double t3 = cpu_us();
        ar_sig_msg_free(&m);
        if (n <= 0)
            exit(1);
        printf("%s, %zu-byte frame, %s: parse %.2f us, build %.2f us, total %.2f us\n", label, len,
               mode == 0   ? "full parse"
               : mode == 1 ? "relay parse (SDP kept as sent)"
                           : "relay parse, borrowed (no jansson)",
               (t1 - t0) / rounds, (t3 - t2) / rounds, (t3 - t2 + t1 - t0) / rounds);
    }
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20000;
    if (rounds < 1)
        return 2;
    ar_sig_init();
    /* A browser-like offer: session lines, then media sections and candidates, CRLF escaped. */
    static const char *const lines[] = {
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS stream",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:Zq3F",
        "a=ice-pwd:u1oXkC6hA4bUu0m8yE2f6cT9",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 4F:1C:9A:0B:77:3D:E2:61:5A:C8:90:12:AB:"
        "CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01",
        "a=setup:actpass",
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtcp-fb:111 transport-cc",
        "a=ssrc:3735928559 cname:4TOk42mSjXCkVIa6",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 102 103",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:Zq3F",
        "a=ice-pwd:u1oXkC6hA4bUu0m8yE2f6cT9",
        "a=mid:1",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:96 VP8/90000",
        "a=rtcp-fb:96 goog-remb",
        "a=rtcp-fb:96 transport-cc",
        "a=rtcp-fb:96 ccm fir",
        "a=rtcp-fb:96 nack",
        "a=rtcp-fb:96 nack pli",
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=rtpmap:98 VP9/90000",
        "a=fmtp:98 profile-id=0",
        "a=rtpmap:100 H264/90000",
        "a=fmtp:100 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        "a=ssrc-group:FID 2882400001 2882400002",
        "a=ssrc:2882400001 cname:4TOk42mSjXCkVIa6",
        "a=ssrc:2882400002 cname:4TOk42mSjXCkVIa6"};
    static char frame[16384];
    size_t n = (size_t)snprintf(frame, sizeof(frame),
                                "{\"v\":1,\"type\":\"offer\",\"to\":\"AAAAAAAAAAAAAAAAAAAAAA\","
                                "\"sdp\":\"");
    /* Repeat the media sections' lines until the SDP is about 4 KB, as a two-track offer is. */
    for (size_t k = 0; n < 4000; k++) {
        const char *l = lines[k % (sizeof(lines) / sizeof(lines[0]))];
        n += (size_t)snprintf(frame + n, sizeof(frame) - n, "%s\\r\\n", l);
    }
    n += (size_t)snprintf(frame + n, sizeof(frame) - n, "\"}");
    measure("offer", frame, n, rounds);
    static const char cand[] =
        "{\"v\":1,\"type\":\"candidate\",\"to\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"candidate\":"
        "\"candidate:842163049 1 udp 1677729535 198.51.100.7 46154 typ srflx raddr 0.0.0.0 rport "
        "0 generation 0 ufrag Zq3F network-cost 999\",\"mid\":\"0\",\"mline\":0}";
    measure("candidate", cand, sizeof(cand) - 1, rounds);
    return 0;
}
