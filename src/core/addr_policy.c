/*
 * Peer address classification and the relay's peer policy (mission S6). The special-purpose
 * blocks come from the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890); each
 * entry names the RFC that reserves it. Tables are searched first match wins, so narrower
 * blocks come before the wider ones that contain them.
 */
#include "anteroom/addr_policy.h"
#include "anteroom/alloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ENTRIES 4096
#define MAX_SPEC 128

struct v4_block {
    uint32_t net;
    uint8_t plen;
    uint8_t cls;
};

static const struct v4_block v4_blocks[] = {
    {0x00000000u, 32, AR_ADDR_UNSPECIFIED}, /* 0.0.0.0, "this host" (RFC 1122 3.2.1.3) */
    {0x00000000u, 8, AR_ADDR_RESERVED},     /* 0/8, "this network" (RFC 791, RFC 1122) */
    {0x0a000000u, 8, AR_ADDR_PRIVATE},      /* 10/8 (RFC 1918) */
    {0x64400000u, 10, AR_ADDR_SHARED},      /* 100.64/10, carrier-grade NAT (RFC 6598) */
    {0x7f000000u, 8, AR_ADDR_LOOPBACK},     /* 127/8 (RFC 1122) */
    {0xa9fe0000u, 16, AR_ADDR_LINK_LOCAL},  /* 169.254/16 (RFC 3927), metadata 169.254.169.254 */
    {0xac100000u, 12, AR_ADDR_PRIVATE},     /* 172.16/12 (RFC 1918) */
    {0xc0000000u, 24, AR_ADDR_RESERVED},    /* 192.0.0/24, IETF protocol assignments (RFC 6890) */
    {0xc0000200u, 24, AR_ADDR_RESERVED},    /* 192.0.2/24, TEST-NET-1 (RFC 5737) */
    {0xc0586300u, 24, AR_ADDR_RESERVED},    /* 192.88.99/24, 6to4 relay anycast (RFC 7526) */
    {0xc0a80000u, 16, AR_ADDR_PRIVATE},     /* 192.168/16 (RFC 1918) */
    {0xc6120000u, 15, AR_ADDR_RESERVED},    /* 198.18/15, benchmarking (RFC 2544) */
    {0xc6336400u, 24, AR_ADDR_RESERVED},    /* 198.51.100/24, TEST-NET-2 (RFC 5737) */
    {0xcb007100u, 24, AR_ADDR_RESERVED},    /* 203.0.113/24, TEST-NET-3 (RFC 5737) */
    {0xe0000000u, 4, AR_ADDR_MULTICAST},    /* 224/4 (RFC 5771) */
    {0xffffffffu, 32, AR_ADDR_BROADCAST},   /* limited broadcast (RFC 919, RFC 8190) */
    {0xf0000000u, 4, AR_ADDR_RESERVED},     /* 240/4, future use (RFC 1112) */
};

struct v6_block {
    uint8_t net[16];
    uint8_t plen;
    uint8_t cls;
};

/* IPv6 blocks checked after the IPv4-embedding forms have been recognised. */
static const struct v6_block v6_blocks[] = {
    {{0}, 128, AR_ADDR_UNSPECIFIED},                  /* :: (RFC 4291 2.5.2) */
    {{[15] = 1}, 128, AR_ADDR_LOOPBACK},              /* ::1 (RFC 4291 2.5.3) */
    {{0x01, 0x00}, 64, AR_ADDR_RESERVED},             /* 100::/64 discard (RFC 6666) */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, AR_ADDR_RESERVED}, /* documentation (RFC 3849) */
    {{0x20, 0x01}, 23, AR_ADDR_RESERVED},             /* IETF protocols (RFC 2928) */
    {{0x3f, 0xff}, 20, AR_ADDR_RESERVED},             /* documentation (RFC 9637) */
    {{0xfc}, 7, AR_ADDR_ULA},                         /* unique local (RFC 4193) */
    {{0xfe, 0x80}, 10, AR_ADDR_LINK_LOCAL},           /* link-local (RFC 4291) */
    {{0xfe, 0xc0}, 10, AR_ADDR_RESERVED},             /* site-local (RFC 3879) */
    {{0xff}, 8, AR_ADDR_MULTICAST},                   /* multicast (RFC 4291) */
    {{0x20}, 3, AR_ADDR_PUBLIC},                      /* global unicast (RFC 4291) */
    {{0}, 0, AR_ADDR_RESERVED}, /* the rest is unassigned or reserved by the IETF (RFC 4291) */
};

