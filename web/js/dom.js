// DOM helpers for every page: elements built with DOM APIs only (never HTML strings, so nothing
// the API returns can become markup), screens, the live region, and form errors.
export const $ = (id) => document.getElementById(id);

export function show(id, on = true) {
  const el = typeof id === 'string' ? $(id) : id;
  if (el) el.hidden = !on;
}

// Shows exactly one of the page's screens (elements with class "screen") and moves focus to
// its heading, so keyboard and screen-reader users land on what changed.
export function screen(id) {
  for (const s of document.querySelectorAll('.screen')) s.hidden = s.id !== id;
  const h = document.querySelector(`#${id} h1, #${id} h2`);
  if (h) {
    h.tabIndex = -1;
    h.focus();
  }
}

// Polite announcement through the page's live region (#announce), once per call (cleared
// first so that the same words twice are still read).
export function announce(text) {
  const r = $('announce');
  if (!r) return;
  r.textContent = '';
  setTimeout(() => (r.textContent = text), 50);
}

// An element: attrs `text` (its text), `class`, `on<event>` (a listener), any other attribute
// (true: present and empty; false, null, undefined: absent). Null or undefined children are
// skipped, so optional parts can be written inline.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

// Shows an error next to a form (its element has role="alert"); null clears it.
export function showError(id, err) {
  const p = $(id);
  if (p) p.textContent = err ? err.message || String(err) : '';
}

// A labelled control: <p><label for=id>text</label> control</p>.
export function field(label, control, hint) {
  const hintEl = hint ? el('span', { class: 'hint', id: `${control.id}-hint`, text: hint }) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return el('p', { class: 'field' }, el('label', { for: control.id, text: label }), ' ', control, hintEl ? ' ' : null, hintEl);
}

export function fmtWait(sinceSec) {
  const s = Math.max(0, Math.floor(Date.now() / 1000 - sinceSec));
  const m = Math.floor(s / 60);
  return m ? `${m} min ${s % 60} s` : `${s} s`;
}
