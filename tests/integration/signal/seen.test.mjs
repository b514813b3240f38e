// Who is seeing a patient (protocol.md 5.3, 5.5, 5.6), across two nodes: the "seen by" mark
// goes with the clinician who leaves the patient's room (leave, bye, the end of its grace
// period), or moves to a colleague still in the room; a receptionist holds, releases and
// transfers only a patient nobody is seeing. A short grace period so that a dropped
// clinician's session ends within the test.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, patientToken, rid, staffToken, startNats, startNode, stopAll, sleep } from './lib.mjs';

let A, B;
before(async () => {
  const nats = await startNats();
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
