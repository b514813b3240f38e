/*
 * Carries relay load reports (load.h) over NATS: publishes ours on
 * "anteroom.turn.load.<jurisdiction>" and feeds the reports of the other relays of the same
 * jurisdiction into a load board. libnats runs its own I/O thread and calls back on it; the board
 * is thread-safe, so the relay's workers only ever read it.
 */
#ifndef AR_TURN_LOAD_BUS_H
#define AR_TURN_LOAD_BUS_H

#include "load.h"

typedef struct ar_turn_loadbus_s ar_turn_loadbus_t;

/*
 * Connects to the comma-separated NATS server URLs ("nats://127.0.0.1:4222,tls://..."); with a
 * CA file the connection is TLS and the servers' certificates are verified. Reconnects forever in
 * the background after the first connection. Returns 0, AR_EINVAL, AR_ENOMEM or AR_EIO (with the
 * first connection failing).
 */
AR_MUST_CHECK int ar_turn_loadbus_open(ar_turn_loadbus_t **out, const char *servers,
                                       const char *ca_file, ar_turn_loadboard_t *board,
                                       const char *jurisdiction);
/* Publishes one report; AR_EIO when the bus is down (the report is simply lost: the next one
 * follows within an interval). */
int ar_turn_loadbus_publish(ar_turn_loadbus_t *bus, const ar_turn_load_t *load);
/* How many peer reports were received, and how many were refused as malformed or foreign. */
void ar_turn_loadbus_counts(ar_turn_loadbus_t *bus, uint64_t *received, uint64_t *refused);
void ar_turn_loadbus_close(ar_turn_loadbus_t *bus);

#endif
