// Small DOM helpers shared by the pages.
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

// Polite announcement through the page's live region (#announce).
export function announce(text) {
  const r = $('announce');
  if (!r) return;
  r.textContent = '';
  setTimeout(() => (r.textContent = text), 50);
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) e.append(c);
  return e;
}

export function fmtWait(sinceSec) {
  const s = Math.max(0, Math.floor(Date.now() / 1000 - sinceSec));
  const m = Math.floor(s / 60);
  return m ? `${m} min ${s % 60} s` : `${s} s`;
}
