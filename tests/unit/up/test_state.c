/*
 * `anteroom up` without processes: the state directory (modes, lock, reuse, bad files), the
 * certificate it generates, the relay's command line, and binary lookup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "up.h"

#include "anteroom/alloc.h"
#include "anteroom/rand.h"

#include <fcntl.h>
#include <ftw.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[PATH_MAX];

/* out = a/b in a PATH_MAX buffer; test paths are short, so truncation is a test bug. */
static void pathj(char *out, const char *a, const char *b)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", a, b);
    assert_true(n > 0 && n < PATH_MAX);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ar-up-unit.XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static unsigned mode_of(const char *dir, const char *rel)
{
    char p[PATH_MAX];
    struct stat sb;
    pathj(p, dir, rel);
    if (stat(p, &sb) != 0)
        return 0;
    return sb.st_mode & 07777;
}

static void test_fresh_state(void **state)
{
    (void)state;
    char dir[PATH_MAX], err[256] = "";
    pathj(dir, tmpdir, "a/b/state"); /* parents are created too */
    ar__up_state_t st;
    assert_int_equal(ar__state_prepare(&st, dir, 0, err, sizeof(err)), 0);
    assert_int_equal(mode_of(dir, "."), 0700);
    assert_int_equal(mode_of(dir, "tls"), 0700);
    assert_int_equal(mode_of(dir, "secrets"), 0700);
    assert_int_equal(mode_of(dir, "logs"), 0700);
    assert_int_equal(mode_of(dir, "tls/cert.pem"), 0600);
    assert_int_equal(mode_of(dir, "tls/key.pem"), 0600);
    assert_int_equal(mode_of(dir, "secrets/turn-static-auth-secret"), 0600);
    assert_int_equal(strlen(st.turn_secret), 43); /* 256 bits as unpadded base64url */
    assert_int_equal(st.dir[0], '/');

    FILE *f = fopen(st.cert, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    f = fopen(st.key, "r");
    assert_non_null(f);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    assert_non_null(k);
    assert_int_equal(X509_check_private_key(x, k), 1);
    assert_true(EVP_PKEY_is_a(k, "EC"));
    assert_int_equal(EVP_PKEY_get_bits(k), 256);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "10.0.0.1", 0), 0);
    assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
    assert_int_equal(X509_check_ca(x), 0);
    /* Self-signed: it verifies under its own key. */
    assert_int_equal(X509_verify(x, k), 1);
    X509_free(x);
    EVP_PKEY_free(k);

    int fd = ar__state_open_log(&st, "turn");
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mode_of(dir, "logs/turn.log"), 0600);
    ar__state_close(&st);
    assert_int_equal(st.turn_secret[0], '\0');
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = calloc(1, 8192);
    if (buf != NULL)
        if (fread(buf, 1, 8191, f) == 0)
            buf[0] = '\0';
    fclose(f);
    return buf;
}

static void test_lock_and_reuse(void **state)
{
    (void)state;
    char dir[PATH_MAX], err[256] = "";
    pathj(dir, tmpdir, "s");
    ar__up_state_t a, b;
    assert_int_equal(ar__state_prepare(&a, dir, 0, err, sizeof(err)), 0);
    char secret[128];
    snprintf(secret, sizeof(secret), "%s", a.turn_secret);
    char *cert = slurp(a.cert);
    assert_non_null(cert);

    /* A second supervisor on the same directory is refused while the first holds it. */
    assert_int_equal(ar__state_prepare(&b, dir, 0, err, sizeof(err)), AR_EADDRINUSE);
    assert_non_null(strstr(err, "another"));
    ar__state_close(&b);
    ar__state_close(&a);

    /* Afterwards the same secret and certificate are reused, not remade. */
    assert_int_equal(ar__state_prepare(&b, dir, 0, err, sizeof(err)), 0);
    assert_string_equal(b.turn_secret, secret);
    char *cert2 = slurp(b.cert);
    assert_non_null(cert2);
    assert_string_equal(cert, cert2);
    ar__state_close(&b);
    free(cert);
    free(cert2);
}

