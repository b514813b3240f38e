// Test harness for anteroom-signal: a two-server NATS cluster, signalling nodes, AR1 tokens
// minted with node's own Ed25519 (an independent implementation of docs/tokens.md), and a
// client over npm `ws` (a WebSocket implementation we did not write).
// Every process started here is recorded by PID and killed by PID when the suite ends.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

export const ORIGIN = 'https://app.example';
export const JUR = 'eu';
const procs = new Set();
export const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ar-signal-'));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function start(cmd, args, name) {
  const log = fs.openSync(path.join(tmp, `${name}.log`), 'a');
  const p = spawn(cmd, args, { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  procs.add(p);
  p.on('exit', () => procs.delete(p));
  p.logFile = path.join(tmp, `${name}.log`);
  return p;
}

export function stopAll() {
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  procs.clear();
  if (!process.env.AR_KEEP_LOGS) fs.rmSync(tmp, { recursive: true, force: true });
  else console.log(`# logs kept in ${tmp}`);
}

// The worker processes of a node: the children of its supervisor, oldest first.
export function workersOf(pid) {
  const w = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) w.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  return w.sort((a, b) => a - b);
}

export function kill(p, sig = 'SIGKILL') {
  try {
    process.kill(p.pid, sig);
  } catch {
    /* already gone */
  }
}

export async function waitFor(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// ---- NATS: two servers joined by a route ----
// Each nats-server binds ports of its own choosing (-p -1, cluster port -1) and writes them to a
// ports file (--ports_file_dir); the second server's route names the first one's actual
// cluster port. A port picked "free" beforehand could be taken by another process (any
// outgoing connection in the namespace draws from the same ephemeral range) before nats-server
// bound it, and then the cluster never formed (CI, "timed out waiting for the NATS cluster").
//
// A server a test kills and starts again (restart below) must come back on the same client
// port: the signalling nodes reconnect to that URL. Its client port is then one the test picks
// below the kernel's ephemeral range (restartable: true), which no connect() and no bind to
// port 0 in this network namespace can take while the server is down.
let natsServers = 0;
const routesIn = (p) => fs.readFileSync(p.logFile, 'utf8').split('Route connection created').length - 1;

function ephemeralLow() {
  try {
    return Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);
  } catch {
    return 32768;
  }
}

// Ports picked by test processes that run side by side (the files of one run share a network
// namespace) are reserved in a directory they all see, one file per port holding the picker's
// PID, until that process ends: a port is free when nothing listens on it AND no live test
// process picked it. Without this, two files could both pick a port before either node bound
// it, and since the nodes listen with SO_REUSEPORT both bound it and the kernel spread one
// node's clients over the two (HTTP 404 from the other node's operator listener; nodes now
// refuse to start on a port in use, ar_port_unclaimed).
const reserveDir = path.join(os.tmpdir(), 'anteroom-test-ports');
const reserved = [];
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}
function reserve(port) {
  fs.mkdirSync(reserveDir, { recursive: true });
  const f = path.join(reserveDir, `${port}`);
  for (let tries = 0; tries < 2; tries++) {
    try {
      fs.writeFileSync(f, `${process.pid}`, { flag: 'wx' });
      reserved.push(f);
      return true;
    } catch {
      let pid = 0;
      try { pid = Number(fs.readFileSync(f, 'utf8')); } catch { /* just removed */ }
      if (pid && alive(pid)) return false; /* another live test process (or this one) has it */
      try { fs.unlinkSync(f); } catch { /* another process reclaimed it first */ }
    }
  }
  return false;
}
function unreserve(port, n) {
  for (let i = 0; i < n; i++) {
    const k = reserved.indexOf(path.join(reserveDir, `${port + i}`));
    if (k < 0) continue;
    try { fs.unlinkSync(reserved[k]); } catch { /* gone */ }
    reserved.splice(k, 1);
  }
}
process.on('exit', () => {
  for (const f of reserved) try { fs.unlinkSync(f); } catch { /* gone */ }
});

