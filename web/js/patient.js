// The patient's journey (P1-P6): entry page, pre-call check, details and consent, waiting room,
// call, hold, end. Nothing is kept in cookies, localStorage, IndexedDB or Cache storage. For a
// reload to resume the session (P6) the capability token, resume token, last seq and the ids of
// the last frames processed (no name, no answers) sit in sessionStorage under one key, removed
// at the end of the consultation.

import { $, screen, announce, el } from './dom.js';
import { SignalClient } from './signal.js';
import { Mesh } from './mesh.js';
import { patientResync } from './resync.js';
import { patientEnding, patientErrorEnding } from './endings.js';
import { CallUI } from './callui.js';
import { claims } from './api.js';
import { StatsReporter } from './stats.js';
import { getLocalStream, levelMeter, playTone, turnReachable, signalReachable } from './media.js';

const KEY = 'anteroom.resume';
const FIELDS = ['date_of_birth', 'phone', 'email', 'reason', 'interpreter'];

let st = null; // {clinic, area, token, servers, relay_only, profile, resume, last_seq, peers, phase}
let sig = null;
let mesh = null;
let ui = null;
let stream = null;
let area = null;
let stopMeter = () => {};
let reporter = null;

function save() {
  if (st) sessionStorage.setItem(KEY, JSON.stringify(st));
}

function wipe() {
  sessionStorage.removeItem(KEY);
  sessionStorage.clear();
}

function parseFragment() {
  const h = new URLSearchParams(location.hash.slice(1));
  const clinic = h.get('clinic');
  const a = h.get('area');
  const invite = h.get('invite');
  const servers = h.get('servers');
  const monitor = h.get('monitor');
  // The address bar keeps no clinic, area or token (they stay out of history and screenshots).
  history.replaceState(null, '', location.pathname);
  if (invite && servers) return { invite, servers, monitor };
  const ok = (s) => s && /^[A-Za-z0-9._-]{1,64}$/.test(s);
  return ok(clinic) && ok(a) ? { clinic, area: a } : null;
}

// An invite link (C4): a one-time invitee token for one call and the servers, both from the
// fragment. The invitee gives a name (shown to the others) and consents, then joins the room.
async function invited(where) {
  let c;
  try {
    const b = where.servers.replace(/-/g, '+').replace(/_/g, '/');
    st = {
      token: where.invite,
      servers: JSON.parse(atob(b + '='.repeat((4 - (b.length % 4)) % 4))),
      relay_only: false,
      profile: 'standard',
      monitor_token: where.monitor || null,
      resume: null,
      last_seq: 0,
      peers: [],
      phase: 'check',
      invitee: true,
    };
    c = claims(where.invite);
  } catch {
    st = null;
    $('entry-error').textContent = 'This invitation link is damaged. Please ask for a new one.';
    return;
  }
  st.profile = c.profile || 'standard';
  $('entry-h').textContent = 'You are invited to a call';
  $('entry-welcome').textContent = c.lang ? `You join as an interpreter (${c.lang}).` : 'A clinician invited you to join their call.';
  area = { fields_asked: [] };
  for (const p of document.querySelectorAll('.field')) p.hidden = true;
  const btn = $('btn-check');
  btn.disabled = false;
  btn.onclick = async () => {
    btn.disabled = true;
    stream = await getLocalStream().catch(() => new MediaStream());
    screen('s-details');
  };
}

function text(v) {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object') {
    const lang = (navigator.language || 'en').split('-')[0];
    return v[lang] || v.en || Object.values(v)[0] || '';
  }
  return '';
}

async function entry(where) {
  const r = await fetch(`/api/v1/entry/${encodeURIComponent(where.clinic)}/${encodeURIComponent(where.area)}`, { cache: 'no-store' });
  if (!r.ok) {
    $('entry-error').textContent = 'This link does not lead to an open waiting room.';
    return;
  }
  area = await r.json();
  $('entry-h').textContent = `Welcome to ${area.name}`;
  $('entry-welcome').textContent = text(area.welcome);
  $('entry-hours').textContent = area.hours ? `Opening hours: ${area.hours} (${area.time_zone})` : 'Open at any time.';
  if (!area.open_now) {
    $('entry-error').textContent = 'The waiting room is closed now. Please come back during opening hours.';
    return;
  }
  for (const p of document.querySelectorAll('.field')) p.hidden = !area.fields_asked.includes(p.dataset.field);
  const btn = $('btn-check');
  btn.disabled = false;
  btn.onclick = () => check(where);
}

