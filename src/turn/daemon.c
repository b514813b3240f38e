/*
 * anteroom-turn's run function: builds the shared engine state, the metrics registry and the
 * relay port pool, starts the workers (udp.c) and waits for SIGINT/SIGTERM.
 *
 * Capacity: every allocation holds one relay socket, so a process holds at most
 * RLIMIT_NOFILE minus a reserve of allocations (about 19,700 under this machine's 20,000 open
 * files). The effective total quota is capped there so clients get 486/508 instead of the
 * process running out of descriptors; run more processes (other ports or addresses) for more.
 */
#include "daemon.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#define FD_RESERVE 256 /* listeners, metrics connections, logs, libuv internals */

static int register_metrics(ar__turn_daemon_t *d)
{
    ar_metrics_t *r = d->metrics;
    ar__turn_metrics_t *m = &d->m;
    static const char *const lbl[AR_TURN_NTR] = {"transport=\"udp\"", "transport=\"tcp\"",
                                                 "transport=\"tls\""};
    static const char *const lin[AR_TURN_NTR] = {"transport=\"udp\",direction=\"in\"",
                                                 "transport=\"tcp\",direction=\"in\"",
                                                 "transport=\"tls\",direction=\"in\""};
    static const char *const lout[AR_TURN_NTR] = {"transport=\"udp\",direction=\"out\"",
                                                  "transport=\"tcp\",direction=\"out\"",
                                                  "transport=\"tls\",direction=\"out\""};
    for (int i = 0; i < AR_TURN_NTR; i++) {
        m->allocations[i] =
            ar_metrics_gauge(r, "anteroom_turn_allocations", "Current allocations", lbl[i]);
        m->allocs_total[i] =
            ar_metrics_counter(r, "anteroom_turn_allocations_total", "Allocations granted", lbl[i]);
        m->pkts_in[i] = ar_metrics_counter(r, "anteroom_turn_relayed_packets_total",
                                           "Packets relayed (RFC 6062 data connections: none, "
                                           "their bytes only)",
                                           lin[i]);
        m->pkts_out[i] = ar_metrics_counter(r, "anteroom_turn_relayed_packets_total",
                                            "Packets relayed (RFC 6062 data connections: none, "
                                            "their bytes only)",
                                            lout[i]);
        m->bytes_in[i] = ar_metrics_counter(r, "anteroom_turn_relayed_bytes_total",
                                            "Payload bytes relayed", lin[i]);
        m->bytes_out[i] = ar_metrics_counter(r, "anteroom_turn_relayed_bytes_total",
                                             "Payload bytes relayed", lout[i]);
    }
    m->alloc_expired =
        ar_metrics_counter(r, "anteroom_turn_allocations_expired_total",
                           "Allocations that reached the end of their lifetime", NULL);
    m->auth_failures = ar_metrics_counter(r, "anteroom_turn_auth_failures_total",
                                          "Requests refused with 401 for bad credentials", NULL);
    m->stale_nonces = ar_metrics_counter(r, "anteroom_turn_stale_nonces_total",
                                         "Requests answered 438 Stale Nonce", NULL);
    m->denied_peers = ar_metrics_counter(r, "anteroom_turn_denied_peers_total",
                                         "Peer addresses refused by the peer policy", NULL);
    m->quota_rejects = ar_metrics_counter(r, "anteroom_turn_quota_rejections_total",
                                          "Allocations refused with 486", NULL);
    m->rate_limited =
        ar_metrics_counter(r, "anteroom_turn_rate_limited_total",
                           "Unauthenticated requests dropped by the rate limit", NULL);
    m->bw_dropped = ar_metrics_counter(r, "anteroom_turn_bandwidth_dropped_total",
                                       "Packets dropped by max-bps", NULL);
    m->bad_packets = ar_metrics_counter(r, "anteroom_turn_bad_packets_total",
                                        "Malformed or unexpected client packets", NULL);
    m->oversize_dropped = ar_metrics_counter(
        r, "anteroom_turn_oversize_dropped_total",
        "Packets dropped because they are bigger than their path can carry", NULL);
    m->relay_bind_failed = ar_metrics_counter(
        r, "anteroom_turn_relay_bind_failed_total",
        "Permissions refused with 508 because their relay port could not be bound", NULL);
    m->send_dropped = ar_metrics_counter(
        r, "anteroom_turn_send_dropped_total",
        "UDP datagrams dropped because their socket's send buffer was full", NULL);
    m->load_allocations = ar_metrics_gauge(r, "anteroom_turn_load_allocations",
                                           "Load: allocations in this process", NULL);
    m->load_bandwidth = ar_metrics_gauge(r, "anteroom_turn_load_bandwidth_bytes",
                                         "Load: relayed bytes per second, both directions", NULL);
    m->load_cpu = ar_metrics_gauge(r, "anteroom_turn_load_cpu_millis",
                                   "Load: process CPU use in thousandths of one core", NULL);
    ar_metric_t **all = (ar_metric_t **)m;
    for (size_t i = 0; i < sizeof(*m) / sizeof(ar_metric_t *); i++) {
        if (!all[i])
            return AR_ENOMEM;
    }
    return 0;
}

