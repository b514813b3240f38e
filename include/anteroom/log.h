/*
 * Structured JSON logs, one object per line on stderr, written with one write() so lines from
 * several threads never interleave.
 *
 * Logs must not carry personal data (mission S4). The API makes that the easy path:
 *  - event names and field keys are string literals;
 *  - string values are either literals (AR_LF_KW, checked at compile time by concatenation) or
 *    operator-supplied configuration text (AR_LF_OPER: paths, option names), never input from
 * users;
 *  - IP addresses go through AR_LF_ADDR, which truncates IPv4 to /24 and IPv6 to /48;
 *  - numbers and error codes are safe as they are.
 * There is deliberately no printf-style entry point.
 */
#ifndef ANTEROOM_LOG_H
#define ANTEROOM_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef enum {
    AR_LOG_DEBUG = 0,
    AR_LOG_INFO = 1,
    AR_LOG_WARN = 2,
    AR_LOG_ERROR = 3,
} ar_log_level_t;

typedef enum {
    AR_LF_T_KW,   /* a string literal */
    AR_LF_T_OPER, /* operator configuration text, escaped and capped at 200 bytes */
    AR_LF_T_INT,
    AR_LF_T_UINT,
    AR_LF_T_DBL,
    AR_LF_T_ERR,  /* an AR_E* code: logged as its name */
    AR_LF_T_ADDR, /* a struct sockaddr, logged truncated */
} ar_log_field_type_t;

typedef struct ar_log_field_s {
    const char *key;
    ar_log_field_type_t type;
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double d;
        const struct sockaddr *addr;
    } v;
} ar_log_field_t;

#define AR_LF_KW(k, lit) ((ar_log_field_t){.key = (k), .type = AR_LF_T_KW, .v.s = "" lit ""})
#define AR_LF_OPER(k, str) ((ar_log_field_t){.key = (k), .type = AR_LF_T_OPER, .v.s = (str)})
#define AR_LF_INT(k, n) ((ar_log_field_t){.key = (k), .type = AR_LF_T_INT, .v.i = (int64_t)(n)})
#define AR_LF_UINT(k, n) ((ar_log_field_t){.key = (k), .type = AR_LF_T_UINT, .v.u = (uint64_t)(n)})
#define AR_LF_DBL(k, n) ((ar_log_field_t){.key = (k), .type = AR_LF_T_DBL, .v.d = (double)(n)})
#define AR_LF_ERR(k, e) ((ar_log_field_t){.key = (k), .type = AR_LF_T_ERR, .v.i = (int64_t)(e)})
#define AR_LF_ADDR(k, sa) ((ar_log_field_t){.key = (k), .type = AR_LF_T_ADDR, .v.addr = (sa)})

/* Sets the component name ("turn", "signal", ...) put on every line, and the minimum level. */
void ar_log_init(const char *component, ar_log_level_t min_level);
/* Parses "debug", "info", "warn" or "error"; returns 0 or AR_EINVAL. */
int ar_log_level_parse(const char *text, ar_log_level_t *out);
/* Redirects log lines to fd (tests); -1 restores stderr. */
void ar_log_set_fd(int fd);

void ar_log_fields(ar_log_level_t level, const char *event, const ar_log_field_t *fields,
                   size_t nfields);

#define AR__LOG_N(...) (sizeof((ar_log_field_t[]){__VA_ARGS__}) / sizeof(ar_log_field_t))
/* ar_log(AR_LOG_INFO, "listening", AR_LF_INT("port", 3478)); the event must be a literal. */
#define ar_log(level, event, ...)                                                                  \
    ar_log_fields(level, "" event "", (ar_log_field_t[]){__VA_ARGS__}, AR__LOG_N(__VA_ARGS__))
#define ar_log0(level, event) ar_log_fields(level, "" event "", NULL, 0)

/*
 * Writes the truncated text form of an address ("192.0.2.0/24", "2001:db8:1::/48") into out.
 * Returns the length, or a negative AR_E* code. Exposed for tests and metrics labels.
 */
int ar_log_addr_truncated(const struct sockaddr *sa, char *out, size_t outlen);

#endif
