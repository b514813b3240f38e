#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_signal_bus (fuzz/corpus/signal_bus/) in its input format
(fuzz_signal_bus.c): each seed a short sequence of bus messages as workers publish them
(src/signal rec.c, sess.c, handover.c, bus_nums.c, bus_node.c, invite.c; docs/signal.md), so that
they meet: a record that puts a session in a room, then a leave naming others; a backup's adopt,
then its numbered copies; a claim, then a second use. Run from the repository root."""
import hashlib
import json
import os
import struct

OUT = "fuzz/corpus/signal_bus"
NODE, SESS, ROOM, AREA, TO, PROC, INV, SPECIAL = range(8)
W1, W3 = 0, 1  # the harness's workers: id 1 (node-a) and id 3 (node-b)
A, B, C, D = 0, 1, 2, 3
PEERS = ["A" * 22, "B" * 22, "C" * 22, "D" * 22]
FAR = 4102444800  # 2100-01-01: an expiry that stays in the future for the corpus's life


def wid(n):
    return "%016x" % n


def op(kind, dst, key=0, payload=b"", tick=0, client=0):
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload, separators=(",", ":")).encode()
    elif isinstance(payload, str):
        payload = payload.encode()
    b = kind | dst << 3 | key << 4 | tick << 6 | client << 7
    return bytes([b]) + struct.pack("<H", len(payload)) + payload


# A client's op (kind 7, bit 7): what it does (payload byte 0), then the role (byte 1: 0
# patient, 1 staff, 2 invitee) and the last_seq of its resume (byte 2).
OWN_LIVE, RESUME, HANG_UP, SEND, DRAIN, MOVED = range(6)
PATIENT, STAFF, INVITEE = range(3)


def client(dst, key, what=OWN_LIVE, role=PATIENT, last=0):
    """A client of dst connects (OWN_LIVE: into a session dst owns, made away first if need be;
    RESUME: into the session as dst knows it, a new record naming the other worker its owner)."""
    return op(SPECIAL, dst, key, bytes([what, role, last]), client=1)


def hang_up(dst, key):
    return op(SPECIAL, dst, key, bytes([HANG_UP]), client=1)


def send(dst, key, msg):
    body = json.dumps(msg, separators=(",", ":")).encode() if isinstance(msg, dict) else msg
    return op(SPECIAL, dst, key, bytes([SEND]) + body, client=1)


def drain(dst):
    """dst starts draining (its clients are told where to go)."""
    return op(SPECIAL, dst, 0, bytes([DRAIN]), client=1)


def moved(dst, key, role=PATIENT, last=0, fds=1, other_user=False, raw=None, counted=False,
          text=b""):
    """A connection moved to dst by another worker of its node, with a hello resuming key's
    session that dst owns (a token the harness signs), or text as the hello, or raw as the
    whole datagram; fds descriptors with it, another user's credentials if other_user."""
    flags = fds | other_user << 2 | (raw is not None) << 3 | counted << 4
    rest = raw if raw is not None else text
    if isinstance(rest, str):
        rest = rest.encode()
    return op(SPECIAL, dst, key, bytes([MOVED, role, last, flags]) + rest, client=1)


def subhash(key):
    """The hash of a harness client's token subject ("subject-<key>"), as sessions keep it."""
    return hashlib.blake2b(("subject-%d" % key).encode(), digest_size=16).hexdigest()


def own(dst, key):
    """dst owns an away session of PEERS[key]."""
    return op(SPECIAL, dst, key)


def tick(dst):
    return op(SPECIAL, dst, 0, tick=1)


def beat(dst, origin, node, leave=False, **extra):
    o = {"l": 1} if leave else {}
    o.update({"i": wid(origin), "n": node, "d": int(leave), "t": 1700000000000000, "b": 0, "ec": 0})
    o.update(extra)
    body = json.dumps(o, separators=(",", ":"))
    return op(NODE, dst, 0, body)


def rec(dst, origin, key, kind=SESS, **fields):
    o = {"o": wid(origin), "p": PEERS[key]}
    o.update(fields)
    subj_key = key if kind in (SESS, ROOM, AREA) else 0
    return op(kind, dst, subj_key, o)


