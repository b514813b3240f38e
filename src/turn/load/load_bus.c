#include "load_bus.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define SUBJECT_PREFIX "anteroom.turn.load."
#define MAX_SERVERS 16

struct ar_turn_loadbus_s {
    natsConnection *conn;
    natsSubscription *sub;
    ar_turn_loadboard_t *board;
    char subject[sizeof(SUBJECT_PREFIX) + AR_TURN_LOAD_NAME_MAX];
    _Atomic uint64_t received;
    _Atomic uint64_t refused;
};

static void on_report(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    ar_turn_loadbus_t *bus = closure;
    ar_turn_load_t load;
    int rc = ar_turn_load_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &load);
    if (rc == 0)
        rc = ar_turn_loadboard_update(bus->board, &load);
    if (rc == 0)
        atomic_fetch_add(&bus->received, 1);
    else if (rc != AR_EEXIST) /* our own report comes back to us: not an error */
        atomic_fetch_add(&bus->refused, 1);
    natsMsg_Destroy(msg);
}

/* Splits "a,b,c" into at most MAX_SERVERS URLs inside buf. */
static int split_servers(char *buf, const char **urls)
{
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == MAX_SERVERS)
            return AR_EINVAL;
        urls[n++] = tok;
    }
    return n > 0 ? n : AR_EINVAL;
}

int ar_turn_loadbus_open(ar_turn_loadbus_t **out, const char *servers, const char *ca_file,
                         ar_turn_loadboard_t *board, const char *jurisdiction)
{
    char list[1024];
    const char *urls[MAX_SERVERS];
    *out = NULL;
    if (servers == NULL || strlen(servers) >= sizeof(list) || strlen(jurisdiction) == 0 ||
        strlen(jurisdiction) >= AR_TURN_LOAD_NAME_MAX)
        return AR_EINVAL;
    snprintf(list, sizeof(list), "%s", servers);
    int nurls = split_servers(list, urls);
    if (nurls < 0)
        return nurls;

    ar_turn_loadbus_t *bus = ar_calloc(1, sizeof(*bus));
    if (bus == NULL)
        return AR_ENOMEM;
    bus->board = board;
    snprintf(bus->subject, sizeof(bus->subject), SUBJECT_PREFIX "%s", jurisdiction);

    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetServers(opts, urls, nurls);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, 500);
    if (s == NATS_OK && ca_file != NULL && ca_file[0] != '\0') {
        /* Servers verify each other's certificates (mission S1). */
        s = natsOptions_SetSecure(opts, true);
        if (s == NATS_OK)
            s = natsOptions_LoadCATrustedCertificates(opts, ca_file);
    }
    if (s == NATS_OK)
        s = natsConnection_Connect(&bus->conn, opts);
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&bus->sub, bus->conn, bus->subject, on_report, bus);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        ar_log(AR_LOG_ERROR, "load_bus_connect_failed", AR_LF_INT("nats_status", s));
        ar_turn_loadbus_close(bus);
        return s == NATS_NO_MEMORY ? AR_ENOMEM : AR_EIO;
    }
    *out = bus;
    return 0;
}

int ar_turn_loadbus_publish(ar_turn_loadbus_t *bus, const ar_turn_load_t *load)
{
    char report[AR_TURN_LOAD_REPORT_MAX];
    int n = ar_turn_load_encode(load, report, sizeof(report));
    if (n < 0)
        return n;
    natsStatus s = natsConnection_Publish(bus->conn, bus->subject, report, n);
    return s == NATS_OK ? 0 : AR_EIO;
}

void ar_turn_loadbus_counts(ar_turn_loadbus_t *bus, uint64_t *received, uint64_t *refused)
{
    *received = atomic_load(&bus->received);
    *refused = atomic_load(&bus->refused);
}

void ar_turn_loadbus_close(ar_turn_loadbus_t *bus)
{
    if (bus == NULL)
        return;
    /* Draining, then waiting for it, guarantees no callback is still running on the bus. */
    if (bus->sub != NULL) {
        if (natsSubscription_Drain(bus->sub) == NATS_OK)
            natsSubscription_WaitForDrainCompletion(bus->sub, 2000);
        natsSubscription_Destroy(bus->sub);
    }
    if (bus->conn != NULL) {
        natsConnection_Close(bus->conn);
        natsConnection_Destroy(bus->conn);
    }
    ar_free(bus);
}
