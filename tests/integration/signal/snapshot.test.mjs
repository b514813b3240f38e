// A queue snapshot larger than a connection's output cap (512 KiB, srv.c): 500 waiting patients
// (the most an area holds) whose details are the longest the protocol allows, every character
// one that JSON escapes, come to about 2.3 KB of frame each, 1.1 MB in all. The snapshot used to
// be queued on the staff member's connection at once: past the cap the connection was dropped
// as a slow reader, and the staff member never saw the queue (docs/signal.md, "Queue snapshot
// and deltas"). Now its pages go out as the connection drains.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { connect, patientToken, rid, sleep, staffToken, startNats, startNode, stopAll } from './lib.mjs';

const N = Number(process.env.AR_SNAP_PATIENTS ?? 500);
const name = '"'.repeat(64);
const answers = ['a', 'b', 'c', 'd'].map((q) => ({ q: `q${q}`.repeat(31), a: '\\'.repeat(200) }));

let node;
const patients = [];
before(async () => {
  // The kernel's socket buffers on loopback grow to megabytes and would hide the server's queue:
  // in this test's own network namespace (tests/netns.sh) they are held to what a path to a
  // browser typically allows, so that what the kernel does not take waits in the server.
  if (process.env.AR_NETNS) {
    fs.writeFileSync('/proc/sys/net/ipv4/tcp_wmem', '4096 16384 65536');
    fs.writeFileSync('/proc/sys/net/ipv4/tcp_rmem', '4096 65536 131072');
  } else {
    console.log('# no network namespace: the kernel buffers may take the whole snapshot');
  }
  const nats = await startNats();
  // One worker: every patient is in its view as soon as it is told `wait`.
  node = await startNode('s', nats, { workers: 1, maxPerAddr: N + 50 });
  for (let i = 0; i < N; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, N - i) }, async () => {
      const p = await connect(node, patientToken(rid(), { area: 'big' }));
      p.send({ type: 'arrive', clinic: 'c1', area: 'big', name, consent: true, answers });
      assert.equal((await p.next('wait', 15000)).status, 'waiting');
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
    const page = await s.next((f) => f.type === 'queue' && f.area === area, 15000);
    assert.ok(page.entries.length <= 32);
    entries.push(...page.entries);
    bytes += JSON.stringify(page).length;
    if (!page.more) return { entries, bytes };
  }
}

test('a snapshot past the output cap reaches a staff member who reads slowly', async () => {
  const s = await connect(node, staffToken());
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
  await s.next('pong');
  s.close();
});
