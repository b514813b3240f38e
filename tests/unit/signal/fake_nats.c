/*
 * The libnats stand-in of fake_nats.h. Objects are addresses of static bytes that nothing
 * dereferences; publications are recorded under a mutex (the loop's thread and bus.c's
 * publisher thread both publish).
 */
#include "fake_nats.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static fake_pub_t pubs[FAKE_NATS_MAX];
static size_t npubs, entered;
static fake_pub_t subs[FAKE_NATS_MAX]; /* the subjects subscribed to (subj only) */
static size_t nsubs;
static int gate_open = 1;
static pthread_t gate_owner; /* the thread that closed the gate: it never waits at it */
static char objs[16];        /* fake options, connections and subscriptions point in here */
static int nconns, flush_fail, flush_rec;
static natsStatus pub_fail;
static int64_t write_deadline[2]; /* as set before each connection's connect */
static int64_t opt_write_deadline;
static int opt_listed_only, listed_only[2]; /* no randomizing and no discovered servers */
static natsConnectionHandler opt_down, opt_back, opt_closed; /* as the options hold them now */
static struct {
    natsConnectionHandler down, back, closed; /* as the options held them at connect */
    void *down_arg, *back_arg, *closed_arg;
} conns[2];
static void *opt_down_arg, *opt_back_arg, *opt_closed_arg;
static natsErrHandler opt_err, conn_err; /* as the options hold it now, as nc took it */
static void *opt_err_arg, *conn_err_arg;
static char sub_objs[FAKE_NATS_MAX]; /* subscription i is &sub_objs[i] (the last for later ones) */
static int64_t sub_dropped;          /* what the first subscription says it dropped */
static int pend_msgs, pend_bytes, npend; /* the last pending limits set, and how many times */

static int conn_index(natsConnection *nc)
{
    return nc == (natsConnection *)(void *)&objs[4] ? 1 : 0;
}

static void record(int conn, const char *subj, const void *data, int dataLen)
{
    if (npubs < FAKE_NATS_MAX) {
        fake_pub_t *p = &pubs[npubs++];
        p->conn = conn;
        snprintf(p->subj, sizeof(p->subj), "%s", subj);
        size_t n = dataLen > 0 ? (size_t)dataLen : 0;
        memcpy(p->data, data, n < sizeof(p->data) - 1 ? n : sizeof(p->data) - 1);
        p->data[n < sizeof(p->data) - 1 ? n : sizeof(p->data) - 1] = '\0';
        p->len = n;
    }
}

void fake_nats_conn(int conn, int up)
{
    natsConnectionHandler cb = up ? conns[conn].back : conns[conn].down;
    void *arg = up ? conns[conn].back_arg : conns[conn].down_arg;
    if (cb)
        cb((natsConnection *)(void *)&objs[conn ? 4 : 1], arg);
}

void fake_nats_record_flushes(int on)
{
    pthread_mutex_lock(&mu);
    flush_rec = on;
    pthread_mutex_unlock(&mu);
}

int fake_nats_flushes_to_fail(void)
{
    pthread_mutex_lock(&mu);
    int n = flush_fail;
    pthread_mutex_unlock(&mu);
    return n;
}

void fake_nats_fail_flushes(int n)
{
    pthread_mutex_lock(&mu);
    flush_fail = n;
    pthread_mutex_unlock(&mu);
}

void fake_nats_fail_publishes(natsStatus s)
{
    pthread_mutex_lock(&mu);
    pub_fail = s;
    pthread_mutex_unlock(&mu);
}