def full(role, owner, backup, room="", **more):
    o = {"role": role, "away": 0, "own": wid(owner), "bk": wid(backup), "room": room}
    if room:
        o.update({"jt": 1700000000000001, "rc": "clinic-1", "rp": 0, "rpers": 0})
    o.update(more)
    return o


def frame(t, **f):
    o = {"v": 1, "type": t, "seq": 0}
    o.update(f)
    return json.dumps(o, separators=(",", ":"))


def fid(n):
    return bytes([n]) * 16


def to_msg(fid_bytes, action, body, sent=1700000000000000):
    return fid_bytes + struct.pack("<Q", sent) + bytes([action]) + body.encode()


def lost_notice(origin, n):
    return struct.pack("<Q", origin) + bytes(16) + bytes([0xFE]) + struct.pack("<I", n)


def nums(entries):
    out = b"N"
    for key, seq, f, action, body in entries:
        b = body.encode()
        out += PEERS[key].encode() + struct.pack("<Q", seq) + f + bytes([action])
        out += struct.pack("<I", len(b)) + b
    return out


def resume(key):
    return PEERS[key] + "." + "r" * 20


def adopt(key, seq=2, ack=0, frames=None, u=False, **more):
    if frames is None:
        frames = [[i, fid(i).hex(), 0, frame("peer_joined", peer=PEERS[B])] for i in range(1, seq + 1)]
    o = {"k": "adopt", "p": PEERS[key], "r": resume(key), "h": "ab" * 16, "seq": seq, "ack": ack,
         "fr": frames, "u": u}
    o.update(more)
    return o


HASH = "0123456789abcdef" * 2

