// A consultation across two signalling nodes joined over a two-server NATS cluster:
// waiting-area presence on both nodes, take, offer/answer/candidates, quality, hold, transfer,
// staff messages, the room limit, end; then drain, and resume after kill -9 of a node (peers on
// two nodes, and both peers on one worker); the ping that asks for an acknowledgement.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import {
  Client, connect, inviteeToken, kill, ORIGIN, patientToken, rid, sleep, staffToken, startNats,
  startNode, stopAll, waitFor, workersOf,
} from './lib.mjs';

// The browser client itself (web/js/signal.js) where a test needs its own behaviour (the drain
// move): npm `ws` stands in for the browser's WebSocket, with the Origin a page would send.
globalThis.WebSocket = class extends WebSocket {
  constructor(url, protocol) {
    super(url, protocol, { origin: ORIGIN });
  }
};
const { SignalClient } = await import('../../../web/js/signal.js');
const webClients = [];
after(() => webClients.forEach((c) => c.close()));

let nats, A, B;
before(async () => {
  nats = await startNats();
  [A, B] = await Promise.all([startNode('a', nats.slice(0, 1)), startNode('b', nats.slice(1))]);
});
after(() => stopAll());

// Subscribes staff client s to an area and waits until it sees patient peer there, in the
// snapshot or in a queue_add. A patient's `wait` does not wait for the bus when the patient's
// frames stay on one worker (docs/signal.md, "Local delivery"), so other workers may not know
// of the arrival yet; the queue_add then comes from the patient's worker or, if that one did
// not know of the subscription yet, from the subscriber's (docs/signal.md, "Queue snapshot and
// deltas"). The subscription is repeated (each answers with a fresh snapshot) only to bound the
// wait on a loaded machine.
async function queued(s, area, peer) {
  for (let i = 0; ; i++) {
    s.send({ type: 'subscribe', clinic: 'c1', area });
    const snap = await s.next((f) => f.type === 'queue' && f.area === area);
    if (snap.entries.some((e) => e.peer === peer)) return;
    if (s.frames.some((f) => f.type === 'queue_add' && f.entry.peer === peer)) return;
    assert.ok(i < 50, 'the patient never reached the staff member\'s worker');
    await sleep(100);
  }
}

