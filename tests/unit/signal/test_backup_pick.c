/*
 * Where a new session's backup goes (bus_node.c ar__sig_pick_backup): a live worker of another
 * node when there is one, spread evenly over them whatever the order in which this worker heard
 * of the others. The list it keeps often starts with its own node's workers (they start
 * together); before, a pick that started on one of those took the first other-node worker after
 * them, which then backed up about half of a node's sessions and, at that node's death, had to
 * promote and take back half of them alone.
 */
#include "bus_internal.h"
#include "sig_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define US 1u
#define SAME 11   /* other workers of our node ("n1"): ids 2 to 12, heard first */
#define OTHERS 12 /* workers of node "n2": ids 101 to 112 */
#define PICKS 2400

/* Worker id of node name, heard from just now. */
static void heard(ar__sig_srv_t *srv, uint64_t id, const char *name)
{
    ar__sig_node_t *n = &srv->nodes[srv->nnodes++];
    memset(n, 0, sizeof(*n));
    n->id = id;
    n->seen_ms = mono_ms();
    snprintf(n->name, sizeof(n->name), "%s", name);
}

static int setup(void **state)
{
    su_bus_node_t *f = su_bus_node_new(US);
    for (uint64_t i = 0; i < SAME; i++)
        heard(f->srv, 2 + i, "n1");
    for (uint64_t i = 0; i < OTHERS; i++)
        heard(f->srv, 101 + i, "n2");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    su_bus_node_free(*state);
    return 0;
}

/* How many of PICKS picks went to each worker id (below 200); *others: to none of those. */
static void pick_many(ar__sig_srv_t *srv, int *by_id, int *others)
{
    memset(by_id, 0, 200 * sizeof(int));
    *others = 0;
    for (int i = 0; i < PICKS; i++) {
        uint64_t id = ar__sig_pick_backup(srv, 0);
        if (id < 200)
            by_id[id]++;
        else
            (*others)++;
    }
}

/* Every worker of the other node backs up about as many sessions (PICKS / 12 = 200 each), and
 * none of ours does. Before, worker 101 got 11 of every 23 picks. */
static void test_spread_over_the_other_node(void **state)
{
    su_bus_node_t *f = *state;
    int by_id[200], others;
    pick_many(f->srv, by_id, &others);
    assert_int_equal(others, 0);
    assert_int_equal(by_id[0], 0);
    for (uint64_t i = 0; i < SAME; i++)
        assert_int_equal(by_id[2 + i], 0);
    for (uint64_t i = 0; i < OTHERS; i++) {
        assert_in_range(by_id[101 + i], 150, 250);
    }
}

/* With the other node gone (its workers left), our own workers back up, evenly too; excluded
 * and draining workers never; with nobody else alive, no backup (0). */
static void test_own_node_when_alone(void **state)
{
    su_bus_node_t *f = *state;
    ar__sig_srv_t *srv = f->srv;
    for (size_t i = 0; i < srv->nnodes; i++)
        if (srv->nodes[i].id > 100)
            srv->nodes[i].left = 1;
    for (size_t i = 0; i < srv->nnodes; i++)
        if (srv->nodes[i].id == 12)
            srv->nodes[i].draining = 1;
    int by_id[200], others;
    pick_many(srv, by_id, &others);
    assert_int_equal(others, 0);
    assert_int_equal(by_id[US], 0);
    assert_int_equal(by_id[12], 0);
    for (uint64_t id = 2; id < 12; id++)
        assert_in_range(by_id[id], 170, 310); /* PICKS / 10 = 240 */
    for (int i = 0; i < 100; i++)
        assert_int_not_equal(ar__sig_pick_backup(srv, 5), 5);
    for (size_t i = 0; i < srv->nnodes; i++)
        srv->nodes[i].left = 1;
    assert_int_equal(ar__sig_pick_backup(srv, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spread_over_the_other_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_node_when_alone, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