static void test_bad_secret_and_loose_modes(void **state)
{
    (void)state;
    char dir[PATH_MAX], path[PATH_MAX], err[256] = "";
    pathj(dir, tmpdir, "bad");
    ar__up_state_t st;
    assert_int_equal(ar__state_prepare(&st, dir, 0, err, sizeof(err)), 0);
    ar__state_close(&st);

    /* A key an operator left readable is tightened back to 0600. */
    pathj(path, dir, "tls/key.pem");
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(ar__state_prepare(&st, dir, 0, err, sizeof(err)), 0);
    ar__state_close(&st);
    assert_int_equal(mode_of(dir, "tls/key.pem"), 0600);

    /* A secret file we did not write is an error, not silently replaced. */
    pathj(path, dir, "secrets/turn-static-auth-secret");
    assert_int_equal(ar__state_write_file(path, "short\n", 6), 0);
    assert_int_equal(ar__state_prepare(&st, dir, 0, err, sizeof(err)), AR_EPARSE);
    assert_non_null(strstr(err, "delete it"));
    ar__state_close(&st);
    assert_int_equal(ar__state_write_file(path, "bad chars: !!!!!!!!!!!!!!!!!!!!!!!!!!!!!", 40), 0);
    assert_int_equal(ar__state_prepare(&st, dir, 0, err, sizeof(err)), AR_EPARSE);
    ar__state_close(&st);
}

static void test_no_tls_makes_no_cert(void **state)
{
    (void)state;
    char dir[PATH_MAX], err[256] = "";
    pathj(dir, tmpdir, "plain");
    ar__up_state_t st;
    assert_int_equal(ar__state_prepare(&st, dir, 1, err, sizeof(err)), 0);
    assert_int_equal(mode_of(dir, "tls/cert.pem"), 0);
    assert_int_equal(mode_of(dir, "secrets/turn-static-auth-secret"), 0600);
    ar__state_close(&st);
}

static void test_log_rotation(void **state)
{
    (void)state;
    char dir[PATH_MAX], path[PATH_MAX], err[256] = "";
    pathj(dir, tmpdir, "rot");
    ar__up_state_t st;
    assert_int_equal(ar__state_prepare(&st, dir, 1, err, sizeof(err)), 0);
    pathj(path, dir, "logs/turn.log");
    /* A sparse 65 MiB log takes no disk but passes the rotation size. */
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 65L << 20), 0);
    close(fd);
    fd = ar__state_open_log(&st, "turn");
    assert_true(fd >= 0);
    close(fd);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    pathj(path, dir, "logs/turn.log.1");
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 65L << 20);
    ar__state_close(&st);
}

static const ar__daemon_spec_t *turn_spec(void)
{
    for (size_t i = 0; i < ar__ndaemons; i++)
        if (strcmp(ar__daemons[i].name, "turn") == 0)
            return &ar__daemons[i];
    return NULL;
}

static int has_arg(const ar__daemon_cmd_t *c, const char *flag, const char *value)
{
    for (size_t i = 0; i + 1 < c->argc; i++)
        if (strcmp(c->argv[i], flag) == 0 && (value == NULL || strcmp(c->argv[i + 1], value) == 0))
            return 1;
    return 0;
}

