// Signalling client for protocol v1 (docs/protocol.md): hello with a capability token, session
// sequence numbers with acks, duplicates dropped by frame id (5.10.1), JSON keepalive, resume
// within the grace period after a lost connection, and drain to another node. Events are
// dispatched as CustomEvents named after the frame type (detail = the frame), plus 'open',
// 'welcome', 'lost', 'closed', and 'resync' when the server says frames for this session were
// lost before it numbered them (error `lost`, 5.10).

// Close codes after which the session cannot be resumed (section 4.2).
const FINAL = new Set([1000, 4001, 4003, 4005, 4007, 4008, 4012, 4013, 4015]);
const ACK_EVERY = 32;
// Frame ids remembered to drop a frame seen before (protocol 5.10.1): twice the server's replay
// buffer, so that a resume after a node's death cannot bring back one we forgot.
const FID_WINDOW = 512;
// The server allows 20 frames a second in bursts of 100 and drops what is over (protocol 4.3);
// a newcomer to a call of four sends about 70 in two seconds (three offers and their
// candidates). Frames beyond our own slightly smaller bucket wait here, in order, instead.
const PACE_RATE = 20;
const PACE_BURST = 90;
// Drain moves (protocol 5.12): a drain within this long of the last one waits before it moves,
// twice as long each time from DRAIN_BACKOFF_MS up to 5 s; a move without a token tries again.
const DRAIN_AGAIN_MS = 60000;
const DRAIN_BACKOFF_MS = 500;
const DRAIN_RETRY_MS = 2000;

export class SignalClient extends EventTarget {
  // opts: {urls: [wss...], token: () => Promise<string>|string, name?, resume?, lastSeq?, fids?}
  // (fids: recentFids() of the page before a reload, kept with resume and lastSeq)
  constructor(opts) {
    super();
    this.urls = opts.urls.slice();
    this.tokenFn = opts.token;
    this.name = opts.name;
    this.resumeToken = opts.resume || null;
    this.lastSeq = opts.lastSeq || 0;
    this.acked = this.lastSeq;
    this.fids = new Set();
    this.fidOrder = [];
    for (const fid of opts.fids || []) this.rememberFid(fid);
    this.peer = null;
    this.grace = 120;
    this.ws = null;
    this.nextId = 1;
    this.stopped = false;
    this.lostAt = 0;
    this.attempt = 0;
    this.pingTimer = null;
    this.outQueue = [];
    this.queuedBefore = 0; // frames queued before the current connection's hello
    this.ready = false; // the current connection is welcomed
    this.tokens = PACE_BURST;
    this.refilled = Date.now();
    this.paceTimer = null;
    this.moving = false; // a drain move is under way (onDrain)
    this.moves = 0; // drains in a row, each within DRAIN_AGAIN_MS of the last
    this.drainedAt = -Infinity;
    this.superseded = new Set(); // connections a drain left, closed after the next welcome
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  async connect(url) {
    const target = url || this.urls[0];
    let token;
    try {
      token = await this.tokenFn();
    } catch {
      // No token now (the app unreachable): try again on the reconnect schedule.
      this.ws = null;
      this.retry();
      return;
    }
    if (this.stopped) return;
    this.open(target, token);
  }

  open(target, token) {
    const ws = new WebSocket(target, 'anteroom.v1');
    this.ws = ws;
    this.url = target; // retries go on from the URL after it
    // Frames queued meanwhile wait for this connection's welcome: a resumed session takes them,
    // a new one drops those queued before it (they were for the old session).
    this.ready = false;
    this.queuedBefore = this.outQueue.length;
    ws.onopen = () => {
      const hello = { token };
      if (this.name) hello.name = this.name;
      if (this.resumeToken) {
        hello.resume = this.resumeToken;
        hello.last_seq = this.lastSeq;
      }
      // Hello goes first whatever is queued (it is the only frame before welcome).
      ws.send(JSON.stringify({ v: 1, type: 'hello', id: this.nextId++, ...hello }));
      this.tokens = PACE_BURST - 1;
      this.refilled = Date.now();
    };
    ws.onmessage = (ev) => this.onFrame(ws, ev.data);
    ws.onclose = (ev) => this.onClose(ws, ev.code);
    ws.onerror = () => {};
  }

  // Queues a frame (sent in order within the rate, once the connection is welcomed); 0 when
  // there is no connection at all.
  send(type, fields = {}) {
    if (!this.ws) return 0;
    const id = this.nextId++;
    this.outQueue.push(JSON.stringify({ v: 1, type, id, ...fields }));
    this.pace();
    return id;
  }

  // Sends what the bucket allows now and comes back for the rest.
  pace() {
    const now = Date.now();
    this.tokens = Math.min(PACE_BURST, this.tokens + ((now - this.refilled) * PACE_RATE) / 1000);
    this.refilled = now;
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.ready) return;
    while (this.outQueue.length && this.tokens >= 1) {
      ws.send(this.outQueue.shift());
      this.tokens -= 1;
    }
    if (this.outQueue.length && !this.paceTimer)
      this.paceTimer = setTimeout(() => {
        this.paceTimer = null;
        this.pace();
      }, 1000 / PACE_RATE);
  }

