/*
 * anteroom-turn's option table and its resolution into what the daemon runs with. Option names
 * and meanings follow coturn's turnserver.conf so an operator's file keeps working; where we are
 * stricter (peer policy) the help says so.
 */
#include "turn_conf.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"
#include "anteroom/worker.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define O(field) offsetof(ar_turn_conf_t, field)
#define COMPAT(i, name)                                                                            \
    {                                                                                              \
        name, AR_CONF_BOOL, O(compat_flags) + (i) * sizeof(int), "false", 0, 0,                    \
            "coturn option accepted for compatibility; no effect here"                             \
    }

const ar_conf_opt_t ar_turn_conf_opts[] = {
    {"listening-port", AR_CONF_INT, O(listening_port), "3478", 1, 65535,
     "UDP and TCP port for STUN/TURN"},
    {"tls-listening-port", AR_CONF_INT, O(tls_listening_port), "5349", 1, 65535,
     "TLS port for STUN/TURN (served when cert and pkey are set)"},
    {"alt-tls-listening-port", AR_CONF_INT, O(alt_tls_listening_port), "0", 0, 65535,
     "a second TLS port, e.g. 443 for clients behind strict firewalls; 0: none (coturn uses "
     "this name for RFC 5780's alternate port)"},
    {"no-tcp", AR_CONF_BOOL, O(no_tcp), "false", 0, 0, "do not accept TCP client connections"},
    {"no-tls", AR_CONF_BOOL, O(no_tls), "false", 0, 0, "do not accept TLS client connections"},
    {"stream-max-connections", AR_CONF_INT, O(stream_max_connections), "8192", 1, 1000000,
     "TCP and TLS client connections per process (spread over the workers)"},
    {"listening-ip", AR_CONF_LIST, O(listening_ip), NULL, 0, 0,
     "address to listen on (repeatable); default 0.0.0.0"},
    {"relay-ip", AR_CONF_LIST, O(relay_ip), NULL, 0, 0,
     "address relay sockets bind to, one per family (repeatable); default: the listening "
     "address, or the first non-loopback interface address"},
    {"external-ip", AR_CONF_LIST, O(external_ip), NULL, 0, 0,
     "public address advertised in XOR-RELAYED-ADDRESS, as coturn's PUBLIC[/PRIVATE]"},
    {"realm", AR_CONF_STR, O(realm), "anteroom", 0, 0, "realm for long-term credentials"},
    {"use-auth-secret", AR_CONF_BOOL, O(use_auth_secret), "false", 0, 0,
     "accept TURN REST usernames '<expiry>:<id>' signed with static-auth-secret"},
    {"static-auth-secret", AR_CONF_LIST, O(static_auth_secret), NULL, 0, 0,
     "shared secret for TURN REST credentials (repeatable, for rotation)"},
    {"user", AR_CONF_LIST, O(user), NULL, 0, 0,
     "static user name:password or name:0x<md5 key> (repeatable)"},
    {"cert", AR_CONF_STR, O(cert), NULL, 0, 0, "TLS certificate chain (PEM)"},
    {"pkey", AR_CONF_STR, O(pkey), NULL, 0, 0, "TLS private key (PEM)"},
    {"min-port", AR_CONF_INT, O(min_port), "49152", 1024, 65535, "lowest relay port"},
    {"max-port", AR_CONF_INT, O(max_port), "65535", 1024, 65535, "highest relay port"},
    {"denied-peer-ip", AR_CONF_LIST, O(denied_peer_ip), NULL, 0, 0,
     "peer address, range a-b or prefix to refuse (repeatable)"},
    {"allowed-peer-ip", AR_CONF_LIST, O(allowed_peer_ip), NULL, 0, 0,
     "peer address, range or prefix to allow despite the default policy (repeatable)"},
    {"allow-loopback-peers", AR_CONF_BOOL, O(allow_loopback_peers), "false", 0, 0,
     "allow relaying to loopback peers (tests only)"},
    {"total-quota", AR_CONF_INT, O(total_quota), "0", 0, 1000000,
     "allocations per process, 0: limited only by open files"},
    {"user-quota", AR_CONF_INT, O(user_quota), "0", 0, 1000000,
     "allocations per username, 0: unlimited"},
    {"max-bps", AR_CONF_INT, O(max_bps), "0", 0, 1000000000000,
     "bytes per second per allocation and direction (coturn's meaning), 0: no cap"},
    {"stale-nonce", AR_CONF_DURATION, O(stale_nonce), "600", 10000, 86400000,
     "nonce lifetime before 438 Stale Nonce"},
    {"max-allocate-lifetime", AR_CONF_DURATION, O(max_allocate_lifetime), "3600", 600000, 86400000,
     "longest allocation lifetime granted"},
    {"unauth-rate", AR_CONF_INT, O(unauth_rate), "100", 0, 1000000,
     "unauthenticated requests per second per source address (bursts of 4x), 0: no limit"},
    {"tcp-connect-timeout", AR_CONF_DURATION, O(tcp_connect_timeout), "30", 100, 600000,
     "RFC 6062: a Connect to a peer that has not answered by then gets 447 (RFC 6062 says 30 s)"},
    {"workers", AR_CONF_INT, O(workers), "0", 0, AR_WORKERS_MAX, "worker threads, 0: one per CPU"},
    {"yield-after-requests", AR_CONF_BOOL, O(yield_after_requests), "true", 0, 0,
     "a worker whose loop turn carried only STUN/TURN requests (no relayed data) yields the CPU "
     "before it sleeps, so it takes the next requests without a wake-up (less CPU per request "
     "when other threads wait for the CPU); false: it sleeps at once"},
    {"sched-batch", AR_CONF_BOOL, O(sched_batch), "true", 0, 0,
     "worker threads run as SCHED_BATCH: a datagram that wakes one does not preempt the task on "
     "its CPU, so batches are fuller (less CPU per packet on a busy host, up to a scheduler slice "
     "more latency there); false: the default policy"},
    {"metrics-listen", AR_CONF_STR, O(metrics_listen), NULL, 0, 0,
     "address:port for /metrics and /healthz (e.g. 127.0.0.1:9641); unset: off"},
    {"log-level", AR_CONF_STR, O(log_level), "info", 0, 0, "debug, info, warn or error"},
    {"redirect-above", AR_CONF_STR, O(redirect_above), NULL, 0, 0,
     "answer Allocate with 300 Try Alternate above this load: a score 0..1 with a decimal point "
     "(e.g. 0.8: CPU share or allocations/capacity) or an allocation count (e.g. 5000; 0: "
     "always, to drain); unset: never"},
    {"alternate-server", AR_CONF_LIST, O(alternate_server), NULL, 0, 0,
     "relay to name in ALTERNATE-SERVER, ip or ip:port (repeatable, used in turn; the NATS "
     "board's least-loaded relay comes first)"},
    {"nats-url", AR_CONF_STR, O(nats_url), NULL, 0, 0,
     "NATS servers (comma-separated nats:// or tls:// URLs) for load reports; unset: none"},
    {"nats-ca", AR_CONF_STR, O(nats_ca), NULL, 0, 0, "CA file to verify NATS servers (TLS)"},
    {"node-name", AR_CONF_STR, O(node_name), "turn", 0, 0,
     "this relay's name in load reports ([A-Za-z0-9._-])"},
    {"jurisdiction", AR_CONF_STR, O(jurisdiction), "default", 0, 0,
     "relays redirect only to relays of the same jurisdiction ([A-Za-z0-9._-])"},
    COMPAT(0, "fingerprint"),
    COMPAT(1, "lt-cred-mech"),
    COMPAT(2, "no-cli"),
    COMPAT(3, "no-dtls"),
    COMPAT(4, "no-udp-relay"),
    COMPAT(5, "no-tcp-relay"),
    COMPAT(6, "no-multicast-peers"),
    COMPAT(7, "no-loopback-peers"),
    COMPAT(8, "verbose"),
    COMPAT(9, "no-software-attribute"),
    COMPAT(10, "simple-log"),
    COMPAT(11, "no-stdout-log"),
    COMPAT(12, "syslog"),
    COMPAT(13, "new-log-timestamp"),
    COMPAT(14, "no-tlsv1"),
    COMPAT(15, "no-tlsv1_1"),
    {"log-file", AR_CONF_STR, O(compat_log_file), NULL, 0, 0,
     "coturn option accepted for compatibility; logs go to stderr as JSON lines"},
    {"pidfile", AR_CONF_STR, O(compat_pidfile), NULL, 0, 0,
     "coturn option accepted for compatibility; no pid file is written"},
};
const size_t ar_turn_conf_nopts = sizeof(ar_turn_conf_opts) / sizeof(ar_turn_conf_opts[0]);

