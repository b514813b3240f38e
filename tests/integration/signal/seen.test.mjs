// Who is seeing a patient (protocol.md 5.3, 5.5, 5.6), across two nodes: the "seen by" mark
// goes with the clinician who leaves the patient's room (leave, bye, the end of its grace
// period), or moves to a colleague still in the room; a receptionist holds, releases and
// transfers only a patient nobody is seeing. A short grace period so that a dropped
// clinician's session ends within the test.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  connect, kill, patientToken, rid, sleep, staffToken, startNats, startNode, stopAll,
} from './lib.mjs';

let nats, A, B;
before(async () => {
  nats = await startNats();
  [A, B] = await Promise.all([
    startNode('a', nats.slice(0, 1), { grace: '2s' }),
    startNode('b', nats.slice(1), { grace: '2s' }),
  ]);
});
after(() => stopAll());

const upd = (peer) => (f) => f.type === 'queue_update' && f.peer === peer;

// A staff member on node, subscribed to knee, who knows of patient p (as call.test.mjs's
// `queued`: the subscription is repeated only to bound the wait for the bus).
async function watcher(node, p, roles = ['provider'], name = 'Dr') {
  const s = await connect(node, staffToken(roles), { name });
  for (let i = 0; ; i++) {
    s.send({ type: 'subscribe', clinic: 'c1', area: 'knee' });
    const snap = await s.next((f) => f.type === 'queue' && f.area === 'knee');
    if (snap.entries.some((e) => e.peer === p.peer)) return s;
    if (s.frames.some((f) => f.type === 'queue_add' && f.entry.peer === p.peer)) return s;
    assert.ok(i < 50, 'the patient never reached the staff member\'s worker');
    await sleep(100);
  }
}

async function patient(node, room = rid()) {
  const p = await connect(node, patientToken(room));
  p.send({ type: 'arrive', clinic: 'c1', area: 'knee', name: 'Zoë', consent: true });
  assert.equal((await p.next('wait')).status, 'waiting');
  p.room = room;
  return p;
}

// s takes p; every watcher sees it seen by s.
async function take(s, p, watchers) {
  s.send({ type: 'take', peer: p.peer });
  await s.next('joined');
  assert.equal((await p.next('wait')).status, 'seen');
  for (const w of watchers) assert.equal((await w.next(upd(p.peer))).by, s.peer);
}

// s takes p once its worker has caught up with the departures before (another worker's, over
// the bus): tried again after a refusal, at most 20 times. A take refused for good fails.
async function takeSoon(s, p) {
  for (let i = 0; ; i++) {
    s.send({ type: 'take', peer: p.peer });
    const f = await s.next((x) => x.type === 'joined' || x.type === 'error');
    if (f.type === 'joined') return f;
    assert.ok(i < 20, `take refused: ${f.name}`);
    await sleep(100);
  }
}

// Every watcher sees p waiting and seen by nobody; so does p.
async function released(p, watchers) {
  for (const w of watchers) {
    const u = await w.next(upd(p.peer));
    assert.deepEqual([u.status, u.by, u.by_name], ['waiting', undefined, undefined]);
  }
  assert.equal((await p.next('wait')).status, 'waiting');
}

test('a clinician who leaves, says bye or drops no longer marks the patient as seen', async () => {
  const p = await patient(B);
  const desk = await watcher(B, p, ['receptionist'], 'Desk');
  const s1 = await watcher(A, p, ['provider'], 'Dr Ana');
  const s2 = await watcher(B, p, ['provider'], 'Dr Bo');
  const s3 = await watcher(A, p, ['provider'], 'Dr Cy');
  const all = [desk, s2, s3];

  // leave: the colleague on the other node can take the patient at once (was: conflict).
  await take(s1, p, [desk, s1, s2, s3]);
  s1.send({ type: 'leave' });
  assert.equal((await p.next('peer_left')).reason, 'left');
  await released(p, [...all, s1]);
  await take(s2, p, [desk, s1, s2, s3]);

  // bye: the session ends at once.
  s2.send({ type: 'bye' });
  assert.equal((await p.next('peer_left')).reason, 'left');
  await released(p, [desk, s1, s3]);

  // A crash: the mark goes when the grace period ends, with the session.
  await take(s3, p, [desk, s1]);
  s3.close();
  assert.equal((await p.next('peer_left', 12000)).reason, 'dropped');
  await released(p, [desk, s1]);
  s1.send({ type: 'take', peer: p.peer });
  assert.equal((await s1.next('joined')).room, p.room);
  for (const c of [p, desk, s1]) c.close();
});

test('the mark moves to a colleague still in the room, then goes with them', async () => {
  const p = await patient(A);
  const desk = await watcher(B, p, ['receptionist'], 'Desk');
  const s1 = await watcher(A, p, ['provider'], 'Dr Ana');
  const s2 = await connect(B, staffToken(), { name: 'Dr Bo' });
  await take(s1, p, [desk]);
  s2.send({ type: 'join', room: p.room });
  await s2.next('joined');
  await s1.next('peer_joined'); // s1's worker knows s2 is in the room
  s1.send({ type: 'leave' });
  const u = await desk.next(upd(p.peer));
  assert.deepEqual([u.status, u.by, u.by_name], ['seen', s2.peer, 'Dr Bo']);
  // Still in a call: the receptionist may not move the patient out of it.
  desk.send({ type: 'transfer', peer: p.peer, area: 'hip' });
  assert.equal((await desk.next('error')).name, 'forbidden');
  s2.send({ type: 'leave' });
  await released(p, [desk]); // its first wait since the take: none came when the mark moved
  for (const c of [p, desk, s1, s2]) c.close();
});

