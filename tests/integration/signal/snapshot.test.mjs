// A queue snapshot larger than a connection's output cap (512 KiB, srv.c): 500 waiting patients
// (the most an area holds) whose details are the longest the protocol allows, every character
// one that JSON escapes, come to about 2.3 KB of frame each, 1.1 MB in all. The snapshot used to
// be queued on the staff member's connection at once: past the cap the connection was dropped
// as a slow reader, and the staff member never saw the queue (docs/signal.md, "Queue snapshot
// and deltas"). Now its pages go out as the connection drains.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { Client, patientToken, rid, sleep, staffToken, startNats, startNode, stopAll } from './lib.mjs';

const N = Number(process.env.AR_SNAP_PATIENTS ?? 500);
const name = '"'.repeat(64);
const answers = ['a', 'b', 'c', 'd'].map((q) => ({ q: `q${q}`.repeat(31), a: '\\'.repeat(200) }));

// Client.next leaves its timer running: a thousand of them would keep this file's process alive
// for seconds after its test. These waits clear theirs.
function take(c, pred, ms = 15000) {
  const match = typeof pred === 'string' ? (f) => f.type === pred : pred;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      c.waiters = c.waiters.filter((w) => w !== check);
      reject(new Error(`timeout waiting; have ${JSON.stringify(c.frames.map((f) => f.type))}`));
    }, ms);
    function check() {
      const i = c.frames.findIndex(match);
      if (i >= 0 || c.closed !== null) clearTimeout(timer);
      if (i >= 0) resolve(c.frames.splice(i, 1)[0]);
      else if (c.closed !== null) reject(new Error(`closed (${c.closed}) waiting`));
      else c.waiters.push(check);
    }
    check();
  });
}

async function connect(token) {
  const c = await new Client(node.url).open();
  c.send({ type: 'hello', token });
  c.welcome = await take(c, 'welcome');
  c.peer = c.welcome.peer;
  return c;
}

let node;
const patients = [];
before(async () => {
  // The kernel's socket buffers on loopback grow to megabytes (tcp_wmem up to 4 MiB): they took
  // the whole snapshot and hid the server's queue. In this file's own network namespace
  // (tests/netns.sh; CTest runs it alone, as signal_e2e_snapshot) they are held to sizes a path
  // to a browser may well have, so that what the kernel does not take waits in the server.
  let small = false;
  if (process.env.AR_NETNS) {
    try {
      fs.writeFileSync('/proc/sys/net/ipv4/tcp_wmem', '4096 16384 65536');
      fs.writeFileSync('/proc/sys/net/ipv4/tcp_rmem', '4096 65536 131072');
      small = true;
    } catch { /* not ours to change */ }
  }
  if (!small) console.log('# TCP buffers left as they are: they may take the whole snapshot');
  const nats = await startNats();
  // One worker: every patient is in its view as soon as it is told `wait`.
  node = await startNode('s', nats, { workers: 1, maxPerAddr: N + 50 });
  for (let i = 0; i < N; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, N - i) }, async () => {
      const p = await connect(patientToken(rid(), { area: 'big' }));
      p.send({ type: 'arrive', clinic: 'c1', area: 'big', name, consent: true, answers });
      assert.equal((await take(p, 'wait')).status, 'waiting');
      return p;
    }));
    patients.push(...batch);
  }
});
after(() => {
  for (const p of patients) p.close();
  stopAll();
});

// Collects one snapshot's pages (up to the one without `more`) and the deltas among them.
async function snapshot(s, area) {
  const entries = [];
  let bytes = 0;
  for (;;) {
    const page = await take(s, (f) => f.type === 'queue' && f.area === area);
    assert.ok(page.entries.length <= 32);
    entries.push(...page.entries);
    bytes += JSON.stringify(page).length;
    if (!page.more) return { entries, bytes };
  }
}

test('a snapshot past the output cap reaches a staff member who reads slowly', async () => {
  const s = await connect(staffToken());
  // Not reading for a while: the kernel's buffers fill, and whatever the server still has to
  // send waits in its queue for this connection, which must stay under the cap.
  if (!process.env.AR_SNAP_NOPAUSE) s.ws._socket.pause();
  s.send({ type: 'subscribe', clinic: 'c1', area: 'big' });
  await sleep(1000);
  s.ws._socket.resume();
  const { entries, bytes } = await snapshot(s, 'big');
  console.log(`# ${N} patients: ${entries.length} entries, ${bytes} bytes of snapshot`);
  assert.equal(s.closed, null, `the staff member was disconnected (${s.closed})`);
  assert.equal(entries.length, N);
  assert.deepEqual(new Set(entries.map((e) => e.peer)), new Set(patients.map((p) => p.peer)));
  for (const e of entries) {
    assert.equal(e.name, name);
    assert.deepEqual(e.answers, answers);
  }
  // The connection still works: a ping is answered after the snapshot.
  s.send({ type: 'ping' });
  await take(s, 'pong');
  s.close();
});

