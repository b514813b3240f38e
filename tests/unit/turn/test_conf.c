/*
 * anteroom-turn's configuration: coturn-style files and flags, unknown keys, the resolved plan
 * (relay and external addresses, quotas, lifetimes), and the real peer policy wired into the
 * engine so every reserved peer class gets 403.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "turn/turn_conf.h"
#include "turn_test.h"

#include "anteroom/err.h"
#include "anteroom/worker.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int load_argv(ar_turn_conf_t *c, char **argv, int argc, char *err, size_t errlen)
{
    return ar_turn_conf_load(c, argc, argv, err, errlen);
}

static void test_coturn_file_and_flags(void **state)
{
    (void)state;
    char path[] = "/tmp/ar_turn_conf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# a coturn turnserver.conf\n"
                       "listening-port=3479\n"
                       "listening-ip=127.0.0.1\n"
                       "relay-ip=127.0.0.1\n"
                       "external-ip=203.0.113.10/127.0.0.1\n"
                       "realm=example.org\n"
                       "fingerprint\n"
                       "lt-cred-mech\n"
                       "use-auth-secret\n"
                       "static-auth-secret=north\n"
                       "user=alice:secret\n"
                       "user=bob:0x00112233445566778899aabbccddeeff\n"
                       "min-port=50000\n"
                       "max-port=50100\n"
                       "denied-peer-ip=203.0.113.0-203.0.113.255\n"
                       "allowed-peer-ip=10.1.0.0/16\n"
                       "total-quota=100\n"
                       "user-quota=10\n"
                       "max-bps=64000\n"
                       "stale-nonce=300\n"
                       "no-cli\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char *argv[] = {"anteroom-turn", "-c", path, "--listening-port", "3480", "--workers=3"};
    ar_turn_conf_t c;
    char err[256];
    assert_int_equal(load_argv(&c, argv, 6, err, sizeof(err)), 0);
    assert_int_equal(c.listening_port, 3480); /* the flag wins over the file */
    assert_int_equal(c.user.count, 2);
    assert_int_equal(c.user_quota, 10);
    assert_int_equal(c.stale_nonce, 300000);
    ar_turn_plan_t p;
    assert_int_equal(ar_turn_conf_plan(&c, &p, err, sizeof(err)), 0);
    assert_int_equal(p.workers, 3);
    assert_int_equal(p.nlisten, 1);
    assert_int_equal(ntohs(((struct sockaddr_in *)&p.listen[0])->sin_port), 3480);
    assert_int_equal(p.min_port, 50000);
    assert_int_equal(p.max_port, 50100);
    assert_int_equal(p.opts.relay4.family, 4);
    assert_memory_equal(p.opts.relay4.ip, "\x7f\x00\x00\x01", 4);
    assert_memory_equal(p.opts.external4.ip, "\xcb\x00\x71\x0a", 4);
    assert_int_equal(p.opts.nonce_lifetime, 300);
    assert_int_equal(p.opts.max_lifetime, 3600);
    assert_int_equal(p.opts.max_bps, 64000);
    assert_int_equal(p.opts.nusers, 2);
    assert_int_equal(p.opts.nsecrets, 1);
    /* Peer policy: the denied range is refused, the allowed private prefix passes. */
    struct sockaddr_storage ss;
    assert_int_equal(ar_addr_parse("203.0.113.77", 1, &ss), 0);
    assert_int_equal(p.opts.peer_allowed(p.opts.peer_ctx, (struct sockaddr *)&ss), AR_EPERM);
    assert_int_equal(ar_addr_parse("10.1.2.3", 1, &ss), 0);
    assert_int_equal(p.opts.peer_allowed(p.opts.peer_ctx, (struct sockaddr *)&ss), 0);
    assert_int_equal(ar_addr_parse("10.2.2.3", 1, &ss), 0);
    assert_int_equal(p.opts.peer_allowed(p.opts.peer_ctx, (struct sockaddr *)&ss), AR_EPERM);
    assert_int_equal(ar_addr_parse("1.1.1.1", 1, &ss), 0);
    assert_int_equal(p.opts.peer_allowed(p.opts.peer_ctx, (struct sockaddr *)&ss), 0);
    /* The shared state accepts the users, including the 0x key form. */
    ar_turn_shared_t *sh = ar_turn_shared_new(&p.opts, err, sizeof(err));
    assert_non_null(sh);
    ar_turn_shared_free(sh);
    ar_turn_plan_free(&p);
    ar_turn_conf_free(&c);
    unlink(path);
}

