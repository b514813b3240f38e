/*
 * Where OpenSSL 3's memory goes per idle server TLS connection: OpenSSL's allocator is pointed at
 * a counter (CRYPTO_set_mem_functions, which receives each call's source file and line), N
 * connections are accepted over socketpairs from a client process with tls_openssl.c's context
 * settings and our upgrade's sizes (a 231-byte request read, a 166-byte reply written), and the
 * bytes still allocated per connection are printed by call site, largest first. Then the same
 * after SSL_free: what is left when the listener lets go of the SSL object (tls_openssl.c).
 * Usage: ar_bench_tls_alloc CERT KEY [N=1000]   (AR_BENCH_TLS12=1: a TLS 1.2 client)
 */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SITES 4096

static struct site_s {
    const char *file;
    int line;
    long bytes, count, base_bytes, base_count;
} sites[SITES];
static int nsites;

typedef struct {
    size_t size;
    int site;
    int pad;
} head_t;

static int site_of(const char *file, int line)
{
    for (int i = 0; i < nsites; i++)
        if (sites[i].line == line && sites[i].file == file)
            return i;
    if (nsites == SITES)
        return 0;
    sites[nsites].file = file;
    sites[nsites].line = line;
    return nsites++;
}

static void *count_malloc(size_t n, const char *file, int line)
{
    head_t *h = malloc(sizeof(*h) + n);
    if (!h)
        return NULL;
    h->size = n;
    h->site = site_of(file, line);
    sites[h->site].bytes += (long)n;
    sites[h->site].count++;
    return h + 1;
}

static void count_free(void *p, const char *file, int line)
{
    (void)file, (void)line;
    if (!p)
        return;
    head_t *h = (head_t *)p - 1;
    sites[h->site].bytes -= (long)h->size;
    sites[h->site].count--;
    free(h);
}

static void *count_realloc(void *p, size_t n, const char *file, int line)
{
    if (!p)
        return count_malloc(n, file, line);
    void *q = count_malloc(n, file, line);
    if (!q)
        return NULL;
    head_t *h = (head_t *)p - 1;
    memcpy(q, p, h->size < n ? h->size : n);
    count_free(p, file, line);
    return q;
}

static void client(int n, int (*sv)[2], int hold)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (getenv("AR_BENCH_TLS12"))
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
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

static int by_bytes(const void *a, const void *b)
{
    const struct site_s *x = a, *y = b;
    long dx = x->bytes - x->base_bytes, dy = y->bytes - y->base_bytes;
    return dx < dy ? 1 : dx > dy ? -1 : 0;
}

static void report(const char *what, int n)
{
    struct site_s copy[SITES];
    memcpy(copy, sites, sizeof(sites[0]) * (size_t)nsites);
    qsort(copy, (size_t)nsites, sizeof(copy[0]), by_bytes);
    long tb = 0, tc = 0;
    printf("%s:\n", what);
    for (int i = 0; i < nsites; i++) {
        long db = copy[i].bytes - copy[i].base_bytes, dc = copy[i].count - copy[i].base_count;
        if (db == 0 && dc == 0)
            continue;
        printf("  %8.1f B in %5.2f allocations  %s:%d\n", (double)db / n, (double)dc / n,
               copy[i].file ? copy[i].file : "?", copy[i].line);
        tb += db;
        tc += dc;
    }
    printf("  %8.1f B in %5.2f allocations per connection in all (requested sizes, before "
           "malloc's own overhead)\n",
           (double)tb / n, (double)tc / n);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int n = argc > 3 ? atoi(argv[3]) : 1000;
    if (n < 1 || n > 8000) /* two descriptors per connection, under the 20,000 files limit */
        return 2;
    if (!CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free))
        return 1;
    /* tls_openssl.c's context. */
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1)
        return 1;
    enum { WARM = 20 };
    int(*sv)[2] = calloc((size_t)(n + WARM), sizeof(*sv));
    SSL **keep = calloc((size_t)n, sizeof(*keep));
    for (int i = 0; i < n + WARM; i++)
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0)
            return 1;
    int hold[2];
    if (pipe(hold) != 0)
        return 1;
    fflush(stdout);
    pid_t kid = fork();
    if (kid == 0) {
        close(hold[1]);
        client(n + WARM, sv, hold[0]);
    }
    close(hold[0]);
    static char req[231], resp[166];
    for (int i = 0; i < n + WARM; i++) {
        if (i == WARM) /* lazily built tables and code paths are in place now */
            for (int k = 0; k < nsites; k++)
                sites[k].base_bytes = sites[k].bytes, sites[k].base_count = sites[k].count;
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, sv[i][0]);
        if (SSL_accept(ssl) != 1 || SSL_read(ssl, req, sizeof(req)) != (int)sizeof(req) ||
            SSL_write(ssl, resp, sizeof(resp)) != (int)sizeof(resp)) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        if (i < WARM)
            SSL_free(ssl);
        else
            keep[i - WARM] = ssl;
    }
    printf("OpenSSL %s, %d idle server connections, %s, %s\n", OpenSSL_version(OPENSSL_VERSION), n,
           SSL_get_version(keep[0]), SSL_get_cipher_name(keep[0]));
    report("held by OpenSSL per idle connection, by call site", n);
    for (int i = 0; i < n; i++)
        SSL_free(keep[i]);
    report("left after SSL_free (tls_openssl.c keeps its own 280-byte state instead)", n);
    close(hold[1]);
    int st;
    waitpid(kid, &st, 0);
    return 0;
}
