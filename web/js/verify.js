// Verification code (I3): derived from the DTLS certificate fingerprints the two browsers
// actually negotiated. Both sides sort the two fingerprints, so they hash the same text and show
// the same digits; a server in the middle would terminate DTLS with its own certificates and the
// codes would differ.
//
// Where the fingerprints come from: the transport's local and remote RTCCertificateStats in
// getStats. Chromium may answer a transport without remoteCertificateId for a long while (its
// certificate stats are cached from a getStats made before the handshake finished), so when
// the remote one is missing the code falls back to the certificate chain the DTLS transport
// itself reports (RTCDtlsTransport.getRemoteCertificates(): the peer's certificate, already
// checked against its signalled fingerprint), hashed with SHA-256 in the same notation. And a
// watcher per connection keeps asking (every 500 ms for 20 s, armed again whenever the DTLS
// transport, the selected candidate pair or the negotiation changes) so the code appears as
// soon as it can and follows a new transport after a renegotiation or an ICE restart.

const POLL_MS = 500;
const POLL_FOR_MS = 20000;

const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');

// "sha-256 AB:CD:..." from the SDP we sent (a=fingerprint), the stats' notation.
function sdpFingerprint(sdp) {
  const m = /^a=fingerprint:(\S+) ([0-9A-Fa-f:]+)\s*$/m.exec(sdp || '');
  return m ? `${m[1].toLowerCase()} ${m[2].toUpperCase()}` : null;
}

// The DTLS transport the connection uses now (bundled: the same for every sender and the SCTP
// association).
function dtlsTransport(pc) {
  if (pc.sctp?.transport) return pc.sctp.transport;
  for (const t of pc.getTransceivers?.() || []) if (t.sender?.transport) return t.sender.transport;
  return null;
}

export async function fingerprints(pc) {
  const stats = await pc.getStats();
  let local = null;
  let remote = null;
  stats.forEach((s) => {
    if (s.type !== 'transport' || (s.dtlsState && s.dtlsState !== 'connected')) return;
    const l = s.localCertificateId && stats.get(s.localCertificateId);
    const r = s.remoteCertificateId && stats.get(s.remoteCertificateId);
    if (l && !local) local = `${l.fingerprintAlgorithm} ${l.fingerprint}`;
    if (l && r) {
      local = `${l.fingerprintAlgorithm} ${l.fingerprint}`;
      remote = `${r.fingerprintAlgorithm} ${r.fingerprint}`;
    }
  });
  if (!remote) {
    const t = dtlsTransport(pc);
    if (!t || t.state !== 'connected' || typeof t.getRemoteCertificates !== 'function') return null;
    const certs = t.getRemoteCertificates();
    if (!certs || !certs.length) return null;
    remote = `sha-256 ${hex(await crypto.subtle.digest('SHA-256', certs[0]))}`;
    local = local || sdpFingerprint(pc.localDescription?.sdp);
  }
  return local && remote ? [local, remote] : null;
}

// The pure part: twelve digits in three groups from the first 8 bytes of SHA-256 over the two
// fingerprints, upper-cased and sorted (so both ends agree whichever is "local").
export async function codeFromFingerprints(a, b) {
  const text = [a, b].map((f) => f.toUpperCase()).sort().join('\n');
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  let n = 0n;
  for (let i = 0; i < 8; i++) n = (n << 8n) | BigInt(digest[i]);
  const digits = (n % 10n ** 12n).toString().padStart(12, '0');
  return `${digits.slice(0, 4)} ${digits.slice(4, 8)} ${digits.slice(8)}`;
}

async function compute(pc) {
  const fp = await fingerprints(pc);
  return fp ? codeFromFingerprints(fp[0], fp[1]) : null;
}

// One watcher per connection: the last code seen, polling while there is none (or after a
// change that may bring new certificates).
const watchers = new WeakMap();

function watcher(pc) {
  let w = watchers.get(pc);
  if (w) return w;
  w = { code: null, timer: null, until: 0, seen: new WeakSet() };
  watchers.set(pc, w);
  const tick = async () => {
    w.timer = null;
    if (pc.connectionState === 'closed') return;
    hook(pc, w);
    const code = await compute(pc).catch(() => null);
    if (code) w.code = code;
    if ((!code || w.rearmed) && Date.now() < w.until) {
      w.rearmed = false;
      w.timer = setTimeout(tick, POLL_MS);
    }
  };
  // (Re)start the bounded poll; after a change, compute again even if a code is showing.
  w.arm = (changed) => {
    w.until = Date.now() + POLL_FOR_MS;
    if (changed) w.rearmed = true;
    if (!w.timer) w.timer = setTimeout(tick, 0);
  };
  pc.addEventListener('connectionstatechange', () => pc.connectionState === 'connected' && w.arm(true));
  pc.addEventListener('iceconnectionstatechange', () => ['connected', 'completed'].includes(pc.iceConnectionState) && w.arm(true));
  pc.addEventListener('signalingstatechange', () => pc.signalingState === 'stable' && w.arm(true));
  w.arm(false);
  return w;
}

// Listen on the DTLS and ICE transports once each (they are replaced after a renegotiation that
// changes bundling, so this runs on every tick).
function hook(pc, w) {
  const t = dtlsTransport(pc);
  if (!t || w.seen.has(t)) return;
  w.seen.add(t);
  t.addEventListener('statechange', () => t.state === 'connected' && w.arm(true));
  t.iceTransport?.addEventListener?.('selectedcandidatepairchange', () => w.arm(true));
}

// The code for a connection, or null while the fingerprints are not known yet. Callers may ask
// as often as they like: the first call starts the watcher, later ones read what it found (and
// compute directly if it has not found anything yet).
export async function verificationCode(pc) {
  const w = watcher(pc);
  if (w.code) return w.code;
  const code = await compute(pc);
  if (code) w.code = code;
  else w.arm(false);
  return code;
}
