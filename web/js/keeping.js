// Encrypted keeping on the clinician's call screen (S5, docs/keeping.md): when the call's clinic
// has it on, "Save transcript encrypted" (#btn-keep-chat) and, on each file line, a "Save
// encrypted" button (data-action=keep). Each seals in this browser (keepcrypto.js) and uploads
// only ciphertext; #keep-status says what happened.
import { $, el, announce } from './dom.js';
import { api } from './api.js';
import { sealItem } from './keepcrypto.js';

let active = null; // {clinic, publicKey}

function status(text) {
  $('keep-status').textContent = text;
  announce(text);
}

async function keep(kind, header, bytes) {
  if (!active) return;
  try {
    const body = await sealItem(active.publicKey, kind, header, bytes);
    const r = await api('POST', `/api/v1/clinics/${encodeURIComponent(active.clinic)}/keeping/items`, body);
    status(`Saved encrypted (${kind}, item ${r.id}).`);
  } catch (e) {
    status(`Not saved: ${e.message}`);
  }
}

function fileButton(li) {
  if (!active || !li.keep || li.querySelector('[data-action=keep]')) return;
  const { blob, name } = li.keep;
  const b = el('button', { type: 'button', 'data-action': 'keep', text: 'Save encrypted' });
  b.addEventListener('click', async () => {
    b.disabled = true;
    await keep('file', { name, type: blob.type || '', saved_at: new Date().toISOString() }, new Uint8Array(await blob.arrayBuffer()));
    b.disabled = false;
  });
  li.append(' ', b);
}

// For one call: asks the app whether the clinic keeps, and wires the buttons if it does.
export async function attachKeeping(ui, clinic) {
  active = null;
  $('btn-keep-chat').hidden = true;
  $('keep-status').textContent = '';
  ui.onFileLine = fileButton;
  if (!clinic) return;
  let k;
  try {
    k = await api('GET', `/api/v1/clinics/${encodeURIComponent(clinic)}/keeping`);
  } catch {
    return; // a role without access, or the app unreachable: no keeping offered
  }
  if (!k.enabled || !k.public_key) return;
  active = { clinic: String(clinic), publicKey: k.public_key };
  for (const li of $('file-list').querySelectorAll('li')) fileButton(li);
  $('btn-keep-chat').hidden = false;
  $('btn-keep-chat').onclick = () => {
    const lines = [...$('chat-log').querySelectorAll('li')].map((li) => li.textContent);
    const text = lines.join('\n') + '\n';
    keep('transcript', { name: 'transcript.txt', type: 'text/plain', saved_at: new Date().toISOString() }, new TextEncoder().encode(text));
  };
}

export function detachKeeping() {
  active = null;
  $('btn-keep-chat').hidden = true;
}