test('a call set up across nodes, with presence on both', async () => {
  const room = rid();
  const sA = await connect(A, staffToken(), { name: 'Dr Ana' });
  const sB = await connect(B, staffToken(['receptionist']), { name: 'Desk' });
  sA.send({ type: 'subscribe', clinic: 'c1', area: 'knee' });
  sB.send({ type: 'subscribe', clinic: 'c1', area: 'knee' });
  await sA.next('queue');
  await sB.next('queue');
  await sleep(300);

  const pTok = patientToken(room);
  const p = await connect(B, pTok);
  assert.equal(p.welcome.role, 'patient');
  p.send({ type: 'arrive', clinic: 'c1', area: 'knee', name: 'Zoë', consent: true,
    answers: [{ q: 'reason', a: 'Knee pain' }] });
  assert.equal((await p.next('wait')).status, 'waiting');
  for (const s of [sA, sB]) {
    const add = await s.next('queue_add');
    assert.equal(add.entry.peer, p.peer);
    assert.equal(add.entry.name, 'Zoë');
    assert.equal(add.entry.answers[0].a, 'Knee pain');
  }

  // A second patient on the other node: the first never hears of it (P3).
  const p2 = await connect(A, patientToken(rid()));
  p2.send({ type: 'arrive', clinic: 'c1', area: 'knee', name: 'Other', consent: true });
  await p2.next('wait');
  assert.equal((await sB.next('queue_add')).entry.peer, p2.peer);

  // A patient resynchronising after `error lost` (protocol.md 5.10) subscribes to its clinic:
  // the answer is its own `wait` status, never the queue; another clinic is forbidden.
  p.send({ type: 'subscribe', clinic: 'c1', area: 'knee' });
  const own = await p.next('wait');
  assert.deepEqual([own.area, own.status], ['knee', 'waiting']);
  p.send({ type: 'subscribe', clinic: 'c2', area: 'knee', id: 8 });
  assert.equal((await p.next('error')).name, 'forbidden');
  assert.equal(p.frames.filter((f) => f.type.startsWith('queue')).length, 0);

  // Staff message, then the receptionist may not take the patient.
  sB.send({ type: 'message', to: p.peer, text: 'Running 10 minutes late.' });
  assert.equal((await p.next('message')).text, 'Running 10 minutes late.');
  sB.send({ type: 'take', peer: p.peer, id: 3 });
  assert.equal((await sB.next('error')).name, 'forbidden');

  sA.send({ type: 'take', peer: p.peer });
  const joined = await sA.next('joined');
  assert.equal(joined.room, room);
  assert.deepEqual(joined.peers.map((x) => x.peer), [p.peer]);
  assert.equal((await p.next('wait')).status, 'seen');
  assert.equal((await p.next('peer_joined')).name, 'Dr Ana');
  const upd = await sB.next('queue_update');
  assert.equal(upd.status, 'seen');
  assert.equal(upd.by, sA.peer);

  // A colleague cannot take a patient already being seen.
  const sA2 = await connect(B, staffToken());
  sA2.send({ type: 'take', peer: p.peer });
  assert.equal((await sA2.next('error')).name, 'conflict');

  sA.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n' });
  const offer = await p.next('offer');
  assert.equal(offer.from, sA.peer);
  assert.match(offer.sdp, /^v=0/);
  p.send({ type: 'answer', to: sA.peer, sdp: 'v=0\r\n' });
  assert.equal((await sA.next('answer')).from, p.peer);
  for (let i = 0; i < 4; i++)
    sA.send({ type: 'candidate', to: p.peer, candidate: `candidate:${i} 1 udp 1 192.0.2.1 ${i} typ host`, mid: '0', mline: 0 });
  p.send({ type: 'candidate', to: sA.peer, candidate: '' });
  for (let i = 0; i < 4; i++) assert.equal((await p.next('candidate')).candidate.split(' ')[0], `candidate:${i}`);
  assert.equal((await sA.next('candidate')).candidate, '');
  // ICE restart is another offer.
  sA.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n', restart: true });
  assert.equal((await p.next('offer')).restart, true);

  // Quality: staff only, to everyone.
  p.send({ type: 'quality', profile: 'low' });
  assert.equal((await p.next('error')).name, 'forbidden');
  sA.send({ type: 'quality', profile: 'low' });
  assert.equal((await p.next('quality')).profile, 'low');
  assert.equal((await sA.next('quality')).by, sA.peer);

  // Hold: the patient sees the waiting screen; offers to them are refused.
  sA.send({ type: 'hold', peer: p.peer, on: true });
  assert.equal((await p.next('wait')).status, 'hold');
  assert.equal((await sA.next('hold')).on, true);
  sA.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n' });
  assert.equal((await sA.next('error')).name, 'bad_state');
  sA.send({ type: 'hold', peer: p.peer, on: false });
  assert.equal((await p.next('wait')).status, 'seen');

  // An interpreter and a relative join (four in all); a fifth is refused and closed (4005).
  const i1 = await connect(A, inviteeToken(room, { lang: 'uk' }), { name: 'Interpreter' });
  i1.send({ type: 'join', room });
  const j1 = await i1.next('joined');
  assert.equal(j1.peers.length, 2);
  assert.equal((await sA.next('peer_joined')).lang, 'uk');
  const i2 = await connect(B, inviteeToken(room), { name: 'Family' });
  i2.send({ type: 'join', room });
  await i2.next('joined');
  const i3 = await connect(B, inviteeToken(room), { name: 'Fifth' });
  i3.send({ type: 'join', room });
  assert.equal((await i3.next('error')).name, 'room_full');
  assert.equal(await i3.waitClose(), 4005);
  // An invitee token opens no other room.
  const i4 = await connect(A, inviteeToken(room));
  i4.send({ type: 'join', room: rid() });
  assert.equal((await i4.next('error')).name, 'forbidden');

  // End: the room goes; the patient and the invitees are closed with 4007; staff stay.
  sA.send({ type: 'end' });
  assert.equal((await sA.next('ended')).room, room);
  assert.equal((await p.next('ended')).reason, 'ended');
  assert.equal(await p.waitClose(), 4007);
  assert.equal(await i1.waitClose(), 4007);
  assert.equal((await sB.next((f) => f.type === 'queue_remove' && f.peer === p.peer)).reason, 'ended');
  // Nothing about the patient remains: a staff subscription sees only the other patient.
  sA.send({ type: 'subscribe', clinic: 'c1', area: 'knee' });
  await sleep(300);
  const snap = await sA.next('queue');
  assert.deepEqual(snap.entries.map((e) => e.peer), [p2.peer]);
  // The other patient received nothing but its own status.
  assert.deepEqual(p2.frames.map((f) => f.type), []);
  // The room is gone for good on every node and worker (5.13): the patient's token, still
  // valid, neither opens it again nor queues in it again, on the node that ended it or the other.
  await sleep(300);
  for (const n of [A, A, B, B]) {
    const again = await connect(n, pTok);
    again.send({ type: 'join', room });
    assert.equal((await again.next('error')).name, 'not_found');
    assert.equal(await again.waitClose(), 4007);
    const queue = await connect(n, pTok);
    queue.send({ type: 'arrive', clinic: 'c1', area: 'knee', name: 'Zoë', consent: true });
    assert.equal((await queue.next('error')).name, 'not_found');
    assert.equal(await queue.waitClose(), 4007);
  }

  // Transfer the other patient to another area.
  sB.send({ type: 'subscribe', clinic: 'c1', area: 'hip' });
  await sB.next((f) => f.type === 'queue' && f.area === 'hip');
  await sleep(300); // the subscription reaches the other node's workers over NATS
  sA.send({ type: 'transfer', peer: p2.peer, area: 'hip' });
  assert.equal((await p2.next('wait')).area, 'hip');
  assert.equal((await sB.next((f) => f.type === 'queue_remove' && f.peer === p2.peer)).reason, 'transferred');
  assert.equal((await sB.next((f) => f.type === 'queue_add' && f.area === 'hip')).entry.peer, p2.peer);
  for (const c of [sA, sB, sA2, p2, i2, i4]) c.close();
});

// docs/signal.md, "Invite links": an invite token opens one session in the jurisdiction,
// whichever node and worker it is used on first. Each node runs two workers behind one port
// (SO_REUSEPORT), so several tries reach both workers of each node.
async function refusedAsUsed(node, token) {
  const c = await new Client(node.url).open();
  c.send({ type: 'hello', token });
  const e = await c.next('error');
  assert.equal(e.name, 'bad_token');
  assert.match(e.text, /invitation link was already used/);
  assert.equal(await c.waitClose(), 4001);
}

// A patient opens room on node n and every worker hears of it: an invitee opens no room
// (protocol 5.7), and one whose worker has not heard of the room yet is refused.
async function opened(n, room) {
  const host = await connect(n, patientToken(room));
  host.send({ type: 'join', room });
  await host.next('joined');
  await sleep(500);
  return host;
}

