// An ended consultation stays ended on workers that were not there when it ended
// (docs/signal.md, "Ended rooms: a worker that starts later"; src/signal/invite.c,
// "Catching up"): a node added after the `end`, and then another one added after the node that
// ended it was killed, refuse the patient's token (still valid) in the room with not_found and
// close 4007. Each node runs two workers behind one port (SO_REUSEPORT), so several tries reach
// both workers of each node. And a node cut from NATS when the room ended, where the patient's
// token opened the room again meanwhile, ends that room once it is back (docs/signal.md, "Ended
// rooms: a worker cut from the bus"). And a patient whose node dies before it acts on the `end`
// is ended by its promoted backup, which holds the same `ended`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  Client, connect, kill, patientToken, rid, sleep, staffToken, startNats, startNode, stopAll,
  workersOf,
} from './lib.mjs';

let nats;
before(async () => {
  nats = await startNats();
});
after(() => stopAll());

// A new session on node n: a worker still catching up answers 4016 "busy" (come back later).
async function hello(n, token) {
  for (let i = 0; ; i++) {
    const c = await new Client(n.url).open();
    c.send({ type: 'hello', token });
    const w = await c.next('welcome').catch(() => null);
    if (w) {
      c.welcome = w;
      c.peer = w.peer;
      return c;
    }
    assert.equal(c.closed, 4016, 'refused only as busy');
    assert.ok(i < 40, 'still busy after 8 s');
    await sleep(200);
  }
}

// Staff client s joins the patient's room once its worker knows of it: the patient's record
// comes over the bus from the worker it joined on (not_found before), on another node or on
// the other worker of the same one.
async function joinKnown(s, room) {
  for (let i = 0; ; i++) {
    s.send({ type: 'join', room });
    const f = await s.next((x) => x.type === 'joined' || x.type === 'error');
    if (f.type === 'joined') return f;
    assert.equal(f.name, 'not_found');
    assert.ok(i < 50, 'the room never reached the clinician\'s worker');
    await sleep(100);
  }
}

// A consultation on node n: a patient (whose token is valid 30 minutes) and a clinician in it.
async function consultation(n) {
  const room = rid();
  const pTok = patientToken(room, { exp: Math.floor(Date.now() / 1000) + 1800 });
  const p = await connect(n, pTok);
  p.send({ type: 'join', room });
  await p.next('joined');
  const s = await connect(n, staffToken());
  await joinKnown(s, room);
  return { room, pTok, p, s };
}

// The patient's token neither opens the room again nor queues in it, on any worker of n.
async function refused(n, pTok, room) {
  for (let i = 0; i < 4; i++) {
    const again = await hello(n, pTok);
    again.send({ type: 'join', room });
    const e = await again.next('error');
    assert.equal(e.name, 'not_found', 'join in the ended room');
    assert.equal(await again.waitClose(), 4007);
    const queue = await hello(n, pTok);
    queue.send({ type: 'arrive', clinic: 'c1', area: 'knee', name: 'Zoë', consent: true });
    assert.equal((await queue.next('error')).name, 'not_found', 'arrive in the ended room');
    assert.equal(await queue.waitClose(), 4007);
  }
}

test('a node started after the end refuses the ended room, and so does one started after that node alone knew it', async () => {
  const A = await startNode('a', nats.slice(0, 1));
  const { room, pTok, p, s } = await consultation(A);
  s.send({ type: 'end' });
  assert.equal((await s.next('ended')).room, room);
  assert.equal(await p.waitClose(), 4007);
  s.close();

  // Node C starts after the end: its workers never heard the marker published then.
  const C = await startNode('c', nats.slice(1));
  await refused(C, pTok, room);

  // Node A goes (kill -9): only C's workers, which learnt the marker by catching up, know it.
  // Node D starts then and learns it from them.
  kill(A);
  await sleep(3500); // A's workers are declared dead: D does not wait on them
  const D = await startNode('d', nats.slice(0, 1));
  await refused(D, pTok, room);

  // Another room, never ended, still opens on the late nodes.
  const other = rid();
  const q = await hello(D, patientToken(other));
  q.send({ type: 'join', room: other });
  await q.next('joined');
  q.close();
});

// Node B (one worker) is cut from NATS (its server killed; no advertised URLs, so it cannot move
// to the other) while the room ends on node A: B never hears the marker, and the patient's token
// opens the room again there. Once B's server is back, B learns the marker (its catch-up, or A's
// answer to B's question) and ends the room it let open: the patient is told `ended` and closed
// with 4007, as by `end`. Before this, the patient stayed in the reopened room.
test('a room opened on a node cut from NATS when it ended is ended there once the node is back', async () => {
  const cut = await startNats({ name: 'ec', noAdvertise: true, restartable: true });
  const [A, B] = await Promise.all([
    startNode('ea', cut.slice(0, 1), { workers: 1 }),
    startNode('eb', cut.slice(1), { workers: 1 }),
  ]);
  const { room, pTok, p, s } = await consultation(A);

  kill(cut.procs[1]); // B's server: B hears nothing from now on
  s.send({ type: 'end' });
  assert.equal((await s.next('ended')).room, room);
  assert.equal(await p.waitClose(), 4007);
  s.close();

  // On B, cut: the token opens the room again (a session admitted while B's backlog allows).
  const again = await hello(B, pTok);
  again.send({ type: 'join', room });
  await again.next('joined');

  await cut.restart(1);
  const e = await again.next('ended', 15000);
  assert.equal(e.room, room);
  assert.equal(await again.waitClose(), 4007);
  // And the token opens it no more there.
  await refused(B, pTok, room);
  kill(A);
  kill(B);
});

// The patient's node stops before it applies the `end` of its room (sent by a clinician on the
// other node, which backs the patient's session up), and is killed: the backup, promoted, holds
// the `ended` its owner never acted on, and ends the session by it. Before, it only numbered the
// frame: the session stayed, in the ended room, and its client resumed into it.
test('a patient whose node dies before it applies the end is ended by its backup', async () => {
  const own = await startNats({ name: 'ep' });
  const [D, E] = await Promise.all([
    startNode('ed', own.slice(0, 1), { workers: 1 }),
    startNode('ee', own.slice(1), { workers: 1 }),
  ]);
  const room = rid();
  const pTok = patientToken(room, { exp: Math.floor(Date.now() / 1000) + 1800 });
  const p = await hello(D, pTok); // its backup: E's worker, the only other one
  p.send({ type: 'join', room });
  await p.next('joined');
  const s = await hello(E, staffToken());
  await joinKnown(s, room);
  await p.next('peer_joined');
  await sleep(500); // p's copy is on E

  const [worker] = workersOf(D.pid);
  assert.ok(worker, 'node D has its worker');
  process.kill(worker, 'SIGSTOP'); // D hears the `ended` but never acts on it
  s.send({ type: 'end' });
  assert.equal((await s.next('ended')).room, room);
  await sleep(300);
  kill(D); // the supervisor, then its stopped worker: D is gone
  process.kill(worker, 'SIGKILL');
  await sleep(5000); // E declares D's worker dead (3 s of silence) and promotes p's copy

  const back = await connect(E, pTok, { resume: p.welcome.resume, last_seq: p.lastSeq }, p);
  assert.equal(back.welcome.resumed, false, 'no session left to resume into');
  assert.equal((await back.next('error')).name, 'resume_failed');
  back.send({ type: 'join', room });
  assert.equal((await back.next('error')).name, 'not_found');
  assert.equal(await back.waitClose(), 4007);
  s.close();
  kill(E);
});
