/*
 * Report decoding: strict JSON (jansson, duplicate keys refused), then an address scan of every
 * key and string, then the schema table applied by one function (style.md rule 13).
 *
 * The order matters for counting: an address anywhere in a body is counted as an address even
 * when the same body also breaks another rule, so the operator's "address" counter is the
 * number of clients that tried to send one, not a remainder.
 */
#include "stats.h"

#include "anteroom/json.h"

#include <jansson.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* A report is one flat object; one level of nesting is allowed only so that a nested value is
 * reported as an unknown field rather than as malformed JSON. */
#define MAX_DEPTH 3

typedef enum { F_INT, F_ENUM, F_BOOL, F_TOKEN } ftype_t;

typedef struct {
    const char *key;
    ftype_t type;
    int required;
    uint32_t min, max;        /* F_INT: inclusive range */
    const char *const *names; /* F_ENUM: the accepted strings, index = value */
    size_t nnames;
    size_t offset; /* into ar_stats_report_t */
    unsigned has;  /* AR_STATS_HAS_* set when present, 0 for required fields */
} field_t;

static const char *const browsers[] = {"chrome", "firefox", "safari", "edge", "other"};
static const char *const profiles[] = {"low", "standard", "high"};
static const char *const cands[] = {"host", "srflx", "prflx", "relay"};
static const char *const reasons[] = {"ok",      "too_large", "malformed", "address",
                                      "unknown", "invalid",   "version"};

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define O(f) offsetof(ar_stats_report_t, f)
#define DAY 86400u

/*
 * Schema version 1 (docs/monitor.md). Ranges are generous for real calls and bounded so that
 * every value fits the aggregates' histograms (hist.h: values up to 131071).
 */
static const field_t fields[] = {
    {"v", F_INT, 1, 0, 1000, NULL, 0, O(version), 0},
    {"token", F_TOKEN, 1, 0, 0, NULL, 0, O(token), 0},
    {"interval_s", F_INT, 1, 1, 300, NULL, 0, O(interval_s), 0},
    {"call_s", F_INT, 1, 0, DAY, NULL, 0, O(call_s), 0},
    {"wait_s", F_INT, 0, 0, DAY, NULL, 0, O(wait_s), AR_STATS_HAS_WAIT},
    {"final", F_BOOL, 0, 0, 0, NULL, 0, O(final), 0},
    {"browser", F_ENUM, 1, 0, 0, browsers, N(browsers), O(browser), 0},
    {"profile", F_ENUM, 1, 0, 0, profiles, N(profiles), O(profile), 0},
    {"candidate", F_ENUM, 1, 0, 0, cands, N(cands), O(cand), 0},
    {"remote_candidate", F_ENUM, 0, 0, 0, cands, N(cands), O(remote_cand),
     AR_STATS_HAS_REMOTE_CAND},
    {"bitrate_in_kbps", F_INT, 0, 0, 100000, NULL, 0, O(bitrate_in_kbps), AR_STATS_HAS_BITRATE_IN},
    {"bitrate_out_kbps", F_INT, 0, 0, 100000, NULL, 0, O(bitrate_out_kbps),
     AR_STATS_HAS_BITRATE_OUT},
    {"loss_permille", F_INT, 0, 0, 1000, NULL, 0, O(loss_permille), AR_STATS_HAS_LOSS},
    {"jitter_ms", F_INT, 0, 0, 60000, NULL, 0, O(jitter_ms), AR_STATS_HAS_JITTER},
    {"rtt_ms", F_INT, 0, 0, 60000, NULL, 0, O(rtt_ms), AR_STATS_HAS_RTT},
    {"fps", F_INT, 0, 0, 240, NULL, 0, O(fps), AR_STATS_HAS_FPS},
    {"width", F_INT, 0, 0, 7680, NULL, 0, O(width), AR_STATS_HAS_WIDTH},
    {"height", F_INT, 0, 0, 4320, NULL, 0, O(height), AR_STATS_HAS_HEIGHT},
};

const char *ar_stats_reason_name(ar_stats_reason_t r)
{
    return (size_t)r < N(reasons) ? reasons[r] : "";
}
const char *ar_stats_browser_name(int b)
{
    return b >= 0 && (size_t)b < N(browsers) ? browsers[b] : "";
}
const char *ar_stats_profile_name(int p)
{
    return p >= 0 && (size_t)p < N(profiles) ? profiles[p] : "";
}
const char *ar_stats_cand_name(int c)
{
    return c >= 0 && (size_t)c < N(cands) ? cands[c] : "";
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Digits starting at s[i], at most 3; returns how many (0 when none). */
static size_t digits(const char *s, size_t len, size_t i)
{
    size_t n = 0;
    while (i + n < len && n < 4 && is_digit(s[i + n]))
        n++;
    return n <= 3 ? n : 0;
}

/* A dotted quad d{1,3}.d{1,3}.d{1,3}.d{1,3} starting at i (values are not range-checked:
 * "999.1.1.1" is refused too, which costs no real report anything). */
static int quad_at(const char *s, size_t len, size_t i)
{
    for (int g = 0; g < 4; g++) {
        size_t n = digits(s, len, i);
        if (n == 0)
            return 0;
        i += n;
        if (g < 3) {
            if (i >= len || s[i] != '.')
                return 0;
            i++;
        }
    }
    return 1;
}

int ar_stats_has_ip(const char *s, size_t len)
{
    size_t run = 0, colons = 0;
    for (size_t i = 0; i < len; i++) {
        if (is_digit(s[i]) && (i == 0 || !is_digit(s[i - 1])) && quad_at(s, len, i))
            return 1;
        /* IPv6: any run of hex digits and colons holding two colons ("::", "fe80::1",
         * "2001:db8:0:1"). No schema value contains a colon, so this costs nothing. */
        if (is_hex(s[i]) || s[i] == ':') {
            run++;
            colons += s[i] == ':';
            if (colons >= 2)
                return 1;
        } else {
            run = 0;
            colons = 0;
        }
    }
    (void)run;
    return 0;
}

static int contains_ci(const char *s, size_t len, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= len; i++)
        if (strncasecmp(s + i, word, w) == 0)
            return 1;
    return 0;
}

