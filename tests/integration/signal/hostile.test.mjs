// Hostile clients against one signalling node: bad, expired, foreign and wrong-room tokens,
// the wrong Origin or subprotocol, oversize, binary and malformed frames, floods, slow readers,
// silence before hello, and the per-address cap. Each ends with the protocol's close code.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  Client, connect, inviteeToken, JUR, mint, otherKey, patientToken, rid, sleep, staffToken,
  startNats, startNode, stopAll, tmp,
} from './lib.mjs';

let N, nats, silent, silentOpened, silentClosed;
before(async () => {
  nats = await startNats();
  N = await startNode('h', nats, { workers: 1, maxPerAddr: 30 });
  // The silent client of 'no hello within 10 s' connects first, so that its wait overlaps the
  // tests before it instead of adding 10 s; that test checks when and how it was closed.
  silent = new Client(N.url);
  silent.ws.on('close', () => { silentClosed = Date.now(); });
  await silent.open();
  silentOpened = Date.now();
});
after(() => stopAll());

async function hello(token) {
  const c = await new Client(N.url).open();
  c.send({ type: 'hello', token });
  return c;
}

test('bad, expired, foreign-key and other-jurisdiction tokens: error, then close 4001', async () => {
  const now = Math.floor(Date.now() / 1000);
  const cases = [
    ['AR1.k1.garbage.garbage', 'bad_token'],
    [mint({ role: 'staff', clinics: { c1: ['provider'] } }, { key: otherKey }), 'bad_token'],
    [mint({ role: 'staff', clinics: { c1: ['provider'] }, iat: now - 700, exp: now - 100 }), 'token_expired'],
    [mint({ role: 'staff', clinics: { c1: ['provider'] }, aud: 'monitor' }), 'bad_token'],
    [mint({ role: 'staff', clinics: { c1: ['provider'] }, jur: `${JUR}x` }), 'bad_token'],
  ];
  for (const [token, name] of cases) {
    const c = await hello(token);
    assert.equal((await c.next('error')).name, name);
    assert.equal(await c.waitClose(), 4001);
  }
  // Anything but hello first.
  const c = await new Client(N.url).open();
  c.send({ type: 'ping' });
  assert.equal((await c.next('error')).name, 'not_authenticated');
  assert.equal(await c.waitClose(), 4001);
});

// A patient may wait longer than its token lives (30 minutes from the app): a network change
// after that must not cost it its place. The expired token resumes the session it opened
// (the resume secret proves the client); it opens no new one (srv.c on_hello).
test('an expired token resumes the session it opened, and opens nothing else', async () => {
  const now = Math.floor(Date.now() / 1000);
  const token = patientToken(rid(), { iat: now - 10, exp: now + 3 });
  const p = await connect(N, token);
  p.send({ type: 'arrive', clinic: 'c1', area: 'knee', name: 'Late Larry', consent: true });
  assert.equal((await p.next('wait')).status, 'waiting');
  p.close(); // the connection is lost (terminated, not left: 1000 would end the session)
  await sleep(Math.max(0, (now + 4) * 1000 - Date.now()));
  const back = await connect(N, token, { resume: p.welcome.resume, last_seq: p.lastSeq }, p);
  assert.equal(back.welcome.resumed, true);
  assert.equal(back.peer, p.peer);
  // No session behind the secret, or no resume at all: refused as expired, no new session.
  for (const extra of [{ resume: `${p.peer}.AAAAAAAAAAAAAAAAAAAA`, last_seq: 0 }, {}]) {
    const c = await new Client(N.url).open();
    c.send({ type: 'hello', token, ...extra });
    assert.equal((await c.next('error')).name, 'token_expired');
    assert.equal(await c.waitClose(), 4001);
  }
  back.close();
});

