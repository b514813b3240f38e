// The clinician's page (C1-C7): sign-in with the second step or TOTP enrolment, a dashboard of
// waiting areas with live queue cards, admit after a confirmation, message, hold, transfer, the
// call with the quality profile, end; persistent clinic rooms.

import { $, screen, announce, el, fmtWait } from './dom.js';
import { api, setCsrf, claims, ApiError, onEnrolmentRequired } from './api.js';
import { SignalClient } from './signal.js';
import { TokenRefresher } from './tokenrefresh.js';
import { Mesh } from './mesh.js';
import { CallUI } from './callui.js';
import { getLocalStream, playTone } from './media.js';
import { StatsReporter } from './stats.js';
import { attachKeeping, detachKeeping } from './keeping.js';

let me = null;
let clinics = []; // [{id, areas: [...], rooms: [...], token, servers}]
const sigs = new Map(); // jurisdiction -> {sig, servers}
const queue = new Map(); // peer -> {entry, clinic, area, sig}
let call = null; // {sig, servers, mesh, ui, room, patient}
let stream = null;

// ---- sign-in ----

function signin() {
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('signin-error').textContent = '';
    try {
      const r = await api('POST', '/api/v1/session', { email: $('email').value.trim(), password: $('password').value });
      $('password').value = '';
      if (r.mfa_required) {
        totp(r.mfa_token);
        return;
      }
      setCsrf(r.csrf_token);
      await afterSignin();
    } catch (e) {
      $('signin-error').textContent =
        e.code === 'rate_limited' ? 'Too many attempts; wait a little.' : e.code === 'account_locked' ? 'This account is locked for now.' : 'Wrong email or password.';
    }
  });
}

function totp(mfaToken) {
  screen('s-totp');
  $('totp-form').onsubmit = async (ev) => {
    ev.preventDefault();
    const code = $('totp-code').value.trim();
    const body = /^[0-9]{6}$/.test(code) ? { mfa_token: mfaToken, code } : { mfa_token: mfaToken, recovery_code: code };
    try {
      const r = await api('POST', '/api/v1/session/mfa', body);
      $('totp-code').value = '';
      setCsrf(r.csrf_token);
      await afterSignin();
    } catch {
      $('totp-error').textContent = 'That code did not work. Wait for a new one and try again.';
    }
  };
}

async function enrol() {
  const r = await api('POST', '/api/v1/me/totp');
  screen('s-enrol');
  const svg = new DOMParser().parseFromString(r.qr_svg, 'image/svg+xml').documentElement;
  $('enrol-qr').replaceChildren(document.importNode(svg, true));
  $('enrol-secret').textContent = r.secret;
  await new Promise((resolve) => {
    $('enrol-form').onsubmit = async (ev) => {
      ev.preventDefault();
      try {
        const c = await api('POST', '/api/v1/me/totp/confirm', { code: $('enrol-code').value.trim() });
        $('enrol-code').value = '';
        screen('s-recovery');
        $('recovery-codes').replaceChildren(...c.recovery_codes.map((x) => el('li', { text: x })));
        $('btn-recovery-done').onclick = resolve;
      } catch {
        $('enrol-error').textContent = 'That code did not work. Check the time on your phone and try the next one.';
      }
    };
  });
}

async function afterSignin() {
  me = await api('GET', '/api/v1/me');
  setCsrf(me.csrf_token);
  // An account that must enrol a second factor first (a new clinician, or the first operator,
  // who has no clinic to probe): straight to enrolment.
  if (me.mfa_enrolment_required) {
    await enrol();
    return afterSignin();
  }
  const ids = [...new Set(me.memberships.map((m) => m.clinic_id))];
  clinics = [];
  for (const id of ids) {
    let areas;
    try {
      areas = (await api('GET', `/api/v1/clinics/${id}/areas`)).areas;
    } catch (e) {
      if (e instanceof ApiError && e.code === 'mfa_enrolment_required') {
        await enrol();
        return afterSignin();
      }
      throw e;
    }
    const rooms = await api('GET', `/api/v1/clinics/${id}/rooms`).then((r) => r.rooms).catch(() => []);
    clinics.push({ id: String(id), areas, rooms });
  }
  await dashboard();
}

