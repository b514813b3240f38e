// A staff session's token and its lifetime (protocol.md 5.15): a staff session whose token
// expired and was not refreshed is closed (error token_expired, close 4001) once past the
// node's token-allowance (1 s here, 120 s by default); one that refreshes in time stays and is
// told its new expiry; a refresh with another subject, an expired or a forged token is refused
// without closing; a refreshed token naming fewer clinics stops the queue frames of the clinic
// it dropped, and takes the session out of a call (or a persistent room) that clinic's role let it
// be in (peer_left about itself, "revoked"); a staff session resumed with an expired token must refresh within the allowance;
// patients are not closed at their token's expiry (they may wait and resume past it, 5.10).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';
import { connect, mint, otherKey, patientToken, rid, sleep, startNats, startNode, stopAll } from './lib.mjs';

let N;
before(async () => {
  const nats = await startNats();
  N = await startNode('r', nats, { workers: 1, args: ['--token-allowance', '1s'] });
});
after(() => stopAll());

const now = () => Math.floor(Date.now() / 1000);
const sub = () => crypto.randomBytes(12).toString('hex');
const staff = (s, exp, clinics = { c1: ['provider'] }, room = undefined) =>
  mint({ role: 'staff', sub: s, clinics, iat: now() - 5, exp, ...(room ? { room } : {}) });
const SDP = 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n';

// The connection is alive: a ping gets its pong.
async function alive(c) {
  const t = Date.now();
  c.send({ type: 'ping', t });
  assert.equal((await c.next((f) => f.type === 'pong' && f.t === t)).t, t);
}

test('a staff session past its token expiry and the allowance is closed 4001', async () => {
  const c = await connect(N, staff(sub(), now() + 2));
  const t0 = Date.now();
  const e = await c.next('error', 8000);
  assert.equal(e.name, 'token_expired');
  assert.equal(await c.waitClose(), 4001);
  // Not before exp + allowance (2 s + 1 s, less a second of rounding), and soon after.
  const took = Date.now() - t0;
  assert.ok(took >= 1500 && took < 6000, `closed after ${took} ms`);
});

test('a refresh in time keeps the session and says the new expiry', async () => {
  const s = sub();
  const c = await connect(N, staff(s, now() + 2));
  const exp = now() + 600;
  c.send({ type: 'refresh', id: 7, token: staff(s, exp) });
  const r = await c.next('refreshed');
  assert.equal(r.exp, exp);
  assert.equal(r.seq, 0);
  await sleep(4500); // past the first token's exp + allowance
  assert.equal(c.closed, null);
  await alive(c);
  c.close();
});

test('a refresh with another subject, an expired or a forged token is refused, not closed', async () => {
  const s = sub();
  const c = await connect(N, staff(s, now() + 600));
  const cases = [
    [staff(sub(), now() + 600), 'forbidden'],
    [mint({ role: 'patient', sub: s, room: rid(), clinic: 'c1', area: 'knee' }), 'forbidden'],
    [staff(s, now() - 1), 'token_expired'],
    [mint({ role: 'staff', sub: s, clinics: { c1: ['provider'] } }, { key: otherKey }), 'bad_token'],
  ];
  for (const [token, name] of cases) {
    c.send({ type: 'refresh', id: 9, token });
    const e = await c.next('error');
    assert.equal(e.name, name);
    assert.equal(e.about, 'refresh');
    assert.equal(e.id, 9);
  }
  await alive(c);
  // A patient does not refresh.
  const p = await connect(N, patientToken(rid()));
  p.send({ type: 'refresh', token: patientToken(rid()) });
  assert.equal((await p.next('error')).name, 'forbidden');
  c.close();
  p.close();
});

