// Bar charts as inline SVG built with DOM APIs (no library, no markup strings: the page's CSP
// allows scripts from this origin only). The chart scales with its container (viewBox), names
// itself to assistive technology (role img, title, desc), and gives each bar a tooltip; the
// report's table holds the same figures for reading.
const NS = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 240;
const PAD = { left: 56, right: 8, top: 14, bottom: 40 };

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// A round upper bound for the axis: 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// points: [{label, value}] (value null: no data, drawn as nothing). Returns an <svg>.
export function barChart({ id, title, unit, points }) {
  const values = points.map((p) => p.value).filter((v) => v !== null && v !== undefined);
  const max = niceMax(Math.max(0, ...values));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-labelledby': `${id}-title ${id}-desc`,
    class: 'chart',
    id,
    'data-testid': 'chart',
    preserveAspectRatio: 'xMidYMid meet',
  });
  const total = values.reduce((a, b) => a + b, 0);
  const peak = values.length ? Math.max(...values) : 0;
  root.append(
    svg('title', { id: `${id}-title` }, title),
    svg(
      'desc',
      { id: `${id}-desc` },
      values.length
        ? `${points.length} bars from ${points[0].label} to ${points[points.length - 1].label}; highest ${peak} ${unit}${unit === 'calls' || unit === 'entries' ? `, total ${total}` : ''}.`
        : 'No data in this range.',
    ),
  );
  // Axis: the baseline, the top value and half of it, with light grid lines.
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - f);
    root.append(
      svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: f === 0 ? 'axis' : 'grid' }),
      svg('text', { x: PAD.left - 6, y: y + 6, 'text-anchor': 'end', class: 'tick' }, String(Math.round(max * f * 100) / 100)),
    );
  }
  const n = Math.max(points.length, 1);
  const slot = plotW / n;
  const bw = Math.max(1, slot * 0.8);
  const every = Math.ceil(n / 6); // at most about six labels under the axis
  points.forEach((p, i) => {
    const x = PAD.left + i * slot + (slot - bw) / 2;
    if (p.value !== null && p.value !== undefined) {
      const h = (p.value / max) * plotH;
      const bar = svg('rect', { x, y: PAD.top + plotH - h, width: bw, height: Math.max(h, 0), class: 'bar', 'data-value': p.value });
      bar.append(svg('title', {}, `${p.label}: ${p.value} ${unit}`));
      root.append(bar);
    }
    if (i % every === 0)
      root.append(svg('text', { x: x + bw / 2, y: H - PAD.bottom + 24, 'text-anchor': 'middle', class: 'tick' }, p.label));
  });
  return root;
}
