// A worker that stops answering for longer than the heartbeat timeout (3 s) while it still holds
// its clients, as an overloaded worker on a busy machine does: the other node declares it dead
// and promotes its backup copies. When it runs again it refuses the promotion of the sessions
// whose clients it still holds, the promoter yields, and nobody ends those sessions when the
// promoter's grace period runs out (docs/signal.md, "Overload"). Before, the promoted copy
// ended the session after the grace period and the owner closed the client with 4007.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  connect, freePort, kill, patientToken, rid, sleep, staffToken, startNats, startNode, stopAll,
  tmp, waitFor,
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
const own = new Set(); // NATS servers this file starts itself (restarted by the second test)
after(() => {
  for (const p of own) kill(p);
  stopAll();
});

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

// A NATS server of a two-server cluster, started here so that it can be killed and started
// again on the same ports.
function natsServer(name, client, route, other) {
  const log = path.join(tmp, `${name}.log`);
  const fd = fs.openSync(log, 'a');
  const p = spawn('nats-server', ['-a', '127.0.0.1', '-p', `${client}`, '--no_advertise', '--cluster_name', 'ov',
    '--cluster', `nats://127.0.0.1:${route}`, '--routes', `nats://127.0.0.1:${other}`],
  { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  own.add(p);
  p.on('exit', () => own.delete(p));
  p.logFile = log;
  return p;
}
const routes = (p) => fs.readFileSync(p.logFile, 'utf8').split('Route connection created').length - 1;

test('a worker cut off from NATS past the heartbeat timeout keeps its clients', async () => {
  // The promotion is published while the owner's NATS server is down: the owner never receives
  // it. It re-announces its sessions when it reconnects (or the promoter asks it before its
  // grace period ends), and the promoter yields.
  // As startNats (lib.mjs): a port found free may be taken before nats-server binds it, so a
  // cluster that has not formed in 15 s, or whose server exited, is started again on new ports.
  let c1, c2, r1, r2, n1, n2;
  for (let attempt = 1; ; attempt++) {
    [c1, c2, r1, r2] = [await freePort(), await freePort(), await freePort(), await freePort()];
    n1 = natsServer(`ov-nats1-${attempt}`, c1, r1, r2);
    n2 = natsServer(`ov-nats2-${attempt}`, c2, r2, r1);
    const exited = () => n1.exitCode !== null || n2.exitCode !== null;
    try {
      await waitFor(() => (routes(n1) > 0 && routes(n2) > 0) || exited(), 15000, 'the NATS cluster');
    } catch {
      /* not formed in time: below */
    }
    if (routes(n1) > 0 && routes(n2) > 0 && !exited()) break;
    kill(n1);
    kill(n2);
    assert.ok(attempt < 3, 'the NATS cluster did not form in 3 attempts');
  }
  const [C, D] = await Promise.all([
    startNode('oc', [`nats://127.0.0.1:${c1}`], { workers: 1, grace: `${GRACE_S}s` }),
    startNode('od', [`nats://127.0.0.1:${c2}`], { workers: 1, grace: `${GRACE_S}s` }),
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

  const before = routes(n2);
  kill(n1);
  await sleep(5000); // D's worker hears no heartbeat from C's and promotes the patient's copy
  n1 = natsServer('ov-nats1-again', c1, r1, r2);
  await waitFor(() => routes(n2) > before, 30000, 'the route back');

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