test('wrong-room tokens and roles: forbidden, not_found', async () => {
  const room = rid();
  const p = await connect(N, patientToken(room));
  p.send({ type: 'join', room: rid() });
  assert.equal((await p.next('error')).name, 'forbidden');
  p.send({ type: 'arrive', clinic: 'c1', area: 'other', name: 'X', consent: true });
  assert.equal((await p.next('error')).name, 'forbidden');
  // A patient's subscribe gets only its own status (protocol 5.2), none before it arrives, and
  // nothing at all for another clinic: never a queue.
  p.send({ type: 'subscribe', clinic: 'c1', area: 'knee' });
  assert.equal((await p.next('error')).name, 'bad_state');
  p.send({ type: 'subscribe', clinic: 'c2', area: 'knee' });
  assert.equal((await p.next('error')).name, 'forbidden');
  assert.equal(p.frames.filter((f) => f.type.startsWith('queue') || f.type === 'wait').length, 0);
  const s = await connect(N, staffToken(['provider'], { clinics: { c2: ['provider'] } }));
  s.send({ type: 'subscribe', clinic: 'c1', area: 'knee' });
  assert.equal((await s.next('error')).name, 'forbidden');
  s.send({ type: 'take', peer: p.peer });
  assert.equal((await s.next('error')).name, 'not_found');
  const i = await connect(N, inviteeToken(room));
  i.send({ type: 'arrive', clinic: 'c1', area: 'knee', name: 'X', consent: true });
  assert.equal((await i.next('error')).name, 'forbidden');
  s.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n' });
  assert.equal((await s.next('error')).name, 'bad_state');
  for (const c of [p, s, i]) c.close();
});

// An invitee token opens only a room already open (protocol 5.7: a room is made by its
// patient, or by a staff token naming a persistent room) and only in the clinic the app minted
// it for: a clinician of another clinic who learnt a room id cannot send anyone into it.
test('an invitee enters only an open room of its token\'s clinic', async () => {
  const room = rid();
  const early = await connect(N, inviteeToken(room, { clinic: 'c1' }));
  early.send({ type: 'join', room });
  assert.equal((await early.next('error')).name, 'not_found');
  assert.equal(await early.waitClose(), 4007);

  const p = await connect(N, patientToken(room));
  p.send({ type: 'arrive', clinic: 'c1', area: 'knee', name: 'P', consent: true });
  await p.next('wait');
  const s = await connect(N, staffToken(['provider']), { name: 'Dr' });
  s.send({ type: 'take', peer: p.peer });
  await s.next('joined');
  const other = await connect(N, inviteeToken(room, { clinic: 'c2' }), { name: 'Other clinic' });
  other.send({ type: 'join', room });
  assert.equal((await other.next('error')).name, 'forbidden');
  const own = await connect(N, inviteeToken(room, { clinic: 'c1' }), { name: 'Family' });
  own.send({ type: 'join', room });
  assert.equal((await own.next('joined')).peers.length, 2);
  await sleep(200);
  assert.ok(!p.frames.some((f) => f.type === 'peer_joined' && f.peer === other.peer));

  // A persistent room belongs to the clinic of the staff token that names it (the app names
  // the room's clinic alone), not to nobody: its clinic's invitees enter, others' do not.
  const proom = rid();
  const ps = await connect(N, staffToken(['provider'], { room: proom }), { name: 'Dr' });
  ps.send({ type: 'join', room: proom });
  await ps.next('joined');
  const pi = await connect(N, inviteeToken(proom, { clinic: 'c1' }), { name: 'Guest' });
  pi.send({ type: 'join', room: proom });
  assert.equal((await pi.next('joined')).peers.length, 1);
  const px = await connect(N, inviteeToken(proom, { clinic: 'c2' }), { name: 'Guest' });
  px.send({ type: 'join', room: proom });
  assert.equal((await px.next('error')).name, 'forbidden');
  for (const c of [p, s, other, own, ps, pi, px]) c.close();
});

