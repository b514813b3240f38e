// The end of a consultation deletes what staff replay buffers hold about the patient
// (protocol.md 5.13, src/signal/purge.c): staff clients that never acknowledged the patient's
// frames resume after the end, one from its own node, one from its backup on the other node
// after kill -9 of its node, and get every seq from where they resume without a gap, the
// patient's frames as `redacted`, the other patient's as they were, and no byte of the
// patient's name, answers, SDP or candidates.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  connect, kill, patientToken, rid, sleep, staffToken, startNats, startNode, stopAll,
} from './lib.mjs';

let nats, A, B;
before(async () => {
  nats = await startNats();
  [A, B] = await Promise.all([startNode('a', nats.slice(0, 1)), startNode('b', nats.slice(1))]);
});
after(() => stopAll());

const NAME = 'Zelda Purgetest';
const SECRETS = [NAME, 'MARKER-E2E', '198.51.100.77'];

// What a resumed client got after last_seq `from` up to `to`: each seq once at least (a
// promoted backup may repeat some, 5.10.1), in order, and nothing of the patient.
async function replayed(c, from, to) {
  await c.next((f) => f.seq === to, 15000);
  const got = c.all.filter((f) => f.seq > 0);
  const seqs = [...new Set(got.map((f) => f.seq))];
  assert.deepEqual(seqs, Array.from({ length: to - from }, (_, i) => from + 1 + i));
  for (const f of got) {
    const text = JSON.stringify(f);
    for (const s of SECRETS) assert.ok(!text.includes(s), `seq ${f.seq} (${f.type}) holds ${s}`);
  }
  return got;
}

test('staff resuming after the end get no byte of the patient, and no gap in seq', async () => {
  const room = rid();
  const tA = staffToken();
  const tB = staffToken(['receptionist']);
  const sA = await connect(A, tA, { name: 'Dr Ana' });
  const sB = await connect(B, tB, { name: 'Desk' });
  for (const s of [sA, sB]) {
    s.send({ type: 'subscribe', clinic: 'c1', area: 'purge' });
    await s.next('queue');
  }
  await sleep(300);
  const fromA = sA.lastSeq;
  const fromB = sB.lastSeq;

  // Another patient waits throughout: what the staff got about them stays.
  const q = await connect(B, patientToken(rid(), { area: 'purge' }));
  q.send({ type: 'arrive', clinic: 'c1', area: 'purge', name: 'Quinn Stays', consent: true });
  await q.next('wait');
  const p = await connect(B, patientToken(room, { area: 'purge' }));
  p.send({ type: 'arrive', clinic: 'c1', area: 'purge', name: NAME, consent: true,
    answers: [{ q: 'reason', a: 'MARKER-E2E knee' }] });
  await p.next('wait');
  for (const s of [sA, sB]) {
    await s.next((f) => f.type === 'queue_add' && f.entry.peer === q.peer);
    assert.equal((await s.next((f) => f.type === 'queue_add' && f.entry.peer === p.peer)).entry.name, NAME);
  }
  sA.send({ type: 'take', peer: p.peer });
  assert.equal((await sA.next('joined')).peers[0].name, NAME);
  await p.next('peer_joined');
  sA.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n' });
  await p.next('offer');
  p.send({ type: 'answer', to: sA.peer, sdp: 'v=0\r\ns=MARKER-E2E\r\n' });
  p.send({ type: 'candidate', to: sA.peer, candidate: 'candidate:1 1 udp 1 198.51.100.77 9 typ host' });
  await sA.next('answer');
  await sA.next('candidate');
  await sB.next((f) => f.type === 'queue_update' && f.peer === p.peer);

  // The end. These clients never acknowledged anything: every frame is still in their buffers.
  sA.send({ type: 'end' });
  await sA.next('ended');
  assert.equal(await p.waitClose(), 4007);
  for (const s of [sA, sB]) await s.next((f) => f.type === 'queue_remove' && f.peer === p.peer);
  await sleep(700); // the patient's deletion reaches every worker of both nodes
  const toA = sA.lastSeq;
  const toB = sB.lastSeq;
  sA.close();
  sB.close();
  await sleep(300);

  // The receptionist resumes on its own node, from before either patient arrived.
  const rB = await connect(B, tB, { resume: sB.welcome.resume, last_seq: fromB });
  assert.equal(rB.welcome.resumed, true);
  const gotB = await replayed(rB, fromB, toB);
  assert.ok(gotB.some((f) => f.type === 'redacted'));
  assert.ok(gotB.some((f) => f.type === 'queue_add' && f.entry.name === 'Quinn Stays'));
  assert.ok(gotB.some((f) => f.type === 'queue_remove' && f.peer === p.peer && f.reason === 'ended'));

  // The clinician's node dies; its backup on the other node takes the session over, and its
  // copy of the buffer was purged too.
  kill(A);
  await sleep(500);
  const rA = await connect(B, tA, { resume: sA.welcome.resume, last_seq: fromA });
  assert.equal(rA.welcome.resumed, true);
  const gotA = await replayed(rA, fromA, toA);
  assert.ok(gotA.some((f) => f.type === 'redacted'));
  assert.ok(gotA.some((f) => f.type === 'ended'));
  assert.ok(gotA.some((f) => f.type === 'queue_add' && f.entry.name === 'Quinn Stays'));
  const joined = gotA.find((f) => f.type === 'joined');
  assert.deepEqual(joined.peers, []); // rebuilt without the patient
  for (const c of [rA, rB, q]) c.close();
});
