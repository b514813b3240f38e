// Test-side instruments for a page we did not write the call code of: an init script (run
// before the page's own scripts) keeps every RTCPeerConnection the page makes, the time of the
// first decoded frame of every remote video track, and the time of every button click; helpers
// read getStats from them. Nothing here changes what the page does: the subclass only records.

function instrument() {
  const Orig = window.RTCPeerConnection;
  const now = () => performance.timeOrigin + performance.now();
  // lib/browser.mjs may have wrapped the constructor already and keep the same list.
  window.__pcs = window.__pcs || [];
  window.__firstFrames = [];
  window.__clicks = [];
  const watch = (track) => {
    // A muted, detached <video> on the track: its first frame callback is the first frame
    // WebRTC decoded for it (the page's own element shows the same frames).
    const v = document.createElement('video');
    v.muted = true;
    v.playsInline = true;
    v.srcObject = new MediaStream([track]);
    v.requestVideoFrameCallback(() => window.__firstFrames.push({ id: track.id, t: now() }));
    v.play().catch(() => {});
  };
  // A trace per connection for a failure report: state changes, negotiation steps and their
  // outcome, candidates by type. (lib/browser.mjs's wrapper may hand back its own object from
  // the constructor, so the trace hooks the instance, not the class.)
  window.__trace = [];
  const log = (pc, ev, detail) => {
    const i = window.__pcs.indexOf(pc);
    window.__trace.push({ t: Math.round(performance.now()), pc: i, ev, ...(detail ? { d: detail } : {}) });
    if (window.__trace.length > 2000) window.__trace.splice(0, 500);
  };
  const typ = (c) => (/ typ (\w+)/.exec(c || '') || [])[1] || 'end';
  const hook = (pc) => {
    for (const ev of ['signalingstatechange', 'iceconnectionstatechange', 'connectionstatechange', 'icegatheringstatechange'])
      pc.addEventListener(ev, () => log(pc, ev.replace('statechange', ''), pc[{ signalingstatechange: 'signalingState',
        iceconnectionstatechange: 'iceConnectionState', connectionstatechange: 'connectionState',
        icegatheringstatechange: 'iceGatheringState' }[ev]]));
    pc.addEventListener('negotiationneeded', () => log(pc, 'negotiationneeded'));
    pc.addEventListener('icecandidate', (e) => log(pc, 'local-candidate', typ(e.candidate && e.candidate.candidate)));
    const wrap = (name, describe) => {
      const f = pc[name].bind(pc);
      pc[name] = (...a) => {
        const what = describe(a);
        return f(...a).then((r) => {
          log(pc, name, what);
          return r;
        }, (e) => {
          log(pc, `${name} FAILED`, `${what}: ${e.name}: ${e.message}`);
          throw e;
        });
      };
    };
    wrap('setLocalDescription', (a) => (a[0] && a[0].type) || `implicit in ${pc.signalingState}`);
    wrap('setRemoteDescription', (a) => a[0] && a[0].type);
    wrap('addIceCandidate', (a) => (a[0] ? typ(a[0].candidate) : 'end'));
    const restart = pc.restartIce.bind(pc);
    pc.restartIce = () => {
      log(pc, 'restartIce');
      restart();
    };
  };
  // Signalling frames by type with their peer (no payload), and the server's errors by name.
  window.__frames = [];
  const frame = (dir, data) => {
    try {
      const f = JSON.parse(data);
      if (f.type === 'ping' || f.type === 'pong' || f.type === 'ack') return;
      window.__frames.push({ t: Math.round(performance.now()), dir, type: f.type,
        peer: f.from || f.to || f.peer, ...(f.name ? { name: f.name } : {}), ...(f.restart ? { restart: true } : {}),
        ...(f.type === 'candidate' ? { c: typ(f.candidate) } : {}),
        ...(f.peers ? { peers: f.peers.map((x) => x.peer) } : {}) });
      if (window.__frames.length > 2000) window.__frames.splice(0, 500);
    } catch {
      // not JSON: not ours to trace
    }
  };
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => frame('in', e.data));
    }

    send(data) {
      frame('out', data);
      return super.send(data);
    }
  };
  window.RTCPeerConnection = class extends Orig {
    constructor(...args) {
      super(...args);
      if (!window.__pcs.includes(this)) window.__pcs.push(this);
      hook(this);
      log(this, 'created');
      this.addEventListener('track', (e) => {
        if (e.track.kind === 'video') watch(e.track);
      });
    }
  };
  document.addEventListener('click', (e) => {
    const b = e.target.closest && e.target.closest('button');
    if (b) window.__clicks.push({ id: b.id, text: b.textContent.trim(), t: now() });
  }, true);
}

