/*
 * Relay "a" is on NATS server 1, relay "b" on server 2 of one cluster. b publishes its load;
 * a's board must come to pick b as the alternate. A report from another jurisdiction must never
 * reach a's board, and a malformed one must be counted as refused.
 */
#include "load_bus.h"

#include <nats/nats.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static ar_turn_load_t report(const char *node, const char *jur, const char *addr)
{
    ar_turn_load_t l;
    memset(&l, 0, sizeof(l));
    snprintf(l.node, sizeof(l.node), "%s", node);
    snprintf(l.jurisdiction, sizeof(l.jurisdiction), "%s", jur);
    if (ar_turn_parse_hostport(addr, strlen(addr), &l.addr) != 0)
        return l;
    l.allocations = 5;
    l.capacity = 100;
    l.cpu = 0.1;
    return l;
}

#define CHECK(cond, what)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL: %s\n", what);                                                   \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    CHECK(argc == 3, "usage: bus_check NATS_URL_1 NATS_URL_2");
    ar_turn_loadboard_t *board_a = ar_turn_loadboard_new("a", "eu", 3000);
    ar_turn_loadboard_t *board_b = ar_turn_loadboard_new("b", "eu", 3000);
    ar_turn_loadboard_t *board_us = ar_turn_loadboard_new("c", "us", 3000);
    ar_turn_loadbus_t *bus_a, *bus_b, *bus_us;
    CHECK(ar_turn_loadbus_open(&bus_a, argv[1], NULL, board_a, "eu") == 0, "open bus a");
    CHECK(ar_turn_loadbus_open(&bus_b, argv[2], NULL, board_b, "eu") == 0, "open bus b");
    CHECK(ar_turn_loadbus_open(&bus_us, argv[2], NULL, board_us, "us") == 0, "open bus us");

    ar_turn_load_t b = report("b", "eu", "192.0.2.2:3478");
    ar_turn_load_t c = report("c", "us", "198.51.100.3:3478");
    c.allocations = 0; /* idle: it would win if it were ever on the board */
    struct sockaddr_storage pick;
    int found = 0;
    for (int i = 0; i < 100 && !found; i++) {
        b.at_ms = c.at_ms = now_ms();
        CHECK(ar_turn_loadbus_publish(bus_us, &c) == 0, "publish c");
        CHECK(ar_turn_loadbus_publish(bus_b, &b) == 0, "publish b");
        usleep(100 * 1000);
        found = ar_turn_loadboard_pick(board_a, now_ms(), 0.9, &pick) == 0;
    }
    CHECK(found, "relay a never saw relay b's report across the cluster");
    char text[80];
    ar_turn_format_hostport((struct sockaddr *)&pick, text, sizeof(text));
    CHECK(strcmp(text, "192.0.2.2:3478") == 0, "a picked something other than b");

    /* A malformed report on the eu subject, published with a plain NATS client. */
    natsConnection *raw = NULL;
    CHECK(natsConnection_ConnectTo(&raw, argv[2]) == NATS_OK, "raw connect");
    CHECK(natsConnection_PublishString(raw, "anteroom.turn.load.eu", "{\"v\":1,\"x\":") == NATS_OK,
          "raw publish");
    natsConnection_Flush(raw);
    uint64_t received = 0, refused = 0;
    for (int i = 0; i < 50 && refused == 0; i++) {
        usleep(50 * 1000);
        ar_turn_loadbus_counts(bus_a, &received, &refused);
    }
    CHECK(refused == 1, "malformed report not counted as refused");
    CHECK(received >= 1, "no report counted as received");
    natsConnection_Destroy(raw);

    ar_turn_loadbus_close(bus_a);
    ar_turn_loadbus_close(bus_b);
    ar_turn_loadbus_close(bus_us);
    ar_turn_loadboard_free(board_a);
    ar_turn_loadboard_free(board_b);
    ar_turn_loadboard_free(board_us);
    nats_Close();
    printf("load reports crossed the NATS cluster: received %llu, refused %llu\n",
           (unsigned long long)received, (unsigned long long)refused);
    return 0;
}
