/*
 * The shared test pieces of sig_util.h.
 */
#include "sig_util.h"
#include "bus_internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include <cmocka.h>
#include <sodium.h>

int su_dial(uint16_t port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: %s\r\n"
                     "Sec-WebSocket-Protocol: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, SU_ORIGIN, AR_SIG_SUBPROTOCOL);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    char resp[512];
    size_t got = 0;
    while (got < sizeof(resp) - 1 && recv(fd, resp + got, 1, 0) == 1) {
        resp[++got] = '\0';
        if (strstr(resp, "\r\n\r\n"))
            break;
    }
    assert_true(got > 12);
    assert_memory_equal(resp, "HTTP/1.1 101", 12);
    return fd;
}

const char *su_peer(char c)
{
    static char p[4][AR__SIG_PEER_LEN + 1];
    static int i;
    char *out = p[i++ % 4];
    memset(out, c, AR__SIG_PEER_LEN);
    out[AR__SIG_PEER_LEN] = '\0';
    return out;
}

ar__sig_srv_t *su_srv_new(uint64_t id)
{
    ar__sig_srv_t *srv = ar_calloc(1, sizeof(*srv));
    assert_non_null(srv);
    srv->node_id = id;
    srv->now = 100;
    return srv;
}

ar__sig_srv_t *su_bus_srv_new(ar_signal_conf_t *conf, uint64_t id)
{
    static const char *const origins[] = {SU_ORIGIN};
    static const ar_ws_upgrade_conf_t upconf = {origins, 1, 0, AR_SIG_SUBPROTOCOL};
    ar_sig_init();
    ar__sig_srv_t *srv = ar_calloc(1, sizeof(*srv));
    assert_non_null(srv);
    srv->conf = conf;
    srv->node_id = id;
    ar_sn_conf_t nc = {.upgrade = &upconf};
    ar_sn_handler_t h = {0};
    assert_int_equal(ar_sn_loop_new(&nc, &h, &srv->loop), 0);
    assert_int_equal(ar__sig_bus_new(srv), 0);
    return srv;
}

void su_bus_srv_free(ar__sig_srv_t *srv)
{
    su_recs_free(srv);
    ar__sig_bus_stop(srv);
    ar_sn_loop_free(srv->loop);
    su_srv_free(srv);
}

su_bus_node_t *su_bus_node_new(uint64_t id)
{
    su_bus_node_t *f = ar_calloc(1, sizeof(*f));
    assert_non_null(f);
    f->conf.jurisdiction = (char *)"eu";
    f->conf.node_name = (char *)"n1";
    f->conf.admit_lag = 60000;
    f->srv = su_bus_srv_new(&f->conf, id);
    return f;
}

void su_bus_node_free(su_bus_node_t *f)
{
    su_bus_srv_free(f->srv);
    ar_free(f);
}

void su_proc(ar__sig_srv_t *srv, json_t *o)
{
    assert_non_null(o);
    char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    assert_non_null(txt);
    ar__sig_proc_msg(srv, txt, strlen(txt), NULL);
    ar_free(txt);
}

void su_srv_free(ar__sig_srv_t *srv)
{
    ar__sig_frame_pool_free(srv);
    ar__sig_recs_free(srv);
    ar_free(srv);
}

void su_recs_free(ar__sig_srv_t *srv)
{
    for (size_t i = 0; i < ar__sig_rec_buckets(srv); i++)
        while (srv->recs[i])
            ar__sig_rec_free(srv, srv->recs[i]); /* its local session too */
}

void su_conn_attach(ar__sig_conn_t *cn, ar__sig_srv_t *srv, ar__sig_sess_t *s, uint8_t state)
{
    memset(cn, 0, sizeof(*cn));
    cn->srv = srv;
    cn->state = state & 3u;
    cn->sess = s;
    s->conn = cn;
}

void su_claims(ar_token_claims_t *cl, ar_token_role_t role, const char *sub)
{
    memset(cl, 0, sizeof(*cl));
    snprintf(cl->aud, sizeof(cl->aud), "signal");
    snprintf(cl->sub, sizeof(cl->sub), "%s", sub);
    snprintf(cl->jur, sizeof(cl->jur), "eu");
    snprintf(cl->room, sizeof(cl->room), "room-1");
    snprintf(cl->clinic, sizeof(cl->clinic), "clinic-1");
    cl->role = role;
    cl->iat = (int64_t)time(NULL);
    cl->exp = cl->iat + 600;
}

void su_lost_notice(uint8_t *d, uint64_t from, uint32_t n)
{
    memset(d, 0, NOTICE_LEN);
    memcpy(d, &from, 8);
    d[24] = ACT_LOST;
    ar__sig_le_put(d + AR__SIG_TO_HDR, n, 4);
}

