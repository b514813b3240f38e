// The call screen shared by patient and clinician pages: video tiles, mute, camera off, device
// switch, screen share, chat and files over data channels, the verification code and a
// connection-quality indicator. The markup is in each page (ids listed in web/README.md).

import { $, el, announce } from './dom.js';
import { sendFile, fileReceiver } from './files.js';
import { verificationCode } from './verify.js';
import { listDevices, getLocalStream } from './media.js';

export class CallUI {
  constructor(mesh, selfName) {
    this.mesh = mesh;
    this.selfName = selfName;
    this.tiles = new Map();
    this.receivers = new Map();
    this.urls = [];
    this.timer = null;
    this.wired = false;
  }

  start() {
    $('self-video').srcObject = this.mesh.stream;
    if (!this.wired) this.wire();
    this.wired = true;
    // Controls start unpressed: a new call's tracks are all on.
    for (const [id, label] of [['btn-mute', 'Mute'], ['btn-camera', 'Camera off'], ['btn-share', 'Share screen']]) {
      $(id).textContent = label;
      $(id).setAttribute('aria-pressed', 'false');
    }
    this.timer = setInterval(() => this.refresh(), 2000);
    // A network change (back online, another interface): restart ICE toward every peer.
    this.onOnline = () => this.mesh.restart();
    addEventListener('online', this.onOnline);
    navigator.connection?.addEventListener?.('change', this.onOnline);
  }

  stop() {
    clearInterval(this.timer);
    removeEventListener('online', this.onOnline);
    navigator.connection?.removeEventListener?.('change', this.onOnline);
    for (const id of [...this.tiles.keys()]) this.dropTile(id);
  }

  // After the consultation: nothing of it stays in the page (chat, files, codes).
  clear() {
    this.stop();
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls = [];
    this.receivers.clear();
    $('chat-log').replaceChildren();
    $('file-list').replaceChildren();
    $('verify-code').textContent = 'not yet connected';
    $('self-video').srcObject = null;
  }

  peerName(p) {
    return p.info.name || (p.info.role === 'patient' ? 'Patient' : 'Participant');
  }

  // Mesh events for this call; the page's controls are assigned (not added) so that only the
  // current call's handlers run.
  wire() {
    const m = this.mesh;
    m.addEventListener('peer', (e) => this.tile(e.detail));
    m.addEventListener('track', (e) => (this.tile(e.detail).querySelector('video').srcObject = e.detail.stream));
    m.addEventListener('gone', (e) => this.dropTile(e.detail.id));
    m.addEventListener('stream', () => ($('self-video').srcObject = m.stream));
    m.addEventListener('chat', (e) => this.chatLine(this.peerName(e.detail.peer), e.detail.text));
    m.addEventListener('filedata', (e) => this.receiver(e.detail.peer)(e.detail.data));
    $('btn-mute').onclick = () => this.toggle('audio', 'btn-mute', 'Unmute', 'Mute');
    $('btn-camera').onclick = () => this.toggle('video', 'btn-camera', 'Camera on', 'Camera off');
    $('btn-share').onclick = () => this.share();
    $('sel-camera').onchange = () => this.switchDevice('video');
    $('sel-mic').onchange = () => this.switchDevice('audio');
    $('chat-form').onsubmit = (ev) => {
      ev.preventDefault();
      const text = $('chat-input').value.trim();
      if (!text) return;
      m.sendChat(text);
      this.chatLine('You', text);
      $('chat-input').value = '';
    };
    $('file-form').onsubmit = async (ev) => {
      ev.preventDefault();
      const f = $('file-input').files[0];
      if (!f) return;
      const prog = $('file-progress');
      for (const p of m.peers.values()) {
        if (p.files.readyState !== 'open') continue;
        const hash = await sendFile(p.files, f, (s, t) => {
          prog.max = t;
          prog.value = s;
        });
        this.fileLine(`Sent ${f.name} to ${this.peerName(p)}`, hash, null, f.name, f);
      }
    };
    this.fillDevices();
  }

