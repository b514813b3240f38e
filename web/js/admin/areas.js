// Waiting areas (create, edit, delete: slug, name, time zone, hours, welcome text, questions
// asked, quality profile, relay-only) and persistent rooms of a clinic.
import { api, clinicPath } from '../api.js';
import { $, el, announce, showError, clear } from '../dom.js';

const QUESTIONS = [
  ['name', 'Name'],
  ['date_of_birth', 'Date of birth'],
  ['phone', 'Phone'],
  ['reason', 'Reason for the visit'],
  ['email', 'Email'],
  ['interpreter', 'Interpreter needed'],
];

let clinic = null;
let editing = null; // the slug being edited, or null when creating

export function initAreas(state) {
  const qs = $('area-questions');
  for (const [v, label] of QUESTIONS)
    qs.append(el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'q', value: v, id: `area-q-${v}` }), ` ${label}`));
  const zones = $('area-tz-list');
  const all = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : ['UTC'];
  for (const z of all) zones.append(el('option', { value: z }));
  $('area-form').addEventListener('submit', onSave);
  $('area-cancel').addEventListener('click', () => resetForm(true));
  $('room-form').addEventListener('submit', onRoom);
  resetForm(false);
  void state;
}

export async function loadAreas(clinicId) {
  clinic = clinicId;
  resetForm(false);
  await Promise.all([listAreas(), listRooms()]);
}

async function listAreas() {
  const list = $('area-list');
  clear(list);
  showError('areas-error', null);
  try {
    const { areas } = await api('GET', clinicPath(clinic, 'areas'));
    if (areas.length === 0) list.append(el('li', { text: 'No waiting areas yet.' }));
    for (const a of areas) list.append(areaCard(a));
    return areas;
  } catch (e) {
    showError('areas-error', e);
    return [];
  }
}

function entryLink(a) {
  const p = new URLSearchParams({ clinic: String(clinic), area: a.slug });
  return `${location.origin}/patient.html#${p}`;
}

function areaCard(a) {
  const h = `area-h-${a.slug}`;
  const facts = el(
    'dl',
    { class: 'facts' },
    el('dt', { text: 'Entry link' }),
    el('dd', {}, el('code', { text: entryLink(a) })),
    el('dt', { text: 'Time zone' }),
    el('dd', { text: a.time_zone }),
    el('dt', { text: 'Hours' }),
    el('dd', { text: a.hours || 'always open' }),
    el('dt', { text: 'Questions' }),
    el('dd', { text: a.fields_asked || 'none' }),
    el('dt', { text: 'Quality' }),
    el('dd', { text: a.profile }),
    el('dt', { text: 'Relay only' }),
    el('dd', { text: a.relay_only ? 'yes' : 'no' }),
  );
  return el(
    'li',
    { class: 'card', 'data-testid': 'area', 'data-slug': a.slug },
    el('h3', { id: h, text: `${a.name} (${a.slug})` }),
    facts,
    el(
      'p',
      { class: 'actions' },
      el('button', { type: 'button', text: 'Edit', 'aria-describedby': h, onclick: () => edit(a) }),
      ' ',
      el('button', {
        type: 'button',
        class: 'danger',
        text: 'Delete',
        'aria-describedby': h,
        onclick: () => remove(a),
      }),
    ),
  );
}

function resetForm(focus) {
  editing = null;
  const f = $('area-form');
  f.reset();
  $('area-slug').disabled = false;
  $('area-form-h').textContent = 'New waiting area';
  $('area-save').textContent = 'Create waiting area';
  $('area-cancel').hidden = true;
  $('area-tz').value = 'UTC';
  $('area-profile').value = 'standard';
  $('area-q-name').checked = true;
  showError('area-error', null);
  if (focus) $('area-form-h').focus();
}

function edit(a) {
  resetForm(false);
  editing = a.slug;
  $('area-form-h').textContent = `Edit ${a.name}`;
  $('area-save').textContent = 'Save changes';
  $('area-cancel').hidden = false;
  $('area-slug').value = a.slug;
  $('area-slug').disabled = true;
  $('area-name').value = a.name;
  $('area-tz').value = a.time_zone;
  $('area-hours').value = a.hours;
  $('area-welcome').value = a.welcome;
  $('area-profile').value = a.profile;
  $('area-relay').checked = a.relay_only;
  const asked = new Set((a.fields_asked || '').split(',').filter(Boolean));
  for (const [v] of QUESTIONS) $(`area-q-${v}`).checked = asked.has(v);
  $('area-form-h').focus();
}

async function onSave(ev) {
  ev.preventDefault();
  showError('area-error', null);
  const body = {
    name: $('area-name').value.trim(),
    time_zone: $('area-tz').value.trim(),
    hours: $('area-hours').value.trim(),
    welcome: $('area-welcome').value,
    fields_asked: QUESTIONS.map(([v]) => v).filter((v) => $(`area-q-${v}`).checked).join(','),
    profile: $('area-profile').value,
    relay_only: $('area-relay').checked,
  };
  try {
    if (editing) {
      await api('PATCH', clinicPath(clinic, `areas/${encodeURIComponent(editing)}`), body);
      announce(`Waiting area ${body.name} saved.`);
    } else {
      body.slug = $('area-slug').value.trim();
      await api('POST', clinicPath(clinic, 'areas'), body);
      announce(`Waiting area ${body.name} created.`);
    }
    resetForm(false);
    await listAreas();
  } catch (e) {
    showError('area-error', e);
  }
}

async function remove(a) {
  if (!confirm(`Delete the waiting area ${a.name}? Its entry link stops working.`)) return;
  try {
    await api('DELETE', clinicPath(clinic, `areas/${encodeURIComponent(a.slug)}`));
    announce(`Waiting area ${a.name} deleted.`);
    if (editing === a.slug) resetForm(false);
    await listAreas();
  } catch (e) {
    showError('areas-error', e);
  }
}

async function listRooms() {
  const list = $('room-list');
  clear(list);
  showError('rooms-error', null);
  try {
    const { rooms } = await api('GET', clinicPath(clinic, 'rooms'));
    if (rooms.length === 0) list.append(el('li', { text: 'No persistent rooms yet.' }));
    for (const r of rooms)
      list.append(
        el(
          'li',
          { class: 'card', 'data-testid': 'room' },
          el('h3', { id: `room-h-${r.id}`, text: r.name }),
          el('p', { class: 'actions' }, el('button', { type: 'button', class: 'danger', text: 'Delete', 'aria-describedby': `room-h-${r.id}`, onclick: () => removeRoom(r) })),
        ),
      );
  } catch (e) {
    showError('rooms-error', e);
  }
}

async function onRoom(ev) {
  ev.preventDefault();
  showError('room-error', null);
  const name = $('room-name').value.trim();
  try {
    await api('POST', clinicPath(clinic, 'rooms'), { name });
    $('room-form').reset();
    announce(`Room ${name} created.`);
    await listRooms();
  } catch (e) {
    showError('room-error', e);
  }
}

async function removeRoom(r) {
  if (!confirm(`Delete the room ${r.name}?`)) return;
  try {
    await api('DELETE', clinicPath(clinic, `rooms/${r.id}`));
    announce(`Room ${r.name} deleted.`);
    await listRooms();
  } catch (e) {
    showError('rooms-error', e);
  }
}