seeds = {
    # node: heartbeats, a draining worker, a worker behind, a departure
    "node_heartbeat": beat(W1, 2, "node-a"),
    "node_heartbeat_draining_behind": beat(W1, 3, "node-b", b=1, ec=1800) + beat(W3, 1, "node-a", d=1),
    "node_new_worker": beat(W1, 0x99, "node-c") + beat(W3, 0x99, "node-c"),
    "node_leave_promotes_backup": (
        rec(W3, 2, A, **full(1, 2, 3)) + op(PROC, W3, 0, adopt(A)) + beat(W3, 2, "node-a", leave=True)
        + tick(W3)),
    "node_leave_then_heartbeat": beat(W1, 2, "node-a", leave=True) + beat(W1, 2, "node-a"),
    # records: sessions, rooms, areas
    "rec_patient_new": rec(W1, 2, A, **full(1, 2, 3, name="", lang="en")),
    "rec_staff_join_room": rec(W1, 2, B, ROOM, **full(2, 2, 3, room="room-1", rt=[])),
    "rec_two_joins_rt": (
        rec(W1, 2, A, ROOM, **full(1, 2, 3, room="room-1", rt=[]))
        + rec(W1, 3, B, ROOM, **full(2, 3, 2, room="room-1", rt=[PEERS[A]]))),
    "rec_join_meets_local": (
        own(W1, C) + rec(W1, 3, C, ROOM, room="room-1", jt=5)
        + rec(W1, 2, A, ROOM, **full(2, 2, 3, room="room-1", rt=[]))),
    "rec_leave_lt_lr": (
        own(W1, C) + rec(W1, 3, C, ROOM, room="room-1", jt=5)
        + rec(W1, 2, A, ROOM, **full(2, 2, 3, room="room-1", rt=[PEERS[C]]))
        + rec(W1, 2, A, ROOM, room="", lt=[], lr=1)),
    "rec_room_overfull": b"".join(
        rec(W1, 2 + (i % 2), i % 4, ROOM, **full(1 if i == 0 else 2, 2, 3, room="room-2", rt=[], jt=10 + i))
        for i in range(4)) + own(W1, D) + rec(W1, 3, D, ROOM, room="room-2", jt=1),
    "rec_patient_arrives_area": rec(
        W1, 2, A, AREA, **full(1, 2, 3, clinic="clinic-1", area="area-1", st=1, by="", bn="",
                               since=1700000000, ans=[["reason", "cough"], ["age", "40"]],
                               name="Pat", qk=1, qr=0, qh="")),
    "rec_patient_seen": (
        rec(W1, 2, A, AREA, **full(1, 2, 3, clinic="clinic-1", area="area-1", st=1, since=1, qk=1, qh=""))
        + rec(W1, 2, A, AREA, clinic="clinic-1", area="area-1", st=2, by=PEERS[B], bn="Dr B",
              since=1, qk=2, qr=0, qh=PEERS[B][:8])),
    "rec_staff_subs_then_arrival": (
        own(W1, B) + rec(W1, 3, B, SESS, role=2, subs=[["clinic-1", "area-1"], ["clinic-1", "area-2"]])
        + rec(W1, 2, A, AREA, **full(1, 2, 3, clinic="clinic-1", area="area-1", st=1, since=1, qk=1, qh=""))
        + rec(W1, 2, A, AREA, clinic="", area="", st=0, qk=3, qr=1, qh="")),
    "rec_delete": rec(W1, 2, A, **full(1, 2, 3, room="room-1")) + rec(W1, 2, A, SESS, **{"del": True}),
    "rec_delete_local": own(W1, A) + rec(W1, 3, A, SESS, **{"del": True}),
    "rec_promotion_refused": own(W1, A) + rec(W1, 3, A, SESS, own=wid(3), bk=wid(1), pr=True, away=1),
    "rec_owner_moves": own(W3, A) + rec(W3, 2, A, SESS, own=wid(2), bk=wid(3)),
    "rec_reannounce_re": (
        rec(W3, 2, A, **full(1, 2, 3)) + op(PROC, W3, 0, adopt(A)) + beat(W3, 2, "node-a", leave=True)
        + rec(W3, 2, A, SESS, own=wid(2), bk=wid(3), re=True)),
    "rec_wrong_jurisdiction_subject": op(SESS, W1, A, b'{"o":"2","p":"' + PEERS[A].encode() + b'","role":1}'),
    # to.<peer>: frames for a session owned here, a backup's copy, a lost notice
    "to_frame_owned": own(W1, A) + op(TO, W1, A, to_msg(fid(7), 0, frame("peer_left", peer=PEERS[B], reason=1))),
    "to_frame_ended": own(W1, A) + op(TO, W1, A, to_msg(fid(8), 1, frame("ended", reason=1))),
    "to_frame_backup_pending": (
        rec(W3, 1, A, **full(1, 1, 3)) + op(PROC, W3, 0, adopt(A, seq=0, frames=[]))
        + op(TO, W3, A, to_msg(fid(9), 2, frame("candidate", peer=PEERS[B], candidate={"candidate": "c"})))),
    "to_lost_notice": own(W1, A) + op(TO, W1, A, lost_notice(2, 3)),
    # proc.<worker>: backups, hand-over, promotion questions, the ended rooms' pages
    "proc_adopt_num_ack": (
        rec(W3, 1, A, **full(1, 1, 3)) + op(PROC, W3, 0, adopt(A))
        + op(PROC, W3, 0, {"k": "num", "p": PEERS[A], "s": 3, "f": fid(3).hex(), "a": 0,
                           "d": frame("peer_joined", peer=PEERS[C])})
        + op(PROC, W3, 0, {"k": "ack", "p": PEERS[A], "s": 2})),
    # a backup's numbered removal of staff: applied at a promotion while the room still
    # matches, settled by a room change that came after it (sess.c ending_action)
    "proc_num_removed_staff_promoted": (
        rec(W3, 2, B, ROOM, **full(2, 2, 3, room="room-1", rt=[])) + op(PROC, W3, 0, adopt(B, seq=0, frames=[]))
        + op(PROC, W3, 0, nums([(B, 1, fid(1), 3, frame("peer_left", peer=PEERS[B], reason="removed",
                                                         room="room-1"))]))
        + beat(W3, 2, "node-a", leave=True) + tick(W3)),
    "proc_num_removed_staff_rejoined": (
        rec(W3, 2, B, ROOM, **full(2, 2, 3, room="room-1", rt=[])) + op(PROC, W3, 0, adopt(B, seq=0, frames=[]))
        + op(PROC, W3, 0, nums([(B, 1, fid(1), 3, frame("peer_left", peer=PEERS[B], reason="removed",
                                                         room="room-1"))]))
        + rec(W3, 2, B, ROOM, room="", lt=[], lr=3) + rec(W3, 2, B, ROOM, room="room-1", jt=9, rt=[])
        + beat(W3, 2, "node-a", leave=True) + tick(W3)),
    "proc_adopt_nums_batch": (
        rec(W3, 1, A, **full(1, 1, 3)) + rec(W3, 1, B, **full(2, 1, 3))
        + op(PROC, W3, 0, adopt(A, seq=0, frames=[])) + op(PROC, W3, 0, adopt(B, seq=0, frames=[]))
        + op(PROC, W3, 0, nums([(A, 1, fid(1), 0, frame("peer_joined", peer=PEERS[B])),
                                (B, 1, fid(2), 0, frame("peer_joined", peer=PEERS[A])),
                                (A, 2, fid(3), 1, frame("ended", reason=1))]))),
    "proc_res_got_drop": (
        rec(W3, 1, A, **full(1, 1, 3)) + op(PROC, W3, 0, adopt(A, u=True, q="0011223344556677"))
        + op(PROC, W3, 0, {"k": "res", "p": PEERS[A], "r": resume(A), "q": "8899aabbccddeeff", "c": True})
        + op(PROC, W3, 0, {"k": "got", "p": PEERS[A]}) + op(PROC, W3, 0, {"k": "drop", "p": PEERS[A]})),
    "proc_take_owned": (
        own(W1, A) + rec(W1, 3, A, SESS, bk=wid(3))
        + op(PROC, W1, 0, {"k": "take", "p": PEERS[A], "r": resume(A), "h": "00" * 16, "l": 0,
                           "from": wid(3)})),
    "proc_taken_ok": (
        rec(W1, 2, A, **full(1, 2, 3))
        + op(PROC, W1, 0, {"k": "taken", "p": PEERS[A], "ok": True, "seq": 2, "ack": 1,
                           "fr": [[2, fid(2).hex(), 0, frame("peer_joined", peer=PEERS[B])]],
                           "r": resume(A), "h": "ab" * 16, "from": wid(2), "lost": [1, 1],
                           "q": "0011223344556677"})),
    "proc_taken_refused": rec(W1, 2, A, **full(1, 2, 3)) + op(PROC, W1, 0, {"k": "taken", "p": PEERS[A], "ok": False}),
    "proc_held_unheld": (
        own(W1, A) + op(PROC, W1, 0, {"k": "held?", "p": PEERS[A], "from": wid(3)})
        + op(PROC, W1, 0, {"k": "unheld", "p": PEERS[A]})),
    "proc_ended_ask": op(PROC, W1, 0, {"k": "ended?", "from": wid(3), "q": 1}),
    "proc_ended_page": op(PROC, W1, 0, {"k": "ended", "w": wid(3), "q": 0, "s": 1700000000,
                                        "m": HASH + struct.pack("<Q", FAR).hex(), "b": True}),
    "proc_nums_truncated": op(PROC, W3, 0, nums([(A, 1, fid(1), 0, frame("x"))])[:-3]),
    # inv.<hash>: claims and ended rooms
    "inv_claim": op(INV, W1, 0, {"w": wid(2), "h": HASH, "e": FAR, "t": 5, "p": PEERS[A]}),
    "inv_claim_reuse_local": (
        own(W1, B) + op(INV, W1, 0, {"w": wid(2), "h": HASH, "e": FAR, "t": 5, "p": PEERS[A]})
        + op(INV, W1, 0, {"w": wid(3), "h": HASH, "e": FAR, "t": 9, "p": PEERS[B]})),
    "inv_room_ended": op(INV, W1, 0, {"w": wid(2), "h": HASH, "e": FAR, "end": True}),
    # a mix, through both workers and their ticks
    "mix_backup_promoted_then_resumed": (
        rec(W3, 1, A, **full(1, 1, 3, room="room-1", rt=[])) + op(PROC, W3, 0, adopt(A))
        + beat(W3, 1, "node-a", leave=True) + tick(W3)
        + op(PROC, W3, 0, {"k": "held?", "p": PEERS[A], "from": wid(1)}) + tick(W1)),
}


