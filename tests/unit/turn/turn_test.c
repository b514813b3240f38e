/* The fake transport, clock and client used by the TURN engine tests (see turn_test.h). */
#include "turn_test.h"

#include "anteroom/turn_rest.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <string.h>

/* Always on, unlike assert(): the default preset builds with NDEBUG. */
#define TC_CHECK(x)                                                                                \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void ft_send_client(void *ctx, const ar_turn_tuple_t *t, const uint8_t *data, size_t len)
{
    fake_tp_t *f = ctx;
    if (f->nclient == FT_MAX_MSGS)
        return;
    ft_msg_t *m = &f->to_client[f->nclient++];
    memcpy(m->data, data, len < sizeof(m->data) ? len : sizeof(m->data)); /* len stays whole */
    m->len = len;
    m->tuple = *t;
}

static int ft_relay_open(void *ctx, ar_turn_alloc_t *alloc, int family,
                         const ar_turn_relay_req_t *req, ar_turn_addr_t *relayed, uint64_t *token,
                         void **handle)
{
    fake_tp_t *f = ctx;
    int even_port = req->even_port;
    *token = req->reserve_next ? 0x1122334455667788ull : 0;
    if (req->token && req->token != 0x1122334455667788ull)
        return AR_ENOTFOUND;
    if (f->fail_open || f->opened >= 255)
        return AR_EQUOTA;
    int id = ++f->opened;
    f->relays[id] = 1;
    memset(relayed, 0, sizeof(*relayed));
    relayed->family = (uint8_t)family;
    if (family == 4) {
        relayed->ip[0] = 192, relayed->ip[1] = 0, relayed->ip[2] = 2, relayed->ip[3] = 1;
    } else {
        relayed->ip[0] = 0x20, relayed->ip[1] = 0x01, relayed->ip[2] = 0x0d, relayed->ip[3] = 0xb8;
        relayed->ip[15] = 1;
    }
    relayed->port = (uint16_t)(50000 + 2 * id + (even_port ? 0 : 1));
    f->allocs[id] = alloc;
    *handle = (void *)(intptr_t)id;
    return 0;
}

static int ft_relay_arm(void *ctx, void *handle)
{
    fake_tp_t *f = ctx;
    int id = (int)(intptr_t)handle;
    TC_CHECK(id > 0 && f->relays[id] == 1); /* never a TCP allocation's endpoint */
    f->arms++;
    return f->fail_arm || id == f->fail_arm_id ? AR_EADDRINUSE : 0;
}

static void ft_relay_close(void *ctx, void *handle)
{
    fake_tp_t *f = ctx;
    int id = (int)(intptr_t)handle;
    TC_CHECK(id > 0 && f->relays[id] == 1);
    f->relays[id] = 0;
    f->closed++;
}

static void ft_send_peer(void *ctx, void *handle, const ar_turn_addr_t *peer, const uint8_t *data,
                         size_t len)
{
    fake_tp_t *f = ctx;
    if (f->npeer == FT_MAX_MSGS)
        return;
    ft_msg_t *m = &f->to_peer[f->npeer++];
    memcpy(m->data, data, len < sizeof(m->data) ? len : sizeof(m->data)); /* len stays whole */
    m->len = len;
    m->peer = *peer;
    m->relay = (int)(intptr_t)handle;
}

static int ft_tcp_relay_open(void *ctx, ar_turn_alloc_t *alloc, int family, ar_turn_addr_t *relayed,
                             void **handle)
{
    fake_tp_t *f = ctx;
    ar_turn_relay_req_t req = {0};
    uint64_t token;
    int rc = ft_relay_open(ctx, alloc, family, &req, relayed, &token, handle);
    if (rc == 0)
        f->tcp_opened++;
    return rc;
}

static void ft_tcp_relay_close(void *ctx, void *handle)
{
    fake_tp_t *f = ctx;
    f->tcp_closed++;
    ft_relay_close(ctx, handle);
}

static int ft_peer_connect(void *ctx, void *handle, const ar_turn_tuple_t *ctrl,
                           const ar_turn_addr_t *peer, const uint8_t tid[12])
{
    (void)handle;
    fake_tp_t *f = ctx;
    if (f->connects && memcmp(&f->connect_peer, peer, sizeof(*peer)) == 0)
        return AR_EEXIST;
    f->connects++;
    f->connect_ctrl = *ctrl;
    f->connect_peer = *peer;
    memcpy(f->connect_tid, tid, 12);
    return 0;
}

static int ft_data_bind(void *ctx, const ar_turn_tuple_t *t, uint32_t cid, const uint8_t uhash[16])
{
    (void)t, (void)uhash;
    fake_tp_t *f = ctx;
    if (!f->bind_ok)
        return AR_ENOTFOUND;
    f->bound_cid = cid;
    return 0;
}

