// web/js/resync.js with web/js/signal.js, without a browser: after `error lost` (protocol 5.10)
// the patient's page asks for its own status again (`subscribe` to its clinic, which the server
// answers with the patient's `wait`) and, in a call, restarts ICE with every peer. A stand-in
// WebSocket feeds the client frames, as in signal_client.test.mjs.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeSocket } from './fake_socket.mjs';
const { SignalClient } = await import('../../../web/js/signal.js');
const { patientResync } = await import('../../../web/js/resync.js');

// A welcomed client whose 'resync' runs the patient page's handler on the given state.
async function page(t, st, mesh) {
  const sig = new SignalClient({ urls: ['wss://x.example/ws'], token: () => 'tok' });
  t.after(() => {
    sig.stopped = true;
    clearInterval(sig.pingTimer);
    clearTimeout(sig.paceTimer);
  });
  const asked = [];
  sig.addEventListener('resync', () => asked.push(...patientResync(sig, st, mesh)));
  await sig.connect();
  await new Promise((r) => setImmediate(r));
  const ws = FakeSocket.last;
  ws.deliver({ v: 1, type: 'welcome', seq: 0, peer: 'p1', resume: 'r', role: 'patient', resumed: false,
    last_seq: 0, grace: 120, ping: 25, frame_max: 65536 });
  return { sig, ws, asked };
}

const lost = { v: 1, type: 'error', seq: 0, code: 21, name: 'lost', text: '2 messages for this session were lost after seq 4' };
const stubMesh = () => ({ restarts: 0, restart() { this.restarts++; } });

test('waiting: the patient asks for its own status with subscribe to its clinic', async (t) => {
  const st = { clinic: 'c1', area: 'knee', phase: 'waiting' };
  const { ws, asked } = await page(t, st, null);
  const before = ws.sent.length;
  ws.deliver(lost);
  assert.deepEqual(asked, ['subscribe']);
  const out = ws.sent.slice(before);
  assert.equal(out.length, 1);
  assert.deepEqual([out[0].type, out[0].clinic, out[0].area], ['subscribe', 'c1', 'knee']);
  // Nothing else the page typed goes out again (no arrive, no name).
  assert.ok(!JSON.stringify(out).includes('name'));
});

test('in a call: ICE restart with every peer, and the status again (a hold may be missing)', async (t) => {
  const mesh = stubMesh();
  const { ws, asked } = await page(t, { clinic: 'c1', area: 'knee', phase: 'call' }, mesh);
  ws.deliver(lost);
  assert.equal(mesh.restarts, 1);
  assert.deepEqual(asked, ['restart', 'subscribe']);
  assert.equal(ws.sent.at(-1).type, 'subscribe');
});

test('an invitee has no queue place: only the restart; before arriving: nothing', async (t) => {
  const mesh = stubMesh();
  const inv = await page(t, { phase: 'call', invitee: true }, mesh);
  const n = inv.ws.sent.length;
  inv.ws.deliver(lost);
  assert.deepEqual(inv.asked, ['restart']);
  assert.equal(inv.ws.sent.length, n);
  for (const phase of ['check', 'details']) {
    const early = await page(t, { clinic: 'c1', area: 'knee', phase }, null);
    const m = early.ws.sent.length;
    early.ws.deliver(lost);
    assert.deepEqual(early.asked, []);
    assert.equal(early.ws.sent.length, m);
  }
});

test('other errors are no resync', async (t) => {
  const { ws, asked } = await page(t, { clinic: 'c1', area: 'knee', phase: 'waiting' }, null);
  ws.deliver({ v: 1, type: 'error', seq: 0, code: 3, name: 'forbidden', about: 'subscribe' });
  assert.deepEqual(asked, []);
});
