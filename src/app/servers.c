/*
 * Servers and jurisdictions (servers.h). The file is parsed strictly (unknown keys refused) so a
 * misspelt key cannot silently drop a server, and every name and URL is checked against a small
 * alphabet: these strings go into every client's configuration.
 */
#include "servers.h"

#include "load_bus.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"
#include "anteroom/turn_rest.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Relay reports older than this are ignored (a relay that went silent may be down). */
#define LOAD_STALE_MS 15000

typedef struct {
    char node[AR_SERVERS_NAME_MAX];
    char host[AR_SERVERS_URL_MAX];
    int64_t port, tls_port;
} turn_t;

typedef struct {
    char name[AR_SERVERS_NAME_MAX];
    char signal[AR_SERVERS_PER_JUR][AR_SERVERS_URL_MAX];
    size_t nsignal;
    char monitor[AR_SERVERS_URL_MAX]; /* the call monitor's report URL, or "" */
    turn_t turn[AR_SERVERS_PER_JUR];
    size_t nturn;
    ar_turn_loadboard_t *board;
    ar_turn_loadbus_t *bus;
} jur_t;

struct ar_app_servers_s {
    char node_jur[AR_SERVERS_NAME_MAX];
    char nats[AR_SERVERS_URL_MAX];
    jur_t jur[AR_SERVERS_JUR_MAX];
    size_t njur;
};

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= AR_SERVERS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return 0;
    return 1;
}

/* Host names and IPv6 literals (with or without brackets). */
static int host_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= 254)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.' || s[i] == ':' ||
              s[i] == '[' || s[i] == ']'))
            return 0;
    return 1;
}

/* A ws:// or wss:// URL of printable ASCII without spaces, quotes or backslashes. */
static int url_ok(const char *s, const char *scheme1, const char *scheme2)
{
    size_t n = strlen(s);
    if (n >= AR_SERVERS_URL_MAX ||
        (strncmp(s, scheme1, strlen(scheme1)) != 0 && strncmp(s, scheme2, strlen(scheme2)) != 0))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\' || s[i] == '<' || s[i] == '>')
            return 0;
    return 1;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errcap, __VA_ARGS__);                                                        \
        return AR_EPARSE;                                                                          \
    } while (0)

static int parse_turn(json_t *jt, turn_t *t, char *err, size_t errcap)
{
    const char *node = NULL, *host = NULL;
    json_int_t port = 3478, tls_port = 443;
    json_error_t je;
    if (json_unpack_ex(jt, &je, JSON_STRICT, "{s:s,s:s,s?I,s?I}", "node", &node, "host", &host,
                       "port", &port, "tls_port", &tls_port) != 0)
        FAIL("a turn entry needs node and host, and may have port and tls_port (nothing else)");
    if (!name_ok(node) || !host_ok(host) || port < 1 || port > 65535 || tls_port < 1 ||
        tls_port > 65535)
        FAIL("a turn entry has a bad node name, host or port");
    snprintf(t->node, sizeof(t->node), "%s", node);
    snprintf(t->host, sizeof(t->host), "%s", host);
    t->port = port;
    t->tls_port = tls_port;
    return 0;
}

static int parse_jur(const char *name, json_t *jj, jur_t *j, char *err, size_t errcap)
{
    json_t *sig = NULL, *turn = NULL;
    const char *monitor = NULL;
    json_error_t je;
    if (!name_ok(name))
        FAIL("a jurisdiction name may hold only letters, digits, '-', '_' and '.'");
    if (json_unpack_ex(jj, &je, JSON_STRICT, "{s?o,s?o,s?s}", "signal", &sig, "turn", &turn,
                       "monitor", &monitor) != 0)
        FAIL("jurisdiction %s: only \"signal\", \"turn\" and \"monitor\" are allowed", name);
    if (monitor != NULL && !url_ok(monitor, "https://", "https://"))
        FAIL("jurisdiction %s: monitor is not an https:// URL", name);
    snprintf(j->monitor, sizeof(j->monitor), "%s", monitor ? monitor : "");
    snprintf(j->name, sizeof(j->name), "%s", name);
    if ((sig && !json_is_array(sig)) || (turn && !json_is_array(turn)) ||
        json_array_size(sig) > AR_SERVERS_PER_JUR || json_array_size(turn) > AR_SERVERS_PER_JUR)
        FAIL("jurisdiction %s: signal and turn are arrays of at most %d", name, AR_SERVERS_PER_JUR);
    size_t i;
    json_t *v;
    json_array_foreach(sig, i, v)
    {
        if (!json_is_string(v) || !url_ok(json_string_value(v), "wss://", "ws://"))
            FAIL("jurisdiction %s: a signal entry is not a ws:// or wss:// URL", name);
        snprintf(j->signal[j->nsignal++], AR_SERVERS_URL_MAX, "%s", json_string_value(v));
    }
    json_array_foreach(turn, i, v)
    {
        if (parse_turn(v, &j->turn[j->nturn++], err, errcap) < 0)
            return AR_EPARSE;
    }
    return 0;
}

