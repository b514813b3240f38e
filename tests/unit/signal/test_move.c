/*
 * What a worker's move socket takes (move.c): a connection moved by another worker of its node
 * (its descriptor, SCM_RIGHTS, with the hello it sent) opens here and its hello is handled as
 * one that arrived here; anything else is refused and logged, and every descriptor that came
 * with it closed: no descriptor, two of them, a header not ours, a sender of another user.
 * A worker loop on loopback; the test plays the other worker, a socket pair the client.
 */
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

static void start_moves(void *arg)
{
    (void)arg;
    LH_CHECK(ar__sig_move_start(LH.srv) == 0);
}

/* Sends head (hlen bytes) and HELLO to the worker, with nfd descriptors. */
static int send_move(const void *head, size_t hlen, const int *fds, size_t nfd)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "anteroom-signal/eu/%016llx", 1ull);
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    union {
        char b[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov[2] = {{(void *)head, hlen}, {(void *)HELLO, sizeof(HELLO) - 1}};
    struct msghdr mh = {.msg_name = &a,
                        .msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n),
                        .msg_iov = iov,
                        .msg_iovlen = 2};
    if (nfd) {
        mh.msg_control = ctl.b;
        mh.msg_controllen = CMSG_SPACE(nfd * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(nfd * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, nfd * sizeof(int));
    }
    ssize_t r = sendmsg(s, &mh, 0);
    close(s);
    return r < 0 ? -1 : 0;
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
            _exit(setuid(65534) == 0 && send_move(k_head, sizeof(k_head), &c[1], 1) == 0 ? 0 : 1);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_move_refusals),
        cmocka_unit_test(test_move_taken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