test('a receptionist holds, releases and transfers only a patient nobody is seeing', async () => {
  const p = await patient(A);
  const desk = await watcher(B, p, ['receptionist'], 'Desk');
  const s1 = await watcher(A, p, ['provider'], 'Dr Ana');

  // A waiting patient: the receptionist's hold, and its release (was: forbidden).
  desk.send({ type: 'hold', peer: p.peer, on: true });
  assert.equal((await p.next('wait')).status, 'hold');
  assert.equal((await desk.next(upd(p.peer))).status, 'hold');
  desk.send({ type: 'hold', peer: p.peer, on: false, id: 2 });
  assert.equal((await p.next('wait')).status, 'waiting');
  assert.equal((await desk.next(upd(p.peer))).status, 'waiting');
  // s1's worker knows the patient is waiting again before s1 takes it.
  assert.deepEqual([(await s1.next(upd(p.peer))).status, (await s1.next(upd(p.peer))).status],
    ['hold', 'waiting']);

  // In a call: neither hold nor transfer (was: the transfer pulled the clinician out).
  await take(s1, p, [desk]);
  desk.send({ type: 'hold', peer: p.peer, on: true, id: 3 });
  assert.equal((await desk.next('error')).name, 'forbidden');
  desk.send({ type: 'transfer', peer: p.peer, area: 'hip', id: 4 });
  assert.equal((await desk.next('error')).name, 'forbidden');
  await sleep(300);
  assert.equal(s1.frames.filter((f) => f.type === 'peer_left').length, 0);
  // Held by the clinician: still theirs to release.
  s1.send({ type: 'hold', peer: p.peer, on: true });
  assert.equal((await desk.next(upd(p.peer))).status, 'hold');
  desk.send({ type: 'hold', peer: p.peer, on: false, id: 5 });
  assert.equal((await desk.next('error')).name, 'forbidden');
  // The clinician may transfer; the patient then waits in the new area and nobody sees it.
  s1.send({ type: 'transfer', peer: p.peer, area: 'hip' });
  assert.equal((await s1.next('peer_left')).reason, 'removed');
  const w = await p.next((f) => f.type === 'wait' && f.area === 'hip');
  assert.equal(w.status, 'waiting');
  for (const c of [p, desk, s1]) c.close();
});

// A patient taken by s1 (node A) and joined by s2 (node B), watched by a receptionist on A.
async function twoInTheRoom() {
  const p = await patient(A);
  const desk = await watcher(A, p, ['receptionist'], 'Desk');
  const s1 = await watcher(A, p, ['provider'], 'Dr Ana');
  const s2 = await watcher(B, p, ['provider'], 'Dr Bo');
  await take(s1, p, [desk, s2]);
  s2.send({ type: 'join', room: p.room });
  await s2.next('joined');
  await s1.next('peer_joined');
  return { p, desk, s1, s2 };
}

// Two staff members leave the patient's room at once, on two nodes (node B's NATS server
// stopped meanwhile): node A, not yet knowing that s2 left, moves the mark from s1 to s2; node
// B, not yet knowing that s1 left, sees no mark of s2's to undo. Once the bus runs again, s2's
// worker mends the mark it knows to be stale (docs/signal.md, "Who is seeing a patient"), and a
// colleague takes the patient.
test('two staff members leaving at once on two nodes: the mark does not stay behind', async () => {
  const { p, desk, s1, s2 } = await twoInTheRoom();
  await sleep(300); // every worker of both nodes knows s2 in the room
  kill(nats.procs[1], 'SIGSTOP');
  try {
    s1.send({ type: 'leave' });
    s2.send({ type: 'leave' });
    const moved = await desk.next(upd(p.peer), 1500);
    assert.equal(moved.by, s2.peer); // A's view: s2 still in the room
    await sleep(300);
  } finally {
    kill(nats.procs[1], 'SIGCONT');
  }
  await released(p, [desk]);
  const s3 = await connect(A, staffToken(), { name: 'Dr Cy' });
  assert.equal((await takeSoon(s3, p)).room, p.room);
  for (const c of [p, desk, s1, s2, s3]) c.close();
});

// As above, but s2 ends its session (bye): no worker holds it any more to mend the mark, which
// stays behind naming s2 (docs/signal.md, "Who is seeing a patient"). A mark whose holder is
// not in the patient's room counts as none: a colleague's take is not refused with conflict.
test('a mark left behind by a racing bye does not keep the patient from being taken', async () => {
  const { p, desk, s1, s2 } = await twoInTheRoom();
  await sleep(300);
  kill(nats.procs[1], 'SIGSTOP');
  try {
    s1.send({ type: 'leave' });
    s2.send({ type: 'bye' });
    assert.equal((await desk.next(upd(p.peer), 1500)).by, s2.peer);
    await sleep(300);
  } finally {
    kill(nats.procs[1], 'SIGCONT');
  }
  await p.next((f) => f.type === 'peer_left' && f.peer === s2.peer);
  const s3 = await connect(A, staffToken(), { name: 'Dr Cy' });
  assert.equal((await takeSoon(s3, p)).room, p.room);
  const u = await desk.next(upd(p.peer));
  assert.deepEqual([u.status, u.by, u.by_name], ['seen', s3.peer, 'Dr Cy']);
  for (const c of [p, desk, s1, s3]) c.close();
});