int ar_turn_conf_load(ar_turn_conf_t *c, int argc, char **argv, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    return ar_conf_load(ar_turn_conf_opts, ar_turn_conf_nopts, c, AR_TURN_ENV_PREFIX, argc, argv,
                        err, errlen);
}

void ar_turn_conf_free(ar_turn_conf_t *c)
{
    ar_conf_free(ar_turn_conf_opts, ar_turn_conf_nopts, c);
}

/* The first non-loopback address of a family on this host, for a relay-ip nobody set. */
static int first_interface_addr(int family, struct sockaddr_storage *out)
{
    struct ifaddrs *ifs, *i;
    if (getifaddrs(&ifs) != 0)
        return AR_ESYS;
    int rc = AR_ENOTFOUND;
    for (i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != family || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP))
            continue;
        if (family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(void *)i->ifa_addr;
            if (IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr))
                continue;
        }
        memcpy(out, i->ifa_addr,
               family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
        rc = 0;
        break;
    }
    freeifaddrs(ifs);
    return rc;
}

static bool is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr == INADDR_ANY;
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr);
}

static int parse_ip(const char *text, struct sockaddr_storage *out)
{
    return ar_addr_parse(text, 0, out);
}

/* "host:port" or "[v6]:port". */
static int parse_hostport(const char *text, struct sockaddr_storage *out)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text)
        return AR_EINVAL;
    size_t hl = (size_t)(colon - text);
    const char *h = text;
    if (text[0] == '[' && hl >= 2 && text[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof(host))
        return AR_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
        return AR_EINVAL;
    return ar_addr_parse(host, (uint16_t)port, out);
}

