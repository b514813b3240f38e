// web/js/signal.js without a browser: a stand-in WebSocket feeds it frames. Checks the frame
// dispatch the pages rely on: `error lost` (protocol 5.10) becomes 'resync' and not a refusal,
// other errors stay 'error', replayed frames are dropped (by fid, protocol 5.10.1, or by seq
// without one), a resume after a node's death gets each frame once, pings are answered, and
// frames over the server's rate wait in order instead of being sent to be dropped, and a
// `redacted` frame (protocol 5.13) counts for seq and ack but reaches no page.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeSocket } from './fake_socket.mjs';
const { SignalClient } = await import('../../../web/js/signal.js');

// Each client's keepalive timer ends with its test, pass or fail.
async function connected(t) {
  const c = new SignalClient({ urls: ['wss://x.example/ws'], token: () => 'tok' });
  t.after(() => {
    c.stopped = true;
    clearInterval(c.pingTimer);
  });
  await c.connect();
  await new Promise((r) => setImmediate(r));
  const ws = FakeSocket.last;
  assert.equal(ws.sent[0].type, 'hello');
  ws.deliver({ v: 1, type: 'welcome', seq: 1, peer: 'p1', resume: 'r', grace: 120, ping: 25 });
  return { c, ws };
}

function record(c, names) {
  const seen = [];
  for (const n of names) c.addEventListener(n, (e) => seen.push([n, e.detail]));
  return seen;
}

test('error lost is a resync, other errors stay errors', async (t) => {
  const { c, ws } = await connected(t);
  const seen = record(c, ['resync', 'error']);
  ws.deliver({ v: 1, type: 'error', seq: 0, code: 21, name: 'lost', text: '3 messages were lost after seq 1' });
  ws.deliver({ v: 1, type: 'error', seq: 0, code: 3, name: 'forbidden', about: 'join' });
  assert.deepEqual(seen.map(([n, f]) => [n, f.name]), [['resync', 'lost'], ['error', 'forbidden']]);
});

test('a replayed seq is dropped; a ping is answered with a pong and an ack', async (t) => {
  const { c, ws } = await connected(t);
  const seen = record(c, ['offer']);
  ws.deliver({ v: 1, type: 'offer', seq: 2, from: 'p2', sdp: 'a' });
  ws.deliver({ v: 1, type: 'offer', seq: 2, from: 'p2', sdp: 'a' });
  ws.deliver({ v: 1, type: 'ping', seq: 0, t: 5 });
  assert.equal(seen.length, 1);
  const types = ws.sent.map((f) => f.type);
  assert.deepEqual(types.slice(-2), ['pong', 'ack']);
  assert.equal(ws.sent.at(-1).seq, 2);
});

test('frames beyond the bucket wait and go out in order, within the server limit', async (t) => {
  const { c, ws } = await connected(t);
  const before = ws.sent.length; // hello
  for (let i = 0; i < 120; i++) c.send('candidate', { to: 'p2', candidate: `c${i}` });
  const now = ws.sent.length - before;
  assert.ok(now <= 90 && now >= 85, `sent at once: ${now}`);
  await new Promise((r) => setTimeout(r, 2200));
  const cands = ws.sent.filter((f) => f.type === 'candidate').map((f) => f.candidate);
  assert.equal(cands.length, 120);
  assert.deepEqual(cands, Array.from({ length: 120 }, (_, i) => `c${i}`));
  // bye goes at once; what was still queued is dropped (leaving, it no longer matters).
  for (let i = 0; i < 100; i++) c.send('candidate', { to: 'p2', candidate: `d${i}` });
  const sentBefore = ws.sent.length;
  c.bye();
  assert.equal(ws.sent.at(-1).type, 'bye');
  assert.equal(ws.sent.length, sentBefore + 1);
});