test('an invite link is one-use across nodes; a racing second use is ended', async () => {
  const room = rid();
  const token = inviteeToken(room);
  const host = await opened(A, room);
  const first = await connect(A, token, { name: 'Interpreter' });
  first.send({ type: 'join', room });
  await first.next('joined');
  // The claim reaches every worker over NATS; until it does, a second use would be let in and
  // ended right after (the case below), so wait until node B refuses it outright.
  for (let i = 0; ; i++) {
    const c = await new Client(B.url).open();
    c.send({ type: 'hello', token });
    const f = await c.next((x) => x.type === 'welcome' || x.type === 'error');
    c.close();
    if (f.type === 'error') break;
    assert.ok(i < 50, 'the claim never reached node B');
    await sleep(100);
  }
  for (let i = 0; i < 6; i++) await refusedAsUsed(B, token);
  for (let i = 0; i < 6; i++) await refusedAsUsed(A, token);
  // The first session is untouched.
  const s = await connect(A, staffToken(['provider'], { room }), { name: 'Dr' });
  s.send({ type: 'join', room });
  await s.next('joined');
  assert.equal((await first.next('peer_joined')).peer, s.peer);
  assert.equal(first.closed, null);

  // A fresh link used on both nodes at once: both may be let in before their claims cross on
  // the bus; then every worker ranks the claims alike and the later session is ended. Either
  // way exactly one session stays.
  const room2 = rid();
  const token2 = inviteeToken(room2);
  const host2 = await opened(A, room2);
  const both = await Promise.all([A, B].map(async (n) => {
    const c = await new Client(n.url).open();
    c.send({ type: 'hello', token: token2 });
    return c;
  }));
  const outcome = await Promise.any(both.map((c) => c.next('error', 15000).then((e) => ({ c, e }))));
  const keeper = outcome.c === both[0] ? both[1] : both[0];
  assert.equal(outcome.e.name, 'bad_token');
  assert.match(outcome.e.text, /invitation link was already used/);
  assert.equal(await outcome.c.waitClose(), 4001);
  await keeper.next('welcome');
  keeper.send({ type: 'join', room: room2 });
  await keeper.next('joined');
  await sleep(500);
  assert.equal(keeper.closed, null);
  assert.ok(!keeper.frames.some((f) => f.type === 'error'));
  for (const c of [first, s, keeper, host, host2]) c.close();
});

