/*
 * Internals of anteroom-signal (docs/signal.md). One worker process runs one ar_sn loop; every
 * structure here belongs to that loop's thread, except the bus inbox (bus.c), which NATS
 * threads fill under a mutex and the loop drains.
 *
 * State comes in two kinds:
 *  - records (ar__sig_rec_t): the small public facts about a session (role, room, waiting area,
 *    queue status, display name) that every worker of the jurisdiction replicates from the bus,
 *    so that any worker can check a join, list a queue or address a peer without asking anyone;
 *  - local sessions (ar__sig_sess_t): what only the owner (the worker holding the connection)
 *    and one backup (a worker on another node) keep: sequence numbers, the replay buffer, the
 *    resume secret, the token's claims.
 */
#ifndef ANTEROOM_SIGNAL_INTERNAL_H
#define ANTEROOM_SIGNAL_INTERNAL_H

#include "anteroom/metrics.h"
#include "anteroom/token.h"
#include "net.h"
#include "server.h"
#include "signal/signal.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* proxy.c: the client's address behind trusted proxies (X-Forwarded-For) */
typedef struct ar__sig_cidr_s {
    uint8_t key[16]; /* IPv4 as ::ffff:a.b.c.d; host bits zero */
    uint8_t bits;    /* prefix length over the 16-byte key */
} ar__sig_cidr_t;
#define AR__SIG_PROXIES_MAX 64

/* addr.c: connections per client address (max-per-address), exact and keyed */
#define AR__SIG_ADDRS_MAX 65535 /* addresses counted at once per worker (a 16-bit tag each) */
typedef struct ar__sig_addr_ent_s {
    uint8_t key[16]; /* IPv4 as ::ffff:a.b.c.d, IPv6 masked to its /64 */
    uint32_t hash;
    uint16_t count;
    uint16_t next_free;
} ar__sig_addr_ent_t;
typedef struct ar__sig_addrs_s {
    uint8_t hkey[16]; /* SipHash key, drawn at the first use */
    uint8_t keyed;
    ar__sig_addr_ent_t *ent; /* entries 1..nent (0 unused) */
    uint32_t nent, cap, live;
    uint16_t free_head;
    uint16_t *slots; /* entry numbers by hash, 0 empty; nslots a power of two */
    uint32_t nslots;
} ar__sig_addrs_t;
/* Counts one connection of addr: its entry number (the tag to release it with, 1..65535), or
 * AR_EQUOTA when addr already has max, or AR_ENOMEM (the caller refuses the connection). */
int ar__sig_addrs_add(ar__sig_addrs_t *t, const uint8_t addr[16], uint32_t max);
/* Uncounts one connection of entry e (what ar__sig_addrs_add returned). */
void ar__sig_addrs_release(ar__sig_addrs_t *t, uint16_t e);
/* Connections counted for addr now. */
uint32_t ar__sig_addrs_count(const ar__sig_addrs_t *t, const uint8_t addr[16]);
void ar__sig_addrs_free(ar__sig_addrs_t *t);

#define AR__SIG_PEER_LEN 22 /* base64url of 128 bits */
/* How long after its token expired a client may still resume its session with it (srv.c
 * on_hello): past the longest wait in a waiting room, short of for ever. */
#define AR__SIG_RESUME_EXPIRED_MAX_S ((int64_t)4 * 3600)
#define AR__SIG_RESUME_LEN 43 /* the peer id, '.', 20 characters of base64url (120 bits) */
/* The previous resume secret a session keeps until its client proves it got the new one
 * (sess.c ar__sig_sess_rotate_resume): a truncated BLAKE2b hash of the token, not the token. */
#define AR__SIG_PREV_LEN 8
#define AR__SIG_ROOM_MAX 4
#define AR__SIG_LANG_MAX 35 /* a record's lang (ar_token_claims_t's lang[36]) */
#define AR__SIG_QUEUE_MAX 500
#define AR__SIG_SUBS_MAX 32
#define AR__SIG_REPLAY_FRAMES 256
#define AR__SIG_REPLAY_BYTES ((size_t)256 * 1024)
#define AR__SIG_CAND_MAX 64
#define AR__SIG_HELLO_S 10
#define AR__SIG_IDLE_S 60
#define AR__SIG_PING_S 25
/* The pause after which a client holding frames it has not acknowledged is pinged for its ack
 * (srv.c ar__sig_conn_acks_due). */
#define AR__SIG_ACK_ASK_S 2
#define AR__SIG_GARBAGE 5
#define AR__SIG_GARBAGE_WINDOW_S 60
#define AR__SIG_RATE 20u /* messages per second sustained */
/* Bucket size: a newcomer to a call of four sends about 70 frames in two seconds (an offer and
 * its candidates to each of three peers); the page paces itself below this (web/js/signal.js). */
#define AR__SIG_BURST 100u
#define AR__SIG_RATE_CLOSE_S 5
#define AR__SIG_NODE_DEAD_S 3 /* a worker silent this long on the bus is dead (bus.c, in ms) */
/* A silent worker of this node whose process still runs is alive for this long (worker_proc.c):
 * slow, not dead; a loop wedged past it is taken for dead after all. */
#define AR__SIG_NODE_DEAD_LOCAL_S 30
#define AR__SIG_RESUME_WAIT_S 8
/* ... and while the bus is behind (its backlog holds the owner's answer back), up to this from
 * the attempt's start (resume.c attempt_late). */
#define AR__SIG_RESUME_WAIT_MAX_S 30

typedef struct ar__sig_srv_s ar__sig_srv_t;
typedef struct ar__sig_sess_s ar__sig_sess_t;
typedef struct ar__sig_room_s ar__sig_room_t;
typedef struct ar__sig_area_s ar__sig_area_t;
typedef struct ar__sig_snap_s ar__sig_snap_t;

typedef struct ar__sig_id_s {
    char s[AR_SIG_ID_MAX + 1];
} ar__sig_id_t;

/*
 * What the owner keeps of a token: 12 bytes, the three strings at their length and 65 bytes per
 * clinic, instead of the 3.4 KiB of ar_token_claims_t, because every held connection carries
 * one (one allocation: room, clinic and area follow the clinics, found by their offsets through
 * ar__sig_claims_room, _clinic and _area).
 */
enum { AR__SIG_R_PROVIDER = 1, AR__SIG_R_ADMIN = 2, AR__SIG_R_RECEPTION = 4 };
typedef struct ar__sig_claims_s {
    uint32_t size; /* of the allocation, for the wipe in ar__sig_claims_free */
    /* Unix seconds: the token's exp, or when the copy was made if that is later (a resume with
     * an expired token, protocol.md 5.10): a staff session lives until this plus the
     * token-allowance unless a refresh moves it (refresh.c). */
    uint32_t exp;
    uint8_t profile; /* ar_sig_profile_t */
    uint8_t nclinics;
    /* Where clinic and area start, counted from room's first byte (each string is at most
     * AR_TOKEN_ID_MAX - 1 characters and its NUL: area_at is below 256). */
    uint8_t clinic_at, area_at;
    struct {
        char id[AR_TOKEN_ID_MAX];
        uint8_t roles; /* AR__SIG_R_* */
    } clinics[];
    /* then room, clinic and area, each NUL-terminated ("" when absent) */
} ar__sig_claims_t;
/* A patient's claims (room, clinic, area) come to 12 bytes and their strings: a 48-byte chunk
 * for a 15-character room id, where the three pointers made it a 64-byte one. */
_Static_assert(offsetof(ar__sig_claims_t, clinics) <= 12, "claims keep offsets, not pointers");
_Static_assert(2 * AR_TOKEN_ID_MAX <= UINT8_MAX, "a claims string offset fits a byte");
static inline const char *ar__sig_claims_room(const ar__sig_claims_t *c)
{
    return (const char *)&c->clinics[c->nclinics];
}
static inline const char *ar__sig_claims_clinic(const ar__sig_claims_t *c)
{
    return ar__sig_claims_room(c) + c->clinic_at;
}
static inline const char *ar__sig_claims_area(const ar__sig_claims_t *c)
{
    return ar__sig_claims_room(c) + c->area_at;
}

/*
 * The string fields of records and rooms that are often empty are pointers: to a copy of their
 * length (ar_malloc'd), or to ar__sig_empty (never written, never freed). Every worker holds
 * every record (replicated), so 64 bytes for each id cost 64 bytes per session per worker.
 */
extern char ar__sig_empty[1];
/* *dst becomes a copy of v (cut at cap characters; "" or a failed copy: ar__sig_empty). Ids
 * (clinics, areas, peers) are freed as they are; what says something about a person (a
 * patient's language, the name of who is seeing a patient) goes through the _personal pair,
 * which wipes the old value before freeing it (S4). */
void ar__sig_str_set(char **dst, const char *v, size_t cap);
void ar__sig_str_free(char **dst);
void ar__sig_str_set_personal(char **dst, const char *v, size_t cap);
void ar__sig_str_free_personal(char **dst);

/*
 * What only a patient in a queue (or an invitee with a language, staff subscribed to queues,
 * or a member who gave a name) has: allocated at the first of these facts (ar__sig_rec_q);
 * every other record points to ar__sig_no_q, which is never written and reads as none of them
 * (no area, no subscriptions, no name). Strings as in ar__sig_str_set.
 */
typedef struct ar__sig_recq_s {
    char *clinic; /* a patient's clinic */
    char *area;   /* a patient's waiting area (set by arrive) */
    char *by;     /* the peer id of who is seeing it */
    char *by_name;
    char *lang;
    /* The name a patient typed at arrive, or a staff member's or invitee's from hello: NULL or
     * allocated at its length, wiped before it goes (ar__sig_name_wipe, P2, S4). Here, not in
     * the record: an idle session has none, and 8 bytes on every worker for each would take
     * the record past glibc's 96-byte chunk (ar__sig_rec_t). A staff member or invitee with a
     * name and no other fact gets this part for it (88 bytes, a 96-byte chunk). */
    char *name;
    /* AR_SIG_ANSWERS_MAX, allocated at a patient's arrival; strings owned (NUL-terminated) */
    ar_sig_answer_t *ans;
    int64_t since;
    ar__sig_area_t *in_area; /* the area whose patients list holds it (index.c) */
    ar__sig_id_t (*subs)[2]; /* staff: subscribed (clinic, area) pairs */
    uint8_t nsubs;
    uint8_t nans; /* of ans */
} ar__sig_recq_t;
extern const ar__sig_recq_t ar__sig_no_q;
/* The name and the answers' count joined it in what was its padding: still a 96-byte chunk, so
 * a queued patient's record and queue part cost what they did (112 + 96 before, 96 + 96 now). */
_Static_assert(sizeof(ar__sig_recq_t) <= 88, "a record's queue part fits a 96-byte malloc chunk");
_Static_assert(AR_SIG_ANSWERS_MAX <= UINT8_MAX, "an answer count fits nans");

/*
 * A replicated session record: every worker holds one per session of the jurisdiction, so it
 * is kept small (88 bytes, a 96-byte chunk): what most records leave empty is apart (q: a
 * patient's queue place, area, name and answers, staff's subscriptions, a member's name), and
 * the room's id is the room's own (ar__sig_rec_room).
 */