// ---- signalling, one connection per jurisdiction ----

async function tokens() {
  return (await api('GET', '/api/v1/signal-token')).tokens;
}

// This jurisdiction's token from the app now; null when the account has none there any more.
async function tokenFor(jurisdiction) {
  return (await tokens()).find((x) => x.jurisdiction === jurisdiction)?.token ?? null;
}

// Staff tokens live 10 minutes and a session may stay up all day: the session's token is renewed
// in place (`refresh`, protocol 5.15) at 80% of its life; a sign-in's tokens share their subject,
// so a resume may present any of them. Without a token from the app (roles withdrawn, signed out)
// the refreshing stops and the server closes the session once the token it holds has expired.
function keepFresh(entry, first, fetchToken, onToken) {
  const r = new TokenRefresher({ sig: entry.sig, token: first, fetchToken, claims });
  r.addEventListener('token', (e) => onToken?.(e.detail));
  entry.refresher = r;
  return r;
}

// The queue cards of clinics this connection's token no longer names go (the server has
// unsubscribed them: no more frames come for them).
function dropUnheld(entry) {
  for (const [peer, q] of queue)
    if (q.sig === entry.sig && !entry.clinics.includes(q.clinic)) {
      q.card.remove();
      queue.delete(peer);
    }
}

async function connectAll() {
  const list = await tokens();
  for (const t of list) {
    const held = Object.keys(claims(t.token).clinics || {});
    let r = null;
    const sig = new SignalClient({
      urls: t.servers.signal,
      name: me.display_name.slice(0, 64),
      // The refreshed token (the same subject as every token of this sign-in), or a new one
      // from the app when it is about to expire (the connection was down at refresh time).
      token: async () => {
        if (claims(r.current).exp - Date.now() / 1000 < 30) {
          const next = await tokenFor(t.jurisdiction);
          if (!next) throw new Error('no token for this jurisdiction');
          r.current = next;
        }
        return r.current;
      },
    });
    // snapOpen: areas whose queue snapshot is still coming (its last page had `more`).
    const entry = { sig, servers: t.servers, clinics: held, monitorToken: t.monitor_token || null,
      snapOpen: new Set() };
    r = keepFresh(entry, t.token, () => tokenFor(t.jurisdiction), (tok) => {
      entry.clinics = Object.keys(claims(tok).clinics || {});
      dropUnheld(entry);
    });
    const changed = () => ($('dash-status').textContent = 'Your access to these clinics has changed: sign in again.');
    r.addEventListener('revoked', changed);
    sig.addEventListener('closed', (e) => e.detail.code === 4001 && changed());
    sigs.set(t.jurisdiction, entry);
    wire(entry);
    sig.connect();
  }
}

// Every waiting area of the clinics this connection's token names; a subscription answers with
// the whole queue first, so subscribing again resynchronises it.
function subscribeAll(entry) {
  for (const c of clinics)
    if (entry.clinics.includes(c.id)) for (const a of c.areas) entry.sig.send('subscribe', { clinic: c.id, area: String(a.id) });
}