def take(key, origin, last=0, h=None):
    return {"k": "take", "p": PEERS[key], "r": resume(key), "h": h or subhash(key), "l": last,
            "from": wid(origin)}


LEFT = frame("peer_left", peer=PEERS[B], reason="left")
ENDED = frame("ended", reason="ended")
CAND = frame("candidate", **{"from": PEERS[B], "candidate": "candidate:1 1 udp 1 192.0.2.1 1 typ host"})

seeds.update({
    # a client connected here: deliveries, replays, resumes through the connection, ends
    "conn_live_deliver_ack": (
        client(W1, A) + op(TO, W1, A, to_msg(fid(7), 0, LEFT)) + op(TO, W1, A, to_msg(fid(8), 0, CAND))
        + send(W1, A, {"v": 1, "type": "ack", "seq": 1})),
    "conn_live_ended_patient": client(W1, A) + op(TO, W1, A, to_msg(fid(8), 1, ENDED)),
    "conn_live_removed_invitee": (
        client(W3, B, role=INVITEE)
        + op(TO, W3, B, to_msg(fid(9), 3, frame("peer_left", peer=PEERS[B], reason="removed")))),
    "conn_live_staff_ended": client(W1, C, role=STAFF) + op(TO, W1, C, to_msg(fid(8), 1, ENDED)),
    # a removal names its room (remove.c): one from a room the clinician left is only delivered
    "conn_live_removed_staff_rooms": (
        client(W1, C, role=STAFF) + rec(W1, 3, C, ROOM, room="room-2", jt=5)
        + op(TO, W1, C, to_msg(fid(9), 3, frame("peer_left", peer=PEERS[C], reason="removed",
                                                room="room-1")))
        + op(TO, W1, C, to_msg(fid(10), 3, frame("peer_left", peer=PEERS[C], reason="removed",
                                                 room="room-2")))),
    "conn_replay_after_away": (
        client(W1, A) + hang_up(W1, A) + op(TO, W1, A, to_msg(fid(1), 0, LEFT))
        + op(TO, W1, A, to_msg(fid(2), 0, CAND)) + client(W1, A, last=1)
        + op(TO, W1, A, to_msg(fid(3), 0, LEFT))),
    "conn_hang_up_then_resume_elsewhere": (
        client(W3, A) + op(TO, W3, A, to_msg(fid(4), 0, LEFT)) + hang_up(W3, A)
        + client(W1, A, RESUME) + op(TO, W1, A, to_msg(fid(5), 0, CAND))),
    "conn_take_while_resuming": (
        rec(W1, 2, A, **full(1, 2, 3)) + client(W1, A, RESUME)
        + op(PROC, W1, 0, take(A, 3))
        + op(PROC, W1, 0, {"k": "taken", "p": PEERS[A], "ok": True, "seq": 2, "ack": 0,
                           "fr": [[1, fid(1).hex(), 0, LEFT], [2, fid(2).hex(), 0, CAND]],
                           "r": resume(A), "h": subhash(A), "from": wid(2)})
        + op(TO, W1, A, to_msg(fid(3), 1, ENDED))),
    "conn_resuming_refused": (
        rec(W1, 2, A, **full(1, 2, 3)) + client(W1, A, RESUME)
        + op(PROC, W1, 0, {"k": "taken", "p": PEERS[A], "ok": False})),
    "conn_resuming_owner_moves": (
        rec(W1, 2, A, **full(1, 2, 3)) + client(W1, A, RESUME)
        + rec(W1, 3, A, SESS, own=wid(3), bk=wid(2)) + beat(W1, 2, "node-a", leave=True) + tick(W1)),
    "conn_live_take_from_other": (
        client(W1, A) + op(PROC, W1, 0, take(A, 3)) + op(TO, W1, A, to_msg(fid(6), 0, LEFT))),
    "conn_live_deleted": client(W1, A) + rec(W1, 3, A, SESS, **{"del": True}),
    "conn_lost_notice": client(W1, A) + op(TO, W1, A, lost_notice(2, 3)),
    "conn_drain_then_resume": (
        client(W1, A) + client(W1, B, role=STAFF) + drain(W1) + beat(W3, 1, "node-a", d=1)
        + client(W3, C) + hang_up(W3, C) + client(W1, C, RESUME) + drain(W1)),
    "conn_second_resume_replaces": (
        rec(W1, 2, A, **full(1, 2, 3)) + client(W1, A, RESUME) + client(W1, A, RESUME)
        + op(PROC, W1, 0, {"k": "taken", "p": PEERS[A], "ok": True, "seq": 1, "ack": 0,
                           "fr": [[1, fid(1).hex(), 0, LEFT]], "r": resume(A), "h": subhash(A),
                           "from": wid(2)})),
    # a connection moved in from another worker of the node (move.c): resumed here, or refused
    "conn_moved_resume": (
        moved(W1, A) + op(TO, W1, A, to_msg(fid(7), 0, LEFT)) + send(W1, A, {"v": 1, "type": "ack", "seq": 1})),
    "conn_moved_counted_staff_then_away": (
        moved(W1, C, role=STAFF, counted=True) + hang_up(W1, C) + client(W3, C, RESUME)),
    "conn_moved_after_replay": (
        client(W1, A) + op(TO, W1, A, to_msg(fid(7), 0, LEFT)) + hang_up(W1, A) + moved(W1, A, last=0)),
    "conn_moved_other_user": moved(W1, A, other_user=True),
    "conn_moved_two_descriptors": moved(W1, A, fds=2),
    "conn_moved_no_descriptor": moved(W1, A, fds=0),
    "conn_moved_text": moved(W1, B, text='{"v":1,"type":"hello","token":"x.y.z","resume":"%s.rrrrrrrrrrrrrrrrrrrr","last_seq":0}' % PEERS[B]),
    "conn_moved_raw": moved(W3, A, raw=b"arMv\x02\x01\x00\x00" + b"\x00" * 16 + b'{"v":1,"type":"hello"}'),
})


