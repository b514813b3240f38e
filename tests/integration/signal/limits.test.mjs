// The network layer's own limits against hostile or unlucky load (docs/signal.md, "Limits and
// close codes"): a worker whose descriptor table is full neither spins nor floods its log and
// serves again once connections close; the per-address cap holds bare TCP connections that never
// upgrade; WebSocket pings are rate limited like messages.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Client, connect, sleep, staffToken, startNats, startNode, stopAll, tmp, waitFor } from './lib.mjs';

let nats;
before(async () => {
  nats = await startNats();
});
after(() => stopAll());

// CPU time (utime + stime, every thread) of the node's workers, the supervisor's children, in ms.
function workerCpuMs(pid) {
  const ticks = 100; // USER_HZ on Linux
  let t = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ');
      if (Number(s[1]) === pid) t += Number(s[11]) + Number(s[12]);
    } catch {
      /* gone meanwhile */
    }
  }
  return (t * 1000) / ticks;
}

// Raw TCP connections that never send a byte; each records when the server closed it.
function bareSockets(port, n) {
  const socks = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.closedByServer = false;
    s.on('error', () => {});
    s.on('end', () => { s.closedByServer = true; });
    s.on('close', () => { s.closedByServer = s.closedByServer || !s.destroyedByUs; });
    socks.push(s);
  }
  return socks;
}
const destroy = (socks) => socks.forEach((s) => { s.destroyedByUs = true; s.destroy(); });

test('a full descriptor table: the worker neither spins nor floods its log, and serves again', async () => {
  // The node under a low open-files limit (inherited by its workers), through a wrapper: the
  // daemon itself never raises the limit.
  const wrapper = path.join(tmp, 'lowfd.sh');
  fs.writeFileSync(wrapper, `#!/bin/sh\nulimit -n 200\nexec '${process.env.AR_SIGNAL_BIN}' "$@"\n`,
    { mode: 0o755 });
  const real = process.env.AR_SIGNAL_BIN;
  process.env.AR_SIGNAL_BIN = wrapper;
  let F;
  try {
    F = await startNode('fd', nats, { workers: 1, maxPerAddr: 0 });
  } finally {
    process.env.AR_SIGNAL_BIN = real;
  }
  const socks = bareSockets(F.port, 260); // more than the 200 the worker may hold
  await sleep(1000);
  const c0 = workerCpuMs(F.pid);
  await sleep(2000);
  const used = workerCpuMs(F.pid) - c0;
  const lines = (fs.readFileSync(F.logFile, 'utf8').match(/signal_net_fd_limit/g) || []).length;
  const refused = socks.filter((s) => s.closedByServer).length;
  console.log(`# fd limit: worker CPU ${used} ms over 2 s, ${lines} fd_limit log lines, ` +
    `${refused} of 260 connections closed by the server`);
  // A worker spinning on the listener used over 1 s of these 2 s (and logged ~800,000 lines).
  assert.ok(used < 500, `worker CPU ${used} ms over 2 s`);
  assert.ok(lines >= 1 && lines <= 6, `${lines} signal_net_fd_limit lines in about 3 s`);
  // What found no descriptor was closed at once, not left waiting in the listen queue.
  assert.ok(refused >= 20, `only ${refused} connections were closed by the server`);
  destroy(socks);
  // Descriptors free again: a new client is served.
  const c = await waitFor(async () => connect(F, staffToken()).catch(() => null), 10000,
    'a client served after the connections closed');
  assert.ok(c.peer);
  c.close();
  F.kill('SIGTERM');
});

test('the per-address cap counts connections that never upgrade, from the accept on', async () => {
  const P = await startNode('pa', nats, { workers: 1, maxPerAddr: 5 });
  const socks = bareSockets(P.port, 8);
  await sleep(1500); // well under the 10 s handshake timeout
  const closed = socks.map((s) => s.closedByServer);
  assert.equal(closed.filter(Boolean).length, 3, `closed: ${closed}`);
  // The five held use up the cap: a WebSocket client from the same address is refused too.
  const w = new Client(P.url);
  await w.open().catch(() => {});
  await waitFor(() => w.closed !== null, 3000, 'the sixth connection refused');
  // Their counts go with them: once closed, clients from the address are served again.
  destroy(socks);
  await sleep(300);
  const cs = [];
  for (let i = 0; i < 5; i++) cs.push(await connect(P, staffToken()));
  for (const c of cs) c.close();
  P.kill('SIGTERM');
});

test('a ping flood before hello goes unanswered past the rate, then is closed with 4004', async () => {
  const Q = await startNode('pf', nats, { workers: 1 });
  const c = await new Client(Q.url).open(); // no hello: no token at all
  let pongs = 0;
  let pings = 0;
  c.ws.on('pong', () => pongs++);
  const opened = Date.now();
  const t = setInterval(() => {
    for (let i = 0; i < 100 && c.ws.readyState === 1; i++, pings++) c.ws.ping();
  }, 10);
  let code;
  try {
    code = await c.waitClose(9500); // the 10 s hello timeout (4002) must not come first
  } finally {
    clearInterval(t);
  }
  const took = Date.now() - opened;
  console.log(`# ping flood: ${pings} pings, ${pongs} pongs, closed ${code} after ${took} ms`);
  assert.equal(code, 4004);
  // The bucket: 100 at once, then 20 a second, for the 5 s or so before the close.
  assert.ok(pongs <= 100 + 20 * Math.ceil(took / 1000) + 20, `${pongs} pongs to ${pings} pings`);
  Q.kill('SIGTERM');
});