// Protocol 5.13: an ended one-time room is gone; tokens still valid for it (the patient's, an
// invite link not used yet) neither open it again nor queue in it. A persistent room is only
// emptied: its token opens it again.
test('an ended room stays gone: its patient and invite tokens open it no more', async () => {
  const room = rid();
  const pTok = patientToken(room);
  const s = await connect(N, staffToken(['provider']), { name: 'Dr' });
  s.send({ type: 'subscribe', clinic: 'c1', area: 'knee' });
  await s.next('queue');
  const p = await connect(N, pTok);
  p.send({ type: 'arrive', clinic: 'c1', area: 'knee', name: 'P', consent: true });
  await p.next('wait');
  await s.next('queue_add');
  const unused = inviteeToken(room, { clinic: 'c1' });
  s.send({ type: 'take', peer: p.peer });
  await s.next('joined');
  s.send({ type: 'end' });
  await s.next('ended');
  assert.equal(await p.waitClose(), 4007);

  const back = await connect(N, pTok);
  back.send({ type: 'join', room });
  assert.equal((await back.next('error')).name, 'not_found');
  assert.equal(await back.waitClose(), 4007);
  const requeue = await connect(N, pTok);
  requeue.send({ type: 'arrive', clinic: 'c1', area: 'knee', name: 'P', consent: true });
  assert.equal((await requeue.next('error')).name, 'not_found');
  assert.equal(await requeue.waitClose(), 4007);
  const late = await connect(N, unused, { name: 'Family' });
  late.send({ type: 'join', room });
  assert.equal((await late.next('error')).name, 'not_found');
  assert.equal(await late.waitClose(), 4007);
  await sleep(200);
  assert.ok(!s.frames.some((f) => f.type === 'queue_add'));
  // Staff of the clinic cannot open it either (no such room), and stay connected.
  s.send({ type: 'join', room });
  assert.equal((await s.next('error')).name, 'not_found');

  const proom = rid();
  const sTok = staffToken(['provider'], { room: proom });
  const ps = await connect(N, sTok, { name: 'Dr' });
  ps.send({ type: 'join', room: proom });
  await ps.next('joined');
  ps.send({ type: 'end' });
  await ps.next('ended');
  ps.send({ type: 'join', room: proom });
  await ps.next('joined');
  for (const c of [s, ps]) c.close();
});

test('Origin and subprotocol are checked at the upgrade', async () => {
  const bad = new Client(N.url, { origin: 'https://evil.example' });
  await assert.rejects(bad.open(), /HTTP 403/);
  const noproto = new Client(N.url, { protocol: 'chat' });
  await assert.rejects(noproto.open(), /HTTP 400/);
});

test('oversize, binary and malformed frames', async () => {
  let c = await connect(N, staffToken());
  c.send('x'.repeat(70000));
  assert.equal(await c.waitClose(), 4008);
  c = await connect(N, staffToken());
  c.ws.send(Buffer.from([1, 2, 3]));
  assert.equal(await c.waitClose(), 4013);
  c = await connect(N, staffToken());
  const garbage = ['{', '[1]', '{"v":1,"type":"ofer","id":4}', '{"v":1,"type":"offer","to":"p2"}',
    '{"v":1,"type":"ping","t":1.5}'];
  const names = [];
  for (const g of garbage) {
    c.send(g);
    names.push((await c.next('error').catch(() => ({ name: 'none' }))).name);
  }
  assert.deepEqual(names.slice(0, 4), ['bad_json', 'bad_frame', 'unknown_type', 'bad_field']);
  assert.equal(await c.waitClose(), 4003);
  // A too-large SDP inside a frame under the cap is a field error, not a close.
  c = await connect(N, staffToken());
  c.send({ type: 'offer', to: 'p2', sdp: 'a'.repeat(61441), id: 12 });
  const e = await c.next('error');
  assert.equal(e.name, 'bad_field');
  assert.equal(e.id, 12);
  assert.match(e.text, /sdp/);
  c.send({ v: 2, type: 'ping' });
  assert.equal((await c.next('error')).name, 'bad_version');
  assert.equal(await c.waitClose(), 4012);
});

