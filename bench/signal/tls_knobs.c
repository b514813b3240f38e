/*
 * What each OpenSSL 3 setting does to an idle server connection's memory, one setting at a time.
 * For each variant a fresh process accepts N TLS connections over socketpairs from a client
 * process (blocking, in lockstep), reads a 231-byte request and writes a 166-byte reply on each
 * (the sizes of our upgrade request and 101 response), and prints the RssAnon delta / N with
 * every connection still open. The baseline is tls_openssl.c's context; each variant changes one
 * thing. This isolates the library from our loop; ar_bench_signal measures the real listener.
 * Usage: ar_bench_tls_knobs CERT KEY [N=2000]
 */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { BASE, FREE_BUFFERS, TLS13_ONLY, NO_RELEASE, TICKETS, RENEG, MEM_BIO, NVARIANTS };
static const char *const names[NVARIANTS] = {
    "baseline (tls_openssl.c: RELEASE_BUFFERS, no cache, NO_TICKET, NO_RENEGOTIATION)",
    "+ SSL_free_buffers after the reply",
    "+ TLS 1.3 only (min version 1.3)",
    "- SSL_MODE_RELEASE_BUFFERS",
    "- SSL_OP_NO_TICKET (two TLS 1.3 tickets sent, session cache still off)",
    "- SSL_OP_NO_RENEGOTIATION",
    "memory BIOs (SSL_set_bio, we move the bytes) instead of SSL_set_fd",
};

static long rss_anon_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "RssAnon:", 8) == 0)
            v = atol(line + 8);
    if (f)
        fclose(f);
    return v;
}

/* Runs one blocking SSL call over memory BIOs: moves bytes between the BIOs and fd until the
 * call is done. op: 0 accept, 1 read, 2 write. */
static int mem_op(SSL *ssl, int fd, int op, void *buf, int len)
{
    char io[16384];
    for (;;) {
        int r = op == 0   ? SSL_accept(ssl)
                : op == 1 ? SSL_read(ssl, buf, len)
                          : SSL_write(ssl, buf, len);
        BIO *w = SSL_get_wbio(ssl);
        int n;
        while ((n = BIO_read(w, io, sizeof(io))) > 0)
            if (write(fd, io, (size_t)n) != n)
                return -1;
        if (r > 0)
            return r;
        if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
            return -1;
        ssize_t got = read(fd, io, sizeof(io));
        if (got <= 0 || BIO_write(SSL_get_rbio(ssl), io, (int)got) != (int)got)
            return -1;
    }
}

static void client(int n, int (*sv)[2], int hold)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char req[231], resp[166];
    memset(req, 'q', sizeof(req));
    for (int i = 0; i < n; i++) {
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, sv[i][1]);
        if (SSL_connect(ssl) != 1 || SSL_write(ssl, req, sizeof(req)) != (int)sizeof(req) ||
            SSL_read(ssl, resp, sizeof(resp)) <= 0)
            _exit(1);
    }
    char b;
    (void)!read(hold, &b, 1);
    _exit(0);
}

static int server(int v, int n, int (*sv)[2], SSL_CTX *ctx, int warm)
{
    static char req[231], resp[166];
    for (int i = 0; i < n; i++) {
        SSL *ssl = SSL_new(ctx);
        int ok;
        if (v == MEM_BIO) {
            SSL_set_bio(ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
            SSL_set_accept_state(ssl);
            ok = mem_op(ssl, sv[i][0], 0, NULL, 0) > 0 &&
                 mem_op(ssl, sv[i][0], 1, req, sizeof(req)) == (int)sizeof(req) &&
                 mem_op(ssl, sv[i][0], 2, resp, sizeof(resp)) == (int)sizeof(resp);
        } else {
            SSL_set_fd(ssl, sv[i][0]);
            ok = SSL_accept(ssl) == 1 && SSL_read(ssl, req, sizeof(req)) == (int)sizeof(req) &&
                 SSL_write(ssl, resp, sizeof(resp)) == (int)sizeof(resp);
        }
        if (!ok)
            return -1;
        if (v == FREE_BUFFERS)
            (void)SSL_free_buffers(ssl);
        if (warm)
            SSL_free(ssl); /* warm-up connections only load code and lazy tables */
    }
    return 0;
}

static int variant(int v, const char *cert, const char *key, int n)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, v == TLS13_ONLY ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    uint64_t opts = SSL_OP_NO_COMPRESSION;
    if (v != TICKETS) {
        opts |= SSL_OP_NO_TICKET;
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    if (v != RENEG)
        opts |= SSL_OP_NO_RENEGOTIATION;
    SSL_CTX_set_options(ctx, opts);
    long mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
    if (v != NO_RELEASE)
        mode |= SSL_MODE_RELEASE_BUFFERS;
    SSL_CTX_set_mode(ctx, mode);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return 1;
    enum { WARM = 50 };
    int(*sv)[2] = calloc((size_t)(n + WARM), sizeof(*sv));
    for (int i = 0; i < n + WARM; i++)
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0)
            return 1;
    int hold[2];
    if (pipe(hold) != 0)
        return 1;
    pid_t kid = fork();
    if (kid == 0) {
        close(hold[1]);
        client(n + WARM, sv, hold[0]);
    }
    close(hold[0]);
    if (server(v, WARM, sv, ctx, 1) != 0)
        return 1;
    long before = rss_anon_kib();
    if (server(v, n, sv + WARM, ctx, 0) != 0)
        return 1;
    long after = rss_anon_kib();
    printf("%6.0f B per idle connection: %s\n", (double)(after - before) * 1024.0 / n, names[v]);
    fflush(stdout);
    close(hold[1]);
    int st;
    waitpid(kid, &st, 0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int n = argc > 3 ? atoi(argv[3]) : 2000;
    if (n < 1 || n > 8000) /* two fds per connection here, under the 20,000 files limit */
        return 2;
    printf("OpenSSL %s, %d connections per variant, TLS 1.3 client (OpenSSL defaults)\n",
           OpenSSL_version(OPENSSL_VERSION), n);
    fflush(stdout); /* before fork, or every child prints it again */
    for (int v = 0; v < NVARIANTS; v++) {
        /* A fresh process per variant, so no variant inherits another's heap. */
        pid_t pid = fork();
        if (pid == 0)
            _exit(variant(v, argv[1], argv[2], n));
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            printf("variant %d failed\n", v);
    }
    return 0;
}