function wire(entry) {
  const { sig } = entry;
  sig.addEventListener('welcome', (e) => {
    $('dash-status').textContent = 'Connected.';
    if (e.detail.resumed) {
      if (call?.sig === sig) call.mesh?.restartUnsettled();
      // A queue snapshot the lost connection cut short does not go on (protocol 5.2): again.
      for (const k of entry.snapOpen) {
        const [clinic, area] = JSON.parse(k);
        sig.send('subscribe', { clinic, area });
      }
      return;
    }
    // A new session: the old one's room membership is gone. Back into the call's room (staff
    // may join a room of their clinic), with fresh peer connections.
    if (call?.sig === sig && call.room) {
      call.mesh?.close();
      call.rejoining = true;
      sig.send('join', { room: call.room });
    }
    subscribeAll(entry);
  });
  // Frames for this session were lost (protocol 5.10): a fresh queue snapshot, and the call's
  // peers renegotiated.
  sig.addEventListener('resync', () => {
    if (call?.sig === sig) call.mesh?.restart();
    subscribeAll(entry);
  });
  sig.addEventListener('lost', () => ($('dash-status').textContent = 'Reconnecting…'));
  sig.addEventListener('queue', (e) => {
    const k = JSON.stringify([e.detail.clinic, e.detail.area]);
    if (e.detail.more) entry.snapOpen.add(k);
    else entry.snapOpen.delete(k);
    for (const en of e.detail.entries) upsert(entry, e.detail.clinic, e.detail.area, en, false);
  });
  sig.addEventListener('queue_add', (e) => upsert(entry, e.detail.clinic, e.detail.area, e.detail.entry, true));
  sig.addEventListener('queue_update', (e) => {
    const q = queue.get(e.detail.peer);
    if (!q) return;
    Object.assign(q.entry, { status: e.detail.status, by: e.detail.by, by_name: e.detail.by_name });
    render(q);
  });
  sig.addEventListener('queue_remove', (e) => {
    const q = queue.get(e.detail.peer);
    if (!q || q.area !== e.detail.area) return;
    q.card.remove();
    queue.delete(e.detail.peer);
    announce(`${q.entry.name} left the queue (${e.detail.reason})`);
  });
  sig.addEventListener('joined', (e) => startCall(entry, e.detail));
  sig.addEventListener('peer_joined', (e) => {
    if (call && call.sig === sig) call.mesh.add(e.detail, false);
  });
  sig.addEventListener('peer_left', (e) => {
    if (!call || call.sig !== sig) return;
    // A colleague took us out of the room (protocol 5.7.1), or the server did because our
    // refreshed token no longer allows it ("revoked", 5.15): the session stays, the call is over.
    if (e.detail.peer === sig.peer) {
      // A removal names the room it was made for, and our stay in it (joined's): one from a
      // room we have left since, or from an earlier stay in this one (we left and joined it
      // again), arriving after we joined, is not about this call: the server left us here.
      if (e.detail.room && call.room && e.detail.room !== call.room) return;
      if (e.detail.stay && call.stay && e.detail.stay !== call.stay) return;
      endCall(e.detail.reason === 'revoked'
        ? 'Your access to this clinic was withdrawn: you have left the call.'
        : 'A colleague removed you from the call.');
      return;
    }
    // A transfer takes the staff out of the patient's room: they are told the patient was
    // "removed" (protocol 5.6), and the call is over for them.
    if (e.detail.reason === 'removed' && e.detail.peer === call.patient) {
      endCall('The patient was moved to another waiting area.');
      return;
    }
    call.mesh.remove(e.detail.peer);
  });
  sig.addEventListener('hold', (e) => {
    if (!call || call.sig !== sig) return;
    if (e.detail.on) call.mesh.remove(e.detail.peer);
    else if (call.patient === e.detail.peer) call.mesh.add({ peer: e.detail.peer, role: 'patient', name: call.patientName }, true);
    $('btn-hold-call').textContent = e.detail.on ? 'Take patient off hold' : 'Put patient on hold';
    call.held = e.detail.on;
  });
  sig.addEventListener('offer', (e) => call?.mesh.onOffer(e.detail));
  sig.addEventListener('answer', (e) => call?.mesh.onAnswer(e.detail));
  sig.addEventListener('candidate', (e) => call?.mesh.onCandidate(e.detail));
  sig.addEventListener('quality', (e) => {
    call?.mesh.applyProfile(e.detail.profile);
    $('sel-profile').value = e.detail.profile;
  });
  sig.addEventListener('ended', () => endCall());
  sig.addEventListener('error', (e) => {
    const f = e.detail;
    // Rejoining after a new session: the room comes back when the patient rejoins it first.
    if (f.about === 'join' && f.name === 'not_found' && call?.rejoining && (call.tries = (call.tries || 0) + 1) < 20) {
      setTimeout(() => call?.rejoining && sig.send('join', { room: call.room }), 1000);
      return;
    }
    // A fifth participant can be answered `joined` and taken out again just after (two joins
    // racing on two nodes, protocol 5.7): leave the call screen and say why.
    if (f.name === 'room_full') {
      const why = 'The call is full: it already has four participants.';
      if (call) endCall(why);
      else $('dash-status').textContent = why;
      return;
    }
    $('dash-status').textContent = `Refused: ${f.name}${f.about ? ` (${f.about})` : ''}`;
  });
}

