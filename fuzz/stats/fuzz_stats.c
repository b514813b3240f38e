/*
 * Monitor input comes from any browser (S9). The first byte picks the parser: even, a report
 * body (ar_stats_parse); odd, a stored histogram (ar_hist_decode, which reads what earlier
 * flushes wrote). Beyond "no crash" it checks the promises: an accepted report has every value
 * in its schema range, a token of token characters and no address shape in it; a decoded
 * histogram re-encodes to the same bytes and its quantiles are ordered.
 */
#include "hist.h"
#include "stats.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_report(const ar_stats_report_t *r)
{
    if (r->version != AR_STATS_VERSION || r->interval_s < 1 || r->interval_s > 300 ||
        r->call_s > 86400 || r->wait_s > 86400 || r->loss_permille > 1000 || r->rtt_ms > 60000 ||
        r->jitter_ms > 60000 || r->bitrate_in_kbps > 100000 || r->bitrate_out_kbps > 100000 ||
        r->fps > 240 || r->width > 7680 || r->height > 4320)
        __builtin_trap();
    if (r->browser < 0 || r->browser >= AR_STATS_BROWSER_N || r->profile < 0 ||
        r->profile >= AR_STATS_PROFILE_N || r->cand < 0 || r->cand >= AR_STATS_CAND_N ||
        r->remote_cand < 0 || r->remote_cand >= AR_STATS_CAND_N)
        __builtin_trap();
    if (r->token_len != strlen(r->token) || strncmp(r->token, "AR1.", 4) != 0 ||
        ar_stats_has_ip(r->token, r->token_len))
        __builtin_trap();
}

static void check_hist(const uint8_t *data, size_t size)
{
    ar_hist_t h;
    if (ar_hist_decode(data, size, &h) != 0 || size == 0)
        return;
    uint8_t out[AR_HIST_ENC_MAX];
    int n = ar_hist_encode(&h, out, sizeof(out));
    if (n < 0)
        __builtin_trap();
    /* Varints have one canonical form here only when minimal; compare decoded values instead. */
    ar_hist_t again;
    if (ar_hist_decode(out, (size_t)n, &again) != 0 || memcmp(&again, &h, sizeof(h)) != 0)
        __builtin_trap();
    if (ar_hist_quantile(&h, 0.5) > ar_hist_quantile(&h, 0.99))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1) {
        check_hist(data + 1, size - 1);
        return 0;
    }
    ar_stats_report_t r;
    if (ar_stats_parse((const char *)data + 1, size - 1, AR_STATS_BODY_MAX, &r) == AR_STATS_OK)
        check_report(&r);
    return 0;
}