// A frame dropped from a worker's bus inbox (over inbox-max) is counted and its session told
// (error lost, protocol.md 5.10), live or when it resumes, instead of silently missing it. Node
// D holds at most 16 KiB of bus messages: an offer of about 32 KB for a peer on D is always
// dropped there, smaller frames pass.
async function scrape(port) {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

test('a frame dropped from a full bus inbox is counted and reported to its client', async () => {
  const D = await startNode('d', nats.slice(1), { workers: 1, inboxMax: '16k' });
  const room = rid();
  const dToken = patientToken(room); // two sessions of a patient token: each may open the room
  const onD = await connect(D, dToken);
  const onA = await connect(A, patientToken(room));
  onA.send({ type: 'join', room });
  await onA.next('joined');
  // A join answered before the other node's join record arrived lists nobody (the bus's delay):
  // join again until node D's view has the peer on A. The peer on A hears of each join and
  // leave (from node A's worker when node D's did not know of it: racing joins), and takes
  // them here, so the peer_joined awaited below is the last join's.
  const aboutD = (type) => (f) => f.type === type && f.peer === onD.peer;
  for (let i = 0; ; i++) {
    onD.send({ type: 'join', room });
    if ((await onD.next('joined')).peers.some((x) => x.peer === onA.peer)) break;
    assert.ok(i < 50, 'node D never learnt of the peer on node A');
    await onA.next(aboutD('peer_joined'));
    onD.send({ type: 'leave' });
    await onA.next(aboutD('peer_left'));
    await sleep(100);
  }
  // Announced to the peer on A after node A applied D's record: A knows both are in the room.
  await onA.next(aboutD('peer_joined'));
  const big = `v=0\r\n${'a=x-pad:0123456789abcdef\r\n'.repeat(1200)}`; // about 32 KB
  const cand = (n) => ({ type: 'candidate', to: onD.peer, candidate: `candidate:${n} 1 udp 1 192.0.2.1 ${n} typ host` });
  onA.send(cand(1));
  const c1 = await onD.next('candidate');
  onA.send({ type: 'offer', to: onD.peer, sdp: big });
  const lost = await onD.next('error');
  assert.equal(lost.name, 'lost');
  assert.equal(lost.code, 21);
  assert.match(lost.text, new RegExp(`^1 messages for this session were lost after seq ${c1.seq}$`));
  // What follows is numbered on without a gap: the client cannot tell the loss from the seqs.
  onA.send(cand(2));
  assert.equal((await onD.next('candidate')).seq, c1.seq + 1);
  assert.ok(!onD.frames.some((f) => f.type === 'offer'));
  assert.match(await scrape(D.metrics), /^anteroom_signal_bus_dropped_total\{kind="frame"\} 1$/m);

  // Lost while away: told right after the welcome of the resume.
  onD.close();
  await sleep(300);
  onA.send({ type: 'offer', to: onD.peer, sdp: big });
  onA.send(cand(3));
  await sleep(500);
  const back = await connect(D, dToken, { resume: onD.welcome.resume, last_seq: onD.lastSeq });
  assert.equal(back.welcome.resumed, true);
  const again = await back.next('error');
  assert.equal(again.name, 'lost');
  assert.equal((await back.next('candidate')).candidate, cand(3).candidate);
  assert.match(await scrape(D.metrics), /^anteroom_signal_bus_dropped_total\{kind="frame"\} 2$/m);

  // Lost while away, resumed through another node: the note goes with the hand-over, and the
  // new owner tells the client after its welcome, before the replay.
  back.close();
  await sleep(300);
  onA.send({ type: 'offer', to: onD.peer, sdp: big });
  onA.send(cand(4));
  await sleep(500);
  assert.match(await scrape(D.metrics), /^anteroom_signal_bus_dropped_total\{kind="frame"\} 3$/m);
  const moved = await connect(B, dToken, { resume: back.welcome.resume, last_seq: back.lastSeq });
  assert.equal(moved.welcome.resumed, true);
  const third = await moved.next('error');
  assert.equal(third.name, 'lost');
  assert.match(third.text, new RegExp(`^1 messages for this session were lost after seq ${back.lastSeq}$`));
  assert.equal((await moved.next('candidate')).candidate, cand(4).candidate);
  for (const c of [moved, onA]) c.close();
  kill(D);
});

// A patient of area on node pNode, arrived and taken by a staff member on node sNode: both past
// joined and peer_joined. Their tokens come back for resumes.
async function takeCall(pNode, sNode, area) {
  const room = rid();
  const token = patientToken(room, { area });
  const sToken = staffToken();
  const p = await connect(pNode, token);
  p.send({ type: 'arrive', clinic: 'c1', area, name: 'P', consent: true });
  await p.next('wait');
  const s = await connect(sNode, sToken);
  await queued(s, area, p.peer);
  s.send({ type: 'take', peer: p.peer });
  await s.next('joined');
  await p.next('peer_joined');
  return { room, token, sToken, p, s };
}

// A staff member on node A takes a patient of area into its room; node B then knows the room
// (an invitee opens none).
async function takenRoom(area) {
  const call = await takeCall(A, A, area);
  await sleep(300);
  return call;
}

// One try at two joins racing on two nodes; false when the race did not happen (see below).
async function raceOnce() {
  const { room, s, p } = await takenRoom('race');
  const i1 = await connect(B, inviteeToken(room));
  i1.send({ type: 'join', room });
  await i1.next('joined');
  const iA = await connect(A, inviteeToken(room));
  const iB = await connect(B, inviteeToken(room));
  await sleep(300);
  // Node B's NATS server stops for a moment: each node sees three members and lets its
  // invitee in. B's joins first, so A's is the later one.
  kill(nats.procs[1], 'SIGSTOP');
  try {
    // Long enough for a loaded machine to handle both joins, well under the 3 s of silence
    // after which a worker counts as dead (measured in milliseconds: bus.c).
    iB.send({ type: 'join', room });
    await sleep(400);
    iA.send({ type: 'join', room });
    await sleep(800);
  } finally {
    kill(nats.procs[1], 'SIGCONT');
  }
  const first = await Promise.all([iB, iA].map((c) => c.next((f) => f.type === 'joined' || f.type === 'error')));
  if (first.some((f) => f.type === 'error')) {
    // No race: on a loaded machine a worker may handle its join only after the other node's
    // record arrived (after SIGCONT); it then sees four members and refuses outright, which is
    // right. Exactly one is in.
    assert.deepEqual(first.map((f) => f.type).sort(), ['error', 'joined']);
    assert.equal(first.find((f) => f.type === 'error').name, 'room_full');
    for (const c of [s, p, i1, iA, iB]) c.close();
    return false;
  }
  // Both passed: the race happened. B's join was sent first, so A's is normally the later one;
  // on a loaded machine B's node may handle its join after A's, and then B's is. Either way
  // exactly one is removed, and every node agrees which.
  const loser = await Promise.any([
    iA.next('error').then((e) => ({ c: iA, e })),
    iB.next('error').then((e) => ({ c: iB, e })),
  ]);
  const winner = loser.c === iA ? iB : iA;
  assert.equal(loser.e.name, 'room_full');
  assert.equal(await loser.c.waitClose(), 4005);
  for (const c of [s, p, i1, winner]) {
    const left = await c.next((f) => f.type === 'peer_left' && f.peer === loser.c.peer);
    assert.equal(left.reason, 'removed');
  }
  // The four go on: the provider reaches the invitee that stayed.
  s.send({ type: 'offer', to: winner.peer, sdp: 'v=0\r\n' });
  assert.equal((await winner.next('offer')).from, s.peer);
  assert.equal(winner.closed, null);
  for (const c of [s, p, i1, winner]) c.close();
  return true;
}

test('two joins racing on two nodes: one is removed, the room keeps four', async () => {
  for (let i = 0; !(await raceOnce()); i++) assert.ok(i < 3, 'the joins never raced');
});

// One try at two joins that fit racing on two nodes: each joiner's node answers from a view
// without the other, so neither `joined` lists the other. Each must then hear of the other
// once, from its own node (docs/signal.md, "Rooms across nodes"). False when no race happened.
async function fitRaceOnce() {
  const { room, s, p } = await takenRoom('fitrace');
  const iA = await connect(A, inviteeToken(room));
  const iB = await connect(B, inviteeToken(room));
  await sleep(300);
  kill(nats.procs[1], 'SIGSTOP'); // node B's NATS server: neither node hears the other's join
  try {
    iB.send({ type: 'join', room });
    iA.send({ type: 'join', room });
    await sleep(800);
  } finally {
    kill(nats.procs[1], 'SIGCONT');
  }
  const [jB, jA] = await Promise.all([iB.next('joined'), iA.next('joined')]);
  const listed = (j, c) => j.peers.some((x) => x.peer === c.peer);
  // On a loaded machine a node may handle its join only after the other's record came: then
  // its joiner finds the other in its `joined`, and the other hears of it by peer_joined.
  const raced = !listed(jB, iA) && !listed(jA, iB);
  const about = (c) => (f) => f.type === 'peer_joined' && f.peer === c.peer;
  // What each joiner was told, for the message of a failure below.
  const told = () =>
    `raced ${raced}; joined of iA ${JSON.stringify(jA.peers.map((x) => x.peer))}, of iB ` +
    `${JSON.stringify(jB.peers.map((x) => x.peer))}; iA ${iA.peer}, iB ${iB.peer}; ` +
    `iA had ${JSON.stringify(iA.all.map((f) => [f.type, f.peer]))}, iB had ` +
    `${JSON.stringify(iB.all.map((f) => [f.type, f.peer]))}`;
  try {
    if (!listed(jA, iB)) await iA.next(about(iB));
    if (!listed(jB, iA)) await iB.next(about(iA));
    for (const c of [s, p]) for (const i of [iA, iB]) await c.next(about(i));
  } catch (e) {
    throw new Error(`${e.message}; ${told()}`);
  }
  // Once each: a late announcement never doubles one its joiner's node made, nor a `joined`.
  await sleep(500);
  const heard = (c, j, i) => c.all.filter(about(i)).length + (j && listed(j, i) ? 1 : 0);
  for (const [c, j, i] of [[iA, jA, iB], [iB, jB, iA], [s, null, iA], [s, null, iB], [p, null, iA], [p, null, iB]])
    assert.equal(heard(c, j, i), 1, `told once of each other member; ${told()}`);
  // The two reach each other, and each hears of the other's leave.
  iA.send({ type: 'offer', to: iB.peer, sdp: 'v=0\r\n' });
  assert.equal((await iB.next('offer')).from, iA.peer);
  iB.send({ type: 'leave' });
  await iA.next((f) => f.type === 'peer_left' && f.peer === iB.peer);
  for (const c of [s, p, iA, iB]) c.close();
  return raced;
}

test('two joins that fit, racing on two nodes, hear of each other once', async () => {
  for (let i = 0; !(await fitRaceOnce()); i++) assert.ok(i < 3, 'the joins never raced');
});

// The race docs/signal.md describes under "Queue snapshot and deltas": while node B's NATS
// server is stopped, a staff member on node A subscribes (its snapshot comes from A's view) and
// on node B a patient arrives, another is held and a third transferred away (B's workers send
// their deltas to the subscribers they know: not the new one). Once the bus runs again, A's
// worker must catch the subscriber up; without that it would never see the arrival, the hold
// or the departure. With `others` more staff watching the area, half on each node, the queue
// updates name more than 64 subscribers (which once made them name nobody: no catch-up at all).
async function subscriptionRace(area, others) {
  const sB = await connect(B, staffToken(['receptionist']));
  const held = await connect(B, patientToken(rid(), { area }));
  const moved = await connect(B, patientToken(rid(), { area }));
  for (const p of [held, moved]) {
    p.send({ type: 'arrive', clinic: 'c1', area, name: 'P', consent: true });
    await p.next('wait');
  }
  const crowd = [];
  for (let i = 0; i < others; i++) {
    const w = await connect(i % 2 ? B : A, staffToken(['receptionist']));
    w.send({ type: 'subscribe', clinic: 'c1', area });
    const snap = await w.next((f) => f.type === 'queue' && f.area === area);
    w.snapped = new Set(snap.entries.map((e) => e.peer));
    crowd.push(w);
  }
  // Every worker knows both patients and sB's subscription before the bus stops.
  const watch = await connect(A, staffToken(['receptionist']));
  await queued(watch, area, held.peer);
  await queued(watch, area, moved.peer);
  await queued(sB, area, held.peer);
  await queued(sB, area, moved.peer);
  await sleep(300);
  // A crowd member may have subscribed before the patients' records reached its worker: it then
  // got their queue_add after its snapshot, once, and only for a patient its snapshot lacked.
  for (const w of crowd) {
    const adds = w.frames.filter((f) => f.type === 'queue_add' && f.area === area);
    for (const p of [held, moved]) {
      const n = adds.filter((f) => f.entry.peer === p.peer).length;
      assert.equal(n, w.snapped.has(p.peer) ? 0 : 1);
    }
    w.frames = [];
  }
  watch.frames = [];
  sB.frames = [];
  const late = await connect(B, patientToken(rid(), { area }));
  const s = await connect(A, staffToken(['receptionist']));
  kill(nats.procs[1], 'SIGSTOP');
  let snap;
  try {
    s.send({ type: 'subscribe', clinic: 'c1', area });
    snap = await s.next('queue', 1500);
    late.send({ type: 'arrive', clinic: 'c1', area, name: 'Late', consent: true });
    await late.next('wait', 1500);
    sB.send({ type: 'hold', peer: held.peer, on: true });
    sB.send({ type: 'transfer', peer: moved.peer, area: 'elsewhere' });
    await sleep(600);
  } finally {
    kill(nats.procs[1], 'SIGCONT');
  }
  // The race happened: the snapshot has the two patients as they were, not the late one.
  const peers = snap.entries.map((e) => e.peer);
  assert.ok(peers.includes(held.peer) && peers.includes(moved.peer));
  assert.ok(!peers.includes(late.peer));
  assert.equal(snap.entries.find((e) => e.peer === held.peer).status, 'waiting');
  // And the subscriber converges: each delta exactly once.
  const add = await s.next((f) => f.type === 'queue_add' && f.entry.peer === late.peer, 6000);
  assert.equal(add.entry.name, 'Late');
  const upd = await s.next((f) => f.type === 'queue_update' && f.peer === held.peer, 6000);
  assert.equal(upd.status, 'hold');
  const rm = await s.next((f) => f.type === 'queue_remove' && f.peer === moved.peer, 6000);
  assert.equal(rm.reason, 'transferred');
  await sleep(500);
  assert.deepEqual(s.frames.filter((f) => f.type.startsWith('queue')), []);
  // The staff member who knew of everything got each delta once too.
  await watch.next((f) => f.type === 'queue_add' && f.entry.peer === late.peer);
  await watch.next((f) => f.type === 'queue_update' && f.peer === held.peer);
  await watch.next((f) => f.type === 'queue_remove' && f.peer === moved.peer);
  await sleep(300);
  assert.deepEqual(watch.frames.filter((f) => f.type.startsWith('queue') && f.area === area), []);
  // So did every other subscriber, wherever it was.
  for (const w of crowd) {
    await w.next((f) => f.type === 'queue_add' && f.entry.peer === late.peer);
    await w.next((f) => f.type === 'queue_update' && f.peer === held.peer);
    await w.next((f) => f.type === 'queue_remove' && f.peer === moved.peer);
  }
  await sleep(crowd.length ? 300 : 0);
  for (const w of crowd)
    assert.deepEqual(w.frames.filter((f) => f.type.startsWith('queue') && f.area === area), []);
  for (const c of [sB, held, moved, watch, late, s, ...crowd]) c.close();
}

test('a subscription racing arrival, hold and transfer on another node converges', () =>
  subscriptionRace('qrace', 0));
test('... and with 70 more staff watching the area (updates naming over 64 subscribers)', () =>
  subscriptionRace('qcrowd', 70));

// A snapshot page holds up to 32 entries, but 32 of the longest (a 64-byte name and four
// 200-byte answers, all characters JSON escapes) pass the frame limit: such a page must come
// as smaller pages, not be dropped (area.c). 33 patients: without the split the first page of
// 32 was never sent, and the staff member saw one patient.
test('a queue snapshot of the longest entries comes whole, in pages under the frame limit', async () => {
  const name = '"'.repeat(64);
  const answers = ['a', 'b', 'c', 'd'].map((q) => ({ q: `q${q}`.repeat(31), a: '\\'.repeat(200) }));
  const patients = [];
  for (let i = 0; i < 33; i++) {
    const p = await connect(A, patientToken(rid(), { area: 'long' }));
    p.send({ type: 'arrive', clinic: 'c1', area: 'long', name, consent: true, answers });
    assert.equal((await p.next('wait')).status, 'waiting');
    patients.push(p);
  }
  const s = await connect(A, staffToken());
  // The patients' records reach the staff member's worker over the bus: subscribe until all
  // are there (each subscription answers with a fresh snapshot), within a bound.
  let entries = [];
  for (let i = 0; entries.length < 33; i++) {
    assert.ok(i < 50, `the snapshot never held all 33 patients (last: ${entries.length})`);
    if (i) await sleep(100);
    s.send({ type: 'subscribe', clinic: 'c1', area: 'long' });
    entries = [];
    for (;;) {
      const page = await s.next((f) => f.type === 'queue' && f.area === 'long');
      assert.ok(page.entries.length <= 32);
      entries.push(...page.entries);
      if (!page.more) break;
    }
  }
  assert.deepEqual(new Set(entries.map((e) => e.peer)), new Set(patients.map((p) => p.peer)));
  for (const e of entries) {
    assert.equal(e.name, name);
    assert.deepEqual(e.answers, answers);
  }
  for (const c of [s, ...patients]) c.close();
});

test('drain: clients resume on the other node and the call goes on', async () => {
  const C = await startNode('c', nats.slice(1), { drainUrls: [A.url], drainWithin: '4s' });
  const { token, p, s } = await takeCall(C, A, 'drain');
  p.ack();

  // A second call whose patient is the web client: it moves on the drain by itself, in its
  // own order of steps (signal.js onDrain). Closing its old connection with 1000 before the
  // new one resumed ended the session: the resume then found nothing, and the call dropped.
  const wToken = patientToken(rid(), { area: 'drain' });
  const w = new SignalClient({ urls: [C.url], token: () => wToken });
  webClients.push(w);
  const wSeen = [];
  for (const n of ['welcome', 'wait', 'peer_joined', 'offer', 'closed', 'error'])
    w.addEventListener(n, (e) => wSeen.push([n, e.detail]));
  const seen = (n, k = 1) => wSeen.filter(([m]) => m === n).length >= k;
  await w.connect();
  await waitFor(() => seen('welcome'), 8000, 'the web client\'s welcome');
  w.send('arrive', { clinic: 'c1', area: 'drain', name: 'W', consent: true });
  await waitFor(() => seen('wait'), 8000, 'the web client waiting');
  const s2 = await connect(A, staffToken());
  await queued(s2, 'drain', w.peer);
  s2.send({ type: 'take', peer: w.peer });
  await s2.next('joined');
  await waitFor(() => seen('peer_joined'), 8000, 'the web client in its call');
  const wPeer = w.peer;

  kill(C, 'SIGUSR1');
  const d = await p.next('drain', 5000);
  assert.deepEqual(d.urls, [A.url]);
  assert.ok(d.within <= 4);
  const p2 = await connect(A, token, { resume: p.welcome.resume, last_seq: p.lastSeq });
  assert.equal(p2.welcome.resumed, true);
  assert.equal(p2.peer, p.peer);
  p2.lastSeq = p.lastSeq;
  assert.ok([4006, 4010].includes(await p.waitClose()));
  s.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n' });
  assert.equal((await p2.next('offer')).from, s.peer);

  await waitFor(() => seen('welcome', 2), 8000, 'the web client\'s welcome on the other node');
  const wWelcome = wSeen.filter(([n]) => n === 'welcome')[1][1];
  assert.equal(wWelcome.resumed, true, 'the web client resumed its session');
  assert.equal(w.peer, wPeer);
  assert.equal(w.url, A.url);
  s2.send({ type: 'offer', to: wPeer, sdp: 'v=0\r\n' });
  await waitFor(() => seen('offer'), 8000, 'the offer to the moved web client');
  await sleep(300);
  assert.deepEqual(s2.frames.filter((f) => f.type === 'peer_left'), [], 'the call did not drop');
  assert.deepEqual(wSeen.filter(([n]) => n === 'error' || n === 'closed'), []);
  kill(C, 'SIGTERM');
  s.close();
  p2.close();
  w.close();
  s2.close();
});

// An operator request (HTTP on the node's loopback operator listener) rather than a signal.
async function operator(port, path, { method = 'GET', headers = {} } = {}) {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers });
  return r.status;
}

