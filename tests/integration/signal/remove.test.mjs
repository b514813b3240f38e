// Staff take one member out of the room (protocol.md 5.7, `remove`), across two nodes: the
// remover's node checks, the member's own node (another node here, so the removal crosses
// NATS) applies it. An invitee is closed with 4015 and its session ends (its single-use link
// opens nothing again, a resume included); a colleague leaves the room and stays connected.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  Client, connect, inviteeToken, kill, patientToken, rid, sleep, staffToken, startNats, startNode,
  stopAll,
} from './lib.mjs';

let nats, A, B;
before(async () => {
  nats = await startNats();
  [A, B] = await Promise.all([startNode('a', nats.slice(0, 1)), startNode('b', nats.slice(1))]);
});
after(() => stopAll());

const left = (peer) => (f) => f.type === 'peer_left' && f.peer === peer;

// A patient opens a room on node A (or n); every worker hears of it before anyone else joins.
async function room(n = A) {
  const id = rid();
  const p = await connect(n, patientToken(id));
  p.send({ type: 'join', room: id });
  await p.next('joined');
  await sleep(500);
  p.room = id;
  return p;
}

// c joins p's room; everyone already there (and so their workers) sees it come in.
async function enter(c, p, others) {
  c.send({ type: 'join', room: p.room });
  await c.next('joined');
  for (const o of [p, ...others]) assert.equal((await o.next('peer_joined')).peer, c.peer);
}

// p's room, s1 (on A, may run the call) and s2 (on B, a colleague of c1) in it.
async function withColleague() {
  const p = await room();
  const s1 = await connect(A, staffToken(['provider'], { room: p.room }), { name: 'Dr Ana' });
  await enter(s1, p, []);
  const s2 = await connect(B, staffToken(), { name: 'Dr Bo' }); // in c1: joins any of its rooms
  await enter(s2, p, [s1]);
  return { p, s1, s2 };
}

// The refusal of one `remove`, with its request id echoed.
async function refused(c, peer, id) {
  c.send({ type: 'remove', peer, id });
  const e = await c.next((f) => f.type === 'error' && f.id === id);
  assert.equal(e.about, 'remove');
  return e.name;
}

test('staff remove an invitee on the other node: 4015, the others told, its link is spent', async () => {
  const p = await room();
  const s = await connect(A, staffToken(['provider'], { room: p.room }), { name: 'Dr Ana' });
  await enter(s, p, []);
  const iTok = inviteeToken(p.room);
  const i = await connect(B, iTok, { name: 'Family' });
  await enter(i, p, [s]);
  const away = await connect(B, staffToken(), { name: 'Dr Bo' }); // in no room

  // Who may not, and whom not.
  assert.equal(await refused(away, i.peer, 1), 'bad_state'); // not in a room
  assert.equal(await refused(p, i.peer, 2), 'forbidden'); // the patient
  assert.equal(await refused(i, s.peer, 3), 'forbidden'); // an invitee
  assert.equal(await refused(s, p.peer, 4), 'forbidden'); // the patient goes only with end
  assert.equal(await refused(s, s.peer, 5), 'forbidden'); // oneself: leave
  assert.equal(await refused(s, away.peer, 6), 'not_found'); // not in this room
  assert.equal(await refused(s, 'nobody', 7), 'not_found');
  assert.equal(i.closed, null);

  s.send({ type: 'remove', peer: i.peer, id: 8 });
  const own = await i.next('peer_left');
  assert.deepEqual([own.peer, own.reason], [i.peer, 'removed']);
  assert.equal(await i.waitClose(), 4015);
  assert.equal((await p.next(left(i.peer))).reason, 'removed');
  assert.equal((await s.next(left(i.peer))).reason, 'removed');
  assert.ok(!s.frames.some((f) => f.type === 'error'), 'the removal itself was refused');

  // Its session is gone: a resume fails (on either node), and its link opens no new session.
  for (const n of [B, A]) {
    const c = await new Client(n.url).open();
    c.send({ type: 'hello', token: iTok, resume: i.welcome.resume, last_seq: i.lastSeq });
    assert.equal((await c.next('error')).name, 'resume_failed');
    const e = await c.next('error');
    assert.equal(e.name, 'bad_token');
    assert.match(e.text, /invitation link was already used/);
    assert.equal(await c.waitClose(), 4001);
  }
  // The call goes on between the two left.
  s.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n' });
  assert.equal((await p.next('offer')).from, s.peer);
  for (const c of [p, s, away]) c.close();
});

test('an invitee removed by staff on its own node goes the same way', async () => {
  const p = await room();
  const s = await connect(A, staffToken(['provider'], { room: p.room }));
  await enter(s, p, []);
  const i = await connect(A, inviteeToken(p.room));
  await enter(i, p, [s]);
  s.send({ type: 'remove', peer: i.peer });
  assert.equal((await i.next('peer_left')).reason, 'removed');
  assert.equal(await i.waitClose(), 4015);
  assert.equal((await p.next(left(i.peer))).reason, 'removed');
  assert.equal((await s.next(left(i.peer))).reason, 'removed');
  for (const x of [p, s]) x.close();
});