static void test_unknown_key_and_bad_values(void **state)
{
    (void)state;
    ar_turn_conf_t c;
    char err[256];
    char *a1[] = {"anteroom-turn", "--listen-port", "3478"};
    assert_int_equal(load_argv(&c, a1, 3, err, sizeof(err)), AR_EUNKNOWNKEY);
    assert_non_null(strstr(err, "listen-port"));
    ar_turn_conf_free(&c);
    char *a2[] = {"anteroom-turn", "--max-port", "70000"};
    assert_true(load_argv(&c, a2, 3, err, sizeof(err)) < 0);
    ar_turn_conf_free(&c);

    ar_turn_plan_t p;
    char *a3[] = {"anteroom-turn", "--min-port", "60000", "--max-port", "50000"};
    assert_int_equal(load_argv(&c, a3, 5, err, sizeof(err)), 0);
    assert_int_equal(ar_turn_conf_plan(&c, &p, err, sizeof(err)), AR_ECONFIG);
    assert_non_null(strstr(err, "min-port"));
    ar_turn_conf_free(&c);
    char *a4[] = {"anteroom-turn", "--use-auth-secret"};
    assert_int_equal(load_argv(&c, a4, 2, err, sizeof(err)), 0);
    assert_int_equal(ar_turn_conf_plan(&c, &p, err, sizeof(err)), AR_ECONFIG);
    assert_non_null(strstr(err, "static-auth-secret"));
    ar_turn_conf_free(&c);
    char *a5[] = {"anteroom-turn", "--denied-peer-ip", "not-an-ip"};
    assert_int_equal(load_argv(&c, a5, 3, err, sizeof(err)), 0);
    assert_int_equal(ar_turn_conf_plan(&c, &p, err, sizeof(err)), AR_ECONFIG);
    ar_turn_conf_free(&c);
    char *a6[] = {"anteroom-turn", "--metrics-listen", "localhost"};
    assert_int_equal(load_argv(&c, a6, 3, err, sizeof(err)), 0);
    assert_int_equal(ar_turn_conf_plan(&c, &p, err, sizeof(err)), AR_ECONFIG);
    ar_turn_conf_free(&c);
    /* A bad user line is refused when the shared state is built. */
    char *a7[] = {"anteroom-turn", "--user", "nocolon", "--relay-ip", "127.0.0.1"};
    assert_int_equal(load_argv(&c, a7, 5, err, sizeof(err)), 0);
    assert_int_equal(ar_turn_conf_plan(&c, &p, err, sizeof(err)), 0);
    assert_null(ar_turn_shared_new(&p.opts, err, sizeof(err)));
    assert_non_null(strstr(err, "user #1"));
    ar_turn_plan_free(&p);
    ar_turn_conf_free(&c);
}

static void add_v6_request(ar_stun_builder_t *b, void *arg)
{
    (void)arg;
    uint8_t rt[4] = {AR_TURN_PROTO_UDP, 0, 0, 0}, fam[4] = {2, 0, 0, 0};
    ar_stun_build_attr(b, AR_TURN_ATTR_REQUESTED_TRANSPORT, rt, 4);
    ar_stun_build_attr(b, AR_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, fam, 4);
}

/* Every reserved class of peer, in IPv4 and the IPv6 forms that embed IPv4, gets 403 from
 * CreatePermission and ChannelBind through the daemon's real policy. */
static void test_reserved_peers_403(void **state)
{
    (void)state;
    ar_turn_conf_t c;
    char err[256];
    char *argv[] = {"anteroom-turn", "--relay-ip", "192.0.2.1", "--relay-ip", "2001:db8::1"};
    assert_int_equal(load_argv(&c, argv, 5, err, sizeof(err)), 0);
    ar_turn_plan_t p;
    assert_int_equal(ar_turn_conf_plan(&c, &p, err, sizeof(err)), 0);
    static const char *const v4[] = {
        "127.0.0.1",  "0.0.0.0",         "10.0.0.1",   "172.16.5.4",      "192.168.1.1",
        "100.64.0.1", "169.254.169.254", "224.0.0.1",  "239.255.255.250", "255.255.255.255",
        "240.0.0.1",  "192.0.2.55",      "198.18.0.1", "0.1.2.3",
    };
    static const char *const v6[] = {
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::1",
        "::ffff:169.254.169.254",
        "2001:db8::99",
    };
    tc_t t;
    ar_turn_opts_t o = p.opts;
    o.realm = NULL; /* the harness signs for its own realm */
    tc_init(&t, &o);
    assert_int_equal(tc_allocate(&t), 0);
    for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
        assert_int_equal(tc_create_permission(&t, v4[i], 0), 403);
        assert_int_equal(tc_channel_bind(&t, (uint16_t)(0x4000 + i), v4[i], 5000), 403);
    }
    assert_int_equal(ar_turn_engine_stats(t.e)->denied_peers, 2 * sizeof(v4) / sizeof(v4[0]));
    /* A public address passes. */
    assert_int_equal(tc_create_permission(&t, "1.1.1.1", 0), 0);
    /* An IPv6 allocation (REQUESTED-ADDRESS-FAMILY) refuses the IPv6 forms. */
    t.t.client.port = 40001;
    int code;
    assert_int_equal(tc_request(&t, AR_TURN_ALLOCATE, true, add_v6_request, NULL, &code),
                     AR_STUN_SUCCESS);
    for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
        assert_int_equal(tc_create_permission(&t, v6[i], 0), 403);
        assert_int_equal(tc_channel_bind(&t, (uint16_t)(0x4100 + i), v6[i], 5000), 403);
    }
    assert_int_equal(tc_create_permission(&t, "2606:4700::1111", 0), 0);
    tc_free(&t);
    ar_turn_plan_free(&p);
    ar_turn_conf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coturn_file_and_flags),
        cmocka_unit_test(test_unknown_key_and_bad_values),
        cmocka_unit_test(test_reserved_peers_403),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