/* A relay, signalling or monitor URL named under two jurisdictions would let one
 * jurisdiction's calls reach another's server: refused. */
static int check_unique(const ar_app_servers_t *s, char *err, size_t errcap)
{
    for (size_t a = 0; a < s->njur; a++)
        for (size_t b = a + 1; b < s->njur; b++) {
            const jur_t *x = &s->jur[a], *y = &s->jur[b];
            for (size_t i = 0; i < x->nturn; i++)
                for (size_t k = 0; k < y->nturn; k++)
                    if (strcmp(x->turn[i].host, y->turn[k].host) == 0 ||
                        strcmp(x->turn[i].node, y->turn[k].node) == 0)
                        FAIL("a TURN server is named under both %s and %s", x->name, y->name);
            for (size_t i = 0; i < x->nsignal; i++)
                for (size_t k = 0; k < y->nsignal; k++)
                    if (strcmp(x->signal[i], y->signal[k]) == 0)
                        FAIL("a signalling URL is named under both %s and %s", x->name, y->name);
            if (x->monitor[0] != '\0' && strcmp(x->monitor, y->monitor) == 0)
                FAIL("a monitor URL is named under both %s and %s", x->name, y->name);
        }
    return 0;
}

static int parse(json_t *root, ar_app_servers_t *s, char *err, size_t errcap)
{
    const char *node = NULL, *nats = NULL;
    json_t *jurs = NULL;
    json_error_t je;
    if (json_unpack_ex(root, &je, JSON_STRICT, "{s:s,s?s,s:o}", "jurisdiction", &node, "nats",
                       &nats, "jurisdictions", &jurs) != 0 ||
        !json_is_object(jurs))
        FAIL("the servers file needs \"jurisdiction\" and a \"jurisdictions\" object, and may "
             "have \"nats\"");
    if (!name_ok(node))
        FAIL("bad node jurisdiction name");
    snprintf(s->node_jur, sizeof(s->node_jur), "%s", node);
    if (nats != NULL) {
        if (!url_ok(nats, "nats://", "tls://"))
            FAIL("nats must be nats:// or tls:// URLs");
        snprintf(s->nats, sizeof(s->nats), "%s", nats);
    }
    if (json_object_size(jurs) > AR_SERVERS_JUR_MAX)
        FAIL("at most %d jurisdictions", AR_SERVERS_JUR_MAX);
    const char *k;
    json_t *v;
    json_object_foreach(jurs, k, v)
    {
        if (parse_jur(k, v, &s->jur[s->njur++], err, errcap) < 0)
            return AR_EPARSE;
    }
    /* Every node has a jurisdiction, and it must be one this file serves. */
    if (!ar_app_servers_serves(s, s->node_jur))
        FAIL("the node's jurisdiction %s has no signalling or no TURN server", s->node_jur);
    return check_unique(s, err, errcap);
}

int ar_app_servers_parse(const char *text, size_t len, ar_app_servers_t **out, char *err,
                         size_t errcap)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        snprintf(err, errcap, "the servers file is not JSON (line %d)", je.line);
        return AR_EPARSE;
    }
    ar_app_servers_t *s = ar_calloc(1, sizeof(*s));
    if (s == NULL) {
        json_decref(root);
        return AR_ENOMEM;
    }
    int rc = parse(root, s, err, errcap);
    json_decref(root);
    if (rc < 0) {
        ar_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int ar_app_servers_load(const char *path, ar_app_servers_t **out, char *err, size_t errcap)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errcap, "cannot read the servers file");
        return AR_EIO;
    }
    char *buf = ar_malloc(AR_SERVERS_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, AR_SERVERS_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (buf == NULL)
        return AR_ENOMEM;
    int rc = n > AR_SERVERS_FILE_MAX ? AR_EPARSE : ar_app_servers_parse(buf, n, out, err, errcap);
    if (n > AR_SERVERS_FILE_MAX)
        snprintf(err, errcap, "the servers file is over %zu bytes", AR_SERVERS_FILE_MAX);
    ar_free(buf);
    return rc;
}

void ar_app_servers_free(ar_app_servers_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->njur; i++) {
        if (s->jur[i].bus != NULL)
            ar_turn_loadbus_close(s->jur[i].bus);
        if (s->jur[i].board != NULL)
            ar_turn_loadboard_free(s->jur[i].board);
    }
    ar_free(s);
}

const char *ar_app_servers_node_jurisdiction(const ar_app_servers_t *s)
{
    return s->node_jur;
}

