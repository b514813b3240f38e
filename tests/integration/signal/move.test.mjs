// A resume reaching a worker other than its session's owner, on the owner's node: the
// connection moves to the owner (docs/signal.md, "Resume on the owner's worker"), which resumes
// it locally. Each worker's own port (--worker-port) puts a client on the worker the test
// chooses; each worker's metrics say which way connections moved.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import {
  connect, inviteeToken, lowPorts, ORIGIN, patientToken, rid, sleep, startNats, startNode, stopAll,
  waitFor,
} from './lib.mjs';

let nats, M, ports;
before(async () => {
  nats = await startNats();
  const wp = await lowPorts(2);
  M = await startNode('move', nats.slice(0, 1), { args: ['--worker-port', `${wp}`] });
  ports = [0, 1].map((i) => `ws://127.0.0.1:${wp + i}/ws`);
});
after(() => stopAll());

async function moved(node, worker, dir) {
  const r = await fetch(`http://127.0.0.1:${node.metrics + worker}/metrics`);
  const line = (await r.text()).split('\n')
    .find((l) => l.startsWith(`anteroom_signal_moved_total{dir="${dir}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('a resume on the other worker of the owner\'s node moves there: frames in order, the call goes on', async () => {
  const room = rid();
  const token = patientToken(room);
  const p = await connect(ports[0], token);
  p.send({ type: 'join', room });
  await p.next('joined');
  const q = await connect(ports[0], inviteeToken(room));
  q.send({ type: 'join', room });
  await q.next('joined');
  await p.next('peer_joined');
  q.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n' });
  await p.next('offer');
  p.ack();
  const last = p.lastSeq;
  const [out0, in0] = [await moved(M, 1, 'out'), await moved(M, 0, 'in')];

  p.close(); // lost without a close frame: the session waits in its grace period
  await sleep(300);
  for (let i = 0; i < 3; i++) q.send({ type: 'candidate', to: p.peer, candidate: `candidate:${i} 1 udp 1 192.0.2.1 ${i} typ host` });
  await sleep(200);
  const p2 = await connect(ports[1], token, { resume: p.welcome.resume, last_seq: last }, p);
  assert.equal(p2.welcome.resumed, true);
  assert.equal(p2.peer, p.peer);
  const seqs = [];
  for (let i = 0; i < 3; i++) {
    const c = await p2.next('candidate');
    assert.equal(c.candidate.split(' ')[0], `candidate:${i}`);
    seqs.push(c.seq);
  }
  assert.deepEqual(seqs, [last + 1, last + 2, last + 3]);
  assert.deepEqual(p2.dups, []);
  assert.equal(await moved(M, 1, 'out'), out0 + 1, 'worker 1 moved the connection');
  assert.equal(await moved(M, 0, 'in'), in0 + 1, 'worker 0 took it');
  // The moved connection is the session's: both ways.
  p2.send({ type: 'answer', to: q.peer, sdp: 'v=0\r\n' });
  assert.equal((await q.next('answer')).from, p.peer);
  q.send({ type: 'candidate', to: p.peer, candidate: 'candidate:9 1 udp 1 192.0.2.1 9 typ host' });
  assert.equal((await p2.next('candidate')).seq, last + 4);
  for (const c of [p2, q]) c.close();
});

test('a resume with a wrong secret moves to the owner and is refused there, the session kept', async () => {
  const room = rid();
  const token = patientToken(room);
  const p = await connect(ports[0], token);
  const out0 = await moved(M, 1, 'out');
  p.close();
  await sleep(300);
  // The peer id of p's session with a secret that is not its own: the owner checks it.
  const forged = `${p.welcome.resume.split('.')[0]}.${'A'.repeat(p.welcome.resume.split('.')[1].length)}`;
  const bad = await connect(ports[1], token, { resume: forged, last_seq: 0 });
  assert.equal(bad.welcome.resumed, false, 'a new session, not p\'s');
  assert.notEqual(bad.peer, p.peer);
  assert.equal(await moved(M, 1, 'out'), out0 + 1);
  // p's own secret still works, here too.
  const p2 = await connect(ports[1], token, { resume: p.welcome.resume, last_seq: p.lastSeq }, p);
  assert.equal(p2.welcome.resumed, true);
  assert.equal(p2.peer, p.peer);
  for (const c of [bad, p2]) c.close();
});

// A WebSocket frame from a client: masked, as RFC 6455 requires.
function clientFrame(text) {
  const payload = Buffer.from(text);
  const mask = crypto.randomBytes(4);
  const head = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length])
    : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 255]);
  return Buffer.concat([head, mask, payload.map((b, i) => b ^ mask[i % 4])]);
}

test('a client whose hello came with more behind it resumes without a move (nothing read is left behind)', async () => {
  const room = rid();
  const token = patientToken(room);
  const p = await connect(ports[0], token);
  p.close();
  await sleep(300);
  const out0 = await moved(M, 1, 'out');
  // The upgrade, the hello and an ack in one write: the worker reads the ack with the hello.
  const port = Number(new URL(ports[1]).port);
  const s = net.connect(port, '127.0.0.1');
  await new Promise((resolve) => s.once('connect', resolve));
  let got = '';
  s.on('data', (d) => { got += d.toString('latin1'); });
  const hello = JSON.stringify({ v: 1, type: 'hello', token, resume: p.welcome.resume, last_seq: p.lastSeq });
  s.write(Buffer.concat([
    Buffer.from(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
      + `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n`
      + `Sec-WebSocket-Protocol: anteroom.v1\r\nOrigin: ${ORIGIN}\r\n\r\n`),
    clientFrame(hello), clientFrame(JSON.stringify({ v: 1, type: 'ack', seq: p.lastSeq })),
  ]));
  await waitFor(() => got.includes('"welcome"'), 8000, 'the welcome');
  assert.match(got, /"resumed":true/);
  assert.ok(got.includes(`"peer":"${p.peer}"`));
  assert.equal(await moved(M, 1, 'out'), out0, 'not moved: the ack read with it would be lost');
  s.destroy();
});
