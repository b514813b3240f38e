/* turn_probe's "burst" action (probe_burst.c). */
#ifndef AR_TEST_PROBE_BURST_H
#define AR_TEST_PROBE_BURST_H

#include <stdint.h>

/*
 * Sends `rounds` bursts of datagrams of mixed sizes as ChannelData on `channel` from cfd (a UDP
 * socket connected to the server, whose allocation has the channel bound to lfd's address), and
 * back from lfd to the relayed address; checks that every datagram arrives whole, alone and in
 * order both ways. Prints "burst ok ..." (with the reads that carried a GSO run, counted in the
 * rounds that ask for UDP_GRO) or "burst fail: WHY". Returns 0 or -1.
 */
int probe_burst(int cfd, int lfd, uint16_t channel, int rounds);

#endif