  async fillDevices() {
    const { cameras, mics } = await listDevices();
    const fill = (sel, list, kind) => {
      sel.replaceChildren(...list.map((d, i) => el('option', { value: d.deviceId, text: d.label || `${kind} ${i + 1}` })));
      const cur = this.mesh.stream.getTracks().find((t) => t.kind === (kind === 'Camera' ? 'video' : 'audio'));
      if (cur) sel.value = cur.getSettings().deviceId || sel.value;
    };
    fill($('sel-camera'), cameras, 'Camera');
    fill($('sel-mic'), mics, 'Microphone');
  }

  toggle(kind, btnId, offLabel, onLabel) {
    const tracks = this.mesh.stream.getTracks().filter((t) => t.kind === kind);
    const enable = !tracks.some((t) => t.enabled);
    for (const t of tracks) t.enabled = enable;
    const b = $(btnId);
    b.textContent = enable ? onLabel : offLabel;
    b.setAttribute('aria-pressed', String(!enable));
  }

  async switchDevice(kind) {
    const id = kind === 'video' ? $('sel-camera').value : $('sel-mic').value;
    const s = await getLocalStream(kind === 'video' ? id : null, kind === 'audio' ? id : null);
    const track = s.getTracks().find((t) => t.kind === kind);
    if (!track) return;
    for (const t of s.getTracks()) if (t !== track) t.stop();
    const old = this.mesh.stream.getTracks().find((t) => t.kind === kind);
    await this.mesh.replaceTrack(kind, track);
    if (old) {
      this.mesh.stream.removeTrack(old);
      old.stop();
    }
    this.mesh.stream.addTrack(track);
  }

  async share() {
    if (this.screenTrack) return this.stopShare();
    const s = await navigator.mediaDevices.getDisplayMedia({ video: true });
    this.screenTrack = s.getVideoTracks()[0];
    await this.mesh.replaceTrack('video', this.screenTrack);
    const b = $('btn-share');
    b.setAttribute('aria-pressed', 'true');
    b.textContent = 'Stop sharing';
    // The browser's own "stop sharing" ends the track; stop() by us does not fire this.
    this.screenTrack.onended = () => this.stopShare();
  }

  async stopShare() {
    const t = this.screenTrack;
    if (!t) return;
    this.screenTrack = null;
    t.onended = null;
    t.stop();
    await this.mesh.replaceTrack('video', this.mesh.stream.getVideoTracks()[0] || null);
    const b = $('btn-share');
    b.setAttribute('aria-pressed', 'false');
    b.textContent = 'Share screen';
  }

  tile(p) {
    let t = this.tiles.get(p.id);
    if (t) return t;
    const name = this.peerName(p);
    const lang = p.info.lang ? ` (interpreter, ${p.info.lang})` : '';
    t = el(
      'figure',
      { class: 'tile', 'data-peer': p.id, 'data-testid': 'remote-tile' },
      el('video', { autoplay: true, playsinline: true, 'aria-label': `Video of ${name}` }),
      el('figcaption', { text: name + lang }),
    );
    $('videos').append(t);
    this.tiles.set(p.id, t);
    announce(`${name} joined the call`);
    return t;
  }

  dropTile(id) {
    const t = this.tiles.get(id);
    if (!t) return;
    t.remove();
    this.tiles.delete(id);
    announce(`${t.querySelector('figcaption').textContent} left the call`);
  }

  chatLine(who, text) {
    $('chat-log').append(el('li', { 'data-testid': 'chat-line' }, el('strong', { text: `${who}: ` }), text));
  }

  // sent: the File we sent (no download link); either one can be kept encrypted (keeping.js,
  // through onFileLine).
  fileLine(text, sha, blob, name, sent) {
    const li = el('li', { 'data-testid': 'file-line', 'data-sha256': sha }, text + ' ', el('small', { text: `SHA-256 ${sha.slice(0, 16)}…` }));
    if (blob || sent) li.keep = { blob: blob || sent, name };
    if (blob) {
      const url = URL.createObjectURL(blob);
      this.urls.push(url);
      const a = el('a', { href: url, download: name, text: 'Save' });
      li.append(' ', a);
    }
    $('file-list').append(li);
    this.onFileLine?.(li);
  }

