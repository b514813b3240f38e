/*
 * The relay port pool (min-port..max-port), shared by every worker, with RFC 8656 reservations:
 * an Allocate with EVEN-PORT and the R bit takes an even port and keeps the next one for 30
 * seconds under a random RESERVATION-TOKEN, which a later Allocate (often from another client
 * port, so possibly another worker) redeems. The lock is taken only when relay sockets open and
 * close, never on the relay hot path.
 */
#include "daemon.h"

#include "anteroom/rand.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RESV_LIFETIME_S 30 /* RFC 8656 section 7.2: about 30 seconds */

static uint64_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec;
}

/* Frees the ports of reservations nobody redeemed in time. Lock held. */
static void expire_reservations(ar__turn_ports_t *p, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nresv; i++) {
        if (p->resv[i].expiry > now)
            p->resv[n++] = p->resv[i];
        else
            p->used[p->resv[i].port - p->min] = 0;
    }
    p->nresv = n;
}

int ar__turn_ports_take(ar__turn_ports_t *p, const ar_turn_relay_req_t *req, int *family,
                        uint16_t *port, uint64_t *token)
{
    uint32_t range = (uint32_t)(p->max - p->min) + 1;
    uint64_t now = mono_s();
    int rc = AR_EQUOTA;
    *token = 0;
    pthread_mutex_lock(&p->lock);
    expire_reservations(p, now);
    if (req->token) {
        rc = AR_ENOTFOUND;
        for (size_t i = 0; i < p->nresv; i++) {
            if (p->resv[i].token == req->token) {
                *port = p->resv[i].port;
                *family = p->resv[i].family;
                p->resv[i] = p->resv[--p->nresv];
                rc = 0;
                break;
            }
        }
        pthread_mutex_unlock(&p->lock);
        return rc;
    }
    bool reserve = req->reserve_next && p->nresv < AR__TURN_MAX_RESV;
    for (uint32_t n = 0; n < range; n++) {
        uint32_t i = (p->cursor + n) % range;
        uint16_t pt = (uint16_t)(p->min + i);
        if (p->used[i] || ((req->even_port || reserve) && (pt & 1)))
            continue;
        if (reserve && (i + 1 >= range || p->used[i + 1]))
            continue;
        p->used[i] = 1;
        p->cursor = (i + 1) % range;
        *port = pt;
        if (reserve) {
            p->used[i + 1] = 1;
            uint64_t tk;
            do
                ar_rand_bytes(&tk, sizeof(tk));
            while (tk == 0);
            p->resv[p->nresv++] =
                (ar__turn_resv_t){tk, (uint16_t)(pt + 1), *family, now + RESV_LIFETIME_S};
            *token = tk;
        }
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void ar__turn_ports_give(ar__turn_ports_t *p, uint16_t port, uint64_t token)
{
    pthread_mutex_lock(&p->lock);
    p->used[port - p->min] = 0;
    for (size_t i = 0; token && i < p->nresv; i++) {
        if (p->resv[i].token == token) {
            p->used[p->resv[i].port - p->min] = 0;
            p->resv[i] = p->resv[--p->nresv];
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
}

/* --- binding at the first permission --- */

/* Parses "a-b" or "a" at *s (then skips one separator); false at the end or on junk. */
static bool next_range(const char **s, unsigned long *lo, unsigned long *hi)
{
    const char *p = *s;
    while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    char *end;
    *lo = strtoul(p, &end, 10);
    *hi = *lo;
    if (*end == '-' || *end == '\t' || *end == ' ') {
        const char *q = end + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q >= '0' && *q <= '9') {
            *hi = strtoul(q, &end, 10);
        }
    }
    *s = end;
    return *lo <= 65535 && *hi <= 65535 && *lo <= *hi;
}

bool ar__turn_ports_lazy_ok(uint16_t min, uint16_t max, const char *ephemeral, const char *reserved)
{
    /* RFC 8656 section 7.2: ports outside the dynamic range only when the server knows other
     * applications are not impacted. Ours is the converse case: a port is promised in the
     * Allocate answer and bound later, so it must be one nobody else is given meanwhile. The
     * kernel gives out only its ephemeral range (to every unbound UDP socket that sends, e.g.
     * DNS lookups), minus ip_local_reserved_ports; a program that binds a port of the relay
     * range by number is a configuration error, as it would be for any relay. */
    const char *s = ephemeral;
    unsigned long lo, hi;
    if (!s || !next_range(&s, &lo, &hi))
        return false;
    unsigned long a = min > lo ? min : lo, b = max < hi ? max : hi;
    if (a > b)
        return true; /* no overlap */
    uint8_t resv[65536 / 8] = {0};
    s = reserved ? reserved : "";
    unsigned long rlo, rhi;
    while (next_range(&s, &rlo, &rhi)) {
        for (unsigned long port = rlo; port <= rhi; port++)
            resv[port / 8] |= (uint8_t)(1u << (port % 8));
    }
    for (unsigned long port = a; port <= b; port++) {
        if (!(resv[port / 8] & (1u << (port % 8))))
            return false;
    }
    return true;
}

static bool read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, cap - 1, f);
    bool ok = !ferror(f) && n < cap - 1; /* a longer file is not one we understand */
    fclose(f);
    buf[n] = '\0';
    return ok;
}

bool ar__turn_ports_lazy_here(uint16_t min, uint16_t max)
{
    char eph[64], resv[4096];
    if (!read_small("/proc/sys/net/ipv4/ip_local_port_range", eph, sizeof(eph)))
        return false;
    if (!read_small("/proc/sys/net/ipv4/ip_local_reserved_ports", resv, sizeof(resv)))
        resv[0] = '\0';
    return ar__turn_ports_lazy_ok(min, max, eph, resv);
}

int ar__turn_relay_socket(const ar_turn_addr_t *local, bool dont_fragment, int *out)
{
    int v6 = local->family == 6;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return AR_ESYS;
    if (v6) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    /* DONT-FRAGMENT: path MTU discovery with DF set, so too big a packet fails instead of being
     * fragmented, as the client asked. */
    if (dont_fragment && v6) {
        int v = IPV6_PMTUDISC_DO;
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v, sizeof(v));
    } else if (dont_fragment) {
        int v = IP_PMTUDISC_DO;
        (void)setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof(v));
    }
    struct sockaddr_storage ss;
    socklen_t sl = ar_turn_addr_to_sa(local, &ss);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        int rc = errno == EADDRINUSE ? AR_EADDRINUSE : AR_ESYS;
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}
