/*
 * `anteroom admin drain`: asks a signalling node on this machine to drain (docs/signal.md,
 * "Drain"). The node takes `POST /drain` on any worker's operator listener, only from a loopback
 * peer and without an Origin header, so this is one HTTP/1.1 request to 127.0.0.1. The answer is
 * a status line and a word; reading its status code is all the parsing there is, which is why
 * this is a socket and not an HTTP client library.
 */
#include "drain.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The node `anteroom up` runs: its operator listener is metrics-port (9641) + 2. */
#define DRAIN_DEFAULT_PORT 9643
#define DRAIN_TIMEOUT_MS 5000

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Waits for fd to be ready for events within what is left of the timeout: 0, or -1 on time-out. */
static int wait_fd(int fd, short events, const struct timespec *t0)
{
    for (;;) {
        long left = DRAIN_TIMEOUT_MS - elapsed_ms(t0);
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* Sends the request and returns the answer's HTTP status, or -1 with why in err. */
static int post_drain(unsigned port, char *err, size_t errlen)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    if (rc < 0 && errno == EINPROGRESS) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (wait_fd(fd, POLLOUT, &t0) < 0) {
            soerr = ETIMEDOUT;
        } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
            soerr = errno;
        }
        rc = soerr ? -1 : 0;
        errno = soerr;
    }
    if (rc < 0) {
        snprintf(err, errlen,
                 "cannot reach 127.0.0.1:%u: %s (is a signalling node running with "
                 "that operator port? see --port)",
                 port, strerror(errno));
        close(fd);
        return -1;
    }
    char req[160];
    int len = snprintf(req, sizeof(req),
                       "POST /drain HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n",
                       port);
    /* A request this small fits any socket buffer: one send, or a failure worth reporting. */
    if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
        snprintf(err, errlen, "sending the request: %s", strerror(errno));
        close(fd);
        return -1;
    }
    char buf[512];
    size_t got = 0;
    while (got < sizeof(buf) - 1 && memchr(buf, '\n', got) == NULL) {
        if (wait_fd(fd, POLLIN, &t0) < 0) {
            snprintf(err, errlen, "no answer within %d ms", DRAIN_TIMEOUT_MS);
            close(fd);
            return -1;
        }
        ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %3d", &status) != 1 || status < 100) {
        snprintf(err, errlen, "not an HTTP answer from 127.0.0.1:%u", port);
        return -1;
    }
    return status;
}

static int parse_port(const char *s, unsigned *port)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 65535)
        return -1;
    *port = (unsigned)v;
    return 0;
}

int ar__admin_drain(int argc, char **argv)
{
    unsigned port = DRAIN_DEFAULT_PORT;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            if (parse_port(argv[++i], &port) < 0) {
                fprintf(stderr,
                        "anteroom admin drain: --port takes a port number (1-65535), "
                        "not '%s'\n",
                        argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr,
                    "anteroom admin drain: unknown argument '%s'\n"
                    "usage: anteroom admin drain [--port N]\n",
                    argv[i]);
            return 2;
        }
    }
    char err[256];
    int status = post_drain(port, err, sizeof(err));
    if (status < 0) {
        fprintf(stderr, "anteroom admin drain: %s\n", err);
        return 1;
    }
    if (status != 202) {
        fprintf(stderr, "anteroom admin drain: the node at 127.0.0.1:%u answered %d%s\n", port,
                status,
                status == 403   ? " (drain is taken only from this machine, without an Origin)"
                : status == 404 ? " (not a signalling node's operator port?)"
                                : "");
        return 1;
    }
    printf("draining the signalling node at 127.0.0.1:%u: its clients move to the other nodes "
           "(drain-url); stop it with SIGTERM once its connections are gone\n",
           port);
    return 0;
}
