// A staff session's token and its lifetime (protocol.md 5.15): a staff session whose token
// expired and was not refreshed is closed (error token_expired, close 4001) once past the
// node's token-allowance (1 s here, 120 s by default); one that refreshes in time stays and is
// told its new expiry; a refresh with another subject, an expired or a forged token is refused
// without closing; a refreshed token naming fewer clinics stops the queue frames of the clinic
// it dropped; a staff session resumed with an expired token must refresh within the allowance;
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
const staff = (s, exp, clinics = { c1: ['provider'] }) =>
  mint({ role: 'staff', sub: s, clinics, iat: now() - 5, exp });

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
  const p = await connect(N, patientToken(rid(), { iat: now() - 5, exp: now() + 1 }));
  await sleep(3500);
  assert.equal(p.closed, null);
  await alive(p);
  p.close();
});
