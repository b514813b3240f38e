// Reports (A4): a date range, per day or per hour, optionally one waiting area; the figures as
// a summary, bar charts and a table, and the same report as a CSV download.
import { api, clinicPath } from '../api.js';
import { barChart } from './chart.js';
import { $, el, announce, showError, clear } from '../dom.js';

let clinic = null;

function isoDay(d) {
  return d.toISOString().slice(0, 10);
}

export function initReports() {
  const today = new Date();
  const weekAgo = new Date(today.getTime() - 6 * 86400000);
  $('rep-from').value = isoDay(weekAgo);
  $('rep-to').value = isoDay(today);
  $('rep-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    run();
  });
}

export async function loadReports(clinicId) {
  clinic = clinicId;
  clear($('rep-out'));
  $('rep-csv').hidden = true;
  const sel = $('rep-area');
  clear(sel);
  sel.append(el('option', { value: '', text: 'All areas' }));
  try {
    // Every role of the clinic may list its areas, reporters included.
    const { areas } = await api('GET', clinicPath(clinic, 'areas'));
    for (const a of areas) sel.append(el('option', { value: a.slug, text: a.name }));
  } catch {
    // The report works without the list: it only narrows the choice.
  }
}

function query() {
  const q = new URLSearchParams({ from: $('rep-from').value, to: $('rep-to').value, by: $('rep-by').value });
  if ($('rep-area').value) q.set('area', $('rep-area').value);
  return q.toString();
}

const fmt = (v, suffix = '') => (v === null || v === undefined ? '–' : `${v}${suffix}`);
const pct = (h, q) => (h ? h[q] : null);

function label(start, by) {
  return by === 'hour' ? start.slice(5, 16).replace('T', ' ') : start.slice(5);
}

async function run() {
  showError('rep-error', null);
  const out = $('rep-out');
  const q = query();
  $('rep-run').disabled = true;
  try {
    const rep = await api('GET', `${clinicPath(clinic, 'reports')}?${q}`);
    clear(out);
    render(out, rep);
    const csv = $('rep-csv');
    csv.href = `${clinicPath(clinic, 'reports.csv')}?${q}`;
    csv.hidden = false;
    const t = rep.total;
    announce(`Report ready: ${t.calls} calls and ${t.entries} entries from ${rep.from} to ${rep.to}.`);
  } catch (e) {
    clear(out);
    $('rep-csv').hidden = true;
    showError('rep-error', e);
  } finally {
    $('rep-run').disabled = false;
  }
}

function render(out, rep) {
  const t = rep.total;
  const where = rep.area_name ? `waiting area ${rep.area_name}` : 'all waiting areas';
  out.append(
    el('h3', { id: 'rep-summary-h', text: `From ${rep.from} to ${rep.to} (UTC), ${where}` }),
    el(
      'dl',
      { class: 'facts', 'data-testid': 'rep-summary' },
      ...summary([
        ['Entries', fmt(t.entries)],
        ['Calls', fmt(t.calls)],
        ['Ended calls', fmt(t.ended_calls)],
        ['Mean call', fmt(t.mean_call_s, ' s')],
        ['Mean wait', fmt(t.mean_wait_s, ' s')],
        ['Relayed calls', t.relayed_permille === null ? '–' : `${t.relayed_calls} (${t.relayed_permille / 10} %)`],
        ['Round-trip time, median / 95th percentile', t.rtt_ms ? `${t.rtt_ms.p50} / ${t.rtt_ms.p95} ms` : '–'],
        ['Packet loss, median / 95th percentile', t.loss_permille ? `${t.loss_permille.p50} / ${t.loss_permille.p95} ‰` : '–'],
        ['Bitrate received, median / 95th percentile', t.bitrate_in_kbps ? `${t.bitrate_in_kbps.p50} / ${t.bitrate_in_kbps.p95} kbit/s` : '–'],
      ]),
    ),
  );
  const pts = (f) => rep.buckets.map((b) => ({ label: label(b.start, rep.by), value: f(b) }));
  const charts = el('div', { class: 'charts' });
  const add = (id, title, unit, f) =>
    charts.append(el('figure', {}, el('figcaption', { text: `${title} (${unit})` }), barChart({ id, title, unit, points: pts(f) })));
  add('chart-calls', `Calls per ${rep.by}`, 'calls', (b) => b.calls);
  add('chart-entries', `Entries per ${rep.by}`, 'entries', (b) => b.entries);
  add('chart-rtt', `Median round-trip time per ${rep.by}`, 'ms', (b) => pct(b.rtt_ms, 'p50'));
  add('chart-relayed', `Share of relayed calls per ${rep.by}`, '%', (b) => (b.relayed_permille === null ? null : b.relayed_permille / 10));
  out.append(el('h3', { text: 'Charts' }), charts, el('h3', { id: 'rep-table-h', text: 'Figures' }), table(rep));
}

function summary(rows) {
  const out = [];
  for (const [k, v] of rows) out.push(el('dt', { text: k }), el('dd', { text: v }));
  return out;
}

function table(rep) {
  const cols = [
    [rep.by === 'hour' ? 'Hour (UTC)' : 'Day (UTC)', (b) => b.start],
    ['Entries', (b) => fmt(b.entries)],
    ['Calls', (b) => fmt(b.calls)],
    ['Mean call (s)', (b) => fmt(b.mean_call_s)],
    ['Mean wait (s)', (b) => fmt(b.mean_wait_s)],
    ['Relayed (%)', (b) => (b.relayed_permille === null ? '–' : String(b.relayed_permille / 10))],
    ['RTT median (ms)', (b) => fmt(pct(b.rtt_ms, 'p50'))],
    ['Loss 95th (‰)', (b) => fmt(pct(b.loss_permille, 'p95'))],
  ];
  const head = el('tr', {}, ...cols.map(([h]) => el('th', { scope: 'col', text: h })));
  const body = el('tbody');
  for (const b of rep.buckets) {
    const tr = el('tr');
    cols.forEach(([, f], i) => tr.append(el(i === 0 ? 'th' : 'td', i === 0 ? { scope: 'row', text: f(b) } : { text: f(b) })));
    body.append(tr);
  }
  const tbl = el('table', { 'data-testid': 'rep-table' }, el('caption', { class: 'visually-hidden', text: 'Report figures per bucket' }), el('thead', {}, head), body);
  // A region that scrolls by itself when the table is wider than the page, reachable by
  // keyboard (so the page never scrolls sideways at 200 % zoom).
  return el('div', { class: 'table-wrap', role: 'region', 'aria-labelledby': 'rep-table-h', tabindex: '0' }, tbl);
}