static bool name_ok(const char *s)
{
    if (!s || !*s || strlen(s) >= 64)
        return false;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    }
    return true;
}

/* redirect-above, alternate-server and the NATS load bus. */
static int plan_redirect(const ar_turn_conf_t *c, ar_turn_plan_t *p, char *err, size_t errlen)
{
    p->redirect_count = -1;
    p->redirect_score = -1;
    if (c->redirect_above) {
        char *end;
        const char *v = c->redirect_above;
        if (strchr(v, '.')) {
            double d = strtod(v, &end);
            if (*end != '\0' || end == v || !(d >= 0 && d <= 1)) {
                snprintf(err, errlen, "redirect-above: '%s' is not a score 0..1", v);
                return AR_ECONFIG;
            }
            p->redirect_score = d;
        } else {
            long long n = strtoll(v, &end, 10);
            if (*end != '\0' || end == v || n < 0 || n > 100000000) {
                snprintf(err, errlen, "redirect-above: '%s' is not a score or a count", v);
                return AR_ECONFIG;
            }
            p->redirect_count = n;
        }
    }
    if (c->alternate_server.count > AR_TURN_MAX_ALTERNATES) {
        snprintf(err, errlen, "alternate-server: at most %d", AR_TURN_MAX_ALTERNATES);
        return AR_ECONFIG;
    }
    for (size_t i = 0; i < c->alternate_server.count; i++) {
        const char *item = c->alternate_server.items[i];
        /* coturn's form is ip[:port]; a bare IP (v4 or v6) takes the default port. */
        if (ar_addr_parse(item, 3478, &p->alternates[i]) != 0 &&
            parse_hostport(item, &p->alternates[i]) != 0) {
            snprintf(err, errlen, "alternate-server: '%s' is not ip or ip:port", item);
            return AR_ECONFIG;
        }
    }
    p->nalternates = c->alternate_server.count;
    if (!name_ok(c->node_name) || !name_ok(c->jurisdiction)) {
        snprintf(err, errlen, "node-name and jurisdiction take [A-Za-z0-9._-], 1-63 characters");
        return AR_ECONFIG;
    }
    p->nats_url = c->nats_url;
    p->nats_ca = c->nats_ca;
    p->node_name = c->node_name;
    p->jurisdiction = c->jurisdiction;
    return 0;
}

