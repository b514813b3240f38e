/*
 * Signalling protocol codec (docs/protocol.md): JSON text frames over WebSocket, subprotocol
 * "anteroom.v1". No I/O, no globals beyond const tables.
 *
 * ar_sig_parse() turns one text frame into a typed message (a tagged union, ar_sig_msg_t),
 * validating it against the declarative field table of its type and direction; on failure it
 * fills an ar_sig_err_t with a protocol error code and a short description that names what is
 * wrong (never the offending value, so it holds nothing personal) for the server to send back.
 * ar_sig_build() writes a message as a frame, checked against the same table, so a round trip
 * through build and parse yields the same message.
 *
 * Ownership: a parsed message's strings point into memory the message owns (the jansson tree
 * and the lists the parser allocated); they live until ar_sig_msg_free(). A message filled in by
 * hand for ar_sig_build() points wherever the caller likes and is never freed by the codec.
 */
#ifndef AR_PROTO_SIGNAL_H
#define AR_PROTO_SIGNAL_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>

#define AR_SIG_VERSION 1
#define AR_SIG_SUBPROTOCOL "anteroom.v1"
#define AR_SIG_FRAME_MAX 65536 /* bytes of one client frame */
#define AR_SIG_OUT_MAX 66560   /* bytes of one server frame: a relayed SDP gains seq/from */
#define AR_SIG_SDP_MAX 61440   /* bytes of an SDP after JSON unescaping */
#define AR_SIG_FID_LEN 22      /* a session-level frame's id: base64url of 128 bits */
#define AR_SIG_ID_MAX 63       /* peer, room, clinic, area, question ids, resume tokens */
#define AR_SIG_TOKEN_MAX 2048  /* a capability token (docs/tokens.md) */
#define AR_SIG_NAME_MAX 64     /* a display name, bytes of UTF-8 */
#define AR_SIG_ANSWER_MAX 200  /* one answer to a clinic's question */
#define AR_SIG_ANSWERS_MAX 4   /* answers per arrival */
#define AR_SIG_TEXT_MAX 500    /* a staff message to a waiting patient */
#define AR_SIG_CAND_MAX 512    /* one ICE candidate line */
#define AR_SIG_UFRAG_MAX 256   /* RFC 8839: ice-ufrag is at most 256 characters */
#define AR_SIG_MID_MAX 32      /* a media stream id (sdpMid) */
#define AR_SIG_PEERS_MAX 3     /* others in a room: four participants at most */
#define AR_SIG_ENTRIES_MAX 32  /* queue entries per snapshot frame */
#define AR_SIG_URLS_MAX 8      /* drain: other nodes offered */
#define AR_SIG_URL_MAX 256     /* one wss:// URL */
#define AR_SIG_INT_MAX 9007199254740991LL /* 2^53-1: exact in JavaScript numbers */
#define AR_SIG_NONE (-1)                  /* an absent optional integer */

/* Protocol error codes sent in "error" frames: code, name, meaning. */
#define AR_SIG_ERR_MAP(X)                                                                          \
    X(BAD_JSON, 1, "bad_json", "the frame is not valid JSON in UTF-8")                             \
    X(BAD_FRAME, 2, "bad_frame", "the frame is not a JSON object")                                 \
    X(TOO_BIG, 3, "too_big", "the frame exceeds its size limit")                                   \
    X(BAD_VERSION, 4, "bad_version", "missing or unsupported protocol version")                    \
    X(UNKNOWN_TYPE, 5, "unknown_type", "missing or unknown message type")                          \
    X(BAD_FIELD, 6, "bad_field", "a field is missing, unknown, of the wrong type or too long")     \
    X(NOT_AUTHENTICATED, 7, "not_authenticated", "the first frame must be hello")                  \
    X(BAD_TOKEN, 8, "bad_token", "the token is malformed, unsigned or for another service")        \
    X(TOKEN_EXPIRED, 9, "token_expired", "the token has expired")                                  \
    X(FORBIDDEN, 10, "forbidden", "the token does not allow this")                                 \
    X(NOT_FOUND, 11, "not_found", "no such room, area or peer")                                    \
    X(ROOM_FULL, 12, "room_full", "the room already has four participants")                        \
    X(RATE_LIMITED, 13, "rate_limited", "too many messages; slow down")                            \
    X(BAD_STATE, 14, "bad_state", "not valid now (e.g. an offer before joining a room)")           \
    X(CONFLICT, 15, "conflict", "someone else already did this (e.g. took the patient)")           \
    X(TOO_MANY_CANDIDATES, 16, "too_many_candidates", "candidate limit for this negotiation")      \
    X(RESUME_FAILED, 17, "resume_failed", "the session cannot be resumed; a new one started")      \
    X(QUEUE_FULL, 18, "queue_full", "the waiting area is full")                                    \
    X(CLOSED, 19, "closed", "the waiting area is closed now")                                      \
    X(INTERNAL, 20, "internal", "the server failed; try again")                                    \
    X(LOST, 21, "lost", "messages for this session were lost; resynchronise")

