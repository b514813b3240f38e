// The administration page (A2, A4): finds who is signed in and in which clinics they administer
// or report, then shows one view at a time (#staff, #areas, #reports) for the chosen clinic.
// Views a role cannot use are not offered; the app refuses them anyway (403).
import { api, setCsrf, clinicPath, ApiError } from '../api.js';
import { enrol } from './enrol.js';
import { initStaff, loadStaff } from './staff.js';
import { initAreas, loadAreas } from './areas.js';
import { initReports, loadReports } from './reports.js';
import { initSettings, loadSettings } from './settings.js';
import { initKeeping, loadKeeping } from './keeping.js';
import { $, el, announce, clear } from '../dom.js';

const VIEWS = ['staff', 'areas', 'reports', 'settings'];
const state = { me: null, clinics: new Map(), clinic: null, roles: [] };

function allowed(view) {
  if (state.clinic === null) return false;
  const admin = state.me.operator || state.roles.includes('clinic_admin');
  if (view === 'reports') return admin || state.roles.includes('reporter');
  return admin;
}

function showView(focus) {
  let want = location.hash.slice(1);
  if (!VIEWS.includes(want) || !allowed(want)) want = VIEWS.find(allowed) || null;
  for (const v of VIEWS) {
    $(`v-${v}`).hidden = v !== want;
    const link = $(`nav-${v}`);
    link.parentElement.hidden = !allowed(v);
    if (v === want) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  $('v-none').hidden = want !== null;
  if (want && focus) {
    const h = $(`v-${want}`).querySelector('h2');
    h.tabIndex = -1;
    h.focus();
  }
  return want;
}

// The clinic's name as the app has it now (after an enrolment, a rename); also the probe that
// finds a missing second factor.
async function refreshName(id) {
  const name = (await api('GET', clinicPath(id))).name;
  if (state.clinics.has(id)) state.clinics.get(id).name = name;
  const opt = [...$('clinic').options].find((o) => Number(o.value) === id);
  if (opt) opt.textContent = name;
}

async function chooseClinic(id) {
  try {
    await refreshName(id);
  } catch (e) {
    if (e instanceof ApiError && e.code === 'mfa_enrolment_required') {
      for (const v of VIEWS) $(`v-${v}`).hidden = true;
      $('v-none').hidden = true;
      await enrol();
      await refreshName(id).catch(() => {});
    }
  }
  state.clinic = id;
  state.roles = state.clinics.get(id)?.roles || [];
  $('clinic-name').textContent = state.clinics.get(id)?.name || `Clinic ${id}`;
  const view = showView(false);
  const jobs = [];
  if (allowed('staff')) jobs.push(loadStaff(id), loadAreas(id), loadSettings(id), loadKeeping(id));
  if (allowed('reports')) jobs.push(loadReports(id));
  await Promise.all(jobs);
  announce(`${$('clinic-name').textContent}: ${view ? view : 'nothing to administer'}.`);
}

async function clinicName(id) {
  try {
    return (await api('GET', clinicPath(id))).name;
  } catch {
    return `Clinic ${id}`;
  }
}

async function start() {
  try {
    state.me = await api('GET', '/api/v1/me');
  } catch (e) {
    $('s-signedout').hidden = false;
    $('s-admin').hidden = true;
    if (e.status !== 401) $('signedout-text').textContent = e.message;
    return;
  }
  setCsrf(state.me.csrf_token);
  $('who').textContent = state.me.display_name || state.me.email;
  for (const m of state.me.memberships) {
    const c = state.clinics.get(m.clinic_id) || { roles: [] };
    c.roles.push(m.role);
    state.clinics.set(m.clinic_id, c);
  }
  await Promise.all([...state.clinics.entries()].map(async ([id, c]) => (c.name = await clinicName(id))));
  const sel = $('clinic');
  clear(sel);
  for (const [id, c] of state.clinics) sel.append(el('option', { value: id, text: c.name }));
  $('operator-form').hidden = !state.me.operator;
  initStaff(state);
  initAreas(state);
  initReports(state);
  initKeeping();
  initSettings((c) => {
    state.clinics.get(c.id).name = c.name;
    $('clinic-name').textContent = c.name;
    const opt = [...sel.options].find((o) => Number(o.value) === c.id);
    if (opt) opt.textContent = c.name;
  });
  sel.addEventListener('change', () => chooseClinic(Number(sel.value)));
  $('operator-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = Number($('operator-id').value);
    if (!Number.isInteger(id) || id < 1) return;
    if (!state.clinics.has(id)) {
      state.clinics.set(id, { roles: [], name: await clinicName(id) });
      sel.append(el('option', { value: id, text: state.clinics.get(id).name }));
    }
    sel.value = String(id);
    await chooseClinic(id);
  });
  window.addEventListener('hashchange', () => showView(true));
  $('btn-signout').addEventListener('click', async () => {
    try {
      await api('DELETE', '/api/v1/session');
    } finally {
      location.assign('/');
    }
  });
  $('s-admin').hidden = false;
  if (state.clinics.size > 0) await chooseClinic(Number(sel.value));
  else showView(false);
}

start();