// ---- dashboard ----

async function dashboard() {
  screen('s-dash');
  const box = $('areas');
  box.replaceChildren();
  for (const c of clinics)
    for (const a of c.areas) {
      const link = `${location.origin}/patient.html#clinic=${encodeURIComponent(c.id)}&area=${encodeURIComponent(a.slug)}`;
      box.append(
        el(
          'section',
          { class: 'area', 'data-area': a.id, 'data-clinic': c.id, 'aria-label': a.name },
          el('h2', { text: a.name }),
          el('p', {}, 'Patient link: ', el('code', { text: link, 'data-testid': 'entry-link' })),
          el('ul', { class: 'queue', 'data-testid': 'queue', 'aria-label': `Patients waiting in ${a.name}` }),
        ),
      );
    }
  const rooms = $('rooms');
  rooms.replaceChildren();
  for (const c of clinics)
    for (const r of c.rooms)
      rooms.append(el('li', {}, `${r.name} `, el('button', { type: 'button', 'data-room': r.room || r.id, text: `Enter ${r.name}`, onclick: () => enterRoom(c, r) })));
  setInterval(() => {
    for (const q of queue.values()) q.card.querySelector('.since').textContent = fmtWait(q.entry.since);
  }, 1000);
  await connectAll();
}

function areaName(clinic, area) {
  const c = clinics.find((x) => x.id === clinic);
  const a = c?.areas.find((x) => String(x.id) === area);
  return a ? a.name : area;
}

function upsert(entry, clinic, area, en, fresh) {
  let q = queue.get(en.peer);
  if (q && q.area !== area) {
    q.card.remove();
    q = null;
  }
  if (!q) {
    q = { entry: en, clinic, area, sig: entry.sig, card: el('li', { class: 'queue-card', 'data-testid': 'queue-card', 'data-peer': en.peer }) };
    queue.set(en.peer, q);
    const list = document.querySelector(`.area[data-area="${CSS.escape(area)}"] .queue`);
    if (list) list.append(q.card);
  }
  q.entry = en;
  render(q);
  if (fresh) arrival(q);
}

function arrival(q) {
  const text = `${q.entry.name} arrived in ${areaName(q.clinic, q.area)}`;
  announce(text);
  playTone();
  if ('Notification' in window && Notification.permission === 'granted') new Notification('Anteroom', { body: 'A patient is waiting.' });
}