static const char *const class_names[AR_ADDR__COUNT] = {
    "public", "loopback",   "unspecified", "private",   "ula",
    "shared", "link-local", "multicast",   "broadcast", "reserved",
};

const char *ar_addr_class_name(ar_addr_class_t cls)
{
    if ((unsigned)cls >= AR_ADDR__COUNT)
        return "unknown";
    return class_names[cls];
}

int ar_addr_key_match(const uint8_t key[16], const uint8_t net[16], unsigned plen)
{
    unsigned full = plen / 8, rest = plen % 8;
    if (memcmp(key, net, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (key[full] & mask) == (net[full] & mask);
}

int ar_addr_key_parse(const char *s, size_t len, uint8_t key[16], unsigned *bits)
{
    char buf[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(buf) || memchr(s, 0, len) != NULL)
        return AR_ECONFIG;
    memcpy(buf, s, len);
    buf[len] = 0;
    memset(key, 0, 16);
    if (inet_pton(AF_INET, buf, key + 12) == 1) {
        key[10] = key[11] = 0xff;
        *bits = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, key) == 1) {
        *bits = 128;
        return 0;
    }
    return AR_ECONFIG;
}

int ar_addr_prefix_parse(const char *s, size_t len, uint8_t key[16], unsigned *plen)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    unsigned bits, n;
    if (ar_addr_key_parse(s, alen, key, &bits) != 0)
        return AR_ECONFIG;
    n = bits;
    if (slash) {
        size_t dlen = len - alen - 1;
        if (dlen == 0 || dlen > 3)
            return AR_ECONFIG;
        n = 0;
        for (size_t i = 0; i < dlen; i++) {
            if (slash[1 + i] < '0' || slash[1 + i] > '9')
                return AR_ECONFIG;
            n = n * 10 + (unsigned)(slash[1 + i] - '0');
        }
        if (n > bits)
            return AR_ECONFIG;
    }
    *plen = n + (128 - bits);              /* an IPv4 prefix covers the mapped key's low 32 bits */
    for (unsigned i = *plen; i < 128; i++) /* host bits off, so a match is one compare */
        key[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    return 0;
}

int ar_addr_key_of(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, 16);
        return 0;
    }
    return AR_EINVAL;
}

static ar_addr_class_t classify_v4(uint32_t ip)
{
    for (size_t i = 0; i < sizeof(v4_blocks) / sizeof(v4_blocks[0]); i++) {
        uint32_t mask = v4_blocks[i].plen == 0 ? 0 : 0xffffffffu << (32 - v4_blocks[i].plen);
        if ((ip & mask) == v4_blocks[i].net)
            return (ar_addr_class_t)v4_blocks[i].cls;
    }
    return AR_ADDR_PUBLIC;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static const uint8_t zero12[12];
static const uint8_t mapped_prefix[12] = {[10] = 0xff, [11] = 0xff};
static const uint8_t translated_prefix[12] = {[8] = 0xff, [9] = 0xff};
static const uint8_t nat64_wkp[12] = {0x00, 0x64, 0xff, 0x9b};
static const uint8_t nat64_local[6] = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};

/*
 * The IPv4 address an IPv6 address stands for, when it is one of the embedding forms: writes
 * it to *v4 and returns 1, else returns 0. For 64:ff9b:1::/48 this is the /96 position.
 */
static int embedded_v4(const uint8_t *a, uint32_t *v4)
{
    if (memcmp(a, mapped_prefix, 12) == 0 ||     /* ::ffff:0:0/96 mapped (RFC 4291 2.5.5.2) */
        memcmp(a, translated_prefix, 12) == 0 || /* ::ffff:0:0:0/96 translated (RFC 2765) */
        memcmp(a, nat64_wkp, 12) == 0 ||         /* 64:ff9b::/96 NAT64 (RFC 6052) */
        memcmp(a, nat64_local, 6) == 0) {        /* 64:ff9b:1::/48 local NAT64 (RFC 8215) */
        *v4 = be32(a + 12);
        return 1;
    }
    if (memcmp(a, zero12, 12) == 0) {
        /* ::/96 IPv4-compatible (RFC 4291 2.5.5.1), except :: and ::1 which are themselves. */
        uint32_t x = be32(a + 12);
        if (x <= 1)
            return 0;
        *v4 = x;
        return 1;
    }
    if (a[0] == 0x20 && a[1] == 0x02) { /* 2002::/16 6to4 (RFC 3056): bits 16-47 */
        *v4 = be32(a + 2);
        return 1;
    }
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
        /* 2001::/32 Teredo (RFC 4380): the client's public address, bit-inverted, at the end. */
        *v4 = ~be32(a + 12);
        return 1;
    }
    return 0;
}

