/*
 * Small pieces the signalling unit tests share: a WebSocket client dialled and upgraded on
 * loopback, and peer ids made of one repeated character.
 */
#ifndef AR_TEST_SIG_UTIL_H
#define AR_TEST_SIG_UTIL_H

#include <stdint.h>

/* The origin the tests' servers allow and the clients send. */
#define SU_ORIGIN "https://app.example.org"

/* A WebSocket client on 127.0.0.1:port and path, upgraded (the 101 read), with a 5 s receive
 * timeout; fails the test otherwise. */
int su_dial(uint16_t port, const char *path);
/* A peer id of AR__SIG_PEER_LEN times c (up to four at once). */
const char *su_peer(char c);

#endif