function render(q) {
  const e = q.entry;
  const status = e.status === 'seen' ? `with ${e.by_name || 'a clinician'}` : e.status === 'hold' ? 'on hold' : 'waiting';
  const c = clinics.find((x) => x.id === q.clinic);
  const others = (c?.areas || []).filter((a) => String(a.id) !== q.area);
  const sel = el('select', { 'aria-label': `Transfer ${e.name} to`, 'data-action': 'transfer-to' }, ...others.map((a) => el('option', { value: a.id, text: a.name })));
  q.card.dataset.status = e.status;
  q.card.replaceChildren(
    el('strong', { text: e.name, 'data-testid': 'queue-name' }),
    ' ',
    el('span', { class: 'status', text: status }),
    ' · waiting ',
    el('span', { class: 'since', text: fmtWait(e.since) }),
    el('ul', { class: 'answers' }, ...(e.answers || []).map((a) => el('li', { text: `${a.q.replace(/_/g, ' ')}: ${a.a}` }))),
    el(
      'div',
      { role: 'group', 'aria-label': `Actions for ${e.name}` },
      el('button', { type: 'button', 'data-action': 'admit', text: `Admit ${e.name}`, disabled: e.status !== 'waiting' || !!call, onclick: () => admit(q) }),
      el('button', { type: 'button', 'data-action': 'message', text: 'Message', onclick: () => message(q) }),
      el('button', { type: 'button', 'data-action': 'hold', text: e.status === 'hold' ? 'Resume' : 'Hold', disabled: e.status === 'waiting', onclick: () => q.sig.send('hold', { peer: e.peer, on: e.status !== 'hold' }) }),
      others.length ? sel : '',
      others.length ? el('button', { type: 'button', 'data-action': 'transfer', text: 'Transfer', onclick: () => q.sig.send('transfer', { peer: e.peer, area: String(sel.value) }) }) : '',
    ),
  );
}

function admit(q) {
  const d = $('confirm');
  $('confirm-text').textContent = `${q.entry.name}, waiting in ${areaName(q.clinic, q.area)}. Check this is the patient you expect before joining.`;
  d.returnValue = '';
  d.onclose = () => {
    if (d.returnValue !== 'ok') return;
    q.sig.send('take', { peer: q.entry.peer });
    call = { sig: q.sig, patient: q.entry.peer, patientName: q.entry.name, pending: true };
  };
  d.showModal();
}

function message(q) {
  const d = $('msg-dialog');
  d.returnValue = '';
  d.onclose = () => {
    const text = $('msg-text').value.trim();
    $('msg-text').value = '';
    if (d.returnValue === 'ok' && text) q.sig.send('message', { to: q.entry.peer, text: text.slice(0, 500) });
  };
  d.showModal();
}

// C6: a persistent room opens with a token naming it (GET .../rooms/{id}/signal-token), on a
// signalling session of its own that lives as long as the visit to the room.
async function enterRoom(c, r) {
  if (call) return;
  call = { pending: true, clinic: c.id, own: true };
  let t;
  try {
    t = await api('GET', `/api/v1/clinics/${c.id}/rooms/${r.id}/signal-token`);
  } catch {
    call = null;
    $('dash-status').textContent = 'The room cannot be entered now.';
    return;
  }
  const sig = new SignalClient({ urls: t.servers.signal, name: me.display_name.slice(0, 64), token: () => entry.refresher.current });
  const entry = { sig, servers: t.servers, clinics: [], monitorToken: t.monitor_token || null };
  // The room's token renewed from the same route; 403/404 (no role there any more, the room
  // deleted): none, and the server ends the session when the token it holds expires.
  keepFresh(entry, t.token, () =>
    api('GET', `/api/v1/clinics/${c.id}/rooms/${r.id}/signal-token`).then(
      (x) => x.token,
      (e) => {
        if (e instanceof ApiError && (e.status === 403 || e.status === 404)) return null;
        throw e;
      },
    ),
  );
  call.sig = sig;
  wire(entry);
  sig.addEventListener('welcome', (e) => {
    if (!e.detail.resumed && !call?.room) sig.send('join', { room: t.room });
  });
  sig.connect();
}

// ---- the call ----

