// Admission control (docs/signal.md, "Overload"): a worker whose bus inbox is behind refuses new
// sessions with close 4016 "busy" (clients come back later), instead of accepting sessions whose
// records it cannot keep up with; the sessions it already holds stay. The backlog is made by
// flooding the jurisdiction's record subject straight on NATS (a raw client: the protocol is
// text) with records no worker keeps (no peer id) but every worker must parse, faster than the
// one worker parses them; its inbox-max is 8 MiB, so it is behind past 4 MiB waiting. Before
// admission control the new client was welcomed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, test } from 'node:test';
import {
  Client, connect, patientToken, rid, sleep, startNats, startNode, stopAll, waitFor,
} from './lib.mjs';

let nats, A;
before(async () => {
  nats = await startNats();
  A = await startNode('ad', nats.slice(0, 1), { workers: 1, inboxMax: '8M' });
});
after(() => stopAll());

// Publishes 4 KB JSON objects of many small members on ar.eu.sess.flood as fast as NATS takes
// them, until stop().
function flood(url) {
  const { hostname, port } = new URL(url);
  const sock = net.connect(Number(port), hostname);
  const body = `{${Array.from({ length: 500 }, (_, i) => `"k${i}":${i}`).join(',')}}`;
  const msg = `PUB ar.eu.sess.flood ${Buffer.byteLength(body)}\r\n${body}\r\n`;
  const chunk = Buffer.from(msg.repeat(64));
  let on = true;
  const pump = () => {
    while (on && sock.write(chunk));
  };
  sock.on('data', (d) => {
    if (d.toString().includes('PING')) sock.write('PONG\r\n');
  });
  sock.on('error', () => {});
  sock.on('drain', pump);
  sock.once('connect', () => {
    sock.write('CONNECT {"verbose":false,"pedantic":false}\r\n');
    pump();
  });
  return { stop: () => { on = false; sock.destroy(); } };
}

const logHas = (node, event) => fs.readFileSync(node.logFile, 'utf8').includes(`"event":"${event}"`);

async function metric(node, name) {
  const r = await fetch(`http://127.0.0.1:${node.metrics}/metrics`);
  const line = (await r.text()).split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').pop()) : NaN;
}

test('a worker behind on its bus refuses new sessions with 4016 and keeps the ones it holds', async () => {
  const room = rid();
  const held = await connect(A, patientToken(room));
  held.send({ type: 'join', room });
  await held.next('joined');

  const f = flood(nats[0]);
  let refused;
  try {
    // The worker says when it falls behind; without admission control it never says so, and
    // the client below is welcomed (the assertion that fails there).
    await waitFor(() => logHas(A, 'signal_bus_behind'), 8000, 'the worker to fall behind')
      .catch(() => {});
    // A new session now: refused with 4016, reason "busy", no welcome.
    const c = await new Client(A.url).open();
    c.send({ type: 'hello', token: patientToken(rid()) });
    refused = await c.waitClose(15000);
    assert.equal(c.frames.filter((x) => x.type === 'welcome').length, 0, 'no welcome');
  } finally {
    f.stop();
  }
  assert.equal(refused, 4016, 'refused as busy');

  // Caught up: new sessions are welcome again, and the held one was never closed.
  await waitFor(() => logHas(A, 'signal_bus_caught_up'), 20000, 'the worker to catch up');
  const d = await connect(A, patientToken(rid()));
  assert.ok(d.peer, 'welcomed after catching up');
  assert.equal(held.closed, null, 'the held session stayed connected');
  held.send({ type: 'ping' });
  await held.next('pong', 10000);
  assert.ok((await metric(A, 'anteroom_signal_busy_refused_total')) >= 1, 'refusals counted');
  d.close();
  held.close();
  await sleep(100);
});