test('frames queued while the connection is down go out after a resume, not after a new session', async (t) => {
  const { c, ws } = await connected(t);
  // Fill the bucket so that frames wait, then lose the connection.
  for (let i = 0; i < 95; i++) c.send('candidate', { to: 'p2', candidate: `a${i}` });
  const waiting = c.outQueue.length;
  assert.ok(waiting >= 5, `waiting ${waiting}`);
  ws.onclose({ code: 1006 });
  assert.equal(c.send('candidate', { to: 'p2', candidate: 'lost' }), 0, 'no connection: not queued');
  // The retry connects; before welcome only hello goes out, then the queue in order.
  clearTimeout(c.paceTimer);
  c.paceTimer = null;
  await c.connect();
  await new Promise((r) => setImmediate(r));
  const ws2 = FakeSocket.last;
  assert.notEqual(ws2, ws);
  assert.equal(ws2.sent.length, 1);
  assert.equal(ws2.sent[0].type, 'hello');
  assert.equal(ws2.sent[0].resume, 'r');
  ws2.deliver({ v: 1, type: 'welcome', seq: 0, peer: 'p1', resume: 'r2', grace: 120, ping: 25, resumed: true });
  const cands = ws2.sent.filter((f) => f.type === 'candidate').map((f) => f.candidate);
  assert.equal(cands.length, waiting);
  assert.equal(cands[0], `a${95 - waiting}`);

  // The same with a new session: the old session's frames are dropped, new ones go.
  for (let i = 0; i < 95; i++) c.send('candidate', { to: 'p2', candidate: `b${i}` });
  ws2.onclose({ code: 1006 });
  clearTimeout(c.paceTimer);
  c.paceTimer = null;
  await c.connect();
  await new Promise((r) => setImmediate(r));
  const ws3 = FakeSocket.last;
  ws3.deliver({ v: 1, type: 'welcome', seq: 1, peer: 'p9', resume: 'r3', grace: 120, ping: 25 });
  assert.equal(c.outQueue.length, 0);
  assert.deepEqual(ws3.sent.map((f) => f.type), ['hello']);
  c.send('join', { room: 'x' });
  assert.equal(ws3.sent.at(-1).type, 'join');
});

// Frame ids (protocol 5.10.1): base64url of 16 bytes, as the server writes them.
const fid = (n) => Buffer.from(`frame-${String(n).padStart(10, '0')}`).toString('base64url');

test('a frame is dropped by its fid, whatever its seq; lastSeq still moves on', async (t) => {
  const { c, ws } = await connected(t);
  const seen = record(c, ['candidate']);
  // 'fid' is told for every frame processed (a page saves recentFids() on it), 'seq' only when
  // lastSeq moves: the frame processed at seq 2 below tells 'fid' alone.
  const told = [];
  c.addEventListener('fid', (e) => told.push(['fid', e.detail, c.recentFids().includes(e.detail)]));
  c.addEventListener('seq', (e) => told.push(['seq', e.detail]));
  ws.deliver({ v: 1, type: 'candidate', seq: 1, fid: fid(1), from: 'p2', candidate: 'a' });
  ws.deliver({ v: 1, type: 'candidate', seq: 2, fid: fid(2), from: 'p2', candidate: 'b' });
  // The same frame again under another number: dropped, but everything up to 3 has arrived.
  ws.deliver({ v: 1, type: 'candidate', seq: 3, fid: fid(1), from: 'p2', candidate: 'a' });
  assert.equal(c.lastSeq, 3);
  // A frame never seen under a number already seen: processed, lastSeq unchanged.
  ws.deliver({ v: 1, type: 'candidate', seq: 2, fid: fid(4), from: 'p3', candidate: 'c' });
  assert.equal(c.lastSeq, 3);
  // And the same twice under one number.
  ws.deliver({ v: 1, type: 'candidate', seq: 4, fid: fid(5), from: 'p2', candidate: 'd' });
  ws.deliver({ v: 1, type: 'candidate', seq: 4, fid: fid(5), from: 'p2', candidate: 'd' });
  assert.deepEqual(seen.map(([, f]) => f.candidate), ['a', 'b', 'c', 'd']);
  assert.equal(c.lastSeq, 4);
  assert.deepEqual(told, [
    ['fid', fid(1), true], ['seq', 1], ['fid', fid(2), true], ['seq', 2], ['seq', 3],
    ['fid', fid(4), true], ['fid', fid(5), true], ['seq', 4],
  ]);
  c.ack();
  assert.equal(ws.sent.at(-1).type, 'ack');
  assert.equal(ws.sent.at(-1).seq, 4);
});

