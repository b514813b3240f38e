/*
 * The WebSocket opening handshake, server side (RFC 6455 4.2.1): http-parser tokenises the request
 * (we trust a maintained parser with request smuggling corner cases, not our own), and the
 * callbacks below only record the few headers the check needs as pointers into the caller's
 * buffer. Nothing is allocated.
 */
#include "ws/ws.h"

#include <http_parser.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The GUID every server appends to the key (RFC 6455 1.3). */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

typedef struct slice_s {
    const char *p;
    size_t len;
} slice_t;

typedef struct req_s {
    const ar_ws_upgrade_conf_t *conf;
    ar_ws_upgrade_t *out;
    slice_t field, value, url, key, version, origin;
    int in_value; /* last callback was a value: the next field starts a new header */
    int hosts, upgrades, keys, versions, origins;
    int upgrade_ok, connection_ok, protocol_ok, has_body, done;
} req_t;

static void trim(slice_t *s)
{
    while (s->len && (s->p[0] == ' ' || s->p[0] == '\t'))
        s->p++, s->len--;
    while (s->len && (s->p[s->len - 1] == ' ' || s->p[s->len - 1] == '\t'))
        s->len--;
}

static int ieq(slice_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

/* Whether a comma-separated token list holds tok (case-insensitively unless `exact`). */
static int has_token(slice_t list, const char *tok, int exact)
{
    size_t n = strlen(tok);
    while (list.len) {
        const char *comma = memchr(list.p, ',', list.len);
        slice_t item = {list.p, comma ? (size_t)(comma - list.p) : list.len};
        trim(&item);
        if (item.len == n && (exact ? memcmp(item.p, tok, n) == 0 : ieq(item, tok)))
            return 1;
        if (!comma)
            break;
        list.len -= (size_t)(comma - list.p) + 1;
        list.p = comma + 1;
    }
    return 0;
}

/* Extends s with the next fragment: fragments of one buffer are contiguous. */
static void extend(slice_t *s, const char *at, size_t len)
{
    if (!s->p)
        s->p = at;
    s->len = (size_t)(at + len - s->p);
}

/* Appends one X-Forwarded-For value (joined to earlier ones with ","), keeping the tail. */
static void add_forwarded(ar_ws_upgrade_t *out, slice_t v)
{
    char *f = out->forwarded;
    const size_t cap = AR_WS_MAX_FORWARDED;
    size_t sep = out->forwarded_len > 0 || out->forwarded_cut ? 1 : 0;
    if (v.len >= cap) {
        memcpy(f, v.p + (v.len - cap), cap);
        out->forwarded_len = cap;
        out->forwarded_cut = 1;
    } else {
        size_t need = out->forwarded_len + sep + v.len;
        if (need > cap) {
            size_t drop = need - cap; /* <= forwarded_len + sep, as v.len < cap */
            if (drop >= out->forwarded_len) {
                sep -= drop - out->forwarded_len;
                out->forwarded_len = 0;
            } else {
                memmove(f, f + drop, out->forwarded_len - drop);
                out->forwarded_len -= drop;
            }
            out->forwarded_cut = 1;
        }
        if (sep)
            f[out->forwarded_len++] = ',';
        memcpy(f + out->forwarded_len, v.p, v.len);
        out->forwarded_len += v.len;
    }
    f[out->forwarded_len] = '\0';
}

static void header_done(req_t *r)
{
    slice_t v = r->value;
    trim(&v);
    if (ieq(r->field, "host")) {
        r->hosts++;
    } else if (ieq(r->field, "upgrade")) {
        r->upgrades++;
        r->upgrade_ok = has_token(v, "websocket", 0);
    } else if (ieq(r->field, "connection")) {
        r->connection_ok |= has_token(v, "upgrade", 0);
    } else if (ieq(r->field, "sec-websocket-key")) {
        r->keys++;
        r->key = v;
    } else if (ieq(r->field, "sec-websocket-version")) {
        r->versions++;
        r->version = v;
    } else if (ieq(r->field, "origin")) {
        r->origins++;
        r->origin = v;
    } else if (ieq(r->field, "sec-websocket-protocol")) {
        if (r->conf->protocol && has_token(v, r->conf->protocol, 1))
            r->protocol_ok = 1;
    } else if (ieq(r->field, "content-length") || ieq(r->field, "transfer-encoding")) {
        r->has_body = 1;
    } else if (ieq(r->field, "x-forwarded-for")) {
        add_forwarded(r->out, v);
    }
    memset(&r->field, 0, sizeof(r->field));
    memset(&r->value, 0, sizeof(r->value));
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    extend(&((req_t *)hp->data)->url, at, len);
    return 0;
}

static int on_field(http_parser *hp, const char *at, size_t len)
{
    req_t *r = hp->data;
    if (r->in_value) {
        header_done(r);
        r->in_value = 0;
    }
    extend(&r->field, at, len);
    return 0;
}

static int on_value(http_parser *hp, const char *at, size_t len)
{
    req_t *r = hp->data;
    r->in_value = 1;
    extend(&r->value, at, len);
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    req_t *r = hp->data;
    if (r->in_value)
        header_done(r);
    r->in_value = 0;
    /* 1 tells http-parser there is no body to wait for; a GET with one is refused anyway. */
    return r->has_body ? 1 : 0;
}

static int on_message_complete(http_parser *hp)
{
    /* Stop here: what follows the request is WebSocket data, not another request. */
    ((req_t *)hp->data)->done = 1;
    http_parser_pause(hp, 1);
    return 0;
}

/* A key is base64 of 16 bytes: 22 alphabet characters and "==" (4.2.1 item 5). */
static int key_ok(slice_t k)
{
    if (k.len != 24 || k.p[22] != '=' || k.p[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++) {
        char c = k.p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return 0;
    }
    return 1;
}

static int origin_ok(const req_t *r)
{
    if (!r->origins)
        return r->conf->allow_no_origin;
    for (size_t i = 0; i < r->conf->norigins; i++)
        if (ieq(r->origin, r->conf->origins[i]))
            return 1;
    return 0;
}

static int refuse(ar_ws_upgrade_t *out, int status, int err)
{
    out->status = status;
    return err;
}

int ar_ws_upgrade_check(const char *req, size_t len, const ar_ws_upgrade_conf_t *conf,
                        ar_ws_upgrade_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len > AR_WS_MAX_REQUEST)
        return refuse(out, 431, AR_ETOOBIG);
    req_t r;
    memset(&r, 0, sizeof(r));
    r.conf = conf;
    r.out = out;
    http_parser hp;
    http_parser_init(&hp, HTTP_REQUEST);
    hp.data = &r;
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_url = on_url;
    s.on_header_field = on_field;
    s.on_header_value = on_value;
    s.on_headers_complete = on_headers_complete;
    s.on_message_complete = on_message_complete;
    size_t n = http_parser_execute(&hp, &s, req, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&hp);
    if (e != HPE_OK && e != HPE_PAUSED)
        return refuse(out, 400, AR_EPARSE);
    if (!r.done) {
        /* Headers not complete: wait for more unless the cap is already reached. */
        if (len == AR_WS_MAX_REQUEST)
            return refuse(out, 431, AR_ETOOBIG);
        return AR_EAGAIN;
    }
    out->consumed = n;
    if (hp.method != HTTP_GET || hp.http_major != 1 || hp.http_minor < 1 || r.has_body)
        return refuse(out, 400, AR_EPARSE);
    if (r.hosts != 1 || r.upgrades != 1 || !r.upgrade_ok || !r.connection_ok || r.keys != 1 ||
        !key_ok(r.key) || r.versions != 1 || r.origins > 1)
        return refuse(out, 400, AR_EPARSE);
    if (r.version.len != 2 || memcmp(r.version.p, "13", 2) != 0)
        return refuse(out, 426, AR_EUNSUPPORTED);
    if (!origin_ok(&r))
        return refuse(out, 403, AR_EPERM);
    if (conf->protocol && !r.protocol_ok)
        return refuse(out, 400, AR_EPARSE);
    if (r.url.len == 0 || r.url.len > AR_WS_MAX_PATH)
        return refuse(out, 414, AR_ETOOBIG);
    memcpy(out->path, r.url.p, r.url.len);
    out->path[r.url.len] = '\0';
    out->path_len = r.url.len;
    int err = ar_ws_accept_key(r.key.p, r.key.len, out->accept);
    if (err)
        return refuse(out, 500, err);
    out->status = 101;
    return 0;
}

int ar_ws_accept_key(const char *key, size_t key_len, char out[AR_WS_ACCEPT_LEN + 1])
{
    unsigned char buf[64 + sizeof(ws_guid)];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (key_len > 64)
        return AR_EINVAL;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, ws_guid, sizeof(ws_guid) - 1);
    if (!EVP_Digest(buf, key_len + sizeof(ws_guid) - 1, md, &mdlen, EVP_sha1(), NULL) ||
        mdlen != 20)
        return AR_EIO;
    /* 20 bytes give exactly 28 base64 characters plus the NUL EVP_EncodeBlock writes. */
    if (EVP_EncodeBlock((unsigned char *)out, md, 20) != AR_WS_ACCEPT_LEN)
        return AR_EIO;
    return 0;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 403:
        return "Forbidden";
    case 414:
        return "URI Too Long";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    default:
        return "Bad Request";
    }
}

int ar_ws_upgrade_response(const ar_ws_upgrade_t *up, const ar_ws_upgrade_conf_t *conf, char *out,
                           size_t cap)
{
    int n;
    if (up->status == 101) {
        int proto = conf->protocol != NULL;
        n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                     up->accept, proto ? "Sec-WebSocket-Protocol: " : "",
                     proto ? conf->protocol : "", proto ? "\r\n" : "");
    } else {
        n = snprintf(out, cap, "HTTP/1.1 %d %s\r\n%sConnection: close\r\nContent-Length: 0\r\n\r\n",
                     up->status, reason_phrase(up->status),
                     up->status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "");
    }
    if (n < 0 || (size_t)n >= cap)
        return AR_ETOOBIG;
    return n;
}
