/*
 * The relay port pool (min-port..max-port), shared by every worker, with RFC 8656 reservations:
 * an Allocate with EVEN-PORT and the R bit takes an even port and keeps the next one for 30
 * seconds under a random RESERVATION-TOKEN, which a later Allocate (often from another client
 * port, so possibly another worker) redeems. The lock is taken only when relay sockets open and
 * close, never on the relay hot path.
 */
#include "daemon.h"

#include "anteroom/rand.h"

#include <string.h>
#include <time.h>

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
