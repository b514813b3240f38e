/*
 * The WebSocket upgrade: RFC 6455's example handshake gives the example accept key; incomplete
 * requests wait; data after the request is left alone; each refusal has its HTTP status.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ws/ws.h"

#include <stdio.h>
#include <string.h>

static const char *const origins[] = {"https://app.example.org", "http://example.com"};
static const ar_ws_upgrade_conf_t conf = {origins, 2, 0, "chat"};

/* RFC 6455 section 1.3 / 4.1's example request. */
static const char rfc_req[] = "GET /chat HTTP/1.1\r\n"
                              "Host: server.example.com\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Origin: http://example.com\r\n"
                              "Sec-WebSocket-Protocol: chat, superchat\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";

/*
 * RFC 6455 section 1.3's example: this key gives s3pPLMBiTxaQ9kYGzzhZRbK+xOo= (checked also with
 * `printf '<key><GUID>' | openssl sha1 -binary | base64`).
 */
static void test_accept_key(void **state)
{
    (void)state;
    char acc[AR_WS_ACCEPT_LEN + 1];
    assert_int_equal(ar_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, acc), 0);
    assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_rfc_request(void **state)
{
    (void)state;
    ar_ws_upgrade_t up;
    char buf[sizeof(rfc_req) + 8];
    size_t n = strlen(rfc_req);
    memcpy(buf, rfc_req, n);
    memcpy(buf + n, "\x81\x85", 2); /* an early frame follows the request */
    assert_int_equal(ar_ws_upgrade_check(buf, n + 2, &conf, &up), 0);
    assert_int_equal(up.status, 101);
    assert_int_equal(up.consumed, n);
    assert_string_equal(up.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_string_equal(up.path, "/chat");
    char resp[256];
    int len = ar_ws_upgrade_response(&up, &conf, resp, sizeof(resp));
    assert_true(len > 0);
    assert_string_equal(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                              "Sec-WebSocket-Protocol: chat\r\n\r\n");
    assert_int_equal(ar_ws_upgrade_response(&up, &conf, resp, 20), AR_ETOOBIG);
    /* Every strict prefix is incomplete. */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ar_ws_upgrade_check(rfc_req, i, &conf, &up), AR_EAGAIN);
}

/* Replaces the first occurrence of `from` in the RFC request with `to` and checks it. */
static int variant(const char *from, const char *to, const ar_ws_upgrade_conf_t *c, int *status)
{
    char req[2048];
    const char *at = strstr(rfc_req, from);
    assert_non_null(at);
    size_t head = (size_t)(at - rfc_req);
    snprintf(req, sizeof(req), "%.*s%s%s", (int)head, rfc_req, to, at + strlen(from));
    ar_ws_upgrade_t up;
    int err = ar_ws_upgrade_check(req, strlen(req), c, &up);
    *status = up.status;
    if (err && err != AR_EAGAIN) {
        char resp[256];
        int n = ar_ws_upgrade_response(&up, c, resp, sizeof(resp));
        assert_true(n > 0);
        if (up.status == 426)
            assert_non_null(strstr(resp, "Sec-WebSocket-Version: 13\r\n"));
    }
    return err;
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to;
        int status;
    } cases[] = {
        {"GET", "POST", 400},
        {"HTTP/1.1\r\n", "HTTP/1.0\r\n", 400},
        {"Upgrade: websocket\r\n", "", 400},
        {"Upgrade: websocket", "Upgrade: h2c", 400},
        {"Connection: Upgrade", "Connection: keep-alive", 400},
        {"Host: server.example.com\r\n", "", 400},
        {"Host: server.example.com\r\n", "Host: a\r\nHost: b\r\n", 400},
        {"Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", 426},
        {"Sec-WebSocket-Version: 13\r\n", "", 400},
        {"dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ", 400},
        {"dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZ*==", 400},
        {"dGhlIHNhbXBsZSBub25jZQ==",
         "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: "
         "dGhlIHNhbXBsZSBub25jZQ==",
         400},
        {"Origin: http://example.com", "Origin: http://evil.example", 403},
        {"Origin: http://example.com\r\n", "", 403},
        {"Sec-WebSocket-Protocol: chat, superchat", "Sec-WebSocket-Protocol: superchat", 400},
        {"Sec-WebSocket-Protocol: chat, superchat\r\n", "", 400},
        {"Connection: Upgrade", "Connection: Upgrade\r\nContent-Length: 3", 400},
        {"GET /chat HTTP/1.1", "GET /chat HTTP/1.1 junk", 400},
        {"\r\n\r\n", "\r\nNoColon\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int status = 0;
        int err = variant(cases[i].from, cases[i].to, &conf, &status);
        if (err == 0 || status != cases[i].status)
            fail_msg("case %zu: err %d status %d", i, err, status);
    }
}

