/*
 * The supervisor loop of `anteroom up`, on libuv: uv_spawn starts each daemon with its stdout and
 * stderr on its log file, the exit callback schedules a restart with exponential backoff, and
 * uv_signal turns SIGINT/SIGTERM into an orderly stop.
 *
 * Restart policy: the first restart waits 0.5 s, each further one twice as long up to 30 s, so a
 * daemon that cannot start (port taken, bad certificate) does not spin a CPU; a daemon that ran
 * 60 s or more before dying is taken as having been healthy and starts again from 0.5 s.
 *
 * Stop: the first SIGINT or SIGTERM cancels pending restarts and sends SIGTERM to every daemon;
 * whichever is still running 10 s later gets SIGKILL. A second SIGINT or SIGTERM sends SIGKILL at
 * once. The loop ends when every daemon has been reaped, so no child outlives `anteroom up`.
 * SIGHUP is passed on to every daemon (they reload their certificates on it).
 */
#include "up.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define HEALTHY_MS 60000
#define STOP_GRACE_MS 10000

extern char **environ;

typedef struct sup_s sup_t;

typedef struct sup_proc_s {
    sup_t *sup;
    ar__sup_entry_t *e;
    char **env;          /* environ plus the row's extras; strings are borrowed */
    uv_process_t proc;   /* valid while proc_open */
    uv_timer_t restart;  /* pending restart */
    int proc_open;       /* the process handle is spawned and not yet closed */
    int running;         /* spawned and not yet exited */
    uint64_t started_ms; /* loop time of the last spawn */
    uint64_t backoff_ms; /* backoff state, see ar__backoff_next */
    uint64_t delay_ms;   /* the wait before the pending restart */
    unsigned restarts;
} sup_proc_t;

struct sup_s {
    uv_loop_t loop;
    sup_proc_t *procs;
    size_t n;
    int stopping;
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t grace;
};

static void schedule_restart(sup_proc_t *p);

uint64_t ar__backoff_next(uint64_t *backoff_ms, uint64_t uptime_ms)
{
    if (*backoff_ms < BACKOFF_MIN_MS || uptime_ms >= HEALTHY_MS)
        *backoff_ms = BACKOFF_MIN_MS;
    uint64_t delay = *backoff_ms;
    *backoff_ms = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    return delay;
}

/* Extras first, then every inherited variable the extras do not override. */
static char **build_env(const ar__daemon_cmd_t *cmd)
{
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = ar_calloc(n + cmd->envc + 1, sizeof(char *));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < cmd->envc; i++)
        env[k++] = cmd->env[i];
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        for (size_t j = 0; j < cmd->envc && !dup; j++) {
            size_t len = (size_t)(strchr(cmd->env[j], '=') - cmd->env[j]) + 1;
            dup = strncmp(environ[i], cmd->env[j], len) == 0;
        }
        if (!dup)
            env[k++] = environ[i];
    }
    env[k] = NULL;
    return env;
}

static void print_started(const sup_proc_t *p, int pid)
{
    const ar__daemon_cmd_t *c = &p->e->cmd;
    char restart[32] = "";
    if (p->restarts > 0)
        snprintf(restart, sizeof(restart), " (restart %u)", p->restarts);
    printf("%s: pid %d, listening %s; metrics %s; log logs/%s.log%s\n", p->e->spec->name, pid,
           c->listeners, c->metrics_url, p->e->spec->name, restart);
    fflush(stdout);
}

static void stop_done_check(sup_t *s);

static void on_proc_closed(uv_handle_t *h)
{
    sup_proc_t *p = h->data;
    p->proc_open = 0;
    if (p->sup->stopping)
        stop_done_check(p->sup);
    else
        schedule_restart(p);
}

static void on_exit_cb(uv_process_t *proc, int64_t status, int term_signal)
{
    sup_proc_t *p = proc->data;
    sup_t *s = p->sup;
    p->running = 0;
    uint64_t up_ms = uv_now(&s->loop) - p->started_ms;
    p->delay_ms = ar__backoff_next(&p->backoff_ms, up_ms);
    ar_log(s->stopping ? AR_LOG_INFO : AR_LOG_WARN, "daemon_exited",
           AR_LF_OPER("daemon", p->e->spec->name), AR_LF_INT("pid", proc->pid),
           AR_LF_INT("status", status), AR_LF_INT("signal", term_signal),
           AR_LF_UINT("uptime_ms", up_ms));
    if (!s->stopping) {
        const char *name = p->e->spec->name;
        if (term_signal != 0)
            printf("%s: exited (pid %d, signal %d); see logs/%s.log\n", name, proc->pid,
                   term_signal, name);
        else
            printf("%s: exited (pid %d, status %lld); see logs/%s.log\n", name, proc->pid,
                   (long long)status, name);
    }
    /* The handle cannot be reused for the next spawn until libuv has closed it. */
    uv_close((uv_handle_t *)proc, on_proc_closed);
}