void tc_addr(ar_turn_addr_t *a, const char *ip, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, ip, a->ip) == 1) {
        a->family = 4;
    } else {
        int ok = inet_pton(AF_INET6, ip, a->ip);
        TC_CHECK(ok == 1);
        a->family = 6;
    }
    a->port = port;
}

void tc_set_creds(tc_t *c, const char *user, const char *pass)
{
    strcpy(c->user, user);
    strcpy(c->pass, pass);
    int rc =
        ar_stun_long_term_key(user, strlen(user), "example.org", 11, pass, strlen(pass), c->key);
    TC_CHECK(rc == 0);
}

void tc_init(tc_t *c, const ar_turn_opts_t *opts)
{
    static const char *const default_users[] = {"alice:secret",
                                                "bob:0x00112233445566778899aabbccddeeff"};
    memset(c, 0, sizeof(*c));
    c->opts = *opts;
    if (!c->opts.realm)
        c->opts.realm = "example.org";
    if (!c->opts.users) {
        c->opts.users = default_users;
        c->opts.nusers = 2;
    }
    if (c->opts.relay4.family == 0)
        tc_addr(&c->opts.relay4, "192.0.2.1", 0);
    char err[128];
    c->sh = ar_turn_shared_new(&c->opts, err, sizeof(err));
    TC_CHECK(c->sh);
    c->ops = (ar_turn_transport_t){.ctx = &c->tp,
                                   .send_client = ft_send_client,
                                   .relay_open = ft_relay_open,
                                   .relay_arm = ft_relay_arm,
                                   .relay_close = ft_relay_close,
                                   .send_peer = ft_send_peer,
                                   .tcp_relay_open = ft_tcp_relay_open,
                                   .tcp_relay_close = ft_tcp_relay_close,
                                   .peer_connect = ft_peer_connect,
                                   .data_bind = ft_data_bind};
    c->e = ar_turn_engine_new(c->sh, &c->ops);
    TC_CHECK(c->e);
    c->mono_ms = 1000000;
    c->wall_s = 1700000000;
    ar_turn_engine_set_now(c->e, c->mono_ms, c->wall_s);
    ar_turn_engine_tick(c->e);
    tc_addr(&c->t.client, "198.51.100.7", 40000);
    c->t.proto = AR_TURN_PROTO_UDP;
    tc_set_creds(c, "alice", "secret");
}

void tc_free(tc_t *c)
{
    ar_turn_engine_free(c->e);
    TC_CHECK(c->tp.closed == c->tp.opened);
    ar_turn_shared_free(c->sh);
}

void tc_advance(tc_t *c, uint64_t ms)
{
    c->mono_ms += ms;
    c->wall_s += (int64_t)(ms / 1000);
    ar_turn_engine_set_now(c->e, c->mono_ms, c->wall_s);
    ar_turn_engine_tick(c->e);
}

size_t tc_build(tc_t *c, uint8_t *buf, size_t cap, uint16_t method, uint8_t cls, bool sign,
                tc_attrs_fn fn, void *arg)
{
    uint8_t tid[12] = {0};
    tid[0] = ++c->tid_ctr;
    tid[11] = 0x5a;
    ar_stun_builder_t b;
    ar_stun_build_start(&b, buf, cap, method, cls, tid);
    if (fn)
        fn(&b, arg);
    if (sign) {
        ar_stun_build_attr(&b, AR_STUN_ATTR_USERNAME, c->user, strlen(c->user));
        ar_stun_build_attr(&b, AR_STUN_ATTR_REALM, "example.org", 11);
        if (!c->omit_nonce)
            ar_stun_build_attr(&b, AR_STUN_ATTR_NONCE, c->nonce, c->nonce_len);
        ar_stun_build_integrity(&b, c->key, 16);
    }
    ar_stun_build_fingerprint(&b);
    int len = ar_stun_build_finish(&b);
    TC_CHECK(len > 0);
    return (size_t)len;
}

bool tc_last(tc_t *c, ar_stun_msg_t *msg)
{
    if (c->tp.nclient == 0)
        return false;
    ft_msg_t *m = &c->tp.to_client[c->tp.nclient - 1];
    return ar_stun_parse(m->data, m->len, msg) == 0;
}

static int tc_request1(tc_t *c, uint16_t method, bool sign, tc_attrs_fn fn, void *arg, int *code);

int tc_request(tc_t *c, uint16_t method, bool sign, tc_attrs_fn fn, void *arg, int *code)
{
    int cls = tc_request1(c, method, sign, fn, arg, code);
    if (cls == AR_STUN_ERROR && *code == 438 && sign && c->tc_retry_stale)
        cls = tc_request1(c, method, sign, fn, arg, code);
    return cls;
}