typedef struct ar__sig_rec_s {
    /* What a relay reads of both ends (flows.c on_relay, bus.c ar__sig_bus_to_now, and the
     * tags of a to-subject, bus.c to_subject) comes first, in the record's first 64 bytes: one
     * cache line per record per relayed frame, not two. */
    struct ar__sig_rec_s *hnext;
    ar__sig_room_t *in_room;
    ar__sig_sess_t *local; /* when this worker owns or backs the session */
    uint64_t owner;
    char peer[AR__SIG_PEER_LEN + 1];
    /* Three small numbers in the one byte left after peer (the bus's values outside their
     * ranges are not applied, rec.c). */
    uint8_t role : 2;   /* ar_sig_role_t */
    uint8_t status : 2; /* ar_sig_status_t: 0 when not in a queue */
    uint8_t away : 1;   /* the connection is lost; inside the grace period */
    /* The tags (ar__sig_worker_tag) of the owner and backup the session was created with, 0 for
     * none: its frames' subject for good, to.<home[0]>.<home[1]>.<peer> (bus.c). */
    uint32_t home[2];
    uint64_t backup;
    ar__sig_recq_t *q;  /* never NULL: &ar__sig_no_q until it has some */
    uint64_t joined_us; /* when it joined in_room (the joiner's clock): ranks racing joins */
} ar__sig_rec_t;
/* Every worker holds every record of the jurisdiction: at 88 bytes or less it takes glibc's
 * 96-byte chunk, not the 112-byte one (16 bytes per session on each worker). That is seven
 * 8-byte fields, the two tags, the peer id and one byte: the name (and the answers' count) went
 * to the queue part, which an idle session does not have; role, status and away share the
 * byte. joined_us stays whole and here: every member of a room (every session of the idle
 * benchmark) has one, and its rank must stay exact on every worker. */
_Static_assert(sizeof(ar__sig_rec_t) <= 88, "a record fits a 96-byte malloc chunk");
_Static_assert(offsetof(ar__sig_rec_t, backup) <= 64, "what a relay reads is in 64 bytes");
_Static_assert(AR_SIG_ROLE_INVITEE <= 3 && AR_TOKEN_INVITEE <= 3 && AR_SIG_ST_HOLD <= 3,
               "role and status fit 2 bits");

/* r's name (NULL for none): in its queue part. */
static inline const char *ar__sig_rec_name(const ar__sig_rec_t *r)
{
    return r->q->name;
}

/* A worker's short name in to-subjects: every worker subscribes to to.<tag>.*.* and
 * to.*.<tag>.* (bus.c). Never 0, which stands for no worker. Two workers sharing a tag (one
 * chance in 2^31 per pair) each get the other's frames too, and drop them. */
static inline uint32_t ar__sig_worker_tag(uint64_t id)
{
    return (uint32_t)(id ^ (id >> 32)) | 0x80000000u;
}

/* r's queue facts, writable (allocated at the first call); NULL when out of memory. */
ar__sig_recq_t *ar__sig_rec_q(ar__sig_rec_t *r);
/* A patient's name (NULL or allocated) and its typed answers, wiped before the memory goes back
 * (P2, S4): *name becomes NULL, the answers none (their array is kept for the next ones). */
void ar__sig_name_wipe(char **name);
void ar__sig_answers_wipe(ar__sig_recq_t *q);

/*
 * A clinic's id as the rooms of this worker name it: one copy per worker, shared by every room
 * of the clinic (index.c ar__sig_room_set_clinic), rather than a 32-byte chunk per room on every
 * worker. Made with the first room that names it, freed with the last.
 */
typedef struct ar__sig_clinic_s {
    struct ar__sig_clinic_s *hnext;
    uint32_t refs; /* the rooms naming it */
    char id[];
} ar__sig_clinic_t;

/* What a room holds only while it has more than AR__SIG_ROOM_MAX members, as when joins on two
 * nodes race (ar__sig_room_enforce undoes it): its members past the fourth, and its clinic,
 * whose slot in the room points here meanwhile. */
typedef struct ar__sig_room_more_s {
    ar__sig_clinic_t *clinic;
    ar__sig_rec_t *members[AR__SIG_ROOM_MAX];
} ar__sig_room_more_t;

/*
 * Every worker holds every room too (one per two sessions), so it is kept small: its id is
 * allocated at its length after the struct, four member slots are inline (a room holds at most
 * four members but for a race), and the clinic is a shared copy (ar__sig_clinic_t). The slot
 * after the members names the clinic while there are four members or fewer, and the overflow
 * (ar__sig_room_more_t) past four: one pointer for both, so that a room with a 15-character id
 * takes glibc's 80-byte chunk (index.c). Members and clinic are read through
 * ar__sig_room_member and ar__sig_room_clinic.
 */
struct ar__sig_room_s {
    struct ar__sig_room_s *hnext;
    ar__sig_rec_t *members[AR__SIG_ROOM_MAX]; /* the first four; the rest in u.more */
    union {
        ar__sig_clinic_t *clinic;  /* nmembers <= AR__SIG_ROOM_MAX; NULL: none */
        ar__sig_room_more_t *more; /* nmembers > AR__SIG_ROOM_MAX (never NULL then) */
    } u;
    uint8_t nmembers; /* at most 2 * AR__SIG_ROOM_MAX: concurrent joins on two nodes */
    uint8_t profile;
    uint8_t persistent;
    /* The first bytes of the key its ended marker would have (ar__sig_room_ended_tag), set
     * when the room is made: a marker that comes finds the rooms open here by it without
     * hashing every id (invite.c). ended_here: this worker ended it (or its own members in
     * it, for such a marker): its marker ends nothing more here. */
    uint8_t etag[4];
    uint8_t ended_here;
    char id[];
};

/* Member i of room (i < room->nmembers). */
static inline ar__sig_rec_t *ar__sig_room_member(const ar__sig_room_t *room, size_t i)
{
    return i < AR__SIG_ROOM_MAX ? room->members[i] : room->u.more->members[i - AR__SIG_ROOM_MAX];
}

/* The clinic of the token that opened room (flows.c on_join), or "". */
static inline const char *ar__sig_room_clinic(const ar__sig_room_t *room)
{
    const ar__sig_clinic_t *c =
        room->nmembers > AR__SIG_ROOM_MAX ? room->u.more->clinic : room->u.clinic;
    return c ? c->id : ar__sig_empty;
}

/* The id of r's room, or "" (also when the room could take no more members: a join that raced
 * past AR__SIG_ROOM_MAX on several nodes is undone anyway, ar__sig_room_enforce; or when this
 * worker had no memory for the room or its overflow). */
static inline const char *ar__sig_rec_room(const ar__sig_rec_t *r)
{
    return r->in_room ? r->in_room->id : ar__sig_empty;
}

struct ar__sig_area_s {
    struct ar__sig_area_s *hnext;
    char clinic[AR_SIG_ID_MAX + 1];
    char area[AR_SIG_ID_MAX + 1];
    ar__sig_rec_t **patients; /* in arrival order */
    size_t npatients, cap;
    ar__sig_rec_t **subs; /* staff subscribed to this queue */
    size_t nsubs, subcap;
};

/* One frame in a replay buffer or a backup's pending list. */
typedef struct ar__sig_frame_s {
    struct ar__sig_frame_s *next;
    int64_t seq; /* 0 while pending (not yet numbered) */
    uint8_t fid[16];
    uint8_t action;
    /* Numbered by a promoted backup from a sender's copy that no numbered copy from the owner
     * confirmed: the dead owner may have sent it under another number, or not at all. The
     * session's first resume replays it even at or below the client's last_seq (protocol.md
     * 5.10.1; the client drops it by fid if it had it). */
    uint8_t uncertain;
    /* Whom the frame is about, for the purge when a patient or an invitee goes (sess.c
     * frames_purge, protocol.md 5.13): 0 no one (or only as the id a removal notice names), 1
     * several (a queue snapshot, joined), else 2 + a 16-bit hash of the one peer id it is
     * about. Two bytes that were padding: a frame costs nothing more. A hash, not the id (22
     * bytes) or the record (gone before the frame): it only picks the frames to look at; the
     * purge compares the id in the frame itself, so a collision wipes nothing it should not. */
    uint16_t about;
    uint32_t len;
    char data[]; /* the server frame, built with "seq":0 */
} ar__sig_frame_t;

/* Actions a frame carries for the session's owner, besides delivering it. REMOVED: staff took
 * the member out of its room (remove.c ar__sig_removed_apply). */
enum {
    AR__SIG_ACT_NONE = 0,
    AR__SIG_ACT_ENDED = 1,
    AR__SIG_ACT_RESET_CAND = 2,
    AR__SIG_ACT_REMOVED = 3
};

typedef struct ar__sig_conn_s ar__sig_conn_t;

/* A hello with a resume token for a session another worker owns, while we wait for it. */
typedef struct ar__sig_resume_s {
    char peer[AR__SIG_PEER_LEN + 1];
    char resume[AR__SIG_RESUME_LEN + 1];
    int64_t last_seq;
    ar_token_claims_t claims;
    /* started: the hello's time; deadline: when it gives up unless the bus is behind (resume.c
     * attempt_late), each owner asked having had AR__SIG_RESUME_WAIT_S; last_try: the last ask. */
    uint32_t started, deadline, last_try;
    uint32_t tries;    /* asks of the owner asked last: each waits longer (resume.c ask_gap) */
    uint64_t hello_ms; /* the hello's wall-clock time, in each ask ("t", handover.c stale_ask) */
    uint64_t asked;    /* the owner asked last (0: none yet) */
    int answer;        /* 1 handed over, -1 refused, 0 waiting */
    int created_local; /* the local session was made for this attempt (not a backup) */
    int demoted;       /* ours, demoted to ask its promoter (resume.c): ours again if refused */
    /* peer's record as last looked up, while srv->recs_freed is still rec_gen (resume.c
     * attempt_rec): records never move, so only a free can make the pointer stale. */
    struct ar__sig_rec_s *rec;
    uint64_t rec_gen;
} ar__sig_resume_t;

/*
 * What only some local sessions need, apart from the session (ar__sig_sess_cold): an idle
 * session in a room has none of it, and every held session would otherwise carry its 136 bytes
 * (docs/performance.md, "Idle sessions: the local session's cold part" and "Idle sessions: each
 * block in glibc's next smaller chunk"). Allocated at the first write of one of these fields;
 * until then (and again once the once-a-second sweep finds it empty, sess.c) the session points
 * at ar__sig_no_cold, which is read as all empty and never written. Pointers first, then by
 * size, so that no padding is left inside.
 */
typedef struct ar__sig_sess_cold_s {
    ar__sig_frame_t *pending, *pending_tail; /* backup, or resuming: frames not yet numbered */
    /* natsSubscription on ar.<jur>.to.*.*.<peer>, unless ours by a tag (bus.c): only a session
     * that moved to a worker other than the two it was created on has one. */
    void *sub_to;
    int64_t lost_after;  /* its seq when the first of the lost frames was dropped */
    uint64_t prev_owner; /* promoted: the worker we took it from (asked before the grace ends);
                          * handed: the worker we handed it to */
    uint32_t npending;
    uint32_t lost;  /* frames for it dropped (bus.c) and not yet reported to the client */
    uint32_t asked; /* when prev_owner was asked whether it still holds the client */
    /* srv->now when the session went away (its connection lost, a promotion, a refused resume),
     * was handed over, or kept for a resume's answer: what the sweep times those by (sess.c
     * ar__sig_sess_tick). Set with ar__sig_sess_away_now; 0 (expired) when no part could be
     * allocated for it. */
    uint32_t away_since;
    /* The previous resume secret's hash, while the session's has_prev (sess.c
     * ar__sig_sess_rotate_resume): 8 bytes, wiped before the part is freed. */
    uint8_t prev_resume[AR__SIG_PREV_LEN];
    /* Candidates relayed to each peer since its last offer (flows.c on_relay): only once a
     * candidate was relayed. */
    struct {
        char peer[AR__SIG_PEER_LEN + 1];
        uint8_t n;
    } cand[AR__SIG_ROOM_MAX - 1];
} ar__sig_sess_cold_t;
extern const ar__sig_sess_cold_t ar__sig_no_cold;
/* A part allocated only while needed must still fit glibc's 144-byte chunk it had. */
_Static_assert(sizeof(ar__sig_sess_cold_t) <= 136, "the cold part fits a 144-byte malloc chunk");

/* The random part of a resume secret: the secret the client holds is the session's peer id,
 * '.', and these 15 bytes in 20 characters of base64url (ar__sig_sess_resume_text). */
#define AR__SIG_SECRET_LEN 15