  receiver(p) {
    let r = this.receivers.get(p.id);
    if (!r) {
      r = fileReceiver(
        (name, got, total) => {
          const prog = $('file-progress');
          prog.max = total || 1;
          prog.value = got;
        },
        (f) => {
          const ok = f.sha256 === f.sentSha256;
          this.fileLine(`${this.peerName(p)} sent ${f.name} (${f.size} bytes${ok ? '' : ', damaged'})`, f.sha256, f.blob, f.name);
          announce(`File received: ${f.name}`);
        },
      );
      this.receivers.set(p.id, r);
    }
    return r;
  }

  // Verification code and quality, every 2 s.
  async refresh() {
    const codes = [];
    let worst = 'good';
    for (const p of this.mesh.peers.values()) {
      const code = await verificationCode(p.pc).catch(() => null);
      if (code) codes.push(`${this.peerName(p)}: ${code}`);
      const st = await p.pc.getStats().catch(() => null);
      const q = quality(p.pc, st);
      const t = this.tiles.get(p.id);
      if (t) {
        t.dataset.quality = q;
        if (code) t.dataset.verify = code;
      }
      await this.audioFallback(p, st, q, t);
      if (q === 'poor' || (q === 'fair' && worst === 'good')) worst = q;
    }
    const vc = $('verify-code');
    const text = codes.join('; ') || 'not yet connected';
    if (vc.textContent !== text) vc.textContent = text;
    const qi = $('quality');
    const paused = [...this.mesh.peers.values()].filter((p) => p.videoPaused).map((p) => this.peerName(p));
    const note = paused.length ? ` (audio only to ${paused.join(', ')}: video cannot get through)` : '';
    const qt = this.mesh.peers.size ? `Connection: ${worst}${note}` : 'Connection: -';
    if (qi.textContent !== qt) qi.textContent = qt;
    qi.dataset.quality = worst;
  }

  // I4: when video cannot get through to a peer (the estimate of the outgoing bandwidth under
  // WEAK_BPS, or the peer reporting more than a fifth of our video lost) for three checks in a
  // row (6 s), send that peer audio only and say so; back to video after 30 s of a good link.
  async audioFallback(p, st, q, tile) {
    if (!st || p.pc.connectionState !== 'connected') return;
    let avail = null;
    let lost = 0;
    st.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && s.availableOutgoingBitrate !== undefined) avail = s.availableOutgoingBitrate;
      if (s.type === 'remote-inbound-rtp' && s.kind === 'video' && s.fractionLost !== undefined) lost = Math.max(lost, s.fractionLost);
    });
    const weak = (avail !== null && avail < WEAK_BPS) || lost > 0.2;
    p.weakRuns = weak ? (p.weakRuns || 0) + 1 : 0;
    p.goodRuns = q === 'good' && !weak ? (p.goodRuns || 0) + 1 : 0;
    if (!p.videoPaused && p.weakRuns >= 3) {
      await this.mesh.setVideoPaused(p.id, true);
      announce(`The connection to ${this.peerName(p)} is too weak for video: audio only.`);
    } else if (p.videoPaused && p.goodRuns >= 15) {
      await this.mesh.setVideoPaused(p.id, false);
      announce(`Video to ${this.peerName(p)} is back.`);
    }
    if (tile) tile.dataset.video = p.videoPaused ? 'paused' : 'on';
  }
}

const WEAK_BPS = 100000;

// good / fair / poor from the selected pair's round trip and inbound loss.
function quality(pc, st) {
  if (!st) return 'poor';
  let rtt = 0;
  let lost = 0;
  let recv = 0;
  st.forEach((s) => {
    if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') rtt = s.currentRoundTripTime || 0;
    if (s.type === 'inbound-rtp') {
      lost += s.packetsLost || 0;
      recv += s.packetsReceived || 0;
    }
  });
  if (pc.connectionState !== 'connected') return 'poor';
  const loss = recv ? lost / (lost + recv) : 0;
  if (rtt > 0.4 || loss > 0.05) return 'poor';
  if (rtt > 0.15 || loss > 0.01) return 'fair';
  return 'good';
}
