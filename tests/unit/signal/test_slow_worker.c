/*
 * A silent worker of this node whose process still runs is slow, not dead (bus_node.c
 * ar__sig_nodes_judge, worker_proc.c): under a failover storm the survivor's workers stopped
 * hearing each other for seconds and promoted each other's sessions. Past AR__SIG_NODE_DEAD_S
 * a worker is still dead when its process is gone, a zombie, stopped, or another process under
 * a reused pid; when it is of another node (its name) or another kernel (its host key); when
 * its heartbeats never said their process; and past AR__SIG_NODE_DEAD_LOCAL_S whatever its
 * process does.
 */
#include "bus_catch.h"
#include "bus_internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define US 1u
#define PEER 2u /* the worker judged */

typedef su_bus_node_t fixture_t;

static int setup(void **state)
{
    fixture_t *f = su_bus_node_new(US);
    assert_true(f->srv->bus->host != 0); /* this kernel has a boot id and a pid namespace */
    *state = f;
    return 0;
}

static pid_t kid = -1; /* test_child_process_states' child, ended here whatever the test did */

static int teardown(void **state)
{
    if (kid > 0) {
        kill(kid, SIGKILL);
        waitpid(kid, NULL, 0);
        kid = -1;
    }
    bc_clear(); /* what a death would have published (bus_catch.c): nothing, with no records */
    su_bus_node_free(*state);
    return 0;
}

/* PEER's heartbeat from node `node`, naming process pid started at start on host (pid 0: a
 * heartbeat without them, as before), taken from the inbox; PEER's entry. */
static ar__sig_node_t *beat(fixture_t *f, const char *node, uint64_t host, int pid, uint64_t start)
{
    char body[256];
    int n =
        pid ? snprintf(body, sizeof(body),
                       "{\"i\":\"%016llx\",\"n\":\"%s\",\"d\":0,\"t\":1,\"b\":0,\"h\":\"%016llx\","
                       "\"p\":%d,\"s\":%llu}",
                       (unsigned long long)PEER, node, (unsigned long long)host, pid,
                       (unsigned long long)start)
            : snprintf(body, sizeof(body),
                       "{\"i\":\"%016llx\",\"n\":\"%s\",\"d\":0,\"t\":1,\"b\":0}",
                       (unsigned long long)PEER, node);
    ar__sig_bus_put(f->srv->bus, "ar.eu.node", body, (size_t)n);
    ar__sig_bus_wake(f->srv);
    for (size_t i = 0; i < f->srv->nnodes; i++)
        if (f->srv->nodes[i].id == PEER)
            return &f->srv->nodes[i];
    fail_msg("no entry for the worker");
    return NULL;
}

/* PEER judged after ms of silence: 1 when it was declared dead. */
static int dead_after(fixture_t *f, ar__sig_node_t *n, uint64_t ms)
{
    uint64_t now = mono_ms();
    n->seen_ms = now - ms;
    ar__sig_nodes_judge(f->srv, now);
    return n->dead;
}

/* This process as a worker of our node: alive through a silence, dead past the local bound. */
static void test_running_worker_is_slow(void **state)
{
    fixture_t *f = *state;
    ar__sig_bus_t *b = f->srv->bus;
    ar__sig_node_t *n = beat(f, "n1", b->host, b->pid, b->start);
    assert_false(dead_after(f, n, 5000));
    assert_true(ar__sig_node_alive(f->srv, PEER));
    assert_int_equal(n->slow, 1);
    assert_false(dead_after(f, n, (uint64_t)AR__SIG_NODE_DEAD_LOCAL_S * 1000u - 100));
    assert_true(dead_after(f, n, (uint64_t)AR__SIG_NODE_DEAD_LOCAL_S * 1000u));
    assert_false(ar__sig_node_alive(f->srv, PEER));
}

/* Without its process, or of another node or kernel, or under another start: dead at 3 s. */
static void test_dead_at_three_seconds(void **state)
{
    fixture_t *f = *state;
    ar__sig_bus_t *b = f->srv->bus;
    const struct {
        const char *node;
        uint64_t host, start;
        int pid;
    } cases[] = {
        {"n2", b->host, b->start, b->pid},     /* another node's name */
        {"n1", b->host ^ 1, b->start, b->pid}, /* another kernel */
        {"n1", b->host, b->start + 1, b->pid}, /* the pid now another process's */
        {"n1", b->host, b->start, 0},          /* a heartbeat that did not say */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ar__sig_node_t *n = beat(f, cases[i].node, cases[i].host, cases[i].pid, cases[i].start);
        assert_false(dead_after(f, n, 2900));
        assert_true(dead_after(f, n, 3000));
        assert_false(ar__sig_node_alive(f->srv, PEER));
    }
}

/* A child process as the worker: alive while it sleeps; dead when stopped, a zombie, reaped. */
static void test_child_process_states(void **state)
{
    fixture_t *f = *state;
    ar__sig_bus_t *b = f->srv->bus;
    kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        pause();
        _exit(0);
    }
    uint64_t start = 0;
    for (int i = 0; i < 200 && ar__sig_proc_state(kid, &start) != 'S'; i++)
        usleep(5000);
    assert_int_equal(ar__sig_proc_state(kid, &start), 'S');
    ar__sig_node_t *n = beat(f, "n1", b->host, kid, start);
    assert_false(dead_after(f, n, 4000));

    kill(kid, SIGSTOP);
    for (int i = 0; i < 200 && ar__sig_proc_state(kid, &start) != 'T'; i++)
        usleep(5000);
    n->checked_ms = 0; /* looked at again now, not after PROC_LOOK_MS */
    assert_true(dead_after(f, n, 4000));

    n = beat(f, "n1", b->host, kid, start); /* back: its heartbeat came */
    assert_false(n->dead);
    kill(kid, SIGKILL);
    for (int i = 0; i < 200 && ar__sig_proc_state(kid, &start) != 'Z'; i++)
        usleep(5000);
    assert_int_equal(ar__sig_proc_state(kid, &start), 'Z'); /* not reaped yet */
    assert_true(dead_after(f, n, 4000));

    n = beat(f, "n1", b->host, kid, start);
    waitpid(kid, NULL, 0);
    pid_t gone = kid;
    kid = -1;
    assert_int_equal(ar__sig_proc_state(gone, &start), 0);
    assert_true(dead_after(f, n, 4000));
}

/* /proc/<pid>/stat's command may hold spaces and parentheses: the state and start time are
 * read after the last ')'. */
static void test_proc_state_of_self(void **state)
{
    (void)state;
    uint64_t start = 0;
    assert_int_equal(ar__sig_proc_state(getpid(), &start), 'R');
    assert_true(start > 0);
    assert_true(ar__sig_proc_running(getpid(), start));
    assert_false(ar__sig_proc_running(getpid(), start + 1));
    assert_int_equal(ar__sig_proc_state(0, &start), 0);
    assert_int_equal(ar__sig_proc_state(-1, &start), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_running_worker_is_slow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_at_three_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_child_process_states, setup, teardown),
        cmocka_unit_test(test_proc_state_of_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
