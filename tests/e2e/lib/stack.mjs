// The whole Anteroom stack for an end-to-end test: the built `anteroom up` on a temporary state
// directory and free ports, with the demo clinic; helpers to add a clinician and compute TOTP
// codes (RFC 6238). Every process started here is stopped by PID in stop().

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { createHmac, randomInt } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import dgram from 'node:dgram';
import https from 'node:https';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const BUILD = process.env.AR_BUILD_DIR || new URL('../../../build/default', import.meta.url).pathname;
export const ANTEROOM = join(BUILD, 'cmd/anteroom/anteroom');

function tcpFree(port) {
  return new Promise((res) => {
    const s = net.createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

function udpFree(port) {
  return new Promise((res) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => res(false));
    s.bind(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

// A base port with base..base+14 free on TCP and base, base+1 free on UDP, below the kernel's
// ephemeral range (32768 up): a port found free there could still be taken, between this check
// and the daemon's bind, as the local port of some process's outgoing connection.
async function freeBase() {
  for (let i = 0; i < 50; i++) {
    const base = 20000 + randomInt(0, 120) * 100;
    let ok = true;
    for (let p = base; ok && p < base + 15; p++) ok = await tcpFree(p);
    if (ok && (await udpFree(base)) && (await udpFree(base + 1))) return base;
  }
  throw new Error('no free ports');
}

export function httpsGet(url, ca) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 3000 }, (r) => {
      let body = '';
      r.on('data', (d) => (body += d));
      r.on('end', () => resolve({ status: r.statusCode, body, headers: r.headers }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

function httpGet(url) {
  return new Promise((resolve) => {
    import('node:http').then(({ default: http }) => {
      const req = http.get(url, { timeout: 2000 }, (r) => {
        r.resume();
        r.on('end', () => resolve(r.statusCode));
      });
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startStack({ demo = true } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'anteroom-e2e-'));
  const base = await freeBase();
  const ports = { turn: base, turnTls: base + 1, app: base + 2, signal: base + 3, monitor: base + 4, nats: base + 5, metrics: base + 10 };
  const args = [
    'up', '--state-dir', dir, '--turn-port', String(ports.turn), '--turn-tls-port', String(ports.turnTls),
    '--app-port', String(ports.app), '--nats-port', String(ports.nats), '--metrics-port', String(ports.metrics),
    '--fast-hash', ...(demo ? ['--demo'] : []),
  ];
  const proc = spawn(ANTEROOM, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  // Should this process end without stop() (a crash, a signal), the stack goes with it.
  const orphan = () => proc.kill('SIGTERM');
  process.once('exit', orphan);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'])
    process.once(sig, () => {
      orphan();
      process.exit(1);
    });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (err += d));
  const stack = {
    dir, ports, proc, origin: `https://127.0.0.1:${ports.app}`,
    output: () => out,
    stderr: () => err,
    async stop() {
      process.removeListener('exit', orphan);
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
        await exited;
        clearTimeout(t);
      }
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    const deadline = Date.now() + 30000;
    while (!/demo clinic (\d+)/.test(out) || !/signal: pid/.test(out)) {
      if (proc.exitCode !== null) throw new Error(`anteroom up exited ${proc.exitCode}: ${err}`);
      if (Date.now() > deadline) throw new Error(`anteroom up did not start: ${out}\n${err}`);
      await sleep(100);
    }
    stack.clinic = out.match(/demo clinic (\d+)/)[1];
    stack.ca = await readFile(join(dir, 'tls/cert.pem'));
    // Ready when the app answers the entry page and signalling says it is ready (on NATS).
    while (Date.now() < deadline) {
      const a = await httpsGet(`${stack.origin}/api/v1/entry/${stack.clinic}/demo`, stack.ca).catch(() => null);
      const s = await httpGet(`http://127.0.0.1:${ports.metrics + 2}/readyz`);
      if (a && a.status === 200 && s === 200) return stack;
      await sleep(200);
    }
    throw new Error(`stack not ready: ${out}\n${err}`);
  } catch (e) {
    await stack.stop();
    await stack.cleanup();
    throw e;
  }
}

// `anteroom admin` on the stack's store; returns stdout.
export async function admin(stack, ...args) {
  const { stdout } = await run(ANTEROOM, ['admin', '--state-dir', stack.dir, ...args]);
  return stdout;
}

// A clinician with the given roles in the demo clinic; returns {email, password}.
export async function addClinician(stack, name, roles = ['provider']) {
  const email = `${name.toLowerCase().replace(/[^a-z]/g, '')}@clinic.test`;
  const out = await admin(stack, 'create-account', '--email', email, '--name', name, '--clinic', stack.clinic, '--role', roles[0]);
  const password = out.match(/one-time password \(shown once\): (\S+)/)[1];
  for (const r of roles.slice(1)) await admin(stack, 'add-role', '--email', email, '--clinic', stack.clinic, '--role', r);
  return { email, password, name };
}

function base32Decode(s) {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let val = 0;
  const out = [];
  for (const c of s.replace(/=+$/, '').toUpperCase()) {
    const i = abc.indexOf(c);
    if (i < 0) throw new Error('bad base32');
    val = (val << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((val >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

// RFC 6238 TOTP: HMAC-SHA1, 30 s steps, 6 digits.
export function totp(secret, t = Date.now()) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(t / 1000 / 30)));
  const h = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const o = h[h.length - 1] & 15;
  const n = ((h[o] & 127) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1e6).padStart(6, '0');
}

// Every file under the state directory whose contents the privacy check reads: the database
// (and its WAL) and every log.
export async function stateFiles(stack) {
  const files = [];
  for (const f of await readdir(stack.dir)) if (/^app\.db/.test(f) || /\.db(-wal|-shm)?$/.test(f)) files.push(join(stack.dir, f));
  for (const f of await readdir(join(stack.dir, 'logs'))) files.push(join(stack.dir, 'logs', f));
  return files;
}