const canBind = (port) => new Promise((resolve) => {
  const s = net.createServer();
  s.once('error', () => resolve(false));
  s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
});

// n consecutive ports below the ephemeral range that nothing listens on now and no other test
// process reserved (random, so that concurrent picks rarely meet).
export async function lowPorts(n = 1) {
  const hi = Math.min(ephemeralLow(), 65536);
  const lo = Math.max(1024, hi - 12000);
  for (let tries = 0; tries < 200; tries++) {
    const port = lo + crypto.randomInt(hi - lo - n);
    let free = true;
    for (let i = 0; i < n && free; i++) free = reserve(port + i) && await canBind(port + i);
    if (free) return port;
    unreserve(port, n); /* the ones this try took; another process's stay */
  }
  throw new Error(`no ${n} free ports below ${hi}`);
}
const lowPort = () => lowPorts(1);

// Starts one nats-server and waits for its ports file; resolves to the process with .client
// and .cluster (its ports), or rejects if it exits or says nothing in 15 s.
async function natsServer({ name, clientPort = -1, route, noAdvertise }) {
  const args = ['-a', '127.0.0.1', '-p', `${clientPort}`, '--cluster_name', name,
    '--cluster', 'nats://127.0.0.1:-1', '--ports_file_dir', tmp];
  if (route) args.push('--routes', `nats://127.0.0.1:${route}`);
  if (noAdvertise) args.push('--no_advertise');
  const p = start('nats-server', args, `nats-${name}-${++natsServers}`);
  const file = path.join(tmp, `nats-server_${p.pid}.ports`);
  const ports = await waitFor(() => {
    if (p.exitCode !== null || p.signalCode !== null) return { exited: true };
    try {
      const j = JSON.parse(fs.readFileSync(file, 'utf8'));
      const port = (u) => Number(new URL(u).port);
      return { client: port(j.nats[0]), cluster: port(j.cluster[0]) };
    } catch {
      return null; /* not written yet (or half written) */
    }
  }, 15000, `nats-server ${p.logFile}`);
  if (ports.exited) throw new Error(`nats-server exited: ${tail(p)}`);
  p.client = ports.client;
  p.cluster = ports.cluster;
  return p;
}
const tail = (p) => fs.readFileSync(p.logFile, 'utf8').split('\n').slice(-5).join(' | ');

// Two servers joined by a route. Resolves to their client URLs, with .procs (for tests that
// stop one for a moment with SIGSTOP/SIGCONT) and .restart(i) (after a test killed server i:
// the same client port, a new cluster port, a route to the other's; resolves to the new
// process once the route is up). opts: name (cluster name), noAdvertise (clients learn no other
// server's URL), restartable (client ports a restart can take again, above).
export async function startNats(opts = {}) {
  const name = opts.name ?? 'ar';
  const base = { name, noAdvertise: opts.noAdvertise };
  for (let attempt = 1; ; attempt++) {
    const procs = [];
    try {
      const a = await natsServer({ ...base, clientPort: opts.restartable ? await lowPort() : -1 });
      procs.push(a);
      const b = await natsServer({ ...base, clientPort: opts.restartable ? await lowPort() : -1,
        route: a.cluster });
      procs.push(b);
      await waitFor(() => routesIn(a) > 0 && routesIn(b) > 0, 15000, 'the NATS route');
    } catch (e) {
      for (const p of procs) kill(p);
      // Only a restartable cluster's own pick of a port can clash (another test file took
      // the same low port between the check and the bind): then new ports, at most 3 times.
      if (!opts.restartable || attempt === 3) throw e;
      continue;
    }
    const urls = procs.map((p) => `nats://127.0.0.1:${p.client}`);
    urls.procs = procs;
    urls.restart = async (i) => {
      const p = await natsServer({ ...base, clientPort: procs[i].client,
        route: procs[1 - i].cluster });
      procs[i] = p;
      await waitFor(() => routesIn(p) > 0, 30000, 'the NATS route back');
      return p;
    };
    return urls;
  }
}