test('without fid (an older server) a seq not above lastSeq is the duplicate', async (t) => {
  const { c, ws } = await connected(t);
  const seen = record(c, ['candidate']);
  ws.deliver({ v: 1, type: 'candidate', seq: 1, from: 'p2', candidate: 'a' });
  ws.deliver({ v: 1, type: 'candidate', seq: 1, from: 'p2', candidate: 'a' });
  ws.deliver({ v: 1, type: 'candidate', seq: 2, fid: fid(2), from: 'p2', candidate: 'b' });
  ws.deliver({ v: 1, type: 'candidate', seq: 2, from: 'p2', candidate: 'b' });
  assert.deepEqual(seen.map(([, f]) => f.candidate), ['a', 'b']);
});

// The case of 5.10.1: the owner numbered x1 (seq 5) and y1 (6) and died after sending x1 only;
// its backup numbered them in the order they reached it, y1 (5) and x1 (6), and replays on the
// first resume the frames above last_seq (x1 as 6) and the uncertain ones at or below it (y1
// as 5), in the order of their seq.
test('a resume after a node death: each frame once, whatever the backup numbered it', async (t) => {
  const { c, ws } = await connected(t);
  const seen = record(c, ['candidate', 'welcome']);
  for (let i = 1; i <= 4; i++) ws.deliver({ v: 1, type: 'candidate', seq: i, fid: fid(i), from: 'p2', candidate: `c${i}` });
  ws.deliver({ v: 1, type: 'candidate', seq: 5, fid: fid(100), from: 'p2', candidate: 'x1' });
  ws.onclose({ code: 1006 });
  await c.connect();
  await new Promise((r) => setImmediate(r));
  const ws2 = FakeSocket.last;
  assert.equal(ws2.sent[0].last_seq, 5);
  ws2.deliver({ v: 1, type: 'welcome', seq: 0, peer: 'p1', resume: 'r2', grace: 120, ping: 25, resumed: true, last_seq: 6 });
  ws2.deliver({ v: 1, type: 'candidate', seq: 5, fid: fid(200), from: 'p3', candidate: 'y1' });
  ws2.deliver({ v: 1, type: 'candidate', seq: 6, fid: fid(100), from: 'p2', candidate: 'x1' });
  ws2.deliver({ v: 1, type: 'candidate', seq: 7, fid: fid(300), from: 'p2', candidate: 'x2' });
  const cands = seen.filter(([n]) => n === 'candidate').map(([, f]) => f.candidate);
  assert.deepEqual(cands, ['c1', 'c2', 'c3', 'c4', 'x1', 'y1', 'x2']);
  assert.equal(c.lastSeq, 7);
  // A page reloaded with its session keeps the ids too (patient pages keep resume and lastSeq).
  const c2 = new SignalClient({ urls: ['wss://x.example/ws'], token: () => 'tok', resume: 'r2', lastSeq: 7, fids: c.recentFids() });
  t.after(() => c2.close());
  await c2.connect();
  await new Promise((r) => setImmediate(r));
  const ws3 = FakeSocket.last;
  const again = record(c2, ['candidate']);
  ws3.deliver({ v: 1, type: 'welcome', seq: 0, peer: 'p1', resume: 'r3', grace: 120, ping: 25, resumed: true, last_seq: 7 });
  ws3.deliver({ v: 1, type: 'candidate', seq: 5, fid: fid(200), from: 'p3', candidate: 'y1' });
  ws3.deliver({ v: 1, type: 'candidate', seq: 8, fid: fid(400), from: 'p3', candidate: 'y2' });
  assert.deepEqual(again.map(([, f]) => f.candidate), ['y2']);
});

test('the last 512 frame ids are remembered; a new session forgets them', async (t) => {
  const { c, ws } = await connected(t);
  const seen = record(c, ['candidate']);
  for (let i = 1; i <= 513; i++) ws.deliver({ v: 1, type: 'candidate', seq: i, fid: fid(i), from: 'p2', candidate: `c${i}` });
  assert.equal(c.recentFids().length, 512);
  ws.deliver({ v: 1, type: 'candidate', seq: 2, fid: fid(2), from: 'p2', candidate: 'c2' }); // remembered
  ws.deliver({ v: 1, type: 'candidate', seq: 1, fid: fid(1), from: 'p2', candidate: 'c1' }); // forgotten
  assert.equal(seen.length, 514);
  assert.equal(seen.at(-1)[1].candidate, 'c1');
  ws.onclose({ code: 1006 });
  await c.connect();
  await new Promise((r) => setImmediate(r));
  const ws2 = FakeSocket.last;
  ws2.deliver({ v: 1, type: 'welcome', seq: 0, peer: 'p9', resume: 'r9', grace: 120, ping: 25, resumed: false });
  assert.equal(c.recentFids().length, 0);
  ws2.deliver({ v: 1, type: 'candidate', seq: 1, fid: fid(3), from: 'p2', candidate: 'c3' });
  assert.equal(seen.at(-1)[1].candidate, 'c3');
});

