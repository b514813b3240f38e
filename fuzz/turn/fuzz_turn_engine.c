/*
 * Fuzzes the TURN engine's state machine, not just the parser: the input is a script of
 * operations run against one engine with an in-memory transport. Raw datagrams test what an
 * attacker without credentials can do; "signed" operations have the harness wrap the fuzzer's
 * attributes in a correctly authenticated request (with the nonce the engine last handed out),
 * so the fuzzer also reaches allocations, permissions, channels, relaying, refreshes and
 * expiries. Invariants are checked by ASan/UBSan and by the relay bookkeeping below.
 *
 * Script: repeated [op][...]: op % 6 = 0 raw client datagram [len:1][bytes];
 * 1 signed request [method:1][nattr:1] then per attribute [type:2][len:1][bytes];
 * 2 peer datagram to a live relay [relay:1][peer ip last byte:1][port:2][len:1][bytes];
 * 3 clock [seconds:2]; 4 ChannelData [channel:2][len:1][bytes]; 5 switch client port [port:1].
 */
#include "stun/stun.h"
#include "turn/server.h"

#include "anteroom/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RELAYS 64

typedef struct fz_s {
    ar_turn_alloc_t *allocs[MAX_RELAYS + 1]; /* by relay id; NULL when closed */
    int next_id;
    uint8_t nonce[64];
    size_t nonce_len;
} fz_t;

static void fz_send_client(void *ctx, const ar_turn_tuple_t *t, const uint8_t *data, size_t len)
{
    (void)t;
    fz_t *f = ctx;
    ar_stun_msg_t m;
    if (ar_stun_parse(data, len, &m) != 0)
        return;
    const ar_stun_attr_t *n = ar_stun_find(&m, AR_STUN_ATTR_NONCE);
    if (n && n->len <= sizeof(f->nonce)) {
        memcpy(f->nonce, n->value, n->len);
        f->nonce_len = n->len;
    }
}

static int fz_relay_open(void *ctx, ar_turn_alloc_t *alloc, int family,
                         const ar_turn_relay_req_t *req, ar_turn_addr_t *relayed, uint64_t *token,
                         void **handle)
{
    fz_t *f = ctx;
    if (f->next_id >= MAX_RELAYS)
        return AR_EQUOTA;
    if (req->token && req->token != 7)
        return AR_ENOTFOUND;
    int id = ++f->next_id;
    f->allocs[id] = alloc;
    memset(relayed, 0, sizeof(*relayed));
    relayed->family = (uint8_t)(family ? family : 4);
    relayed->ip[0] = 192;
    relayed->port = (uint16_t)(40000 + id);
    *token = req->reserve_next ? 7 : 0;
    *handle = (void *)(intptr_t)id;
    return 0;
}

static void fz_relay_close(void *ctx, void *handle)
{
    fz_t *f = ctx;
    int id = (int)(intptr_t)handle;
    if (id < 1 || id > MAX_RELAYS || !f->allocs[id])
        abort(); /* closing an unknown or already closed relay is an engine bug */
    f->allocs[id] = NULL;
}

static void fz_send_peer(void *ctx, void *handle, const ar_turn_addr_t *peer, const uint8_t *data,
                         size_t len)
{
    fz_t *f = ctx;
    int id = (int)(intptr_t)handle;
    if (id < 1 || id > MAX_RELAYS || !f->allocs[id] || !peer || (len && !data))
        abort(); /* sending on a closed relay is an engine bug */
    volatile uint8_t sink = len ? data[len - 1] : 0; /* touch the bytes: ASan checks them */
    (void)sink;
}

static int deny_ten(void *ctx, const struct sockaddr *sa)
{
    (void)ctx;
    const uint8_t *ip = (const uint8_t *)sa->sa_data + 2;
    return sa->sa_family == AF_INET && ip[0] == 10 ? AR_EPERM : 0;
}

typedef struct rd_s {
    const uint8_t *p;
    size_t n;
} rd_t;

static int rd_u8(rd_t *r, uint8_t *v)
{
    if (r->n < 1)
        return -1;
    *v = *r->p++;
    r->n--;
    return 0;
}

static int rd_bytes(rd_t *r, size_t len, const uint8_t **out)
{
    if (r->n < len)
        return -1;
    *out = r->p;
    r->p += len;
    r->n -= len;
    return 0;
}

