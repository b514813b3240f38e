/*
 * Whether a silent worker of this node is still a running process (bus_node.c): a worker whose
 * heartbeats stop is judged dead after AR__SIG_NODE_DEAD_S, which is right for a worker that
 * crashed or a node that died, but not for a worker that is only slow. On a saturated node (a
 * failover storm: every session of a dead node promoted and resumed at once) workers of the
 * survivor stopped hearing each other for seconds, promoted each other's sessions, undid the
 * promotions, and lost sessions in the churn (docs/performance.md, "Failover at 100,000 calls
 * a node"). A worker of the same node can ask the kernel instead: the worker's process, by its
 * pid and its start time (so a reused pid is not taken for it), gone, a zombie, stopped or
 * traced counts as dead; running or sleeping, as alive.
 *
 * "The same node" is the same node name on the same running kernel and pid namespace: the host
 * key hashes /proc/sys/kernel/random/boot_id and the pid namespace's inode, so that two
 * machines (or containers) that share a node name by mistake never read each other's pids.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* FNV-1a, 64 bits: a key, not a secret. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t ar__sig_host_key(void)
{
    char boot[64] = {0};
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    size_t n = f ? fread(boot, 1, sizeof(boot) - 1, f) : 0;
    if (f)
        fclose(f);
    struct stat ns;
    if (n < 32 || stat("/proc/self/ns/pid", &ns) != 0)
        return 0; /* unknown: no worker is judged by its process */
    uint64_t h = fnv(0xcbf29ce484222325ull, boot, n);
    h = fnv(h, &ns.st_dev, sizeof(ns.st_dev));
    h = fnv(h, &ns.st_ino, sizeof(ns.st_ino));
    return h ? h : 1;
}

char ar__sig_proc_state(int pid, uint64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) S ppid ...": comm may hold spaces and parentheses, so the last ')' ends it;
     * the state is field 3 and the start time (clock ticks after boot) field 22. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || !p[2])
        return 0;
    char state = p[2];
    p += 3;
    for (int field = 4; field <= 22; field++) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p)
            return 0;
        if (field == 22)
            *start = v;
        p = end;
    }
    return state;
}

int ar__sig_proc_running(int pid, uint64_t start)
{
    uint64_t now_start = 0;
    char state = ar__sig_proc_state(pid, &now_start);
    /* R running, S sleeping, D in the kernel (I idle is a kernel thread's): alive. Z zombie, X
     * dead, T stopped, t traced: not serving its clients. */
    return state && strchr("RSDI", state) && now_start == start;
}
