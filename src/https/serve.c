/*
 * The daemons' shared scaffolding (serve.h).
 */
#include "serve.h"

#include "anteroom/err.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

int ar_serve_check(const ar_serve_conf_t *c, const char *prog, const char *comp,
                   const char *const *names, const void *const *values, size_t n)
{
    const char *missing = c->cert == NULL           ? "cert"
                          : c->key == NULL          ? "key"
                          : c->origin == NULL       ? "origin"
                          : c->store_target == NULL ? "store-target"
                                                    : NULL;
    for (size_t i = 0; missing == NULL && i < n; i++)
        if (values[i] == NULL)
            missing = names[i];
    ar_log_level_t level;
    if (missing != NULL || ar_log_level_parse(c->log_level, &level) != 0 ||
        (strcmp(c->store, "sqlite") != 0 && strcmp(c->store, "postgresql") != 0)) {
        fprintf(stderr, "%s: %s%s\n", prog, missing ? "missing --" : "bad --store or --log-level",
                missing ? missing : "");
        return 2;
    }
    ar_log_init(comp, level);
    return 0;
}

ar_store_opts_t ar_serve_store_opts(const ar_serve_conf_t *c)
{
    ar_store_opts_t so = {.kind = strcmp(c->store, "sqlite") == 0 ? AR_STORE_SQLITE : AR_STORE_PG,
                          .target = c->store_target};
    return so;
}

int ar_serve_migrate(const ar_serve_conf_t *c, int (*seed)(ar_store_conn_t *conn, void *data),
                     void *data)
{
    ar_store_opts_t so = ar_serve_store_opts(c);
    ar_store_conn_t *conn;
    int rc = ar_store_open(&so, &conn);
    if (rc == 0) {
        rc = ar_store_migrate(conn);
        if (rc == 0 && seed != NULL)
            rc = seed(conn, data);
        ar_store_close(conn);
    }
    if (rc < 0)
        ar_log(AR_LOG_ERROR, "store_unusable", AR_LF_ERR("err", rc));
    return rc;
}

static void on_signal(uv_signal_t *s, int signum)
{
    ar_serve_loop_t *l = s->data;
    if (signum == SIGHUP) {
        l->reload(l->data);
        return;
    }
    l->stop(l->data);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&l->sig[i], NULL);
}

void ar_serve_watch_signals(ar_serve_loop_t *l)
{
    const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&l->loop, &l->sig[i]);
        l->sig[i].data = l;
        uv_signal_start(&l->sig[i], on_signal, sigs[i]);
    }
}
