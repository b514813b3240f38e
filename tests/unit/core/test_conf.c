/* Configuration: every precedence step, every value type and every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/alloc.h"
#include "anteroom/conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int64_t port;
    char *realm;
    int verbose;
    int64_t timeout;
    int64_t quota;
    ar_conf_list_t denied;
    char *secret;
} cfg_t;

static const ar_conf_opt_t opts[] = {
    {"listening-port", AR_CONF_INT, offsetof(cfg_t, port), "3478", 1, 65535, "UDP/TCP port"},
    {"realm", AR_CONF_STR, offsetof(cfg_t, realm), "anteroom", 0, 0, "TURN realm"},
    {"verbose", AR_CONF_BOOL, offsetof(cfg_t, verbose), NULL, 0, 0, "more logs"},
    {"timeout", AR_CONF_DURATION, offsetof(cfg_t, timeout), "10s", 0, 7200000, "idle timeout"},
    {"total-quota", AR_CONF_SIZE, offsetof(cfg_t, quota), "1M", 0, 0, "bytes"},
    {"denied-peer-ip", AR_CONF_LIST, offsetof(cfg_t, denied), NULL, 0, 0, "ranges"},
    {"static-auth-secret", AR_CONF_STR, offsetof(cfg_t, secret), NULL, 0, 0, "secret"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))
#define PFX "ARTEST_"

static char conf_path[64];

static void write_conf(const char *text)
{
    snprintf(conf_path, sizeof(conf_path), "/tmp/ar_conf_test_XXXXXX");
    int fd = mkstemp(conf_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static int load(cfg_t *c, char *err, int argc, char **argv)
{
    memset(c, 0xab, sizeof(*c)); /* garbage: the loader must initialise every field */
    return ar_conf_load(opts, NOPTS, c, PFX, argc, argv, err, 256);
}

static int teardown(void **state)
{
    (void)state;
    if (conf_path[0] != '\0')
        unlink(conf_path);
    conf_path[0] = '\0';
    unsetenv(PFX "LISTENING_PORT");
    unsetenv(PFX "DENIED_PEER_IP");
    unsetenv(PFX "REALM");
    unsetenv(PFX "CONFIG");
    unsetenv(PFX "LISTEN_PORT");
    unsetenv(PFX "VERBOSE");
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    char *argv[] = {"prog"};
    assert_int_equal(load(&c, err, 1, argv), 0);
    assert_int_equal(c.port, 3478);
    assert_string_equal(c.realm, "anteroom");
    assert_int_equal(c.verbose, 0);
    assert_int_equal(c.timeout, 10000);
    assert_int_equal(c.quota, 1024 * 1024);
    assert_int_equal(c.denied.count, 0);
    assert_null(c.secret);
    ar_conf_free(opts, NOPTS, &c);
    assert_null(c.realm);
}

static void test_precedence(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    write_conf("# comment\n"
               "listening-port=4000\n"
               "realm example.org   # trailing comment\n"
               "verbose\n"
               "timeout = 500ms\n"
               "denied-peer-ip=10.0.0.0-10.255.255.255\n"
               "denied-peer-ip=192.168.0.0-192.168.255.255\n"
               "static-auth-secret=\"a#b c\"\n"
               "\n");
    /* File over defaults. */
    char *argv1[] = {"prog", "-c", conf_path};
    assert_int_equal(load(&c, err, 3, argv1), 0);
    assert_int_equal(c.port, 4000);
    assert_string_equal(c.realm, "example.org");
    assert_int_equal(c.verbose, 1);
    assert_int_equal(c.timeout, 500);
    assert_int_equal(c.denied.count, 2);
    assert_string_equal(c.denied.items[1], "192.168.0.0-192.168.255.255");
    assert_string_equal(c.secret, "a#b c");
    ar_conf_free(opts, NOPTS, &c);

    /* Environment over file; an environment list replaces the file's list. */
    setenv(PFX "LISTENING_PORT", "5000", 1);
    setenv(PFX "DENIED_PEER_IP", "1.0.0.0-1.0.0.255,2.0.0.0-2.0.0.255", 1);
    setenv(PFX "VERBOSE", "off", 1);
    assert_int_equal(load(&c, err, 3, argv1), 0);
    assert_int_equal(c.port, 5000);
    assert_int_equal(c.verbose, 0);
    assert_string_equal(c.realm, "example.org");
    assert_int_equal(c.denied.count, 2);
    assert_string_equal(c.denied.items[0], "1.0.0.0-1.0.0.255");
    assert_string_equal(c.denied.items[1], "2.0.0.0-2.0.0.255");
    ar_conf_free(opts, NOPTS, &c);

    /* Flags over environment, in all three spellings; flag lists replace and accumulate. */
    char *argv2[] = {"prog",          "--config=", "--listening-port=6000",    "--realm",
                     "flags.example", "--verbose", "--denied-peer-ip=9.9.9.9", "--denied-peer-ip",
                     "8.8.8.8"};
    /* "--config=" (empty) means no file: the environment and flags still apply. */
    assert_int_equal(load(&c, err, 9, argv2), 0);
    assert_int_equal(c.port, 6000);
    assert_string_equal(c.realm, "flags.example");
    assert_int_equal(c.verbose, 1);
    assert_int_equal(c.denied.count, 2);
    assert_string_equal(c.denied.items[0], "9.9.9.9");
    assert_string_equal(c.denied.items[1], "8.8.8.8");
    ar_conf_free(opts, NOPTS, &c);

    /* The file path may come from PREFIX + CONFIG. */
    unsetenv(PFX "LISTENING_PORT");
    setenv(PFX "CONFIG", conf_path, 1);
    char *argv3[] = {"prog", "--verbose=false"};
    assert_int_equal(load(&c, err, 2, argv3), 0);
    assert_int_equal(c.port, 4000);
    assert_int_equal(c.verbose, 0);
    ar_conf_free(opts, NOPTS, &c);
}