test('a flood is rate limited, then closed with 4004', async () => {
  const c = await connect(N, staffToken());
  for (let i = 0; i < 220; i++) c.send({ type: 'ping', t: i });
  await sleep(500);
  const limited = c.frames.filter((f) => f.name === 'rate_limited').length;
  const pongs = c.frames.filter((f) => f.type === 'pong').length;
  assert.ok(limited > 90, `rate_limited ${limited}`);
  assert.ok(pongs >= 95 && pongs < 125, `pongs ${pongs}`); // the bucket holds 100, hello took one
  const t = setInterval(() => c.ws.readyState === 1 && c.send({ type: 'ping' }), 10);
  try {
    assert.equal(await c.waitClose(9000), 4004);
  } finally {
    clearInterval(t);
  }
});

test('a slow reader is dropped instead of growing memory', async () => {
  const room = rid();
  const p = await connect(N, patientToken(room));
  p.send({ type: 'join', room });
  await p.next('joined');
  const s = await connect(N, staffToken(['provider'], { room }));
  s.send({ type: 'join', room });
  await s.next('joined');
  await p.next('peer_joined');
  p.ws._socket.pause(); // stop reading: the kernel buffers fill, then the server's queue
  const sdp = 'v=0\r\n' + 'a=x\r\n'.repeat(8000);
  let sent = 0;
  const t = setInterval(() => {
    if (s.ws.readyState === 1) {
      s.send({ type: 'offer', to: p.peer, sdp });
      sent++;
    }
  }, 55);
  await sleep(9000);
  clearInterval(t);
  // Now read: the server has dropped the connection instead of queueing everything.
  p.ws._socket.resume();
  const code = await p.waitClose(15000);
  const got = p.frames.filter((f) => f.type === 'offer').length;
  assert.ok(got < sent, `received ${got} of ${sent}: nothing was dropped`);
  assert.notEqual(code, 1000);
  s.close();
  p.close();
});

test('no hello within 10 s closes with 4002', async () => {
  assert.equal(await silent.waitClose(Math.max(0, silentOpened + 14000 - Date.now())), 4002);
  assert.ok(silentClosed - silentOpened < 14000, `closed after ${silentClosed - silentOpened} ms`);
});

// A direct client over the cap is refused at the TCP accept (closed before the upgrade: 1006);
// behind a trusted proxy, after the upgrade with 1008 (docs/signal.md, "Limits and close codes").
test('connections per address are capped', async () => {
  const socks = [];
  let refused = 0;
  for (let i = 0; i < 40 && !refused; i++) {
    const c = new Client(N.url);
    socks.push(c);
    await c.open().catch(() => {});
    await sleep(20);
    if (c.closed === 1006) refused++;
  }
  await sleep(300);
  refused = socks.filter((c) => c.closed === 1006).length;
  assert.ok(refused >= 1, 'no connection refused');
  assert.ok(socks.length <= 32, `refused only after ${socks.length}`);
  for (const c of socks) c.close();
});

// Opens connections carrying X-Forwarded-For values until one is refused (1008) or all are
// open; returns how many opened before the first refusal (or n) and the clients.
async function openWithXff(node, values) {
  const socks = [];
  for (const v of values) {
    const c = new Client(node.url, { headers: v ? { 'X-Forwarded-For': v } : undefined });
    socks.push(c);
    await c.open().catch(() => {});
    await sleep(30);
  }
  await sleep(300);
  return socks;
}