/*
 * Held by the owner and the backup of each session. Every held session has one on its owner
 * (and one on its backup), so it is kept to 120 bytes, the allocator's 128-byte class: what
 * most sessions leave empty is apart (cold: also the NATS subscription of a session that moved,
 * and when it went away), and the resume secret is kept as its 15 random bytes, not as the 43
 * characters the client holds (its peer id is the record's). Fields by size, pointers first,
 * so that no padding is left but the last byte's.
 */
struct ar__sig_sess_s {
    ar__sig_sess_t *lnext, *lprev; /* srv->locals: the once-a-second sweep visits only these */
    ar__sig_rec_t *rec;
    ar__sig_conn_t *conn; /* NULL while away, and on a backup */
    int64_t seq;          /* last session-level seq assigned */
    int64_t acked;        /* highest seq the client acknowledged */
    ar__sig_frame_t *head, *tail;
    ar__sig_claims_t *claims;  /* owner only */
    ar__sig_sess_cold_t *cold; /* never NULL: &ar__sig_no_cold until ar__sig_sess_cold */
    uint32_t bytes;            /* at most AR__SIG_REPLAY_BYTES (+1 frame) */
    uint16_t nframes;          /* at most AR__SIG_REPLAY_FRAMES (+1) */
    uint8_t subhash[16];
    /* The resume secret's random part, valid while has_secret (a copy made before its owner's
     * state came has none, and no secret opens it). Wiped with the session (ar_free_wiped). */
    uint8_t secret[AR__SIG_SECRET_LEN];
    /* Flags, in two bytes:
     *  - is_backup: a backup's copy, not the owner's;
     *  - provisional: made only to catch frames during a resume: never promoted;
     *  - promoted: a backup that took over: trusts a client's last_seq beyond its own;
     *  - copies_uncertain: a backup whose owner is such a promotion (adopt "u"): the frames that
     *    owner numbers are uncertain here too, until the client resumes ("res"), in case this
     *    copy is promoted;
     *  - kick: its owner moved, and a client resuming into it asks anew at the end of the batch
     *    of bus messages (rec.c, resume.c);
     *  - resumed: a connection started resuming into it (resume.c): its free lets go of them;
     *  - handed: the owner's copy after it answered "taken" (sess.c on_take): a backup copy kept
     *    until the new owner (cold->prev_owner) announces itself, promoted back should it die
     *    first; with provisional, a resume's copy kept for the owner's answer
     *    (ar__sig_sess_orphan);
     *  - has_prev: cold->prev_resume holds a secret the client may still hold (its welcome may
     *    have been lost), wiped at its first frame after that welcome;
     *  - settle: promoted in the walk of a death, its end (if due) still to come after it
     *    (sess.c settle_promoted), by the action settle_act (AR__SIG_ACT_ENDED or _REMOVED, 0
     *    for none) its copy held;
     *  - has_secret: secret holds one. */
    uint8_t is_backup : 1, provisional : 1, promoted : 1, copies_uncertain : 1, kick : 1,
        resumed : 1, handed : 1, has_prev : 1;
    uint8_t settle : 1, settle_act : 2, has_secret : 1;
};
/* Every held session has one on its owner and one on its backup: at 120 bytes or less it takes
 * glibc's 128-byte chunk, not the 144-byte one (16 bytes per session on each of the two). */
_Static_assert(sizeof(ar__sig_sess_t) <= 120, "a local session fits a 128-byte malloc chunk");
/* nframes counts up to one past AR__SIG_REPLAY_FRAMES before the caps trim it. */
_Static_assert(AR__SIG_REPLAY_FRAMES < UINT16_MAX, "a replay buffer's frame count fits nframes");

/* s's cold part, writable: allocated (empty) at the first call; NULL when out of memory, and
 * then s still points at ar__sig_no_cold. */
ar__sig_sess_cold_t *ar__sig_sess_cold(ar__sig_sess_t *s);
/* Whether s has a cold part of its own (its fields may be written without ar__sig_sess_cold). */
static inline int ar__sig_sess_has_cold(const ar__sig_sess_t *s)
{
    return s->cold != &ar__sig_no_cold;
}
/* s went away, was handed over or is kept for an answer now (cold->away_since, for the sweep).
 * With no memory for its cold part the time is lost: the sweep finds its wait over at once
 * (logged), as if the grace period had run. */
void ar__sig_sess_away_now(ar__sig_sess_t *s, uint32_t now);
/* n more frames lost for the session noted in c's count, which stops at UINT32_MAX. */
static inline void ar__sig_lost_add(ar__sig_sess_cold_t *c, uint64_t n)
{
    uint64_t sum = (uint64_t)c->lost + n;
    c->lost = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
}
/* s's noted loss forgotten: another worker, or the client, has it (nothing when none). */
static inline void ar__sig_lost_clear(ar__sig_sess_t *s)
{
    if (ar__sig_sess_has_cold(s)) {
        s->cold->lost = 0;
        s->cold->lost_after = 0;
    }
}

enum { AR__SIG_C_HELLO = 0, AR__SIG_C_RESUMING, AR__SIG_C_LIVE, AR__SIG_C_GONE };

/*
 * A client connection. It stays allocated until the loop has finished the batch of events in
 * which it closed (srv.c, on_close and on_free): a caller holding one after a send or a close
 * finds it GONE, and sending or closing it again does nothing.
 */
/*
 * What only some connections need, apart from the connection's state (ar__sig_conn_cold): a
 * resume under way, and the counts kept on a client that sends garbage or passes its rate. A
 * quiet connection has none: allocated at the first need, freed by the once-a-second tick once
 * nothing in it is current (srv.c). NULL reads as all empty.
 */
typedef struct ar__sig_conn_cold_s {
    /* While resuming on another worker's session: what the hello asked for. */
    ar__sig_resume_t *resume;
    /* The worker's connections with an attempt (srv->resuming, linked while resume is set):
     * what a session's answer or end looks for, without a walk of every connection. As with
     * srv->conns, a connection taken off keeps rnext, so a walk that holds it goes on from it
     * (the cold part stays until the connection is freed, never while it is linked). */
    ar__sig_conn_t *rnext, *rprev;
    /* Wall-clock ms when a resume attached the connection to its session (resume.c finish): an
     * ask from an attempt whose hello came before is one the client left (handover.c). */
    uint64_t resumed_ms;
    uint32_t garbage_since, over_since, last_refused;
    uint8_t garbage;
} ar__sig_conn_cold_t;

struct ar__sig_conn_s {
    ar__sig_conn_t *next, *prev;
    /* The net layer's connection, whose area holds this state (ar__sig_conn_of): a pointer, not
     * derived from the address, because unit tests attach states to sessions with no net
     * connection before them (sig_util.h su_conn_attach). */
    ar_sn_conn_t *c;
    ar__sig_srv_t *srv;
    ar__sig_sess_t *sess;
    ar__sig_conn_cold_t *cold; /* NULL until needed */
    /* last_ping: when the connection opened, while it says hello (no ping goes before);
     * last_tx: when a numbered frame was last written to it (sess.c send_numbered), which the
     * tick's early ping for an acknowledgement waits on (AR__SIG_ACK_ASK_S). */
    uint32_t last_rx, last_ping, last_tx;
    uint32_t tokens_ms; /* rate bucket in thousandths of a message */
    /* The loop's monotonic ms at the bucket's last refill, cut to 32 bits: srv.c rate_ok takes
     * the difference modulo 2^32, exact while refills are less than 49 days apart, and a live
     * connection passes rate_ok at least every AR__SIG_IDLE_S + AR__SIG_PING_S seconds (a
     * message or a pong; else it is closed as idle). */
    uint32_t refill_ms;
    uint16_t close_code; /* the first close asked for (or the net layer's): decides the session */
    uint8_t state : 2;   /* AR__SIG_C_* */
    uint8_t drain_wait : 1; /* there when the drain started, not told yet (drain.c) */
    /* A staff session's: its token is watched, the sweep reading its session's claims->exp
     * (refresh.c ar__sig_token_sweep). */
    uint8_t staff : 1;
    uint8_t moved_in : 1; /* moved here from the worker it reached first (move.c): not again */
};
/* One per held connection, on its owner, in the net layer's allocation of the connection (its
 * area, srv.c conn_of): with the net layer's 48 bytes, 120 bytes or less take glibc's 128-byte
 * chunk, where the two apart took a 64-byte and an 80-byte one. */
_Static_assert(AR_SN_CONN_SIZE + sizeof(ar__sig_conn_t) <= 120,
               "a connection and its state fit a 128-byte malloc chunk");

/* c's state (srv.c): it lives in the net layer's area of c (conn_area), the same allocation, a
 * 128-byte chunk with the net layer's 48 bytes where the two apart took 64 and 80. Its srv is set
 * when the upgrade opened c: NULL before (or when on_open refused it), while the area is zeroed
 * and c has no state. */
ar__sig_conn_t *ar__sig_conn_of(ar_sn_conn_t *c);

/* cn's resume attempt, or NULL. */
static inline ar__sig_resume_t *ar__sig_conn_resume(const ar__sig_conn_t *cn)
{
    return cn->cold ? cn->cold->resume : NULL;
}
/* cn's cold part, writable (allocated at the first call); NULL when out of memory. */
ar__sig_conn_cold_t *ar__sig_conn_cold(ar__sig_conn_t *cn);
/* cn's resume attempt set (a: -1 when there is no memory to note it, and then a is not cn's)
 * or let go (NULL, always 0; before the attempt is freed). cn is on srv->resuming while it has
 * one. */
int ar__sig_conn_set_resume(ar__sig_conn_t *cn, ar__sig_resume_t *a);
/* The next connection with an attempt after cn (on srv->resuming; cn may have left it). */
static inline ar__sig_conn_t *ar__sig_conn_next_resuming(const ar__sig_conn_t *cn)
{
    return cn->cold ? cn->cold->rnext : NULL;
}
/* srv.c: cn's cold part freed once nothing in it is current (the tick, once a second); a
 * garbage frame counted (closed with 4002 past AR__SIG_GARBAGE in the window, or at once
 * without memory to count it); one message or control frame against cn's rate bucket: 1 when
 * it passes, 0 when refused, -1 when refused and cn closed (at once without memory to time the
 * episode). */
void ar__sig_conn_cold_trim(ar__sig_conn_t *cn, uint32_t now);
/* The worker's once-a-second timer (srv.c; data: the worker), set on its loop; a unit test's
 * loop (loop_harness.h) runs it only when the test sets it there. */
void ar__sig_srv_tick(uint32_t now, void *data);
/*
 * Whether the tick (srv.c) pings cn now to ask its client for an acknowledgement: its session
 * holds frames the client has not acknowledged, nothing was written to it for AR__SIG_ACK_ASK_S
 * and no ping went since the last frame. The client acknowledges whenever it answers a ping
 * (protocol.md 2), so a call's set-up frames (joined, peer_joined, offers, candidates) leave the
 * replay buffer, and the backup's copy, a few seconds after the flow pauses rather than at the
 * keepalive up to AR__SIG_PING_S later (docs/performance.md, "Idle sessions: a ping for the
 * acknowledgement"). A flow of frames is not interrupted (it is acknowledged every 32 frames),
 * and a client that does not acknowledge is asked once per pause, not every second.
 */
int ar__sig_conn_acks_due(const ar__sig_conn_t *cn, uint32_t now);
/* Why a live connection carries no session this worker acts for (srv.c, counted in the tick):
 * no session, a session attached to another connection, a backup's copy, a session whose record
 * names another owner; -1 when it carries one of ours. */
enum {
    AR__SIG_ASTRAY_NONE = 0,
    AR__SIG_ASTRAY_OTHER_CONN,
    AR__SIG_ASTRAY_BACKUP,
    AR__SIG_ASTRAY_ELSEWHERE,
    AR__SIG_ASTRAY_N
};
int ar__sig_conn_astray(const ar__sig_srv_t *srv, const ar__sig_conn_t *cn);
void ar__sig_conn_garbage(ar__sig_conn_t *cn);
int ar__sig_conn_rate_admit(ar__sig_conn_t *cn);
_Static_assert(AR__SIG_C_GONE < 4, "a connection's state fits its two bits");

