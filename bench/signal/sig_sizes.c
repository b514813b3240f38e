/*
 * What one held session costs in anteroom-signal's structures (docs/performance.md, "Memory of
 * a held session"): the size the allocator hands out for each (malloc_usable_size plus its
 * 8-byte header), and, given a NATS server, what one libnats subscription on a to.<peer>
 * subject costs in this process and in nats-server (RSS over N subscriptions).
 *
 * Usage: ar_bench_sig_sizes [NATS-URL NATS-SERVER-PID [N]]
 */
#include "internal.h"

#include <malloc.h>
#include <nats/nats.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t chunk(size_t n)
{
    void *p = malloc(n);
    size_t c = malloc_usable_size(p) + sizeof(size_t);
    free(p);
    return c;
}

static long rss_kib(const char *pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%s/status", pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    (void)closure;
    natsMsg_Destroy(msg);
}

int main(int argc, char **argv)
{
    /* A room id as the benchmark's (a run id and a number), a patient token's clinic "c1". */
    const size_t room_id = 16, clinic = 3;
    const size_t claims = offsetof(ar__sig_claims_t, clinics); /* allocated from there */
    printf("record %zu B (allocated %zu B), on every worker\n", sizeof(ar__sig_rec_t),
           chunk(sizeof(ar__sig_rec_t)));
    const size_t room = offsetof(ar__sig_room_t, id); /* allocated from there */
    printf("room %zu B + id (allocated %zu B with a %zu-character id), on every worker, one per "
           "two sessions; its clinic's copy (allocated %zu B) shared by the worker's rooms of that "
           "clinic; %zu B more (allocated %zu B) only while racing joins put more than %d in\n",
           room, chunk(room + room_id), room_id - 1, chunk(sizeof(ar__sig_clinic_t) + clinic),
           sizeof(ar__sig_room_more_t), chunk(sizeof(ar__sig_room_more_t)), AR__SIG_ROOM_MAX);
    printf("local session %zu B (allocated %zu B), on the owner and the backup\n",
           sizeof(ar__sig_sess_t), chunk(sizeof(ar__sig_sess_t)));
    printf("local session's cold part %zu B (allocated %zu B), only while needed (a backup's "
           "pending frames, candidates relayed, a promotion, a renewed secret)\n",
           sizeof(ar__sig_sess_cold_t), chunk(sizeof(ar__sig_sess_cold_t)));
    printf("compact claims %zu B + strings (allocated %zu B for a patient with room, clinic, "
           "area), on the owner\n",
           claims, chunk(claims + room_id + clinic + 3));
    printf("connection state %zu B in the net layer's allocation of the connection (its %d B and "
           "this: allocated %zu B together), on the owner\n",
           sizeof(ar__sig_conn_t), AR_SN_CONN_SIZE,
           chunk(AR_SN_CONN_SIZE + sizeof(ar__sig_conn_t)));
    if (argc < 3)
        return 0;
    int n = argc > 3 ? atoi(argv[3]) : 20000;
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    if (natsOptions_Create(&o) != NATS_OK || natsOptions_SetURL(o, argv[1]) != NATS_OK ||
        natsOptions_UseGlobalMessageDelivery(o, true) != NATS_OK ||
        natsConnection_Connect(&nc, o) != NATS_OK || n <= 0)
        return fprintf(stderr, "cannot connect to %s\n", argv[1]), 1;
    natsSubscription **subs = calloc((size_t)n, sizeof(*subs));
    char subj[64];
    natsConnection_Flush(nc);
    long c0 = rss_kib("self"), s0 = rss_kib(argv[2]);
    for (int i = 0; subs && i < n; i++) {
        snprintf(subj, sizeof(subj), "ar.eu.to.%022d", i); /* a peer id is 22 characters */
        if (natsConnection_Subscribe(&subs[i], nc, subj, on_msg, NULL) != NATS_OK)
            return fprintf(stderr, "subscribe failed\n"), 1;
    }
    natsConnection_Flush(nc);
    usleep(200000);
    long c1 = rss_kib("self"), s1 = rss_kib(argv[2]);
    printf("one NATS subscription: %.0f B in the subscriber, %.0f B in nats-server (%d of them)\n",
           (double)(c1 - c0) * 1024 / n, (double)(s1 - s0) * 1024 / n, n);
    for (int i = 0; subs && i < n; i++)
        natsSubscription_Destroy(subs[i]);
    free(subs);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
    return 0;
}