/*
 * With relay sockets bound at the first permission, a relay address this host cannot bind
 * (a typo, an address not configured yet) would show only as 508s to the first permissions:
 * each configured relay address is bound once here, on a port of the range (skipping up to 16
 * ports other programs hold), so it shows at start. False (bind at Allocate, logged) when one
 * cannot be bound.
 */
static bool relay_addrs_bind(const ar_turn_plan_t *plan)
{
    const ar_turn_addr_t *addrs[2] = {&plan->opts.relay4, &plan->opts.relay6};
    for (int i = 0; i < 2; i++) {
        if (addrs[i]->family == 0)
            continue;
        ar_turn_addr_t local = *addrs[i];
        int rc = AR_EADDRINUSE;
        for (unsigned k = 0; k < 16 && rc == AR_EADDRINUSE; k++) {
            unsigned port = plan->min_port + k;
            if (port > plan->max_port)
                break;
            local.port = (uint16_t)port;
            int fd = -1;
            rc = ar__turn_relay_socket(&local, false, &fd);
            if (rc == 0)
                close(fd);
        }
        if (rc != 0) {
            ar_log(AR_LOG_WARN, "relay_address_unbindable", AR_LF_INT("family", local.family),
                   AR_LF_UINT("port", local.port), AR_LF_ERR("err", rc));
            return false;
        }
    }
    return true;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void ar__turn_daemon_update_load(ar__turn_daemon_t *d, uint64_t now_ms)
{
    uint64_t bytes = 0;
    for (int i = 0; i < AR_TURN_NTR; i++)
        bytes += (uint64_t)(ar_metric_value(d->m.bytes_in[i]) + ar_metric_value(d->m.bytes_out[i]));
    double cpu = cpu_seconds();
    int64_t bps = 0;
    if (d->last_ms != 0 && now_ms > d->last_ms) {
        double dt = (double)(now_ms - d->last_ms) / 1000.0;
        bps = (int64_t)((double)(bytes - d->last_bytes) / dt);
        ar_metric_set(d->m.load_bandwidth, bps);
        ar_metric_set(d->m.load_cpu, (int64_t)((cpu - d->last_cpu_s) / dt * 1000.0));
    }
    int64_t allocs = ar_turn_shared_allocations(d->sh);
    ar_metric_set(d->m.load_allocations, allocs);
    ar__turn_redirect_update(d, allocs > 0 ? (uint64_t)allocs : 0, bps > 0 ? (uint64_t)bps : 0);
    d->last_bytes = bytes;
    d->last_cpu_s = cpu;
    d->last_ms = now_ms;
}

/* Raises the open-file limit to its hard maximum and caps the total quota under it. */
static void fit_quota_to_files(ar_turn_plan_t *plan)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)INT64_MAX)
        return;
    int64_t cap = (int64_t)rl.rlim_cur - FD_RESERVE;
    if (cap < 1)
        cap = 1;
    if (plan->opts.total_quota == 0 || plan->opts.total_quota > cap) {
        plan->opts.total_quota = cap;
        ar_log(AR_LOG_INFO, "total_quota_from_open_files", AR_LF_INT("total_quota", cap),
               AR_LF_INT("nofile", (int64_t)rl.rlim_cur));
    }
}

/* SIGHUP, on the main thread: new TLS connections get the re-read certificate; on a bad file
 * the old one stays (ar_tls_server_reload logs why). */
static void on_reload(void *data)
{
    ar__turn_daemon_t *d = data;
    if (d->tls) {
        int rc = ar_tls_server_reload(d->tls);
        (void)rc; /* logged by the TLS layer either way */
    }
}

static void log_stream_listeners(const ar_turn_plan_t *plan, const ar__turn_daemon_t *d)
{
    const uint16_t ports[3] = {plan->tcp_port, d->tls ? plan->tls_port : 0,
                               d->tls ? plan->alt_tls_port : 0};
    for (size_t i = 0; i < plan->nlisten; i++) {
        for (int k = 0; k < 3; k++) {
            const struct sockaddr *sa = (const struct sockaddr *)&plan->listen[i];
            if (ports[k] && k == 0)
                ar_log(AR_LOG_INFO, "listening", AR_LF_KW("transport", "tcp"),
                       AR_LF_ADDR("addr", sa), AR_LF_INT("port", ports[k]));
            else if (ports[k])
                ar_log(AR_LOG_INFO, "listening", AR_LF_KW("transport", "tls"),
                       AR_LF_ADDR("addr", sa), AR_LF_INT("port", ports[k]));
        }
    }
}

/*
 * Every address the workers will listen on must be free before they start: with SO_REUSEPORT a
 * second relay started on a port in use would share its clients with the first
 * (anteroom/worker.h, ar_port_unclaimed). UDP on each listening address's port, TCP on the
 * stream ports.
 */
