// A drain paced by the server (docs/signal.md, "Drain"): a node holding 200 connections (100
// calls, both members of each on the draining node) tells them to go in batches over the first
// half of drain-within, not all at once, so that their moves (a token from the app, a resume on
// another node) are spread too. Every client that moves resumes its session on the other node
// and its call goes on; the ones that do not move are closed with 4006 when drain-within runs
// out, and resume then.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  connect, inviteeToken, lowPorts, patientToken, rid, sleep, startNats, startNode, stopAll, waitFor,
} from './lib.mjs';

const CALLS = 100;
const STRAGGLERS = 10; // calls whose two clients ignore the drain
const WITHIN_S = 6; // the drain frames go out over the first 3 s

let nats, A, C, workerUrls;
before(async () => {
  nats = await startNats();
  A = await startNode('spread-a', nats.slice(0, 1), { maxPerAddr: 400 });
  // Both members of a call on one worker of C (its worker port): an invitee joining on the other
  // worker before that one heard over the bus that the patient opened the room is refused (4007).
  const wp = await lowPorts(2);
  C = await startNode('spread-c', nats.slice(1), { maxPerAddr: 400, drainUrls: [A.url],
    drainWithin: `${WITHIN_S}s`, args: ['--worker-port', `${wp}`] });
  workerUrls = [0, 1].map((i) => `ws://127.0.0.1:${wp + i}/ws`);
});
after(() => stopAll());

// Adds to client c what a browser client would note: when each drain frame arrived.
function watch(c) {
  c.drains = [];
  c.ws.on('message', (data) => {
    try {
      const f = JSON.parse(data.toString());
      if (f.type === 'drain') c.drains.push({ at: Date.now(), within: f.within, urls: f.urls });
    } catch { /* not JSON: the Client fails on it */ }
  });
  c.ws.on('close', () => { c.closedAt = Date.now(); });
  return c;
}

async function call(url) {
  const room = rid();
  const pTok = patientToken(room);
  const p = watch(await connect(url, pTok));
  p.token = pTok;
  p.send({ type: 'join', room });
  await p.next('joined');
  const qTok = inviteeToken(room);
  const q = watch(await connect(url, qTok));
  q.token = qTok;
  q.send({ type: 'join', room });
  await q.next('joined');
  await p.next('peer_joined');
  return { p, q };
}

// A client moving on a drain as protocol.md 5.12 says: it resumes on the URL it was given and
// leaves the old connection to the hand-over (closed 4010). A straggler stays until the node
// closes it (4006), then resumes.
async function move(c, straggler) {
  await waitFor(() => c.drains.length > 0, 15000, 'a drain frame');
  if (straggler) assert.equal(await c.waitClose(15000), 4006, 'a straggler is closed drained');
  const n = await connect(c.drains[0].urls[0], c.token,
    { resume: c.welcome.resume, last_seq: c.lastSeq }, c);
  assert.equal(n.welcome.resumed, true, 'the session resumed on the other node');
  assert.equal(n.peer, c.peer);
  if (!straggler) assert.ok([4006, 4010].includes(await c.waitClose(15000)));
  return n;
}

async function drained(node) {
  let sum = 0;
  for (let i = 0; i < 2; i++) {
    const r = await fetch(`http://127.0.0.1:${node.metrics + i}/metrics`);
    const line = (await r.text()).split('\n').find((l) => l.startsWith('anteroom_signal_drained_total'));
    sum += line ? Number(line.split(' ').pop()) : 0;
  }
  return sum;
}

test('drain: 200 clients told over the first half of drain-within, all resume, no call drops', async (t) => {
  const calls = [];
  for (let i = 0; i < CALLS; i += 10)
    calls.push(...await Promise.all([...Array(10)].map((_, j) => call(workerUrls[j % 2]))));
  const clients = calls.flatMap(({ p, q }) => [p, q]);
  assert.equal(clients.length, 2 * CALLS);

  const t0 = Date.now();
  const r = await fetch(`http://127.0.0.1:${C.metrics}/drain`, { method: 'POST' });
  assert.equal(r.status, 202);
  const moved = await Promise.all(calls.map(async ({ p, q }, i) => {
    const straggler = i < STRAGGLERS;
    const [p2, q2] = await Promise.all([move(p, straggler), move(q, straggler)]);
    return { p, q, p2, q2 };
  }));

  // Every client got exactly one drain frame, naming A, within the first half of drain-within:
  // `within`, the seconds left until the close, is at least half of it.
  const drains = clients.map((c) => {
    assert.equal(c.drains.length, 1, 'one drain frame per connection');
    assert.deepEqual(c.drains[0].urls, [A.url]);
    return c.drains[0];
  });
  const arrivals = drains.map((d) => d.at);
  const first = Math.min(...arrivals);
  const last = Math.max(...arrivals);
  const withins = drains.map((d) => d.within);
  const per = [...new Set(withins)].sort((a, b) => b - a).map((w) => `${w}:${withins.filter((x) => x === w).length}`);
  t.diagnostic(`drain frames: first ${first - t0} ms after the request, last ${last - t0} ms; ` +
    `within (s): frames ${per.join(' ')}`);
  assert.ok(Math.min(...withins) >= WITHIN_S / 2,
    `every drain frame went out in the first half (within: ${Math.min(...withins)}..${Math.max(...withins)})`);
  assert.ok(Math.max(...withins) <= WITHIN_S);
  assert.ok(new Set(withins).size >= 2, `the frames went out over several ticks: ${[...new Set(withins)]}`);
  // Spread in time at the clients (told all at once, they arrived within a few ms).
  assert.ok(last - first >= 1000, `drain frames spread: first to last ${last - first} ms`);
  // None later than the first half: the drain starts at the worker's next tick (up to 1 s after
  // the request), then 3 s; with a margin for a loaded machine, still before the close.
  assert.ok(last - t0 <= 1000 + (WITHIN_S / 2) * 1000 + 1500, `last drain frame ${last - t0} ms after the request`);

  // The stragglers were closed at the end of drain-within, after everyone was told.
  for (const { p, q } of moved.slice(0, STRAGGLERS)) {
    for (const c of [p, q]) {
      assert.ok(c.closedAt - first >= (WITHIN_S - 1) * 1000,
        `a straggler closed ${c.closedAt - first} ms after the first drain frame`);
      assert.ok(c.closedAt > last);
    }
  }
  assert.equal(await drained(C), 2 * STRAGGLERS, 'only the stragglers were closed by the drain');

  // Every call goes on across the move: an offer and an answer through node A, and nobody
  // heard of a peer leaving.
  await Promise.all(moved.map(async ({ p2, q2 }) => {
    p2.send({ type: 'offer', to: q2.peer, sdp: 'v=0\r\n' });
    assert.equal((await q2.next('offer', 15000)).from, p2.peer);
    q2.send({ type: 'answer', to: p2.peer, sdp: 'v=0\r\n' });
    assert.equal((await p2.next('answer', 15000)).from, q2.peer);
  }));
  await sleep(300);
  for (const { p, q, p2, q2 } of moved) {
    for (const c of [p, q, p2, q2]) {
      assert.deepEqual(c.all.filter((f) => f.type === 'peer_left' || f.type === 'ended'), [],
        'the call did not drop');
    }
  }
  for (const { p2, q2 } of moved) {
    p2.close();
    q2.close();
  }
});
