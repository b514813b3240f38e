// A network-namespace topology for the browser end-to-end tests (root only).
//
//   root namespace                              namespace "arnet-<pid>-<n>" (the patient)
//   anteroom up --bind 10.A.B.1  ── veth ──     10.A.B.2, default route via 10.A.B.1
//   the clinician's Chromium                    the patient's Chromium (ip netns exec)
//                                               nftables: out only TCP to 10.A.B.1 on the
//                                               allowed ports (443 and the web ports)
//
// Chromium gathers no ICE candidate in a namespace with only lo, hence the veth pair with
// addresses. tc netem is missing here, so the firewall is nftables in the patient's namespace:
// policy drop on output and input, UDP included, with named counters the tests read to prove
// packets were really dropped. Debian's Chromium checks TURN/TLS certificates against
// $HOME/.pki/nssdb, so each browser gets its own HOME whose NSS database trusts the server
// certificate made here for the veth address (anteroom up's own names only loopback).
//
// Everything made here is undone by teardown(), also from process exit and SIGINT/SIGTERM;
// leftovers of a killed run (its pid is in the names) are removed by the next create().
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const PREFIX = 'arnet-';
let counter = 0;
const live = new Set();

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: 20000, ...opts })
    .toString();
}

function tryRun(cmd, args, opts) {
  try {
    return run(cmd, args, opts);
  } catch {
    return null;
  }
}

