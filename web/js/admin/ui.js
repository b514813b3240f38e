// DOM helpers for the administration pages: elements built with DOM APIs only (never HTML
// strings, so nothing the API returns can become markup), the live region, and form errors.
export const $ = (id) => document.getElementById(id);

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

// Says a result through the page's polite live region, once per call (cleared first so that
// the same words twice are still read).
export function announce(text) {
  const r = $('admin-live');
  if (!r) return;
  r.textContent = '';
  setTimeout(() => (r.textContent = text), 30);
}

// Shows an error next to a form (its element has role="alert") and announces nothing else.
export function showError(id, err) {
  const p = $(id);
  if (p) p.textContent = err ? err.message || String(err) : '';
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

// A labelled control: <p><label for=id>text</label> control</p>.
export function field(label, control, hint) {
  const hintEl = hint ? el('span', { class: 'hint', id: `${control.id}-hint`, text: hint }) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return el('p', { class: 'field' }, el('label', { for: control.id, text: label }), ' ', control, hintEl ? ' ' : null, hintEl);
}