static ar_addr_class_t classify_v6(const uint8_t *a)
{
    uint32_t v4;
    if (memcmp(a, nat64_local, 6) == 0) {
        /*
         * 64:ff9b:1::/48 carries its IPv4 address at the /48, /56, /64 or /96 position
         * (RFC 6052 section 2.2) depending on a prefix length we cannot see. The u-octet (byte
         * 8) and the suffix after the IPv4 address are zero in every valid form, which rules
         * some readings out; every reading that remains must be public for the address to be.
         */
        if (a[8] != 0)
            return AR_ADDR_RESERVED;
        const uint8_t p48[4] = {a[6], a[7], a[9], a[10]};
        const uint8_t p56[4] = {a[7], a[9], a[10], a[11]};
        const struct {
            const uint8_t *v4;
            unsigned suffix; /* first byte of the zero suffix */
        } readings[4] = {{p48, 11}, {p56, 12}, {a + 9, 13}, {a + 12, 16}};
        for (int i = 0; i < 4; i++) {
            if (memcmp(a + readings[i].suffix, zero12, 16 - readings[i].suffix) != 0)
                continue;
            ar_addr_class_t c = classify_v4(be32(readings[i].v4));
            if (c != AR_ADDR_PUBLIC)
                return c;
        }
        return AR_ADDR_PUBLIC;
    }
    if (embedded_v4(a, &v4))
        return classify_v4(v4);
    for (size_t i = 0; i < sizeof(v6_blocks) / sizeof(v6_blocks[0]); i++) {
        if (ar_addr_key_match(a, v6_blocks[i].net, v6_blocks[i].plen))
            return (ar_addr_class_t)v6_blocks[i].cls;
    }
    return AR_ADDR_RESERVED;
}

int ar_addr_canonical(const struct sockaddr *sa, struct sockaddr_storage *out)
{
    if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
        return AR_EINVAL;
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        memcpy(out, sa, sizeof(struct sockaddr_in));
        return 0;
    }
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    uint32_t v4;
    if (!embedded_v4(s6->sin6_addr.s6_addr, &v4)) {
        memcpy(out, sa, sizeof(struct sockaddr_in6));
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    s4->sin_family = AF_INET;
    s4->sin_port = s6->sin6_port;
    s4->sin_addr.s_addr = htonl(v4);
    return 1;
}

ar_addr_class_t ar_addr_classify(const struct sockaddr *sa)
{
    if (sa == NULL)
        return AR_ADDR_RESERVED;
    if (sa->sa_family == AF_INET)
        return classify_v4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family == AF_INET6)
        return classify_v6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return AR_ADDR_RESERVED;
}

/* Ranges are kept as 16-byte keys, IPv4 as ::ffff:a.b.c.d, so one memcmp orders both. */
struct range {
    uint8_t lo[16];
    uint8_t hi[16];
};

struct ar_addr_policy_s {
    struct range *ranges[2]; /* [0] denied, [1] allowed */
    size_t count[2];
    size_t cap[2];
    unsigned allowed_classes; /* bit per ar_addr_class_t */
};

int ar_addr_policy_new(ar_addr_policy_t **out)
{
    ar_addr_policy_t *p = ar_calloc(1, sizeof(*p));
    if (p == NULL)
        return AR_ENOMEM;
    p->allowed_classes = 1u << AR_ADDR_PUBLIC;
    *out = p;
    return 0;
}

void ar_addr_policy_free(ar_addr_policy_t *p)
{
    if (p == NULL)
        return;
    ar_free(p->ranges[0]);
    ar_free(p->ranges[1]);
    ar_free(p);
}

void ar_addr_policy_allow_class(ar_addr_policy_t *p, ar_addr_class_t cls, int allow)
{
    if ((unsigned)cls >= AR_ADDR__COUNT)
        return;
    if (allow)
        p->allowed_classes |= 1u << cls;
    else
        p->allowed_classes &= ~(1u << cls);
}