// Installs the instruments in every page of the context (before any of the page's scripts).
export async function instrumentContext(context) {
  await context.addInitScript(instrument);
}

// The page's live connections (not closed), each as its getStats summary:
// { state, framesDecoded (all inbound video), local, remote } with the selected pair's ends.
export async function callStats(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__pcs || []) {
      if (pc.connectionState === 'closed') continue;
      const stats = await pc.getStats();
      let framesDecoded = 0;
      let pairId = null;
      stats.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') framesDecoded += s.framesDecoded || 0;
        if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
      });
      const pair = pairId ? stats.get(pairId) : null;
      const end = (id) => {
        const c = id ? stats.get(id) : null;
        return c ? { type: c.candidateType, protocol: c.protocol, relayProtocol: c.relayProtocol,
          url: c.url, address: c.address, port: c.port } : null;
      };
      out.push({ state: pc.connectionState, framesDecoded,
        local: pair ? end(pair.localCandidateId) : null,
        remote: pair ? end(pair.remoteCandidateId) : null });
    }
    return out;
  });
}

// Waits until the page has n connected peers each decoding video (framesDecoded > 0 and still
// growing, so a stalled stream does not count). Returns the stats.
export async function waitDecoding(page, n, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  let last = [];
  let prev = null;
  for (;;) {
    last = (await callStats(page)).filter((s) => s.state === 'connected');
    const frames = last.map((s) => s.framesDecoded);
    if (last.length >= n && frames.every((f) => f > 0) && prev &&
        prev.length === frames.length && frames.every((f, i) => f > prev[i]))
      return last;
    prev = frames;
    if (Date.now() > end)
      throw new Error(`timed out: wanted ${n} connected peers decoding video, have ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

// The times (ms since the epoch, page clock) of the first frames decoded and of clicks.
export async function timings(page) {
  return page.evaluate(() => ({ firstFrames: window.__firstFrames, clicks: window.__clicks }));
}

// Waits until at least one connection of the page decodes video that is still arriving (its
// framesDecoded grows between two reads); a stale connection beside it does not matter.
export async function waitSomeDecoding(page, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  let prev = null;
  let last = [];
  for (;;) {
    last = await callStats(page);
    const frames = last.map((s) => (s.state === 'connected' ? s.framesDecoded : 0));
    if (prev && frames.some((f, i) => f > 0 && i < prev.length && f > prev[i])) return last;
    prev = frames;
    if (Date.now() > end)
      throw new Error(`timed out: no connection decoding fresh video: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

// For a failure report: every connection of the page (closed ones too) with its states, the
// selected candidate pair, framesDecoded and the trace recorded by the instruments (when the
// context has them), and the signalling frames.
export async function peerReport(page) {
  return page.evaluate(async () => {
    const pcs = [];
    for (const [i, pc] of (window.__pcs || []).entries()) {
      const r = { i, connection: pc.connectionState, ice: pc.iceConnectionState,
        signaling: pc.signalingState, gathering: pc.iceGatheringState };
      if (pc.connectionState !== 'closed') {
        const stats = await pc.getStats();
        let pairId = null;
        r.framesDecoded = [];
        r.candidates = { local: {}, remote: {} };
        r.pairs = {};
        stats.forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') r.framesDecoded.push(s.framesDecoded || 0);
          if (s.type === 'inbound-rtp' && s.kind === 'audio') r.audioPackets = s.packetsReceived;
          if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
          if (s.type === 'local-candidate') r.candidates.local[s.candidateType] = (r.candidates.local[s.candidateType] || 0) + 1;
          if (s.type === 'remote-candidate') r.candidates.remote[s.candidateType] = (r.candidates.remote[s.candidateType] || 0) + 1;
          if (s.type === 'candidate-pair') r.pairs[s.state] = (r.pairs[s.state] || 0) + 1;
        });
        const pair = pairId ? stats.get(pairId) : null;
        const end = (id) => {
          const c = id ? stats.get(id) : null;
          return c ? `${c.candidateType}/${c.protocol}${c.relayProtocol ? `/${c.relayProtocol}` : ''} ${c.address}:${c.port}` : null;
        };
        r.selected = pair ? `${end(pair.localCandidateId)} -> ${end(pair.remoteCandidateId)} (${pair.state})` : null;
      }
      r.trace = (window.__trace || []).filter((e) => e.pc === i).map((e) => `${e.t} ${e.ev}${e.d !== undefined ? ` ${e.d}` : ''}`);
      pcs.push(r);
    }
    const frames = (window.__frames || []).map((f) => `${f.t} ${f.dir} ${f.type}${f.peer ? ` ${f.peer}` : ''}` +
      `${f.c ? ` ${f.c}` : ''}${f.name ? ` ${f.name}` : ''}${f.restart ? ' restart' : ''}${f.peers ? ` [${f.peers}]` : ''}`);
    return { now: Math.round(performance.now()), pcs, frames };
  }).catch((e) => ({ error: String(e) }));
}

// Every console message of a browser's pages, kept for a failure report (lib/browser.mjs keeps
// only the errors).
export function keepConsole(b) {
  b.allConsole = [];
  const watch = (p) => p.on('console', (m) => {
    b.allConsole.push(`${m.type()}: ${m.text()}`);
    if (b.allConsole.length > 500) b.allConsole.splice(0, 100);
  });
  for (const p of b.context.pages()) watch(p);
  b.context.on('page', watch);
}

// Runs fn (a wait); when it throws, prints a report of every named browser's page
// (peerReport, console) to stderr and throws again. AR_E2E_REPORT=1 prints it after a success
// too (to compare a good run with a bad one).
export async function reporting(browsers, fn) {
  const report = async () => {
    for (const [label, b] of Object.entries(browsers)) {
      const rep = await peerReport(b.page);
      console.error(`---- ${label}: ${JSON.stringify(rep, null, 1)}`);
      console.error(`---- ${label} console:\n${(b.allConsole || b.console || []).join('\n')}`);
    }
  };
  let out;
  try {
    out = await fn();
  } catch (e) {
    await report();
    throw e;
  }
  if (process.env.AR_E2E_REPORT === '1') await report();
  return out;
}

// One read of a page for waitProgress: its live connections' states and frames decoded per
// inbound video, and how many negotiation steps the instruments traced so far.
async function snapshot(page) {
  return page.evaluate(async () => {
    const pcs = [];
    for (const pc of window.__pcs || []) {
      if (pc.connectionState === 'closed') continue;
      const frames = [];
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') frames.push(s.framesDecoded || 0);
      });
      pcs.push({ state: pc.connectionState, ice: pc.iceConnectionState, signaling: pc.signalingState, frames });
    }
    return { pcs, steps: (window.__trace || []).length };
  });
}

