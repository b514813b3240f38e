#include "anteroom/log.h"

#include "anteroom/err.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048
#define OPER_TEXT_MAX 200

static const char *log_component = "anteroom";
static ar_log_level_t log_min_level = AR_LOG_INFO;
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void ar_log_init(const char *component, ar_log_level_t min_level)
{
    log_component = component;
    log_min_level = min_level;
}

int ar_log_level_parse(const char *text, ar_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = (ar_log_level_t)i;
            return 0;
        }
    }
    return AR_EINVAL;
}

void ar_log_set_fd(int fd)
{
    log_fd = fd < 0 ? STDERR_FILENO : fd;
}

/* A bounded line builder: appends never overflow, and a full line is cut, not corrupted. */
typedef struct {
    char buf[LOG_LINE_MAX];
    size_t len;
} line_t;

static void put(line_t *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 2 - l->len; /* keep space for "}\n" */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(line_t *l, const char *s)
{
    put(l, s, strlen(s));
}

static void put_escaped(line_t *l, const char *s, size_t cap)
{
    put(l, "\"", 1);
    for (size_t i = 0; s[i] != '\0' && i < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            /* Non-ASCII is replaced rather than passed through: logs stay plain ASCII JSON. */
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(l, esc, 6);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
    put(l, "\"", 1);
}

int ar_log_addr_truncated(const struct sockaddr *sa, char *out, size_t outlen)
{
    char text[INET6_ADDRSTRLEN];
    int n;
    if (sa == NULL)
        return AR_EINVAL;
    if (sa->sa_family == AF_INET) {
        struct in_addr a = ((const struct sockaddr_in *)sa)->sin_addr;
        a.s_addr &= htonl(0xffffff00u);
        inet_ntop(AF_INET, &a, text, sizeof(text));
        n = snprintf(out, outlen, "%s/24", text);
    } else if (sa->sa_family == AF_INET6) {
        struct in6_addr a = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        memset(a.s6_addr + 6, 0, 10);
        inet_ntop(AF_INET6, &a, text, sizeof(text));
        n = snprintf(out, outlen, "%s/48", text);
    } else {
        n = snprintf(out, outlen, "unknown");
    }
    if (n < 0 || (size_t)n >= outlen)
        return AR_ETOOBIG;
    return n;
}

void ar_log_fields(ar_log_level_t level, const char *event, const ar_log_field_t *fields,
                   size_t nfields)
{
    if (level < log_min_level)
        return;
    line_t l;
    l.len = 0;
    char tmp[64];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
    puts_(&l, "{\"ts\":\"");
    puts_(&l, tmp);
    snprintf(tmp, sizeof(tmp), ".%03ldZ\",\"level\":\"", ts.tv_nsec / 1000000);
    puts_(&l, tmp);
    puts_(&l, level_names[level]);
    puts_(&l, "\",\"comp\":");
    put_escaped(&l, log_component, 32);
    puts_(&l, ",\"event\":");
    put_escaped(&l, event, 64);
    for (size_t i = 0; i < nfields; i++) {
        const ar_log_field_t *f = &fields[i];
        puts_(&l, ",");
        put_escaped(&l, f->key, 64);
        puts_(&l, ":");
        switch (f->type) {
        case AR_LF_T_KW:
            put_escaped(&l, f->v.s, 64);
            break;
        case AR_LF_T_OPER:
            put_escaped(&l, f->v.s ? f->v.s : "", OPER_TEXT_MAX);
            break;
        case AR_LF_T_INT:
            snprintf(tmp, sizeof(tmp), "%lld", (long long)f->v.i);
            puts_(&l, tmp);
            break;
        case AR_LF_T_UINT:
            snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)f->v.u);
            puts_(&l, tmp);
            break;
        case AR_LF_T_DBL:
            snprintf(tmp, sizeof(tmp), "%.6g", f->v.d);
            puts_(&l, tmp);
            break;
        case AR_LF_T_ERR:
            put_escaped(&l, ar_err_name((int)f->v.i), 32);
            break;
        case AR_LF_T_ADDR:
            if (ar_log_addr_truncated(f->v.addr, tmp, sizeof(tmp)) < 0)
                snprintf(tmp, sizeof(tmp), "invalid");
            put_escaped(&l, tmp, sizeof(tmp));
            break;
        }
    }
    memcpy(l.buf + l.len, "}\n", 2);
    l.len += 2;
    /* One write per line: concurrent writers never interleave within a line (PIPE_BUF-sized). */
    ssize_t w = write(log_fd, l.buf, l.len);
    (void)w;
}