/* A client is connected to s: a GONE connection (closed, not yet freed) counts as none. */
static inline int ar__sig_sess_connected(const ar__sig_sess_t *s)
{
    return s->conn && s->conn->state != AR__SIG_C_GONE;
}

/* s is a copy this worker promoted (its backup took over) that no client has resumed: the old
 * owner may be alive and still hold the client (docs/signal.md, "Overload"). NULL: no. */
static inline int ar__sig_sess_unresumed_promotion(const ar__sig_sess_t *s)
{
    return s && !s->is_backup && s->promoted && !ar__sig_sess_connected(s);
}

typedef struct ar__sig_node_s {
    uint64_t id;
    char name[32];
    uint8_t draining;
    uint8_t dead;     /* its death was handled */
    uint8_t left;     /* it said it leaves (a graceful stop): gone for good, whatever comes later */
    uint64_t seen_ms; /* monotonic ms when its last heartbeat was taken from the inbox */
    uint32_t ended_cover_s; /* its heartbeat's "ec": how long its ended rooms are complete */
    /* Its process, from its heartbeat ("h", "p", "s"; 0: not said): on this node's kernel, a
     * silent worker whose process runs is slow, not dead (worker_proc.c). */
    uint64_t host, start;
    int32_t pid;
    uint8_t running; /* the last look at its process, at checked_ms (0: none since it spoke) */
    uint8_t slow;    /* "signal_worker_slow" said for this silence */
    uint64_t checked_ms;
} ar__sig_node_t;

#define AR__SIG_NODES_MAX 256
#define AR__SIG_GONE_MAX 1024
#define AR__SIG_GONE_S 30
/* Frame blocks (frame_pool.c): classes of 48 to 1,024 bytes in 16-byte steps, carved from
 * 16 KiB slabs of a region of 256 MiB of address space a worker; a slab empty this many seconds
 * goes back to the kernel (docs/signal.md, "Frames in slabs"). */
#define AR__SIG_FRAME_STEP 16
#define AR__SIG_FRAME_CLASSES 62
#define AR__SIG_SLAB_SHIFT 14
#define AR__SIG_SLABS 16384
#define AR__SIG_SLAB_IDLE_S 2
typedef struct ar__sig_frame_slabs_s ar__sig_frame_slabs_t;
#define AR__SIG_TO_HDR 25 /* fid (16), send time (8), action (1) */
/* Why a frame for a peer that came off the bus was not delivered here (counted by kind, bus.c):
 * no record of the session; held on another worker (normal: the subject reaches both workers it
 * was created with, wherever the session went); a copy here that is neither ours nor a backup's
 * (a connection that lingers after a hand-over); a record naming us with no copy here (views
 * apart: a frame lost); a frame that is no valid text. */
enum {
    AR__SIG_UNHELD_NO_RECORD = 0,
    AR__SIG_UNHELD_ELSEWHERE,
    AR__SIG_UNHELD_NOT_OURS,
    AR__SIG_UNHELD_OURS_NO_COPY,
    AR__SIG_UNHELD_BAD,
    AR__SIG_UNHELD_N
};
/* ar.<jurisdiction>.to.<owner tag>.<backup tag>.<peer>, and its NUL (bus.c) */
#define AR__SIG_TO_SUBJ_MAX (3 + AR_TOKEN_ID_MAX + 4 + 18 + AR__SIG_PEER_LEN + 1)
/* The records' table (index.c): from this many buckets, doubled whenever there would be more
 * records than buckets, up to the fixed size it had before (512 KiB): never larger, and past
 * 65,536 records its chains grow as they did. */
#define AR__SIG_REC_BUCKETS_MIN 1024
#define AR__SIG_REC_BUCKETS_MAX ((size_t)65536)
#define AR__SIG_SMALL_BUCKETS 4096
/* The rooms' clinics (index.c): a jurisdiction's clinics, not its sessions. */
#define AR__SIG_CLINIC_BUCKETS 512

typedef struct ar__sig_bus_s ar__sig_bus_t;
typedef struct ar__sig_invites_s ar__sig_invites_t;

struct ar__sig_srv_s {
    const ar_signal_conf_t *conf;
    ar_sn_loop_t *loop;
    ar__sig_bus_t *bus;
    ar_token_keyring_t keys;
    uint64_t node_id;
    unsigned index; /* the worker's number on its node */
    uint64_t fid_counter;
    uint32_t now;
    void *qt; /* json_t: the queue delta the next record update carries (area.c, "qk"/"qh") */
    void *left_told;       /* json_t: a leave's "lt" and "lr" for its record update (flows.c) */
    ar__sig_snap_t *snaps; /* queue snapshots still being sent (area.c) */
    ar__sig_conn_t *conns;
    ar__sig_conn_t *resuming; /* those with a resume attempt (ar__sig_conn_set_resume) */
    ar__sig_sess_t *locals;   /* sessions this worker owns or backs up */
    /* Records by peer id (index.c): rec_mask + 1 buckets, NULL until the first record. The table
     * grows with the records rather than being sized for the most a worker may hold: a fixed
     * 65,536 buckets were 512 KiB a worker, resident once a few thousand records touched every
     * page, whatever the load (docs/performance.md, "Idle sessions: the records' table"). */
    ar__sig_rec_t **recs;
    uint32_t rec_mask, nrecs;
    /* Records freed so far (ar__sig_rec_free): a pointer to one taken before is still good while
     * this has not moved, without a second lookup (rec.c ar__sig_rec_apply). */
    uint64_t recs_freed;
    /* move.c: the links between this worker and the others of its node that connections move
     * on (NULL: no moves, resumes off the owner go over the bus), and moving_in while one moved
     * here opens (its state is marked moved_in). */
    struct ar__sig_moves_s *mv;
    uint8_t moving_in;
    /* A walk over every record is going on (ar__sig_rec_walk_begin): the table does not grow
     * under it, so that the walk sees every bucket once. */
    uint32_t rec_walks;
    ar__sig_room_t *rooms[AR__SIG_SMALL_BUCKETS];
    ar__sig_clinic_t *clinics[AR__SIG_CLINIC_BUCKETS]; /* the rooms' clinics (index.c) */
    ar__sig_area_t *areas[AR__SIG_SMALL_BUCKETS];
    ar__sig_addrs_t addrs;                       /* max-per-address (addr.c) */
    ar__sig_cidr_t proxies[AR__SIG_PROXIES_MAX]; /* trusted-proxy */
    size_t nproxies;
    ar__sig_node_t nodes[AR__SIG_NODES_MAX];
    size_t nnodes;
    uint8_t draining;
    /* Catching up on ended rooms (invite.c): /readyz 503. Atomic: the operator thread reads. */
    uint8_t ended_catchup;
    uint8_t kicks;       /* some session's kick is set: ar__sig_resume_kick_marked walks */
    uint32_t drain_at;   /* loop second when the remaining connections are closed */
    uint32_t drain_from; /* loop second when the drain started */
    /* The paced drain (drain.c): the next connection to tell, and how many are still to be. */
    ar__sig_conn_t *drain_cur;
    size_t drain_left;
    size_t nrooms, nsessions, nclinics;
    /* Scratch for building frames; AR_SN_SEND_ROOM more for a frame numbered in place. */
    char out[AR_SN_SEND_ROOM + AR_SIG_OUT_MAX + 64];
    char pub[AR__SIG_TO_HDR + AR_SIG_OUT_MAX + 1]; /* a frame for the bus, after its header */
    ar__sig_invites_t *invites; /* invite tokens used in the jurisdiction (invite.c) */
    /* Frames held here (replay buffers, pending lists) about each value of a frame's about tag,
     * a frame about several counted once for each (sess.c): a patient's end looks through the
     * buffers only when some frame may be about it. 256 KiB, untouched pages until used. */
    uint32_t about_n[65536];
    /* Patients and invitees that went in the last AR__SIG_GONE_S seconds (the last
     * AR__SIG_GONE_MAX of them), their tags, and how many of those have each tag: a frame
     * about one of them that arrives after its deletion (a backup's copy, a hand-over's buffer,
     * a frame from another worker still on the bus) is redacted as it enters (purge.c). */
    struct {
        char peer[AR__SIG_PEER_LEN];
        uint32_t at;
    } gone[AR__SIG_GONE_MAX];
    uint16_t gone_tag[AR__SIG_GONE_MAX];
    uint32_t gone_next;
    uint32_t gone_last; /* srv->now at the latest of them (0: none yet): none lately, no look */
    uint8_t gone_n[65536];
    /* The frames' slabs (frame_pool.c): NULL until the first frame, and for good when they could
     * not be mapped (slabs_failed: frames from malloc). */
    ar__sig_frame_slabs_t *slabs;
    uint8_t slabs_failed;
    ar_metrics_t *metrics;
    /* Connections closed as idle since the last line that told of them (srv.c idle_report):
     * all, those whose output was queued (reading paused: their client did not read), and
     * those with bytes waiting unread; and when that line was written. */
    uint32_t idle_closed, idle_queued, idle_unread, idle_logged;
    struct {
        ar_metric_t *conns, *sessions, *rooms, *msgs_in, *msgs_out, *relay_us, *bus_lag_us;
        ar_metric_t *errors, *closes, *resumes, *drained, *moved_out, *moved_in, *moved_unsent;
        ar_metric_t *snaps;                    /* queue snapshots still being sent (area.c) */
        ar_metric_t *unheld[AR__SIG_UNHELD_N]; /* frames off the bus not delivered (bus.c) */
    } m;
};

/* r's session is this worker's own copy, not a backup's: where its frames are delivered and
 * numbered (a provisional or handed copy too; ar__sig_owns, below, is who acts as its owner). */
static inline int ar__sig_owned_here(const ar__sig_srv_t *srv, const ar__sig_rec_t *r)
{
    return r->local && !r->local->is_backup && r->owner == srv->node_id;
}

/* r's session is this worker's to act on as owner: not a backup's copy, a resume's provisional
 * copy or one handed over to another worker (which its record may still name us for). */
static inline int ar__sig_owns(const ar__sig_srv_t *srv, const ar__sig_rec_t *r)
{
    const ar__sig_sess_t *s = r->local;
    return s && !s->is_backup && !s->provisional && !s->handed && r->owner == srv->node_id;
}

/* srv.c */
void ar__sig_send_error(ar__sig_conn_t *cn, int code, const char *text, int about, int64_t id);
void ar__sig_send0(ar__sig_conn_t *cn, const ar_sig_msg_t *msg);
void ar__sig_conn_close(ar__sig_conn_t *cn, uint16_t code);
/* An error, then a close with close_code: the session follows close_code (ends or goes away)
 * even when the error frame is what kills the connection. */
void ar__sig_refuse(ar__sig_conn_t *cn, int code, const char *text, int about, int64_t id,
                    uint16_t close_code);
/* The net callbacks of a worker (tests drive a loop with them, without the bus). */
void ar__sig_net_handler(ar__sig_srv_t *srv, ar_sn_handler_t *h);
void ar__sig_welcome(ar__sig_conn_t *cn, ar__sig_sess_t *s, int resumed);
/*
 * The new session of a hello (srv.c), also when its resume failed later (resume.c): with admit,
 * none while the bus is behind (closed with 4016, AR_EAGAIN); an invite link used by another
 * session refused (bad_token about message id, close 4001, AR_EPERM); else the session, and an
 * invitee's claim of its link. 0 and *out the session, not yet welcomed; AR_ENOMEM: nothing was
 * sent, the caller closes cn.
 */
int ar__sig_hello_session(ar__sig_conn_t *cn, const ar_token_claims_t *cl, int64_t id, int admit,
                          ar__sig_sess_t **out);
