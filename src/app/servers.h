/*
 * Servers and jurisdictions (S10, X3): which signalling and TURN servers serve which
 * jurisdiction, read from one JSON file (docs/api.md, "Servers file"):
 *
 *   {"jurisdiction": "eu-de",                  this node's own jurisdiction (required)
 *    "nats": "nats://127.0.0.1:4222",          optional: relay load reports (X3)
 *    "jurisdictions": {
 *      "eu-de": {"signal": ["wss://signal.example.org/ws"],
 *                "turn": [{"node": "relay-1", "host": "turn1.example.org",
 *                          "port": 3478, "tls_port": 443}],
 *                "monitor": "https://monitor.example.org/v1/stats"}}}   optional
 *
 * A client is only ever handed the servers of its clinic's jurisdiction; the app refuses to
 * start when the file leaves a jurisdiction it needs without signalling or TURN, or names one
 * server under two jurisdictions.
 */
#ifndef ANTEROOM_APP_SERVERS_H
#define ANTEROOM_APP_SERVERS_H

#include "anteroom/err.h"
#include "anteroom/store.h"
#include "anteroom/token.h"
#include "load.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define AR_SERVERS_JUR_MAX 16
#define AR_SERVERS_PER_JUR 16
#define AR_SERVERS_NAME_MAX 64
#define AR_SERVERS_URL_MAX 256
#define AR_SERVERS_FILE_MAX ((size_t)64 * 1024)

typedef struct ar_app_servers_s ar_app_servers_t;

/* Parses the servers file's text. Returns 0 with *out, AR_EPARSE (err says what), AR_ENOMEM. */
AR_MUST_CHECK int ar_app_servers_parse(const char *text, size_t len, ar_app_servers_t **out,
                                       char *err, size_t errcap);
/* Reads and parses a file (at most AR_SERVERS_FILE_MAX bytes); AR_EIO when unreadable. */
AR_MUST_CHECK int ar_app_servers_load(const char *path, ar_app_servers_t **out, char *err,
                                      size_t errcap);
void ar_app_servers_free(ar_app_servers_t *s);
const char *ar_app_servers_node_jurisdiction(const ar_app_servers_t *s);
/* 1 when jur has at least one signalling and one TURN server. */
int ar_app_servers_serves(const ar_app_servers_t *s, const char *jur);

/*
 * The origins (scheme://host[:port]) of every signalling URL and every monitor URL of every
 * jurisdiction, each once, written as " origin1 origin2" (a leading space each) for the
 * Content-Security-Policy's connect-src: the web client may open WebSockets and send reports to
 * these and nowhere else (S8). Returns the length, AR_EPARSE when a URL's host holds anything
 * but letters, digits, '.', '-', ':', '[' and ']', or AR_ETOOBIG when cap is too small.
 */
AR_MUST_CHECK int ar_app_servers_connect_origins(const ar_app_servers_t *s, char *out, size_t cap);

/*
 * The start-up check against the store: every clinic's jurisdiction must be served. Returns 0,
 * AR_EPERM (err names the jurisdiction, never a clinic's name) or a store error.
 */
AR_MUST_CHECK int ar_app_servers_check_store(const ar_app_servers_t *s, ar_store_conn_t *c,
                                             char *err, size_t errcap);

/* Connects to NATS (when the file names it) and keeps a load board per jurisdiction, so relays
 * are handed out least-loaded first. Returns 0 or AR_EIO/AR_ENOMEM. */
AR_MUST_CHECK int ar_app_servers_watch_load(ar_app_servers_t *s);

/* Orders jur's relays by the reports on board (borrowed; freed by ar_app_servers_free).
 * ar_app_servers_watch_load attaches boards fed from NATS; tests attach their own. Returns 0 or
 * AR_ENOTFOUND (no such jurisdiction). */
int ar_app_servers_attach_board(ar_app_servers_t *s, const char *jur, ar_turn_loadboard_t *board);

/*
 * What a client of jurisdiction jur connects to: {"jurisdiction", "signal": [urls],
 * "ice_servers": [{"urls": [turn udp, turn tcp, turns 443], "username", "credential"}],
 * "expires_at", "monitor" (only when the file names one)}, relays least-loaded first (configuration
 * order without load reports). One TURN REST credential (ar_turn_rest_mint, random username) serves
 * every relay. Returns NULL when jur is not served or on failure.
 *
 * The signalling URLs come in an order of their own for each clinic (the clinic whose calls the
 * client makes; NULL or "": the file's order): rendezvous hashing of the clinic id and each
 * URL. Clients connect to the first and go down the list when it fails, so every client of one
 * clinic (its staff, its patients, their invitees) reaches the same signalling node, and the
 * same worker when the file lists each worker's own port (anteroom-signal --worker-port). Their
 * frames then do not cross the bus between workers (docs/api.md, "Placement by clinic"); the
 * clinics spread over the entries, and a failed entry's clinics over all the others.
 */
json_t *ar_app_servers_for(const ar_app_servers_t *s, const char *jur, const char *clinic,
                           const char *secret, size_t secret_len, int64_t now, int64_t ttl_s);

/* The clinic a token's holder is placed with: a patient's or invitee's room's clinic, a staff
 * member's first clinic in the token (by id; a member of several shares a worker with the
 * patients of that one). NULL when the token names none. */
const char *ar_app_servers_place(const ar_token_claims_t *cl);

#endif
