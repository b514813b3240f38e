/*
 * Relay load reports and the choice of an alternate relay (mission X3).
 *
 * Every relay publishes a small JSON report of its load (allocations, relayed bandwidth, CPU) on
 * its metrics endpoint and, when a bus is configured, on NATS subject
 * "anteroom.turn.load.<jurisdiction>". Relays of the same jurisdiction keep a board of each
 * other's latest reports; when this relay is above its configured load it answers Allocate with
 * 300 Try Alternate naming the least-loaded fresh peer on the board. The app server reads the same
 * reports to hand clients the least-loaded relays first.
 *
 * The report codec and the board do no I/O (testable, fuzzable); load_bus.c carries reports over
 * NATS.
 */
#ifndef AR_TURN_LOAD_H
#define AR_TURN_LOAD_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define AR_TURN_LOAD_NAME_MAX 64
#define AR_TURN_LOAD_REPORT_MAX 1024 /* bytes of JSON; larger reports are refused */
#define AR_TURN_LOADBOARD_MAX 256    /* relays remembered per jurisdiction */

typedef struct ar_turn_load_s {
    char node[AR_TURN_LOAD_NAME_MAX];         /* the relay's node name */
    char jurisdiction[AR_TURN_LOAD_NAME_MAX]; /* e.g. "eu-de" */
    struct sockaddr_storage addr;             /* where clients reach it (ALTERNATE-SERVER) */
    uint64_t allocations;
    uint64_t capacity; /* allocations it accepts before redirecting; 0: unbounded */
    uint64_t bps;      /* relayed bits per second, both directions */
    double cpu;        /* share of the machine's CPU in use, 0..1 */
    int64_t at_ms;     /* when the report was made (Unix ms) */
} ar_turn_load_t;

/* Writes the report as JSON (schema version 1) into out; returns its length or AR_ETOOBIG. */
AR_MUST_CHECK int ar_turn_load_encode(const ar_turn_load_t *load, char *out, size_t cap);
/*
 * Parses a report. Strict: every field present with the right type, names limited to
 * [A-Za-z0-9._-], an address in "ip:port" or "[ipv6]:port" form, no unknown fields. Returns 0,
 * AR_ETOOBIG or AR_EPARSE.
 */
AR_MUST_CHECK int ar_turn_load_decode(const char *json, size_t len, ar_turn_load_t *out);

/* The load as one number, 0 = idle, 1 = full: the larger of CPU and allocations/capacity. */
double ar_turn_load_score(const ar_turn_load_t *load);

typedef struct ar_turn_loadboard_s ar_turn_loadboard_t;

/*
 * A thread-safe board of peer reports for one jurisdiction. Reports older than stale_ms at the
 * time of a pick are ignored (a relay that stopped reporting may be dead).
 */
ar_turn_loadboard_t *ar_turn_loadboard_new(const char *self_node, const char *jurisdiction,
                                           int64_t stale_ms);
void ar_turn_loadboard_free(ar_turn_loadboard_t *board);
/*
 * Records a peer's report. Returns 0, AR_EPERM for a report from another jurisdiction (nodes
 * refuse relays outside their own, mission S10), AR_EEXIST for our own report, AR_EQUOTA when the
 * board is full of fresh reports.
 */
int ar_turn_loadboard_update(ar_turn_loadboard_t *board, const ar_turn_load_t *load);
/*
 * Picks the fresh peer with the lowest score below max_score and copies its address to out.
 * Returns 0 or AR_ENOTFOUND when no peer qualifies.
 */
int ar_turn_loadboard_pick(ar_turn_loadboard_t *board, int64_t now_ms, double max_score,
                           struct sockaddr_storage *out);

/* The score of node's latest fresh report: 0, or AR_ENOTFOUND (no report, or a stale one). */
int ar_turn_loadboard_score(ar_turn_loadboard_t *board, const char *node, int64_t now_ms,
                            double *score);
/* Measures this process's CPU share between calls from getrusage and the number of cores. */
typedef struct ar_turn_cpu_sampler_s {
    int64_t last_wall_us;
    int64_t last_cpu_us;
    double share;
} ar_turn_cpu_sampler_t;

void ar_turn_cpu_sampler_init(ar_turn_cpu_sampler_t *s);
/* Returns the CPU share (0..1 of all cores) since the previous call. */
double ar_turn_cpu_sample(ar_turn_cpu_sampler_t *s);

/* Parses "ip:port" or "[ipv6]:port" (no host names). Returns 0 or AR_EPARSE. */
AR_MUST_CHECK int ar_turn_parse_hostport(const char *text, size_t len,
                                         struct sockaddr_storage *out);
/* Formats an address as "ip:port" or "[ipv6]:port"; returns the length or AR_ETOOBIG. */
int ar_turn_format_hostport(const struct sockaddr *sa, char *out, size_t cap);

#endif
