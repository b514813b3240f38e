/* The two-backend store fixture (store_fixture.h). */
#include "store_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

int ar_test_store_args(int argc, char **argv, const char *suite, ar_store_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    if (argc >= 3 && strcmp(argv[1], "sqlite") == 0) {
        o->kind = AR_STORE_SQLITE;
        o->target = argv[2];
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "pg") == 0 && getenv("AR_PG_CONNINFO") != NULL) {
        o->kind = AR_STORE_PG;
        o->target = getenv("AR_PG_CONNINFO");
        return 0;
    }
    fprintf(stderr,
            "usage: %s sqlite <file> | %s pg (with AR_PG_CONNINFO; see scripts/pg-test-server)\n",
            suite, suite);
    return -1;
}

void ar_test_store_wipe(const ar_store_opts_t *o)
{
    if (o->kind == AR_STORE_SQLITE) {
        char p[4096];
        unlink(o->target);
        snprintf(p, sizeof p, "%s-wal", o->target);
        unlink(p);
        snprintf(p, sizeof p, "%s-shm", o->target);
        unlink(p);
        return;
    }
    ar_store_conn_t *c = NULL;
    assert_int_equal(ar_store_open(o, &c), 0);
    assert_int_equal(ar_store_exec(c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"), 0);
    ar_store_close(c);
}
