// Encrypted keeping, the administrator's side (S5, docs/keeping.md): make the clinic's key pair
// in this browser, upload only the public half and offer the private half as a file to keep;
// list saved items and open one here with that file. The private key is never sent anywhere.
import { api, clinicPath } from '../api.js';
import { withReauth } from './reauth.js';
import { $, el, announce, showError, clear } from '../dom.js';
import { makeKeyPair, loadKeyFile, openItem, sha256Hex } from '../keepcrypto.js';

let clinic = null;
let privateKey = null;
let keyUrl = null;
let loading = null;

function forgetKeyFile() {
  if (keyUrl) URL.revokeObjectURL(keyUrl);
  keyUrl = null;
  const a = $('keep-keyfile-link');
  a.hidden = true;
  a.removeAttribute('href');
}

async function setState(body) {
  const k = await withReauth(() => api('PUT', clinicPath(clinic, 'keeping'), body));
  $('keep-state').textContent = k.enabled ? 'on' : 'off';
  return k;
}

export function initKeeping() {
  $('keep-enable').addEventListener('click', async () => {
    showError('keeping-error', null);
    try {
      const { publicKey, file } = await makeKeyPair(clinic, $('keep-passphrase').value);
      $('keep-passphrase').value = '';
      // The file is offered before the key is used, so nothing is sealed to a key nobody holds.
      forgetKeyFile();
      keyUrl = URL.createObjectURL(new Blob([file], { type: 'application/json' }));
      const a = $('keep-keyfile-link');
      a.href = keyUrl;
      a.download = `anteroom-keeping-clinic-${clinic}.json`;
      a.hidden = false;
      await setState({ enabled: true, public_key: publicKey });
      announce('Encrypted keeping is on. Download the key file and keep it safe.');
    } catch (e) {
      showError('keeping-error', e);
    }
  });
  $('keep-disable').addEventListener('click', async () => {
    showError('keeping-error', null);
    try {
      await setState({ enabled: false });
      announce('Encrypted keeping is off.');
    } catch (e) {
      showError('keeping-error', e);
    }
  });
  // The passphrase field's change also fires when focus leaves it for an Open button: open()
  // waits for the load in progress rather than finding no key.
  const load = () => {
    loading = (async () => {
      showError('keeping-error', null);
      const f = $('keep-keyfile').files[0];
      if (!f) {
        privateKey = null;
        return;
      }
      try {
        privateKey = await loadKeyFile(await f.text(), clinic, $('keep-unlock').value);
        $('keep-keyfile').dataset.loaded = 'true';
        announce('Key file loaded.');
      } catch (e) {
        privateKey = null;
        delete $('keep-keyfile').dataset.loaded;
        showError('keeping-error', e);
      }
    })();
    return loading;
  };
  $('keep-keyfile').addEventListener('change', load);
  $('keep-unlock').addEventListener('change', load);
}

async function open(id) {
  const out = $('keep-opened');
  clear(out);
  if (loading) await loading;
  if (!privateKey) {
    showError('keeping-error', new Error('Choose the key file first.'));
    return;
  }
  try {
    const item = await api('GET', clinicPath(clinic, `keeping/items/${id}`));
    const { header, bytes } = await openItem(privateKey, item);
    const sha = await sha256Hex(bytes);
    out.dataset.item = String(id);
    out.dataset.sha256 = sha;
    out.append(el('p', { text: `Item ${id}: ${header.kind}, ${header.name}, ${bytes.length} bytes, SHA-256 ${sha}${sha === header.sha256 ? '' : ' (does not match the saved hash)'}` }));
    if (header.kind === 'transcript') out.append(el('pre', { 'data-testid': 'keep-text', text: new TextDecoder().decode(bytes) }));
    const url = URL.createObjectURL(new Blob([bytes], { type: header.type || 'application/octet-stream' }));
    out.append(el('a', { href: url, download: header.name || `item-${id}`, text: 'Save the opened file' }));
    announce(`Item ${id} opened.`);
  } catch (e) {
    showError('keeping-error', new Error(`Item ${id} could not be opened (${e.message || e.name}).`));
  }
}

export async function loadKeeping(clinicId) {
  if (clinic !== clinicId) {
    privateKey = null;
    forgetKeyFile();
  }
  clinic = clinicId;
  showError('keeping-error', null);
  clear($('keep-opened'));
  clear($('keep-items'));
  try {
    const k = await api('GET', clinicPath(clinic, 'keeping'));
    $('keep-state').textContent = k.enabled ? 'on' : 'off';
    const list = await api('GET', clinicPath(clinic, 'keeping/items'));
    for (const it of list.items) {
      const when = new Date(it.created_at * 1000).toISOString().replace('T', ' ').slice(0, 16);
      const b = el('button', { type: 'button', 'data-item': it.id, text: 'Open' });
      b.addEventListener('click', () => open(it.id));
      $('keep-items').append(el('li', { 'data-testid': 'keep-item', 'data-item': it.id, 'data-kind': it.kind }, `${it.id}: ${it.kind}, ${it.size} bytes, ${when} UTC `, b));
    }
  } catch (e) {
    showError('keeping-error', e);
  }
}