// A node that is stopping closes with 4014 after handing its sessions over (docs/signal.md,
// "Graceful stop"): the first retry goes at once, to the next URL; any other loss waits.
test('after 4014 the client retries at once on the next URL; after 1006 it waits', async (t) => {
  const a = 'wss://a.example/ws';
  const b = 'wss://b.example/ws';
  for (const [code, atOnce, on, next] of [[4014, true, a, b], [4014, true, b, a], [1006, false, a, b]]) {
    const c = new SignalClient({ urls: [a, b], token: () => 'tok' });
    t.after(() => {
      c.stopped = true;
      clearInterval(c.pingTimer);
    });
    await c.connect(on);
    await new Promise((r) => setImmediate(r));
    const ws = FakeSocket.last;
    ws.deliver({ v: 1, type: 'welcome', seq: 1, peer: 'p1', resume: 'r', grace: 120, ping: 25 });
    ws.onclose({ code });
    await new Promise((r) => setTimeout(r, 50));
    if (atOnce) {
      assert.notEqual(FakeSocket.last, ws, `${code}: reconnected within 50 ms`);
      assert.equal(FakeSocket.last.url, next, `${code} on ${on}`);
      await new Promise((r) => setImmediate(r));
      assert.equal(FakeSocket.last.sent[0].resume, 'r');
    } else {
      assert.equal(FakeSocket.last, ws, `${code}: no reconnect within 50 ms`);
    }
    c.stopped = true;
  }
});

// Drain (protocol 5.12), step by step as onDrain takes them. The old connection must stay open
// until the new one is welcomed: a close 1000 ends the session on the server (protocol 4.2),
// and the resume on the drain URL would then start a new session (the call drops).
const tick = () => new Promise((r) => setImmediate(r));
const drainTo = (ws, urls) => ws.deliver({ v: 1, type: 'drain', seq: 0, urls, within: 30 });

test('drain: the old connection stays open until the new one resumed, then goes with 4010', async (t) => {
  const { c, ws } = await connected(t);
  drainTo(ws, ['wss://n2.example/ws']);
  await tick();
  const ws2 = FakeSocket.last;
  assert.notEqual(ws2, ws, 'a new connection to the drain URL');
  assert.equal(ws2.url, 'wss://n2.example/ws');
  assert.equal(ws.closeCode, undefined, 'the old connection is open while the new one says hello');
  assert.equal(ws2.sent[0].type, 'hello');
  assert.equal(ws2.sent[0].resume, 'r');
  // Frames sent meanwhile wait for the new connection's welcome.
  c.send('candidate', { to: 'p2', candidate: 'c1' });
  assert.equal(ws.sent.at(-1).type, 'hello');
  assert.equal(ws.closeCode, undefined, 'still open before the welcome');
  const seen = record(c, ['welcome']);
  ws2.deliver({ v: 1, type: 'welcome', seq: 0, peer: 'p1', resume: 'r2', grace: 120, ping: 25, resumed: true });
  assert.equal(seen[0][1].resumed, true);
  assert.equal(ws.closeCode, 4010, 'closed after the resume, with a code that keeps the session');
  assert.equal(ws2.sent.at(-1).candidate, 'c1');
  // The server's own close of the old connection (4006 or 4010) changes nothing.
  ws.onclose({ code: 4006 });
  assert.equal(c.ws, ws2);
});

test('drain: a new session instead of a resume ends the old one (1000)', async (t) => {
  const { ws } = await connected(t);
  drainTo(ws, ['wss://n2.example/ws']);
  await tick();
  const ws2 = FakeSocket.last;
  assert.equal(ws.closeCode, undefined);
  ws2.deliver({ v: 1, type: 'welcome', seq: 1, peer: 'p7', resume: 'r7', grace: 120, ping: 25 });
  assert.equal(ws.closeCode, 1000);
});