test('a refreshed token naming fewer clinics stops the dropped clinic\'s queue frames', async () => {
  const s = sub();
  const both = { c1: ['provider'], c2: ['receptionist'] };
  const c = await connect(N, staff(s, now() + 600, both));
  for (const clinic of ['c1', 'c2']) {
    c.send({ type: 'subscribe', clinic, area: 'knee' });
    await c.next((f) => f.type === 'queue' && f.clinic === clinic);
  }
  const arrive = async (clinic, name) => {
    const p = await connect(N, patientToken(rid(), { clinic }));
    p.send({ type: 'arrive', clinic, area: 'knee', name, consent: true });
    await p.next('wait');
    return p;
  };
  const p1 = await arrive('c2', 'Before Refresh');
  assert.equal((await c.next('queue_add')).entry.name, 'Before Refresh');
  c.send({ type: 'refresh', token: staff(s, now() + 600, { c1: ['provider'] }) });
  await c.next('refreshed');
  const p2 = await arrive('c2', 'After Refresh');
  const p3 = await arrive('c1', 'Still Seen');
  // c1's arrival comes; c2's does not (it would have come before c1's, frames are in order).
  assert.equal((await c.next('queue_add')).entry.name, 'Still Seen');
  assert.ok(!c.all.some((f) => JSON.stringify(f).includes('After Refresh')));
  // Asked again, c2 is refused: the role there is gone.
  c.send({ type: 'subscribe', clinic: 'c2', area: 'knee' });
  assert.equal((await c.next('error')).name, 'forbidden');
  for (const x of [c, p1, p2, p3]) x.close();
});

test('a refreshed token that drops the clinic of a call takes the staff member out of it', async () => {
  const s = sub();
  const c = await connect(N, staff(s, now() + 600, { c1: ['provider'], c2: ['provider'] }),
    { name: 'Dr Ana' });
  const desk = await connect(N, staff(sub(), now() + 600, { c2: ['receptionist'] }));
  desk.send({ type: 'subscribe', clinic: 'c2', area: 'knee' });
  await desk.next('queue');
  const p = await connect(N, patientToken(rid(), { clinic: 'c2' }));
  p.send({ type: 'arrive', clinic: 'c2', area: 'knee', name: 'In Call', consent: true });
  await p.next('wait');
  await desk.next('queue_add');
  c.send({ type: 'take', peer: p.peer });
  const { room } = await c.next('joined');
  assert.equal((await p.next('wait')).status, 'seen');
  await p.next('peer_joined');
  assert.equal((await desk.next('queue_update')).by, c.peer);
  c.send({ type: 'offer', to: p.peer, sdp: SDP });
  assert.equal((await p.next('offer')).from, c.peer); // the call runs

  c.send({ type: 'refresh', token: staff(s, now() + 600, { c1: ['provider'] }) });
  await c.next('refreshed');
  // Told why, in a session-level frame (replayed on a resume); the patient sees it leave.
  const own = await c.next('peer_left');
  assert.deepEqual([own.peer, own.reason], [c.peer, 'revoked']);
  assert.ok(own.seq > 0);
  const gone = await p.next('peer_left');
  assert.deepEqual([gone.peer, gone.reason], [c.peer, 'removed']);
  // The patient it was seeing waits again, for the clinic's staff to take.
  assert.equal((await p.next('wait')).status, 'waiting');
  const upd = await desk.next('queue_update');
  assert.deepEqual([upd.peer, upd.status, upd.by], [p.peer, 'waiting', undefined]);
  // Nothing more of the call passes either way, and it may not join again.
  c.send({ type: 'offer', to: p.peer, sdp: SDP, id: 4 });
  assert.equal((await c.next('error')).name, 'bad_state');
  p.send({ type: 'offer', to: c.peer, sdp: SDP, id: 5 });
  assert.equal((await p.next('error')).name, 'not_found');
  c.send({ type: 'join', room, id: 6 });
  assert.equal((await c.next('error')).name, 'forbidden');
  await alive(c); // the session stays, with its other clinic
  for (const x of [c, desk, p]) x.close();
});