// ---- tokens ----
const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
export const KID = 'k1';
export const keysFile = path.join(tmp, 'keys');
fs.writeFileSync(keysFile, `${KID} ${publicKey.export({ format: 'jwk' }).x}\n`);

const b64u = (buf) => Buffer.from(buf).toString('base64url');
export function mint(claims, { key = privateKey, kid = KID } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const body = { aud: 'signal', sub: crypto.randomBytes(12).toString('hex'), jur: JUR, iat: now,
    exp: now + 600, ...claims };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  const head = `AR1.${kid}.${b64u(JSON.stringify(body))}`;
  return `${head}.${b64u(crypto.sign(null, Buffer.from(head), key))}`;
}
export const otherKey = crypto.generateKeyPairSync('ed25519').privateKey;
export const rid = () => crypto.randomBytes(16).toString('base64url');
export const patientToken = (room, extra = {}) =>
  mint({ role: 'patient', room, clinic: 'c1', area: 'knee', ...extra });
export const staffToken = (roles = ['provider'], extra = {}) =>
  mint({ role: 'staff', clinics: { c1: roles }, ...extra });
export const inviteeToken = (room, extra = {}) => mint({ role: 'invitee', room, ...extra });

// ---- signalling nodes ----
// Its ports are below the ephemeral range (lowPorts): a port found free by binding port 0 could
// be taken by any connect() in the namespace before the node bound it, and each worker i
// listens for metrics on metrics + i, a port that check never covered.
export async function startNode(name, nats, opts = {}) {
  const port = opts.port ?? (await lowPorts(1));
  const metrics = await lowPorts(opts.workers ?? 2);
  const args = ['--listen', '127.0.0.1', '--port', `${port}`, '--jurisdiction', JUR,
    '--node-name', name, '--keys', keysFile, '--origin', ORIGIN, '--grace', opts.grace ?? '20s',
    '--drain-within', opts.drainWithin ?? '3s', '--workers', `${opts.workers ?? 2}`,
    '--metrics-port', `${metrics}`, '--max-per-address', `${opts.maxPerAddr ?? 60}`,
    '--log-level', process.env.AR_LOG_LEVEL ?? 'info'];
  for (const u of nats) args.push('--nats', u);
  for (const u of opts.drainUrls ?? []) args.push('--drain-url', u);
  if (opts.tls) args.push('--tls-cert', opts.tls[0], '--tls-key', opts.tls[1]);
  for (const c of opts.trustedProxies ?? []) args.push('--trusted-proxy', c);
  if (opts.inboxMax) args.push('--inbox-max', opts.inboxMax);
  args.push(...(opts.args ?? []));
  const p = start(process.env.AR_SIGNAL_BIN, args, `signal-${name}-${port}`);
  p.port = port;
  p.url = `ws://127.0.0.1:${port}/ws`;
  p.metrics = metrics;
  await waitFor(() => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }), 15000, `node ${name}`);
  // Every worker ready: /readyz answers 503 while a worker catches up on the rooms ended before
  // it started, and it admits no new session then (docs/signal.md, "Ended rooms: a worker that
  // starts later"). A node that exited is caught below.
  const t0 = Date.now();
  const ready = (i) => fetch(`http://127.0.0.1:${metrics + i}/readyz`).then((r) => r.status === 200, () => false);
  await waitFor(async () => p.exitCode !== null || p.signalCode !== null ||
    (await Promise.all([...Array(opts.workers ?? 2).keys()].map(ready))).every(Boolean), 15000,
  `node ${name} ready`);
  // heartbeats: every worker learns the others before tests rely on backups
  await sleep(Math.max(0, 1500 - (Date.now() - t0)));
  // What answered must be this node: one that found a port in use has exited by now.
  if (p.exitCode !== null || p.signalCode !== null) throw new Error(`node ${name} exited: ${tail(p)}`);
  return p;
}