uint64_t ar__sig_now_us(void);
/* "10.0.0.0/8", "2001:db8::/32" or one address. 0 or AR_ECONFIG. */
int ar__sig_cidr_parse(const char *spec, ar__sig_cidr_t *out);
int ar__sig_cidr_match(const ar__sig_cidr_t *list, size_t n, const uint8_t key[16]);
int ar__sig_addr_key(const struct sockaddr_storage *ss, uint8_t key[16]);
/*
 * The address to count a connection under: peer itself unless peer is a trusted proxy and the
 * X-Forwarded-For value (xff, len; cut: its start was dropped) names hops; then the rightmost hop
 * that is not a trusted proxy (or the leftmost, when all are). Returns 1 when taken from the
 * header, 0 when it is the peer.
 */
int ar__sig_client_key(const uint8_t peer[16], const char *xff, size_t len, int cut,
                       const ar__sig_cidr_t *trusted, size_t ntrusted, uint8_t out[16]);

/* The supervisor of this worker (set in the forked child), to which POST /drain is forwarded. */
extern pid_t ar__sig_supervisor;

/*
 * drain.c: the drain told in batches over the first 1/AR__SIG_DRAIN_SPREAD_PART of
 * drain-within, one batch a tick (docs/signal.md, "Drain").
 */
#define AR__SIG_DRAIN_SPREAD_PART 2
/* The drain frame to cn: drain-urls and the seconds left until drain_at (nothing without
 * drain-urls). cn is no longer one the paced drain has to tell. */
void ar__sig_drain_send(ar__sig_srv_t *srv, ar__sig_conn_t *cn);
/* How many of the left connections still to be told a tick at loop second now tells, for a
 * drain started at second from that closes at second at: all of them at the last tick of the
 * first 1/AR__SIG_DRAIN_SPREAD_PART of the window (and at once when that part is under 2 s),
 * else an even share of what is left over the ticks left. Pure arithmetic. */
size_t ar__sig_drain_batch(size_t left, uint32_t from, uint32_t at, uint32_t now);
/* Starts draining at loop second now: drain_at from drain-within, and every connection held
 * now marked to be told. */
void ar__sig_drain_begin(ar__sig_srv_t *srv, uint32_t now);
/* This tick's batch (srv->now current): nothing once drain_at is reached. */
void ar__sig_drain_tick(ar__sig_srv_t *srv);
/* cn closes (on_close, before it is unlinked): the cursor moves off it, its mark goes. */
void ar__sig_drain_forget(ar__sig_srv_t *srv, ar__sig_conn_t *cn);

/* sess.c: records, local sessions, replay, backup, resume */
ar__sig_rec_t *ar__sig_rec_find(ar__sig_srv_t *srv, const char *peer);
ar__sig_rec_t *ar__sig_rec_find_whole(ar__sig_srv_t *srv, const char *peer);
ar__sig_rec_t *ar__sig_rec_get(ar__sig_srv_t *srv, const char *peer);
void ar__sig_rec_free(ar__sig_srv_t *srv, ar__sig_rec_t *r);
/* index.c: the records' buckets, for a walk over every record (0 before the first record); a
 * walk that may create records (none does today) brackets itself with begin and end; the table
 * freed with the worker (its records freed first). */
static inline size_t ar__sig_rec_buckets(const ar__sig_srv_t *srv)
{
    return srv->recs ? (size_t)srv->rec_mask + 1 : 0;
}
void ar__sig_rec_walk_begin(ar__sig_srv_t *srv);
void ar__sig_rec_walk_end(ar__sig_srv_t *srv);
void ar__sig_recs_free(ar__sig_srv_t *srv);
ar__sig_room_t *ar__sig_room_find(ar__sig_srv_t *srv, const char *id);
ar__sig_room_t *ar__sig_room_get(ar__sig_srv_t *srv, const char *id);
void ar__sig_room_drop(ar__sig_srv_t *srv, ar__sig_room_t *room);
/* room's clinic becomes clinic (at most AR_SIG_ID_MAX characters; "": none), sharing this
 * worker's copy of it. AR_ENOMEM when there is no memory for a first copy: the room then has
 * no clinic (no staff enter it or run its call by their clinic's roles), and a join that opened
 * it is refused (flows.c on_join, area.c on_arrive). */
AR_MUST_CHECK int ar__sig_room_set_clinic(ar__sig_srv_t *srv, ar__sig_room_t *room,
                                          const char *clinic);
ar__sig_area_t *ar__sig_area_find(ar__sig_srv_t *srv, const char *clinic, const char *area);
/* How every worker ranks a room's members (the fifth of a race, whom a "seen" mark moves to):
 * earlier join first (a joiner's time is after every member its worker saw), then peer id. */
int ar__sig_joined_before(const ar__sig_rec_t *x, const ar__sig_rec_t *y);
void ar__sig_rec_set_room(ar__sig_srv_t *srv, ar__sig_rec_t *r, const char *room);
void ar__sig_rec_set_area(ar__sig_srv_t *srv, ar__sig_rec_t *r, const char *clinic,
                          const char *area);
ar__sig_area_t *ar__sig_area_get(ar__sig_srv_t *srv, const char *clinic, const char *area);
void ar__sig_area_unsub(ar__sig_srv_t *srv, ar__sig_rec_t *r, ar__sig_area_t *a);
int ar__sig_area_sub(ar__sig_srv_t *srv, ar__sig_rec_t *r, ar__sig_area_t *a);
void ar__sig_area_gc(ar__sig_srv_t *srv, ar__sig_area_t *a);
ar__sig_sess_t *ar__sig_sess_new(ar__sig_srv_t *srv, ar__sig_conn_t *cn,
                                 const ar_token_claims_t *claims);
void ar__sig_sess_free(ar__sig_srv_t *srv, ar__sig_sess_t *s);
int ar__sig_sess_resuming(ar__sig_srv_t *srv, const ar__sig_sess_t *s);
/* A local session for r, linked into srv->locals, without its bus subscription (the unit tests'
 * sessions; ar__sig_sess_local_new adds the subscription). */
ar__sig_sess_t *ar__sig_sess_link_new(ar__sig_srv_t *srv, ar__sig_rec_t *r, int backup);
/* err (when not NULL): 0, or why there is none (AR_ENOMEM, or the subscription's error). */
ar__sig_sess_t *ar__sig_sess_local_new(ar__sig_srv_t *srv, ar__sig_rec_t *r, int backup, int *err);
/* A new random resume secret for s. */
void ar__sig_sess_new_resume(ar__sig_sess_t *s);
/* s's resume secret as the client holds it and the bus carries it ("r"): its peer id, '.', 20
 * characters of base64url (AR__SIG_RESUME_LEN), NUL-terminated in out; "" when s has none.
 * The caller wipes out after use (sodium_memzero). */
void ar__sig_sess_resume_text(const ar__sig_sess_t *s, char out[AR__SIG_RESUME_LEN + 1]);
/* s's resume secret set from its text (as ar__sig_sess_resume_text makes it): 0, or AR_EINVAL
 * when text is not s's peer id, '.' and 20 characters of base64url, and then s has none (no
 * secret opens it) until the next set. */
int ar__sig_sess_resume_set(ar__sig_sess_t *s, const char *text);
/*
 * The resume secret, renewed at a resume whose client presented `presented` (its current or its
 * previous secret): the new one is sent in the welcome, and the presented one is kept (as
 * cold->prev_resume) until the client's first frame after that welcome, in case the welcome is
 * lost with its connection (protocol.md 5.10). Both travel wherever the secret does: to the
 * backup ("adopt", "res") and with a hand-over ("taken"). AR_ENOMEM when there is no memory for
 * s's cold part to keep the presented one in: the secret is then not renewed (the presented one
 * stays s's only secret, the one the client holds, and the welcome carries it again).
 */
int ar__sig_sess_rotate_resume(ar__sig_sess_t *s, const char *presented);
/* Whether resume (AR__SIG_RESUME_LEN characters) is s's current or kept previous secret and
 * subhash its subject's hash; in constant time for a given outcome of each compare. */
int ar__sig_sess_secret_ok(const ar__sig_sess_t *s, const char *resume, const uint8_t subhash[16]);
/* The previous secret forgotten (wiped). */
void ar__sig_sess_prev_wipe(ar__sig_sess_t *s);
/* The client of s sent a frame after its welcome, so it holds the secret that welcome carried:
 * the previous one is wiped, here and on the backup ("got"). Nothing when there is none. */
void ar__sig_sess_resume_confirmed(ar__sig_srv_t *srv, ar__sig_sess_t *s);
/* The previous secret as the bus carries it ("q": 16 hex digits), into a message o (a json_t)
 * when s keeps one; and read from one into s (absent or malformed: none kept; nor when there is
 * no memory for s's cold part: only the current secret opens s then). */
void ar__sig_sess_prev_put(const ar__sig_sess_t *s, void *o);
void ar__sig_sess_prev_get(ar__sig_sess_t *s, const void *o);
/* An unresumed promotion (ar__sig_sess_unresumed_promotion) undone: s is a backup copy again,
 * a connection closed in this batch of events (GONE) that still points at it lets go, and the
 * losses it noted as owner are forgotten (the owner noted them too). */
void ar__sig_sess_demote(ar__sig_srv_t *srv, ar__sig_sess_t *s);
/* A record update from origin naming origin r's owner (rec.c): a copy we handed over to it
 * ("handed", sess.c on_take) lets go, or stays as its backup when the update names us. */
void ar__sig_sess_owner_seen(ar__sig_srv_t *srv, ar__sig_rec_t *r, uint64_t origin);
/* The copy made for a resume whose connection went (or whose time ran out) after it asked the
 * owner (resume.c): kept, still catching frames, for the owner's answer, which makes it the
 * session's away owner (sess.c on_taken); freed at a refusal or after AR__SIG_RESUME_WAIT_S. */
void ar__sig_sess_orphan(ar__sig_srv_t *srv, ar__sig_sess_t *s);
/* A copy kept for a hand-over that is settled goes, unless a client resumes into it: then it
 * is that attempt's to free when it fails (provisional, created_local). */
void ar__sig_sess_release(ar__sig_srv_t *srv, ar__sig_sess_t *s);
/* handover.c: "take" (msg, a json_t) from a worker with a client resuming into r, and its
 * answer "taken" on that worker (peer: r's id, which the resume may delete). */
void ar__sig_on_take(ar__sig_srv_t *srv, void *msg, ar__sig_rec_t *r);
void ar__sig_on_taken(ar__sig_srv_t *srv, void *msg, ar__sig_rec_t *r, const char *peer);
/*
 * What another worker's message says about a session's numbering, checked before it is taken
 * (docs/signal.md, "Fuzzing the bus"): a bus peer may be corrupted, hostile or of another
 * version. A frame's seq is 1..AR_SIG_INT_MAX, what a client can be sent; a session's seq and
 * ack also 0 (nothing numbered yet). Numbering goes on one by one from them, so it never
 * overflows.
 */
static inline int ar__sig_seq_ok(int64_t seq, int64_t min)
{
    return seq >= min && seq <= AR_SIG_INT_MAX;
}
/* A frame id or a subject's hash as the bus carries it: exactly 32 hex digits into out (0), or
 * -1 with out untouched (a shorter string would leave bytes of out unwritten). */
int ar__sig_hex16(const char *hex, uint8_t out[16]);
/* Some byte of p[0..len) is a control character (below 0x20): eight bytes a step, by the test
 * that sets a byte's top bit in (w - 0x20 each) & ~w exactly when some byte is below 0x20. */
static inline int ar__sig_has_control(const char *p, size_t len)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if ((w - 0x2020202020202020ull) & ~w & 0x8080808080808080ull)
            return 1;
    }
    for (; i < len; i++)
        if ((unsigned char)p[i] < 0x20)
            return 1;
    return 0;
}
/* A frame from another worker may go to a client as a text frame only if it is UTF-8: RFC 6455
 * 8.1 requires it of every text frame, and a browser fails the connection at the first that is
 * not (kept in the replay buffer, such a frame would fail every resume too). Nor with a control
 * character: a compact JSON frame the server built has none (JSON escapes them in strings), a
 * client's JSON parse refuses one, and a NUL ended the frame early for the splice of its seq
 * (the bus fuzzer, sess.c seq_placeholder). Frames built here are always clean; one from the bus
 * is checked as it comes (to.<peer> and a batch of numbered copies, in binary; a hand-over's or
 * an adoption's buffer, in JSON strings that may hold escaped controls). ASCII, nearly all of a
 * frame, costs little. */
