/*
 * The call-statistics report codec (docs/monitor.md, schema version 1). No I/O, no globals but
 * const tables: the monitor hands it a request body and gets a typed report or a refusal reason.
 *
 * A report is one flat JSON object whose fields are listed in one declarative table (stats.c)
 * and checked by one function. String fields are enumerations (browser family, quality profile,
 * candidate type) or the call token; nothing free-form is accepted, so nothing personal can ride
 * along. Before any field is looked at, every key and string in the body is scanned for
 * anything that looks like an address (IPv4, IPv6, an ICE candidate line, an mDNS name): such a
 * body is refused as a whole (AR_STATS_R_ADDRESS) so the operator can count clients that leak.
 */
#ifndef ANTEROOM_PROTO_STATS_H
#define ANTEROOM_PROTO_STATS_H

#include "anteroom/token.h"

#include <stddef.h>
#include <stdint.h>

#define AR_STATS_VERSION 1
/* A report is a few hundred bytes; the cap leaves room for the token and whitespace. */
#define AR_STATS_BODY_MAX 4096

typedef enum {
    AR_STATS_BROWSER_CHROME = 0,
    AR_STATS_BROWSER_FIREFOX,
    AR_STATS_BROWSER_SAFARI,
    AR_STATS_BROWSER_EDGE,
    AR_STATS_BROWSER_OTHER,
    AR_STATS_BROWSER_N
} ar_stats_browser_t;

typedef enum {
    AR_STATS_PROFILE_LOW = 0,
    AR_STATS_PROFILE_STANDARD,
    AR_STATS_PROFILE_HIGH,
    AR_STATS_PROFILE_N
} ar_stats_profile_t;

/* ICE candidate types of the selected pair (RFC 8445 section 5.1.1), never the address. */
typedef enum {
    AR_STATS_CAND_HOST = 0,
    AR_STATS_CAND_SRFLX,
    AR_STATS_CAND_PRFLX,
    AR_STATS_CAND_RELAY,
    AR_STATS_CAND_N
} ar_stats_cand_t;

/* Why a body was refused; each has a counter in the monitor's metrics. */
typedef enum {
    AR_STATS_OK = 0,
    AR_STATS_R_TOO_LARGE, /* over the byte cap */
    AR_STATS_R_MALFORMED, /* not JSON, not one object, nested too deep, duplicate keys */
    AR_STATS_R_ADDRESS,   /* a key or string that looks like an address or candidate line */
    AR_STATS_R_UNKNOWN,   /* a field the schema does not name */
    AR_STATS_R_INVALID,   /* a field missing, of the wrong type or out of range */
    AR_STATS_R_VERSION,   /* "v" is not a version this code reads */
    AR_STATS_R_N
} ar_stats_reason_t;

/* Optional fields present in a report (ar_stats_report_t.present). */
enum {
    AR_STATS_HAS_WAIT = 1u << 0,
    AR_STATS_HAS_REMOTE_CAND = 1u << 1,
    AR_STATS_HAS_BITRATE_IN = 1u << 2,
    AR_STATS_HAS_BITRATE_OUT = 1u << 3,
    AR_STATS_HAS_LOSS = 1u << 4,
    AR_STATS_HAS_JITTER = 1u << 5,
    AR_STATS_HAS_RTT = 1u << 6,
    AR_STATS_HAS_FPS = 1u << 7,
    AR_STATS_HAS_WIDTH = 1u << 8,
    AR_STATS_HAS_HEIGHT = 1u << 9,
};

/* One decoded report. Field meanings and units are in docs/monitor.md. */
typedef struct ar_stats_report_s {
    uint32_t version;
    char token[AR_TOKEN_MAX + 1]; /* NUL-terminated; verified by the monitor, never stored */
    size_t token_len;
    uint32_t interval_s;
    uint32_t call_s;
    uint32_t wait_s;
    int final; /* the last report of this participant's call */
    int browser;
    int profile;
    int cand;        /* local candidate type of the selected pair */
    int remote_cand; /* remote candidate type */
    uint32_t bitrate_in_kbps;
    uint32_t bitrate_out_kbps;
    uint32_t loss_permille;
    uint32_t jitter_ms;
    uint32_t rtt_ms;
    uint32_t fps;
    uint32_t width;
    uint32_t height;
    unsigned present; /* AR_STATS_HAS_* */
} ar_stats_report_t;

/*
 * Decodes len bytes (at most cap) into *out. Returns AR_STATS_OK, or the reason the whole body
 * is refused; *out is then unspecified. Never allocates beyond jansson's parse of the body
 * (which goes through the project allocator, so tests can fail it: AR_STATS_R_MALFORMED).
 */
ar_stats_reason_t ar_stats_parse(const char *buf, size_t len, size_t cap, ar_stats_report_t *out);

/* 1 when s (len bytes) holds anything that looks like an IPv4 or IPv6 address. */
int ar_stats_has_ip(const char *s, size_t len);
/* 1 when s looks like an address, an ICE candidate line or an mDNS (.local) host name. */
int ar_stats_has_address(const char *s, size_t len);

/* Stable names for metrics labels and docs: "too_large", "address", ... and "chrome", "low",
 * "relay", ... ("" for an out-of-range value). */
const char *ar_stats_reason_name(ar_stats_reason_t r);
const char *ar_stats_browser_name(int b);
const char *ar_stats_profile_name(int p);
const char *ar_stats_cand_name(int c);

#endif
