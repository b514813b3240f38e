/*
 * Record updates about ownership in a fixed binary layout (docs/signal.md, "Record updates on
 * the wire"). Every worker of a jurisdiction applies every record update (index.c), and when a
 * node dies nearly all of them are about who holds a session: a promotion ("own", "pr"), a
 * client away or back ("away"), a new backup after a resume, a refusal ("re"). As JSON, each
 * cost every worker a jansson parse (a tree of allocations), and jansson with malloc was over
 * 40 % of a failover survivor's samples (docs/performance.md, "Failover at 100,000 calls a
 * node: ownership updates without JSON"). Such an update, or a deletion, goes as
 * AR__SIG_UPD_LEN bytes read with loads at fixed offsets; everything else (names, answers,
 * rooms, queues) stays JSON. A receiver tells them apart by the first byte: AR__SIG_UPD_MAGIC
 * against JSON's '{'.
 *
 * The layout, integers little endian:
 *   0      AR__SIG_UPD_MAGIC
 *   1      flags (UPD_* below)
 *   2-9    origin: the publishing worker
 *   10-17  owner ("own"), 18-25 backup ("bk")
 *   26-29, 30-33  the two tags of the session's frames' subject ("h")
 *   34-55  the peer id (AR__SIG_PEER_LEN bytes, no NUL)
 * The JSON that the publishers build stays the interface (rec.c, and the tests that catch it):
 * the bus turns it into this layout only when it holds nothing else (ar__sig_upd_compact), and
 * each side reads it into the same ar__sig_upd_t, which rec.c applies either way.
 *
 * Updates a worker publishes within one turn of its loop, with nothing else between, share one
 * bus message (bus_turn.c): AR__SIG_UPD_BATCH, then 2 to AR__SIG_UPD_BATCH_MAX of these layouts
 * whole. A receiver applies them in order, each as if it had come alone.
 */
#include "internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

enum {
    UPD_HOME = 1,    /* "h" */
    UPD_AWAY = 2,    /* "away" present */
    UPD_AWAY_ON = 4, /* its value: away */
    UPD_OWN = 8,     /* "own" */
    UPD_BK = 16,     /* "bk" */
    UPD_PR = 32,     /* "pr": a promotion */
    UPD_RE = 64,     /* "re": an owner's refusal of one */
    UPD_DEL = 128,   /* "del": the session is gone */
};

enum { OFF_ORIGIN = 2, OFF_OWN = 10, OFF_BK = 18, OFF_HOME = 26, OFF_PEER = 34 };

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* "h": two tags of 8 hex digits, as rec.c writes them; 0 when h is one. */
static int upd_home(const char *h, uint32_t home[2])
{
    if (strlen(h) != 17 || h[8] != '.' || strspn(h, "0123456789abcdef") != 8 ||
        strspn(h + 9, "0123456789abcdef") != 8)
        return -1;
    home[0] = (uint32_t)strtoul(h, NULL, 16);
    home[1] = (uint32_t)strtoul(h + 9, NULL, 16);
    return 0;
}

int ar__sig_upd_from_json(const void *json_obj, ar__sig_upd_t *u)
{
    const json_t *o = json_obj;
    const char *origin, *peer;
    if (json_unpack((json_t *)o, "{s:s,s:s}", "o", &origin, "p", &peer) != 0 ||
        strlen(peer) != AR__SIG_PEER_LEN)
        return -1;
    memset(u, 0, sizeof(*u));
    memcpy(u->peer, peer, AR__SIG_PEER_LEN + 1);
    u->origin = strtoull(origin, NULL, 16);
    const char *s;
    const json_t *v;
    /* A malformed "h" is left out, as rec.c always left it. */
    if ((s = json_string_value(json_object_get(o, "h"))) && upd_home(s, u->home) == 0)
        u->has_home = 1;
    if ((v = json_object_get(o, "away"))) {
        u->has_away = 1;
        u->away = json_integer_value(v) != 0;
    }
    if ((s = json_string_value(json_object_get(o, "own")))) {
        u->has_own = 1;
        u->owner = strtoull(s, NULL, 16);
    }
    if ((s = json_string_value(json_object_get(o, "bk")))) {
        u->has_bk = 1;
        u->backup = strtoull(s, NULL, 16);
    }
    u->pr = json_is_true(json_object_get(o, "pr"));
    u->re = json_is_true(json_object_get(o, "re"));
    u->del = json_is_true(json_object_get(o, "del"));
    return 0;
}

/* A worker id as rec.c writes it: 16 lowercase hex digits, which strtoull reads whole. */
static int worker_hex(const json_t *v, uint64_t *out)
{
    const char *s = json_string_value(v);
    if (!s || strlen(s) != 16 || strspn(s, "0123456789abcdef") != 16)
        return -1;
    *out = strtoull(s, NULL, 16);
    return 0;
}

