/*
 * What a worker's move socket takes (move.c): a connection moved by another worker of its node
 * (its descriptor, SCM_RIGHTS, with the hello it sent) opens here and its hello is handled as
 * one that arrived here; anything else is refused and logged, and every descriptor that came
 * with it closed: no descriptor, two of them, a header not ours, a link from another user; a
 * link that sends an empty packet, or many packets on one link while the worker is busy.
 * A worker loop on loopback; the test plays the other worker, a socket pair the client.
 */
#include "bus_internal.h"
#include "loop_harness.h"
#include "sig_util.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define HELLO "{\"v\":1,\"type\":\"hello\",\"token\":\"not.a.token\"}"

/* The worker's id, and with it its socket's abstract name: this process's own, so that two
 * runs of the test at once (two checkouts' suites) do not take each other's name. */
static uint64_t worker_id(void)
{
    static uint64_t id; /* the test's process's: a child dialling it computes the same */
    if (!id)
        id = (uint64_t)getpid() << 8 | 1;
    return id;
}

static void start_moves(void *arg)
{
    (void)arg;
    LH.srv->node_id = worker_id();
    LH_CHECK(ar__sig_move_start(LH.srv) == 0);
}

/* A link to the worker, as another worker of its node makes one; -1 when it cannot be made. */
static int link_open(void)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "anteroom-signal/eu/%016llx",
                     (unsigned long long)worker_id());
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    if (s < 0 || connect(s, (struct sockaddr *)&a, alen) != 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    return s;
}