static int policy_check(void *ctx, const struct sockaddr *sa)
{
    return ar_addr_policy_check(ctx, sa);
}

int ar_turn_conf_plan(ar_turn_conf_t *c, ar_turn_plan_t *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    int rc;
    if (c->min_port > c->max_port) {
        snprintf(err, errlen, "min-port %lld is above max-port %lld", (long long)c->min_port,
                 (long long)c->max_port);
        return AR_ECONFIG;
    }
    p->min_port = (uint16_t)c->min_port;
    p->max_port = (uint16_t)c->max_port;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    p->workers = c->workers > 0 ? (unsigned)c->workers
                                : (unsigned)(ncpu < 1                ? 1
                                             : ncpu > AR_WORKERS_MAX ? AR_WORKERS_MAX
                                                                     : ncpu);
    p->yield_after_requests = c->yield_after_requests != 0;
    p->sched_batch = c->sched_batch != 0;
    if (c->listening_ip.count > AR_TURN_MAX_LISTENERS) {
        snprintf(err, errlen, "listening-ip: at most %d addresses", AR_TURN_MAX_LISTENERS);
        return AR_ECONFIG;
    }
    for (size_t i = 0; i < c->listening_ip.count; i++) {
        if (ar_addr_parse(c->listening_ip.items[i], (uint16_t)c->listening_port, &p->listen[i]) !=
            0) {
            snprintf(err, errlen, "listening-ip: '%s' is not a numeric IP address",
                     c->listening_ip.items[i]);
            return AR_ECONFIG;
        }
    }
    p->nlisten = c->listening_ip.count;
    if (p->nlisten == 0) {
        rc = ar_addr_parse("0.0.0.0", (uint16_t)c->listening_port, &p->listen[0]);
        if (rc != 0)
            return rc;
        p->nlisten = 1;
    }

    /* Relay addresses: one per family, from relay-ip, else a specific listening address, else
     * the host's first interface address. A wildcard cannot be advertised to clients. */
    ar_turn_opts_t *o = &p->opts;
    for (size_t i = 0; i < c->relay_ip.count; i++) {
        struct sockaddr_storage ss;
        if (parse_ip(c->relay_ip.items[i], &ss) != 0) {
            snprintf(err, errlen, "relay-ip: '%s' is not a numeric IP address",
                     c->relay_ip.items[i]);
            return AR_ECONFIG;
        }
        ar_turn_addr_t *dst = ss.ss_family == AF_INET ? &o->relay4 : &o->relay6;
        if (dst->family == 0)
            (void)ar_turn_addr_from_sa(dst, (struct sockaddr *)&ss);
    }
    for (size_t i = 0; i < p->nlisten; i++) {
        ar_turn_addr_t *dst = p->listen[i].ss_family == AF_INET ? &o->relay4 : &o->relay6;
        if (dst->family == 0 && !is_wildcard(&p->listen[i]))
            (void)ar_turn_addr_from_sa(dst, (struct sockaddr *)&p->listen[i]);
    }
    if (o->relay4.family == 0 && o->relay6.family == 0) {
        struct sockaddr_storage ss;
        if (first_interface_addr(AF_INET, &ss) == 0 || first_interface_addr(AF_INET6, &ss) == 0 ||
            parse_ip("127.0.0.1", &ss) == 0)
            (void)ar_turn_addr_from_sa(ss.ss_family == AF_INET ? &o->relay4 : &o->relay6,
                                       (struct sockaddr *)&ss);
    }
    o->relay4.port = o->relay6.port = 0;
    for (size_t i = 0; i < c->external_ip.count; i++) {
        /* coturn: PUBLIC or PUBLIC/PRIVATE; the private part names the relay-ip it maps. */
        char pub[64];
        const char *item = c->external_ip.items[i], *slash = strchr(item, '/');
        size_t n = slash ? (size_t)(slash - item) : strlen(item);
        struct sockaddr_storage ss;
        if (n >= sizeof(pub) || (memcpy(pub, item, n), pub[n] = '\0', parse_ip(pub, &ss) != 0)) {
            snprintf(err, errlen, "external-ip: '%s' is not PUBLIC or PUBLIC/PRIVATE", item);
            return AR_ECONFIG;
        }
        (void)ar_turn_addr_from_sa(ss.ss_family == AF_INET ? &o->external4 : &o->external6,
                                   (struct sockaddr *)&ss);
    }

    if (c->metrics_listen) {
        if (parse_hostport(c->metrics_listen, &p->metrics) != 0) {
            snprintf(err, errlen, "metrics-listen: '%s' is not address:port", c->metrics_listen);
            return AR_ECONFIG;
        }
        p->has_metrics = 1;
    }

    p->tcp_port = c->no_tcp ? 0 : (uint16_t)c->listening_port;
    if (!c->no_tls && c->cert && c->pkey) {
        p->tls_port = (uint16_t)c->tls_listening_port;
        p->alt_tls_port = (uint16_t)c->alt_tls_listening_port;
        p->cert = c->cert;
        p->pkey = c->pkey;
    } else if (!c->no_tls && (c->cert || c->pkey)) {
        snprintf(err, errlen, "TLS needs both cert and pkey");
        return AR_ECONFIG;
    }
    if (p->alt_tls_port != 0 && p->alt_tls_port == p->tls_port)
        p->alt_tls_port = 0;
    p->stream_max_conns = (uint32_t)c->stream_max_connections;
    p->tcp_connect_timeout_ms = (uint32_t)c->tcp_connect_timeout;
    p->listen_port = (uint16_t)c->listening_port;
    rc = plan_redirect(c, p, err, errlen);
    if (rc != 0)
        return rc;

    if (c->use_auth_secret && c->static_auth_secret.count == 0) {
        snprintf(err, errlen, "use-auth-secret needs static-auth-secret");
        return AR_ECONFIG;
    }
    if (!c->use_auth_secret && c->user.count == 0)
        ar_log0(AR_LOG_WARN, "no_credentials_configured");

    rc = ar_addr_policy_new(&p->policy);
    if (rc != 0)
        return rc;
    const ar_conf_list_t *lists[2] = {&c->denied_peer_ip, &c->allowed_peer_ip};
    const char *names[2] = {"denied-peer-ip", "allowed-peer-ip"};
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < lists[l]->count; i++) {
            rc = ar_addr_policy_option(p->policy, names[l], lists[l]->items[i]);
            if (rc != 0) {
                snprintf(err, errlen, "%s: '%s' is not an address, range or prefix", names[l],
                         lists[l]->items[i]);
                ar_turn_plan_free(p);
                return AR_ECONFIG;
            }
        }
    }
    if (c->allow_loopback_peers)
        ar_addr_policy_allow_class(p->policy, AR_ADDR_LOOPBACK, 1);

    o->realm = c->realm;
    o->use_auth_secret = c->use_auth_secret;
    o->secrets = (const char *const *)c->static_auth_secret.items;
    o->nsecrets = c->static_auth_secret.count;
    o->users = (const char *const *)c->user.items;
    o->nusers = c->user.count;
    o->user_quota = c->user_quota;
    o->total_quota = c->total_quota;
    o->max_bps = c->max_bps;
    o->default_lifetime = 600;
    o->max_lifetime = (uint32_t)(c->max_allocate_lifetime / 1000);
    o->nonce_lifetime = (uint32_t)(c->stale_nonce / 1000);
    o->unauth_rate = (uint32_t)c->unauth_rate;
    /* Bursts: many clients behind one NAT (or a test harness on loopback) start at once. */
    o->unauth_burst = (uint32_t)c->unauth_rate * 4;
    o->peer_allowed = policy_check;
    o->peer_ctx = p->policy;
    return 0;
}

void ar_turn_plan_free(ar_turn_plan_t *p)
{
    ar_addr_policy_free(p->policy);
    p->policy = NULL;
}