typedef enum {
#define AR__SIG_ERR_ENUM(name, num, str, msg) AR_SIG_E_##name = (num),
    AR_SIG_ERR_MAP(AR__SIG_ERR_ENUM)
#undef AR__SIG_ERR_ENUM
} ar_sig_errcode_t;

/* WebSocket close codes (4000-4999 are for applications, RFC 6455 section 7.4.2). */
#define AR_SIG_CLOSE_MAP(X)                                                                        \
    X(BAD_TOKEN, 4001, "bad_token", "hello carried a bad, expired or wrong token")                 \
    X(HANDSHAKE_TIMEOUT, 4002, "handshake_timeout", "no hello within the handshake timeout")       \
    X(GARBAGE, 4003, "garbage", "too many invalid frames")                                         \
    X(RATE_LIMIT, 4004, "rate_limit", "the message rate stayed over the limit")                    \
    X(ROOM_FULL, 4005, "room_full", "an invitee's room already has four participants")             \
    X(DRAINED, 4006, "drained", "this node is draining; resume on a URL from drain")               \
    X(ENDED, 4007, "ended", "the consultation ended; the room is gone")                            \
    X(TOO_BIG, 4008, "too_big", "a frame exceeded the size limit")                                 \
    X(IDLE, 4009, "idle", "nothing received within the idle timeout")                              \
    X(REPLACED, 4010, "replaced", "the session was resumed on another connection")                 \
    X(SLOW_READER, 4011, "slow_reader", "the client did not read; its send queue overflowed")      \
    X(BAD_VERSION, 4012, "bad_version", "the client speaks another protocol version")              \
    X(NOT_BINARY, 4013, "not_text", "a binary frame; the protocol uses text frames only")          \
    X(SHUTDOWN, 4014, "shutdown", "the server is stopping; reconnect and resume")                  \
    X(REMOVED, 4015, "removed", "removed from the room by staff, or the transfer moved them")      \
    X(BUSY, 4016, "busy", "the node is behind on its bus; retry later")

typedef enum {
#define AR__SIG_CLOSE_ENUM(name, num, str, msg) AR_SIG_CLOSE_##name = (num),
    AR_SIG_CLOSE_MAP(AR__SIG_CLOSE_ENUM)
#undef AR__SIG_CLOSE_ENUM
} ar_sig_close_t;

/* Message types. Some travel one way only; offer, answer, candidate, ping, pong, message, hold
 * and quality travel both ways with a different table per direction. */
#define AR_SIG_TYPE_MAP(X)                                                                         \
    X(HELLO, "hello")                                                                              \
    X(WELCOME, "welcome")                                                                          \
    X(REFRESH, "refresh")                                                                          \
    X(REFRESHED, "refreshed")                                                                      \
    X(JOIN, "join")                                                                                \
    X(JOINED, "joined")                                                                            \
    X(LEAVE, "leave")                                                                              \
    X(PEER_JOINED, "peer_joined")                                                                  \
    X(PEER_LEFT, "peer_left")                                                                      \
    X(ARRIVE, "arrive")                                                                            \
    X(WAIT, "wait")                                                                                \
    X(SUBSCRIBE, "subscribe")                                                                      \
    X(UNSUBSCRIBE, "unsubscribe")                                                                  \
    X(QUEUE, "queue")                                                                              \
    X(QUEUE_ADD, "queue_add")                                                                      \
    X(QUEUE_UPDATE, "queue_update")                                                                \
    X(QUEUE_REMOVE, "queue_remove")                                                                \
    X(TAKE, "take")                                                                                \
    X(HOLD, "hold")                                                                                \
    X(TRANSFER, "transfer")                                                                        \
    X(MESSAGE, "message")                                                                          \
    X(OFFER, "offer")                                                                              \
    X(ANSWER, "answer")                                                                            \
    X(CANDIDATE, "candidate")                                                                      \
    X(QUALITY, "quality")                                                                          \
    X(END, "end")                                                                                  \
    X(ENDED, "ended")                                                                              \
    X(ERROR, "error")                                                                              \
    X(PING, "ping")                                                                                \
    X(PONG, "pong")                                                                                \
    X(ACK, "ack")                                                                                  \
    X(DRAIN, "drain")                                                                              \
    X(BYE, "bye")                                                                                  \
    X(REMOVE, "remove")                                                                            \
    X(REDACTED, "redacted")

