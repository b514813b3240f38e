/*
 * A real anteroom-app on loopback for the integration tests: the server runs on its own thread
 * and loop in this process (so the tests can move its clock), and requests are made by curl
 * processes (HTTP/2 and HTTP/1.1 from a client we did not write).
 */
#ifndef AR_TEST_APP_HARNESS_H
#define AR_TEST_APP_HARNESS_H

#include "app.h"

#include "anteroom/store.h"

#include "https_client.h"
#include "serve_frame.h" /* h_clock, h_clock_set */

#include <stddef.h>
#include <stdint.h>

extern const char *h_origin; /* the origin the app is configured with */
extern int64_t h_idle_s, h_max_s;

/* Seeds a store (argv[1]: "sqlite" for a temporary file, "pg" for AR_PG_CONNINFO), runs the app
 * on this thread and `cases` on another, then, once the app has stopped, `after` (may be NULL)
 * with the store's options. A failing check exits the process. */
void h_run(int argc, char **argv, void (*cases)(void), void (*after)(const ar_store_opts_t *));
/* Signs in; fills cookie ("__Host-ar_session=...") and csrf. Returns the status. */
int h_signin(const char *email, const char *password, char *cookie, size_t cookiecap, char *csrf,
             size_t csrfcap);
/* Runs ar_app_reload_tls on the server's loop (what SIGHUP does) and returns its result. */
int h_reload_tls(void);
const char *h_tmpdir(void);
/* The store the app runs on, for tests that look at or prepare rows directly. */
const ar_store_opts_t *h_store_opts(void);
uint16_t h_port(void);
/* Set before h_run (both may stay NULL): the servers the app hands out, and a file the app's
 * log lines go to (at debug level) instead of stderr. */
extern const struct ar_app_servers_s *h_servers;
extern const char *h_log_path;
/* ar_app_opts_t.keeping_sweep_ms (0, the default, is the app's own 60 s; negative is off). */
extern int64_t h_keeping_sweep_ms;
/* Seeded data: clinic ids and the shared test password. */
extern int64_t h_clinic_own, h_clinic_other;
extern const char *h_password;
/* The seal key the app runs with (32 bytes). */
extern const uint8_t *h_seal_key;

#endif