static void test_accepted_variants(void **state)
{
    (void)state;
    int status;
    /* Header names and the Upgrade/Connection tokens are case-insensitive; lists are fine. */
    assert_int_equal(variant("Upgrade: websocket", "upgrade: WebSocket", &conf, &status), 0);
    assert_int_equal(
        variant("Connection: Upgrade", "Connection: keep-alive, upgrade", &conf, &status), 0);
    assert_int_equal(
        variant("Origin: http://example.com", "Origin: HTTP://EXAMPLE.COM", &conf, &status), 0);
    /* Without Origin when the configuration allows non-browser clients. */
    ar_ws_upgrade_conf_t open = conf;
    open.allow_no_origin = 1;
    assert_int_equal(variant("Origin: http://example.com\r\n", "", &open, &status), 0);
    /* No subprotocol required. */
    ar_ws_upgrade_conf_t noproto = conf;
    noproto.protocol = NULL;
    assert_int_equal(variant("Sec-WebSocket-Protocol: chat, superchat\r\n", "", &noproto, &status),
                     0);
}

static void test_caps(void **state)
{
    (void)state;
    static char big[AR_WS_MAX_REQUEST + 100];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    ar_ws_upgrade_t up;
    assert_int_equal(ar_ws_upgrade_check(big, sizeof(big), &conf, &up), AR_ETOOBIG);
    assert_int_equal(up.status, 431);
    assert_int_equal(ar_ws_upgrade_check(big, AR_WS_MAX_REQUEST, &conf, &up), AR_ETOOBIG);
    int status;
    char path[AR_WS_MAX_PATH + 20];
    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(variant("/chat", path, &conf, &status), AR_ETOOBIG);
    assert_int_equal(status, 414);
    char acc[AR_WS_ACCEPT_LEN + 1];
    assert_int_equal(ar_ws_accept_key(big, 65, acc), AR_EINVAL);
}

/* Checks the RFC request with `extra` header lines added before the blank line. */
static void with_headers(const char *extra, ar_ws_upgrade_t *up)
{
    char req[4096];
    size_t n = strlen(rfc_req) - 2;
    snprintf(req, sizeof(req), "%.*s%s\r\n", (int)n, rfc_req, extra);
    assert_int_equal(ar_ws_upgrade_check(req, strlen(req), &conf, up), 0);
}

/* X-Forwarded-For is handed over as sent (headers joined), its tail kept when long. */
static void test_forwarded_for(void **state)
{
    (void)state;
    ar_ws_upgrade_t up;
    with_headers("", &up);
    assert_int_equal(up.forwarded_len, 0);
    assert_string_equal(up.forwarded, "");
    with_headers("X-Forwarded-For:  203.0.113.7, 10.0.0.2 \r\n", &up);
    assert_string_equal(up.forwarded, "203.0.113.7, 10.0.0.2");
    assert_int_equal(up.forwarded_cut, 0);
    with_headers("x-forwarded-for: 1.1.1.1\r\nX-Forwarded-For: 203.0.113.7\r\n", &up);
    assert_string_equal(up.forwarded, "1.1.1.1,203.0.113.7");
    /* Longer than the cap: the last AR_WS_MAX_FORWARDED bytes, marked cut. */
    char longv[1200], line[1300];
    for (size_t i = 0; i < sizeof(longv) - 1; i++)
        longv[i] = (char)('0' + i % 10);
    longv[sizeof(longv) - 1] = '\0';
    snprintf(line, sizeof(line), "X-Forwarded-For: %s, 198.51.100.9\r\n", longv);
    with_headers(line, &up);
    assert_int_equal(up.forwarded_len, AR_WS_MAX_FORWARDED);
    assert_int_equal(up.forwarded_cut, 1);
    assert_string_equal(up.forwarded + AR_WS_MAX_FORWARDED - 14, ", 198.51.100.9");
    /* The cap reached across two headers: still the tail, with the separator. */
    snprintf(line, sizeof(line), "X-Forwarded-For: %.250s\r\nX-Forwarded-For: 192.0.2.1\r\n",
             longv);
    with_headers(line, &up);
    assert_int_equal(up.forwarded_len, AR_WS_MAX_FORWARDED);
    assert_int_equal(up.forwarded_cut, 1);
    assert_string_equal(up.forwarded + AR_WS_MAX_FORWARDED - 10, ",192.0.2.1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key), cmocka_unit_test(test_rfc_request),
        cmocka_unit_test(test_refusals),   cmocka_unit_test(test_accepted_variants),
        cmocka_unit_test(test_caps),       cmocka_unit_test(test_forwarded_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
