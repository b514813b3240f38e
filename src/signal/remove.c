/*
 * Staff take one member out of their room (docs/protocol.md 5.7, "remove"): an invitee who
 * disrupts the call, or a colleague, without ending the consultation for everyone.
 *
 * The check runs on the remover's worker against the replicated view (index.c); the removal
 * itself runs at the member's owner, wherever that is, because that is where its connection is
 * and where a member leaves a room (flows.c ar__sig_room_leave: once, on its own worker). So
 * the remover sends the member one frame, `peer_left` about itself with reason "removed", that
 * carries the action AR__SIG_ACT_REMOVED: the owner numbers and sends it like any frame (it is
 * kept for resume and mirrored to the backup) and then applies it (sess.c own_frame calls
 * ar__sig_removed_apply).
 *
 * The frame names the room it is a removal from ("room") and the member's stay in it ("stay",
 * its join time there): it reaches the owner a bus hop after the check, and a clinician may have
 * left that room and joined another, or the same one again, meanwhile. The owner applies it only
 * while the member is still in that stay (ar__sig_removal_for); otherwise the member only gets
 * the frame, which its client ignores (web/js/staff.js, by the room and the stay its joined
 * named).
 */
#include "internal.h"

#include "anteroom/log.h"

#include <stdio.h>
#include <string.h>

#define REFUSE(cn, m, code, text) ar__sig_send_error((cn), (code), (text), (m)->type, (m)->id)

size_t ar__sig_stay_text(const ar__sig_rec_t *r, char out[AR__SIG_STAY_LEN])
{
    if (!r->in_room || !r->joined_us)
        return 0;
    /* Decimal: the stay's join time, unique to the stay (index.c ar__sig_rec_set_room). A string
     * for the client, which only compares it; as a JSON number its 16 digits would be more
     * than jansson lexes without growing its token buffer (purge.c parses joined again). */
    return (size_t)snprintf(out, AR__SIG_STAY_LEN, "%llu", (unsigned long long)r->joined_us);
}

void ar__sig_on_remove(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_sess_t *s = cn->sess;
    ar__sig_rec_t *r = s->rec;
    ar__sig_room_t *room = ar__sig_room_to_run(cn, m); /* who may run the call: as for end */
    if (!room)
        return;
    ar__sig_rec_t *t = NULL;
    if (m->u.act.peer.len == AR__SIG_PEER_LEN) {
        char id[AR__SIG_PEER_LEN + 1];
        memcpy(id, m->u.act.peer.p, AR__SIG_PEER_LEN);
        id[AR__SIG_PEER_LEN] = '\0';
        t = ar__sig_rec_find(srv, id);
    }
    if (!t || t->in_room != room) {
        REFUSE(cn, m, AR_SIG_E_NOT_FOUND, "no such member in this room");
        return;
    }
    if (t == r) {
        REFUSE(cn, m, AR_SIG_E_FORBIDDEN, "to leave the room, send leave");
        return;
    }
    /* The patient's room is the consultation: it goes only with end (5.13), which deletes
     * what is known about the patient; a patient taken out alone would linger in it. */
    if (t->role == AR_SIG_ROLE_PATIENT) {
        REFUSE(cn, m, AR_SIG_E_FORBIDDEN, "the patient leaves only when the consultation ends");
        return;
    }
    ar_sig_msg_t l;
    ar_sig_msg_init(&l, AR_SIG_PEER_LEFT);
    l.u.peer_left.peer = (ar_sig_str_t){t->peer, strlen(t->peer)};
    l.u.peer_left.reason = AR_SIG_LEFT_REMOVED;
    l.u.peer_left.room = (ar_sig_str_t){room->id, strlen(room->id)};
    char stay[AR__SIG_STAY_LEN];
    size_t sn = ar__sig_stay_text(t, stay);
    l.u.peer_left.stay = (ar_sig_str_t){sn ? stay : NULL, sn};
    ar__sig_to(srv, t->peer, &l, AR__SIG_ACT_REMOVED);
}

/* The value of key (",\"room\":\"", ",\"stay\":\"") in a removal frame (d is a frame the server
 * built with "seq":0): 1 with *v and *n set, 0 when the frame has no such key, -1 when its value
 * is empty or ends nowhere an id could (not a frame this server built). */
static int removal_value(const char *d, size_t len, const char *key, const char **v, size_t *n)
{
    size_t pos = 0;
    *v = ar__sig_frame_value(d, len, key, &pos, n);
    if (*v)
        return *n ? 1 : -1;
    return memmem(d, len, key, strlen(key)) ? -1 : 0;
}

int ar__sig_removal_for(const ar__sig_sess_t *s, const char *frame, size_t len)
{
    /* An invitee's token opens only its one room: whatever it names, the removal is from it
     * (and ends the session even if the invitee left the room meanwhile, as it always did). */
    if (s->rec->role != AR_SIG_ROLE_STAFF)
        return AR__SIG_RM_HERE;
    const char *room = NULL;
    size_t n = 0;
    int rc = removal_value(frame, len, ",\"room\":\"", &room, &n);
    if (rc == 0)
        return AR__SIG_RM_UNNAMED;
    const char *cur = ar__sig_rec_room(s->rec);
    if (rc != 1 || strlen(cur) != n || memcmp(cur, room, n) != 0)
        return AR__SIG_RM_ELSEWHERE;
    /* The same room, but maybe not the same stay: the member left it and joined it again
     * within the bus's delay. A removal naming no stay (a remover from before stays) is one
     * from the room, as then. */
    const char *stay = NULL;
    char cur_stay[AR__SIG_STAY_LEN];
    rc = removal_value(frame, len, ",\"stay\":\"", &stay, &n);
    size_t sn = rc == 1 ? ar__sig_stay_text(s->rec, cur_stay) : 0;
    return rc == 0 || (rc == 1 && sn == n && memcmp(cur_stay, stay, n) == 0) ? AR__SIG_RM_HERE
                                                                             : AR__SIG_RM_ELSEWHERE;
}

void ar__sig_removed_apply(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    ar__sig_rec_t *r = s->rec;
    ar_log0(AR_LOG_INFO, "signal_member_removed");
    if (r->role == AR_SIG_ROLE_STAFF) {
        /* Staff keep their session and subscriptions (as after end): only the room goes. The
         * others get peer_left (removed); the member had its own just before this. */
        ar__sig_room_leave(srv, r, AR_SIG_LEFT_REMOVED);
        return;
    }
    /* An invitee's token opens only this room: its session ends, so its link (single-use)
     * opens nothing again and a resume finds no session. Closed with 4015 first, so that the
     * close is not taken for a lost connection (sess.c ar__sig_sess_lost). */
    ar__sig_sess_close_conn(s, AR_SIG_CLOSE_REMOVED);
    ar__sig_sess_end(srv, r, AR_SIG_LEFT_REMOVED); /* frees s: nothing after */
}