typedef enum {
    AR_SIG_NONE_TYPE = 0,
#define AR__SIG_TYPE_ENUM(name, str) AR_SIG_##name,
    AR_SIG_TYPE_MAP(AR__SIG_TYPE_ENUM)
#undef AR__SIG_TYPE_ENUM
        AR_SIG_TYPE_COUNT
} ar_sig_type_t;

typedef enum { AR_SIG_FROM_CLIENT = 0, AR_SIG_FROM_SERVER = 1 } ar_sig_dir_t;

/* Enumerated string fields are stored as these numbers; 0 means absent. */
typedef enum { AR_SIG_ROLE_PATIENT = 1, AR_SIG_ROLE_STAFF, AR_SIG_ROLE_INVITEE } ar_sig_role_t;
typedef enum { AR_SIG_Q_LOW = 1, AR_SIG_Q_STANDARD, AR_SIG_Q_HIGH } ar_sig_profile_t;
typedef enum { AR_SIG_ST_WAITING = 1, AR_SIG_ST_SEEN, AR_SIG_ST_HOLD } ar_sig_status_t;
/* peer_left reasons. REVOKED: only about the recipient itself, a staff session taken out of its
 * room because its refreshed token no longer allows it there (protocol.md 5.15). */
typedef enum {
    AR_SIG_LEFT_LEFT = 1,
    AR_SIG_LEFT_DROPPED,
    AR_SIG_LEFT_REMOVED,
    AR_SIG_LEFT_REVOKED
} ar_sig_left_t;
/* queue_remove reasons */
typedef enum { AR_SIG_GONE_LEFT = 1, AR_SIG_GONE_TRANSFERRED, AR_SIG_GONE_ENDED } ar_sig_gone_t;
/* ended reasons */
typedef enum { AR_SIG_END_ENDED = 1, AR_SIG_END_EXPIRED } ar_sig_end_t;

/* A string: p is NULL when the field is absent. Not NUL-terminated when built by hand. */
typedef struct ar_sig_str_s {
    const char *p;
    size_t len;
} ar_sig_str_t;

/* A list of items of the element type its field names (see AR_SIG_ITEM). */
typedef struct ar_sig_list_s {
    void *items;
    size_t count;
} ar_sig_list_t;

#define AR_SIG_ITEM(list, type, i) (&((type *)(list).items)[i])

typedef struct ar_sig_answer_s {
    ar_sig_str_t q; /* the clinic's question id */
    ar_sig_str_t a; /* what the patient typed */
} ar_sig_answer_t;

/* A participant as others see it (joined.peers, peer_joined). */
typedef struct ar_sig_peer_s {
    ar_sig_str_t peer;
    int role; /* ar_sig_role_t */
    ar_sig_str_t name;
    ar_sig_str_t lang; /* an interpreter's BCP 47 tag, from the invite token */
    int hold;          /* 1 when on hold */
} ar_sig_peer_t;

/* A waiting patient as the clinic's staff see them. */
typedef struct ar_sig_entry_s {
    ar_sig_str_t peer;
    ar_sig_str_t name;
    ar_sig_list_t answers; /* of ar_sig_answer_t */
    int64_t since;         /* Unix seconds of arrival */
    int status;            /* ar_sig_status_t */
    ar_sig_str_t by;       /* the peer id of the staff member seeing them */
    ar_sig_str_t by_name;
} ar_sig_entry_t;

