/*
 * The protocol, as data: one field table per message type and direction (docs/protocol.md has
 * the same tables in prose). To add a field, add a row; the parser, the builder, the tests that
 * walk these tables and the fuzzer pick it up.
 */
#include "internal.h"

#define M(m) offsetof(ar_sig_msg_t, u.m)
/* k: a string literal (its length is taken with sizeof); a list's element row uses ELEM. */
#define ROW(k, kind, fl, cs, off, lo, hi, vals, sub, needs)                                        \
    {                                                                                              \
        ("" k), (kind), (fl), (cs), (off), (lo), (hi), (vals), (sub), (needs), sizeof(k) - 1       \
    }
#define ELEM(kind, fl, cs, off, lo, hi)                                                            \
    {                                                                                              \
        NULL, (kind), (fl), (cs), (off), (lo), (hi), NULL, NULL, NULL, 0                           \
    }
#define S(k, fl, cs, off, lo, hi) ROW(k, AR__SIG_STR, fl, cs, off, lo, hi, NULL, NULL, NULL)
#define I(k, fl, off, lo, hi) ROW(k, AR__SIG_INT, fl, 0, off, lo, hi, NULL, NULL, NULL)
#define B(k, fl, off) ROW(k, AR__SIG_BOOL, fl, 0, off, 0, 1, NULL, NULL, NULL)
#define E(k, fl, off, vals) ROW(k, AR__SIG_ENUM, fl, 0, off, 0, 0, vals, NULL, NULL)
#define L(k, fl, off, lo, hi, sub) ROW(k, AR__SIG_LIST, fl, 0, off, lo, hi, NULL, sub, NULL)
#define O(k, fl, off, sub) ROW(k, AR__SIG_OBJ, fl, 0, off, 0, 0, NULL, sub, NULL)
#define TABLE(name, size)                                                                          \
    static const ar__sig_table_t name = {name##_f, sizeof(name##_f) / sizeof(name##_f[0]), size}
#define R AR__SIG_REQ
#define ID_MAX AR_SIG_ID_MAX
#define NMAX AR_SIG_NAME_MAX

static const char *const roles[] = {"patient", "staff", "invitee", NULL};
static const char *const profiles[] = {"low", "standard", "high", NULL};
static const char *const statuses[] = {"waiting", "seen", "hold", NULL};
static const char *const left_reasons[] = {"left", "dropped", "removed", "revoked", NULL};
static const char *const gone_reasons[] = {"left", "transferred", "ended", NULL};
static const char *const end_reasons[] = {"ended", "expired", NULL};

/* Messages without fields of their own (leave, end, bye; redacted, a frame whose body the
 * server wiped, protocol.md 5.13). */
static const ar__sig_table_t t_empty = {NULL, 0, 0};

/* ---- list elements and nested objects ---- */

static const ar__sig_field_t t_answer_f[] = {
    S("q", R, AR__CS_ID, offsetof(ar_sig_answer_t, q), 1, ID_MAX),
    S("a", R, AR__CS_NAME, offsetof(ar_sig_answer_t, a), 0, AR_SIG_ANSWER_MAX),
};
TABLE(t_answer, sizeof(ar_sig_answer_t));

static const ar__sig_field_t t_peer_f[] = {
    S("peer", R, AR__CS_ID, offsetof(ar_sig_peer_t, peer), 1, ID_MAX),
    E("role", R, offsetof(ar_sig_peer_t, role), roles),
    S("name", 0, AR__CS_NAME, offsetof(ar_sig_peer_t, name), 1, NMAX),
    S("lang", 0, AR__CS_LANG, offsetof(ar_sig_peer_t, lang), 2, 35),
    B("hold", 0, offsetof(ar_sig_peer_t, hold)),
};
TABLE(t_peer, sizeof(ar_sig_peer_t));

static const ar__sig_field_t t_entry_f[] = {
    S("peer", R, AR__CS_ID, offsetof(ar_sig_entry_t, peer), 1, ID_MAX),
    S("name", R, AR__CS_NAME, offsetof(ar_sig_entry_t, name), 1, NMAX),
    L("answers", 0, offsetof(ar_sig_entry_t, answers), 0, AR_SIG_ANSWERS_MAX, &t_answer),
    I("since", R, offsetof(ar_sig_entry_t, since), 0, AR_SIG_INT_MAX),
    E("status", R, offsetof(ar_sig_entry_t, status), statuses),
    S("by", 0, AR__CS_ID, offsetof(ar_sig_entry_t, by), 1, ID_MAX),
    S("by_name", 0, AR__CS_NAME, offsetof(ar_sig_entry_t, by_name), 1, NMAX),
};
TABLE(t_entry, sizeof(ar_sig_entry_t));

/* A list of bare strings: the element table's one row has no key. */
static const ar__sig_field_t t_url_f[] = {
    ELEM(AR__SIG_STR, R, AR__CS_URL, 0, 8, AR_SIG_URL_MAX),
};
TABLE(t_url, sizeof(ar_sig_str_t));

/* ---- client to server ---- */

static const ar__sig_field_t c_hello_f[] = {
    S("token", R, AR__CS_ID, M(hello.token), 1, AR_SIG_TOKEN_MAX),
    S("name", 0, AR__CS_NAME, M(hello.name), 1, NMAX),
    ROW("resume", AR__SIG_STR, 0, AR__CS_ID, M(hello.resume), 16, ID_MAX, NULL, NULL, "last_seq"),
    ROW("last_seq", AR__SIG_INT, 0, 0, M(hello.last_seq), 0, AR_SIG_INT_MAX, NULL, NULL, "resume"),
};
TABLE(c_hello, 0);

/* refresh (protocol.md 5.15): a staff session's new token, checked as hello's */
static const ar__sig_field_t c_refresh_f[] = {
    S("token", R, AR__CS_ID, M(refresh.token), 1, AR_SIG_TOKEN_MAX),
};
TABLE(c_refresh, 0);

static const ar__sig_field_t c_join_f[] = {
    S("room", R, AR__CS_ID, M(join.room), 1, ID_MAX),
};
TABLE(c_join, 0);

static const ar__sig_field_t c_arrive_f[] = {
    S("clinic", R, AR__CS_ID, M(arrive.clinic), 1, ID_MAX),
    S("area", R, AR__CS_ID, M(arrive.area), 1, ID_MAX),
    S("name", R, AR__CS_NAME, M(arrive.name), 1, NMAX),
    L("answers", 0, M(arrive.answers), 0, AR_SIG_ANSWERS_MAX, &t_answer),
    B("consent", R | AR__SIG_TRUE, M(arrive.consent)),
};
TABLE(c_arrive, 0);

/* subscribe and unsubscribe */
static const ar__sig_field_t c_area_f[] = {
    S("clinic", R, AR__CS_ID, M(queue.clinic), 1, ID_MAX),
    S("area", R, AR__CS_ID, M(queue.area), 1, ID_MAX),
};
TABLE(c_area, 0);

/* take, remove (protocol.md 5.7.1): one peer */
static const ar__sig_field_t c_take_f[] = {
    S("peer", R, AR__CS_ID, M(act.peer), 1, ID_MAX),
};
TABLE(c_take, 0);

static const ar__sig_field_t c_hold_f[] = {
    S("peer", R, AR__CS_ID, M(act.peer), 1, ID_MAX),
    B("on", R, M(act.on)),
};
TABLE(c_hold, 0);

static const ar__sig_field_t c_transfer_f[] = {
    S("peer", R, AR__CS_ID, M(act.peer), 1, ID_MAX),
    S("area", R, AR__CS_ID, M(act.area), 1, ID_MAX),
};
TABLE(c_transfer, 0);

static const ar__sig_field_t c_message_f[] = {
    S("to", R, AR__CS_ID, M(act.peer), 1, ID_MAX),
    S("text", R, AR__CS_TEXT, M(act.text), 1, AR_SIG_TEXT_MAX),
};
TABLE(c_message, 0);

static const ar__sig_field_t c_offer_f[] = {
    S("to", R, AR__CS_ID, M(sdp.peer), 1, ID_MAX),
    S("sdp", R, AR__CS_SDP, M(sdp.sdp), 1, AR_SIG_SDP_MAX),
    B("restart", 0, M(sdp.restart)),
};
TABLE(c_offer, 0);

static const ar__sig_field_t c_answer_f[] = {
    S("to", R, AR__CS_ID, M(sdp.peer), 1, ID_MAX),
    S("sdp", R, AR__CS_SDP, M(sdp.sdp), 1, AR_SIG_SDP_MAX),
};
TABLE(c_answer, 0);

static const ar__sig_field_t c_cand_f[] = {
    S("to", R, AR__CS_ID, M(cand.peer), 1, ID_MAX),
    S("candidate", R, AR__CS_ASCII, M(cand.candidate), 0, AR_SIG_CAND_MAX),
    S("mid", AR__SIG_NULL, AR__CS_ASCII, M(cand.mid), 1, AR_SIG_MID_MAX),
    I("mline", AR__SIG_NULL, M(cand.mline), 0, 255),
    S("ufrag", AR__SIG_NULL, AR__CS_ASCII, M(cand.ufrag), 1, AR_SIG_UFRAG_MAX),
};
TABLE(c_cand, 0);

static const ar__sig_field_t c_quality_f[] = {
    E("profile", R, M(quality.profile), profiles),
};
TABLE(c_quality, 0);

/* ping and pong, both directions */
static const ar__sig_field_t x_ping_f[] = {
    I("t", 0, M(ping.t), 0, AR_SIG_INT_MAX),
};
TABLE(x_ping, 0);

static const ar__sig_field_t c_ack_f[] = {
    I("seq", R, M(ack.seq), 0, AR_SIG_INT_MAX),
};
TABLE(c_ack, 0);

/* ---- server to client ---- */

static const ar__sig_field_t s_welcome_f[] = {
    S("peer", R, AR__CS_ID, M(welcome.peer), 1, ID_MAX),
    S("resume", R, AR__CS_ID, M(welcome.resume), 16, ID_MAX),
    E("role", R, M(welcome.role), roles),
    B("resumed", R, M(welcome.resumed)),
    I("last_seq", R, M(welcome.last_seq), 0, AR_SIG_INT_MAX),
    I("grace", R, M(welcome.grace), 0, 86400),
    I("ping", R, M(welcome.ping), 1, 3600),
    I("frame_max", R, M(welcome.frame_max), 1024, AR_SIG_FRAME_MAX),
};
TABLE(s_welcome, 0);

static const ar__sig_field_t s_refreshed_f[] = {
    I("exp", R, M(refresh.exp), 0, AR_SIG_INT_MAX),
};
TABLE(s_refreshed, 0);

static const ar__sig_field_t s_joined_f[] = {
    S("room", R, AR__CS_ID, M(join.room), 1, ID_MAX),
    L("peers", R, M(join.peers), 0, AR_SIG_PEERS_MAX, &t_peer),
    E("profile", R, M(join.profile), profiles),
    S("stay", 0, AR__CS_ID, M(join.stay), 1, ID_MAX),
};
TABLE(s_joined, 0);

static const ar__sig_field_t s_peer_joined_f[] = {
    S("peer", R, AR__CS_ID, M(peer_joined.peer), 1, ID_MAX),
    E("role", R, M(peer_joined.role), roles),
    S("name", 0, AR__CS_NAME, M(peer_joined.name), 1, NMAX),
    S("lang", 0, AR__CS_LANG, M(peer_joined.lang), 2, 35),
    B("hold", 0, M(peer_joined.hold)),
};
TABLE(s_peer_joined, 0);

static const ar__sig_field_t s_peer_left_f[] = {
    S("peer", R, AR__CS_ID, M(peer_left.peer), 1, ID_MAX),
    E("reason", R, M(peer_left.reason), left_reasons),
    S("room", 0, AR__CS_ID, M(peer_left.room), 1, ID_MAX),
    ROW("stay", AR__SIG_STR, 0, AR__CS_ID, M(peer_left.stay), 1, ID_MAX, NULL, NULL, "room"),
};
TABLE(s_peer_left, 0);

static const ar__sig_field_t s_wait_f[] = {
    S("area", R, AR__CS_ID, M(wait.area), 1, ID_MAX),
    E("status", R, M(wait.status), statuses),
};
TABLE(s_wait, 0);

static const ar__sig_field_t s_queue_f[] = {
    S("clinic", R, AR__CS_ID, M(queue.clinic), 1, ID_MAX),
    S("area", R, AR__CS_ID, M(queue.area), 1, ID_MAX),
    L("entries", R, M(queue.entries), 0, AR_SIG_ENTRIES_MAX, &t_entry),
    B("more", 0, M(queue.more)),
};
TABLE(s_queue, 0);

static const ar__sig_field_t s_queue_add_f[] = {
    S("clinic", R, AR__CS_ID, M(queue.clinic), 1, ID_MAX),
    S("area", R, AR__CS_ID, M(queue.area), 1, ID_MAX),
    O("entry", R, M(queue.entry), &t_entry),
};
TABLE(s_queue_add, 0);

static const ar__sig_field_t s_queue_update_f[] = {
    S("clinic", R, AR__CS_ID, M(queue.clinic), 1, ID_MAX),
    S("area", R, AR__CS_ID, M(queue.area), 1, ID_MAX),
    S("peer", R, AR__CS_ID, M(queue.peer), 1, ID_MAX),
    E("status", R, M(queue.status), statuses),
    S("by", 0, AR__CS_ID, M(queue.by), 1, ID_MAX),
    S("by_name", 0, AR__CS_NAME, M(queue.by_name), 1, NMAX),
};
TABLE(s_queue_update, 0);

static const ar__sig_field_t s_queue_remove_f[] = {
    S("clinic", R, AR__CS_ID, M(queue.clinic), 1, ID_MAX),
    S("area", R, AR__CS_ID, M(queue.area), 1, ID_MAX),
    S("peer", R, AR__CS_ID, M(queue.peer), 1, ID_MAX),
    E("reason", R, M(queue.reason), gone_reasons),
};
TABLE(s_queue_remove, 0);

static const ar__sig_field_t s_message_f[] = {
    S("text", R, AR__CS_TEXT, M(act.text), 1, AR_SIG_TEXT_MAX),
};
TABLE(s_message, 0);

static const ar__sig_field_t s_offer_f[] = {
    S("from", R, AR__CS_ID, M(sdp.peer), 1, ID_MAX),
    S("sdp", R, AR__CS_SDP, M(sdp.sdp), 1, AR_SIG_SDP_MAX),
    B("restart", 0, M(sdp.restart)),
};
TABLE(s_offer, 0);

static const ar__sig_field_t s_answer_f[] = {
    S("from", R, AR__CS_ID, M(sdp.peer), 1, ID_MAX),
    S("sdp", R, AR__CS_SDP, M(sdp.sdp), 1, AR_SIG_SDP_MAX),
};
TABLE(s_answer, 0);

static const ar__sig_field_t s_cand_f[] = {
    S("from", R, AR__CS_ID, M(cand.peer), 1, ID_MAX),
    S("candidate", R, AR__CS_ASCII, M(cand.candidate), 0, AR_SIG_CAND_MAX),
    S("mid", AR__SIG_NULL, AR__CS_ASCII, M(cand.mid), 1, AR_SIG_MID_MAX),
    I("mline", AR__SIG_NULL, M(cand.mline), 0, 255),
    S("ufrag", AR__SIG_NULL, AR__CS_ASCII, M(cand.ufrag), 1, AR_SIG_UFRAG_MAX),
};
TABLE(s_cand, 0);

static const ar__sig_field_t s_quality_f[] = {
    E("profile", R, M(quality.profile), profiles),
    S("by", 0, AR__CS_ID, M(quality.by), 1, ID_MAX),
};
TABLE(s_quality, 0);

static const ar__sig_field_t s_ended_f[] = {
    S("room", R, AR__CS_ID, M(ended.room), 1, ID_MAX),
    E("reason", R, M(ended.reason), end_reasons),
};
TABLE(s_ended, 0);

static const ar__sig_field_t s_error_f[] = {
    I("code", R, M(error.code), 1, 999),
    S("name", R, AR__CS_WORD, M(error.name), 1, 32),
    S("text", R, AR__CS_NAME, M(error.text), 1, AR_SIG_ERR_TEXT - 1),
    S("about", 0, AR__CS_WORD, M(error.about), 1, 32),
    I("id", 0, M(error.ref), 0, AR_SIG_INT_MAX),
};
TABLE(s_error, 0);

static const ar__sig_field_t s_drain_f[] = {
    L("urls", R, M(drain.urls), 1, AR_SIG_URLS_MAX, &t_url),
    I("within", R, M(drain.within), 0, 3600),
};
TABLE(s_drain, 0);

#define C_ONLY(t)                                                                                  \
    {                                                                                              \
        &(t), NULL                                                                                 \
    }
#define S_ONLY(t)                                                                                  \
    {                                                                                              \
        NULL, &(t)                                                                                 \
    }

const ar__sig_type_info_t ar__sig_types[AR_SIG_TYPE_COUNT] = {
    [AR_SIG_HELLO] = {C_ONLY(c_hello)},
    [AR_SIG_WELCOME] = {S_ONLY(s_welcome)},
    [AR_SIG_REFRESH] = {C_ONLY(c_refresh)},
    [AR_SIG_REFRESHED] = {S_ONLY(s_refreshed)},
    [AR_SIG_JOIN] = {C_ONLY(c_join)},
    [AR_SIG_JOINED] = {S_ONLY(s_joined)},
    [AR_SIG_LEAVE] = {C_ONLY(t_empty)},
    [AR_SIG_PEER_JOINED] = {S_ONLY(s_peer_joined)},
    [AR_SIG_PEER_LEFT] = {S_ONLY(s_peer_left)},
    [AR_SIG_ARRIVE] = {C_ONLY(c_arrive)},
    [AR_SIG_WAIT] = {S_ONLY(s_wait)},
    [AR_SIG_SUBSCRIBE] = {C_ONLY(c_area)},
    [AR_SIG_UNSUBSCRIBE] = {C_ONLY(c_area)},
    [AR_SIG_QUEUE] = {S_ONLY(s_queue)},
    [AR_SIG_QUEUE_ADD] = {S_ONLY(s_queue_add)},
    [AR_SIG_QUEUE_UPDATE] = {S_ONLY(s_queue_update)},
    [AR_SIG_QUEUE_REMOVE] = {S_ONLY(s_queue_remove)},
    [AR_SIG_TAKE] = {C_ONLY(c_take)},
    [AR_SIG_HOLD] = {{&c_hold, &c_hold}},
    [AR_SIG_TRANSFER] = {C_ONLY(c_transfer)},
    [AR_SIG_MESSAGE] = {{&c_message, &s_message}},
    [AR_SIG_OFFER] = {{&c_offer, &s_offer}},
    [AR_SIG_ANSWER] = {{&c_answer, &s_answer}},
    [AR_SIG_CANDIDATE] = {{&c_cand, &s_cand}},
    [AR_SIG_QUALITY] = {{&c_quality, &s_quality}},
    [AR_SIG_END] = {C_ONLY(t_empty)},
    [AR_SIG_ENDED] = {S_ONLY(s_ended)},
    [AR_SIG_ERROR] = {S_ONLY(s_error)},
    [AR_SIG_PING] = {{&x_ping, &x_ping}},
    [AR_SIG_PONG] = {{&x_ping, &x_ping}},
    [AR_SIG_ACK] = {C_ONLY(c_ack)},
    [AR_SIG_DRAIN] = {S_ONLY(s_drain)},
    [AR_SIG_BYE] = {C_ONLY(t_empty)},
    [AR_SIG_REMOVE] = {C_ONLY(c_take)},
    [AR_SIG_REDACTED] = {S_ONLY(t_empty)},
};

#define ENV(m) offsetof(ar__sig_env_t, m)

static const ar__sig_field_t env_c_f[] = {
    I("v", R, ENV(v), 0, AR_SIG_INT_MAX),
    S("type", R, AR__CS_WORD, ENV(type), 1, 32),
    I("id", 0, ENV(id), 0, AR_SIG_INT_MAX),
};
static const ar__sig_field_t env_s_f[] = {
    I("v", R, ENV(v), 0, AR_SIG_INT_MAX),
    S("type", R, AR__CS_WORD, ENV(type), 1, 32),
    I("seq", R, ENV(seq), 0, AR_SIG_INT_MAX),
    S("fid", 0, AR__CS_ID, ENV(fid), AR_SIG_FID_LEN, AR_SIG_FID_LEN),
};

const ar__sig_table_t ar__sig_envelope[2] = {
    {env_c_f, sizeof(env_c_f) / sizeof(env_c_f[0]), sizeof(ar__sig_env_t)},
    {env_s_f, sizeof(env_s_f) / sizeof(env_s_f[0]), sizeof(ar__sig_env_t)},
};