static int listeners_free(const ar_turn_plan_t *plan, const ar__turn_daemon_t *d)
{
    const uint16_t stream[3] = {plan->tcp_port, d->tls ? plan->tls_port : 0,
                                d->tls ? plan->alt_tls_port : 0};
    for (size_t i = 0; i < plan->nlisten; i++) {
        for (int k = -1; k < 3; k++) {
            struct sockaddr_storage ss = plan->listen[i];
            if (k >= 0 && !stream[k])
                continue;
            if (k >= 0)
                ar_addr_set_port(&ss, stream[k]);
            if (ar_port_unclaimed(k < 0 ? SOCK_DGRAM : SOCK_STREAM, (const struct sockaddr *)&ss,
                                  "anteroom-turn") == AR_EADDRINUSE)
                return AR_EADDRINUSE;
        }
    }
    return 0;
}

int ar_turn_run(ar_turn_conf_t *conf, ar_turn_plan_t *plan)
{
    (void)conf;
    ar__turn_daemon_t *d = ar_calloc(1, sizeof(*d));
    if (!d)
        return AR_ENOMEM;
    d->plan = plan;
    fit_quota_to_files(plan);
    int rc = AR_ENOMEM;
    char err[256];
    if (plan->redirect_count >= 0 || plan->redirect_score >= 0) {
        plan->opts.redirect_cb = ar__turn_redirect;
        plan->opts.redirect_ctx = d;
    }
    d->sh = ar_turn_shared_new(&plan->opts, err, sizeof(err));
    if (!d->sh) {
        fprintf(stderr, "anteroom-turn: %s\n", err);
        rc = AR_ECONFIG;
        goto out;
    }
    d->metrics = ar_metrics_new();
    if (!d->metrics || register_metrics(d) != 0)
        goto out;
    pthread_mutex_init(&d->ports.lock, NULL);
    pthread_mutex_init(&d->cids.lock, NULL);
    d->ports.min = plan->min_port;
    d->ports.max = plan->max_port;
    d->ports.used = ar_calloc((size_t)(plan->max_port - plan->min_port) + 1, 1);
    if (!d->ports.used)
        goto out_ports;
    /* Relay sockets are bound at the first permission when the kernel cannot hand a port of the
     * range to anyone else meanwhile (see ports.c); an Allocate then costs no socket. */
    d->ports.lazy = ar__turn_ports_lazy_here(plan->min_port, plan->max_port);
    if (d->ports.lazy)
        d->ports.lazy = relay_addrs_bind(plan);
    ar_log(AR_LOG_INFO, "relay_ports", AR_LF_UINT("min", plan->min_port),
           AR_LF_UINT("max", plan->max_port),
           d->ports.lazy ? AR_LF_KW("bind", "first_permission") : AR_LF_KW("bind", "allocate"));
    rc = ar__turn_redirect_init(d);
    if (rc != 0)
        goto out_ports;
    if (plan->cert) {
        rc = ar_tls_server_new(plan->cert, plan->pkey, &d->tls);
        if (rc != 0) {
            fprintf(stderr, "anteroom-turn: cannot load cert/pkey for TLS\n");
            rc = AR_ECONFIG;
            goto out_ports;
        }
    }
    rc = listeners_free(plan, d);
    if (rc != 0)
        goto out_ports;
    ar_workers_t *ws = NULL;
    rc = ar_workers_start(&ws, plan->workers, ar__udp_worker_init, ar__udp_worker_stop, d);
    if (rc != 0) {
        ar_log(AR_LOG_ERROR, "start_failed", AR_LF_ERR("err", rc));
        goto out_workers;
    }
    for (size_t i = 0; i < plan->nlisten; i++)
        ar_log(AR_LOG_INFO, "listening", AR_LF_KW("transport", "udp"),
               AR_LF_ADDR("addr", (const struct sockaddr *)&plan->listen[i]),
               AR_LF_INT("port", ar_addr_port((const struct sockaddr *)&plan->listen[i])),
               AR_LF_UINT("workers", plan->workers));
    log_stream_listeners(plan, d);
    if (plan->has_metrics)
        ar_log(AR_LOG_INFO, "metrics_listening",
               AR_LF_INT("port", ar_addr_port((const struct sockaddr *)&plan->metrics)));
    rc = ar_workers_wait_signals(ws, on_reload, d);
    ar_log(AR_LOG_INFO, "stopped", AR_LF_INT("allocations", ar_turn_shared_allocations(d->sh)));
out_workers:
    for (unsigned i = 0; i < AR_WORKERS_MAX; i++)
        ar__udp_worker_free(d->workers[i]);
out_ports:
    ar__turn_redirect_free(d);
    ar_tls_server_free(d->tls);
    ar_free(d->ports.used);
    pthread_mutex_destroy(&d->ports.lock);
    for (size_t i = 0; i < d->cids.n; i++) {
        close(d->cids.e[i].fd);
        ar__turn_tcplife_put(d->cids.e[i].life);
    }
    pthread_mutex_destroy(&d->cids.lock);
out:
    ar_metrics_free(d->metrics);
    ar_turn_shared_free(d->sh);
    ar_free(d);
    return rc;
}
