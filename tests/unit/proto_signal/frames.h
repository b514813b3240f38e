/*
 * One or more valid frames per message type and direction. The unit tests parse and round-trip
 * them, derive invalid variants of them from the field tables, and write them out as the fuzz
 * seed corpus (test_valid --write-corpus DIR), so the seeds and the tests cannot drift apart.
 */
#ifndef AR_TEST_SIGNAL_FRAMES_H
#define AR_TEST_SIGNAL_FRAMES_H

#include "signal/signal.h"

typedef struct frame_case_s {
    const char *name; /* corpus file name */
    int dir;          /* ar_sig_dir_t */
    int type;         /* ar_sig_type_t */
    const char *json;
} frame_case_t;

#define C AR_SIG_FROM_CLIENT
#define S AR_SIG_FROM_SERVER
#define SDP "v=0\\r\\no=- 46117 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\na=group:BUNDLE 0\\r\\n"
#define CAND "candidate:842163049 1 udp 1677729535 192.0.2.10 54400 typ srflx raddr 0.0.0.0"

static const frame_case_t valid_frames[] = {
    {"c_hello", C, AR_SIG_HELLO,
     "{\"v\":1,\"type\":\"hello\",\"id\":1,\"token\":\"AR1.k1.eyJhIjoxfQ.c2ln\",\"name\":\"Dr "
     "Ana\"}"},
    {"c_hello_resume", C, AR_SIG_HELLO,
     "{\"v\":1,\"type\":\"hello\",\"token\":\"AR1.k1.eyJhIjoxfQ.c2ln\",\"resume\":"
     "\"Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5\",\"last_seq\":17}"},
    {"c_join", C, AR_SIG_JOIN, "{\"v\":1,\"type\":\"join\",\"id\":2,\"room\":\"r-7f3a9c0b\"}"},
    {"c_leave", C, AR_SIG_LEAVE, "{\"v\":1,\"type\":\"leave\"}"},
    {"c_arrive", C, AR_SIG_ARRIVE,
     "{\"v\":1,\"type\":\"arrive\",\"clinic\":\"c1\",\"area\":\"knee\",\"name\":\"Zo\xc3\xab "
     "\xe6\x9d\x8e\",\"answers\":[{\"q\":\"reason\",\"a\":\"Knee pain\"},{\"q\":\"gp\",\"a\":"
     "\"\"}],\"consent\":true}"},
    {"c_subscribe", C, AR_SIG_SUBSCRIBE,
     "{\"v\":1,\"type\":\"subscribe\",\"clinic\":\"c1\",\"area\":\"knee\"}"},
    {"c_unsubscribe", C, AR_SIG_UNSUBSCRIBE,
     "{\"v\":1,\"type\":\"unsubscribe\",\"clinic\":\"c1\",\"area\":\"knee\"}"},
    {"c_take", C, AR_SIG_TAKE, "{\"v\":1,\"type\":\"take\",\"id\":9,\"peer\":\"p9\"}"},
    {"c_hold", C, AR_SIG_HOLD, "{\"v\":1,\"type\":\"hold\",\"peer\":\"p9\",\"on\":true}"},
    {"c_transfer", C, AR_SIG_TRANSFER,
     "{\"v\":1,\"type\":\"transfer\",\"peer\":\"p9\",\"area\":\"physio\"}"},
    {"c_message", C, AR_SIG_MESSAGE,
     "{\"v\":1,\"type\":\"message\",\"to\":\"p9\",\"text\":\"Running 10 minutes late.\\nSorry "
     "\\u263a\"}"},
    {"c_offer", C, AR_SIG_OFFER, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"" SDP "\"}"},
    {"c_offer_restart", C, AR_SIG_OFFER,
     "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"v=0\\r\\n\",\"restart\":true}"},
    {"c_answer", C, AR_SIG_ANSWER,
     "{\"v\":1,\"type\":\"answer\",\"to\":\"p2\",\"sdp\":\"v=0\\r\\na=setup:active\\r\\n\"}"},
    {"c_candidate", C, AR_SIG_CANDIDATE,
     "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"" CAND
     "\",\"mid\":\"0\",\"mline\":0,\"ufrag\":\"EsAw\"}"},
    /* As web/js/signal.js writes them: JSON.stringify({v: 1, type, id, ...fields}). */
    {"c_offer_web", C, AR_SIG_OFFER,
     "{\"v\":1,\"type\":\"offer\",\"id\":12,\"to\":\"Qm9P3xk\",\"sdp\":\"" SDP "\"}"},
    {"c_answer_web", C, AR_SIG_ANSWER,
     "{\"v\":1,\"type\":\"answer\",\"id\":13,\"to\":\"Qm9P3xk\",\"sdp\":\"" SDP "\"}"},
    {"c_candidate_web", C, AR_SIG_CANDIDATE,
     "{\"v\":1,\"type\":\"candidate\",\"id\":14,\"to\":\"Qm9P3xk\",\"candidate\":\"" CAND
     "\",\"mid\":\"0\",\"mline\":0,\"ufrag\":\"EsAw\"}"},
    {"c_candidate_end", C, AR_SIG_CANDIDATE,
     "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"mid\":null,\"mline\":"
     "null}"},
    {"c_quality", C, AR_SIG_QUALITY, "{\"v\":1,\"type\":\"quality\",\"profile\":\"low\"}"},
    {"c_end", C, AR_SIG_END, "{\"v\":1,\"type\":\"end\",\"id\":77}"},
    {"c_ping", C, AR_SIG_PING, "{\"v\":1,\"type\":\"ping\",\"t\":1732000000123}"},
    {"c_pong", C, AR_SIG_PONG, "{\"v\":1,\"type\":\"pong\"}"},
    {"c_ack", C, AR_SIG_ACK, "{\"v\":1,\"type\":\"ack\",\"seq\":42}"},
    {"c_bye", C, AR_SIG_BYE, "{\"type\":\"bye\",\"v\":1}"},
    {"c_remove", C, AR_SIG_REMOVE, "{\"v\":1,\"type\":\"remove\",\"id\":5,\"peer\":\"i3-x_Y.z\"}"},
    {"c_refresh", C, AR_SIG_REFRESH,
     "{\"v\":1,\"type\":\"refresh\",\"id\":3,\"token\":\"AR1.k1.eyJhIjoyfQ.c2ln\"}"},

    {"s_welcome", S, AR_SIG_WELCOME,
     "{\"v\":1,\"type\":\"welcome\",\"seq\":0,\"peer\":\"Qm9P3xk\",\"resume\":"
     "\"Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5\",\"role\":\"patient\",\"resumed\":false,\"last_seq\":0,"
     "\"grace\":120,\"ping\":25,\"frame_max\":65536}"},
    {"s_refreshed", S, AR_SIG_REFRESHED,
     "{\"v\":1,\"type\":\"refreshed\",\"seq\":0,\"exp\":1732000600}"},
    {"s_joined", S, AR_SIG_JOINED,
     "{\"v\":1,\"type\":\"joined\",\"seq\":1,\"room\":\"r1\",\"peers\":[{\"peer\":\"p2\",\"role\":"
     "\"staff\",\"name\":\"Dr Ana\"},{\"peer\":\"p3\",\"role\":\"invitee\",\"lang\":\"uk-UA\","
     "\"hold\":true}],\"profile\":\"standard\",\"stay\":\"1764489600123456\"}"},
    {"s_peer_joined", S, AR_SIG_PEER_JOINED,
     "{\"v\":1,\"type\":\"peer_joined\",\"seq\":2,\"peer\":\"p4\",\"role\":\"invitee\",\"lang\":"
     "\"de\"}"},
    {"s_peer_left", S, AR_SIG_PEER_LEFT,
     "{\"v\":1,\"type\":\"peer_left\",\"seq\":3,\"fid\":\"AAECAwQFBgcICQoLDA0ODw\",\"peer\":\"p4\","
     "\"reason\":\"dropped\"}"},
    {"s_peer_left_revoked", S, AR_SIG_PEER_LEFT,
     "{\"v\":1,\"type\":\"peer_left\",\"seq\":7,\"fid\":\"AAECAwQFBgcICQoLDA0ODw\",\"peer\":"
     "\"s1\",\"reason\":\"revoked\"}"},
    {"s_peer_left_removed", S, AR_SIG_PEER_LEFT,
     "{\"v\":1,\"type\":\"peer_left\",\"seq\":9,\"fid\":\"AAECAwQFBgcICQoLDA0ODw\",\"peer\":"
     "\"s2\",\"reason\":\"removed\",\"room\":\"r-7f3a9c0b\",\"stay\":\"1764489600123456\"}"},
    {"s_wait", S, AR_SIG_WAIT,
     "{\"v\":1,\"type\":\"wait\",\"seq\":1,\"area\":\"knee\",\"status\":\"hold\"}"},
    {"s_queue", S, AR_SIG_QUEUE,
     "{\"v\":1,\"type\":\"queue\",\"seq\":1,\"clinic\":\"c1\",\"area\":\"knee\",\"entries\":[{"
     "\"peer\":\"p9\",\"name\":\"Zo\xc3\xab\",\"answers\":[{\"q\":\"reason\",\"a\":\"Knee\"}],"
     "\"since\":1732000000,\"status\":\"waiting\"},{\"peer\":\"p8\",\"name\":\"Al\",\"since\":"
     "1732000100,\"status\":\"seen\",\"by\":\"p2\",\"by_name\":\"Dr Ana\"}],\"more\":true}"},
    {"s_queue_empty", S, AR_SIG_QUEUE,
     "{\"v\":1,\"type\":\"queue\",\"seq\":5,\"clinic\":\"c1\",\"area\":\"knee\",\"entries\":[]}"},
    {"s_queue_add", S, AR_SIG_QUEUE_ADD,
     "{\"v\":1,\"type\":\"queue_add\",\"seq\":2,\"clinic\":\"c1\",\"area\":\"knee\",\"entry\":{"
     "\"peer\":\"p7\",\"name\":\"Bo\",\"answers\":[{\"q\":\"reason\",\"a\":\"Rash\"}],\"since\":"
     "1732000200,\"status\":\"waiting\"}}"},
    {"s_queue_update", S, AR_SIG_QUEUE_UPDATE,
     "{\"v\":1,\"type\":\"queue_update\",\"seq\":3,\"clinic\":\"c1\",\"area\":\"knee\",\"peer\":"
     "\"p7\",\"status\":\"seen\",\"by\":\"p2\",\"by_name\":\"Dr Ana\"}"},
    {"s_queue_remove", S, AR_SIG_QUEUE_REMOVE,
     "{\"v\":1,\"type\":\"queue_remove\",\"seq\":4,\"clinic\":\"c1\",\"area\":\"knee\",\"peer\":"
     "\"p7\",\"reason\":\"transferred\"}"},
    {"s_hold", S, AR_SIG_HOLD,
     "{\"v\":1,\"type\":\"hold\",\"seq\":6,\"peer\":\"p9\",\"on\":false}"},
    {"s_message", S, AR_SIG_MESSAGE,
     "{\"v\":1,\"type\":\"message\",\"seq\":2,\"text\":\"Running 10 minutes late.\"}"},
    {"s_offer", S, AR_SIG_OFFER,
     "{\"v\":1,\"type\":\"offer\",\"seq\":7,\"from\":\"p1\",\"sdp\":\"" SDP "\",\"restart\":true}"},
    {"s_answer", S, AR_SIG_ANSWER,
     "{\"v\":1,\"type\":\"answer\",\"seq\":8,\"fid\":\"AAECAwQFBgcICQoLDA0ODw\",\"from\":\"p2\","
     "\"sdp\":\"v=0\\r\\n\"}"},
    {"s_candidate", S, AR_SIG_CANDIDATE,
     "{\"v\":1,\"type\":\"candidate\",\"seq\":9,\"fid\":\"AAECAwQFBgcICQoLDA0ODw\",\"from\":\"p2\","
     "\"candidate\":\"" CAND "\",\"mline\":1}"},
    {"s_quality", S, AR_SIG_QUALITY,
     "{\"v\":1,\"type\":\"quality\",\"seq\":10,\"profile\":\"high\",\"by\":\"p2\"}"},
    {"s_ended", S, AR_SIG_ENDED,
     "{\"v\":1,\"type\":\"ended\",\"seq\":11,\"room\":\"r1\",\"reason\":\"ended\"}"},
    {"s_redacted", S, AR_SIG_REDACTED,
     "{\"v\":1,\"type\":\"redacted\",\"seq\":12,\"fid\":\"AAECAwQFBgcICQoLDA0ODw\"}"},
    {"s_error", S, AR_SIG_ERROR,
     "{\"v\":1,\"type\":\"error\",\"seq\":0,\"code\":6,\"name\":\"bad_field\",\"text\":\"field "
     "'sdp' exceeds 61440 bytes\",\"about\":\"offer\",\"id\":12}"},
    {"s_ping", S, AR_SIG_PING, "{\"v\":1,\"type\":\"ping\",\"seq\":0}"},
    {"s_pong", S, AR_SIG_PONG, "{\"v\":1,\"type\":\"pong\",\"seq\":0,\"t\":5}"},
    {"s_drain", S, AR_SIG_DRAIN,
     "{\"v\":1,\"type\":\"drain\",\"seq\":0,\"urls\":[\"wss://sig2.example.org/ws\",\"wss://"
     "sig3.example.org:8443/ws\"],\"within\":30}"},
};

#define N_VALID (sizeof(valid_frames) / sizeof(valid_frames[0]))

#endif