async function startCall(entry, j) {
  if (call?.rejoining && call.mesh) {
    call.rejoining = false;
    call.stay = j.stay;
    for (const p of j.peers) if (!p.hold) call.mesh.add(p, true);
    return;
  }
  stream = stream || (await getLocalStream().catch(() => new MediaStream()));
  const mesh = new Mesh({ signal: entry.sig, iceServers: entry.servers.ice_servers, relayOnly: false, stream, profile: j.profile });
  const ui = new CallUI(mesh, me.display_name);
  call = { ...(call || {}), sig: entry.sig, servers: entry.servers, mesh, ui, room: j.room, stay: j.stay };
  const pt = j.peers.find((p) => p.role === 'patient');
  if (pt) {
    call.patient = pt.peer;
    call.patientName = pt.name;
  }
  // The area's relay-only rule reaches staff through the area list.
  const q = queue.get(call.patient);
  if (q) {
    const a = clinics.find((x) => x.id === q.clinic)?.areas.find((x) => String(x.id) === q.area);
    mesh.relayOnly = !!a?.relay_only;
  }
  call.clinic = q?.clinic || call.clinic || entry.clinics[0];
  $('invite-link').value = '';
  $('invite-error').textContent = '';
  $('sel-profile').value = j.profile;
  screen('call');
  ui.start();
  attachKeeping(ui, call.clinic);
  if (entry.servers.monitor && entry.monitorToken) call.reporter = new StatsReporter(entry.servers.monitor, entry.monitorToken, mesh);
  for (const p of j.peers) if (!p.hold) mesh.add(p, true);
}

function endCall(why) {
  if (!call) return;
  call.reporter?.stop();
  if (call.own) call.sig?.bye(); // the persistent room's own session
  call.mesh?.close();
  call.ui?.clear();
  detachKeeping();
  call = null;
  if (stream) for (const t of stream.getTracks()) t.stop();
  stream = null;
  screen('s-dash');
  for (const q of queue.values()) render(q);
  if (why) $('dash-status').textContent = why;
  announce(why || 'The consultation has ended.');
}

// C4: a one-time link for a third or fourth participant (an interpreter gets a language).
async function invite() {
  if (!call?.room || !call.clinic) return;
  const lang = $('invite-lang').value.trim();
  $('invite-error').textContent = '';
  try {
    const r = await api('POST', `/api/v1/clinics/${call.clinic}/invite-token`, lang ? { room: call.room, lang } : { room: call.room });
    $('invite-link').value = location.origin + r.link;
    $('invite-link').select();
    announce('Invite link ready: pass it on; it works once.');
  } catch (e) {
    $('invite-error').textContent = e.code === 'invalid' ? 'The language must be a tag such as uk or pt-BR.' : 'No invite link could be made.';
  }
}

function callControls() {
  $('sel-profile').addEventListener('change', () => call?.sig.send('quality', { profile: $('sel-profile').value }));
  $('btn-end').addEventListener('click', () => call?.sig.send('end'));
  $('btn-leave-call').addEventListener('click', () => {
    call?.sig.send('leave');
    endCall();
  });
  $('btn-invite').addEventListener('click', invite);
  $('btn-hold-call').addEventListener('click', () => {
    if (call?.patient) call.sig.send('hold', { peer: call.patient, on: !call.held });
  });
  $('btn-notify').addEventListener('click', () => {
    if ('Notification' in window) Notification.requestPermission();
  });
  $('btn-signout').addEventListener('click', async () => {
    for (const s of sigs.values()) s.sig.bye();
    await api('DELETE', '/api/v1/session').catch(() => {});
    location.reload();
  });
}

// A reload keeps the session (the cookie lives as long as the browser session): go straight to
// the dashboard when it is still valid.
async function main() {
  // Any clinic route may answer 403 mfa_enrolment_required (a second factor reset by an admin
  // while signed in, for one): enrol, then back to the screen that was showing.
  onEnrolmentRequired(async () => {
    const was = document.querySelector('.screen:not([hidden])')?.id;
    await enrol();
    if (was) screen(was);
  });
  signin();
  callControls();
  const r = await fetch('/api/v1/me', { cache: 'no-store' }).catch(() => null);
  if (r && r.ok) await afterSignin().catch(() => screen('s-signin'));
}

main();