test('a persistent clinic room is left the same way; one the token names is kept', async () => {
  const room = rid();
  const s1 = sub();
  const s2 = sub();
  // s1 opens c2's persistent room with a token naming it; s2 joins it by its role in c2.
  const a = await connect(N, staff(s1, now() + 600, { c2: ['provider'] }, room));
  a.send({ type: 'join', room });
  await a.next('joined');
  const b = await connect(N, staff(s2, now() + 600, { c1: ['provider'], c2: ['admin'] }));
  b.send({ type: 'join', room });
  await b.next('joined');
  assert.equal((await a.next('peer_joined')).peer, b.peer);
  // The room's token (the page refreshes such a session with it) keeps a in, whatever its role.
  a.send({ type: 'refresh', token: staff(s1, now() + 600, { c2: ['receptionist'] }, room) });
  await a.next('refreshed');
  b.send({ type: 'refresh', token: staff(s2, now() + 600, { c1: ['provider'] }) });
  await b.next('refreshed');
  const own = await b.next('peer_left');
  assert.deepEqual([own.peer, own.reason], [b.peer, 'revoked']);
  const gone = await a.next('peer_left');
  assert.deepEqual([gone.peer, gone.reason], [b.peer, 'removed']);
  // a is still in it: nothing came about itself, and it still runs the room.
  assert.ok(!a.all.some((f) => f.type === 'peer_left' && f.peer === a.peer));
  a.send({ type: 'quality', profile: 'low' });
  assert.equal((await a.next('quality')).by, a.peer);
  b.send({ type: 'join', room, id: 2 });
  assert.equal((await b.next('error')).name, 'forbidden');
  a.close();
  b.close();
});

test('a resume with a token that drops the clinic of its call takes the session out too', async () => {
  const s = sub();
  const c = await connect(N, staff(s, now() + 600, { c1: ['provider'], c2: ['provider'] }));
  const p = await connect(N, patientToken(rid(), { clinic: 'c2' }));
  p.send({ type: 'arrive', clinic: 'c2', area: 'knee', name: 'Resumed Call', consent: true });
  await p.next('wait');
  c.send({ type: 'take', peer: p.peer });
  await c.next('joined');
  await p.next('peer_joined');
  c.close(); // lost, not left: the session waits for its client in the room
  const back = await connect(N, staff(s, now() + 600, { c1: ['provider'] }),
    { resume: c.welcome.resume, last_seq: c.lastSeq }, c);
  assert.equal(back.welcome.resumed, true);
  const own = await back.next('peer_left');
  assert.deepEqual([own.peer, own.reason], [c.peer, 'revoked']);
  const gone = await p.next('peer_left');
  assert.deepEqual([gone.peer, gone.reason], [c.peer, 'removed']);
  back.close();
  p.close();
});

test('a staff session resumed with an expired token must refresh within the allowance', async () => {
  const s = sub();
  const token = staff(s, now() + 2);
  const c = await connect(N, token);
  c.send({ type: 'refresh', token: staff(s, now() + 3) }); // live past the first one's exp
  await c.next('refreshed');
  c.close(); // lost, not left
  await sleep(Math.max(0, (now() + 1) * 1000 - Date.now()) + 1200); // the first token expired
  const back = await connect(N, token, { resume: c.welcome.resume, last_seq: c.lastSeq }, c);
  assert.equal(back.welcome.resumed, true);
  assert.equal((await back.next('error', 6000)).name, 'token_expired');
  assert.equal(await back.waitClose(), 4001);
  // The same again, refreshed in time: it stays.
  const t2 = staff(s, now() + 1);
  const d = await connect(N, staff(s, now() + 30));
  d.close();
  await sleep(2200);
  const back2 = await connect(N, t2, { resume: d.welcome.resume, last_seq: d.lastSeq }, d);
  assert.equal(back2.welcome.resumed, true);
  back2.send({ type: 'refresh', token: staff(s, now() + 600) });
  await back2.next('refreshed');
  await sleep(2500);
  await alive(back2);
  back2.close();
});

test('a patient is not closed at its token expiry', async () => {
  // exp two seconds ahead, not one: now() rounds down, so one could be past by the hello.
  const exp = now() + 2;
  const p = await connect(N, patientToken(rid(), { iat: now() - 5, exp }));
  await sleep(exp * 1000 - Date.now() + 2500); // past exp and the 1 s allowance
  assert.ok(now() > exp + 1);
  assert.equal(p.closed, null);
  await alive(p);
  p.close();
});
