/*
 * The fixture of the cmocka suites that run the same cases on both stores (test_store.c here,
 * tests/integration/app/test_secrets.c): the backend chosen from the command line, and a wipe
 * that gives each case an empty database.
 *   <suite> sqlite <file> | <suite> pg   (AR_PG_CONNINFO, scripts/pg-test-server)
 */
#ifndef AR_TEST_STORE_FIXTURE_H
#define AR_TEST_STORE_FIXTURE_H

#include "anteroom/store.h"

/* Fills o from argv: 0, or -1 (usage printed to stderr, naming the suite) when the arguments
 * name neither backend or PostgreSQL has no AR_PG_CONNINFO. o->target points into argv or the
 * environment. */
int ar_test_store_args(int argc, char **argv, const char *suite, ar_store_opts_t *o);
/* Empties the store: deletes the SQLite file and its WAL and shared-memory files, or drops and
 * recreates PostgreSQL's public schema (a cmocka assertion fails when that cannot be done). */
void ar_test_store_wipe(const ar_store_opts_t *o);

#endif
