/*
 * Load reports and ALTERNATE-SERVER redirection (mission X3, RFC 8656 section 7.2 step 8 with
 * RFC 8489's 300 Try Alternate).
 *
 * Once a second worker 0 measures the load (allocations over every worker, relayed bytes/s,
 * CPU share from ar_turn_cpu_sampler), sets the gauges, publishes the report on the NATS load
 * bus when one is configured, and decides where an Allocate would be sent if this relay is
 * above redirect-above: the least-loaded fresh relay of its jurisdiction on the board (fed by
 * the bus), else the next entry of the static alternate-server list. Every worker's engine asks
 * ar__turn_redirect() before granting an Allocate.
 *
 * redirect-above is either a load score (a number with a decimal point, 0..1: the larger of
 * the CPU share and allocations/capacity, as the board compares relays) checked against the
 * last second's figures, or an allocation count (an integer) checked live against the shared
 * allocation counter, so a burst of Allocates cannot overshoot it by a second's worth.
 */
#include "daemon.h"

#include "anteroom/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#define STALE_MS 5000 /* a peer's report older than this is ignored (it reports every second) */

static int64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* The address clients reach us at, for our load report: the first specific listening address,
 * else external-ip, else relay-ip; with listening-port. */
static void own_address(const ar_turn_plan_t *plan, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < plan->nlisten; i++) {
        ar_turn_addr_t a;
        if (ar_turn_addr_from_sa(&a, (const struct sockaddr *)&plan->listen[i]) == 0) {
            static const uint8_t zero[16];
            if (memcmp(a.ip, zero, a.family == 4 ? 4 : 16) != 0) {
                *out = plan->listen[i];
                return;
            }
        }
    }
    const ar_turn_opts_t *o = &plan->opts;
    ar_turn_addr_t a = o->external4.family   ? o->external4
                       : o->relay4.family    ? o->relay4
                       : o->external6.family ? o->external6
                                             : o->relay6;
    a.port = plan->listen_port;
    if (a.family)
        (void)ar_turn_addr_to_sa(&a, out);
}

int ar__turn_redirect_init(ar__turn_daemon_t *d)
{
    ar__turn_redirect_t *r = &d->redirect;
    const ar_turn_plan_t *plan = d->plan;
    pthread_mutex_init(&r->lock, NULL);
    r->lock_init = true;
    ar_turn_cpu_sampler_init(&r->cpu);
    snprintf(r->report.node, sizeof(r->report.node), "%s", plan->node_name);
    snprintf(r->report.jurisdiction, sizeof(r->report.jurisdiction), "%s", plan->jurisdiction);
    own_address(plan, &r->report.addr);
    r->report.capacity = plan->redirect_count > 0     ? (uint64_t)plan->redirect_count
                         : plan->opts.total_quota > 0 ? (uint64_t)plan->opts.total_quota
                                                      : 0;
    if (!plan->nats_url)
        return 0;
    r->board = ar_turn_loadboard_new(plan->node_name, plan->jurisdiction, STALE_MS);
    if (!r->board)
        return AR_ENOMEM;
    int rc =
        ar_turn_loadbus_open(&r->bus, plan->nats_url, plan->nats_ca, r->board, plan->jurisdiction);
    if (rc != 0) {
        ar_log(AR_LOG_ERROR, "nats_connect_failed", AR_LF_ERR("err", rc));
        return rc;
    }
    ar_log(AR_LOG_INFO, "load_bus_connected", AR_LF_OPER("jurisdiction", plan->jurisdiction));
    return 0;
}

void ar__turn_redirect_free(ar__turn_daemon_t *d)
{
    ar__turn_redirect_t *r = &d->redirect;
    if (r->bus)
        ar_turn_loadbus_close(r->bus);
    if (r->board)
        ar_turn_loadboard_free(r->board);
    r->bus = NULL;
    r->board = NULL;
    if (r->lock_init)
        pthread_mutex_destroy(&r->lock);
    r->lock_init = false;
}

/* Worker 0, once a second, after the load gauges were computed. */
void ar__turn_redirect_update(ar__turn_daemon_t *d, uint64_t allocations, uint64_t bytes_per_s)
{
    ar__turn_redirect_t *r = &d->redirect;
    const ar_turn_plan_t *plan = d->plan;
    ar_turn_load_t load = r->report;
    load.allocations = allocations;
    load.bps = bytes_per_s * 8;
    load.cpu = ar_turn_cpu_sample(&r->cpu);
    load.at_ms = unix_ms();
    double score = ar_turn_load_score(&load);
    if (r->bus && load.addr.ss_family != 0 && ar_turn_loadbus_publish(r->bus, &load) != 0)
        ar_log0(AR_LOG_DEBUG, "load_publish_failed");

    /* Where to send clients, whether or not we are over the threshold now (count mode checks
     * it live). A peer qualifies when less loaded than the threshold itself. */
    struct sockaddr_storage target;
    bool have = false;
    double max_peer = plan->redirect_count >= 0 ? 1.0 : plan->redirect_score;
    if (r->board && ar_turn_loadboard_pick(r->board, load.at_ms, max_peer, &target) == 0)
        have = true;
    if (!have && plan->nalternates > 0) {
        target = plan->alternates[r->next_static++ % plan->nalternates];
        have = true;
    }
    bool over =
        plan->redirect_count < 0 && plan->redirect_score >= 0 && score > plan->redirect_score;
    pthread_mutex_lock(&r->lock);
    r->report = load;
    r->score = score;
    r->have_target = have;
    if (have)
        r->target = target;
    pthread_mutex_unlock(&r->lock);
    atomic_store(&r->over_score, over && have);
}

/* Any worker, before granting an Allocate: the alternate server, or NULL to serve here. */
const struct sockaddr *ar__turn_redirect(void *ctx)
{
    ar__turn_daemon_t *d = ctx;
    ar__turn_redirect_t *r = &d->redirect;
    const ar_turn_plan_t *plan = d->plan;
    bool over = atomic_load(&r->over_score);
    if (!over && plan->redirect_count >= 0)
        over = ar_turn_shared_allocations(d->sh) >= plan->redirect_count;
    if (!over)
        return NULL;
    /* A per-thread copy: worker 0 may change the target while this Allocate is answered. */
    static _Thread_local struct sockaddr_storage copy;
    bool have;
    pthread_mutex_lock(&r->lock);
    have = r->have_target;
    if (have)
        copy = r->target;
    pthread_mutex_unlock(&r->lock);
    return have ? (const struct sockaddr *)&copy : NULL;
}

/* GET /load on the metrics listener: the last report, as published on the bus. */
int ar__turn_redirect_json(void *ctx, char *out, size_t cap)
{
    ar__turn_daemon_t *d = ctx;
    ar__turn_redirect_t *r = &d->redirect;
    ar_turn_load_t load;
    pthread_mutex_lock(&r->lock);
    load = r->report;
    pthread_mutex_unlock(&r->lock);
    return ar_turn_load_encode(&load, out, cap);
}