static inline int ar__sig_frame_text_ok(const char *frame, size_t len)
{
    return !ar__sig_has_control(frame, len) && ar_ws_utf8(0, (const uint8_t *)frame, len) == 0;
}
/* sess.c: a replay buffer as the JSON array "adopt" and "taken" carry (json_t), and loaded into
 * s once its seq is the message's: frames numbered above it or out of order are left out. */
void *ar__sig_frames_json(const ar__sig_sess_t *s);
void ar__sig_load_frames(ar__sig_srv_t *srv, ar__sig_sess_t *s, void *frames);
/* A copy takes the session's state from its owner's message msg (a json_t: a backup's "adopt",
 * or a "taken" the new owner takes as away, handover.c): the resume secret and the previous
 * one, the subject's hash (hex; malformed: zeros), seq and ack, and the buffer (frames); it is
 * neither provisional nor handed any more. Which role it has (backup or owner) is the caller's. */
void ar__sig_sess_take_state(ar__sig_srv_t *srv, ar__sig_sess_t *s, const void *msg,
                             const char *resume, const char *hex, int64_t seq, int64_t ack,
                             void *frames);
/* Patient or invitee `gone` ends (its record is deleted, rec.c): every frame about it in this
 * worker's replay buffers and pending lists (owner and backup copies) is wiped and replaced by
 * "redacted" under the same seq and fid; a queue snapshot or joined naming it is rebuilt
 * without it. Staff: nothing. Returns how many frames were changed. */
size_t ar__sig_frames_purge(ar__sig_srv_t *srv, const ar__sig_rec_t *gone);
/* purge.c: f's about tag (ar__sig_frame_t) counted in srv->about_n as it enters this worker's
 * buffers: `about` when the code that built the frame knows it (ar__sig_about_one), else
 * AR__SIG_ABOUT_READ, read from its body; uncounted (dir -1) as it leaves them (or counted
 * again). */
#define AR__SIG_ABOUT_READ (-1)
/* A frame's about tag when it names no one peer: about no one, or about several. */
enum { AR__SIG_ABOUT_NONE = 0, AR__SIG_ABOUT_MANY = 1 };
void ar__sig_about_count_many(ar__sig_srv_t *srv, const ar__sig_frame_t *f, int dir);
/* Inline: it runs twice a relayed message (the frame kept, then acknowledged), and a call's
 * prologue and epilogue cost more than the count itself (bench/signal/instr.sh). */
static inline void ar__sig_about_count(ar__sig_srv_t *srv, const ar__sig_frame_t *f, int dir)
{
    if (f->about == AR__SIG_ABOUT_NONE)
        return;
    if (f->about == AR__SIG_ABOUT_MANY)
        ar__sig_about_count_many(srv, f, dir);
    else
        srv->about_n[f->about] += (uint32_t)dir;
}
/* Whether anyone went here in the last AR__SIG_GONE_S seconds (purge.c gone_in looks no further
 * back): nearly never, so asked before any frame is looked at, at every relay. */
static inline int ar__sig_gone_lately(const ar__sig_srv_t *srv)
{
    return srv->gone_last && srv->now - srv->gone_last <= AR__SIG_GONE_S;
}
/* purge.c: ar__sig_about_tag's whole work: the body read for the tag, a late purge. */
void ar__sig_about_tag_all(ar__sig_srv_t *srv, ar__sig_frame_t *f, int about);
/* Inline: a relayed frame's tag is known and no one went lately, nearly always, and the call's
 * prologue and epilogue cost more than the count (bench/signal/instr.sh). */
static inline void ar__sig_about_tag(ar__sig_srv_t *srv, ar__sig_frame_t *f, int about)
{
    if (about == AR__SIG_ABOUT_READ || ar__sig_gone_lately(srv)) {
        ar__sig_about_tag_all(srv, f, about);
        return;
    }
    f->about = (uint16_t)about;
    ar__sig_about_count(srv, f, 1);
}
/* purge.c: the tag of a frame about the one peer id p (n bytes), as the body's reading gives it
 * for a relayed offer, answer or candidate from p. */
uint16_t ar__sig_about_one(const char *p, size_t n);
/* purge.c: in a frame the server built, the value of the first key (with its quotes, colon and
 * opening quote, e.g. "\"peer\":\"") at or after *pos, its length in *vn and *pos moved past it;
 * NULL when there is none or it ends nowhere an id could. Ids hold no escape and no quote. */
const char *ar__sig_frame_value(const char *d, size_t len, const char *key, size_t *pos,
                                size_t *vn);
/* frame_pool.c: a block for a frame of len bytes of body (fields unset; NULL when out of
 * memory); a frame's block back, wiped whole; the bytes f's block holds (for tests that look at
 * every byte); from the once-a-second tick, slabs empty AR__SIG_SLAB_IDLE_S seconds handed back
 * to the kernel; how many slabs may be resident (in use, or empty and not handed back yet); the
 * region unmapped, once no frame is held. */
ar__sig_frame_t *ar__sig_frame_alloc(ar__sig_srv_t *srv, size_t len);
void ar__sig_frame_release(ar__sig_srv_t *srv, ar__sig_frame_t *f);
size_t ar__sig_frame_cap(const ar__sig_srv_t *srv, const ar__sig_frame_t *f);
void ar__sig_frame_slabs_tick(ar__sig_srv_t *srv);
uint32_t ar__sig_frame_slabs_resident(const ar__sig_srv_t *srv);
void ar__sig_frame_pool_free(ar__sig_srv_t *srv);
/* The body of a redacted frame (protocol.md 5.13), built with "seq":0 as every frame is. */
#define AR__SIG_REDACTED_FRAME "{\"v\":1,\"type\":\"redacted\",\"seq\":0}"
void ar__sig_sess_adopt(ar__sig_srv_t *srv, ar__sig_sess_t *s);
void ar__sig_sess_flush_pending(ar__sig_srv_t *srv, ar__sig_sess_t *s);
void ar__sig_sess_deliver(ar__sig_srv_t *srv, ar__sig_sess_t *s, const uint8_t *fid, uint8_t action,
                          const char *frame, size_t len, uint64_t sent_us);
/* As ar__sig_sess_deliver, with the frame's about tag known (ar__sig_about_tag's `about`). */
void ar__sig_sess_deliver_about(ar__sig_srv_t *srv, ar__sig_sess_t *s, const uint8_t *fid,
                                uint8_t action, const char *frame, size_t len, uint64_t sent_us,
                                int about);
void ar__sig_sess_ack(ar__sig_srv_t *srv, ar__sig_sess_t *s, int64_t seq);
void ar__sig_sess_lost(ar__sig_srv_t *srv, ar__sig_sess_t *s, uint16_t code);
void ar__sig_sess_end(ar__sig_srv_t *srv, ar__sig_rec_t *r, int reason_left);
void ar__sig_sess_tick(ar__sig_srv_t *srv);
int ar__sig_resume_start(ar__sig_conn_t *cn, const ar_token_claims_t *claims, const char *resume,
                         int64_t last_seq);
void ar__sig_resume_tick(ar__sig_srv_t *srv, ar__sig_conn_t *cn);
/* Every resuming connection tries again now, asking the owner anew: a worker died (sess.c),
 * and the next tick is up to 1 s off. */
void ar__sig_resume_kick(ar__sig_srv_t *srv);
/* As ar__sig_resume_kick for every session whose kick is set (rec.c sets it for each record
 * update that moves a session a client resumes into), in one walk of the connections at the end
 * of a batch of bus messages (bus.c ar__sig_bus_wake), not one walk per update; the marks are
 * cleared. Nothing to do (no walk) when no session was marked. */
void ar__sig_resume_kick_marked(ar__sig_srv_t *srv);
/* Replays to s's live connection (ar__sig_replay_to); AR_ECLOSED when it is not or no more live. */
int ar__sig_replay(ar__sig_srv_t *srv, ar__sig_sess_t *s, int64_t after);
/* What a resume replays to cb, in the order of their seq: the frames above `after` and the
 * uncertain ones at or below it. cb returns 0 when the frame went out; anything else stops the
 * replay with AR_ECLOSED and every mark stays. A complete replay clears every mark (once) and
 * returns how many uncertain frames at or below `after` it sent. */
typedef int ar__sig_frame_cb(void *arg, const ar__sig_frame_t *f);
int ar__sig_replay_to(ar__sig_sess_t *s, int64_t after, ar__sig_frame_cb *cb, void *arg);
/* The frame as the client gets it: f->data with "seq":<f->seq>,"fid":"<22 base64url>" in place
 * of its "seq":0 (protocol.md 2). Its length, or 0 when it has no placeholder or cap is short. */
#define AR__SIG_FID_LEN AR_SIG_FID_LEN
/* What the splice adds to a frame built with "seq":0: up to 15 more digits, ,"fid":"<22>". A
 * session-level frame is built this much under AR_SIG_OUT_MAX, so the client gets at most that. */
#define AR__SIG_SPLICE_MAX (15 + 8 + AR__SIG_FID_LEN + 1)
size_t ar__sig_frame_wire(const ar__sig_frame_t *f, char *out, size_t cap);
/* 16 bytes of frame id as 22 characters of unpadded base64url (no NUL written). */
void ar__sig_fid_text(const uint8_t fid[16], char out[AR__SIG_FID_LEN]);
/* Whether a client that has seen frames up to `last` can resume s (docs/signal.md, "Resume"). */
int ar__sig_sess_resumable(const ar__sig_sess_t *s, int64_t last);
void ar__sig_proc_msg(ar__sig_srv_t *srv, const char *data, size_t len, const char *reply);
void ar__sig_to_msg(ar__sig_srv_t *srv, const char *peer, const uint8_t *data, size_t len);
void ar__sig_node_dead(ar__sig_srv_t *srv, uint64_t id);
/* The deaths of n workers found together: one walk of the records for all (sess.c). */
void ar__sig_nodes_dead(ar__sig_srv_t *srv, const uint64_t *ids, size_t n);
/* Worker id's death (or departure) was handled here: not one we never heard from. */
int ar__sig_node_death_handled(const ar__sig_srv_t *srv, uint64_t id);
/* The signals a node's processes take from their operator (drain, stop), held blocked by a
 * worker until its handlers are in (srv.c) and waited for by the supervisor (supervise.c). */
void ar__sig_node_signals(sigset_t *set);
/* Detaches s's connection, if any, and closes it with code (the session stays). */
void ar__sig_sess_close_conn(ar__sig_sess_t *s, uint16_t code);
void ar__sig_subhash(const ar_token_claims_t *claims, uint8_t out[16]);

/* bus.c: NATS; subjects ar.<jur>.{node,sess.<peer>,room.<room>,area.<clinic>.<area>,
 * to.<peer>,proc.<worker>} */
int ar__sig_bus_start(ar__sig_srv_t *srv);
void ar__sig_bus_stop(ar__sig_srv_t *srv);
/* A graceful stop: after everything this worker published, tells the bus it leaves (every
 * worker then handles it as dead at once); nothing published afterwards goes out (bus_node.c). */
void ar__sig_bus_leave(ar__sig_srv_t *srv);
/* The bus's inbox alone, not connected (ar__sig_bus_start begins with it; tests use it bare). */
int ar__sig_bus_new(ar__sig_srv_t *srv);
/* A message from NATS on subject subj into the inbox (libnats' thread), or dropped when full. */
void ar__sig_bus_put(ar__sig_bus_t *b, const char *subj, const void *data, size_t len);
/* The loop takes what waits in the inbox (its eventfd fired). */
void ar__sig_bus_wake(ar__sig_srv_t *srv);
/* Publishes a record update (JSON object with "p") on subject kind/key; applies it locally. */
void ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj);
/* Sends the session-level frame in srv->pub (built with "seq":0 after AR__SIG_TO_HDR bytes)
 * to a peer's owner and backup. */
