/*
 * The bare relay: the physical limit the signalling server is compared against. One epoll loop,
 * one shared buffer, connections paired in accept order; readable -> one recv, one writev to the
 * other member of the pair. No protocol, no framing, no queue (a short write drops the pair).
 * Usage: ar_bench_bare_relay PORT
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536

static int peer[MAX_FD];
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void drop(int ep, int fd)
{
    int p = peer[fd];
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    peer[fd] = -1;
    if (p >= 0 && peer[p] == fd)
        peer[p] = -1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    memset(peer, 0xff, sizeof(peer));
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4096)) {
        perror("bind");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    static unsigned char buf[65536];
    struct epoll_event evs[256];
    int waiting = -1;
    printf("pid %d\n", getpid());
    fflush(stdout);
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAX_FD) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                    if (waiting >= 0) {
                        peer[c] = waiting;
                        peer[waiting] = c;
                        waiting = -1;
                    } else {
                        waiting = c;
                    }
                }
                continue;
            }
            ssize_t r = recv(fd, buf, sizeof(buf), 0);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                if (waiting == fd)
                    waiting = -1;
                drop(ep, fd);
                continue;
            }
            if (r > 0 && peer[fd] >= 0) {
                struct iovec iov = {buf, (size_t)r};
                if (writev(peer[fd], &iov, 1) != r)
                    drop(ep, fd);
            }
        }
    }
    return 0;
}