// Deltas while the snapshot is being paged (area.c, the rule above snap_pages): the snapshot
// lists each patient who waited when the subscription was handled at most once, with its state
// when its page was built; one who arrives later comes by queue_add only; one who leaves before
// its page is not listed, and nobody after it is skipped. Applied in order, pages and deltas
// make up the queue as it is.
test('deltas during a paged snapshot: every patient once, the queue as it ends up', async () => {
  const s = await connect(staffToken());
  const desk = await connect(staffToken(['receptionist']));
  s.ws._socket.pause();
  s.send({ type: 'subscribe', clinic: 'c1', area: 'big' });
  await sleep(300); // the first pages fill the kernel's buffers; the rest wait for the reader
  const gone = [patients[5], patients[250], patients[N - 1]];
  const held = [patients[3], patients[300]];
  for (const p of gone) desk.send({ type: 'transfer', peer: p.peer, area: 'other' });
  for (const p of held) desk.send({ type: 'hold', peer: p.peer, on: true });
  for (const p of gone) assert.equal((await take(p, 'wait')).area, 'other');
  for (const p of held) assert.equal((await take(p, 'wait')).status, 'hold');
  const late = [];
  for (let i = 0; i < 3; i++) {
    const p = await connect(patientToken(rid(), { area: 'big' }));
    p.send({ type: 'arrive', clinic: 'c1', area: 'big', name: 'Late', consent: true });
    assert.equal((await take(p, 'wait')).status, 'waiting');
    late.push(p);
  }
  s.ws._socket.resume();
  await snapshot(s, 'big');
  for (const p of late) await take(s, (f) => f.type === 'queue_add' && f.entry.peer === p.peer);
  await sleep(300); // nothing more should come
  assert.equal(s.closed, null);

  const view = new Map();
  const listed = new Set();
  for (const f of s.all) {
    if (f.area !== 'big') continue;
    if (f.type === 'queue') {
      for (const e of f.entries) {
        assert.ok(!listed.has(e.peer), 'a patient listed twice in one snapshot');
        listed.add(e.peer);
        view.set(e.peer, e.status);
      }
    } else if (f.type === 'queue_add') {
      assert.ok(!listed.has(f.entry.peer), 'a patient both listed and added');
      view.set(f.entry.peer, f.entry.status);
    } else if (f.type === 'queue_update') {
      if (view.has(f.peer)) view.set(f.peer, f.status);
    } else if (f.type === 'queue_remove') {
      view.delete(f.peer);
    }
  }
  for (const p of [patients[250], patients[N - 1], ...late]) assert.ok(!listed.has(p.peer));
  const expect = new Map();
  for (const p of patients) if (!gone.includes(p)) expect.set(p.peer, 'waiting');
  for (const p of held) expect.set(p.peer, 'hold');
  for (const p of late) expect.set(p.peer, 'waiting');
  assert.equal(view.size, expect.size);
  assert.deepEqual(view, expect);
  for (const c of [s, desk, ...late]) c.close();
});

// The worker's count of snapshots still being sent (its operator listener's metrics).
async function pending() {
  const body = await new Promise((resolve, reject) => {
    const c = net.connect(node.metrics, '127.0.0.1', () => c.write('GET /metrics HTTP/1.0\r\n\r\n'));
    let data = '';
    c.on('data', (d) => { data += d; });
    c.on('end', () => resolve(data));
    c.on('error', reject);
  });
  const m = /^anteroom_signal_queue_snapshots_pending (\d+)/m.exec(body);
  assert.ok(m, 'no anteroom_signal_queue_snapshots_pending');
  return Number(m[1]);
}

// A staff member who goes mid-snapshot, by closing the connection or by unsubscribing: what
// the snapshot still had to send is dropped with it (area.c ar__sig_snap_conn_gone, _unsub),
// and no page comes after the unsubscribe is handled; the worker counts none left.
test('a staff member who leaves mid-snapshot takes its rest with it', async () => {
  assert.equal(await pending(), 0);
  const gone = await connect(staffToken());
  gone.ws._socket.pause();
  gone.send({ type: 'subscribe', clinic: 'c1', area: 'big' });
  await sleep(200);
  assert.equal(await pending(), 1, 'the snapshot was not waiting for the reader');
  gone.close();
  await sleep(200);
  assert.equal(await pending(), 0, 'a closed connection\'s snapshot stayed');

  const s = await connect(staffToken());
  s.ws._socket.pause();
  s.send({ type: 'subscribe', clinic: 'c1', area: 'big' });
  await sleep(200);
  assert.equal(await pending(), 1);
  // Read only once the server has drained its queue for s: the pages queued by then arrive.
  s.send({ type: 'unsubscribe', clinic: 'c1', area: 'big' });
  s.ws._socket.resume();
  await sleep(1000);
  assert.equal(await pending(), 0, 'an ended subscription\'s snapshot stayed');
  const pages = s.all.filter((f) => f.type === 'queue');
  const listed = pages.reduce((n, f) => n + f.entries.length, 0);
  assert.ok(pages.length > 0 && listed < N, `${listed} of ${N} listed after the unsubscribe`);
  assert.equal(pages.at(-1).more, true);
  assert.equal(s.closed, null);
  // The connection still works.
  s.send({ type: 'ping' });
  await take(s, 'pong');
  s.close();
});