test('drain by POST /drain: every worker of the node drains, clients move, no call drops', async () => {
  const C = await startNode('c2', nats.slice(1), { drainUrls: [A.url], drainWithin: '6s' });
  // Four calls, each a provider on node A and a patient on node C (the kernel spreads the
  // patients over C's two workers).
  const calls = [];
  for (let i = 0; i < 4; i++) {
    const s = await connect(A, staffToken());
    const token = patientToken(rid(), { area: 'pdrain' });
    const p = await connect(C, token);
    p.send({ type: 'arrive', clinic: 'c1', area: 'pdrain', name: `P${i}`, consent: true });
    await p.next('wait');
    await queued(s, 'pdrain', p.peer);
    s.send({ type: 'take', peer: p.peer });
    await s.next('joined');
    await p.next('peer_joined');
    p.ack();
    calls.push({ p, s, token });
  }
  // Refused without draining: a request carrying a browser's Origin, and GET.
  assert.equal(await operator(C.metrics, '/drain', { method: 'POST',
    headers: { Origin: 'https://evil.example' } }), 403);
  assert.equal(await operator(C.metrics + 1, '/drain'), 405);
  assert.equal(await operator(C.metrics, '/readyz'), 200);
  assert.equal(await operator(C.metrics + 1, '/readyz'), 200);

  // One request to worker 1's listener drains the whole node (worker 0 too).
  assert.equal(await operator(C.metrics + 1, '/drain', { method: 'POST' }), 202);
  const moved = [];
  for (const [i, c] of calls.entries()) {
    const d = await c.p.next('drain', 5000);
    assert.deepEqual(d.urls, [A.url]);
    // The call goes on while the patient moves: the provider keeps sending candidates.
    c.s.send({ type: 'candidate', to: c.p.peer, candidate: `candidate:${i}0 1 udp 1 192.0.2.1 1 typ host` });
    const p2 = await connect(A, c.token, { resume: c.p.welcome.resume, last_seq: c.p.lastSeq });
    assert.equal(p2.welcome.resumed, true);
    assert.equal(p2.peer, c.p.peer);
    p2.lastSeq = c.p.lastSeq; // what the old connection already delivered
    c.s.send({ type: 'candidate', to: c.p.peer, candidate: `candidate:${i}1 1 udp 1 192.0.2.1 2 typ host` });
    moved.push({ p2, old: c.p, s: c.s, i });
  }
  for (const { p2, old, s, i } of moved) {
    assert.ok([4006, 4010].includes(await old.waitClose()));
    // Each candidate arrives once per sequence number, on the old connection or replayed on the
    // new one (a client drops a number it has seen, protocol.md): both, in order, none missing.
    const bySeq = new Map();
    const take = (f) => {
      const name = f.candidate.split(' ')[0];
      if (bySeq.has(f.seq)) assert.equal(bySeq.get(f.seq), name);
      bySeq.set(f.seq, name);
    };
    for (const f of old.frames.filter((x) => x.type === 'candidate')) take(f);
    while (bySeq.size < 2) take(await p2.next('candidate'));
    await sleep(100);
    for (const f of p2.frames.filter((x) => x.type === 'candidate')) take(f);
    const seqs = [...bySeq.keys()].sort((a, b) => a - b);
    assert.deepEqual(seqs.map((q) => bySeq.get(q)), [`candidate:${i}0`, `candidate:${i}1`]);
    s.send({ type: 'offer', to: p2.peer, sdp: 'v=0\r\n' });
    assert.equal((await p2.next('offer')).from, s.peer);
    p2.send({ type: 'answer', to: s.peer, sdp: 'v=0\r\n' });
    assert.equal((await s.next('answer')).from, p2.peer);
  }
  assert.equal(await operator(C.metrics, '/readyz'), 503);
  assert.equal(await operator(C.metrics + 1, '/readyz'), 503);

  // A worker that dies during the drain is restarted draining: the supervisor remembers the
  // drain and tells it. One restarted fresh answered /readyz 200, took new clients and offered
  // itself as a backup.
  const up = async (port) => operator(port, '/readyz').catch(() => 0);
  const restart = async (i, signal) => {
    const before = workersOf(C.pid);
    assert.equal(before.length, 2);
    process.kill(before[i], 'SIGKILL');
    const fresh = await waitFor(() => workersOf(C.pid).find((w) => !before.includes(w)), 8000,
      'the worker restarted');
    if (signal) process.kill(fresh, 'SIGUSR1');
    await waitFor(async () => (await up(C.metrics)) && (await up(C.metrics + 1)), 10000,
      'both operator listeners');
    assert.equal(await operator(C.metrics, '/readyz'), 503);
    assert.equal(await operator(C.metrics + 1, '/readyz'), 503);
    return fresh;
  };
  await restart(0, false);
  // A SIGUSR1 to a new worker as soon as it exists lands, most likely, while it connects to
  // the bus: it holds the signal until its handlers are in place. Without that, the default
  // action killed it (and the supervisor's own SIGUSR1 killed every restart at once).
  const fresh = await restart(0, true); // the oldest now: the other worker
  await sleep(200);
  assert.ok(workersOf(C.pid).includes(fresh), 'the restarted worker survived the drain signal');
  // New clients of the node (the kernel spreads them over both workers) are sent on at once.
  for (let i = 0; i < 4; i++) {
    const late = await connect(C, patientToken(rid(), { area: 'pdrain' }));
    assert.deepEqual((await late.next('drain', 3000)).urls, [A.url]);
    late.close();
  }
  kill(C, 'SIGTERM');
  for (const { p2, s } of moved) {
    p2.close();
    s.close();
  }
});

