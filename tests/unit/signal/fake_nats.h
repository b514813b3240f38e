/*
 * A stand-in for the libnats calls src/signal/bus.c makes, linked into a unit test in place of
 * the library (the executable's definitions take precedence over libnats.so's): connections and
 * subscriptions succeed without a server, and every publication is recorded in the order
 * libnats would have received it. A gate can hold the publisher thread inside a publication,
 * so that what the loop publishes meanwhile waits in bus.c's queue.
 */
#ifndef AR_TEST_FAKE_NATS_H
#define AR_TEST_FAKE_NATS_H

#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#define FAKE_NATS_MAX 128

typedef struct fake_pub_s {
    int conn; /* which connection: 0 the first connected (bus.c's nc), 1 the second (pnc) */
    char subj[96];
    char data[256]; /* the first bytes of the payload, NUL-terminated */
    size_t len;
} fake_pub_t;

/* The subject a round trip (natsConnection_FlushTimeout) is recorded under, in order with the
 * publications, once fake_nats_record_flushes(1) was called. */
#define FAKE_NATS_FLUSH "<flush>"

/* Forgets what was published; opens the gate; every connection connected and flushes succeed. */
void fake_nats_reset(void);
/* Closed: a publication from another thread than the caller's (bus.c's publisher thread, not
 * the loop's) waits inside natsConnection_Publish until it opens. */
void fake_nats_gate(int open);
/* Waits (up to 5 s) until n publications have entered natsConnection_Publish; 0 or -1. */
int fake_nats_wait_entered(size_t n);
/* How many publications were recorded, and the i-th (a copy). */
size_t fake_nats_count(void);
fake_pub_t fake_nats_get(size_t i);

/* How many subscriptions were made since fake_nats_reset, and the subject of the i-th (a copy;
 * the first FAKE_NATS_MAX only). */
size_t fake_nats_subs(void);
fake_pub_t fake_nats_sub(size_t i);

/* libnats' callbacks for connection conn (0 or 1, as fake_pub_t.conn): disconnected (up 0) or
 * reconnected (up 1), called on the caller's thread as libnats' callback thread would. */
void fake_nats_conn(int conn, int up);
void fake_nats_record_flushes(int on);
/* The next n round trips fail (as with no answer within their timeout). */
void fake_nats_fail_flushes(int n);
/* How many of those are still to fail. */
int fake_nats_flushes_to_fail(void);
/* Every publication is refused with s (NATS_INSUFFICIENT_BUFFER: libnats' reconnect buffer is
 * full; NATS_IO_ERROR: its socket broke), and not recorded; NATS_OK: as before. */
void fake_nats_fail_publishes(natsStatus s);
/* The write deadline (ms, 0: none) connection conn was connected with. */
int64_t fake_nats_write_deadline(int conn);
/* 1 when connection conn was connected to the listed servers only, in their order (no
 * randomizing, servers nats-server told of ignored). */
int fake_nats_listed_only(int conn);
/* libnats dropped `dropped` more messages of the first subscription made: its dropped count
 * grows by that (the others' stay 0), and nc's error callback is called with NATS_SLOW_CONSUMER
 * (on the caller's thread, as libnats' callback thread would). */
void fake_nats_slow_consumer(int64_t dropped);
/* How many times pending limits were set since the reset, and the last ones. */
int fake_nats_pending_limits(int *msgs, int *bytes);

#endif