typedef struct ar_sig_msg_s {
    int type;    /* ar_sig_type_t */
    int64_t id;  /* client request id echoed in errors, or AR_SIG_NONE */
    int64_t seq; /* server frames: 0 for connection-level, >= 1 session-level */
    /* server frames, session-level only: the frame id (22 characters of base64url; the client
     * drops a frame whose fid it has processed, docs/protocol.md 5.10.1), or empty */
    ar_sig_str_t fid;
    union {
        struct {
            ar_sig_str_t token, name, resume;
            int64_t last_seq;
        } hello;
        struct {
            ar_sig_str_t token; /* refresh: the new token (docs/protocol.md 5.15) */
            int64_t exp;        /* refreshed: the expiry the session now has, Unix seconds */
        } refresh;              /* refresh and refreshed */
        struct {
            ar_sig_str_t peer, resume;
            int role; /* ar_sig_role_t */
            int resumed;
            int64_t last_seq, grace, ping, frame_max;
        } welcome;
        struct {
            ar_sig_str_t room;
            ar_sig_list_t peers; /* of ar_sig_peer_t */
            int profile;         /* ar_sig_profile_t */
            /* joined, optional: the recipient's stay in the room, an opaque id that a removal
             * from that stay names too (peer_left.stay) */
            ar_sig_str_t stay;
        } join; /* join (room only) and joined */
        ar_sig_peer_t peer_joined;
        struct {
            ar_sig_str_t peer;
            int reason; /* ar_sig_left_t */
            /* Optional: the room the member left, set on the removal a member gets about
             * itself (protocol.md 5.7.1), so that it is not taken for one from a later room. */
            ar_sig_str_t room;
            /* Optional, with room: the member's stay in that room that the removal is from (its
             * joined.stay), so that it is not taken for one from a later stay in the same room. */
            ar_sig_str_t stay;
        } peer_left;
        struct {
            ar_sig_str_t clinic, area, name;
            ar_sig_list_t answers; /* of ar_sig_answer_t */
            int consent;
        } arrive;
        struct {
            ar_sig_str_t area;
            int status; /* ar_sig_status_t */
        } wait;
        struct {
            ar_sig_str_t clinic, area;
            ar_sig_list_t entries; /* of ar_sig_entry_t */
            int more;              /* 1: another snapshot frame follows */
            ar_sig_entry_t entry;  /* queue_add */
            ar_sig_str_t peer;     /* queue_update, queue_remove */
            int status;            /* queue_update: ar_sig_status_t */
            ar_sig_str_t by, by_name;
            int reason; /* queue_remove: ar_sig_gone_t */
        } queue;        /* subscribe, unsubscribe, queue, queue_add, queue_update, queue_remove */
        struct {
            ar_sig_str_t peer; /* "peer" or "to" */
            ar_sig_str_t area; /* transfer */
            ar_sig_str_t text; /* message */
            int on;            /* hold */
        } act;                 /* take, hold, transfer, message, remove */
        struct {
            ar_sig_str_t peer; /* "to" from a client, "from" from the server */
            ar_sig_str_t sdp;
            int restart; /* offer: 1 for an ICE restart */
        } sdp;           /* offer, answer */
        struct {
            ar_sig_str_t peer;      /* "to" / "from" */
            ar_sig_str_t candidate; /* "" marks the end of candidates */
            ar_sig_str_t mid, ufrag;
            int64_t mline;
        } cand;
        struct {
            int profile; /* ar_sig_profile_t */
            ar_sig_str_t by;
        } quality;
        struct {
            ar_sig_str_t room;
            int reason; /* ar_sig_end_t */
        } ended;
        struct {
            int64_t code; /* ar_sig_errcode_t */
            ar_sig_str_t name, text, about;
            int64_t ref; /* the failed request's id */
        } error;
        struct {
            int64_t t; /* an opaque number echoed by pong */
        } ping;        /* ping and pong */
        struct {
            int64_t seq;
        } ack;
        struct {
            ar_sig_list_t urls; /* of ar_sig_str_t */
            int64_t within;     /* seconds before this node closes the connection */
        } drain;
    } u;
    void *root_; /* the jansson tree of a parsed message, else NULL */
    int dir_;    /* the direction it was parsed in */
    /* With AR_SIG_PARSE_KEEP_SDP_JSON: the SDP as it came, still JSON-escaped (u.sdp.sdp points
     * here and is written back as is by ar_sig_build), owned by the message; else NULL. */
    char *sdp_json_;
    /* With AR_SIG_PARSE_BORROW and KEEP_SDP_JSON: the SDP as it came, still JSON-escaped, in the
     * caller's frame (u.sdp.sdp points here); not owned. Else NULL. */
    const char *sdp_raw_;
    /* Set by the flat parse (AR_SIG_PARSE_BORROW): the frame its strings point into, every one
     * of them checked against its row and either plain (printable ASCII without '"' or '\\',
     * written as it is) or the SDP kept as sent. ar_sig_build_relay copies such strings without
     * checking or escaping them again. Else NULL. */
    const char *flat_;
    size_t flat_len_;
} ar_sig_msg_t;

#define AR_SIG_ERR_TEXT 160

typedef struct ar_sig_err_s {
    int code;                   /* ar_sig_errcode_t, 0 when there is no protocol error */
    int type;                   /* the message type when it was recognised, else 0 */
    int64_t id;                 /* the request id when it could be read, else AR_SIG_NONE */
    char text[AR_SIG_ERR_TEXT]; /* e.g. "field 'sdp' exceeds 61440 bytes" */
} ar_sig_err_t;