void ar__sig_bus_to(ar__sig_srv_t *srv, const char *peer, uint8_t action, size_t len);
/* A relayed frame in srv->pub for a session this worker owns, delivered at once when no local
 * frame waits (not an "ended" one): 1 when delivered, 0 when the caller sends it with
 * ar__sig_bus_to. about: its about tag (ar__sig_about_tag). Only for callers that loop over
 * nothing the delivery can change (flows.c, on_relay). */
int ar__sig_bus_to_now(ar__sig_srv_t *srv, ar__sig_rec_t *r, uint8_t action, size_t len, int about);
/*
 * Queues a numbered copy of a frame for a session's backup worker; copies for one worker go
 * out together on its proc subject (bus.c): 'N', then per frame AR__SIG_NUM_HDR bytes (peer id,
 * seq as 8 bytes little-endian, fid, action, frame length as 4 bytes little-endian) and the
 * frame. Anything else published flushes the batch first, so the bus keeps the order.
 */
#define AR__SIG_NUM_HDR (AR__SIG_PEER_LEN + 8 + 16 + 1 + 4)

/* The bus's binary fields (numbered copies, lost notices): n bytes, little endian. */
static inline void ar__sig_le_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t ar__sig_le_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
void ar__sig_bus_num(ar__sig_srv_t *srv, uint64_t worker, const char *peer, int64_t seq,
                     const uint8_t fid[16], uint8_t action, const char *frame, size_t len);
/* Sends a JSON object to one worker's proc subject; reply: NULL or an inbox for an answer. */
void ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj);
int ar__sig_bus_request(ar__sig_srv_t *srv, uint64_t worker, void *json_obj, const char *peer);
void ar__sig_bus_reply(ar__sig_srv_t *srv, const char *reply, void *json_obj);
int ar__sig_bus_sub_to(ar__sig_srv_t *srv, ar__sig_sess_t *s);
void ar__sig_bus_unsub_to(ar__sig_srv_t *srv, ar__sig_sess_t *s);
void ar__sig_bus_heartbeat(ar__sig_srv_t *srv);
/* 1: a new session may start here now; 0: refuse it (4016 busy), the bus is behind (bus.c). */
int ar__sig_bus_admit(ar__sig_srv_t *srv);
/* n frames for peer were dropped before numbering: its client is told (error lost), now if it
 * is connected here, else after its next welcome on this worker. */
void ar__sig_sess_frames_lost(ar__sig_srv_t *srv, const char *peer, uint32_t n);
/* Frames for sessions this worker could not tell apart were dropped: every local one is told. */
void ar__sig_sess_lost_all(ar__sig_srv_t *srv);
/* Sends error lost to s's live client if frames were lost for it since the last report. */
void ar__sig_sess_report_lost(ar__sig_sess_t *s);
int ar__sig_node_alive(ar__sig_srv_t *srv, uint64_t id);
/* 1 when worker id is another worker of this node (its name, on this kernel and pid namespace),
 * alive and not draining: one a connection can be moved to (move.c). */
int ar__sig_node_here(ar__sig_srv_t *srv, uint64_t id);
/* The workers silent past AR__SIG_NODE_DEAD_S are declared dead (their sessions promoted), but
 * for a worker of this node whose process still runs (bus_node.c, from the heartbeat). */
void ar__sig_nodes_judge(ar__sig_srv_t *srv, uint64_t now_ms);
/* 1 while this worker's bus is behind, or another worker said so in a heartbeat lately, and
 * for a few seconds after (what it held back is still arriving): a resume waits on for its
 * owner's answer meanwhile (bus_node.c, resume.c). */
int ar__sig_bus_congested(ar__sig_srv_t *srv);
/* worker_proc.c: a key of this kernel and pid namespace (0: unknown); the state letter of
 * process pid (/proc/<pid>/stat: R, S, D, Z, T, ...; 0 when it is gone) and its start time; and
 * whether pid is still the process that started at start, running or sleeping. */
uint64_t ar__sig_host_key(void);
char ar__sig_proc_state(int pid, uint64_t *start);
int ar__sig_proc_running(int pid, uint64_t start);
uint64_t ar__sig_pick_backup(ar__sig_srv_t *srv, uint64_t exclude);
/* 1 when worker id is alive, not draining, and on another node: a backup that survives us. */
int ar__sig_backup_remote(ar__sig_srv_t *srv, uint64_t id);
/* 1 when a live, undrained worker of another node could back a session up. */
int ar__sig_remote_backup_exists(ar__sig_srv_t *srv);
/* bus_turn.c: between these, worker-to-worker messages about a session wait behind the record
 * updates made meanwhile, so that those share bus messages (a promotion walk: an update, then
 * an adopt, for each session); the end sends everything held. */
void ar__sig_bus_hold_begin(ar__sig_srv_t *srv);
void ar__sig_bus_hold_end(ar__sig_srv_t *srv);
/* Applies a record update (from the bus or local). */
void ar__sig_rec_apply(ar__sig_srv_t *srv, void *json_obj);

/* rec_wire.c: what a record update says about who holds a session, read from its JSON or
 * from the fixed layout the bus sends such an update in when it says nothing else
 * (docs/signal.md, "Record updates on the wire"). */
#define AR__SIG_UPD_MAGIC 0x01 /* a JSON update begins with '{' */
#define AR__SIG_UPD_LEN (34 + AR__SIG_PEER_LEN)
/* Several updates in one bus message (bus_turn.c): this byte, then 2 to AR__SIG_UPD_BATCH_MAX
 * updates in the fixed layout, each whole (its own AR__SIG_UPD_MAGIC first). */
#define AR__SIG_UPD_BATCH 0x02
#define AR__SIG_UPD_BATCH_MAX 128
typedef struct {
    uint64_t origin, owner, backup;
    uint32_t home[2];
    char peer[AR__SIG_PEER_LEN + 1];
    unsigned has_home : 1, has_away : 1, away : 1, has_own : 1, has_bk : 1;
    unsigned pr : 1, re : 1, del : 1;
} ar__sig_upd_t;
/* -1 without "o" or a peer id of the right length in "p". */
int ar__sig_upd_from_json(const void *json_obj, ar__sig_upd_t *u);
/* o in the fixed layout, 0; -1 when o has a field the layout has no place for. */
int ar__sig_upd_compact(const void *json_obj, uint8_t out[AR__SIG_UPD_LEN]);
/* -1 when d is not an update in the fixed layout. */
int ar__sig_upd_read(const uint8_t *d, size_t len, ar__sig_upd_t *u);
/* An update in the fixed layout, from the bus (rec.c). */
void ar__sig_rec_apply_compact(ar__sig_srv_t *srv, const uint8_t *d, size_t len);
/* How many updates d holds when it is a batch (AR__SIG_UPD_BATCH), else 0 (rec_wire.c). */
size_t ar__sig_upd_batch_count(const uint8_t *d, size_t len);
/* A batch from the bus: each update applied in order, as if it had come alone; nothing when d
 * is no batch (rec.c). */
void ar__sig_rec_apply_batch(ar__sig_srv_t *srv, const uint8_t *d, size_t len);

/* move.c: a resume moved to the worker of this node that owns its session, or backs it up
 * while its owner is on another node (docs/signal.md, "Resume on the owner's worker"). start:
 * the socket other workers reach this one by (AR_ESYS: none, resumes go over the bus); resume:
 * called with a hello's resume token and its text, 1 when cn went to that worker (cn is gone
 * here), 0 when the resume stays here. */
int ar__sig_move_start(ar__sig_srv_t *srv);
/* The worker of this node a resume of r moves to (its owner, or its backup while the owner is on
 * another node), 0 for none. */
uint64_t ar__sig_move_target(ar__sig_srv_t *srv, const ar__sig_rec_t *r);
void ar__sig_move_stop(ar__sig_srv_t *srv);
/* The header before a moved connection's hello, as a worker writes it (key: the address the
 * per-address cap counts the client under, NULL when not counted); its size returned. */
#define AR__SIG_MOVE_HEAD 24
size_t ar__sig_move_head(uint8_t out[AR__SIG_MOVE_HEAD], const uint8_t *key);
/* Takes the connections waiting on link sfd, at most max: what the loop runs when it is
 * readable; the bus fuzzer calls it on a socketpair of its own. How many came, or -1 once the
 * other end has gone (the caller closes sfd). */
typedef struct ar__sig_moves_s ar__sig_moves_t;
int ar__sig_move_take(ar__sig_srv_t *srv, int sfd, int max);
int ar__sig_move_resume(ar__sig_conn_t *cn, const char *resume, size_t rlen, const uint8_t *hello,
                        size_t hlen);

/* invite.c: one-time invite links across the jurisdiction (docs/signal.md, "Invite links") */
#define AR__SIG_INVITE_USED_TEXT "this invitation link was already used"
/* 1 when this invitee token was used for a session already (or nothing can be remembered). */
int ar__sig_invite_used(ar__sig_srv_t *srv, const ar_token_claims_t *cl);
/* Marks the token used by session peer and tells every worker: 0, or AR_EPERM (fail closed). */
int ar__sig_invite_claim(ar__sig_srv_t *srv, const ar_token_claims_t *cl, const char *peer);
/* A claim from the bus (ar.<jur>.inv.<hash>): a later use of a used token is ended. */
void ar__sig_invite_apply(ar__sig_srv_t *srv, const char *data, size_t len);
void ar__sig_invites_free(ar__sig_srv_t *srv);
/* The hex key a token subject is known by on the bus, and the session holding it (tests). */
void ar__sig_invite_key(const char *sub, char hex[33]);
const char *ar__sig_invite_holder(ar__sig_srv_t *srv, const char *sub);
/* Ended one-time rooms, across the jurisdiction (invite.c; docs/signal.md, "Ended rooms"):
 * mark one (kept 30 minutes, replicated), ask whether one was, count those remembered.
 * Bus messages: ar__sig_invite_apply (the same subjects, with "end": true). */
void ar__sig_room_mark_ended(ar__sig_srv_t *srv, const char *room);
int ar__sig_room_ended(ar__sig_srv_t *srv, const char *room);
size_t ar__sig_rooms_ended_count(const ar__sig_srv_t *srv);
#define AR__SIG_ENDED_MAX (1u << 19) /* markers per worker; at the cap the oldest goes */
/* The hex key a room is known by on the bus (tests). */
void ar__sig_room_ended_key(const char *room, char hex[33]);
/* Each one-time room open here in which this worker owns a member and whose marker it holds is
 * ended for those members (ar__sig_room_end, mine), once (unless ended here before): after a
 * new marker (invite.c, "A room open here when its marker comes"). */
void ar__sig_rooms_ended_sweep(ar__sig_srv_t *srv);
/* At a moment this worker has come to own s (a hand-over taken, a resume finished, a record
 * update naming us, a promotion): s alone is ended (ar__sig_room_end_member) when its room is a
 * one-time room whose marker is held, even one ended here before. Sends through the local
 * queue and moves staff out of the room (which may go): the caller reads neither s's room nor
 * its members' places after it, and calls it outside any walk of rooms or areas. s itself
 * stays. */
void ar__sig_sess_check_ended(ar__sig_srv_t *srv, ar__sig_sess_t *s);
/* The first 4 bytes of that key (a room's etag, set when it is made: index.c). */
void ar__sig_room_ended_tag(const char *room, uint8_t tag[4]);
/* Catching up on the rooms ended before this worker listened (invite.c, "Catching up"). Times
 * are ar__sig_rooms_ended_clock()'s (monotonic ms). begin: the bus started (epoch: the
 * subscribing connection's, bus_pub.c), ask after hear_ms. step: asks or gives up when due;
 * the ms until the next step, or -1. sync: the same, after beginning a new round if the
 * connection is up in another epoch (back after a cut); 1 while new sessions must wait.
 * cover: seconds this worker's markers have been complete (heartbeat "ec"; 0 while catching
 * up). msg: a proc message "ended?" (answered) or "ended" (a page taken): 1 if it was one. */