test('drain: without a token the client stays on the old connection and tries again', async (t) => {
  let fail = true;
  const c = new SignalClient({
    urls: ['wss://x.example/ws'],
    token: () => {
      if (fail) throw new Error('app unreachable');
      return 'tok';
    },
  });
  t.after(() => {
    c.stopped = true;
    clearInterval(c.pingTimer);
  });
  fail = false;
  await c.connect();
  await tick();
  const ws = FakeSocket.last;
  ws.deliver({ v: 1, type: 'welcome', seq: 1, peer: 'p1', resume: 'r', grace: 120, ping: 25 });
  fail = true;
  drainTo(ws, ['wss://n2.example/ws']);
  await tick();
  assert.equal(FakeSocket.last, ws, 'no new connection without a token');
  assert.equal(ws.closeCode, undefined, 'the old connection is kept');
  assert.equal(c.ws, ws);
  // It still carries the call.
  c.send('candidate', { to: 'p2', candidate: 'c1' });
  assert.equal(ws.sent.at(-1).candidate, 'c1');
  fail = false;
  await new Promise((r) => setTimeout(r, 3200)); // the retry, with its back-off
  const ws2 = FakeSocket.last;
  assert.notEqual(ws2, ws, 'moved once a token came');
  assert.equal(ws2.sent[0].resume, 'r');
  assert.equal(ws.closeCode, undefined);
});

test('drain during a move is ignored; a drain right after a move waits and picks another URL', async (t) => {
  const { c, ws } = await connected(t);
  const a = 'wss://a.example/ws';
  const b = 'wss://b.example/ws';
  drainTo(ws, [a, b]);
  drainTo(ws, [a, b]); // a second drain before the token came: one move
  await tick();
  const ws2 = FakeSocket.last;
  assert.equal(ws2.url, a);
  await tick();
  assert.equal(FakeSocket.last, ws2, 'one new connection');
  ws2.deliver({ v: 1, type: 'welcome', seq: 0, peer: 'p1', resume: 'r2', grace: 120, ping: 25, resumed: true });
  // The node we moved to drains too (as a draining node tells a client right after its welcome).
  drainTo(ws2, [a, b]);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(FakeSocket.last, ws2, 'the second move waits');
  assert.equal(ws2.closeCode, undefined);
  await new Promise((r) => setTimeout(r, 1000));
  const ws3 = FakeSocket.last;
  assert.notEqual(ws3, ws2, 'then moves');
  assert.equal(ws3.url, b, 'not back to the node it is leaving');
  assert.equal(ws3.sent[0].resume, 'r2');
  assert.equal(ws2.closeCode, undefined);
  ws3.deliver({ v: 1, type: 'welcome', seq: 0, peer: 'p1', resume: 'r3', grace: 120, ping: 25, resumed: true });
  assert.equal(ws2.closeCode, 4010);
  assert.equal(c.ws, ws3);
});

test('a redacted frame counts for seq and ack, is dropped by fid, and reaches no page', async (t) => {
  const { c, ws } = await connected(t);
  const seen = [];
  const emit = c.emit.bind(c);
  c.emit = (type, detail) => {
    seen.push(type);
    emit(type, detail);
  };
  ws.deliver({ v: 1, type: 'queue_add', seq: 2, fid: 'AAAAAAAAAAAAAAAAAAAAAA', clinic: 'c1', area: 'a', entry: { peer: 'p9', name: 'Bo', since: 1, status: 'waiting' } });
  ws.deliver({ v: 1, type: 'redacted', seq: 3, fid: 'AAAAAAAAAAAAAAAAAAAAAB' });
  ws.deliver({ v: 1, type: 'redacted', seq: 3, fid: 'AAAAAAAAAAAAAAAAAAAAAB' });
  ws.deliver({ v: 1, type: 'queue_remove', seq: 4, fid: 'AAAAAAAAAAAAAAAAAAAAAC', clinic: 'c1', area: 'a', peer: 'p7', reason: 'ended' });
  assert.equal(c.lastSeq, 4);
  assert.ok(c.recentFids().includes('AAAAAAAAAAAAAAAAAAAAAB'));
  const pages = seen.filter((n) => !['seq', 'fid'].includes(n));
  assert.deepEqual(pages, ['queue_add', 'queue_remove']);
  ws.deliver({ v: 1, type: 'ping', seq: 0, t: 1 });
  assert.deepEqual(ws.sent.at(-1), { v: 1, type: 'ack', id: ws.sent.at(-1).id, seq: 4 });
});
