// The call mesh (I1): one RTCPeerConnection per other participant, up to three, with the
// "perfect negotiation" pattern (the peer with the smaller peer id is polite, protocol 5.3),
// relay-only ICE when the area asks for it (S11), ICE restart on failure, after 2 s
// disconnected, on a network change, after lost signalling frames, and after a signalling
// resume for the connections that need it (I4), and two negotiated data channels per peer:
// chat (id 0) and files (id 1).

export const PROFILES = {
  low: { maxBitrate: 300_000, scaleResolutionDownBy: 4, maxFramerate: 15 },
  standard: { maxBitrate: 1_000_000, scaleResolutionDownBy: 2, maxFramerate: 30 },
  high: { maxBitrate: 2_500_000, scaleResolutionDownBy: 1, maxFramerate: 30 },
};

const DISCONNECTED_MS = 2000;
// How long a member waits for a newcomer's offer before offering itself (see add()).
const NEWCOMER_OFFER_MS = 3000;

export class Mesh extends EventTarget {
  // opts: {signal: SignalClient, iceServers, relayOnly, stream: MediaStream, profile}
  constructor(opts) {
    super();
    this.signal = opts.signal;
    this.iceServers = opts.iceServers || [];
    this.relayOnly = !!opts.relayOnly;
    this.stream = opts.stream;
    this.profile = opts.profile || 'standard';
    this.peers = new Map();
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // Start a connection to peerId; the newcomer (offer === true) makes the offer.
  add(info, offer) {
    if (this.peers.has(info.peer)) return this.peers.get(info.peer);
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers,
      iceTransportPolicy: this.relayOnly ? 'relay' : 'all',
    });
    const p = {
      id: info.peer,
      info,
      pc,
      polite: this.signal.peer < info.peer,
      makingOffer: false,
      ignoreOffer: false,
      stream: new MediaStream(),
      chat: pc.createDataChannel('chat', { negotiated: true, id: 0 }),
      files: pc.createDataChannel('files', { negotiated: true, id: 1 }),
    };
    p.files.binaryType = 'arraybuffer';
    this.peers.set(info.peer, p);
    this.attachTracks(p);
    pc.ontrack = (ev) => {
      p.stream.addTrack(ev.track);
      this.emit('track', p);
    };
    pc.onicecandidate = (ev) => {
      const c = ev.candidate ? ev.candidate.toJSON() : { candidate: '' };
      this.signal.send('candidate', {
        to: p.id,
        candidate: c.candidate || '',
        mid: c.sdpMid ?? null,
        mline: c.sdpMLineIndex ?? null,
        ufrag: c.usernameFragment ?? null,
      });
    };
    pc.onnegotiationneeded = async () => {
      if (!offer && !p.started) return; // wait for the newcomer's offer
      await this.makeOffer(p);
    };
    // I4: a path that went quiet (a network change, a lost Wi-Fi) shows as ICE 'disconnected';
    // left alone it may take 30 s to become 'failed'. After DISCONNECTED_MS still disconnected,
    // restart ICE toward that peer (either side may: perfect negotiation settles a collision).
    pc.oniceconnectionstatechange = () => {
      clearTimeout(p.iceTimer);
      if (pc.iceConnectionState !== 'disconnected') return;
      p.iceTimer = setTimeout(() => {
        if (pc.iceConnectionState === 'disconnected' && this.peers.get(p.id) === p) this.restart(p);
      }, DISCONNECTED_MS);
    };
    pc.onconnectionstatechange = () => {
      this.emit('state', p);
      if (pc.connectionState === 'failed') this.restart(p);
      if (pc.connectionState === 'connected') this.applyProfile(this.profile);
    };
    p.chat.onmessage = (ev) => this.emit('chat', { peer: p, text: String(ev.data) });
    // A line typed while the channel still opens waits for it rather than being lost.
    p.chatQueue = [];
    p.chat.onopen = () => {
      for (const text of p.chatQueue.splice(0)) p.chat.send(text);
    };
    p.files.onmessage = (ev) => this.emit('filedata', { peer: p, data: ev.data });
    this.emit('peer', p);
    if (offer) {
      p.started = true;
      // onnegotiationneeded fires because tracks and channels were added.
    } else if (!info.hold) {
      // Two joins on two signalling workers within the bus's delay each get `joined` without
      // the other and then `peer_joined` about the other (docs/signal.md): each waits for the
      // other's offer and the pair would never connect. So a member whose newcomer has not
      // offered in NEWCOMER_OFFER_MS offers itself; should both offer, perfect negotiation
      // settles it (the impolite one's offer wins).
      p.offerTimer = setTimeout(() => {
        if (p.started || this.peers.get(p.id) !== p) return;
        p.started = true;
        this.makeOffer(p);
      }, NEWCOMER_OFFER_MS);
    }
    return p;
  }

  // The local tracks arrived after the mesh was made: a camera slow to start while the patient
  // already went on and was admitted (or a permission granted late). Every connection gets
  // them; one that had no track of a kind adds it and renegotiates (perfect negotiation), one
  // that had one swaps it. Without this such a patient stays unseen and unheard all call.
  setStream(stream) {
    if (!stream || stream === this.stream) return;
    this.stream = stream;
    for (const p of this.peers.values()) this.attachTracks(p);
    this.emit('stream', stream);
  }

  attachTracks(p) {
    for (const t of this.stream.getTracks()) {
      const s = p.pc.getSenders().find((x) => x.track && x.track.kind === t.kind);
      if (!s) p.pc.addTrack(t, this.stream);
      else if (s.track !== t) s.replaceTrack(t).catch((e) => this.emit('error', e));
    }
  }

  // Chat to every peer: sent now where the channel is open, queued where it is still opening.
  sendChat(text) {
    for (const p of this.peers.values()) {
      if (p.chat.readyState === 'open') p.chat.send(text);
      else if (p.chat.readyState === 'connecting') p.chatQueue.push(text);
    }
  }

  // Only from negotiationneeded, which fires in 'stable' alone. An offer begun in any other state
  // would be wrong: setLocalDescription() answers a remote offer still being applied (the other
  // side's restart landing as ours fires), that answer would go out as an offer and the next one
  // as an answer, and both sides would wait in have-local-offer for good.
  async makeOffer(p) {
    try {
      p.makingOffer = true;
      await p.pc.setLocalDescription();
      if (p.pc.localDescription.type !== 'offer') return;
      const restart = p.restarting;
      p.restarting = false;
      this.signal.send('offer', { to: p.id, sdp: p.pc.localDescription.sdp, ...(restart ? { restart: true } : {}) });
    } catch (e) {
      this.emit('error', e);
    } finally {
      p.makingOffer = false;
    }
  }

  async onOffer(f, retried) {
    let p = this.peers.get(f.from) || this.add({ peer: f.from, role: 'peer' }, false);
    p.started = true;
    const pc = p.pc;
    const collision = p.makingOffer || pc.signalingState !== 'stable';
    p.ignoreOffer = !p.polite && collision;
    if (p.ignoreOffer) return;
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp: f.sdp });
      await pc.setLocalDescription();
      this.signal.send('answer', { to: p.id, sdp: pc.localDescription.sdp });
    } catch (e) {
      // An offer that cannot continue this connection (the other side reloaded and has a new
      // certificate): replace the connection once and answer on the new one.
      if (retried) return this.emit('error', e);
      const info = p.info;
      this.remove(p.id);
      p = this.add(info, false);
      return this.onOffer(f, true);
    }
  }

  async onAnswer(f) {
    const p = this.peers.get(f.from);
    if (!p) return;
    await p.pc.setRemoteDescription({ type: 'answer', sdp: f.sdp }).catch((e) => this.emit('error', e));
  }

  async onCandidate(f) {
    const p = this.peers.get(f.from);
    if (!p) return;
    try {
      if (f.candidate === '') await p.pc.addIceCandidate();
      else
        await p.pc.addIceCandidate({
          candidate: f.candidate,
          sdpMid: f.mid ?? undefined,
          sdpMLineIndex: f.mline ?? undefined,
          usernameFragment: f.ufrag ?? undefined,
        });
    } catch (e) {
      if (!p.ignoreOffer) this.emit('error', e);
    }
  }

  // ICE restart toward one peer, or every peer (after a signalling resume or network change).
  // restartIce() makes the next offer a restart and asks for negotiation, which comes once the
  // connection is stable (at once, or after the negotiation under way).
  restart(p) {
    const list = p ? [p] : [...this.peers.values()];
    for (const q of list) if (!q.polite || p) this.restartIce(q);
  }

  // After a signalling resume: the replay brought every frame sent to us meanwhile and our own
  // queued frames went out, so a connection that is connected and stable lost nothing and needs
  // no restart. One there would load signalling at its worst moment: when a node dies, every
  // call on it resumes at once, and each restart is an offer, an answer and candidates each way
  // through the survivor (docs/signal.md, "What a resume asks of the web client"). The others
  // (not connected, or a negotiation under way) restart as restart() does; a path that goes
  // quiet later still restarts from its 2 s disconnected timer.
  restartUnsettled() {
    for (const q of this.peers.values())
      if (!q.polite && !(q.pc.connectionState === 'connected' && q.pc.signalingState === 'stable')) this.restartIce(q);
  }

  // restartIce() makes the next offer a restart (marked so for the other side's UI).
  restartIce(q) {
    q.restarting = true;
    q.pc.restartIce();
  }

  remove(id) {
    const p = this.peers.get(id);
    if (!p) return;
    clearTimeout(p.iceTimer);
    clearTimeout(p.offerTimer);
    p.pc.close();
    this.peers.delete(id);
    this.emit('gone', p);
  }

  // Quality profile (C7): the same caps on every video sender toward every peer.
  async applyProfile(name) {
    const caps = PROFILES[name];
    if (!caps) return;
    this.profile = name;
    for (const p of this.peers.values())
      for (const s of p.pc.getSenders()) {
        if (!s.track || s.track.kind !== 'video') continue;
        const params = s.getParameters();
        if (!params.encodings || !params.encodings.length) continue;
        for (const e of params.encodings) Object.assign(e, caps, { active: !p.videoPaused });
        await s.setParameters(params).catch((e) => this.emit('error', e));
      }
    this.emit('profile', name);
  }

  // Audio only toward one peer (I4): its video encodings stop (the track stays, so the camera
  // and the other peers are untouched) until the link recovers.
  async setVideoPaused(id, on) {
    const p = this.peers.get(id);
    if (!p) return;
    p.videoPaused = on;
    for (const s of p.pc.getSenders()) {
      if (!s.track || s.track.kind !== 'video') continue;
      const params = s.getParameters();
      if (!params.encodings || !params.encodings.length) continue;
      for (const e of params.encodings) e.active = !on;
      await s.setParameters(params).catch((e) => this.emit('error', e));
    }
  }

  // Device switch and screen share: swap the track on every sender of that kind.
  async replaceTrack(kind, track) {
    // By transceiver: a sender's track may be null, its receiver's track always has the kind.
    for (const p of this.peers.values())
      for (const t of p.pc.getTransceivers())
        if (t.receiver.track.kind === kind && t.currentDirection !== 'stopped') await t.sender.replaceTrack(track);
  }

  close() {
    for (const id of [...this.peers.keys()]) this.remove(id);
  }
}