/* Sends head (hlen bytes) and then text on link, with nfd descriptors; flags as sendmsg's. */
static int send_on(int link, const void *head, size_t hlen, const char *text, const int *fds,
                   size_t nfd, int flags)
{
    union {
        char b[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov[2] = {{(void *)head, hlen}, {(void *)text, strlen(text)}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    if (nfd) {
        mh.msg_control = ctl.b;
        mh.msg_controllen = CMSG_SPACE(nfd * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(nfd * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, nfd * sizeof(int));
    }
    return sendmsg(link, &mh, flags | MSG_NOSIGNAL) < 0 ? -1 : 0;
}

/* Sends head (hlen bytes) and HELLO to the worker on a link of its own, with nfd descriptors;
 * the link is closed after (the worker takes what came on it first). */
static int send_move(const void *head, size_t hlen, const int *fds, size_t nfd)
{
    int s = link_open();
    if (s < 0)
        return -1;
    int rc = send_on(s, head, hlen, HELLO, fds, nfd, 0);
    close(s);
    return rc;
}

static const char k_head[24] = {'a', 'r', 'M', 'v', 1};

/* The client's end of a pair whose other end the worker took and closed sees EOF (once our
 * copy of that end is closed too); -2 when it is still open after 5 s. */
static int eof_within(int client)
{
    struct timeval tv = {5, 0};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char c;
    ssize_t r = recv(client, &c, 1, 0);
    return r == 0 ? 0 : -2;
}

static void test_move_refusals(void **state)
{
    (void)state;
    int log = su_log_to_file();
    lh_start(0, 0);
    lh_run(start_moves, NULL);
    int opened = atomic_load(&LH.opened);

    /* No descriptor. */
    assert_int_equal(send_move(k_head, sizeof(k_head), NULL, 0), 0);
    assert_int_equal(su_log_wait(log, "signal_move_refused", 1), 1);

    /* A header not ours: the descriptor is closed. */
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    char bad[24] = {'x', 'r', 'M', 'v', 1};
    assert_int_equal(send_move(bad, sizeof(bad), &sp[1], 1), 0);
    close(sp[1]);
    assert_int_equal(su_log_wait(log, "signal_move_refused", 2), 2);
    assert_int_equal(eof_within(sp[0]), 0);
    close(sp[0]);

    /* Two descriptors: both closed. */
    int a[2], b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    int two[2] = {a[1], b[1]};
    assert_int_equal(send_move(k_head, sizeof(k_head), two, 2), 0);
    close(a[1]);
    close(b[1]);
    assert_int_equal(su_log_wait(log, "signal_move_refused", 3), 3);
    assert_int_equal(eof_within(a[0]), 0);
    assert_int_equal(eof_within(b[0]), 0);
    close(a[0]);
    close(b[0]);

    /* Another user's process (root can be one: a child that drops to nobody). */
    if (geteuid() == 0) {
        int c[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            /* The worker may refuse the link before the packet is sent on it (EPIPE): the
             * packet is not what is refused, the link is. */
            _exit(setuid(65534) == 0 ? (send_move(k_head, sizeof(k_head), &c[1], 1), 0) : 1);
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_int_equal(WEXITSTATUS(st), 0);
        close(c[1]);
        assert_int_equal(su_log_wait(log, "signal_move_refused", 4), 4);
        assert_int_equal(eof_within(c[0]), 0);
        close(c[0]);
    }
    assert_int_equal(atomic_load(&LH.opened), opened); /* none of them opened */
    lh_stop();
    su_log_back(log);
}

static void test_move_taken(void **state)
{
    (void)state;
    lh_start(0, 0);
    lh_run(start_moves, NULL);
    int opened = atomic_load(&LH.opened);
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    /* The worker's end non-blocking, as an accepted socket is (the pair's ends are apart). */
    assert_int_equal(fcntl(sp[1], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(send_move(k_head, sizeof(k_head), &sp[1], 1), 0);
    close(sp[1]);
    lh_wait(&LH.opened, opened + 1);
    /* The hello it came with is handled here: its token is checked, and refused. */
    int client = sp[0];
    struct timeval tv = {5, 0};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char text[512];
    uint16_t code = 0;
    assert_int_equal(lh_read(client, text, sizeof(text), &code), 1);
    assert_non_null(strstr(text, "\"bad_token\""));
    assert_int_equal(lh_read(client, text, sizeof(text), &code), 8);
    assert_int_equal(code, 4001);
    close(client);
    lh_stop();
}

/* An empty packet (no worker sends one) is taken as the link's end: the descriptor that came
 * with it is closed, and so is the link; a new link is taken as before. */
static void test_move_empty_packet(void **state)
{
    (void)state;
    lh_start(0, 0);
    lh_run(start_moves, NULL);
    int opened = atomic_load(&LH.opened);
    int link = link_open(), sp[2];
    assert_true(link >= 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    assert_int_equal(send_on(link, "", 0, "", &sp[1], 1, 0), 0);
    close(sp[1]);
    assert_int_equal(eof_within(sp[0]), 0);
    assert_int_equal(eof_within(link), 0); /* the worker closed its end */
    close(sp[0]);
    close(link);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    assert_int_equal(fcntl(sp[1], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(send_move(k_head, sizeof(k_head), &sp[1], 1), 0);
    close(sp[1]);
    lh_wait(&LH.opened, opened + 1);
    close(sp[0]);
    lh_stop();
}

/* A burst on one link, sent without waiting: every connection in it is taken. A datagram
 * socket, as the moves had before, queued 10 (net.unix.max_dgram_qlen) and refused the rest
 * while the owner's loop was busy; a link queues by bytes (its sender's buffer). */
static void test_move_burst(void **state)
{
    (void)state;
    enum { BURST = 40 };
    lh_start(0, 0);
    lh_run(start_moves, NULL);
    int opened = atomic_load(&LH.opened);
    int link = link_open(), client[BURST];
    assert_true(link >= 0);
    for (int i = 0; i < BURST; i++) {
        int sp[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
        assert_int_equal(fcntl(sp[1], F_SETFL, O_NONBLOCK), 0);
        assert_int_equal(send_on(link, k_head, sizeof(k_head), HELLO, &sp[1], 1, MSG_DONTWAIT), 0);
        close(sp[1]);
        client[i] = sp[0];
    }
    lh_wait(&LH.opened, opened + BURST);
    for (int i = 0; i < BURST; i++)
        close(client[i]);
    close(link);
    lh_stop();
}

/* A worker of node "n1" heard now, as its heartbeat makes it (bus_node.c). */
static void heard(ar__sig_srv_t *srv, uint64_t id, const char *node)
{
    ar__sig_node_t *n = &srv->nodes[srv->nnodes++];
    memset(n, 0, sizeof(*n));
    n->id = id;
    n->host = srv->bus->host;
    n->seen_ms = mono_ms();
    snprintf(n->name, sizeof(n->name), "%s", node);
}

/* Whom a resume moves to (move.c ar__sig_move_target): the owner when it is a worker of this
 * node; while the owner is on another node, the backup when that is one of ours (it holds the
 * buffer and promotes it if that node died); else nobody, and the resume stays. */
static void test_move_target(void **state)
{
    (void)state;
    su_bus_node_t *f = su_bus_node_new(1);
    ar__sig_srv_t *srv = f->srv;
    heard(srv, 2, "n1");
    heard(srv, 3, "n1");
    heard(srv, 7, "n2");
    ar__sig_rec_t *r = ar__sig_rec_get(srv, su_peer('a'));
    assert_non_null(r);
    const struct {
        uint64_t owner, backup, to;
    } want[] = {
        {2, 7, 2}, /* the owner is here */
        {7, 3, 3}, /* the owner on another node: its backup, ours */
        {7, 9, 0}, /* a backup nobody here knows */
        {7, 0, 0}, /* no backup */
        {7, 1, 0}, /* we are its backup: it resumes here */
        {1, 3, 0}, /* we are its owner */
        {9, 3, 3}, /* an owner nobody here knows (a node gone): its backup */
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        r->owner = want[i].owner;
        r->backup = want[i].backup;
        assert_int_equal(ar__sig_move_target(srv, r), want[i].to);
    }
    srv->nodes[1].draining = 1; /* a draining backup takes nothing */
    r->owner = 7;
    r->backup = 3;
    assert_int_equal(ar__sig_move_target(srv, r), 0);
    su_bus_node_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_move_refusals),     cmocka_unit_test(test_move_taken),
        cmocka_unit_test(test_move_empty_packet), cmocka_unit_test(test_move_burst),
        cmocka_unit_test(test_move_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