static void test_turn_command_line(void **state)
{
    (void)state;
    const ar__daemon_spec_t *spec = turn_spec();
    assert_non_null(spec);
    ar__up_conf_t conf = {.bind = "::1", .turn_port = 3478, .turn_tls_port = 5349};
    ar__up_state_t st = {.cert = "/s/tls/cert.pem", .key = "/s/tls/key.pem"};
    snprintf(st.turn_secret, sizeof(st.turn_secret), "s3cr3t-value-that-is-long-enough-xx");
    ar__daemon_cmd_t c = {0};
    assert_int_equal(ar__cmd_arg(&c, "/bin/anteroom-turn"), 0);
    assert_int_equal(spec->build(&conf, &st, 9641, &c), 0);
    assert_true(has_arg(&c, "--listening-ip", "::1"));
    assert_true(has_arg(&c, "--listening-port", "3478"));
    assert_true(has_arg(&c, "--tls-listening-port", "5349"));
    assert_true(has_arg(&c, "--cert", "/s/tls/cert.pem"));
    assert_true(has_arg(&c, "--pkey", "/s/tls/key.pem"));
    assert_true(has_arg(&c, "--metrics-listen", "127.0.0.1:9641"));
    assert_null(c.argv[c.argc]);
    /* The secret travels in the environment only: argv is world-readable through ps. */
    for (size_t i = 0; i < c.argc; i++)
        assert_null(strstr(c.argv[i], "s3cr3t"));
    assert_int_equal(c.envc, 1);
    assert_string_equal(c.env[0],
                        "ANTEROOM_TURN_STATIC_AUTH_SECRET=s3cr3t-value-that-is-long-enough-xx");
    assert_string_equal(c.listeners, "udp+tcp [::1]:3478, tls [::1]:5349");
    assert_string_equal(c.metrics_url, "http://127.0.0.1:9641/metrics");
    assert_false(has_arg(&c, "--alt-tls-listening-port", NULL));
    ar__cmd_free(&c);

    /* A second TLS listener (443, for firewalls that pass only HTTPS) is passed on and shown. */
    conf.turn_alt_tls_port = 443;
    assert_int_equal(ar__cmd_arg(&c, "/bin/anteroom-turn"), 0);
    assert_int_equal(spec->build(&conf, &st, 9641, &c), 0);
    assert_true(has_arg(&c, "--alt-tls-listening-port", "443"));
    assert_string_equal(c.listeners, "udp+tcp [::1]:3478, tls [::1]:5349 and [::1]:443");
    ar__cmd_free(&c);
    conf.turn_alt_tls_port = 0;

    conf.no_tls = 1;
    conf.bind = "127.0.0.1";
    assert_int_equal(spec->build(&conf, &st, 9641, &c), 0);
    assert_false(has_arg(&c, "--tls-listening-port", NULL));
    assert_false(has_arg(&c, "--cert", NULL));
    assert_string_equal(c.listeners, "udp+tcp 127.0.0.1:3478");
    ar__cmd_free(&c);

    /* Every allocation failure is reported as AR_ENOMEM and leaks nothing (ASan checks). */
    for (long n = 0; n < 64; n++) {
        ar_alloc_fail_after(n);
        int rc = spec->build(&conf, &st, 9641, &c);
        long failed = ar_alloc_fail_after(-1);
        ar__cmd_free(&c);
        if (failed == 0) {
            assert_int_equal(rc, 0);
            break;
        }
        assert_int_equal(rc, AR_ENOMEM);
    }
}

static void test_daemon_find(void **state)
{
    (void)state;
    char path[PATH_MAX], bin[PATH_MAX];
    assert_int_equal(ar__daemon_find(tmpdir, "turn", path, sizeof(path)), AR_ENOTFOUND);
    pathj(bin, tmpdir, "anteroom-turn");
    assert_string_equal(path, bin); /* says where it looked */
    int fd = open(bin, O_WRONLY | O_CREAT, 0755);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ar__daemon_find(tmpdir, "turn", path, sizeof(path)), 0);
    assert_string_equal(path, bin);
    /* A file that is not executable is not a daemon. */
    assert_int_equal(chmod(bin, 0644), 0);
    assert_int_equal(ar__daemon_find(tmpdir, "turn", path, sizeof(path)), AR_ENOTFOUND);
}

static void test_backoff(void **state)
{
    (void)state;
    uint64_t b = 0;
    const uint64_t want[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_int_equal(ar__backoff_next(&b, 100), want[i]);
    assert_int_equal(ar__backoff_next(&b, 59999), 30000); /* not yet healthy */
    assert_int_equal(ar__backoff_next(&b, 60000), 500);   /* healthy for 60 s: start over */
    assert_int_equal(ar__backoff_next(&b, 0), 1000);
}

int main(void)
{
    if (ar_rand_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_secret_and_loose_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_tls_makes_no_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_rotation, setup, teardown),
        cmocka_unit_test(test_turn_command_line),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test_setup_teardown(test_daemon_find, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