static int tc_request1(tc_t *c, uint16_t method, bool sign, tc_attrs_fn fn, void *arg, int *code)
{
    uint8_t buf[1500];
    size_t len = tc_build(c, buf, sizeof(buf), method, AR_STUN_REQUEST, sign, fn, arg);
    size_t before = c->tp.nclient;
    ar_turn_engine_on_client(c->e, &c->t, buf, len);
    *code = 0;
    if (c->tp.nclient == before)
        return -1;
    ar_stun_msg_t msg;
    if (!tc_last(c, &msg) || memcmp(msg.tid, buf + 8, 12) != 0)
        return -2;
    TC_CHECK(ar_stun_check_fingerprint(&msg) == 0 && msg.fingerprint_off != 0);
    if (msg.cls == AR_STUN_ERROR) {
        const uint8_t *reason;
        size_t rlen;
        const ar_stun_attr_t *ec = ar_stun_find(&msg, AR_STUN_ATTR_ERROR_CODE);
        TC_CHECK(ec && ar_stun_attr_error(ec, code, &reason, &rlen) == 0);
        const ar_stun_attr_t *n = ar_stun_find(&msg, AR_STUN_ATTR_NONCE);
        if (n) {
            memcpy(c->nonce, n->value, n->len);
            c->nonce_len = n->len;
        }
        /* Answers after authentication are signed; challenges are not. */
        if (*code != 401 && *code != 438 && *code != 400 && *code != 420)
            TC_CHECK(ar_stun_check_integrity(&msg, c->key, 16) == 0);
    } else if (msg.cls == AR_STUN_SUCCESS && method != AR_STUN_BINDING) {
        TC_CHECK(ar_stun_check_integrity(&msg, c->key, 16) == 0);
    }
    return msg.cls;
}

static void add_udp_transport(ar_stun_builder_t *b, void *arg)
{
    (void)arg;
    uint8_t v[4] = {AR_TURN_PROTO_UDP, 0, 0, 0};
    ar_stun_build_attr(b, AR_TURN_ATTR_REQUESTED_TRANSPORT, v, 4);
}

int tc_allocate(tc_t *c)
{
    int code = 0;
    if (c->nonce_len == 0) {
        int cls = tc_request(c, AR_TURN_ALLOCATE, false, add_udp_transport, NULL, &code);
        if (cls != AR_STUN_ERROR || code != 401)
            return cls < 0 ? cls : code;
    }
    int cls = tc_request(c, AR_TURN_ALLOCATE, true, add_udp_transport, NULL, &code);
    return cls == AR_STUN_SUCCESS ? 0 : cls < 0 ? cls : code;
}

typedef struct peer_arg_s {
    const char *ip;
    uint16_t port;
    uint16_t ch;
} peer_arg_t;

static void add_peer(ar_stun_builder_t *b, void *arg)
{
    peer_arg_t *p = arg;
    ar_turn_addr_t a;
    tc_addr(&a, p->ip, p->port);
    struct sockaddr_storage ss;
    ar_turn_addr_to_sa(&a, &ss);
    if (p->ch)
        ar_stun_build_u32(b, AR_TURN_ATTR_CHANNEL_NUMBER, (uint32_t)p->ch << 16);
    ar_stun_build_xor_addr(b, AR_TURN_ATTR_XOR_PEER_ADDRESS, (struct sockaddr *)&ss);
}

int tc_create_permission(tc_t *c, const char *ip, uint16_t port)
{
    peer_arg_t p = {ip, port, 0};
    int code;
    int cls = tc_request(c, AR_TURN_CREATE_PERMISSION, true, add_peer, &p, &code);
    return cls == AR_STUN_SUCCESS ? 0 : cls < 0 ? cls : code;
}

int tc_channel_bind(tc_t *c, uint16_t ch, const char *ip, uint16_t port)
{
    peer_arg_t p = {ip, port, ch};
    int code;
    int cls = tc_request(c, AR_TURN_CHANNEL_BIND, true, add_peer, &p, &code);
    return cls == AR_STUN_SUCCESS ? 0 : cls < 0 ? cls : code;
}

ar_turn_alloc_t *tc_alloc(tc_t *c)
{
    return c->tp.opened ? c->tp.allocs[c->tp.opened] : NULL;
}

void tc_from_peer(tc_t *c, const char *ip, uint16_t port, const void *data, size_t len)
{
    static uint8_t buf[AR_TURN_HEADROOM + 2048];
    ar_turn_addr_t peer;
    tc_addr(&peer, ip, port);
    TC_CHECK(len <= 2000);
    memcpy(buf + AR_TURN_HEADROOM, data, len);
    ar_turn_engine_on_peer(c->e, tc_alloc(c), &peer, buf, len);
}
