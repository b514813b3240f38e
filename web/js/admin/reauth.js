// Re-authentication (docs/api.md): role changes, MFA resets and deactivations need the password
// (and the code, when a second factor is enrolled) proven within five minutes. withReauth runs
// an action; when the app answers 403 reauth_required it asks for the proof in a modal dialog,
// sends it, and runs the action once more.
import { api, ApiError } from '../api.js';
import { $, showError } from '../dom.js';

function ask() {
  const dlg = $('reauth');
  const form = $('reauth-form');
  form.reset();
  showError('reauth-error', null);
  return new Promise((resolve) => {
    const onSubmit = async (ev) => {
      ev.preventDefault();
      const password = $('reauth-password').value;
      const code = $('reauth-code').value.trim();
      const body = { password };
      if (code) body.code = code;
      try {
        await api('POST', '/api/v1/session/reauth', body);
        done(true);
      } catch (e) {
        showError('reauth-error', e);
        $('reauth-password').focus();
      }
    };
    const onCancel = () => done(false);
    function done(ok) {
      form.removeEventListener('submit', onSubmit);
      $('reauth-cancel').removeEventListener('click', onCancel);
      dlg.removeEventListener('cancel', onCancel);
      if (dlg.open) dlg.close();
      resolve(ok);
    }
    form.addEventListener('submit', onSubmit);
    $('reauth-cancel').addEventListener('click', onCancel);
    dlg.addEventListener('cancel', onCancel);
    dlg.showModal();
    $('reauth-password').focus();
  });
}

export async function withReauth(action) {
  try {
    return await action();
  } catch (e) {
    if (!(e instanceof ApiError) || e.code !== 'reauth_required') throw e;
    if (!(await ask())) throw new ApiError(403, 'cancelled', 'Cancelled: the change was not made.');
    return await action();
  }
}
