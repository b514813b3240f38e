/*
 * The scheduling policy of a daemon's event-loop threads. The TURN relay's UDP workers and the
 * signalling workers run as SCHED_BATCH (each daemon has a `sched-batch` option, default true):
 * a datagram or frame that wakes such a thread does not preempt the task running on the CPU it
 * wakes on, so the thread runs when that task sleeps or its slice ends (at once on an idle CPU).
 * A wake-up (the poll returning, the context switch, going back to sleep) costs more CPU than
 * relaying one small message; letting the sender finish first means fewer, fuller batches
 * (docs/performance.md). Latency grows only while the CPU is busy with a task that does not
 * sleep, by up to the scheduler's slice (a few ms).
 */
#ifndef ANTEROOM_SCHED_H
#define ANTEROOM_SCHED_H

/*
 * Moves the calling thread from the default policy (SCHED_OTHER) to SCHED_BATCH. Threads it
 * creates afterwards inherit the policy. A policy the operator chose (the daemon started under
 * `chrt`: real-time or idle) is kept. Returns 0 when the thread now runs as SCHED_BATCH, 1 when
 * another policy was kept, or AR_ESYS with errno set when the system refused (a sandbox without
 * sched_setscheduler); the caller logs it and runs on.
 */
int ar_sched_batch(void);

#endif
