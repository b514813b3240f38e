#include "load.h"

#include "anteroom/alloc.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- addresses ---------------------------------------------------------------------------- */

int ar_turn_parse_hostport(const char *text, size_t len, struct sockaddr_storage *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port_text;
    size_t host_len;
    memset(out, 0, sizeof(*out));
    if (len == 0 || len > 64)
        return AR_EPARSE;
    if (text[0] == '[') {
        const char *close = memchr(text, ']', len);
        if (close == NULL || close + 1 >= text + len || close[1] != ':')
            return AR_EPARSE;
        host_len = (size_t)(close - text - 1);
        if (host_len >= sizeof(host))
            return AR_EPARSE;
        memcpy(host, text + 1, host_len);
        port_text = close + 2;
    } else {
        const char *colon = memchr(text, ':', len);
        if (colon == NULL || memchr(colon + 1, ':', len - (size_t)(colon + 1 - text)) != NULL)
            return AR_EPARSE;
        host_len = (size_t)(colon - text);
        if (host_len >= sizeof(host))
            return AR_EPARSE;
        memcpy(host, text, host_len);
        port_text = colon + 1;
    }
    host[host_len] = '\0';
    size_t port_len = len - (size_t)(port_text - text);
    if (port_len == 0 || port_len > 5)
        return AR_EPARSE;
    unsigned port = 0;
    for (size_t i = 0; i < port_len; i++) {
        if (port_text[i] < '0' || port_text[i] > '9')
            return AR_EPARSE;
        port = port * 10 + (unsigned)(port_text[i] - '0');
    }
    if (port == 0 || port > 65535)
        return AR_EPARSE;
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (text[0] != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (text[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return AR_EPARSE;
}

int ar_turn_format_hostport(const struct sockaddr *sa, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    int n;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        n = snprintf(out, cap, "%s:%u", host, ntohs(v4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        n = snprintf(out, cap, "[%s]:%u", host, ntohs(v6->sin6_port));
    } else {
        return AR_EINVAL;
    }
    if (n < 0 || (size_t)n >= cap)
        return AR_ETOOBIG;
    return n;
}

/* ---- report codec ------------------------------------------------------------------------- */

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= AR_TURN_LOAD_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

int ar_turn_load_encode(const ar_turn_load_t *load, char *out, size_t cap)
{
    char addr[80];
    if (!name_ok(load->node) || !name_ok(load->jurisdiction))
        return AR_EINVAL;
    if (ar_turn_format_hostport((const struct sockaddr *)&load->addr, addr, sizeof(addr)) < 0)
        return AR_EINVAL;
    int n = snprintf(out, cap,
                     "{\"v\":1,\"node\":\"%s\",\"jurisdiction\":\"%s\",\"addr\":\"%s\","
                     "\"allocations\":%llu,\"capacity\":%llu,\"bps\":%llu,\"cpu\":%.4f,"
                     "\"at_ms\":%lld}",
                     load->node, load->jurisdiction, addr, (unsigned long long)load->allocations,
                     (unsigned long long)load->capacity, (unsigned long long)load->bps, load->cpu,
                     (long long)load->at_ms);
    if (n < 0 || (size_t)n >= cap)
        return AR_ETOOBIG;
    return n;
}

/* The report's fields: each must be present with this type, and no other field may be. */
typedef enum { F_INT, F_NAME, F_ADDR, F_REAL } field_kind_t;
typedef struct {
    const char *key;
    field_kind_t kind;
} field_t;

static const field_t report_fields[] = {
    {"v", F_INT},     {"node", F_NAME},       {"jurisdiction", F_NAME},
    {"addr", F_ADDR}, {"allocations", F_INT}, {"capacity", F_INT},
    {"bps", F_INT},   {"cpu", F_REAL},        {"at_ms", F_INT},
};
#define NFIELDS (sizeof(report_fields) / sizeof(report_fields[0]))

static int decode_field(const field_t *f, json_t *v, ar_turn_load_t *out)
{
    switch (f->kind) {
    case F_INT: {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return AR_EPARSE;
        json_int_t n = json_integer_value(v);
        if (strcmp(f->key, "v") == 0)
            return n == 1 ? 0 : AR_EPARSE;
        if (strcmp(f->key, "allocations") == 0)
            out->allocations = (uint64_t)n;
        else if (strcmp(f->key, "capacity") == 0)
            out->capacity = (uint64_t)n;
        else if (strcmp(f->key, "bps") == 0)
            out->bps = (uint64_t)n;
        else
            out->at_ms = (int64_t)n;
        return 0;
    }
    case F_REAL: {
        if (!json_is_number(v))
            return AR_EPARSE;
        double d = json_number_value(v);
        if (!(d >= 0.0 && d <= 1.0))
            return AR_EPARSE;
        out->cpu = d;
        return 0;
    }
    case F_NAME: {
        if (!json_is_string(v) || !name_ok(json_string_value(v)))
            return AR_EPARSE;
        char *dst = strcmp(f->key, "node") == 0 ? out->node : out->jurisdiction;
        snprintf(dst, AR_TURN_LOAD_NAME_MAX, "%s", json_string_value(v));
        return 0;
    }
    case F_ADDR:
        if (!json_is_string(v))
            return AR_EPARSE;
        return ar_turn_parse_hostport(json_string_value(v), json_string_length(v), &out->addr);
    }
    return AR_EPARSE;
}

int ar_turn_load_decode(const char *json, size_t len, ar_turn_load_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len > AR_TURN_LOAD_REPORT_MAX)
        return AR_ETOOBIG;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return AR_EPARSE;
    int rc = json_is_object(root) && json_object_size(root) == NFIELDS ? 0 : AR_EPARSE;
    for (size_t i = 0; rc == 0 && i < NFIELDS; i++) {
        json_t *v = json_object_get(root, report_fields[i].key);
        rc = v ? decode_field(&report_fields[i], v, out) : AR_EPARSE;
    }
    json_decref(root);
    return rc;
}

double ar_turn_load_score(const ar_turn_load_t *load)
{
    double score = load->cpu;
    if (load->capacity > 0) {
        double fill = (double)load->allocations / (double)load->capacity;
        if (fill > score)
            score = fill;
    }
    return score;
}

/* ---- board -------------------------------------------------------------------------------- */

struct ar_turn_loadboard_s {
    pthread_mutex_t lock;
    char self[AR_TURN_LOAD_NAME_MAX];
    char jurisdiction[AR_TURN_LOAD_NAME_MAX];
    int64_t stale_ms;
    size_t count;
    ar_turn_load_t peers[AR_TURN_LOADBOARD_MAX];
};

ar_turn_loadboard_t *ar_turn_loadboard_new(const char *self_node, const char *jurisdiction,
                                           int64_t stale_ms)
{
    if (!name_ok(self_node) || !name_ok(jurisdiction))
        return NULL;
    ar_turn_loadboard_t *b = ar_calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    pthread_mutex_init(&b->lock, NULL);
    snprintf(b->self, sizeof(b->self), "%s", self_node);
    snprintf(b->jurisdiction, sizeof(b->jurisdiction), "%s", jurisdiction);
    b->stale_ms = stale_ms;
    return b;
}

void ar_turn_loadboard_free(ar_turn_loadboard_t *board)
{
    if (board == NULL)
        return;
    pthread_mutex_destroy(&board->lock);
    ar_free(board);
}

int ar_turn_loadboard_update(ar_turn_loadboard_t *b, const ar_turn_load_t *load)
{
    if (strcmp(load->jurisdiction, b->jurisdiction) != 0)
        return AR_EPERM;
    if (strcmp(load->node, b->self) == 0)
        return AR_EEXIST;
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    size_t slot = b->count;
    size_t oldest = 0;
    for (size_t i = 0; i < b->count; i++) {
        if (strcmp(b->peers[i].node, load->node) == 0) {
            slot = i;
            break;
        }
        if (b->peers[i].at_ms < b->peers[oldest].at_ms)
            oldest = i;
    }
    if (slot == b->count && b->count == AR_TURN_LOADBOARD_MAX) {
        /* Full: reuse the oldest entry only if it is stale, so fresh relays are never evicted. */
        if (load->at_ms - b->peers[oldest].at_ms > b->stale_ms)
            slot = oldest;
        else
            rc = AR_EQUOTA;
    }
    if (rc == 0) {
        /* A late report must not overwrite a newer one. */
        if (slot < b->count && b->peers[slot].at_ms > load->at_ms) {
            pthread_mutex_unlock(&b->lock);
            return 0;
        }
        b->peers[slot] = *load;
        if (slot == b->count)
            b->count++;
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

int ar_turn_loadboard_pick(ar_turn_loadboard_t *b, int64_t now_ms, double max_score,
                           struct sockaddr_storage *out)
{
    int rc = AR_ENOTFOUND;
    double best = max_score;
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->count; i++) {
        const ar_turn_load_t *p = &b->peers[i];
        if (now_ms - p->at_ms > b->stale_ms)
            continue;
        double score = ar_turn_load_score(p);
        if (score < best) {
            best = score;
            *out = p->addr;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

/* The app orders a jurisdiction's relays by this (X3): a relay's fresh score, by node name. */
int ar_turn_loadboard_score(ar_turn_loadboard_t *b, const char *node, int64_t now_ms, double *score)
{
    int rc = AR_ENOTFOUND;
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->count; i++) {
        const ar_turn_load_t *p = &b->peers[i];
        if (strcmp(p->node, node) == 0 && now_ms - p->at_ms <= b->stale_ms) {
            *score = ar_turn_load_score(p);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

/* ---- CPU share ---------------------------------------------------------------------------- */

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

void ar_turn_cpu_sampler_init(ar_turn_cpu_sampler_t *s)
{
    s->last_wall_us = wall_us();
    s->last_cpu_us = cpu_us();
    s->share = 0;
}

double ar_turn_cpu_sample(ar_turn_cpu_sampler_t *s)
{
    int64_t w = wall_us(), c = cpu_us();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t dw = w - s->last_wall_us;
    if (dw > 0 && cores > 0) {
        s->share = (double)(c - s->last_cpu_us) / ((double)dw * (double)cores);
        if (s->share > 1.0)
            s->share = 1.0;
        if (s->share < 0.0)
            s->share = 0.0;
    }
    s->last_wall_us = w;
    s->last_cpu_us = c;
    return s->share;
}
