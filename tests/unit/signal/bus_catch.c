/* Publications caught instead of sent (bus_catch.h). */
#include "bus_catch.h"

#include <setjmp.h>
#include <stdarg.h>
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