  rememberFid(fid) {
    if (typeof fid !== 'string' || this.fids.has(fid)) return;
    this.fids.add(fid);
    this.fidOrder.push(fid);
    if (this.fidOrder.length > FID_WINDOW) this.fids.delete(this.fidOrder.shift());
    this.emit('fid', fid);
  }

  // The ids of the last frames processed, for a page that keeps its session across a reload.
  recentFids() {
    return this.fidOrder.slice();
  }

  onFrame(ws, data) {
    if (ws !== this.ws) return;
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (f.seq > 0) {
      // A frame is a duplicate when its id was processed (protocol 5.10.1): after a node's death
      // the server may replay one under another number, or one we never got under a number we
      // have seen. Frames come in the order of their seq, so even a duplicate moves lastSeq.
      // Without an id (an older server), a seq not above lastSeq is the duplicate.
      const hasFid = typeof f.fid === 'string';
      const dup = hasFid ? this.fids.has(f.fid) : f.seq <= this.lastSeq;
      // Remembered before 'seq' is told, so a page saving recentFids() on it saves this one too.
      if (!dup && hasFid) this.rememberFid(f.fid);
      if (f.seq > this.lastSeq) {
        this.lastSeq = f.seq;
        this.emit('seq', this.lastSeq);
        if (this.lastSeq - this.acked >= ACK_EVERY) this.ack();
      }
      if (dup) return;
    }
    switch (f.type) {
      case 'welcome':
        this.onWelcome(f);
        return;
      case 'ping':
        this.send('pong', f.t !== undefined ? { t: f.t } : {});
        this.ack();
        return;
      case 'drain':
        this.onDrain(f);
        return;
      case 'redacted':
        // A frame the server wiped when the patient it was about went (protocol 5.13): its seq
        // and fid count (above, and in the next ack) so the numbering has no gap; nothing else.
        return;
      case 'error':
        // Not a refusal: what was lost cannot be replayed, so the page rebuilds what it can
        // (a fresh queue snapshot, an ICE restart that renegotiates every peer).
        if (f.name === 'lost') {
          this.emit('resync', f);
          return;
        }
        this.emit(f.type, f);
        return;
      default:
        this.emit(f.type, f);
    }
  }

  ack() {
    if (this.lastSeq > this.acked && this.send('ack', { seq: this.lastSeq })) this.acked = this.lastSeq;
  }

  onWelcome(f) {
    const resumed = f.resumed === true;
    if (!resumed) {
      // A fresh session: numbering starts over, and its frame ids are new.
      this.lastSeq = 0;
      this.acked = 0;
      this.fids.clear();
      this.fidOrder = [];
    }
    if (!resumed) this.outQueue.splice(0, this.queuedBefore);
    this.queuedBefore = 0;
    this.ready = true;
    this.moving = false;
    this.dropSuperseded(resumed);
    this.peer = f.peer;
    this.resumeToken = f.resume;
    this.grace = f.grace;
    this.attempt = 0;
    this.lostAt = 0;
    clearInterval(this.pingTimer);
    // Our own keepalive, well inside the server's 60 s idle limit.
    this.pingTimer = setInterval(() => this.send('ping', { t: Date.now() }), Math.min(f.ping, 25) * 1000);
    this.emit('welcome', { ...f, resumed });
    this.pace();
  }