static int parse_spec(const char *spec, size_t len, struct range *r)
{
    char buf[MAX_SPEC];
    while (len > 0 && (*spec == ' ' || *spec == '\t'))
        spec++, len--;
    while (len > 0 && (spec[len - 1] == ' ' || spec[len - 1] == '\t'))
        len--;
    if (len == 0 || len >= sizeof(buf) || memchr(spec, 0, len) != NULL)
        return AR_ECONFIG;
    memcpy(buf, spec, len);
    buf[len] = 0;
    unsigned bits, bits2;
    char *sep;
    if (strchr(buf, '/') != NULL) {
        unsigned plen;
        if (ar_addr_prefix_parse(buf, len, r->lo, &plen) != 0)
            return AR_ECONFIG;
        memcpy(r->hi, r->lo, 16);
        for (unsigned i = plen; i < 128; i++)
            r->hi[i / 8] |= (uint8_t)(0x80u >> (i % 8));
        return 0;
    }
    if ((sep = strchr(buf, '-')) != NULL) {
        *sep = 0;
        if (ar_addr_key_parse(buf, (size_t)(sep - buf), r->lo, &bits) != 0 ||
            ar_addr_key_parse(sep + 1, strlen(sep + 1), r->hi, &bits2) != 0 || bits != bits2 ||
            memcmp(r->lo, r->hi, 16) > 0)
            return AR_ECONFIG;
        return 0;
    }
    if (ar_addr_key_parse(buf, len, r->lo, &bits) != 0)
        return AR_ECONFIG;
    memcpy(r->hi, r->lo, 16);
    return 0;
}

int ar_addr_policy_add(ar_addr_policy_t *p, int allow, const char *spec, size_t len)
{
    struct range r;
    if (p == NULL || spec == NULL || parse_spec(spec, len, &r) != 0)
        return AR_ECONFIG;
    int k = allow ? 1 : 0;
    if (p->count[k] == MAX_ENTRIES)
        return AR_ETOOBIG;
    if (p->count[k] == p->cap[k]) {
        size_t cap = p->cap[k] ? p->cap[k] * 2 : 8;
        struct range *n = ar_realloc(p->ranges[k], cap * sizeof(*n));
        if (n == NULL)
            return AR_ENOMEM;
        p->ranges[k] = n;
        p->cap[k] = cap;
    }
    p->ranges[k][p->count[k]++] = r;
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"", "1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    if (v == NULL) {
        *out = 1;
        return 0;
    }
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return AR_ECONFIG;
}

int ar_addr_policy_option(ar_addr_policy_t *p, const char *name, const char *value)
{
    if (p == NULL || name == NULL)
        return AR_EINVAL;
    if (strcmp(name, "denied-peer-ip") == 0 || strcmp(name, "allowed-peer-ip") == 0) {
        if (value == NULL)
            return AR_ECONFIG;
        return ar_addr_policy_add(p, name[0] == 'a', value, strlen(value));
    }
    if (strcmp(name, "allow-loopback-peers") == 0) {
        int on;
        if (parse_bool(value, &on) != 0)
            return AR_ECONFIG;
        ar_addr_policy_allow_class(p, AR_ADDR_LOOPBACK, on);
        return 0;
    }
    return AR_EUNKNOWNKEY;
}

static int in_ranges(const ar_addr_policy_t *p, int k, const uint8_t key[16])
{
    for (size_t i = 0; i < p->count[k]; i++) {
        const struct range *r = &p->ranges[k][i];
        if (memcmp(r->lo, key, 16) <= 0 && memcmp(key, r->hi, 16) <= 0)
            return 1;
    }
    return 0;
}

int ar_addr_policy_check(const ar_addr_policy_t *p, const struct sockaddr *sa)
{
    struct sockaddr_storage canon;
    if (ar_addr_canonical(sa, &canon) < 0)
        return AR_EPERM;
    ar_addr_class_t cls = ar_addr_classify(sa);
    if (p == NULL)
        return cls == AR_ADDR_PUBLIC ? 0 : AR_EPERM;
    uint8_t raw[16], can[16];
    (void)ar_addr_key_of(sa, raw);
    (void)ar_addr_key_of((const struct sockaddr *)&canon, can);
    /* allowed-peer-ip overrides both denied-peer-ip and the classes, as in coturn. */
    if (in_ranges(p, 1, raw) || in_ranges(p, 1, can))
        return 0;
    if (in_ranges(p, 0, raw) || in_ranges(p, 0, can))
        return AR_EPERM;
    return (p->allowed_classes & (1u << cls)) ? 0 : AR_EPERM;
}
