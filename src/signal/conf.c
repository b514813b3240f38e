/* The configuration table of anteroom-signal (docs/configuration.md lists every option). */
#include "internal.h"

#include <stdio.h>

#include <stddef.h>

#define O(name, type, field, def, min, max, help)                                                  \
    {                                                                                              \
        name, type, offsetof(ar_signal_conf_t, field), def, min, max, help                         \
    }

const ar_conf_opt_t ar_signal_conf_opts[] = {
    O("listen", AR_CONF_STR, listen, "127.0.0.1", 0, 0, "address of the WebSocket listener"),
    O("port", AR_CONF_INT, port, "8443", 1, 65535, "WebSocket port, shared by all workers"),
    O("jurisdiction", AR_CONF_STR, jurisdiction, "default", 0, 0,
      "this node's jurisdiction: in every NATS subject; tokens of another are refused"),
    O("node-name", AR_CONF_STR, node_name, "node", 0, 0,
      "name shared by this node's workers; session backups go to another node"),
    O("nats", AR_CONF_LIST, nats, "nats://127.0.0.1:4222", 0, 0, "NATS server URLs"),
    O("keys", AR_CONF_STR, keys, NULL, 0, 0,
      "token public keys: lines 'kid base64url-Ed25519-public-key'"),
    O("origin", AR_CONF_LIST, origins, NULL, 0, 0, "allowed Origin values (repeat)"),
    O("allow-no-origin", AR_CONF_BOOL, allow_no_origin, "false", 0, 0,
      "accept clients that send no Origin (non-browser clients)"),
    O("drain-url", AR_CONF_LIST, drain_urls, NULL, 0, 0,
      "wss:// URLs of other nodes sent to clients when draining"),
    O("drain-within", AR_CONF_DURATION, drain_within, "30s", 0, 3600000,
      "how long a draining node waits before closing with 4006; its clients are told to go "
      "over the first half"),
    O("grace", AR_CONF_DURATION, grace, "120s", 1000, 86400000,
      "how long a lost session is kept for resume"),
    O("workers", AR_CONF_INT, workers, "1", 1, 64, "worker processes on this node"),
    O("max-per-address", AR_CONF_INT, max_per_addr, "256", 0, 65535,
      "connections per client address per worker; 0: no cap"),
    O("trusted-proxy", AR_CONF_LIST, trusted_proxies, NULL, 0, 0,
      "load balancer address or CIDR (repeat) whose X-Forwarded-For names the client for "
      "max-per-address; the header is ignored from anyone else"),
    O("tls-cert", AR_CONF_STR, tls_cert, NULL, 0, 0, "PEM certificate chain: serve wss://"),
    O("tls-key", AR_CONF_STR, tls_key, NULL, 0, 0, "PEM private key"),
    O("metrics-host", AR_CONF_STR, metrics_host, "127.0.0.1", 0, 0, "operator listener address"),
    O("metrics-port", AR_CONF_INT, metrics_port, "0", 0, 65535,
      "operator listener (/metrics, /healthz, /readyz) of worker 0; worker i adds i; 0: off"),
    O("worker-port", AR_CONF_INT, worker_port, "0", 0, 65535,
      "worker i also listens alone on this port + i: a room's members sent to one worker; 0: off"),
    O("log-level", AR_CONF_STR, log_level, "info", 0, 0, "debug, info, warn or error"),
    O("inbox-max", AR_CONF_SIZE, inbox_max, "64M", 4096, (int64_t)1 << 32,
      "bytes of bus messages a worker holds for its loop; beyond, messages are dropped "
      "(anteroom_signal_bus_dropped_total) and their sessions told (error lost)"),
    O("admit-lag", AR_CONF_DURATION, admit_lag, "1s", 0, 3600000,
      "new sessions are refused (close 4016 busy) while the oldest bus message waiting for a "
      "worker's loop is older than this, or more than half of inbox-max waits; 0: by size only"),
    O("copy-batch", AR_CONF_DURATION, copy_batch, "10ms", 0, 1000,
      "how long a worker gathers the numbered copies for one backup worker before publishing "
      "them together (sooner when it publishes anything but a relayed frame); longer costs less "
      "CPU per relayed message and leaves more recent frames only on the owner if it dies; 0: "
      "at once"),
    O("move-resumes", AR_CONF_BOOL, move_resumes, "true", 0, 0,
      "a resume reaching another worker of its session's node moves there (signal.md)"),
    O("sched-batch", AR_CONF_BOOL, sched_batch, "true", 0, 0,
      "workers run as SCHED_BATCH: a frame that wakes one does not preempt the task on its CPU, "
      "so it wakes less often and reads fuller batches (latency: up to a scheduler slice while "
      "the CPU is busy); false: the default policy"),
    O("token-allowance", AR_CONF_DURATION, token_allowance, "120s", 0, 3600000,
      "how long a staff session lives past its token's expiry without a refresh before it is "
      "closed (error token_expired, close 4001): room for clocks that differ and for an app "
      "that is briefly unreachable when the client asks for its next token"),
};

const size_t ar_signal_conf_nopts = sizeof(ar_signal_conf_opts) / sizeof(ar_signal_conf_opts[0]);

int ar_signal_conf_check(const ar_signal_conf_t *conf, char *err, size_t cap)
{
    if (conf->worker_port && conf->worker_port + conf->workers - 1 > 65535) {
        snprintf(err, cap, "worker-port + workers - 1 must be at most 65535");
        return AR_ECONFIG;
    }
    if (conf->trusted_proxies.count > AR__SIG_PROXIES_MAX) {
        snprintf(err, cap, "at most %d trusted-proxy entries", AR__SIG_PROXIES_MAX);
        return AR_ECONFIG;
    }
    for (size_t i = 0; i < conf->trusted_proxies.count; i++) {
        ar__sig_cidr_t c;
        if (ar__sig_cidr_parse(conf->trusted_proxies.items[i], &c) != 0) {
            snprintf(err, cap, "trusted-proxy: not an address or CIDR: %s",
                     conf->trusted_proxies.items[i]);
            return AR_ECONFIG;
        }
    }
    return 0;
}
