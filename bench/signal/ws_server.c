/*
 * Our WebSocket relay for the benchmark, on ar_signal_net: connections are paired in accept order
 * and every message goes to the other member of the pair. That is the transport cost of
 * anteroom-signal without its protocol (JSON, rooms, bus), measured by ar_bench_signal.
 * Usage: ar_bench_ws_server PORT [openssl|wolfssl|boringssl CERT KEY] [WORKERS]
 * Prints "pid N" per worker process; SIGTERM stops them all.
 */
#include "net.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static ar_sn_loop_t *loop;
static ar_sn_conn_t *waiting;
static pid_t pids[64];
static int npids;

static void on_signal(int sig)
{
    (void)sig;
    if (loop)
        ar_sn_loop_stop(loop);
    for (int i = 0; i < npids; i++)
        kill(pids[i], SIGTERM);
}

static int on_open(ar_sn_conn_t *c, const ar_ws_upgrade_t *up, void *data)
{
    (void)up, (void)data;
    if (waiting) {
        ar_sn_conn_set_data(c, waiting);
        ar_sn_conn_set_data(waiting, c);
        waiting = NULL;
    } else {
        waiting = c;
    }
    return 0;
}

static void on_message(ar_sn_conn_t *c, uint8_t op, const uint8_t *msg, size_t len, void *data)
{
    (void)data;
    ar_sn_conn_t *peer = ar_sn_conn_data(c);
    /* A failed send has already dropped the slow peer; nothing else to do here. */
    if (peer && ar_sn_send(peer, op, msg, len) != 0)
        return;
}

static void on_close(ar_sn_conn_t *c, uint16_t code, void *data)
{
    (void)code, (void)data;
    ar_sn_conn_t *peer = ar_sn_conn_data(c);
    if (peer)
        ar_sn_conn_set_data(peer, NULL);
    if (waiting == c)
        waiting = NULL;
}

/*
 * With AR_BENCH_MALLINFO set, a thread prints the live heap (mallinfo2) every 3 seconds and
 * then trims it, which separates what connections hold from allocator fragmentation.
 */
static void *mallinfo_thread(void *arg)
{
    (void)arg;
    for (;;) {
        sleep(3);
        struct mallinfo2 mi = mallinfo2();
        printf("heap in use %zu B, arena %zu B\n", mi.uordblks, mi.arena);
        fflush(stdout);
        malloc_trim(0);
    }
    return NULL;
}

static int worker(uint16_t port, ar_sn_tls_ctx_t *tls)
{
    if (getenv("AR_BENCH_MALLINFO")) {
        pthread_t t;
        pthread_create(&t, NULL, mallinfo_thread, NULL);
    }
    static const char *const origins[] = {"https://bench.anteroom.invalid"};
    static const ar_ws_upgrade_conf_t up = {origins, 1, 0, "anteroom.v1"};
    ar_sn_conf_t conf = {
        .upgrade = &up, .tls = tls, .idle_timeout_s = 200, .handshake_timeout_s = 30};
    ar_sn_handler_t h = {.open_cb = on_open, .message_cb = on_message, .close_cb = on_close};
    if (ar_sn_loop_new(&conf, &h, &loop) || ar_sn_loop_listen(loop, "127.0.0.1", port, NULL)) {
        fprintf(stderr, "listen failed\n");
        return 1;
    }
    printf("pid %d\n", getpid());
    fflush(stdout);
    int err = ar_sn_loop_run(loop);
    ar_sn_loop_free(loop);
    return err ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    uint16_t port = (uint16_t)atoi(argv[1]);
    ar_sn_tls_ctx_t *tls = NULL;
    int workers = 1;
    if (argc >= 5) {
        ar_sn_tls_lib_t lib = strcmp(argv[2], "wolfssl") == 0     ? AR_SN_TLS_WOLFSSL
                              : strcmp(argv[2], "boringssl") == 0 ? AR_SN_TLS_BORINGSSL
                                                                  : AR_SN_TLS_OPENSSL;
        if (ar_sn_tls_ctx_new(lib, argv[3], argv[4], &tls) != 0) {
            fprintf(stderr, "TLS set-up failed\n");
            return 1;
        }
        if (argc >= 6)
            workers = atoi(argv[5]);
    } else if (argc == 3) {
        workers = atoi(argv[2]);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (workers <= 1)
        return worker(port, tls);
    /* One process per worker, each with its own loop and SO_REUSEPORT listener. */
    int n = workers > 64 ? 64 : workers;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(worker(port, tls));
        pids[npids++] = pid;
    }
    int status, left = npids;
    while (left > 0) {
        if (wait(&status) > 0)
            left--;
        else if (errno != EINTR)
            break;
    }
    ar_sn_tls_ctx_free(tls);
    return 0;
}
