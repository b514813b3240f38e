// Clinic settings: the clinic's name (the jurisdiction stays with the operator).
import { api, clinicPath } from '../api.js';
import { $, announce, showError } from '../dom.js';

let clinic = null;
let onRenamed = () => {};

export function initSettings(renamed) {
  onRenamed = renamed;
  $('settings-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError('settings-error', null);
    try {
      const c = await api('PATCH', clinicPath(clinic), { name: $('settings-name').value.trim() });
      onRenamed(c);
      announce(`The clinic is now called ${c.name}.`);
    } catch (e) {
      showError('settings-error', e);
    }
  });
}

export async function loadSettings(clinicId) {
  clinic = clinicId;
  showError('settings-error', null);
  try {
    const c = await api('GET', clinicPath(clinic));
    $('settings-name').value = c.name;
    $('settings-jur').textContent = c.jurisdiction;
  } catch (e) {
    showError('settings-error', e);
  }
}