ar__sig_sess_t *su_sess_held(ar__sig_srv_t *srv, char c, int backup)
{
    ar__sig_rec_t *r = ar__sig_rec_get(srv, su_peer(c));
    assert_non_null(r);
    r->owner = backup ? 7 : srv->node_id;
    ar__sig_sess_t *s = ar_calloc(1, sizeof(*s));
    assert_non_null(s);
    s->rec = r;
    s->cold = (ar__sig_sess_cold_t *)&ar__sig_no_cold; /* as ar__sig_sess_link_new leaves it */
    s->is_backup = backup != 0;
    r->local = s;
    return s;
}

const char *su_resume(const ar__sig_sess_t *s)
{
    static char text[AR__SIG_RESUME_LEN + 1];
    ar__sig_sess_resume_text(s, text);
    return text;
}

void su_signer(ar_token_key_t *key)
{
    assert_true(sodium_init() >= 0);
    assert_int_equal(ar_token_key_generate(key, "k1"), 0);
}

void su_trust(ar_token_keyring_t *ring, const ar_token_key_t *key)
{
    ar_token_key_t pub;
    memset(&pub, 0, sizeof(pub));
    memcpy(pub.kid, key->kid, sizeof(pub.kid));
    memcpy(pub.pk, key->pk, sizeof(pub.pk));
    assert_int_equal(ar_token_keyring_add(ring, &pub), 0);
}

void su_mint(const ar_token_key_t *key, const ar_token_claims_t *cl, char *out, size_t cap)
{
    int n = ar_token_mint(key, cl, out, cap);
    if (n <= 0)
        fail_msg("token not minted: %d", n);
}

void su_send_text(int fd, const char *text)
{
    size_t len = strlen(text);
    assert_true(len <= 65535);
    uint8_t *f = ar_malloc(len + 8);
    assert_non_null(f);
    size_t h = 2;
    f[0] = 0x81; /* FIN, text */
    if (len < 126) {
        f[1] = (uint8_t)(0x80 | len);
    } else {
        f[1] = 0x80 | 126;
        f[2] = (uint8_t)(len >> 8);
        f[3] = (uint8_t)len;
        h = 4;
    }
    memset(f + h, 0, 4); /* a zero mask: the payload goes as is */
    memcpy(f + h + 4, text, len);
    size_t n = h + 4 + len;
    assert_int_equal(send(fd, f, n, MSG_NOSIGNAL), (ssize_t)n);
    ar_free(f);
}

void su_hello(int fd, const char *token, const char *resume, int64_t last_seq)
{
    char text[AR_TOKEN_MAX + 256];
    int n;
    if (resume)
        n = snprintf(text, sizeof(text),
                     "{\"v\":1,\"type\":\"hello\",\"id\":1,\"token\":\"%s\",\"resume\":\"%s\","
                     "\"last_seq\":%lld}",
                     token, resume, (long long)last_seq);
    else
        n = snprintf(text, sizeof(text), "{\"v\":1,\"type\":\"hello\",\"id\":1,\"token\":\"%s\"}",
                     token);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    su_send_text(fd, text);
}

const char *su_to_peer(const char *subj)
{
    if (strncmp(subj, "ar.eu.to.", 9) != 0)
        return NULL;
    const char *peer = strrchr(subj, '.') + 1;
    return strlen(peer) == AR__SIG_PEER_LEN ? peer : NULL;
}

ar__sig_srv_t *su_srv_caught_up(uint64_t id, uint32_t now)
{
    ar__sig_srv_t *w = su_srv_new(id);
    ar__sig_rooms_ended_begin(w, 0, now, 0);
    assert_int_equal(ar__sig_rooms_ended_step(w, now), -1); /* nobody to ask */
    assert_int_equal(ar__sig_rooms_ended_sync(w, 0, 1, now), 0);
    return w;
}

int su_log_count(int fd, const char *event)
{
    static char buf[16384];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    int c = 0;
    for (const char *p = buf; (p = strstr(p, event)); p += strlen(event))
        c++;
    return c;
}

int su_log_wait(int fd, const char *event, int want)
{
    for (int i = 0; i < 500 && su_log_count(fd, event) < want; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return su_log_count(fd, event);
}

int su_log_to_file(void)
{
    char path[] = "/tmp/ar_sig_test_logXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    ar_log_init("signal", AR_LOG_INFO);
    ar_log_set_fd(fd);
    return fd;
}

void su_log_back(int fd)
{
    ar_log_set_fd(-1);
    ar_log_init("signal", AR_LOG_WARN);
    close(fd);
}
