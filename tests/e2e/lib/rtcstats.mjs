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
  window.RTCPeerConnection = class extends Orig {
    constructor(...args) {
      super(...args);
      if (!window.__pcs.includes(this)) window.__pcs.push(this);
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
