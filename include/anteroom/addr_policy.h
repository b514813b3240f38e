/*
 * Peer address policy for the relay (mission S6): which addresses a TURN allocation may send to
 * or connect to. A relay on a public address that forwards to whatever a client names is an open
 * door into the operator's own network (loopback services, RFC 1918 hosts, the cloud metadata
 * service at 169.254.169.254), so by default only public unicast addresses are allowed.
 *
 * Every IPv6 form that embeds an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible
 * ::a.b.c.d, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16, Teredo 2001::/32) is
 * classified by the IPv4 address it would reach, since a dual-stack socket, a NAT64 gateway or a
 * tunnel relay turns it into exactly that.
 *
 * A policy is built once from coturn-compatible options and then only read, so worker threads
 * may share it without locks.
 */
#ifndef ANTEROOM_ADDR_POLICY_H
#define ANTEROOM_ADDR_POLICY_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef enum ar_addr_class_e {
    AR_ADDR_PUBLIC = 0,  /* globally routable unicast */
    AR_ADDR_LOOPBACK,    /* 127/8, ::1 */
    AR_ADDR_UNSPECIFIED, /* 0.0.0.0, :: */
    AR_ADDR_PRIVATE,     /* RFC 1918 */
    AR_ADDR_ULA,         /* fc00::/7 */
    AR_ADDR_SHARED,      /* 100.64/10, carrier-grade NAT */
    AR_ADDR_LINK_LOCAL,  /* 169.254/16 (cloud metadata included), fe80::/10 */
    AR_ADDR_MULTICAST,   /* 224/4, ff00::/8 */
    AR_ADDR_BROADCAST,   /* 255.255.255.255 */
    AR_ADDR_RESERVED,    /* documentation, benchmarking, future use, unknown families, ... */
    AR_ADDR__COUNT
} ar_addr_class_t;

/* "public", "loopback", ...; never NULL. */
const char *ar_addr_class_name(ar_addr_class_t cls);

/*
 * Writes the address a peer really is into out: the embedded IPv4 address (same port) for the
 * IPv6 forms listed above, otherwise a copy. Returns 1 when it rewrote an IPv6 address to IPv4,
 * 0 when it copied, AR_EINVAL for a family other than AF_INET/AF_INET6.
 */
int ar_addr_canonical(const struct sockaddr *sa, struct sockaddr_storage *out);

/*
 * The class of an address after canonicalisation. For 64:ff9b:1::/48, whose IPv4 position
 * depends on the operator's NAT64 prefix length (RFC 6052 section 2.2), every position that the
 * address's zero bits allow is classified and the first non-public answer wins (ar_addr_canonical
 * reports the /96 position). Families other than AF_INET/AF_INET6 are AR_ADDR_RESERVED.
 */
ar_addr_class_t ar_addr_classify(const struct sockaddr *sa);

/*
 * Addresses as 16-byte keys, IPv4 as ::ffff:a.b.c.d, so that one memcmp compares and orders
 * both families; the relay's peer policy and signalling's trusted-proxy list share them.
 */
/* A numeric address (s, len; no spaces, no zone) into a key; *bits gets 32 (IPv4) or 128. Returns
 * 0 or AR_ECONFIG. */
AR_MUST_CHECK int ar_addr_key_parse(const char *s, size_t len, uint8_t key[16], unsigned *bits);
/* "a.b.c.d/n", "v6/n" or one address (a /32 or /128) into a key with its host bits zero and
 * *plen the prefix length over the 16-byte key (an IPv4 /n is 96 + n). n is 1-3 digits. Returns 0
 * or AR_ECONFIG. */
AR_MUST_CHECK int ar_addr_prefix_parse(const char *s, size_t len, uint8_t key[16], unsigned *plen);
/* Whether the first plen bits of key and net agree. */
int ar_addr_key_match(const uint8_t key[16], const uint8_t net[16], unsigned plen);
/* The key of an AF_INET or AF_INET6 address (as it is, not canonicalised): 0 or AR_EINVAL. */
int ar_addr_key_of(const struct sockaddr *sa, uint8_t key[16]);

typedef struct ar_addr_policy_s ar_addr_policy_t;

/* A policy that allows only AR_ADDR_PUBLIC. Returns 0 or AR_ENOMEM. */
AR_MUST_CHECK int ar_addr_policy_new(ar_addr_policy_t **out);
void ar_addr_policy_free(ar_addr_policy_t *p);

/*
 * Adds an allowed-peer-ip (allow = 1) or denied-peer-ip (allow = 0) entry: one address
 * ("10.0.0.1", "2001:db8::1"), an inclusive range ("10.0.0.1-10.0.0.9") or a CIDR prefix
 * ("10.0.0.0/8"), IPv4 or IPv6, both ends of a range in the same family. An IPv4 entry also
 * matches the IPv6 forms that embed it. Returns 0, AR_ECONFIG for a malformed entry or a range
 * whose start is above its end, AR_ETOOBIG past 4096 entries, AR_ENOMEM.
 */
AR_MUST_CHECK int ar_addr_policy_add(ar_addr_policy_t *p, int allow, const char *spec, size_t len);

/* Lets a whole class through (allow = 1) or not; allow-loopback-peers is AR_ADDR_LOOPBACK. */
void ar_addr_policy_allow_class(ar_addr_policy_t *p, ar_addr_class_t cls, int allow);

/*
 * Applies one coturn option by its coturn name: "denied-peer-ip" and "allowed-peer-ip" (value as
 * for ar_addr_policy_add), "allow-loopback-peers" (value NULL, "", or a boolean
 * true/false/yes/no/on/off/1/0). Returns 0, AR_EUNKNOWNKEY for another name, AR_ECONFIG for a
 * bad value, or an error of ar_addr_policy_add().
 */
AR_MUST_CHECK int ar_addr_policy_option(ar_addr_policy_t *p, const char *name, const char *value);

/*
 * Decides whether the relay may reach sa: 0 or AR_EPERM. In order: an allowed-peer-ip entry
 * matching the address or its canonical form allows; else a denied-peer-ip entry matching
 * either denies; else the canonical address's class decides (only AR_ADDR_PUBLIC and classes
 * allowed with ar_addr_policy_allow_class() pass). A NULL policy is the default policy.
 */
int ar_addr_policy_check(const ar_addr_policy_t *p, const struct sockaddr *sa);

#endif