static void test_value_types(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    static const struct {
        const char *flag;
        int64_t timeout, quota;
    } cases[] = {
        {"--timeout=2h", 7200000, -1},
        {"--timeout=5m", 300000, -1},
        {"--timeout=7", 7000, -1},
        {"--total-quota=512", -1, 512},
        {"--total-quota=64k", -1, 65536},
        {"--total-quota=10M", -1, 10485760},
        {"--total-quota=1G", -1, 1073741824},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[] = {"prog", (char *)cases[i].flag};
        assert_int_equal(load(&c, err, 2, argv), 0);
        if (cases[i].timeout >= 0)
            assert_int_equal(c.timeout, cases[i].timeout);
        if (cases[i].quota >= 0)
            assert_int_equal(c.quota, cases[i].quota);
        ar_conf_free(opts, NOPTS, &c);
    }
    static const char *const bools[] = {"true", "YES", "on", "1"};
    for (size_t i = 0; i < 4; i++) {
        char flag[32];
        snprintf(flag, sizeof(flag), "--verbose=%s", bools[i]);
        char *argv[] = {"prog", flag};
        assert_int_equal(load(&c, err, 2, argv), 0);
        assert_int_equal(c.verbose, 1);
        ar_conf_free(opts, NOPTS, &c);
    }
}