test('staff remove a colleague on the other node: out of the room, still connected', async () => {
  const { p, s1, s2 } = await withColleague();
  s1.send({ type: 'remove', peer: s2.peer });
  const own = await s2.next('peer_left');
  assert.deepEqual([own.peer, own.reason, own.room], [s2.peer, 'removed', p.room]);
  assert.equal((await p.next(left(s2.peer))).reason, 'removed');
  assert.equal((await s1.next(left(s2.peer))).reason, 'removed');
  await sleep(300);
  assert.equal(s2.closed, null);
  // No longer in the room: calls refused, leave too; its session still answers.
  s2.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n', id: 1 });
  assert.equal((await s2.next('error')).name, 'bad_state');
  s2.send({ type: 'ping', t: 7 });
  assert.equal((await s2.next('pong')).t, 7);
  // A second removal of the same member finds it gone.
  assert.equal(await refused(s1, s2.peer, 9), 'not_found');
  for (const c of [p, s1, s2]) c.close();
});

// s1 (on A) removes s2 (on B) while node B's NATS server is stopped, and s2 leaves its room
// and joins `to`, which B handles itself: A checks the removal against s2 still in its room
// (s2's leave cannot reach A now); its pong says it did. Both waits at once, well under the 3 s
// of silence after which a worker counts as dead (bus.c). s2's `joined` in `to`.
async function removeWhileMoving(s1, s2, to) {
  kill(nats.procs[1], 'SIGSTOP');
  try {
    s1.send({ type: 'remove', peer: s2.peer });
    s1.send({ type: 'ping', t: 1 });
    s2.send({ type: 'leave' });
    s2.send({ type: 'join', room: to });
    const [pong, joined] = await Promise.all([s1.next('pong', 2000), s2.next('joined', 2000)]);
    assert.deepEqual([pong.t, joined.room], [1, to]);
    return joined;
  } finally {
    kill(nats.procs[1], 'SIGCONT');
  }
}

// The removal reaches the member's node a bus hop after the check: a colleague who left the
// room and joined another meanwhile gets the frame (it names the room it was for) and stays in
// the room it is in now. Node B's NATS server stops for a moment, so the removal waits there
// while B handles the colleague's leave and join itself.
test('a removal from a room the colleague has left since leaves it in its new room', async () => {
  const { p, s1, s2 } = await withColleague();
  const q = await room(B); // the room s2 moves to
  await removeWhileMoving(s1, s2, q.room);
  const own = await s2.next((f) => f.type === 'peer_left' && f.peer === s2.peer);
  assert.deepEqual([own.reason, own.room], ['removed', p.room]);
  // Still in q's room: a relay to its patient passes (bad_state if s2 had been taken out).
  s2.send({ type: 'offer', to: q.peer, sdp: 'v=0\r\n', id: 1 });
  assert.equal((await q.next('offer')).from, s2.peer);
  assert.ok(!s2.frames.some((f) => f.type === 'error'), JSON.stringify(s2.frames));
  assert.ok(!q.all.some(left(s2.peer)), 'q was told s2 left');
  // p's room saw s2 go by its own leave, not by the removal.
  assert.equal((await p.next(left(s2.peer))).reason, 'left');
  assert.equal((await s1.next(left(s2.peer))).reason, 'left');
  for (const c of [p, q, s1, s2]) c.close();
});

// The same within one room: the colleague leaves the room and joins it again before the
// removal reaches its node. The removal names the stay it was for (the `stay` of the first
// `joined`), the second stay has another, and the colleague stays in the room. Before, the
// removal named only the room and took it out of its new stay.
test('a removal from an earlier stay in the room leaves the colleague in its new stay', async () => {
  const { p, s1, s2 } = await withColleague();
  const first = s2.all.find((f) => f.type === 'joined');
  assert.ok(first.stay, 'joined names the stay');
  const again = await removeWhileMoving(s1, s2, p.room); // checked against the first stay
  assert.notEqual(again.stay, first.stay);
  const own = await s2.next((f) => f.type === 'peer_left' && f.peer === s2.peer);
  assert.deepEqual([own.reason, own.room, own.stay], ['removed', p.room, first.stay]);
  // Still in the room: a relay to its patient passes (bad_state if s2 had been taken out).
  s2.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n', id: 1 });
  assert.equal((await p.next('offer')).from, s2.peer);
  assert.ok(!s2.frames.some((f) => f.type === 'error'), JSON.stringify(s2.frames));
  // The others saw s2 leave by its own leave and come back, never removed.
  for (const o of [p, s1]) {
    assert.equal((await o.next(left(s2.peer))).reason, 'left');
    assert.equal((await o.next('peer_joined')).peer, s2.peer);
    assert.ok(!o.all.some((f) => left(s2.peer)(f) && f.reason === 'removed'), 'told s2 was removed');
  }
  for (const c of [p, s1, s2]) c.close();
});