async function check(where) {
  $('btn-check').disabled = true;
  const r = await fetch(`/api/v1/entry/${encodeURIComponent(where.clinic)}/${encodeURIComponent(where.area)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: '{}',
    cache: 'no-store',
  });
  if (!r.ok) {
    $('entry-error').textContent = r.status === 429 ? 'Too many attempts; please wait a minute.' : 'The waiting room cannot take you now.';
    $('btn-check').disabled = false;
    return;
  }
  const e = await r.json();
  // arrive names the clinic and area as the token binds them (ids, not the slug).
  const c = claims(e.token);
  st = {
    clinic: c.clinic,
    area: c.area,
    token: e.token,
    servers: e.servers,
    relay_only: e.relay_only,
    profile: e.profile,
    // The call monitor's token, when the app hands one out (docs/monitor.md).
    monitor_token: e.monitor_token || null,
    resume: null,
    last_seq: 0,
    peers: [],
    phase: 'check',
  };
  $('btn-check-done').onclick = () => {
    stopMeter();
    screen('s-details');
  };
  $('btn-speaker').onclick = playTone;
  screen('s-check');
  const consultation = st;
  const local = await getLocalStream().catch(() => new MediaStream());
  // Ended while the camera was starting (finish() has run): nothing may stay live after it.
  if (st !== consultation) {
    for (const t of local.getTracks()) t.stop();
    return;
  }
  stream = local;
  $('check-video').srcObject = stream;
  // The patient need not wait for the camera: if they went on (even into the call) before it
  // started, the waiting screen and the call get its tracks now, and no meter runs unseen.
  $('wait-video').srcObject = stream;
  mesh?.setStream(stream);
  if (!$('s-check').hidden) stopMeter = levelMeter(stream, (v) => ($('mic-level').value = v));
  const ice = e.servers.ice_servers[0];
  const mark = (id, ok) => ($(id).textContent = ok ? 'reachable' : 'not reachable');
  signalReachable(e.servers.signal[0]).then((ok) => mark('reach-signal', ok));
  if (ice) {
    turnReachable(ice, (u) => u.startsWith('turn:') && u.includes('transport=udp')).then((ok) => mark('reach-turn-udp', ok));
    turnReachable(ice, (u) => u.startsWith('turns:')).then((ok) => mark('reach-turn-tls', ok));
  }
}

function details() {
  $('details-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = $('f-name').value.trim();
    if (!name || !$('f-consent').checked) {
      $('details-error').textContent = 'Please give your name and your consent.';
      return;
    }
    const answers = [];
    for (const f of FIELDS) {
      if (!area.fields_asked.includes(f)) continue;
      const v = $(`f-${f}`).value.trim();
      if (v && answers.length < 4) answers.push({ q: f, a: v });
    }
    st.phase = 'arriving';
    st.arrived_at = st.arrived_at || Date.now();
    if (st.invitee) {
      connect(null, name);
      $('details-form').reset();
      return;
    }
    if (sig) {
      // Signalling started a new session (the old one was lost): arrive again on it.
      sig.send('arrive', { clinic: st.clinic, area: st.area, name, answers, consent: true });
      waiting('Connecting…');
    } else connect({ name, answers });
    // What the patient typed leaves the form as soon as it is sent.
    $('details-form').reset();
  });
}

function connect(arrival, name) {
  sig = new SignalClient({
    urls: st.servers.signal,
    name,
    token: () => st.token,
    resume: st.resume,
    lastSeq: st.last_seq,
    // The frame ids seen before a reload: a resume after a node's death may replay some of
    // them, and the client drops those by id (docs/protocol.md 5.10.1).
    fids: st.fids || [],
  });
  sig.addEventListener('seq', (e) => {
    st.last_seq = e.detail;
    save();
  });
  // Every frame processed, also one replayed at or below last seq (no 'seq' then).
  sig.addEventListener('fid', () => {
    st.fids = sig.recentFids();
    save();
  });
  sig.addEventListener('welcome', (e) => {
    st.resume = e.detail.resume;
    // A new session (the resume was refused) numbers from 1 with new frame ids: the old
    // session's would make a reload's resume ask for frames this one never had.
    if (!e.detail.resumed) {
      st.last_seq = 0;
      st.fids = [];
    }
    save();
    if (e.detail.resumed) {
      // Same page (a network drop, or the node's death): ICE restarts on the live connections
      // that need one. After a reload there are none: new ones to everyone still in the room.
      if (mesh) mesh.restartUnsettled();
      else if (st.phase === 'call') resumeCall();
      else if (st.phase === 'hold') waiting('You are on hold. Please stay on this page.');
      else waiting('You are in the waiting room.');
      return;
    }
    if (arrival) {
      sig.send('arrive', { clinic: st.clinic, area: st.area, name: arrival.name, answers: arrival.answers, consent: true });
      arrival = null;
    } else if (st.invitee) {
      st.phase = 'call';
      save();
      sig.send('join', { room: claims(st.token).room });
      waiting('Joining the call…');
    } else if (st.phase === 'call') {
      // The old session is gone but the room may not be: back into it (the token opens it).
      sig.send('join', { room: claims(st.token).room });
    } else {
      // The old session and its queue place are gone, and the name was never kept here: ask
      // for the details again.
      $('details-error').textContent = 'The connection was lost for too long. Please enter your details again.';
      screen('s-details');
    }
  });
  sig.addEventListener('wait', (e) => onWait(e.detail));
  sig.addEventListener('message', (e) => {
    $('wait-messages').append(el('li', { text: e.detail.text }));
    announce(`Message from the clinic: ${e.detail.text}`);
  });
  sig.addEventListener('joined', (e) => {
    // Back in the room after a new session: fresh connections to everyone there.
    ensureMesh();
    mesh.close();
    st.peers = [];
    for (const p of e.detail.peers) {
      st.peers.push(p.peer);
      mesh.add(p, true);
    }
    save();
    showCall();
  });
  sig.addEventListener('peer_joined', (e) => {
    ensureMesh();
    addPeer(e.detail);
  });
  sig.addEventListener('peer_left', (e) => {
    // "removed" (staff took them out, or a racing fifth joiner): their tile goes like any leave.
    mesh?.remove(e.detail.peer);
    st.peers = st.peers.filter((p) => p !== e.detail.peer);
    save();
  });
  sig.addEventListener('hold', (e) => {
    if (e.detail.on) mesh?.remove(e.detail.peer);
  });
  sig.addEventListener('offer', (e) => {
    ensureMesh();
    if (!st.peers.includes(e.detail.from)) st.peers.push(e.detail.from);
    save();
    showCall();
    mesh.onOffer(e.detail);
  });
  sig.addEventListener('answer', (e) => mesh?.onAnswer(e.detail));
  sig.addEventListener('candidate', (e) => mesh?.onCandidate(e.detail));
  sig.addEventListener('quality', (e) => mesh?.applyProfile(e.detail.profile));
  sig.addEventListener('ended', () => finish());
  sig.addEventListener('closed', (e) => {
    const end = patientEnding(e.detail.code, { active: !!st, invitee: !!st?.invitee });
    if (end) finish(end.msg);
  });
  sig.addEventListener('error', (e) => {
    // Full, before or after `joined` (two joins racing on two nodes can both be answered and the
    // later one is taken out again), or an invitation into another clinic's room (protocol
    // 5.7): leave the call screen and say why.
    const end = patientErrorEnding(e.detail, { active: !!st, invitee: !!st?.invitee });
    if (end) {
      finish(end.msg);
      return;
    }
    if (e.detail.name === 'room_full') return;
    if (e.detail.about === 'arrive') {
      $('details-error').textContent = e.detail.name === 'closed' ? 'The waiting room is closed now.' : 'The waiting room cannot take you now.';
      screen('s-details');
    }
  });
  // Frames for this session were lost (protocol 5.10): ask for its own status again and, in a
  // call, renegotiate with every peer (resync.js).
  sig.addEventListener('resync', () => patientResync(sig, st, mesh));
  sig.addEventListener('lost', () => ($('wait-status').textContent = 'Reconnecting…'));
  sig.connect();
  screen('s-wait');
  $('wait-video').srcObject = stream;
}

function ensureMesh() {
  if (mesh) return;
  mesh = new Mesh({
    signal: sig,
    iceServers: st.servers.ice_servers,
    relayOnly: st.relay_only,
    stream: stream || new MediaStream(),
    profile: st.profile,
  });
  ui = new CallUI(mesh, 'You');
}

function addPeer(info) {
  if (!st.peers.includes(info.peer)) st.peers.push(info.peer);
  save();
  const p = mesh.add(info, false);
  p.info = { ...p.info, ...info };
}

function showCall() {
  if (st.phase === 'call' && !$('call').hidden) return;
  st.phase = 'call';
  save();
  screen('call');
  ui.start();
  if (!reporter && st.servers.monitor && st.monitor_token)
    reporter = new StatsReporter(st.servers.monitor, st.monitor_token, mesh, (Date.now() - (st.arrived_at || Date.now())) / 1000);
}

function waiting(status) {
  screen('s-wait');
  $('wait-status').textContent = status;
  $('wait-video').srcObject = stream;
}

function onWait(f) {
  // A resync (resync.js) repeats the status the page may already show: announced only on change.
  const was = st.phase;
  if (f.status === 'waiting') {
    st.phase = 'waiting';
    waiting('You are in the waiting room. The clinic knows you are here.');
    if (was !== 'waiting') announce('You are in the waiting room.');
  } else if (f.status === 'hold') {
    st.phase = 'hold';
    // No peer connection survives a hold: nobody can see or hear the patient.
    mesh?.close();
    ui?.stop();
    waiting('You are on hold. Please stay on this page.');
    if (was !== 'hold') announce('You are on hold.');
  } else if (f.status === 'seen') {
    ensureMesh();
    showCall();
    if (was !== 'call') announce('The clinician is joining.');
  }
  save();
}

// After a reload mid-call: new peer connections to everyone still in the room, as ICE restarts
// (the other side replaces its connection when our new certificate does not fit the old one).
async function resumeCall() {
  stream = stream || (await getLocalStream().catch(() => new MediaStream()));
  ensureMesh();
  showCall();
  for (const id of st.peers) mesh.add({ peer: id, role: 'staff' }, true);
}

function finish(msg) {
  reporter?.stop();
  reporter = null;
  wipe();
  st = null;
  if (sig) sig.close();
  mesh?.close();
  ui?.clear();
  stopMeter();
  $('wait-messages').replaceChildren();
  if (stream) for (const t of stream.getTracks()) t.stop();
  if (msg) $('end-text').textContent = msg;
  screen('s-end');
  announce('The consultation has ended.');
}

async function main() {
  // A clinic link opened in a tab already showing this page changes only the fragment: start
  // over so it is read (and removed from the address bar).
  window.addEventListener('hashchange', () => location.reload());
  details();
  $('btn-leave').addEventListener('click', () => {
    sig?.bye();
    finish('You left the waiting room.');
  });
  $('btn-hangup').addEventListener('click', () => {
    sig?.bye();
    finish('You left the call.');
  });
  const saved = sessionStorage.getItem(KEY);
  const where = parseFragment();
  if (saved && !where) {
    st = JSON.parse(saved);
    stream = await getLocalStream().catch(() => new MediaStream());
    connect(null);
    return;
  }
  wipe();
  if (!where) {
    $('entry-error').textContent = 'Please open the link your clinic gave you.';
    return;
  }
  if (where.invite) await invited(where);
  else await entry(where);
}

main();
