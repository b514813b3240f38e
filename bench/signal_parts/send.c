/*
 * CPU per send of a relayed frame on loopback TCP (signal net, conn.c send_raw2): a 4-byte
 * WebSocket header and a 172-byte payload sent with one sendmsg() of two iovecs, against the
 * two copied into one buffer and sent with send(). One connection to itself, drained every 16
 * sends; process CPU time of the whole loop (the drains, the same both ways, included: a clock
 * read around each send would cost more than the difference), the two ways interleaved in
 * rounds so that the machine's load falls on both alike; medians of the rounds.
 * Usage: ar_bench_sig_send [sends per round=50000] [rounds=5]
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static double cpu_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Microseconds of CPU per send and its share of the drains. */
static double run(int tx, int rx, int copy, int n)
{
    /* A text frame of 172 bytes: its length in the 16-bit extended field. */
    static char hdr[4] = {(char)0x81, 126, 0, (char)172}, pay[172], one[176], sink[1 << 16];
    memset(pay, 'x', sizeof(pay));
    double t0 = cpu_us();
    for (int i = 0; i < n; i++) {
        ssize_t w;
        if (copy) {
            memcpy(one, hdr, sizeof(hdr));
            memcpy(one + sizeof(hdr), pay, sizeof(pay));
            w = send(tx, one, sizeof(one), MSG_NOSIGNAL);
        } else {
            struct iovec iov[2] = {{hdr, sizeof(hdr)}, {pay, sizeof(pay)}};
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
            w = sendmsg(tx, &mh, MSG_NOSIGNAL);
        }
        if (w != (ssize_t)sizeof(one)) {
            fprintf(stderr, "short send\n");
            exit(1);
        }
        if ((i & 15) == 15)
            while (recv(rx, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
            }
    }
    return (cpu_us() - t0) / n;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 50000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (n < 16 || rounds < 1 || rounds > 99)
        return 2;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) != 0 || listen(l, 1) != 0)
        return 1;
    int tx = socket(AF_INET, SOCK_STREAM, 0);
    if (tx < 0 || connect(tx, (struct sockaddr *)&a, sizeof(a)) != 0)
        return 1;
    int rx = accept(l, NULL, NULL);
    int on = 1;
    (void)setsockopt(tx, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    double two[99], copied[99];
    for (int r = 0; r < rounds; r++) {
        two[r] = run(tx, rx, 0, n);
        copied[r] = run(tx, rx, 1, n);
    }
    qsort(two, (size_t)rounds, sizeof(double), cmp);
    qsort(copied, (size_t)rounds, sizeof(double), cmp);
    printf("176-byte frame, sendmsg of header + payload: %.3f us CPU per send and drain\n",
           two[rounds / 2]);
    printf("176-byte frame, copied, one send():           %.3f us CPU per send and drain\n",
           copied[rounds / 2]);
    close(rx);
    close(tx);
    close(l);
    return 0;
}