/*
 * Points jansson's allocator at ar_malloc/ar_free (so allocation-failure tests reach the JSON
 * parser). Call once at start-up before any thread parses; calling it again is harmless.
 */
void ar_sig_init(void);

/*
 * Parses one text frame sent in direction dir. Returns 0 with *msg filled (release it with
 * ar_sig_msg_free), AR_EPARSE or AR_ETOOBIG with *err filled (the message needs no freeing), or
 * AR_ENOMEM. The frame need not be NUL-terminated.
 */
AR_MUST_CHECK int ar_sig_parse(ar_sig_dir_t dir, const char *frame, size_t len, ar_sig_msg_t *msg,
                               ar_sig_err_t *err);

/*
 * ar_sig_parse with flags. AR_SIG_PARSE_KEEP_SDP_JSON: an offer's or answer's SDP is checked
 * (the same rules, the same errors) but not decoded: msg->u.sdp.sdp then holds the JSON string's
 * content as sent, escapes and all, and ar_sig_build writes it back unchanged. For relaying,
 * where the SDP is only forwarded: it saves decoding and re-encoding kilobytes per message.
 */
#define AR_SIG_PARSE_KEEP_SDP_JSON 1u
/*
 * AR_SIG_PARSE_BORROW: the message may point into frame instead of copies, so frame must stay
 * unchanged until ar_sig_msg_free, and its strings are then not NUL-terminated (use their
 * lengths). A relayed offer, answer or candidate, an ack, a ping or a pong that is a flat
 * object is then read without jansson (flat.c): same rules, same values; any other frame, and
 * every frame the parse refuses, takes the full parse and gets the same answer as without it.
 */
#define AR_SIG_PARSE_BORROW 2u
AR_MUST_CHECK int ar_sig_parse2(ar_sig_dir_t dir, const char *frame, size_t len, unsigned flags,
                                ar_sig_msg_t *msg, ar_sig_err_t *err);

/* Releases what a parsed message owns; harmless on a message built by hand or zeroed. */
void ar_sig_msg_free(ar_sig_msg_t *msg);

/* Zeroes msg for building a message of this type: optional integers set to AR_SIG_NONE. */
void ar_sig_msg_init(ar_sig_msg_t *msg, ar_sig_type_t type);

/*
 * Writes msg as a compact JSON frame into out (NUL-terminated). Fields are checked against the
 * table for direction dir as the parser would check them. Returns the frame length, AR_EINVAL
 * when msg breaks a rule of its table, or AR_ETOOBIG when out (or the direction's frame limit)
 * is too small. Allocates nothing.
 */
AR_MUST_CHECK int ar_sig_build(ar_sig_dir_t dir, const ar_sig_msg_t *msg, char *out, size_t cap);

/*
 * The server frame relaying a client's offer, answer or candidate that the flat parse read
 * (ar_sig_parse2 with AR_SIG_PARSE_BORROW), its peer set to the sender ("to" becomes "from"),
 * seq 0 and no frame id: the same bytes ar_sig_build(AR_SIG_FROM_SERVER, msg, out, cap) writes,
 * members in its order, but each string still in the client's frame (msg->flat_) copied as it
 * is, since the parse checked it against the same limits and it needs no escape. The request id
 * is dropped, as the builder drops it. Any other string (the peer) is checked as the builder
 * checks it. Returns the frame length, AR_ETOOBIG as ar_sig_build would (out or AR_SIG_OUT_MAX
 * too small; nothing usable in out), or 0 when it does not apply (a message the full parse read,
 * built by hand, of another type, numbered, or a value the builder would refuse): the caller then
 * builds it with ar_sig_build, which gives the answer. Allocates nothing.
 */
AR_MUST_CHECK int ar_sig_build_relay(const ar_sig_msg_t *msg, char *out, size_t cap);

/*
 * Fills an "error" message (connection-level, seq 0) from a parse failure or a server refusal:
 * err->code's name, err->text (the code's standard meaning when empty), the type it concerns
 * and the request id. msg points into err, which must outlive it.
 */
void ar_sig_error_msg(ar_sig_msg_t *msg, const ar_sig_err_t *err);

/* Wire names; "?" for unknown values. */
const char *ar_sig_type_name(int type);
const char *ar_sig_err_name(int code);
const char *ar_sig_err_text(int code);
const char *ar_sig_close_name(int code);

#endif