static const jur_t *find(const ar_app_servers_t *s, const char *name)
{
    for (size_t i = 0; i < s->njur; i++)
        if (strcmp(s->jur[i].name, name) == 0)
            return &s->jur[i];
    return NULL;
}

/* 1 when the space-separated list holds word (of n bytes) as a whole item. */
static int list_has(const char *list, const char *word, size_t n)
{
    for (const char *p = list; (p = strstr(p, word)) != NULL; p++)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

/* Appends url's origin to the list unless it is there. */
static int add_origin(const char *u, char *out, size_t cap, size_t *len)
{
    /* url_ok admitted only the scheme's URLs, so the origin ends at the first '/' after the
     * scheme. It goes into a header's directive list: anything but a host name, an IP literal
     * and a port is refused, so no ';' or ',' can slip in. */
    const char *host = strstr(u, "://") + 3;
    size_t hlen = strcspn(host, "/");
    if (hlen == 0 ||
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") < hlen)
        return AR_EPARSE;
    char origin[AR_SERVERS_URL_MAX];
    size_t olen = hlen + (size_t)(host - u);
    memcpy(origin, u, olen);
    origin[olen] = '\0';
    if (list_has(out, origin, olen))
        return 0;
    if (*len + 1 + olen + 1 > cap)
        return AR_ETOOBIG;
    out[(*len)++] = ' ';
    memcpy(out + *len, origin, olen + 1);
    *len += olen;
    return 0;
}

int ar_app_servers_connect_origins(const ar_app_servers_t *s, char *out, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return AR_ETOOBIG;
    out[0] = '\0';
    for (size_t i = 0; i < s->njur; i++) {
        const jur_t *j = &s->jur[i];
        for (size_t k = 0; k < j->nsignal; k++) {
            int rc = add_origin(j->signal[k], out, cap, &len);
            if (rc < 0)
                return rc;
        }
        if (j->monitor[0] != '\0') {
            int rc = add_origin(j->monitor, out, cap, &len);
            if (rc < 0)
                return rc;
        }
    }
    return (int)len;
}

int ar_app_servers_serves(const ar_app_servers_t *s, const char *jur)
{
    const jur_t *j = find(s, jur);
    return j != NULL && j->nsignal > 0 && j->nturn > 0;
}

int ar_app_servers_check_store(const ar_app_servers_t *s, ar_store_conn_t *c, char *err,
                               size_t errcap)
{
    static const char sql[] = "SELECT DISTINCT jurisdiction FROM clinics ORDER BY jurisdiction";
    ar_store_stmt_t *st;
    int rc = ar_store_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc < 0)
        return rc;
    while ((rc = ar_store_step(st)) == AR_STORE_ROW) {
        const char *jur = ar_store_col_text(st, 0, NULL);
        if (!ar_app_servers_serves(s, jur)) {
            /* Jurisdiction names are operator configuration, not personal data. */
            snprintf(err, errcap,
                     "clinics of jurisdiction '%.64s' would have no signalling or TURN server "
                     "of their own",
                     name_ok(jur) ? jur : "(invalid name)");
            rc = AR_EPERM;
            break;
        }
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

int ar_app_servers_watch_load(ar_app_servers_t *s)
{
    if (s->nats[0] == '\0')
        return 0;
    for (size_t i = 0; i < s->njur; i++) {
        jur_t *j = &s->jur[i];
        /* The app is no relay: "app" as self name only keeps its own reports (none) out. */
        j->board = ar_turn_loadboard_new("anteroom-app", j->name, LOAD_STALE_MS);
        if (j->board == NULL)
            return AR_ENOMEM;
        int rc = ar_turn_loadbus_open(&j->bus, s->nats, NULL, j->board, j->name);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ar_app_servers_attach_board(ar_app_servers_t *s, const char *jur, ar_turn_loadboard_t *board)
{
    for (size_t i = 0; i < s->njur; i++)
        if (strcmp(s->jur[i].name, jur) == 0) {
            if (s->jur[i].board != NULL)
                ar_turn_loadboard_free(s->jur[i].board);
            s->jur[i].board = board;
            return 0;
        }
    return AR_ENOTFOUND;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Relays without a fresh report sort after those with one, in configuration order. */
static void order_relays(const jur_t *j, size_t *idx)
{
    double score[AR_SERVERS_PER_JUR];
    int64_t t = now_ms();
    for (size_t i = 0; i < j->nturn; i++) {
        idx[i] = i;
        if (j->board == NULL ||
            ar_turn_loadboard_score(j->board, j->turn[i].node, t, &score[i]) < 0)
            score[i] = 2.0;
    }
    /* Insertion sort: stable, and there are at most 16. */
    for (size_t i = 1; i < j->nturn; i++)
        for (size_t k = i; k > 0 && score[idx[k]] < score[idx[k - 1]]; k--) {
            size_t tmp = idx[k];
            idx[k] = idx[k - 1];
            idx[k - 1] = tmp;
        }
}

static json_t *relay_urls(const turn_t *t)
{
    /* An IPv6 literal is bracketed in a URI. */
    int v6 = strchr(t->host, ':') != NULL && t->host[0] != '[';
    const char *l = v6 ? "[" : "", *r = v6 ? "]" : "";
    char a[AR_SERVERS_URL_MAX + 40], b[AR_SERVERS_URL_MAX + 40], c[AR_SERVERS_URL_MAX + 40];
    snprintf(a, sizeof(a), "turn:%s%s%s:%lld?transport=udp", l, t->host, r, (long long)t->port);
    snprintf(b, sizeof(b), "turn:%s%s%s:%lld?transport=tcp", l, t->host, r, (long long)t->port);
    snprintf(c, sizeof(c), "turns:%s%s%s:%lld?transport=tcp", l, t->host, r,
             (long long)t->tls_port);
    return json_pack("[sss]", a, b, c);
}

/* The entry's weight for clinic: SipHash of "clinic\nurl" under a fixed key (the placement
 * must be the same on every app instance and across restarts; a clinic's id is no secret). */
static uint64_t place_weight(const char *clinic, const char *url)
{
    static const unsigned char key[crypto_shorthash_KEYBYTES + 1] = "anteroom-placing";
    unsigned char in[AR_TOKEN_ID_MAX + 1 + AR_SERVERS_URL_MAX], h[crypto_shorthash_BYTES];
    size_t c = strnlen(clinic, AR_TOKEN_ID_MAX), u = strnlen(url, AR_SERVERS_URL_MAX);
    memcpy(in, clinic, c);
    in[c] = '\n';
    memcpy(in + c + 1, url, u);
    crypto_shorthash(h, in, c + 1 + u, key);
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(h); i++)
        v = v << 8 | h[i];
    return v;
}

/*
 * Rendezvous (highest random weight) order of jur's signalling entries for clinic: heaviest
 * first. Every client of the clinic gets the same order, the clinics spread evenly over the
 * first places, and when an entry fails its clinics' next choices spread over all the others
 * (a rotation would send them all to the one entry after it, a worker that may then pass its
 * open-file limit). No clinic: the file's order.
 */
static void signal_order(const jur_t *j, const char *clinic, size_t *order)
{
    uint64_t w[AR_SERVERS_PER_JUR];
    for (size_t i = 0; i < j->nsignal; i++) {
        order[i] = i;
        w[i] = clinic && clinic[0] != '\0' ? place_weight(clinic, j->signal[i]) : 0;
    }
    for (size_t i = 1; i < j->nsignal; i++) /* insertion sort, stable: at most 16 entries */
        for (size_t k = i; k > 0 && w[order[k]] > w[order[k - 1]]; k--) {
            size_t t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
}

const char *ar_app_servers_place(const ar_token_claims_t *cl)
{
    if (cl->clinic[0] != '\0')
        return cl->clinic;
    return cl->nclinics > 0 ? cl->clinics[0].id : NULL;
}

json_t *ar_app_servers_for(const ar_app_servers_t *s, const char *jur, const char *clinic,
                           const char *secret, size_t secret_len, int64_t now, int64_t ttl_s)
{
    const jur_t *j = find(s, jur);
    if (j == NULL || j->nsignal == 0 || j->nturn == 0)
        return NULL;
    char user[AR_TURN_REST_USER_MAX], pass[AR_TURN_REST_PASS_MAX];
    if (ar_turn_rest_mint(secret, secret_len, ttl_s, now, user, sizeof(user), pass, sizeof(pass)) <
        0)
        return NULL;
    json_t *out = json_pack("{s:s,s:[],s:[],s:I}", "jurisdiction", j->name, "signal", "ice_servers",
                            "expires_at", (json_int_t)now + (json_int_t)ttl_s);
    json_t *sig = json_object_get(out, "signal"), *ice = json_object_get(out, "ice_servers");
    int ok = out != NULL;
    size_t order[AR_SERVERS_PER_JUR];
    signal_order(j, clinic, order);
    for (size_t i = 0; ok && i < j->nsignal; i++)
        ok = json_array_append_new(sig, json_string(j->signal[order[i]])) == 0;
    if (ok && j->monitor[0] != '\0')
        ok = json_object_set_new(out, "monitor", json_string(j->monitor)) == 0;
    size_t idx[AR_SERVERS_PER_JUR] = {0};
    order_relays(j, idx);
    for (size_t i = 0; ok && i < j->nturn; i++) {
        json_t *e = json_pack("{s:o,s:s,s:s}", "urls", relay_urls(&j->turn[idx[i]]), "username",
                              user, "credential", pass);
        ok = e != NULL && json_array_append_new(ice, e) == 0;
    }
    if (!ok) {
        json_decref(out);
        return NULL;
    }
    return out;
}
