/*
 * The node: one supervisor process forks N worker processes that all listen on one port with
 * SO_REUSEPORT, so the kernel spreads connections with no hand-off and no shared state between
 * them. Why processes and not threads: a process may hold at most 20,000 descriptors here, so
 * a node holding 200,000 connections needs at least 11 processes anyway; each worker is its own
 * member of the bus (a room split across workers works like one split across nodes).
 *
 * The supervisor forwards SIGUSR1 (drain) and SIGTERM/SIGINT, restarts a worker that dies (one
 * restarted on a draining node is told to drain), and
 * has its workers killed by the kernel if it dies itself (PR_SET_PDEATHSIG), so `kill -9` of a
 * node's supervisor takes the whole node down, as a machine failure would.
 */
#include "internal.h"

#include "anteroom/log.h"
#include "anteroom/worker.h"

#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS_MAX 64

static pid_t spawn(const ar_signal_conf_t *conf, unsigned index)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    /* SIGUSR1, SIGTERM and SIGINT stay blocked, as the supervisor holds them, until the worker
     * has its handlers (ar_signal_worker_run): one sent before that waits for them instead of
     * killing the worker. The rest (SIGCHLD among them) is unblocked. */
    sigset_t held;
    ar__sig_node_signals(&held);
    sigprocmask(SIG_SETMASK, &held, NULL);
    ar__sig_supervisor = parent;
    _exit(ar_signal_worker_run(conf, index) == 0 ? 0 : 1);
}

/*
 * Every port the workers will bind (the shared one, each worker's own, each worker's operator
 * listener) must be free before they start: with SO_REUSEPORT a second node on a port in use
 * would share its clients with the first (anteroom/worker.h, ar_port_unclaimed).
 */
static int ports_free(const ar_signal_conf_t *conf, unsigned n)
{
    struct {
        const char *host;
        int64_t base;
        unsigned count;
    } sets[] = {{conf->listen, conf->port, 1},
                {conf->listen, conf->worker_port, conf->worker_port ? n : 0},
                {conf->metrics_host, conf->metrics_port, conf->metrics_port ? n : 0}};
    for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
        for (unsigned i = 0; i < sets[k].count; i++) {
            struct sockaddr_storage ss;
            uint16_t port = (uint16_t)(sets[k].base + i);
            if (ar_addr_parse(sets[k].host, port, &ss) != 0)
                continue; /* the worker's own bind reports a bad address */
            if (ar_port_unclaimed(SOCK_STREAM, (const struct sockaddr *)&ss, "anteroom-signal") ==
                AR_EADDRINUSE)
                return AR_EADDRINUSE;
        }
    }
    return 0;
}

int ar_signal_supervise(const ar_signal_conf_t *conf)
{
    unsigned n = conf->workers < 1             ? 1
                 : conf->workers > WORKERS_MAX ? WORKERS_MAX
                                               : (unsigned)conf->workers;
    int rc = ports_free(conf, n);
    if (rc != 0)
        return rc;
    pid_t pids[WORKERS_MAX] = {0};
    sigset_t set;
    ar__sig_node_signals(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (unsigned i = 0; i < n; i++)
        pids[i] = spawn(conf, i);
    int stopping = 0;
    /* Once drained, the node stays draining: a worker restarted later drains too (a drain
     * waits for it, pending, until its handlers are in place), or it would answer /readyz
     * 200, take new clients and offer itself as a backup. */
    int draining = 0;
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGUSR1) {
            ar_log0(AR_LOG_INFO, "signal_node_drain");
            draining = 1;
            for (unsigned i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGUSR1);
        } else if (sig == SIGTERM || sig == SIGINT) {
            stopping = 1;
            for (unsigned i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGTERM);
        }
        int status;
        pid_t dead;
        while ((dead = waitpid(-1, &status, WNOHANG)) > 0) {
            for (unsigned i = 0; i < n; i++) {
                if (pids[i] != dead)
                    continue;
                pids[i] = 0;
                if (!stopping) {
                    ar_log(AR_LOG_WARN, "signal_worker_restart", AR_LF_UINT("worker", i));
                    sleep(1); /* a worker that fails at once must not spin the machine */
                    pids[i] = spawn(conf, i);
                    if (draining && pids[i] > 0)
                        kill(pids[i], SIGUSR1);
                }
            }
        }
        int alive = 0;
        for (unsigned i = 0; i < n; i++)
            alive |= pids[i] > 0;
        if (stopping && !alive)
            return 0;
    }
}
