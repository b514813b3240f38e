// Staff of a clinic: the list with roles and second-factor state, role changes, second-factor
// resets and removal (each behind re-authentication), and invitations with their one-time link.
import { api, clinicPath } from '../api.js';
import { withReauth } from './reauth.js';
import { $, el, announce, showError, clear, field } from '../dom.js';

export const ROLES = [
  ['clinic_admin', 'Clinic administrator'],
  ['provider', 'Provider'],
  ['receptionist', 'Receptionist'],
  ['reporter', 'Reporter'],
];

let clinic = null;
let selfId = null;

export function initStaff(state) {
  selfId = state.me.id;
  $('invite-form').addEventListener('submit', onInvite);
  const sel = $('invite-role');
  for (const [v, label] of ROLES) sel.append(el('option', { value: v, text: label }));
  sel.value = 'provider';
}

export async function loadStaff(clinicId) {
  clinic = clinicId;
  const list = $('staff-list');
  showError('staff-error', null);
  clear(list);
  try {
    const data = await api('GET', clinicPath(clinic, 'staff'));
    for (const m of data.staff) list.append(member(m));
    if (data.staff.length === 0) list.append(el('li', { text: 'No staff yet: invite someone below.' }));
    $('staff-count').textContent = `${data.staff.length} ${data.staff.length === 1 ? 'member' : 'members'}`;
  } catch (e) {
    showError('staff-error', e);
  }
}

function member(m) {
  const id = m.account_id;
  const name = m.display_name || m.email;
  const boxes = ROLES.map(([v, label]) =>
    el(
      'label',
      { class: 'check' },
      el('input', { type: 'checkbox', name: 'role', value: v, checked: m.roles.includes(v), id: `role-${id}-${v}` }),
      ` ${label}`,
    ),
  );
  const err = el('p', { class: 'error', role: 'alert', id: `member-error-${id}` });
  const roles = el(
    'form',
    { class: 'roles', 'data-account': id },
    el('fieldset', {}, el('legend', { text: `Roles of ${name}` }), ...boxes),
    el('button', { type: 'submit', text: 'Save roles', 'aria-describedby': `member-h-${id}` }),
  );
  roles.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const chosen = [...roles.querySelectorAll('input[name=role]:checked')].map((b) => b.value);
    act(id, err, 'staff/roles', { account_id: id, roles: chosen.join(',') }, `Roles of ${name} saved.`);
  });
  const actions = el('p', { class: 'actions' });
  actions.append(
    el('button', {
      type: 'button',
      text: 'Reset second factor',
      'aria-describedby': `member-h-${id}`,
      onclick: () => act(id, err, 'staff/mfa-reset', { account_id: id }, `Second factor of ${name} reset: they enrol again at next sign-in.`),
    }),
  );
  if (id !== selfId)
    actions.append(
      ' ',
      el('button', {
        type: 'button',
        class: 'danger',
        text: 'Remove from clinic',
        'aria-describedby': `member-h-${id}`,
        onclick: () => {
          if (confirm(`Remove ${name} from this clinic?`))
            act(id, err, 'staff/deactivate', { account_id: id }, `${name} removed from the clinic.`);
        },
      }),
    );
  return el(
    'li',
    { class: 'card', 'data-testid': 'member', 'data-email': m.email },
    el('h3', { id: `member-h-${id}`, text: name }),
    el('p', {}, el('span', { text: m.email }), ' · ', el('span', { text: m.mfa_enrolled ? 'second factor enrolled' : 'no second factor yet' }), m.disabled ? ' · disabled' : ''),
    roles,
    actions,
    err,
  );
}

async function act(id, errEl, rest, body, done) {
  errEl.textContent = '';
  try {
    await withReauth(() => api(rest === 'staff/roles' ? 'PUT' : 'POST', clinicPath(clinic, rest), body));
    announce(done);
    await loadStaff(clinic);
  } catch (e) {
    errEl.textContent = e.message;
  }
}

async function onInvite(ev) {
  ev.preventDefault();
  showError('invite-error', null);
  const out = $('invite-result');
  clear(out);
  const email = $('invite-email').value.trim();
  const role = $('invite-role').value;
  try {
    const inv = await api('POST', clinicPath(clinic, 'invitations'), { email, role });
    const link = el('input', { id: 'invite-link', type: 'text', readonly: true, value: inv.link, 'data-testid': 'invite-link', size: 40 });
    out.append(
      field('One-time invitation link', link, 'Shown only now. Send it to the person; it works once, for 72 hours.'),
      el('button', {
        type: 'button',
        text: 'Copy link',
        onclick: async () => {
          link.select();
          try {
            await navigator.clipboard.writeText(inv.link);
            announce('Link copied.');
          } catch {
            announce('Select the link and copy it.');
          }
        },
      }),
    );
    $('invite-form').reset();
    $('invite-role').value = 'provider';
    announce(`Invitation for ${email} created. The link is shown below.`);
    link.focus();
  } catch (e) {
    showError('invite-error', e);
  }
}