test('behind a trusted proxy the cap counts X-Forwarded-For; spoofed headers are ignored', async () => {
  // The test's clients connect from 127.0.0.1: node P trusts it as its load balancer, node U
  // trusts only 10.0.0.0/8, so for U the same headers come from an untrusted peer.
  const [P, U] = await Promise.all([
    startNode('xp', nats, { workers: 1, maxPerAddr: 3, trustedProxies: ['10.0.0.0/8', '127.0.0.1'] }),
    startNode('xu', nats, { workers: 1, maxPerAddr: 3, trustedProxies: ['10.0.0.0/8'] }),
  ]);
  // Trusted: three clients A, and three clients B, all through the same balancer address.
  const a = ['203.0.113.1', '203.0.113.1', '203.0.113.1'];
  const b = ['203.0.113.2', '203.0.113.2', '203.0.113.2'];
  let socks = await openWithXff(P, [...a, ...b]);
  assert.deepEqual(socks.map((c) => c.closed), Array(6).fill(null));
  // A fourth from A is refused; a client B that prepends a fake hop is still B (refused too);
  // one naming a trusted hop on the right is counted under the hop left of it.
  const more = await openWithXff(P, ['203.0.113.1', '198.51.100.66, 203.0.113.2',
    '203.0.113.3, 10.9.9.9', '203.0.113.3']);
  assert.deepEqual(more.map((c) => c.closed), [1008, 1008, null, null]);
  for (const c of [...socks, ...more]) c.close();
  // Untrusted peer: the header is ignored, so every connection counts under 127.0.0.1 (from
  // its accept on: the fourth is closed before the upgrade).
  socks = await openWithXff(U, ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4']);
  assert.deepEqual(socks.map((c) => c.closed), [null, null, null, 1006]);
  for (const c of socks) c.close();
  // And the daemon refuses a malformed entry at start.
  assert.throws(() => execFileSync(process.env.AR_SIGNAL_BIN, ['--keys', '/dev/null',
    '--trusted-proxy', '10.0.0.0/33'], { stdio: 'pipe' }), /trusted-proxy/);
  for (const n of [P, U]) n.kill('SIGTERM');
});

test('the operator listener serves metrics without ids', async () => {
  const body = await new Promise((resolve, reject) => {
    const s = net.connect(N.metrics, '127.0.0.1', () => s.write('GET /metrics HTTP/1.0\r\n\r\n'));
    let data = '';
    s.on('data', (d) => { data += d; });
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
  for (const name of ['anteroom_signal_connections', 'anteroom_signal_rooms',
    'anteroom_signal_messages_total', 'anteroom_signal_relay_latency_us_bucket',
    'anteroom_signal_bus_lag_us_bucket'])
    assert.ok(body.includes(name), name);
});

test('native TLS: wss:// with the node certificate', async () => {
  const cert = path.join(tmp, 'cert.pem');
  const key = path.join(tmp, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'],
  { stdio: 'ignore' });
  const T = await startNode('tls', nats, { workers: 1, tls: [cert, key] });
  const c = await new Client(T.url.replace('ws:', 'wss:'), { insecure: true }).open();
  c.send({ type: 'hello', token: staffToken() });
  assert.equal((await c.next('welcome')).role, 'staff');
  c.send({ type: 'ping', t: 7 });
  assert.equal((await c.next('pong')).t, 7);
  c.close();
});

// The scheduling policy of every thread of a node's workers (field 41 of /proc/.../stat; the
// name, field 2, may hold spaces, so fields are counted after its closing parenthesis), and of
// the supervisor's own threads.
function policies(node) {
  const of = (pid) => fs.readdirSync(`/proc/${pid}/task`).map((t) => {
    const stat = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3]);
  });
  const workers = fs.readFileSync(`/proc/${node.pid}/task/${node.pid}/children`, 'utf8')
    .trim().split(/\s+/).filter(Boolean);
  return { supervisor: of(node.pid), workers: workers.flatMap(of), nworkers: workers.length };
}

test('workers run as SCHED_BATCH; sched-batch=false keeps the default policy', async () => {
  // SCHED_BATCH is 3, the default (SCHED_OTHER) 0: docs/signal.md, "Processes".
  const B = await startNode('batch', nats, { workers: 2 });
  const on = policies(B);
  assert.equal(on.nworkers, 2);
  // Every thread of a worker, libnats' too (they inherit it: the worker sets it first).
  assert.ok(on.workers.length > 2 && on.workers.every((p) => p === 3), `${on.workers}`);
  assert.ok(on.supervisor.every((p) => p === 0), `${on.supervisor}`);
  const D = await startNode('nobatch', nats, { workers: 2, args: ['--sched-batch=false'] });
  const off = policies(D);
  assert.equal(off.nworkers, 2);
  assert.ok(off.workers.length > 2 && off.workers.every((p) => p === 0), `${off.workers}`);
});
