/* Publications caught instead of sent (bus_catch.h). */
#include "bus_catch.h"
#include "bus_internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

bc_caught_t bc_caught[BC_MAX];
size_t bc_n;

static void catch_it(ar__sig_srv_t *srv, uint64_t to, void *json_obj)
{
    if (!json_obj)
        return;
    assert_true(bc_n < BC_MAX);
    bc_caught[bc_n++] = (bc_caught_t){srv, to, json_obj};
}

void __wrap_ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj);
void __wrap_ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj)
{
    (void)kind;
    (void)key;
    catch_it(srv, 0, json_obj);
}

void __wrap_ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj);
void __wrap_ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj)
{
    catch_it(srv, worker, json_obj);
}

void bc_clear(void)
{
    for (size_t i = 0; i < bc_n; i++)
        json_decref(bc_caught[i].o);
    bc_n = 0;
}

json_t *bc_last_rec(const ar__sig_srv_t *srv)
{
    for (size_t i = bc_n; i-- > 0;)
        if (bc_caught[i].from == srv && bc_caught[i].to == 0)
            return bc_caught[i].o;
    return NULL;
}

json_t *bc_proc_sent(const ar__sig_srv_t *srv, uint64_t to, const char *k)
{
    for (size_t i = bc_n; i-- > 0;) {
        const char *ck = json_string_value(json_object_get(bc_caught[i].o, "k"));
        if (bc_caught[i].from == srv && bc_caught[i].to && (to == 0 || bc_caught[i].to == to) &&
            ck && strcmp(ck, k) == 0)
            return bc_caught[i].o;
    }
    return NULL;
}

void bc_deliver(ar__sig_srv_t *dst, json_t *o)
{
    assert_non_null(o);
    char *txt = json_dumps(o, JSON_COMPACT);
    assert_non_null(txt);
    ar__sig_proc_msg(dst, txt, strlen(txt), NULL);
    ar_free(txt);
}

void bc_heard(ar__sig_srv_t *srv, uint64_t id, const char *name, uint64_t ago_ms)
{
    srv->nodes[srv->nnodes] = (ar__sig_node_t){.id = id, .seen_ms = mono_ms() - ago_ms};
    snprintf(srv->nodes[srv->nnodes++].name, sizeof(srv->nodes[0].name), "%s", name);
}

ar__sig_srv_t *bc_worker(uint64_t id, ar_signal_conf_t *conf)
{
    ar__sig_srv_t *srv = su_srv_new(id);
    srv->conf = conf;
    if (id != BC_O)
        bc_heard(srv, BC_O, "node-a", 0);
    if (id != BC_T)
        bc_heard(srv, BC_T, "node-a", 0);
    bc_heard(srv, BC_X, "node-b", 0);
    return srv;
}

void bc_worker_free(ar__sig_srv_t *srv)
{
    for (size_t b = 0; b < ar__sig_rec_buckets(srv); b++)
        while (srv->recs[b])
            ar__sig_rec_free(srv, srv->recs[b]);
    su_srv_free(srv);
}