static const uint16_t methods[] = {AR_TURN_ALLOCATE,     AR_TURN_REFRESH, AR_TURN_CREATE_PERMISSION,
                                   AR_TURN_CHANNEL_BIND, AR_TURN_SEND,    AR_STUN_BINDING};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const users[] = {"u:p"};
    static uint8_t key[16];
    static int once;
    if (!once) {
        if (ar_stun_long_term_key("u", 1, "r", 1, "p", 1, key) != 0)
            return 0;
        once = 1;
    }
    ar_turn_opts_t o = {.realm = "r",
                        .users = users,
                        .nusers = 1,
                        .user_quota = 3,
                        .total_quota = 8,
                        .max_bps = 100000,
                        .unauth_rate = 100,
                        .unauth_burst = 200,
                        .peer_allowed = deny_ten};
    o.relay4.family = 4;
    o.relay4.ip[0] = 192;
    o.relay6.family = 6;
    o.relay6.ip[0] = 0x20;
    char err[64];
    ar_turn_shared_t *sh = ar_turn_shared_new(&o, err, sizeof(err));
    if (!sh)
        return 0;
    fz_t f = {0};
    ar_turn_transport_t tp = {.ctx = &f,
                              .send_client = fz_send_client,
                              .relay_open = fz_relay_open,
                              .relay_close = fz_relay_close,
                              .send_peer = fz_send_peer};
    ar_turn_engine_t *e = ar_turn_engine_new(sh, &tp);
    if (!e) {
        ar_turn_shared_free(sh);
        return 0;
    }
    uint64_t now_ms = 5000000;
    ar_turn_engine_set_now(e, now_ms, 1700000000);
    ar_turn_engine_tick(e);
    ar_turn_tuple_t t = {.proto = AR_TURN_PROTO_UDP};
    t.client.family = 4;
    t.client.ip[0] = 198;
    t.client.port = 5000;
    static uint8_t buf[AR_TURN_HEADROOM + 2048];
    rd_t r = {data, size};
    uint8_t op;
    for (int steps = 0; steps < 256 && rd_u8(&r, &op) == 0; steps++) {
        uint8_t len = 0, b = 0;
        const uint8_t *bytes;
        switch (op % 6) {
        case 0:
            if (rd_u8(&r, &len) || rd_bytes(&r, len, &bytes))
                goto done;
            memcpy(buf, bytes, len);
            ar_turn_engine_on_client(e, &t, buf, len);
            break;
        case 1: {
            uint8_t m, nattr;
            if (rd_u8(&r, &m) || rd_u8(&r, &nattr))
                goto done;
            uint16_t method = methods[m % (sizeof(methods) / sizeof(methods[0]))];
            uint8_t tid[12] = {m, nattr, (uint8_t)steps};
            ar_stun_builder_t bl;
            ar_stun_build_start(&bl, buf, 1500, method,
                                method == AR_TURN_SEND ? AR_STUN_INDICATION : AR_STUN_REQUEST, tid);
            for (uint8_t i = 0; i < nattr % 8; i++) {
                uint8_t th, tl;
                if (rd_u8(&r, &th) || rd_u8(&r, &tl) || rd_u8(&r, &len) ||
                    rd_bytes(&r, len, &bytes))
                    goto done;
                ar_stun_build_attr(&bl, (uint16_t)(th << 8 | tl), bytes, len);
            }
            ar_stun_build_attr(&bl, AR_STUN_ATTR_USERNAME, "u", 1);
            ar_stun_build_attr(&bl, AR_STUN_ATTR_REALM, "r", 1);
            ar_stun_build_attr(&bl, AR_STUN_ATTR_NONCE, f.nonce, f.nonce_len);
            ar_stun_build_integrity(&bl, key, 16);
            ar_stun_build_fingerprint(&bl);
            int n = ar_stun_build_finish(&bl);
            if (n > 0)
                ar_turn_engine_on_client(e, &t, buf, (size_t)n);
            break;
        }
        case 2: {
            uint8_t id, last, ph, pl;
            if (rd_u8(&r, &id) || rd_u8(&r, &last) || rd_u8(&r, &ph) || rd_u8(&r, &pl) ||
                rd_u8(&r, &len) || rd_bytes(&r, len, &bytes))
                goto done;
            ar_turn_alloc_t *a = f.allocs[1 + id % MAX_RELAYS];
            if (!a)
                break;
            ar_turn_addr_t peer = {.family = 4, .port = (uint16_t)(ph << 8 | pl)};
            peer.ip[0] = 203, peer.ip[1] = 0, peer.ip[2] = 113, peer.ip[3] = last;
            memcpy(buf + AR_TURN_HEADROOM, bytes, len);
            ar_turn_engine_on_peer(e, a, &peer, buf, len);
            break;
        }
        case 3: {
            uint8_t hi, lo;
            if (rd_u8(&r, &hi) || rd_u8(&r, &lo))
                goto done;
            now_ms += (uint64_t)(hi << 8 | lo) * 1000;
            ar_turn_engine_set_now(e, now_ms, 1700000000 + (int64_t)(now_ms / 1000));
            ar_turn_engine_tick(e);
            break;
        }
        case 4: {
            uint8_t ch, cl;
            if (rd_u8(&r, &ch) || rd_u8(&r, &cl) || rd_u8(&r, &len) || rd_bytes(&r, len, &bytes))
                goto done;
            buf[0] = (uint8_t)(0x40 | (ch & 0x3f));
            buf[1] = cl;
            buf[2] = 0;
            buf[3] = len;
            memcpy(buf + 4, bytes, len);
            ar_turn_engine_on_client(e, &t, buf, (size_t)len + 4);
            break;
        }
        default:
            if (rd_u8(&r, &b))
                goto done;
            t.client.port = (uint16_t)(5000 + b % 4);
            break;
        }
    }
done:
    if (getenv("FZ_DEBUG")) {
        /* For checking that the seeds reach deep states. */
        const ar_turn_stats_t *st = ar_turn_engine_stats(e);
        ar_turn_tr_stats_t sum = ar_turn_stats_total(st);
        fprintf(stderr, "allocs=%llu out=%llu in=%llu denied=%llu stale=%llu bad=%llu\n",
                (unsigned long long)sum.allocs_total, (unsigned long long)sum.pkts_out,
                (unsigned long long)sum.pkts_in, (unsigned long long)st->denied_peers,
                (unsigned long long)st->stale_nonces, (unsigned long long)st->bad_packets);
    }
    ar_turn_engine_free(e);
    for (int i = 1; i <= MAX_RELAYS; i++) {
        if (f.allocs[i])
            abort(); /* the engine leaked a relay endpoint */
    }
    if (ar_turn_shared_allocations(sh) != 0)
        abort(); /* quota bookkeeping drifted */
    ar_turn_shared_free(sh);
    return 0;
}