test('resume after kill -9 of a node: same peer, missed frames in order, no duplicates', async () => {
  const D = await startNode('d', nats.slice(0, 1));
  const { token, p, s } = await takeCall(D, B, 'kill');
  s.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n' });
  await p.next('offer');
  p.ack();
  await sleep(300);
  const last = p.lastSeq;

  kill(D, 'SIGKILL');
  await p.waitClose(5000);
  for (let i = 0; i < 5; i++) s.send({ type: 'candidate', to: p.peer, candidate: `candidate:${i} 1 udp 1 192.0.2.1 ${i} typ host` });
  await sleep(500);
  const p2 = await connect(B, token, { resume: p.welcome.resume, last_seq: last });
  assert.equal(p2.welcome.resumed, true);
  assert.equal(p2.peer, p.peer);
  assert.notEqual(p2.welcome.resume, p.welcome.resume);
  p2.lastSeq = last;
  const seqs = [];
  for (let i = 0; i < 5; i++) {
    const c = await p2.next('candidate');
    assert.equal(c.candidate.split(' ')[0], `candidate:${i}`);
    seqs.push(c.seq);
  }
  assert.deepEqual(seqs, seqs.map((_, i) => last + 1 + i));
  // The call goes on from the new node, and the old resume token no longer works.
  p2.send({ type: 'answer', to: s.peer, sdp: 'v=0\r\n' });
  assert.equal((await s.next('answer')).from, p.peer);
  const p3 = await connect(A, token, { resume: p.welcome.resume, last_seq: last });
  assert.equal(p3.welcome.resumed, false);
  assert.notEqual(p3.peer, p.peer);
  for (const c of [s, p2, p3]) c.close();
});