// Why the namespace tests cannot run here, or null when they can.
export function netnsUnavailable() {
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return 'network namespaces need root (run as root)';
  if (tryRun('ip', ['netns', 'list']) === null) return '`ip netns` is unavailable (iproute2)';
  if (tryRun('nft', ['--version']) === null) return 'nft is unavailable (nftables)';
  if (tryRun('certutil', ['-H']) === null && tryRun('which', ['certutil']) === null)
    return 'certutil is unavailable (libnss3-tools)';
  return null;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

function killNamespacePids(ns) {
  const out = tryRun('ip', ['netns', 'pids', ns]) || '';
  for (const pid of out.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

// Removes the namespaces (and their veths) of earlier runs whose process is gone.
function removeStale() {
  const out = tryRun('ip', ['netns', 'list']) || '';
  for (const line of out.split('\n')) {
    const m = line.match(/^(arnet-(\d+)-\d+)/);
    if (!m || alive(Number(m[2]))) continue;
    killNamespacePids(m[1]);
    tryRun('ip', ['netns', 'del', m[1]]);
  }
  const links = tryRun('ip', ['-o', 'link', 'show']) || '';
  for (const m of links.matchAll(/^\d+: (arh(\d+)x\d+)[@:]/gm))
    if (!alive(Number(m[2]))) tryRun('ip', ['link', 'del', m[1]]);
}

function subnetFor(n) {
  // 10.200-249.x.0/30: the pid picks the block, n the /30 inside it. Skip one in use.
  const used = tryRun('ip', ['-o', '-4', 'addr', 'show']) || '';
  for (let k = 0; k < 64; k++) {
    const a = 200 + ((process.pid + k) % 50);
    const b = (Math.floor(process.pid / 50) + n * 7 + k) % 256;
    if (!used.includes(` 10.${a}.${b}.`)) return `10.${a}.${b}`;
  }
  throw new Error('netns: no free 10.x.y.0/30 subnet');
}

function nftRules(server, ports) {
  const set = ports.join(', ');
  return `table inet anteroom_fw {
  counter out_dropped { }
  counter out_udp_dropped { }
  counter out_udp_server_dropped { }
  counter out_allowed { }
  chain output {
    type filter hook output priority 0; policy drop;
    oifname "lo" accept
    ip daddr ${server} tcp dport { ${set} } counter name "out_allowed" accept
    ip daddr ${server} meta l4proto udp counter name "out_udp_server_dropped" drop
    meta l4proto udp counter name "out_udp_dropped" drop
    counter name "out_dropped" drop
  }
  chain input {
    type filter hook input priority 0; policy drop;
    iifname "lo" accept
    ip saddr ${server} tcp sport { ${set} } accept
  }
}
`;
}

export class Topology {
  // allowPorts: the TCP ports on the server address the patient may reach (443 first).
  constructor(allowPorts) {
    this.n = counter++;
    this.ns = `${PREFIX}${process.pid}-${this.n}`;
    this.hostIf = `arh${process.pid}x${this.n}`;
    this.peerIf = `arp${process.pid}x${this.n}`;
    const net = subnetFor(this.n);
    this.server = `${net}.1`;
    this.patient = `${net}.2`;
    this.allowPorts = allowPorts;
    this.dirs = [];
  }

  // No namespace: the servers on 127.0.0.1 and every browser in the root namespace (for the
  // benchmark and the tests that need no firewall). Same interface; teardown removes files.
  static loopback() {
    const t = new Topology([]);
    t.ns = null;
    t.server = '127.0.0.1';
    live.add(t);
    return t;
  }

  // With firewall false, call firewall(ports) later (once the servers' ports are known).
  static create({ allowPorts = [443], firewall = true } = {}) {
    removeStale();
    const t = new Topology(allowPorts);
    live.add(t);
    try {
      run('ip', ['netns', 'add', t.ns]);
      run('ip', ['link', 'add', t.hostIf, 'type', 'veth', 'peer', 'name', t.peerIf, 'netns', t.ns]);
      run('ip', ['addr', 'add', `${t.server}/30`, 'dev', t.hostIf]);
      run('ip', ['link', 'set', t.hostIf, 'up']);
      run('ip', ['-n', t.ns, 'addr', 'add', `${t.patient}/30`, 'dev', t.peerIf]);
      run('ip', ['-n', t.ns, 'link', 'set', t.peerIf, 'up']);
      run('ip', ['-n', t.ns, 'link', 'set', 'lo', 'up']);
      run('ip', ['-n', t.ns, 'route', 'add', 'default', 'via', t.server]);
      if (firewall) t.firewall(allowPorts);
    } catch (e) {
      t.teardown();
      throw new Error(`netns: cannot build the topology: ${e.stderr || e.message}`);
    }
    return t;
  }

  // Installs the patient's firewall: out only TCP to the server on these ports.
  firewall(ports) {
    this.allowPorts = ports;
    run('ip', ['netns', 'exec', this.ns, 'nft', '-f', '-'], { input: nftRules(this.server, ports) });
  }

  // A network blip on the patient's side: cut (on) or restore (off) its TCP to and from these
  // server ports, in a table of its own hooked before the firewall (a drop is final), with a
  // counter so a test can prove packets were really dropped.
  cut(ports, on) {
    const set = ports.join(', ');
    const rules = on
      ? `table inet anteroom_cut {
  counter cut_dropped { }
  chain output {
    type filter hook output priority -10; policy accept;
    ip daddr ${this.server} tcp dport { ${set} } counter name "cut_dropped" drop
  }
  chain input {
    type filter hook input priority -10; policy accept;
    ip saddr ${this.server} tcp sport { ${set} } counter name "cut_dropped" drop
  }
}
`
      : 'delete table inet anteroom_cut\n';
    run('ip', ['netns', 'exec', this.ns, 'nft', '-f', '-'], { input: rules });
  }

  // The firewall's counters in packets: out_allowed (TCP to the allowed ports), and dropped:
  // out_udp_server_dropped (UDP to the server), out_udp_dropped (other UDP), out_dropped.
  counters() {
    const out = run('ip', ['netns', 'exec', this.ns, 'nft', '-j', 'list', 'counters']);
    const res = {};
    for (const item of JSON.parse(out).nftables)
      if (item.counter) res[item.counter.name] = item.counter.packets;
    return res;
  }

  // A temporary directory removed at teardown.
  tempDir(tag) {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), `ar-netns-${tag}-`));
    this.dirs.push(d);
    return d;
  }

  // A self-signed ECDSA certificate for the server's veth address (and localhost), written as
  // DIR/tls/cert.pem and key.pem, where anteroom up keeps an existing pair.
  makeStateCert(stateDir) {
    const tls = path.join(stateDir, 'tls');
    fs.mkdirSync(tls, { recursive: true, mode: 0o700 });
    fs.chmodSync(stateDir, 0o700);
    const cert = path.join(tls, 'cert.pem');
    const key = path.join(tls, 'key.pem');
    run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
      '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=anteroom-e2e',
      '-addext', `subjectAltName=IP:${this.server},DNS:localhost,IP:127.0.0.1`,
      '-addext', 'extendedKeyUsage=serverAuth', '-addext', 'basicConstraints=critical,CA:FALSE']);
    fs.chmodSync(cert, 0o600);
    fs.chmodSync(key, 0o600);
    return cert;
  }

  // A HOME for one browser whose NSS database trusts certPem as a server certificate.
  browserHome(certPem, tag) {
    const home = this.tempDir(`home-${tag}`);
    const db = path.join(home, '.pki', 'nssdb');
    fs.mkdirSync(db, { recursive: true });
    run('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
    if (certPem)
      run('certutil', ['-A', '-d', `sql:${db}`, '-n', 'anteroom-e2e', '-t', 'P,,', '-i', certPem]);
    return home;
  }

  // An executable that runs Chromium inside the patient's namespace (for playwright's
  // executablePath): `ip netns exec` execs, so playwright's pipes and PID stay Chromium's.
  chromiumWrapper(chromium = '/usr/bin/chromium') {
    const dir = this.tempDir('bin');
    const file = path.join(dir, 'chromium-in-netns');
    fs.writeFileSync(file, `#!/bin/sh\nexec ip netns exec ${this.ns} ${chromium} "$@"\n`, {
      mode: 0o755,
    });
    return file;
  }

  teardown() {
    if (!live.has(this)) return;
    live.delete(this);
    if (this.onTeardown) this.onTeardown();
    if (this.ns) {
      killNamespacePids(this.ns);
      tryRun('ip', ['netns', 'del', this.ns]);
      tryRun('ip', ['link', 'del', this.hostIf]);
    }
    for (const d of this.dirs) fs.rmSync(d, { recursive: true, force: true });
    this.dirs = [];
  }
}