static int spawn(sup_proc_t *p)
{
    sup_t *s = p->sup;
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = p->e->log_fd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = p->e->log_fd;
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    o.file = p->e->cmd.argv[0];
    o.args = p->e->cmd.argv;
    o.env = p->env;
    o.exit_cb = on_exit_cb;
    o.stdio = stdio;
    o.stdio_count = 3;
    /* Not detached: the daemons stay in our process group, so a terminal's Ctrl-C or a kill of
     * the group reaches them even if this supervisor is gone. */
    p->proc.data = p;
    p->started_ms = uv_now(&s->loop);
    int rc = uv_spawn(&s->loop, &p->proc, &o);
    p->proc_open = 1; /* even a failed uv_spawn leaves a handle to close */
    if (rc != 0) {
        ar_log(AR_LOG_ERROR, "daemon_spawn_failed", AR_LF_OPER("daemon", p->e->spec->name),
               AR_LF_OPER("binary", o.file), AR_LF_OPER("error", uv_err_name(rc)));
        printf("%s: cannot start %s: %s\n", p->e->spec->name, o.file, uv_strerror(rc));
        p->delay_ms = ar__backoff_next(&p->backoff_ms, 0);
        uv_close((uv_handle_t *)&p->proc, on_proc_closed);
        return rc;
    }
    p->running = 1;
    ar_log(AR_LOG_INFO, "daemon_started", AR_LF_OPER("daemon", p->e->spec->name),
           AR_LF_INT("pid", p->proc.pid), AR_LF_UINT("restarts", p->restarts));
    print_started(p, p->proc.pid);
    return 0;
}

static void on_restart_timer(uv_timer_t *t)
{
    sup_proc_t *p = t->data;
    if (p->sup->stopping)
        return;
    p->restarts++;
    (void)spawn(p); /* a failure closes the handle, which schedules the next try */
}

static void schedule_restart(sup_proc_t *p)
{
    uint64_t delay = p->delay_ms;
    ar_log(AR_LOG_WARN, "daemon_restart_scheduled", AR_LF_OPER("daemon", p->e->spec->name),
           AR_LF_UINT("delay_ms", delay), AR_LF_UINT("restart", p->restarts + 1));
    printf("%s: restarting in %.1f s\n", p->e->spec->name, (double)delay / 1000.0);
    uv_timer_start(&p->restart, on_restart_timer, delay, 0);
}

static void kill_all(sup_t *s, int signum)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->procs[i].running)
            (void)uv_process_kill(&s->procs[i].proc, signum);
}

static void on_grace_timer(uv_timer_t *t)
{
    sup_t *s = t->data;
    ar_log(AR_LOG_WARN, "stop_grace_expired", AR_LF_UINT("grace_ms", STOP_GRACE_MS));
    kill_all(s, SIGKILL);
}

/* Once every daemon is reaped, close our own handles so uv_run returns. */
static void stop_done_check(sup_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->procs[i].proc_open)
            return;
    if (uv_is_closing((uv_handle_t *)&s->grace))
        return;
    uv_close((uv_handle_t *)&s->grace, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_hup, NULL);
    for (size_t i = 0; i < s->n; i++)
        uv_close((uv_handle_t *)&s->procs[i].restart, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    sup_t *s = h->data;
    if (signum == SIGHUP) {
        ar_log0(AR_LOG_INFO, "sighup_forwarded");
        kill_all(s, SIGHUP);
        return;
    }
    if (s->stopping) {
        printf("anteroom: forced stop, SIGKILL to every daemon\n");
        fflush(stdout);
        ar_log0(AR_LOG_WARN, "stop_forced");
        kill_all(s, SIGKILL);
        return;
    }
    s->stopping = 1;
    printf("anteroom: stopping (again to force)\n");
    fflush(stdout);
    ar_log(AR_LOG_INFO, "stopping", AR_LF_INT("signal", signum));
    for (size_t i = 0; i < s->n; i++)
        uv_timer_stop(&s->procs[i].restart);
    kill_all(s, SIGTERM);
    uv_timer_start(&s->grace, on_grace_timer, STOP_GRACE_MS, 0);
    stop_done_check(s);
}

int ar__supervise(ar__sup_entry_t *entries, size_t n)
{
    sup_t s;
    memset(&s, 0, sizeof(s));
    int rc = uv_loop_init(&s.loop);
    if (rc != 0)
        return AR_ESYS;
    s.n = n;
    s.procs = ar_calloc(n, sizeof(sup_proc_t));
    if (s.procs == NULL) {
        (void)uv_loop_close(&s.loop);
        return AR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        sup_proc_t *p = &s.procs[i];
        p->sup = &s;
        p->e = &entries[i];
        p->backoff_ms = BACKOFF_MIN_MS;
        p->env = build_env(&entries[i].cmd);
        uv_timer_init(&s.loop, &p->restart);
        p->restart.data = p;
        if (p->env == NULL)
            rc = AR_ENOMEM;
    }
    uv_timer_init(&s.loop, &s.grace);
    s.grace.data = &s;
    uv_signal_init(&s.loop, &s.sig_int);
    uv_signal_init(&s.loop, &s.sig_term);
    uv_signal_init(&s.loop, &s.sig_hup);
    s.sig_int.data = s.sig_term.data = s.sig_hup.data = &s;
    if (rc == 0)
        rc = uv_signal_start(&s.sig_int, on_signal, SIGINT);
    if (rc == 0)
        rc = uv_signal_start(&s.sig_term, on_signal, SIGTERM);
    if (rc == 0)
        rc = uv_signal_start(&s.sig_hup, on_signal, SIGHUP);

    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            (void)spawn(&s.procs[i]); /* a failure is retried like a death */
    } else {
        /* Nothing was spawned: stopping now just closes the handles. */
        s.stopping = 1;
        stop_done_check(&s);
        rc = rc == AR_ENOMEM ? rc : AR_ESYS;
    }
    uv_run(&s.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&s.loop) != 0)
        ar_log0(AR_LOG_WARN, "loop_close_busy");
    for (size_t i = 0; i < n; i++)
        ar_free(s.procs[i].env);
    ar_free(s.procs);
    return rc;
}