# Record updates about who holds a session, in the bus's fixed layout (src/signal/rec_wire.c).
UPD_HOME, UPD_AWAY, UPD_AWAY_ON, UPD_OWN, UPD_BK, UPD_PR, UPD_RE, UPD_DEL = (1 << i for i in range(8))


def layout_body(origin, key, owner=0, backup=0, away=None, pr=False, re=False, delete=False,
                home=(0x80000002, 0x80000003)):
    flags = UPD_HOME | (UPD_OWN | UPD_BK if owner else 0) | (UPD_PR if pr else 0)
    flags |= (UPD_RE if re else 0) | (UPD_DEL if delete else 0)
    if away is not None:
        flags |= UPD_AWAY | (UPD_AWAY_ON if away else 0)
    body = bytes([0x01, flags]) + struct.pack("<QQQII", origin, owner, backup, *home)
    return body + PEERS[key].encode()


def layout(dst, origin, key, *args, **kw):
    return op(SESS, dst, key, layout_body(origin, key, *args, **kw))


def batch(dst, *bodies):
    """Updates in the layout that a worker published in a row, in one message (bus_turn.c)."""
    return op(SESS, dst, 0, bytes([0x02]) + b"".join(bodies))


seeds.update({
    "layout_promotion_refused": own(W1, A) + layout(W1, 3, A, 3, 1, away=1, pr=True),
    "layout_owner_moves": own(W3, A) + layout(W3, 2, A, 2, 3, away=0),
    "layout_away_then_room": (
        layout(W1, 2, A, 2, 3, away=1) + rec(W1, 2, A, ROOM, **full(1, 2, 3, room="room-1", rt=[]))),
    "layout_reannounce_re": (
        rec(W3, 2, A, **full(1, 2, 3)) + op(PROC, W3, 0, adopt(A)) + beat(W3, 2, "node-a", leave=True)
        + layout(W3, 2, A, 2, 3, re=True)),
    "layout_delete_local": own(W1, A) + layout(W1, 3, A, delete=True),
    "layout_resume_moves_owner": (
        rec(W1, 2, A, **full(1, 2, 3)) + client(W1, A, RESUME) + layout(W1, 3, A, 3, 2, away=1)),
    "batch_promotions": (
        own(W1, A) + own(W1, B)
        + batch(W1, layout_body(3, A, 3, 1, away=1, pr=True), layout_body(3, B, 3, 1, away=0))),
    "batch_away_delete_room": (
        batch(W1, layout_body(2, A, 2, 3, away=1), layout_body(2, B, 2, 3, away=0),
              layout_body(2, A, delete=True))
        + rec(W1, 2, B, ROOM, **full(1, 2, 3, room="room-1", rt=[]))),
    "batch_resume_moves_owner": (
        rec(W1, 2, A, **full(1, 2, 3)) + client(W1, A, RESUME)
        + batch(W1, layout_body(3, C, 3, 2, away=0), layout_body(3, A, 3, 2, away=1))),
    "batch_published": own(W1, A) + own(W1, B) + op(SPECIAL, W1, 0, tick=1) + client(W3, A, RESUME),
})

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print("wrote %d seeds" % len(seeds))