test('a call on one worker: relayed without the bus, resumed from its backup after kill -9', async () => {
  // One worker, so both peers are on it: their frames skip NATS (docs/signal.md, "Local
  // delivery"); the numbered copies still go to each session's backup on another node.
  const E = await startNode('e', nats.slice(1), { workers: 1 });
  const { token, sToken, p, s } = await takeCall(E, E, 'local');

  // With E's NATS server stopped, a relay between two sessions of one worker still arrives.
  let offer;
  kill(nats.procs[1], 'SIGSTOP');
  try {
    s.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n' });
    offer = await p.next('offer', 700);
  } finally {
    kill(nats.procs[1], 'SIGCONT');
  }
  assert.equal(offer.from, s.peer);
  p.ack();
  const seen = [];
  for (let i = 0; i < 4; i++) s.send({ type: 'candidate', to: p.peer, candidate: `candidate:${i} 1 udp 1 192.0.2.1 ${i} typ host` });
  for (let i = 0; i < 4; i++) {
    const c = await p.next('candidate');
    assert.equal(c.candidate.split(' ')[0], `candidate:${i}`);
    seen.push(c.seq);
  }
  assert.deepEqual(seen, seen.map((_, i) => offer.seq + 1 + i));
  await sleep(500); // the numbered copies reach the backup (not acknowledged: kept for replay)

  kill(E, 'SIGKILL');
  await p.waitClose(5000);
  await s.waitClose(5000);
  // The patient saw the candidates but resumes as if it had not: the backup replays them under
  // the numbers the owner gave them, once each and in order.
  const p2 = await connect(B, token, { resume: p.welcome.resume, last_seq: offer.seq });
  assert.equal(p2.welcome.resumed, true);
  assert.equal(p2.peer, p.peer);
  p2.lastSeq = offer.seq;
  const again = [];
  for (let i = 0; i < 4; i++) {
    const c = await p2.next('candidate');
    assert.equal(c.candidate.split(' ')[0], `candidate:${i}`);
    again.push(c.seq);
  }
  assert.deepEqual(again, seen);
  // The staff member resumes too, on another node, and the call goes on across nodes. It
  // resumes as a client would whose last two frames were local and reached it just before the
  // node died, while their numbered copies had not left for the backup (docs/signal.md, "Local
  // delivery"): its last_seq is ahead of its backup's count. The promoted backup takes it as
  // delivered and numbers on after it.
  const ahead = s.lastSeq + 2;
  const s2 = await connect(A, sToken, { resume: s.welcome.resume, last_seq: ahead });
  assert.equal(s2.welcome.resumed, true);
  assert.deepEqual(s2.frames.filter((f) => f.seq > 0 && f.seq <= ahead), []); // nothing replayed
  s2.lastSeq = ahead;
  p2.send({ type: 'answer', to: s.peer, sdp: 'v=0\r\n' });
  const answer = await s2.next('answer');
  assert.equal(answer.from, p.peer);
  assert.ok(answer.seq > ahead, `${answer.seq} after ${ahead}`);
  s2.send({ type: 'candidate', to: p.peer, candidate: 'candidate:9 1 udp 1 192.0.2.1 9 typ host' });
  assert.equal((await p2.next('candidate')).seq, seen[3] + 1);
  for (const c of [p2, s2]) c.close();
});

test('a client holding unacknowledged frames is pinged once the frames pause, and once only', async () => {
  // srv.c ar__sig_conn_acks_due: 2 s after the last numbered frame, within the next second's
  // tick, rather than at the 25 s keepalive; asked once per pause (protocol.md 5.11).
  const { p, s } = await takeCall(A, B, 'ack');
  s.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n' });
  const offer = await p.next('offer');
  const sent = Date.now();
  const ping = await p.next('ping', 4500);
  assert.equal(ping.seq, 0);
  assert.ok(Date.now() - sent >= 1000, 'not before the frames paused');
  p.send({ type: 'pong' });
  p.ack();
  assert.equal(p.lastSeq, offer.seq);
  // Answered: no second ping for this pause (the keepalive's is 25 s away).
  await assert.rejects(p.next('ping', 3200), /timeout/);
  // A new frame and a new pause: asked again, even by a client that did not answer.
  s.send({ type: 'candidate', to: p.peer, candidate: 'candidate:1 1 udp 1 192.0.2.1 1 typ host' });
  await p.next('candidate');
  await p.next('ping', 4500);
  await assert.rejects(p.next('ping', 3200), /timeout/);
  for (const c of [p, s]) c.close();
});
