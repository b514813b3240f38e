// Second-factor enrolment on the administration page. Staff enrol at their first sign-in on the
// dashboard; an operator, who belongs to no clinic, may arrive here first, and until a factor is
// enrolled the app refuses every clinic request (403 mfa_enrolment_required).
import { api } from '../api.js';
import { $, el, announce, showError, clear } from '../dom.js';

// Shows the enrolment view and resolves once a code confirmed the new factor.
export async function enrol() {
  const r = await api('POST', '/api/v1/me/totp');
  // The QR code is the server's SVG (no script in it); parsed as SVG, never as HTML.
  const svg = new DOMParser().parseFromString(r.qr_svg, 'image/svg+xml').documentElement;
  $('enrol-qr').replaceChildren(document.importNode(svg, true));
  $('enrol-secret').textContent = r.secret;
  clear($('enrol-codes'));
  $('v-enrol').hidden = false;
  const h = $('enrol-h');
  h.tabIndex = -1;
  h.focus();
  await new Promise((resolve) => {
    $('enrol-form').onsubmit = async (ev) => {
      ev.preventDefault();
      showError('enrol-error', null);
      try {
        const c = await api('POST', '/api/v1/me/totp/confirm', { code: $('enrol-code').value.trim() });
        $('enrol-code').value = '';
        const list = $('enrol-codes');
        list.append(
          el('p', { text: 'Your recovery codes. Keep them somewhere safe; each works once, and they are shown only now.' }),
          el('ul', {}, ...c.recovery_codes.map((code) => el('li', {}, el('code', { text: code })))),
          el('button', { type: 'button', id: 'enrol-done', text: 'I have kept them', onclick: resolve }),
        );
        $('enrol-form').hidden = true;
        announce('Second factor enrolled. Keep the recovery codes shown.');
        $('enrol-done').focus();
      } catch (e) {
        showError('enrol-error', e);
      }
    };
  });
  $('v-enrol').hidden = true;
  $('enrol-form').hidden = false;
}
