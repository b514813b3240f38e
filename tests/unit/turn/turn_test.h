/*
 * Test harness for the TURN engine: a fake transport that records what the engine sends, an
 * injected clock, and a small client that builds signed requests with the STUN codec.
 */
#ifndef AR_TURN_TEST_H
#define AR_TURN_TEST_H

#include "stun/stun.h"
#include "turn/server.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FT_MAX_MSGS 64

typedef struct ft_msg_s {
    uint8_t data[1500]; /* the first 1500 bytes of longer ones */
    size_t len;         /* whole */
    ar_turn_tuple_t tuple;
    ar_turn_addr_t peer;
    int relay; /* relay id for send_peer */
} ft_msg_t;

typedef struct fake_tp_s {
    ft_msg_t to_client[FT_MAX_MSGS];
    size_t nclient;
    ft_msg_t to_peer[FT_MAX_MSGS];
    size_t npeer;
    int opened, closed;
    int fail_open;   /* relay_open fails when set */
    int fail_arm;    /* relay_arm fails (AR_EADDRINUSE, a port taken meanwhile) when set */
    int fail_arm_id; /* relay_arm fails for this relay id only (0: none) */
    int arms;        /* relay_arm calls */
    int relays[256];
    ar_turn_alloc_t *allocs[256]; /* by relay id */
    /* RFC 6062 */
    int tcp_opened, tcp_closed, connects, bind_ok;
    ar_turn_tuple_t connect_ctrl;
    ar_turn_addr_t connect_peer;
    uint8_t connect_tid[12];
    uint32_t bound_cid;
} fake_tp_t;

typedef struct tc_s {
    fake_tp_t tp;
    ar_turn_transport_t ops;
    ar_turn_shared_t *sh;
    ar_turn_engine_t *e;
    uint64_t mono_ms;
    int64_t wall_s;
    ar_turn_tuple_t t; /* the default client */
    char user[128], pass[128];
    uint8_t key[16];
    uint8_t nonce[64];
    size_t nonce_len;
    uint8_t tid_ctr;
    ar_turn_opts_t opts;
    bool omit_nonce;     /* sign without a NONCE attribute */
    bool tc_retry_stale; /* answer a 438 with one retry, as clients do */
} tc_t;

/* Sets up an engine with opts (realm "example.org", user alice:secret when opts->users is NULL). */
void tc_init(tc_t *c, const ar_turn_opts_t *opts);
void tc_free(tc_t *c);
void tc_advance(tc_t *c, uint64_t ms);
void tc_set_creds(tc_t *c, const char *user, const char *pass);

/* Builds a request of method with the engine-visible attributes; signed when c->nonce_len > 0
 * and sign is set. extra_fn may add attributes before integrity. */
typedef void (*tc_attrs_fn)(ar_stun_builder_t *b, void *arg);
size_t tc_build(tc_t *c, uint8_t *buf, size_t cap, uint16_t method, uint8_t cls, bool sign,
                tc_attrs_fn fn, void *arg);
/* Sends a request and returns the engine's answer's class (or -1 when no answer); the code of
 * an error answer goes to *code. The NONCE of a 401/438 is remembered. */
int tc_request(tc_t *c, uint16_t method, bool sign, tc_attrs_fn fn, void *arg, int *code);
/* The last message to the client, parsed. */
bool tc_last(tc_t *c, ar_stun_msg_t *msg);
/* Allocate with the 401 round trip; returns the final code (0 on success). */
int tc_allocate(tc_t *c);
int tc_create_permission(tc_t *c, const char *ip, uint16_t port);
int tc_channel_bind(tc_t *c, uint16_t ch, const char *ip, uint16_t port);
void tc_addr(ar_turn_addr_t *a, const char *ip, uint16_t port);
/* The allocation of the default client: found through the engine's relay_open record. */
ar_turn_alloc_t *tc_alloc(tc_t *c);
/* Delivers a datagram from peer ip:port to the latest allocation's relay. */
void tc_from_peer(tc_t *c, const char *ip, uint16_t port, const void *data, size_t len);

#endif