/* Each bad input must fail with the right code and exactly this one-line message. */
static void test_errors(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    static const struct {
        const char *arg;
        int rc;
        const char *msg;
    } cases[] = {
        {"--max-port=1", AR_EUNKNOWNKEY, "--max-port: unknown option"},
        {"--listening-port=70000", AR_ERANGE, "--listening-port: 70000 is above 65535"},
        {"--listening-port=0", AR_ERANGE, "--listening-port: 0 is below 1"},
        {"--listening-port=12ab", AR_ECONFIG, "--listening-port: '12ab' is not an integer"},
        {"--listening-port=", AR_ECONFIG, "--listening-port: '' is not an integer"},
        {"--listening-port=99999999999999999999", AR_ERANGE,
         "--listening-port: 99999999999999999999 is out of range"},
        {"--verbose=maybe", AR_ECONFIG,
         "--verbose: 'maybe' is not a boolean (true/false/yes/no/on/off/1/0)"},
        {"--timeout=10x", AR_ECONFIG, "--timeout: '10x' is not a duration (500ms, 10s, 5m, 2h)"},
        {"--timeout=-5s", AR_ECONFIG, "--timeout: '-5s' is not a duration (500ms, 10s, 5m, 2h)"},
        {"--timeout=2h1", AR_ECONFIG, "--timeout: '2h1' is not a duration (500ms, 10s, 5m, 2h)"},
        {"--timeout=2h", 0, ""},
        {"--timeout=3h", AR_ERANGE, "--timeout: 3h is above 7200000ms"},
        {"--total-quota=9999999999G", AR_ERANGE, "--total-quota: 9999999999G is out of range"},
        {"--total-quota=1T", AR_ECONFIG, "--total-quota: '1T' is not a size (512, 64k, 10M, 1G)"},
        {"positional", AR_ECONFIG, "positional: unexpected argument (options are --key=value)"},
        {"-x", AR_ECONFIG, "-x: unexpected argument (options are --key=value)"},
        {"--realm", AR_ECONFIG, "--realm: needs a value"},
        {"--config", AR_ECONFIG, "--config: needs a value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[] = {"prog", (char *)cases[i].arg};
        int rc = load(&c, err, 2, argv);
        if (rc != cases[i].rc || strcmp(err, cases[i].msg) != 0)
            fail_msg("case %zu (%s): rc %d err '%s'", i, cases[i].arg, rc, err);
        /* A failed load leaves nothing to free, and freeing again is harmless. */
        if (rc < 0)
            assert_null(c.realm);
        ar_conf_free(opts, NOPTS, &c);
    }
}

static void test_file_errors(void **state)
{
    (void)state;
    cfg_t c;
    char err[256], expect[256];
    static const struct {
        const char *text;
        int rc;
        const char *msg; /* after "<path>:" */
    } cases[] = {
        {"realm=x\n\nlisten-port=3478\n", AR_EUNKNOWNKEY, "3: unknown key 'listen-port'"},
        {"listening-port=abc\n", AR_ECONFIG, "1: listening-port: 'abc' is not an integer"},
        {"# c\nlistening-port 65536\n", AR_ERANGE, "2: listening-port: 65536 is above 65535"},
        {"realm\n", AR_ECONFIG, "1: realm: needs a value"},
        {"verbose=perhaps\n", AR_ECONFIG,
         "1: verbose: 'perhaps' is not a boolean (true/false/yes/no/on/off/1/0)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_conf(cases[i].text);
        char *argv[] = {"prog", "--config", conf_path};
        int rc = load(&c, err, 3, argv);
        snprintf(expect, sizeof(expect), "%s:%s", conf_path, cases[i].msg);
        if (rc != cases[i].rc || strcmp(err, expect) != 0)
            fail_msg("case %zu: rc %d err '%s'", i, rc, err);
        ar_conf_free(opts, NOPTS, &c);
        unlink(conf_path);
    }
    conf_path[0] = '\0';

    /* A line over the cap is refused rather than cut. */
    char *big = malloc(5000);
    memset(big, 'a', 4999);
    memcpy(big, "realm=", 6);
    big[4999] = '\0';
    write_conf(big);
    free(big);
    char *argv[] = {"prog", "--config", conf_path};
    assert_int_equal(load(&c, err, 3, argv), AR_ETOOBIG);
    snprintf(expect, sizeof(expect), "%s:1: line longer than 4096 bytes", conf_path);
    assert_string_equal(err, expect);

    char *missing[] = {"prog", "--config", "/nonexistent/anteroom.conf"};
    assert_int_equal(load(&c, err, 3, missing), AR_EIO);
    assert_string_equal(err, "/nonexistent/anteroom.conf: cannot open configuration file: No "
                             "such file or directory");
}

static void test_env_errors(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    char *argv[] = {"prog"};
    setenv(PFX "LISTEN_PORT", "1", 1);
    assert_int_equal(load(&c, err, 1, argv), AR_EUNKNOWNKEY);
    assert_string_equal(err, PFX "LISTEN_PORT: unknown key 'LISTEN_PORT'");
    unsetenv(PFX "LISTEN_PORT");
    setenv(PFX "LISTENING_PORT", "70000", 1);
    assert_int_equal(load(&c, err, 1, argv), AR_ERANGE);
    assert_string_equal(err, PFX "LISTENING_PORT: 70000 is above 65535");
    unsetenv(PFX "LISTENING_PORT");
    /* The file is applied before the environment, so a file error shows first. */
    write_conf("realm=from-file\n");
    setenv(PFX "REALM", "from-env", 1);
    char *argv2[] = {"prog", "-c", conf_path};
    assert_int_equal(load(&c, err, 3, argv2), 0);
    assert_string_equal(c.realm, "from-env");
    ar_conf_free(opts, NOPTS, &c);
}

static void test_help(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    char *argv[] = {"prog", "--listening-port=1", "--help"};
    fflush(stdout);
    int saved = dup(1);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), 1);
    int rc = load(&c, err, 3, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    assert_int_equal(rc, 1);
    char out[4096] = {0};
    rewind(tmp);
    size_t n = fread(out, 1, sizeof(out) - 1, tmp);
    fclose(tmp);
    assert_true(n > 0);
    assert_non_null(strstr(out, "  --listening-port  (integer, default 3478, 1..65535)  UDP/TCP "
                                "port\n"));
    assert_non_null(strstr(out, "  --verbose  (bool)  more logs\n"));
    assert_non_null(strstr(out, PFX "NAME"));
    ar_conf_free(opts, NOPTS, &c);
}

/* Failing each allocation in turn must give AR_ENOMEM and leak nothing (ASan checks leaks). */
static void test_alloc_failures(void **state)
{
    (void)state;
    cfg_t c;
    char err[256];
    write_conf("realm=r\ndenied-peer-ip=a\ndenied-peer-ip=b\n");
    char *argv[] = {"prog", "-c", conf_path, "--static-auth-secret=s", "--denied-peer-ip=c"};
    int ok = 0;
    for (long n = 0; n < 100 && !ok; n++) {
        ar_alloc_fail_after(n);
        int rc = load(&c, err, 5, argv);
        long failed = ar_alloc_fail_after(-1);
        if (rc == 0) {
            assert_int_equal(failed, 0);
            ok = 1;
        } else {
            assert_int_equal(rc, AR_ENOMEM);
        }
        ar_conf_free(opts, NOPTS, &c);
    }
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults, teardown),
        cmocka_unit_test_teardown(test_precedence, teardown),
        cmocka_unit_test_teardown(test_value_types, teardown),
        cmocka_unit_test_teardown(test_errors, teardown),
        cmocka_unit_test_teardown(test_file_errors, teardown),
        cmocka_unit_test_teardown(test_env_errors, teardown),
        cmocka_unit_test_teardown(test_help, teardown),
        cmocka_unit_test_teardown(test_alloc_failures, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