void fake_nats_reset(void)
{
    pthread_mutex_lock(&mu);
    npubs = entered = nsubs = 0;
    gate_open = 1;
    nconns = flush_fail = flush_rec = 0;
    pub_fail = NATS_OK;
    opt_write_deadline = write_deadline[0] = write_deadline[1] = 0;
    opt_listed_only = listed_only[0] = listed_only[1] = 0;
    opt_down = opt_back = opt_closed = NULL;
    opt_down_arg = opt_back_arg = opt_closed_arg = NULL;
    memset(conns, 0, sizeof(conns));
    opt_err = conn_err = NULL;
    opt_err_arg = conn_err_arg = NULL;
    sub_dropped = 0;
    pend_msgs = pend_bytes = npend = 0;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

void fake_nats_gate(int open)
{
    pthread_mutex_lock(&mu);
    gate_open = open;
    gate_owner = pthread_self();
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

int fake_nats_wait_entered(size_t n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    int rc = 0;
    pthread_mutex_lock(&mu);
    while (entered < n && rc == 0)
        rc = pthread_cond_timedwait(&cv, &mu, &until);
    int ok = entered >= n;
    pthread_mutex_unlock(&mu);
    return ok ? 0 : -1;
}

/* *n, and the i-th of list (zeros when there is none), read under the lock: the publications
 * and the subscriptions are recorded from the caller's and the publisher thread. */
static size_t locked_count(const size_t *n)
{
    pthread_mutex_lock(&mu);
    size_t v = *n;
    pthread_mutex_unlock(&mu);
    return v;
}

static fake_pub_t locked_get(const fake_pub_t *list, const size_t *n, size_t i)
{
    fake_pub_t p;
    memset(&p, 0, sizeof(p));
    pthread_mutex_lock(&mu);
    if (i < *n && i < FAKE_NATS_MAX)
        p = list[i];
    pthread_mutex_unlock(&mu);
    return p;
}

size_t fake_nats_count(void)
{
    return locked_count(&npubs);
}

fake_pub_t fake_nats_get(size_t i)
{
    return locked_get(pubs, &npubs, i);
}

natsStatus natsConnection_Publish(natsConnection *nc, const char *subj, const void *data,
                                  int dataLen)
{
    pthread_mutex_lock(&mu);
    entered++;
    pthread_cond_broadcast(&cv);
    while (!gate_open && !pthread_equal(pthread_self(), gate_owner))
        pthread_cond_wait(&cv, &mu);
    natsStatus fail = pub_fail;
    if (fail == NATS_OK)
        record(conn_index(nc), subj, data, dataLen);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return fail;
}

natsStatus natsOptions_Create(natsOptions **newOpts)
{
    *newOpts = (natsOptions *)(void *)&objs[0];
    return NATS_OK;
}

natsStatus natsOptions_SetServers(natsOptions *opts, const char **servers, int serversCount)
{
    (void)opts;
    (void)servers;
    (void)serversCount;
    return NATS_OK;
}

/* Bit 1: no randomizing; bit 2: discovered servers ignored. */
static natsStatus listed_only_bit(int bit, bool on)
{
    pthread_mutex_lock(&mu);
    opt_listed_only = on ? opt_listed_only | bit : opt_listed_only & ~bit;
    pthread_mutex_unlock(&mu);
    return NATS_OK;
}

natsStatus natsOptions_SetNoRandomize(natsOptions *opts, bool noRandomize)
{
    (void)opts;
    return listed_only_bit(1, noRandomize);
}

natsStatus natsOptions_SetIgnoreDiscoveredServers(natsOptions *opts, bool ignore)
{
    (void)opts;
    return listed_only_bit(2, ignore);
}

int fake_nats_listed_only(int conn)
{
    pthread_mutex_lock(&mu);
    int l = listed_only[conn];
    pthread_mutex_unlock(&mu);
    return l;
}

natsStatus natsOptions_SetMaxReconnect(natsOptions *opts, int maxReconnect)
{
    (void)opts;
    (void)maxReconnect;
    return NATS_OK;
}

natsStatus natsOptions_SetReconnectWait(natsOptions *opts, int64_t reconnectWait)
{
    (void)opts;
    (void)reconnectWait;
    return NATS_OK;
}

natsStatus natsOptions_UseGlobalMessageDelivery(natsOptions *opts, bool global)
{
    (void)opts;
    (void)global;
    return NATS_OK;
}

natsStatus natsOptions_SetSendAsap(natsOptions *opts, bool sendAsap)
{
    (void)opts;
    (void)sendAsap;
    return NATS_OK;
}

natsStatus natsOptions_SetWriteDeadline(natsOptions *opts, int64_t deadline)
{
    (void)opts;
    pthread_mutex_lock(&mu);
    opt_write_deadline = deadline;
    pthread_mutex_unlock(&mu);
    return NATS_OK;
}

int64_t fake_nats_write_deadline(int conn)
{
    pthread_mutex_lock(&mu);
    int64_t d = write_deadline[conn];
    pthread_mutex_unlock(&mu);
    return d;
}

natsStatus natsOptions_SetRetryOnFailedConnect(natsOptions *opts, bool retry,
                                               natsConnectionHandler connectedCb, void *closure)
{
    (void)opts;
    (void)retry;
    (void)connectedCb;
    (void)closure;
    return NATS_OK;
}

void natsOptions_Destroy(natsOptions *opts)
{
    (void)opts;
}

natsStatus natsOptions_SetDisconnectedCB(natsOptions *opts, natsConnectionHandler cb, void *closure)
{
    (void)opts;
    opt_down = cb;
    opt_down_arg = closure;
    return NATS_OK;
}

natsStatus natsOptions_SetReconnectedCB(natsOptions *opts, natsConnectionHandler cb, void *closure)
{
    (void)opts;
    opt_back = cb;
    opt_back_arg = closure;
    return NATS_OK;
}

natsStatus natsOptions_SetClosedCB(natsOptions *opts, natsConnectionHandler cb, void *closure)
{
    (void)opts;
    opt_closed = cb;
    opt_closed_arg = closure;
    return NATS_OK;
}

natsStatus natsOptions_SetErrorHandler(natsOptions *opts, natsErrHandler errHandler, void *closure)
{
    (void)opts;
    opt_err = errHandler;
    opt_err_arg = closure;
    return NATS_OK;
}

void fake_nats_slow_consumer(int64_t dropped)
{
    pthread_mutex_lock(&mu);
    sub_dropped += dropped;
    pthread_mutex_unlock(&mu);
    if (conn_err)
        conn_err((natsConnection *)(void *)&objs[1], (natsSubscription *)(void *)&sub_objs[0],
                 NATS_SLOW_CONSUMER, conn_err_arg);
}

natsStatus natsSubscription_GetDropped(natsSubscription *sub, int64_t *msgs)
{
    pthread_mutex_lock(&mu);
    *msgs = sub == (natsSubscription *)(void *)&sub_objs[0] ? sub_dropped : 0;
    pthread_mutex_unlock(&mu);
    return NATS_OK;
}

natsStatus natsSubscription_SetPendingLimits(natsSubscription *sub, int msgLimit, int bytesLimit)
{
    (void)sub;
    pthread_mutex_lock(&mu);
    pend_msgs = msgLimit;
    pend_bytes = bytesLimit;
    npend++;
    pthread_mutex_unlock(&mu);
    return NATS_OK;
}

int fake_nats_pending_limits(int *msgs, int *bytes)
{
    pthread_mutex_lock(&mu);
    *msgs = pend_msgs;
    *bytes = pend_bytes;
    int n = npend;
    pthread_mutex_unlock(&mu);
    return n;
}

natsStatus natsConnection_Connect(natsConnection **nc, natsOptions *options)
{
    (void)options;
    if (nconns == 0) { /* nc: the connection with the subscriptions */
        conn_err = opt_err;
        conn_err_arg = opt_err_arg;
    }
    int i = nconns < 2 ? nconns++ : 1;
    conns[i].down = opt_down;
    conns[i].down_arg = opt_down_arg;
    conns[i].back = opt_back;
    conns[i].back_arg = opt_back_arg;
    conns[i].closed = opt_closed;
    conns[i].closed_arg = opt_closed_arg;
    pthread_mutex_lock(&mu);
    write_deadline[i] = opt_write_deadline;
    listed_only[i] = opt_listed_only == 3;
    pthread_mutex_unlock(&mu);
    *nc = (natsConnection *)(void *)&objs[i ? 4 : 1];
    return NATS_OK;
}

natsStatus natsConnection_Subscribe(natsSubscription **sub, natsConnection *nc, const char *subject,
                                    natsMsgHandler cb, void *cbClosure)
{
    (void)nc;
    (void)cb;
    (void)cbClosure;
    pthread_mutex_lock(&mu);
    if (nsubs < FAKE_NATS_MAX)
        snprintf(subs[nsubs].subj, sizeof(subs[nsubs].subj), "%s", subject);
    *sub = (natsSubscription *)(void *)&sub_objs[nsubs < FAKE_NATS_MAX ? nsubs : FAKE_NATS_MAX - 1];
    nsubs++;
    pthread_mutex_unlock(&mu);
    return NATS_OK;
}

size_t fake_nats_subs(void)
{
    return locked_count(&nsubs);
}

fake_pub_t fake_nats_sub(size_t i)
{
    return locked_get(subs, &nsubs, i);
}

natsStatus natsSubscription_Unsubscribe(natsSubscription *sub)
{
    (void)sub;
    return NATS_OK;
}

void natsSubscription_Destroy(natsSubscription *sub)
{
    (void)sub;
}

natsStatus natsConnection_FlushTimeout(natsConnection *nc, int64_t timeout)
{
    (void)timeout;
    pthread_mutex_lock(&mu);
    int fail = flush_fail > 0;
    if (fail)
        flush_fail--;
    else if (flush_rec)
        record(conn_index(nc), FAKE_NATS_FLUSH, "", 0);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return fail ? NATS_TIMEOUT : NATS_OK;
}

natsConnStatus natsConnection_Status(natsConnection *nc)
{
    (void)nc;
    return NATS_CONN_STATUS_CONNECTED;
}

void natsConnection_Close(natsConnection *nc)
{
    /* libnats calls back on its own thread after Close; here at once, which bus_stop's wait
     * for it covers too. */
    int i = conn_index(nc);
    if (conns[i].closed)
        conns[i].closed(nc, conns[i].closed_arg);
}

void natsConnection_Destroy(natsConnection *nc)
{
    (void)nc;
}