// ---- a client ----
export class Client {
  constructor(url, { origin = ORIGIN, protocol = 'anteroom.v1', insecure = false, headers } = {}) {
    this.frames = [];
    this.waiters = [];
    this.lastSeq = 0;
    this.fids = new Set(); // ids of the last 512 frames processed (protocol 5.10.1)
    this.fidOrder = [];
    this.dups = []; // session-level frames dropped as duplicates
    this.all = [];
    this.closed = null;
    this.ws = new WebSocket(url, protocol, { origin, maxPayload: 1 << 20,
      rejectUnauthorized: !insecure, headers });
    this.ws.on('message', (data, binary) => {
      const f = binary ? { binary: true } : JSON.parse(data.toString());
      if (f.seq > 0) {
        // A duplicate, which the protocol says to drop: a frame whose fid was processed (a
        // node's death may bring one back under another number, 5.10.1), or without a fid one
        // whose seq is not above the last. Even a duplicate moves lastSeq (seqs come in order).
        const hasFid = typeof f.fid === 'string';
        const dup = hasFid ? this.fids.has(f.fid) : f.seq <= this.lastSeq;
        if (f.seq > this.lastSeq) this.lastSeq = f.seq;
        if (dup) {
          this.dups.push(f);
          return;
        }
        if (hasFid) this.remember(f.fid);
      }
      this.frames.push(f);
      this.all.push(f); // every frame processed, also those next() took
      this.wake();
    });
    this.ws.on('close', (code) => { this.closed = code; this.wake(); });
    this.ws.on('error', (e) => { this.error = e; this.wake(); });
    this.ws.on('unexpected-response', (req, res) => {
      this.httpStatus = res.statusCode;
      this.closed = -res.statusCode;
      this.wake();
    });
  }
  remember(fid) {
    this.fids.add(fid);
    this.fidOrder.push(fid);
    if (this.fidOrder.length > 512) this.fids.delete(this.fidOrder.shift());
  }
  wake() {
    for (const w of this.waiters.splice(0)) w();
  }
  open() {
    return new Promise((resolve, reject) => {
      if (this.ws.readyState === WebSocket.OPEN) return resolve(this);
      this.ws.once('open', () => resolve(this));
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', () => reject(new Error(`HTTP ${this.httpStatus}`)));
    });
  }
  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify({ v: 1, ...obj }));
  }
  // Waits for (and removes) the first frame matching pred.
  async next(pred, ms = 8000) {
    const match = typeof pred === 'string' ? (f) => f.type === pred : pred;
    const end = Date.now() + ms;
    for (;;) {
      const i = this.frames.findIndex(match);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.closed !== null) throw new Error(`closed (${this.closed}) waiting`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timeout waiting; have ${JSON.stringify(this.frames.map((f) => f.type))}`);
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, left); });
    }
  }
  async waitClose(ms = 8000) {
    const end = Date.now() + ms;
    while (this.closed === null) {
      if (Date.now() > end) throw new Error('not closed');
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, 200); });
    }
    return this.closed;
  }
  ack() {
    this.send({ type: 'ack', seq: this.lastSeq });
  }
  close() {
    try { this.ws.terminate(); } catch { /* gone */ }
  }
}

// prev: the client this one resumes for (its lastSeq and frame ids carry over, as a browser
// client's do across reconnects).
export async function connect(node, token, extra = {}, prev = null) {
  const c = await new Client(node.url ?? node).open();
  if (prev) {
    c.lastSeq = prev.lastSeq;
    for (const fid of prev.fidOrder) c.remember(fid);
  }
  c.send({ type: 'hello', token, ...extra });
  c.welcome = await c.next('welcome');
  c.peer = c.welcome.peer;
  return c;
}
