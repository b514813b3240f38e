/*
 * Small pieces the signalling unit tests share: a WebSocket client dialled and upgraded on
 * loopback, peer ids made of one repeated character, and a worker and client connections
 * without a loop or a bus.
 */
#ifndef AR_TEST_SIG_UTIL_H
#define AR_TEST_SIG_UTIL_H

#include "internal.h"

#include <jansson.h>

#include <stdint.h>

/* The origin the tests' servers allow and the clients send. */
#define SU_ORIGIN "https://app.example.org"

/* A WebSocket client on 127.0.0.1:port and path, upgraded (the 101 read), with a 5 s receive
 * timeout; fails the test otherwise. */
int su_dial(uint16_t port, const char *path);
/* A peer id of AR__SIG_PEER_LEN times c (up to four at once). */
const char *su_peer(char c);
/* The peer a frame's subject (ar.eu.to.<owner tag>.<backup tag>.<peer>) is for, NULL when subj
 * is no frame's subject. */
const char *su_to_peer(const char *subj);
/* A worker's state alone (ar_calloc'd; free with ar_free): node id id, loop second 100, no
 * loop, no bus. */
ar__sig_srv_t *su_srv_new(uint64_t id);
/* A worker with its loop and its bus made, connected to nothing (ar__sig_bus_put fills its
 * inbox as libnats would): node id id, configuration conf (kept by the caller), loop second 0.
 * su_bus_srv_free frees its records, bus, loop and state. */
ar__sig_srv_t *su_bus_srv_new(ar_signal_conf_t *conf, uint64_t id);
void su_bus_srv_free(ar__sig_srv_t *srv);
/* A test's fixture: su_bus_srv_new's worker id of node "n1" in jurisdiction "eu" (admit-lag
 * 60 s), its configuration beside it; su_bus_node_free frees both. */
typedef struct su_bus_node_s {
    ar__sig_srv_t *srv;
    ar_signal_conf_t conf;
} su_bus_node_t;
su_bus_node_t *su_bus_node_new(uint64_t id);
void su_bus_node_free(su_bus_node_t *f);
/* Worker-to-worker message o (taken) applied by srv, as its bus delivers one. */
void su_proc(ar__sig_srv_t *srv, json_t *o);
/* srv freed, with the frame blocks it kept for reuse (frame_pool.c). */
void su_srv_free(ar__sig_srv_t *srv);
/* Every record srv holds freed, with its local session (a test's teardown). */
void su_recs_free(ar__sig_srv_t *srv);
/* su_srv_new's worker with its ended-room catch-up done at now (ms, as the catch-up's clock),
 * with nobody to ask: a worker already on the bus (invite.c "Catching up"). Fails the test
 * otherwise. */
ar__sig_srv_t *su_srv_caught_up(uint64_t id, uint32_t now);
/* *cn becomes a client connection of srv in state (AR__SIG_C_*) attached to s, as if the net
 * layer had opened it: the caller owns cn and lets go of it (s->conn = NULL) before s goes. */
void su_conn_attach(ar__sig_conn_t *cn, ar__sig_srv_t *srv, ar__sig_sess_t *s, uint8_t state);

/* The log, at info, to an unlinked file (its fd); su_log_back(fd): to stderr at warn again, as
 * the later tests log, the file closed. su_log_count: how often event appears in what was
 * logged to fd so far (its first 16 KiB). */
int su_log_to_file(void);
void su_log_back(int fd);
int su_log_count(int fd, const char *event);
/* su_log_count once event has appeared want times, or after 5 s. */
int su_log_wait(int fd, const char *event, int want);

/* Claims of a token for jurisdiction "eu", room "room-1" of clinic "clinic-1", valid for ten
 * minutes from now, with this role and subject. */
void su_claims(ar_token_claims_t *cl, ar_token_role_t role, const char *sub);

/* In d (NOTICE_LEN bytes, bus_internal.h): the frame part of a lost notice for n frames, as
 * worker `from`'s publisher sends it on to.<peer> (bus_pub.c): its fid that worker with counter
 * 0, send time 0, action ACT_LOST, the count (4 bytes, little endian). */
void su_lost_notice(uint8_t *d, uint64_t from, uint32_t n);
/* The session of peer c as srv holds it, with no connection: its owner (backup 0) or a backup
 * of worker 7's session. A bare copy (ar_calloc'd, no frames; ar__sig_rec_free frees it) that
 * keeps a loss for its next welcome (s->lost, s->lost_after). */
ar__sig_sess_t *su_sess_held(ar__sig_srv_t *srv, char c, int backup);

/* s's resume secret as its client holds it (ar__sig_sess_resume_text), in a static buffer that
 * the next call overwrites. */
const char *su_resume(const ar__sig_sess_t *s);

/* Signed tokens and the frames a client sends, for a hello through a worker's real message
 * path (loop_harness.h lh_trust makes the worker accept the key). */
/* A new Ed25519 signing key of kid "k1"; fails the test otherwise. */
void su_signer(ar_token_key_t *key);
/* Adds key's public half to ring, as a worker loads it (srv.c load_keys); fails the test
 * otherwise. */
void su_trust(ar_token_keyring_t *ring, const ar_token_key_t *key);
/* The token of cl signed with key, NUL-terminated in out (AR_TOKEN_MAX bytes is enough); fails
 * the test otherwise. A patient's claims need an area besides su_claims's. */
void su_mint(const ar_token_key_t *key, const ar_token_claims_t *cl, char *out, size_t cap);
/* One masked text frame of text (up to 65535 bytes) from a client socket. */
void su_send_text(int fd, const char *text);
/* A hello frame (id 1) with token, and with resume and last_seq when resume is not NULL. */
void su_hello(int fd, const char *token, const char *resume, int64_t last_seq);

#endif