  // Drain (protocol 5.12): the session moves to another node and must not end on the way. The
  // old connection stays the live one (frames in and out) until the new one's token is here;
  // from then on frames wait for the new one, which resumes the session with what the old one
  // delivered (frames the old one gets meanwhile come back in the replay). The old connection is
  // closed only after the new one's welcome, never with 1000 before it: 1000 ends the session
  // on the server (protocol 4.2), and the resume would find nothing to take.
  async onDrain(f) {
    const urls = (Array.isArray(f.urls) ? f.urls : []).filter(
      (u) => typeof u === 'string' && (u.startsWith('wss://') || u.startsWith('ws://')),
    );
    if (!urls.length || this.stopped || this.moving) return;
    const old = this.ws;
    // Drained again within a minute (the node we moved to drains too, or a rolling restart):
    // each further move waits longer and tries another URL, so that draining nodes do not
    // bounce their clients back and forth at once.
    const now = Date.now();
    this.moves = now - this.drainedAt < DRAIN_AGAIN_MS ? this.moves + 1 : 0;
    this.drainedAt = now;
    const delay = this.moves ? Math.min(DRAIN_BACKOFF_MS * 2 ** (this.moves - 1), 5000) : 0;
    const others = urls.filter((u) => u !== this.url);
    const pick = others.length ? others : urls;
    const target = pick[this.moves % pick.length];
    this.moving = true;
    if (delay) await new Promise((r) => setTimeout(r, delay));
    let token = null;
    if (!this.stopped && this.ws === old) {
      try {
        token = await this.tokenFn();
      } catch {
        token = null;
      }
    }
    this.moving = false;
    // The old connection went meanwhile (4014, 4006: the reconnect schedule has taken over), or
    // the client stopped: nothing left to move.
    if (this.stopped || this.ws !== old || !old) return;
    if (!token) {
      // No token (the app unreachable): stay where we are, which works until the node closes
      // with 4006, and try the move again.
      setTimeout(() => {
        if (this.ws === old) this.onDrain(f);
      }, DRAIN_RETRY_MS);
      return;
    }
    this.moving = true;
    this.superseded.add(old);
    this.open(target, token);
  }

  // After a welcome: the connections a drain left behind go. After a resume the hand-over has
  // normally closed them (4010) already; closing with 4010 ourselves keeps the session either
  // way. After a new session the old one is of no use to us, and 1000 ends it at once instead
  // of leaving our old peer in its room for the grace period.
  dropSuperseded(resumed) {
    for (const ws of this.superseded) ws.close(resumed ? 4010 : 1000);
    this.superseded.clear();
  }

  onClose(ws, code) {
    this.superseded.delete(ws);
    if (ws !== this.ws) return;
    clearInterval(this.pingTimer);
    this.ws = null;
    this.moving = false; // a drain move that failed goes on by the reconnect schedule
    if (this.stopped || FINAL.has(code)) {
      this.emit('closed', { code });
      return;
    }
    if (code === 4010) return; // replaced: another connection carries the session
    this.emit('lost', { code });
    this.retry(code);
  }

  // Reconnects after a growing delay, rotating through the URLs; past the grace period the old
  // session is gone, so the next hello starts a new one. A node that is stopping (4014) has
  // handed its sessions over already (signal.md, "Graceful stop"): the first try goes at once,
  // to the next URL.
  retry(code) {
    if (!this.lostAt) this.lostAt = Date.now();
    if (Date.now() - this.lostAt > this.grace * 1000) this.resumeToken = null;
    const now = code === 4014 && this.attempt === 0;
    const delay = now ? 0 : Math.min(500 * 2 ** this.attempt, 5000);
    this.attempt++;
    const from = Math.max(this.urls.indexOf(this.url), 0);
    const url = this.urls[(from + this.attempt) % this.urls.length];
    setTimeout(() => {
      if (!this.stopped && !this.ws) this.connect(url);
    }, delay);
  }

  // Leave on purpose: no grace period.
  bye() {
    // Leaving: what is still queued no longer matters, and bye cannot wait for the bucket.
    this.outQueue = [];
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ v: 1, type: 'bye', id: this.nextId++ }));
    this.close();
  }

  close() {
    this.stopped = true;
    clearInterval(this.pingTimer);
    clearTimeout(this.paceTimer);
    this.outQueue = [];
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    this.dropSuperseded(false); // leaving: the session ends wherever it is
  }
}