function teardownAll() {
  for (const t of [...live]) t.teardown();
}
process.on('exit', teardownAll);
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    teardownAll();
    process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
  });

// ---- anteroom up on the server address (until the shared stack helper takes options) ----

export const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

// A port p with p .. p + n - 1 free, below the kernel's ephemeral range (32768 up): a port
// found free there could still be taken, before the daemon binds it, as the local port of an
// outgoing connection. Clear of the runs in `taken` ([port, n] pairs, added to): nothing binds
// a port before anteroom up starts, so only this keeps two picks apart.
async function freeRun(n, taken) {
  for (let i = 0; i < 50; i++) {
    const p = 20000 + Math.floor(Math.random() * (12000 - n));
    let ok = taken.every(([q, m]) => p + n <= q || q + m <= p);
    for (let k = 0; k < n && ok; k++) ok = await portFree(p + k);
    if (ok) {
      taken.push([p, n]);
      return p;
    }
  }
  throw new Error('no run of free ports');
}

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
  });
}

function canConnect(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 1000 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

// The status of a GET (0 when it fails), over HTTPS with ca or plain HTTP.
async function httpsStatus(url, ca) {
  const mod = url.startsWith('https:') ? await import('node:https') : await import('node:http');
  return new Promise((resolve) => {
    const req = mod.get(url, { ca, timeout: 2000 }, (r) => {
      r.resume();
      r.on('end', () => resolve(r.statusCode));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

export function anteroomBin() {
  const bin = process.env.AR_ANTEROOM_BIN ||
    path.join(process.env.AR_BUILD_DIR || path.join(repo, 'build/default'), 'cmd/anteroom/anteroom');
  if (!fs.existsSync(bin)) throw new Error(`no ${bin}: build first (cmake --build --preset default)`);
  return bin;
}

// Starts `anteroom up` bound to the topology's server address with the relay's TLS listener
// also on 443. Its own process group, so stop() reaches the daemons even if it is wedged.
export async function startServers(topo, extraArgs = [], { alt443 = true } = {}) {
  const state = topo.tempDir('state');
  const cert = topo.makeStateCert(state);
  topo.certPem = cert;
  const taken = [];
  const ports = {
    turn: await freeRun(1, taken), turnTls: await freeRun(1, taken), app: await freeRun(3, taken),
    metrics: await freeRun(5, taken), nats: await freeRun(1, taken),
  };
  ports.signal = ports.app + 1;
  ports.monitor = ports.app + 2;
  const log = path.join(state, 'up.out');
  const fd = fs.openSync(log, 'a');
  const up = spawn(anteroomBin(), ['up', '--state-dir', state, '--bind', topo.server,
    '--turn-port', `${ports.turn}`, '--turn-tls-port', `${ports.turnTls}`,
    '--turn-alt-tls-port', alt443 ? '443' : '0', '--app-port', `${ports.app}`, '--metrics-port',
    `${ports.metrics}`, '--nats-port', `${ports.nats}`, '--fast-hash', ...extraArgs],
  // The relay refuses private peers by default; here its own relay address is private (the
  // veth's), so relay-to-relay through it is allowed for that one address, as it would pass for
  // a public one.
  { stdio: ['ignore', fd, fd], detached: true,
    env: { ...process.env, ANTEROOM_TURN_ALLOWED_PEER_IP: topo.server } });
  fs.closeSync(fd);
  // The same shape as lib/stack.mjs's stack, so its helpers and lib/browser.mjs take it.
  const srv = { up, state, dir: state, cert, ports, log, host: topo.server,
    origin: `https://${topo.server}:${ports.app}`, webPorts: [ports.app, ports.app + 1, ports.app + 2],
    output: () => fs.readFileSync(log, 'utf8'), cleanup: async () => {} };
  srv.stop = async () => {
    if (up.exitCode !== null || up.signalCode !== null) return;
    const gone = new Promise((r) => up.once('exit', r));
    try { process.kill(up.pid, 'SIGTERM'); } catch { /* gone */ }
    const t = setTimeout(() => { try { process.kill(-up.pid, 'SIGKILL'); } catch { /* gone */ } }, 12000);
    await gone;
    clearTimeout(t);
    try { process.kill(-up.pid, 'SIGKILL'); } catch { /* group empty */ }
  };
  topo.onTeardown = () => { try { process.kill(-up.pid, 'SIGKILL'); } catch { /* gone */ } };
  try {
    await waitFor(async () => {
      if (up.exitCode !== null) throw new Error(`anteroom up exited: ${fs.readFileSync(log, 'utf8')}`);
      return (!alt443 || (await canConnect(topo.server, 443))) &&
        (await canConnect(topo.server, ports.turnTls));
    }, 30000, 'the relay on 443');
  } catch (e) {
    await srv.stop();
    throw e;
  }
  if (extraArgs.includes('--demo')) {
    // Ready for browsers when the app serves the demo area's entry and signalling is on NATS.
    try {
      await waitFor(async () => {
        const m = srv.output().match(/demo clinic (\d+)/);
        if (!m || !/signal: pid/.test(srv.output())) return false;
        srv.clinic = m[1];
        const entry = await httpsStatus(`${srv.origin}/api/v1/entry/${srv.clinic}/demo`, fs.readFileSync(cert));
        const ready = await httpsStatus(`http://127.0.0.1:${ports.metrics + 2}/readyz`);
        return entry === 200 && ready === 200;
      }, 30000, 'the app and signalling');
    } catch (e) {
      await srv.stop();
      throw new Error(`${e.message}: ${srv.output()}`);
    }
    srv.ca = fs.readFileSync(cert);
  }
  srv.turnSecret = fs.readFileSync(path.join(state, 'secrets/turn-static-auth-secret'), 'utf8').trim();
  return srv;
}

// TURN REST credentials (docs: username "expiry:id", password base64(HMAC-SHA1(secret, user))).
export function turnCredentials(secret, ttl = 600) {
  const username = `${Math.floor(Date.now() / 1000) + ttl}:e2e${crypto.randomBytes(6).toString('hex')}`;
  const credential = crypto.createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential };
}

// Debian's Chromium through playwright-core with fake camera and microphone, HOME set to a
// directory whose NSS database trusts the server certificate; inside the patient's namespace
// when inNamespace. Headless; closed by browser.close() (playwright kills it by PID).
export async function launchChromium(topo, { inNamespace, tag, args = [] }) {
  const { chromium } = await import('playwright-core');
  const home = topo.browserHome(topo.certPem, tag);
  return chromium.launch({
    executablePath: inNamespace ? topo.chromiumWrapper() : '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    env: { ...process.env, HOME: home },
    args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', ...args],
  });
}

// ---- a bare RTCPeerConnection in a blank page, signalled by the test process ----

// Makes window.__pc with a data channel (negotiated, id 0, so neither side waits for the
// other's channel event) that records its open time and echoes nothing: the test sends.
export async function barePeer(page, config) {
  await page.evaluate((cfg) => {
    const pc = new RTCPeerConnection(cfg);
    window.__pc = pc;
    window.__cands = [];
    window.__msgs = [];
    window.__errs = [];
    pc.onicecandidate = (e) => { if (e.candidate) window.__cands.push(e.candidate.toJSON()); };
    pc.onicecandidateerror = (e) => window.__errs.push(`${e.url} ${e.errorCode} ${e.errorText}`);
    const dc = pc.createDataChannel('e2e', { negotiated: true, id: 0 });
    window.__dc = dc;
    dc.onmessage = (e) => window.__msgs.push(e.data);
  }, config);
}

// Offer/answer through the test process, then candidates trickled across until both data
// channels are open (bounded by ms).
export async function connectBare(a, b, ms = 20000) {
  const offer = await a.evaluate(async () => {
    await window.__pc.setLocalDescription();
    return window.__pc.localDescription.toJSON();
  });
  const answer = await b.evaluate(async (o) => {
    await window.__pc.setRemoteDescription(o);
    await window.__pc.setLocalDescription();
    return window.__pc.localDescription.toJSON();
  }, offer);
  await a.evaluate((ans) => window.__pc.setRemoteDescription(ans), answer);
  const sent = new Map([[a, 0], [b, 0]]);
  const pump = async (from, to) => {
    const cands = await from.evaluate(() => window.__cands);
    const fresh = cands.slice(sent.get(from));
    sent.set(from, cands.length);
    for (const c of fresh) await to.evaluate((x) => window.__pc.addIceCandidate(x), c);
  };
  await waitFor(async () => {
    await pump(a, b);
    await pump(b, a);
    const open = async (p) => p.evaluate(() => window.__dc.readyState === 'open');
    return (await open(a)) && (await open(b));
  }, ms, 'the data channel to open');
}

// The selected candidate pair's two ends as getStats reports them.
export async function selectedPair(page) {
  return page.evaluate(async () => {
    const stats = await window.__pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) return null;
    const l = stats.get(pair.localCandidateId);
    const r = stats.get(pair.remoteCandidateId);
    const pick = (c) => ({ type: c.candidateType, protocol: c.protocol, address: c.address,
      port: c.port, relayProtocol: c.relayProtocol, url: c.url });
    return { local: pick(l), remote: pick(r), state: pair.state };
  });
}
