// Encrypted keeping on the clinician's call screen (S5, docs/keeping.md): when the call's clinic
// has it on, "Save transcript encrypted" (#btn-keep-chat) and, on each file line, a "Save
// encrypted" button (data-action=keep). Each seals in this browser (keepcrypto.js) and uploads
// only ciphertext, in chunks (the app reads at most 64 KiB of body per request: docs/keeping.md);
// #keep-status says what happened.
import { $, el, announce } from './dom.js';
import { api } from './api.js';
import { sealItem, toB64 } from './keepcrypto.js';

let active = null; // {clinic, publicKey}

function status(text) {
  $('keep-status').textContent = text;
  announce(text);
}

// Sends one chunk, once more after a failure that was not a refusal (a retry replaces the chunk).
async function sendChunk(base, index, bytes) {
  const body = { index, data: toB64(bytes) };
  try {
    await api('POST', `${base}/chunks`, body);
  } catch (e) {
    if (e.status >= 400 && e.status < 500) throw e;
    await api('POST', `${base}/chunks`, body);
  }
}

// The largest chunk of ciphertext the app takes (AR_APP_KEEPING_CHUNK_MAX, docs/keeping.md):
// 36 KiB, whose base64 is 48 KiB.
const CHUNK_MAX = 36 * 1024;

// Start, chunks in order, finish: the item appears only once the server has every chunk.
async function upload(sealed) {
  const ct = sealed.ciphertext;
  const uploads = `/api/v1/clinics/${encodeURIComponent(active.clinic)}/keeping/uploads`;
  const chunks = Math.max(1, Math.ceil(ct.length / CHUNK_MAX));
  const u = await api('POST', uploads, { kind: sealed.kind, wrapped_key: sealed.wrapped_key, iv: sealed.iv, size: ct.length, chunks });
  const base = `${uploads}/${encodeURIComponent(u.id)}`;
  try {
    for (let i = 0; i < chunks; i++) await sendChunk(base, i, ct.subarray(i * CHUNK_MAX, (i + 1) * CHUNK_MAX));
    return await api('POST', `${base}/finish`);
  } catch (e) {
    api('DELETE', base).catch(() => {}); // abandoned now rather than left to expire
    throw e;
  }
}

async function keep(kind, header, bytes) {
  if (!active) return;
  try {
    const r = await upload(await sealItem(active.publicKey, kind, header, bytes));
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
