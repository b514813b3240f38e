// A worker that stops answering for longer than the heartbeat timeout (3 s) while it still holds
// its clients, as an overloaded worker on a busy machine does: the other node declares it dead
// and promotes its backup copies. When it runs again it refuses the promotion of the sessions
// whose clients it still holds, the promoter yields, and nobody ends those sessions when the
// promoter's grace period runs out (docs/signal.md, "Overload"). Before, the promoted copy
// ended the session after the grace period and the owner closed the client with 4007.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import {
  connect, kill, patientToken, rid, sleep, staffToken, startNats, startNode, stopAll,
} from './lib.mjs';

const GRACE_S = 8;
let nats, A, B;
before(async () => {
  nats = await startNats();
  [A, B] = await Promise.all([
    startNode('oa', nats.slice(0, 1), { workers: 1, grace: `${GRACE_S}s` }),
    startNode('ob', nats.slice(1), { workers: 1, grace: `${GRACE_S}s` }),
  ]);
});
after(() => stopAll());

const workerOf = (node) => {
  const pid = Number(fs.readFileSync(`/proc/${node.pid}/task/${node.pid}/children`, 'utf8').trim());
  assert.ok(pid > 0, 'the node has a worker process');
  return { pid };
};

test('a worker stalled past the heartbeat timeout keeps its clients and its call', async () => {
  const room = rid();
  const token = patientToken(room);
  const p = await connect(A, token);
  const s = await connect(B, staffToken(), { name: 'Dr Ana' });
  p.send({ type: 'join', room });
  await p.next('joined');
  await sleep(300); // B's worker learns of the room before the staff member joins it
  s.send({ type: 'join', room });
  assert.deepEqual((await s.next('joined')).peers.map((x) => x.peer), [p.peer]);
  await p.next('peer_joined');

  // The patient's session is backed up on B's worker (the only worker of another node). Stop
  // A's worker for longer than the heartbeat timeout (but less than the grace period): B's
  // worker promotes its copy.
  const w = workerOf(A);
  kill(w, 'SIGSTOP');
  await sleep(5000);
  kill(w, 'SIGCONT');

  // Past the promoter's grace period: the session must still be A's, the client connected.
  await sleep((GRACE_S + 3) * 1000);
  assert.equal(p.closed, null, 'the patient was not closed');
  assert.ok(!s.frames.some((f) => f.type === 'peer_left'), 'the staff member saw no peer_left');

  // The call goes on both ways.
  s.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n' });
  assert.equal((await p.next('offer')).from, s.peer);
  p.send({ type: 'answer', to: s.peer, sdp: 'v=0\r\n' });
  assert.equal((await s.next('answer')).from, p.peer);
  p.ack();

  // And it still has a backup that survives A: kill -9 A, resume on B, the call goes on.
  const resume = p.welcome.resume;
  kill(A);
  p.close();
  await sleep(4500); // B notices A's death (3 s) and promotes its copy
  const p2 = await connect(B, token, { resume, last_seq: p.lastSeq });
  assert.equal(p2.welcome.peer, p.peer);
  assert.equal(p2.welcome.resumed, true);
  s.send({ type: 'candidate', to: p.peer, candidate: 'candidate:9 1 udp 1 192.0.2.1 9 typ host', mid: '0', mline: 0 });
  assert.equal((await p2.next('candidate')).from, s.peer);
  for (const c of [p2, s]) c.close();
});

test('a worker cut off from NATS past the heartbeat timeout keeps its clients', async () => {
  // The promotion is published while the owner's NATS server is down: the owner never receives
  // it. It re-announces its sessions when it reconnects (or the promoter asks it before its
  // grace period ends), and the promoter yields.
  // No advertised URLs: each node knows only its own server, and stays cut off while it is
  // down. Restartable: the server comes back on the same client port (lib.mjs).
  const ov = await startNats({ name: 'ov', noAdvertise: true, restartable: true });
  const [C, D] = await Promise.all([
    startNode('oc', ov.slice(0, 1), { workers: 1, grace: `${GRACE_S}s` }),
    startNode('od', ov.slice(1), { workers: 1, grace: `${GRACE_S}s` }),
  ]);
  const room = rid();
  const p = await connect(C, patientToken(room));
  const s = await connect(D, staffToken(), { name: 'Dr Ana' });
  p.send({ type: 'join', room });
  await p.next('joined');
  await sleep(300);
  s.send({ type: 'join', room });
  await s.next('joined');
  await p.next('peer_joined');

  kill(ov.procs[0]);
  await sleep(5000); // D's worker hears no heartbeat from C's and promotes the patient's copy
  await ov.restart(0);

  await sleep((GRACE_S + 4) * 1000);
  assert.equal(p.closed, null, 'the patient was not closed');
  assert.ok(!s.frames.some((f) => f.type === 'peer_left'), 'the staff member saw no peer_left');
  s.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n' });
  assert.equal((await p.next('offer', 15000)).from, s.peer);
  p.send({ type: 'answer', to: s.peer, sdp: 'v=0\r\n' });
  assert.equal((await s.next('answer')).from, p.peer);
  for (const c of [p, s]) c.close();
  kill(C);
  kill(D);
});
