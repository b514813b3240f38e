/* `anteroom admin drain`: drain a signalling node on this machine (drain.c). */
#ifndef ANTEROOM_CMD_DRAIN_H
#define ANTEROOM_CMD_DRAIN_H

/* argv: the flags after `drain`. Exit code: 0 the node is draining, 1 it is not, 2 bad usage. */
int ar__admin_drain(int argc, char **argv);

#endif