uint64_t ar__sig_rooms_ended_clock(void);
void ar__sig_rooms_ended_begin(ar__sig_srv_t *srv, uint64_t epoch, uint64_t now_ms,
                               unsigned hear_ms);
int ar__sig_rooms_ended_step(ar__sig_srv_t *srv, uint64_t now_ms);
/* 1 while a catch-up round is under way (step then has something to do), else 0. */
int ar__sig_rooms_ended_waiting(const ar__sig_srv_t *srv);
int ar__sig_rooms_ended_sync(ar__sig_srv_t *srv, uint64_t epoch, int up, uint64_t now_ms);
uint32_t ar__sig_rooms_ended_cover(const ar__sig_srv_t *srv);
/* The publishing connection as the loop sees it now: its epoch (a count of its returns) and
 * whether publications go out. Back in a new epoch: this worker's recent markers are sent again
 * (invite.c, "Markers a cut may have lost"); the subscribing connection's return does the same
 * and asks every worker for theirs (ar__sig_rooms_ended_sync). A proc message "ended!" (a
 * worker's own markers) is taken by ar__sig_rooms_ended_msg too, and on inv.resend by
 * ar__sig_invite_apply. */
void ar__sig_rooms_ended_pub(ar__sig_srv_t *srv, uint64_t pepoch, int up, uint64_t now_ms);
int ar__sig_rooms_ended_msg(ar__sig_srv_t *srv, void *json_obj);
#define AR__SIG_ENDED_HEAR_MS 1200u /* at the start: heartbeats heard before asking */

/* refresh.c: a staff session's token renewed in place (protocol.md 5.15) */
/* refresh {token}: verified as at hello, the same subject and role, then the session's claims
 * replaced (areas no longer allowed unsubscribed, a room no longer allowed left) and
 * `refreshed {exp}` sent; refused with an error otherwise, the connection kept. */
void ar__sig_on_refresh(ar__sig_conn_t *cn, ar_sig_msg_t *m);
/* Unsubscribes s's record from the waiting areas its claims no longer allow (after a refresh
 * or a resume with a new token): 1 when it dropped any. */
int ar__sig_claims_prune(ar__sig_srv_t *srv, ar__sig_sess_t *s);
/* Takes s (a staff session this worker owns) out of its room when its claims would no longer
 * let it join it (ar__sig_join_check), after a refresh or a resume with a new token: its client
 * gets peer_left about itself with reason "revoked", then it leaves as with `leave`
 * (ar__sig_room_leave: the others get peer_left "removed", every worker the record update, a
 * "seen by" mark it held moves or goes). 1 when it took s out; 0 otherwise (nothing sent). */
int ar__sig_claims_evict(ar__sig_srv_t *srv, ar__sig_sess_t *s);
/* The once-a-second sweep (srv.c ar__sig_srv_tick) for a live connection: closes a staff session
 * whose token expired more than the token-allowance ago at wall (Unix seconds) with error
 * token_expired and close 4001 (the session ends). 1 when it closed cn. */
int ar__sig_token_sweep(ar__sig_srv_t *srv, ar__sig_conn_t *cn, int64_t wall);

/* flows.c / area.c: what each client message does */
void ar__sig_handle(ar__sig_conn_t *cn, ar_sig_msg_t *m);
/* Sends a server message to a peer (numbered at its owner); seq is set to 0 here. Returns the
 * length of the frame built (before its seq and fid), or AR_ETOOBIG / AR_EINVAL when the
 * message could not be built (logged, nothing sent). */
int ar__sig_to(ar__sig_srv_t *srv, const char *peer, ar_sig_msg_t *m, uint8_t action);
/* A patient's or invitee's m into a one-time room that was ended: error not_found, close 4007
 * (its token opens nothing else; protocol.md 5.13). */
void ar__sig_refuse_ended(ar__sig_conn_t *cn, const ar_sig_msg_t *m);
/* Whether session s's claims let it be in room id (room: it, NULL when not open), as a join
 * checks it (flows.c; the room's space aside): AR__SIG_JOIN_OK, or how the join is refused:
 * forbidden, not_found, not_found with close 4007 (ENDED: "the consultation has ended";
 * NOT_OPEN: an invitee's room not open). Sends nothing. */
enum {
    AR__SIG_JOIN_OK = 0,
    AR__SIG_JOIN_FORBIDDEN,
    AR__SIG_JOIN_NOT_FOUND,
    AR__SIG_JOIN_ENDED,
    AR__SIG_JOIN_NOT_OPEN
};
int ar__sig_join_check(ar__sig_srv_t *srv, const ar__sig_sess_t *s, const ar__sig_room_t *room,
                       const char *id);
/* The sender's room, when it may run the call there (quality, end, remove: staff with a role
 * that sees patients in its clinic, or any staff in a persistent room); else m is refused
 * (bad_state out of a room, forbidden): NULL. */
ar__sig_room_t *ar__sig_room_to_run(ar__sig_conn_t *cn, const ar_sig_msg_t *m);
/* Removes the members ranked after the fourth (by join time, then peer id) that this worker
 * owns: two joins racing on two nodes can both pass the fourth-place check (flows.c). */
void ar__sig_room_enforce(ar__sig_srv_t *srv, ar__sig_room_t *room);
void ar__sig_room_leave(ar__sig_srv_t *srv, ar__sig_rec_t *r, int reason);
/* What `end` does to a room (protocol.md 5.13): every member is sent `ended` (its owner ends a
 * patient's or an invitee's session with 4007, and its record with the patient's data goes),
 * a patient leaves its queue, staff leave the room (room may be freed: not read after). mine:
 * only the members this worker owns (a room open here whose marker came later, invite.c). The
 * caller marks the room ended when it should be. */
void ar__sig_room_end(ar__sig_srv_t *srv, ar__sig_room_t *room, int mine);
/* The same for member x alone (a session this worker came to own in a room it knows ended):
 * `ended` to x, a patient out of its queue, staff out of the room. */
void ar__sig_room_end_member(ar__sig_srv_t *srv, ar__sig_rec_t *x);
void ar__sig_queue_remove(ar__sig_srv_t *srv, ar__sig_rec_t *p, int reason);
/* Member `left` has just left patient p's room (on left's owner, flows.c ar__sig_room_leave):
 * if p was marked as seen by it, the mark moves to the staff member left in the room who
 * joined first, or is cleared (seen: waiting again; held: still held), and p, its subscribers
 * and every worker are told (area.c). Anything else: nothing. */
void ar__sig_seen_left(ar__sig_srv_t *srv, ar__sig_rec_t *p, const ar__sig_rec_t *left);
/* Applying a record update from another worker: queue deltas for this worker's subscribers the
 * sender did not address (docs/signal.md, "Queue snapshot and deltas"); `after` 0 before the
 * update's area fields are applied (removals), 1 after (additions, updates). */
void ar__sig_queue_catchup(ar__sig_srv_t *srv, ar__sig_rec_t *p, void *json_obj, int after);
void ar__sig_area_handle(ar__sig_conn_t *cn, ar_sig_msg_t *m);
/* Queue snapshots sent as the subscriber's connection drains (area.c, docs/signal.md "Queue
 * snapshot and deltas"): the net layer's writable callback for cn (srv.c); patient i of area a
 * has left it (index.c, before the area may go); r's subscription to a ends (index.c); cn is
 * closed (srv.c). The last three free what a snapshot still to send held. */
void ar__sig_snap_writable(ar__sig_conn_t *cn);
void ar__sig_snap_removed(ar__sig_srv_t *srv, ar__sig_area_t *a, size_t i);
void ar__sig_snap_unsub(ar__sig_srv_t *srv, const ar__sig_rec_t *r, const ar__sig_area_t *a);
void ar__sig_snap_conn_gone(ar__sig_srv_t *srv, const ar__sig_conn_t *cn);
/* Snapshots still being sent on this worker (tests; the metric counts them too). */
size_t ar__sig_snaps_pending(const ar__sig_srv_t *srv);
/* remove.c: staff take one member out of their room (protocol.md 5.7). on_remove checks and
 * sends the member a frame with AR__SIG_ACT_REMOVED that names the room and the member's stay in
 * it; its owner, once it has numbered and sent that frame, calls removed_apply if the member is
 * still in that stay (removal_for below): the member leaves the room, and an invitee's
 * connection is closed with 4015 and its session ended (s is then freed). */
void ar__sig_on_remove(ar__sig_conn_t *cn, ar_sig_msg_t *m);
void ar__sig_removed_apply(ar__sig_srv_t *srv, ar__sig_sess_t *s);
/* What a removal frame (frame, len: as the owner got it) does to s now: HERE, it takes s out of
 * the room it names, the one s is in, in the stay it names (its join time there; a frame from a
 * worker before stays names none and is from the room's current stay, as then); an invitee:
 * always, its token opens that room alone. ELSEWHERE, s is in another room, or in another stay
 * in that room, or none (it left the named one and maybe joined another, or the same again,
 * within the bus's delay): it is only delivered. UNNAMED, it names no room (sent by a worker
 * from before 2026-11-30): applied to the room s is in now, as then. */
enum { AR__SIG_RM_ELSEWHERE = 0, AR__SIG_RM_HERE = 1, AR__SIG_RM_UNNAMED = 2 };
int ar__sig_removal_for(const ar__sig_sess_t *s, const char *frame, size_t len);
/* r's stay in its room as joined.stay and a removal's peer_left.stay carry it, NUL-terminated in
 * out: its length, 0 when r is in no room (out then untouched). */
#define AR__SIG_STAY_LEN 21
size_t ar__sig_stay_text(const ar__sig_rec_t *r, char out[AR__SIG_STAY_LEN]);
/* sess.c: s's numbered frames' removals count as applied (their action becomes NONE): a backup
 * copy whose record changed room after them (its owner publishes the room change after the
 * numbered copies, bus_nums.c), or a promoted copy that applied one. */
void ar__sig_sess_removals_settled(ar__sig_sess_t *s);
/* Roles (A1): "provider" and "admin" run calls; "receptionist" manages the queue only. */
int ar__sig_can_call(const ar__sig_claims_t *cl, const char *clinic);
int ar__sig_can_queue(const ar__sig_claims_t *cl, const char *clinic);
/* A compact copy of verified claims (ar_malloc'd; free with ar__sig_claims_free). */
ar__sig_claims_t *ar__sig_claims_new(const ar_token_claims_t *c);
void ar__sig_claims_free(ar__sig_claims_t *c);
void ar__sig_announce_join(ar__sig_srv_t *srv, ar__sig_rec_t *r);
/* Whether the json array of strings json_list names peer (a record's "rt", "lt"). */
int ar__sig_named(const void *json_list, const char *peer);
/* r's record, from the bus, put it in a room here: peer_joined about r to the members this
 * worker owns that its joiner's worker did not tell (told: the record's "rt", a json array). */
void ar__sig_announce_late(ar__sig_srv_t *srv, ar__sig_rec_t *r, const void *told);
/* peer_left about r (reason) to n peers: the others in the room r leaves on its own worker
 * (ar__sig_room_leave), r itself when a refresh took its room away (refresh.c), or, r's record
 * from the bus having taken it out of a room here, the members this worker owns that r's
 * worker did not tell (rec.c picks them: "lt"). */
void ar__sig_announce_left(ar__sig_srv_t *srv, const ar__sig_rec_t *r,
                           const char (*peers)[AR__SIG_PEER_LEN + 1], size_t n, int reason);
void ar__sig_rec_publish(ar__sig_srv_t *srv, ar__sig_rec_t *r, const char *fields);

#endif
