// A node stopped gracefully (SIGTERM, as `anteroom up` or a rolling restart does) mid-call
// hands its sessions over explicitly: each worker sends its backups what it numbered, says on
// the bus that it leaves, and only then closes its clients, so the other node promotes its
// backup copies at once (docs/signal.md, "Graceful stop"). Before, the other node waited for
// the heartbeat timeout (3 s, logged as signal_worker_silent) and the clients' resumes waited
// with it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import {
  connect, kill, patientToken, rid, sleep, staffToken, startNats, startNode, stopAll, waitFor,
} from './lib.mjs';

// The heartbeat timeout is 3 s after the last heartbeat, and a worker sends one a second, so
// without an explicit hand-over no resume can finish within 2 s of the SIGTERM.
const BOUND_MS = 2000;

let nats, A, B;
before(async () => {
  nats = await startNats();
  B = await startNode('sb', nats.slice(1));
  A = await startNode('sa', nats.slice(0, 1), { drainUrls: [B.url] });
});
after(() => stopAll());

const log = (node) => fs.readFileSync(node.logFile, 'utf8');
const names = (frames) => frames.filter((f) => f.type === 'candidate').map((f) => f.candidate.split(' ')[0]);

async function call(patientNode, staffNode) {
  const room = rid();
  const token = patientToken(room);
  const sToken = staffToken();
  const p = await connect(patientNode, token);
  const s = await connect(staffNode, sToken, { name: 'Dr Ana' });
  p.send({ type: 'join', room });
  await p.next('joined');
  await sleep(300); // the staff member's worker learns of the room first
  s.send({ type: 'join', room });
  await s.next('joined');
  await p.next('peer_joined');
  p.token = token;
  s.token = sToken;
  return { p, s };
}

// Waits for the old connection to close, then resumes on node B as a client does; resolves to
// the new client and the time from t0 to its welcome.
async function resumeOnB(old, t0) {
  const code = await old.waitClose(8000);
  const c = await connect(B, old.token, { resume: old.welcome.resume, last_seq: old.lastSeq }, old);
  return { c, code, ms: Date.now() - t0 };
}

test('SIGTERM mid-call: sessions move at once, every frame sent meanwhile arrives once, in order', async () => {
  // Call 1 across the nodes (patient on A); call 2 with both peers on A.
  const one = await call(A, B);
  const two = await call(A, A);
  await sleep(1200); // backups placed on B (a node that just started may place them late)

  // The staff member on B keeps sending candidates to the patient on A throughout the stop.
  let n = 0;
  const stream = setInterval(() => {
    one.s.send({ type: 'candidate', to: one.p.peer, candidate: `candidate:${n++} 1 udp 1 192.0.2.1 9 typ host` });
  }, 20);
  await sleep(400);

  const t0 = Date.now();
  kill(A, 'SIGTERM');
  const moved = await Promise.all([one.p, two.p, two.s].map((c) => resumeOnB(c, t0)));
  await sleep(400);
  clearInterval(stream);
  const sent = n;

  for (const [i, m] of moved.entries()) {
    assert.equal(m.c.welcome.resumed, true, `client ${i} got its session back`);
    assert.equal(m.code, 4014, `client ${i} closed as going away`);
  }
  const slowest = Math.max(...moved.map((m) => m.ms));
  console.log(`# resumed on the other node ${moved.map((m) => m.ms).join(', ')} ms after SIGTERM`);

  // The promotion came from the announcement, not from the heartbeat timeout.
  await waitFor(() => /signal_worker_left/.test(log(B)), 3000, 'signal_worker_left on B');
  assert.ok(!/signal_worker_silent/.test(log(B)), 'B never waited for the heartbeat timeout');
  assert.ok(slowest < BOUND_MS, `every client resumed within ${BOUND_MS} ms (slowest ${slowest} ms)`);

  // Every candidate sent meanwhile reached the patient once, in order, over the old connection
  // and the new one (duplicates dropped by frame id, protocol.md 5.10.1).
  const p1 = moved[0].c;
  const want = Array.from({ length: sent }, (_, i) => `candidate:${i}`);
  await waitFor(() => names(one.p.all).length + names(p1.all).length >= sent, 5000, 'every candidate');
  await sleep(200);
  assert.deepEqual([...names(one.p.all), ...names(p1.all)], want);

  // The drain-url told the clients where to go before the close.
  for (const c of [one.p, two.p, two.s]) {
    const d = c.all.find((f) => f.type === 'drain');
    assert.ok(d, 'a drain frame before the close');
    assert.deepEqual(d.urls, [B.url]);
    assert.equal(d.within, 0);
  }

  // Both calls go on from node B.
  one.s.send({ type: 'offer', to: one.p.peer, sdp: 'v=0\r\n' });
  assert.equal((await p1.next('offer')).from, one.s.peer);
  p1.send({ type: 'answer', to: one.s.peer, sdp: 'v=0\r\n' });
  assert.equal((await one.s.next('answer')).from, one.p.peer);
  const [p2, s2] = [moved[1].c, moved[2].c];
  s2.send({ type: 'offer', to: p2.peer, sdp: 'v=0\r\n' });
  assert.equal((await p2.next('offer')).from, s2.peer);
  p2.send({ type: 'answer', to: s2.peer, sdp: 'v=0\r\n' });
  assert.equal((await s2.next('answer')).from, p2.peer);

  // The stop is bounded: the node (supervisor and workers) is gone.
  await waitFor(() => A.exitCode !== null || A.signalCode !== null, 8000, 'node A to exit');
  for (const c of [one.s, p1, p2, s2]) c.close();
});