/* 0 when o's key k (with value v) has a place in the layout, and put there. */
static int compact_key(const char *k, const json_t *v, uint8_t *out, uint8_t *flags)
{
    uint64_t id;
    uint32_t home[2];
    if (strcmp(k, "o") == 0 || strcmp(k, "own") == 0 || strcmp(k, "bk") == 0) {
        if (worker_hex(v, &id) != 0)
            return -1;
        int at = k[0] == 'o' && k[1] == '\0' ? OFF_ORIGIN : k[0] == 'o' ? OFF_OWN : OFF_BK;
        put64(out + at, id);
        *flags |= at == OFF_OWN ? UPD_OWN : at == OFF_BK ? UPD_BK : 0;
    } else if (strcmp(k, "p") == 0) {
        if (!json_is_string(v) || json_string_length(v) != AR__SIG_PEER_LEN ||
            strlen(json_string_value(v)) != AR__SIG_PEER_LEN)
            return -1;
        memcpy(out + OFF_PEER, json_string_value(v), AR__SIG_PEER_LEN);
    } else if (strcmp(k, "h") == 0) {
        if (!json_is_string(v) || upd_home(json_string_value(v), home) != 0)
            return -1;
        put32(out + OFF_HOME, home[0]);
        put32(out + OFF_HOME + 4, home[1]);
        *flags |= UPD_HOME;
    } else if (strcmp(k, "away") == 0) {
        if (!json_is_integer(v))
            return -1;
        *flags |= UPD_AWAY | (json_integer_value(v) != 0 ? UPD_AWAY_ON : 0);
    } else if (strcmp(k, "pr") == 0 || strcmp(k, "re") == 0 || strcmp(k, "del") == 0) {
        if (!json_is_boolean(v))
            return -1;
        if (json_is_true(v))
            *flags |= k[0] == 'p' ? UPD_PR : k[0] == 'r' ? UPD_RE : UPD_DEL;
    } else {
        return -1; /* a field only JSON carries */
    }
    return 0;
}

int ar__sig_upd_compact(const void *json_obj, uint8_t out[AR__SIG_UPD_LEN])
{
    const json_t *o = json_obj;
    memset(out, 0, AR__SIG_UPD_LEN);
    out[0] = AR__SIG_UPD_MAGIC;
    uint8_t flags = 0;
    const char *k;
    json_t *v;
    if (!json_object_get(o, "o") || !json_object_get(o, "p"))
        return -1;
    json_object_foreach((json_t *)o, k, v)
    {
        if (compact_key(k, v, out, &flags) != 0)
            return -1;
    }
    out[1] = flags;
    return 0;
}

int ar__sig_upd_read(const uint8_t *d, size_t len, ar__sig_upd_t *u)
{
    if (len != AR__SIG_UPD_LEN || d[0] != AR__SIG_UPD_MAGIC)
        return -1;
    uint8_t flags = d[1];
    if ((flags & UPD_AWAY_ON) && !(flags & UPD_AWAY))
        return -1;
    if (memchr(d + OFF_PEER, '\0', AR__SIG_PEER_LEN))
        return -1; /* a peer id is text, as JSON's "p" is */
    memset(u, 0, sizeof(*u));
    memcpy(u->peer, d + OFF_PEER, AR__SIG_PEER_LEN);
    u->origin = get64(d + OFF_ORIGIN);
    u->has_home = !!(flags & UPD_HOME);
    u->home[0] = get32(d + OFF_HOME);
    u->home[1] = get32(d + OFF_HOME + 4);
    u->has_away = !!(flags & UPD_AWAY);
    u->away = !!(flags & UPD_AWAY_ON);
    u->has_own = !!(flags & UPD_OWN);
    u->owner = get64(d + OFF_OWN);
    u->has_bk = !!(flags & UPD_BK);
    u->backup = get64(d + OFF_BK);
    u->pr = !!(flags & UPD_PR);
    u->re = !!(flags & UPD_RE);
    u->del = !!(flags & UPD_DEL);
    return 0;
}

size_t ar__sig_upd_batch_count(const uint8_t *d, size_t len)
{
    if (len < 1 + 2 * AR__SIG_UPD_LEN || d[0] != AR__SIG_UPD_BATCH ||
        (len - 1) % AR__SIG_UPD_LEN != 0 || (len - 1) / AR__SIG_UPD_LEN > AR__SIG_UPD_BATCH_MAX)
        return 0;
    return (len - 1) / AR__SIG_UPD_LEN;
}
