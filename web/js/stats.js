// The call monitor's reporter (docs/monitor.md, schema v1): every 10 s one flat report of this
// participant's call (bitrates, loss, jitter, round trip, frame rate and size, candidate *types*),
// sent one way (no-cors: nothing is read back), the last one with final: true. No identity, no
// address, no candidate line: only the fields of the schema, all numbers or fixed words.

const INTERVAL_S = 10;

function browserFamily() {
  const ua = navigator.userAgent;
  if (/Edg\//.test(ua)) return 'edge';
  if (/Firefox\//.test(ua)) return 'firefox';
  if (/Chrome\//.test(ua)) return 'chrome';
  if (/Safari\//.test(ua)) return 'safari';
  return 'other';
}

const TYPES = new Set(['host', 'srflx', 'prflx', 'relay']);
const clamp = (v, hi) => Math.max(0, Math.min(hi, Math.round(v)));

export class StatsReporter {
  // url: servers.monitor; token: the monitor-audience token; mesh: the call's Mesh;
  // waitS: seconds waited before the call (optional).
  constructor(url, token, mesh, waitS) {
    this.url = url;
    this.token = token;
    this.mesh = mesh;
    this.waitS = waitS;
    this.started = Date.now();
    this.prev = null;
    this.timer = setInterval(() => this.tick(false), INTERVAL_S * 1000);
    this.onHide = () => this.stop();
    addEventListener('pagehide', this.onHide);
  }

  async sample() {
    const s = { bytesIn: 0, bytesOut: 0, lost: 0, recv: 0, jitter: 0, rtt: 0, fps: 0, w: 0, h: 0, frames: 0 };
    for (const p of this.mesh.peers.values()) {
      const st = await p.pc.getStats().catch(() => null);
      if (!st) continue;
      st.forEach((x) => {
        if (x.type === 'inbound-rtp') {
          s.bytesIn += x.bytesReceived || 0;
          s.lost += x.packetsLost || 0;
          s.recv += x.packetsReceived || 0;
          s.jitter = Math.max(s.jitter, x.jitter || 0);
          if (x.kind === 'video') {
            s.fps = Math.max(s.fps, x.framesPerSecond || 0);
            s.w = Math.max(s.w, x.frameWidth || 0);
            s.h = Math.max(s.h, x.frameHeight || 0);
          }
        } else if (x.type === 'outbound-rtp') {
          s.bytesOut += x.bytesSent || 0;
        } else if (x.type === 'transport' && x.selectedCandidatePairId && !s.local) {
          const pair = st.get(x.selectedCandidatePairId);
          if (pair) {
            s.rtt = pair.currentRoundTripTime || 0;
            s.local = st.get(pair.localCandidateId)?.candidateType;
            s.remote = st.get(pair.remoteCandidateId)?.candidateType;
          }
        }
      });
    }
    s.at = Date.now();
    return s;
  }

  // The report body: the schema's fields only.
  build(s, final) {
    const r = {
      v: 1,
      token: this.token,
      interval_s: INTERVAL_S,
      call_s: clamp((s.at - this.started) / 1000, 86400),
      browser: browserFamily(),
      profile: this.mesh.profile,
      candidate: TYPES.has(s.local) ? s.local : 'host',
    };
    if (TYPES.has(s.remote)) r.remote_candidate = s.remote;
    if (this.waitS !== undefined) r.wait_s = clamp(this.waitS, 86400);
    if (final) r.final = true;
    if (this.prev) {
      const dt = Math.max(1, (s.at - this.prev.at) / 1000);
      r.bitrate_in_kbps = clamp(((s.bytesIn - this.prev.bytesIn) * 8) / dt / 1000, 100000);
      r.bitrate_out_kbps = clamp(((s.bytesOut - this.prev.bytesOut) * 8) / dt / 1000, 100000);
      const lost = s.lost - this.prev.lost;
      const got = s.recv - this.prev.recv;
      if (lost + got > 0) r.loss_permille = clamp((1000 * Math.max(0, lost)) / (lost + got), 1000);
    }
    r.jitter_ms = clamp(s.jitter * 1000, 60000);
    r.rtt_ms = clamp(s.rtt * 1000, 60000);
    r.fps = clamp(s.fps, 240);
    r.width = clamp(s.w, 7680);
    r.height = clamp(s.h, 4320);
    return JSON.stringify(r);
  }

  async tick(final) {
    if (!this.mesh.peers.size && !final) return;
    const s = await this.sample();
    const body = this.build(s, final);
    this.prev = s;
    // A text/plain body needs no preflight; the answer is opaque and unread by design.
    if (final && navigator.sendBeacon) navigator.sendBeacon(this.url, new Blob([body], { type: 'text/plain' }));
    else fetch(this.url, { method: 'POST', mode: 'no-cors', keepalive: true, body, credentials: 'omit', referrerPolicy: 'no-referrer' }).catch(() => {});
  }

  stop() {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
    removeEventListener('pagehide', this.onHide);
    this.tick(true);
  }
}