int ar_stats_has_address(const char *s, size_t len)
{
    /* Candidate lines ("candidate:1 1 udp 2122 192.0.2.1 5000 typ host raddr ... rport ...")
     * and mDNS host names ("<uuid>.local") name a host even once the numbers are gone. */
    static const char *const words[] = {"candidate:", " typ ", "raddr", "rport", ".local"};
    if (ar_stats_has_ip(s, len))
        return 1;
    for (size_t i = 0; i < N(words); i++)
        if (contains_ci(s, len, words[i]))
            return 1;
    return 0;
}

/*
 * 1 when any key or string under v looks like an address. The token's own characters
 * ([A-Za-z0-9._-], checked later) cannot form a candidate line, but its random signature could
 * spell "rport" by chance, so for the token only the IP shapes are checked.
 */
static int any_address(json_t *v, int is_token)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        return is_token ? ar_stats_has_ip(s, n) : ar_stats_has_address(s, n);
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) if (any_address(e, 0)) return 1;
        return 0;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
        {
            if (ar_stats_has_address(k, strlen(k)) || any_address(e, strcmp(k, "token") == 0))
                return 1;
        }
    }
    return 0;
}

static int token_chars_ok(const char *s, size_t n)
{
    if (n < 4 || n > AR_TOKEN_MAX || strncmp(s, "AR1.", 4) != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Checks one present field and stores it. Returns 0 or AR_STATS_R_INVALID. */
static ar_stats_reason_t apply(const field_t *f, json_t *v, ar_stats_report_t *out)
{
    char *base = (char *)out + f->offset;
    switch (f->type) {
    case F_INT: {
        if (!json_is_integer(v))
            return AR_STATS_R_INVALID;
        json_int_t n = json_integer_value(v);
        if (n < (json_int_t)f->min || n > (json_int_t)f->max)
            return AR_STATS_R_INVALID;
        uint32_t u = (uint32_t)n;
        memcpy(base, &u, sizeof(u));
        return AR_STATS_OK;
    }
    case F_ENUM: {
        if (!json_is_string(v))
            return AR_STATS_R_INVALID;
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        for (size_t i = 0; i < f->nnames; i++) {
            if (strlen(f->names[i]) == len && memcmp(f->names[i], s, len) == 0) {
                int e = (int)i;
                memcpy(base, &e, sizeof(e));
                return AR_STATS_OK;
            }
        }
        return AR_STATS_R_INVALID;
    }
    case F_BOOL: {
        if (!json_is_boolean(v))
            return AR_STATS_R_INVALID;
        int b = json_is_true(v);
        memcpy(base, &b, sizeof(b));
        return AR_STATS_OK;
    }
    case F_TOKEN: {
        if (!json_is_string(v))
            return AR_STATS_R_INVALID;
        size_t len = json_string_length(v);
        if (!token_chars_ok(json_string_value(v), len))
            return AR_STATS_R_INVALID;
        memcpy(out->token, json_string_value(v), len);
        out->token[len] = '\0';
        out->token_len = len;
        return AR_STATS_OK;
    }
    }
    return AR_STATS_R_INVALID;
}

static const field_t *find(const char *key)
{
    for (size_t i = 0; i < N(fields); i++)
        if (strcmp(fields[i].key, key) == 0)
            return &fields[i];
    return NULL;
}

static ar_stats_reason_t check(json_t *root, ar_stats_report_t *out)
{
    if (any_address(root, 0))
        return AR_STATS_R_ADDRESS;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (find(key) == NULL)
            return AR_STATS_R_UNKNOWN;
    }
    for (size_t i = 0; i < N(fields); i++) {
        const field_t *f = &fields[i];
        v = json_object_get(root, f->key);
        if (v == NULL) {
            if (f->required)
                return AR_STATS_R_INVALID;
            continue;
        }
        ar_stats_reason_t r = apply(f, v, out);
        if (r != AR_STATS_OK)
            return r;
        out->present |= f->has;
    }
    /* The version is checked after the types so that "v": "1" is invalid, not a version. */
    return out->version == AR_STATS_VERSION ? AR_STATS_OK : AR_STATS_R_VERSION;
}

ar_stats_reason_t ar_stats_parse(const char *buf, size_t len, size_t cap, ar_stats_report_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len > cap)
        return AR_STATS_R_TOO_LARGE;
    int deep, pos;
    json_t *root = ar_json_load_strict(buf, len, MAX_DEPTH, &deep, &pos);
    if (root == NULL)
        return AR_STATS_R_MALFORMED;
    ar_stats_reason_t r = json_is_object(root) ? check(root, out) : AR_STATS_R_MALFORMED;
    json_decref(root);
    return r;
}