// How many inbound videos of a snapshot have decoded a frame (on connections that are up).
export function decodingCount(snap) {
  return snap.pcs.reduce((n, p) => n + (p.state === 'connected' ? p.frames.filter((f) => f > 0).length : 0), 0);
}

// Waits until ok({label: snapshot}) holds for the named pages, as long as the call makes
// progress: a busy machine only slows the steps down (gathering, checks, DTLS, the first
// frame), a pair that can never connect stops changing. Progress is any change in a page's
// connections (their number, states, inbound videos, which of them decode) or in the
// negotiation steps traced (instrumentContext); it fails after stallMs without any, or after
// capMs in all. Returns the last snapshots.
export async function waitProgress(what, pages, ok, { stallMs = 20000, capMs = 120000 } = {}) {
  const start = Date.now();
  let lastKey = '';
  let lastChange = start;
  let snaps = {};
  for (;;) {
    snaps = {};
    for (const [label, page] of Object.entries(pages)) snaps[label] = await snapshot(page);
    if (ok(snaps)) return snaps;
    const key = JSON.stringify(Object.values(snaps).map((s) => [s.steps, s.pcs.map((p) =>
      [p.state, p.ice, p.signaling, p.frames.length, p.frames.filter((f) => f > 0).length])]));
    const now = Date.now();
    if (key !== lastKey) {
      lastKey = key;
      lastChange = now;
    }
    if (now - lastChange > stallMs || now - start > capMs) {
      const why = now - start > capMs ? `${capMs} ms in all` : `nothing advanced for ${stallMs} ms`;
      throw new Error(`waiting for ${what}: ${why} (after ${now - start} ms): ${JSON.stringify(snaps)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
