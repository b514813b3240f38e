// The administration page in real Chromium: a clinic administrator signs in (TOTP enrolment with
// codes computed here), creates and edits a waiting area, creates a room, changes a member's
// roles, resets their second factor and removes them, creates an invitation (the one-time link
// is shown), renames the clinic, then sees a report: patients enter through the API, call
// statistics with known values go through anteroom-monitor's ingest (tokens signed here with the
// app's key, as the client's would be), and the report page shows them as SVG charts, a summary
// and a table, and downloads the same figures as CSV.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { addClinician, totp } from './lib/stack.mjs';
import { operatorSignsIn, until } from './lib/journeys.mjs';
import { openBrowser, stack, useStack } from './lib/suite.mjs';

const run = promisify(execFile);
// The monitor writes its aggregates every second instead of every minute, so the report can
// see them while the test waits.
useStack({ env: { ANTEROOM_MONITOR_FLUSH_INTERVAL: '1s' } });


function post(url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'POST', ca: stack.ca, timeout: 5000, headers: { 'Content-Type': 'application/json', ...headers } }, (r) => {
      let text = '';
      r.on('data', (d) => (text += d));
      r.on('end', () => resolve({ status: r.statusCode, body: text }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}


async function signIn(page, who) {
  await page.goto(`${stack.origin}/`);
  await page.fill('#email', who.email);
  await page.fill('#password', who.password);
  await page.click('#btn-signin');
  // Staff enrol a second factor at their first sign-in.
  await page.waitForSelector('#enrol-secret:not(:empty), #s-dash:not([hidden])');
  if (await page.isVisible('#s-dash')) return;
  const secret = await page.textContent('#enrol-secret');
  await page.fill('#enrol-code', totp(secret));
  await page.click('#btn-enrol');
  await page.waitForSelector('#recovery-codes li');
  await page.click('#btn-recovery-done');
  await page.waitForSelector('#s-dash:not([hidden])');
}

// The CSV's rows as arrays of cells (RFC 4180 quoting undone).
function parseCsv(text) {
  const rows = [];
  for (const line of text.split('\r\n').filter(Boolean)) {
    const cells = [];
    let i = 0;
    while (i <= line.length) {
      let cell = '';
      if (line[i] === '"') {
        i++;
        while (i < line.length && !(line[i] === '"' && line[i + 1] !== '"')) {
          if (line[i] === '"') i++;
          cell += line[i++];
        }
        i++;
      } else {
        while (i < line.length && line[i] !== ',') cell += line[i++];
      }
      cells.push(cell);
      i++;
    }
    rows.push(cells);
  }
  return rows;
}

test('administrator: waiting area, room, invitation, report with SVG charts and CSV', async () => {
  const adminUser = await addClinician(stack, 'Ada Admin', ['clinic_admin']);
  const b = await openBrowser('admin');
  const A = b.page;
  await signIn(A, adminUser);
  // From here on only the administration page runs: its console must stay clean.
  const errors = [];
  A.on('console', (m) => {
    if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) errors.push(`${m.text()} (${m.location().url})`);
  });
  A.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));

  // ---- waiting areas ----
  await A.goto(`${stack.origin}/admin.html#areas`);
  await A.waitForSelector('#v-areas:not([hidden]) [data-testid="area"][data-slug="demo"]');
  await A.fill('#area-slug', 'north-wing');
  await A.fill('#area-name', 'North wing');
  await A.fill('#area-tz', 'Europe/Berlin');
  await A.fill('#area-hours', 'mon-fri 08:00-17:00');
  await A.fill('#area-welcome', 'Welcome to the north wing.');
  await A.check('#area-q-reason');
  await A.selectOption('#area-profile', 'low');
  await A.check('#area-relay');
  await A.click('#area-save');
  await A.waitForSelector('[data-testid="area"][data-slug="north-wing"]');
  await until('the live region', async () => /North wing created/.test(await A.textContent('#announce')));
  // Edit: the name changes, the rest stays.
  await A.click('[data-testid="area"][data-slug="north-wing"] button:text("Edit")');
  assert.equal(await A.inputValue('#area-name'), 'North wing');
  assert.equal(await A.isDisabled('#area-slug'), true);
  await A.fill('#area-name', 'North wing (2nd floor)');
  await A.click('#area-save');
  await A.waitForSelector('[data-testid="area"][data-slug="north-wing"] h3:text("North wing (2nd floor)")');
  const areas = await A.evaluate(async (c) => (await (await fetch(`/api/v1/clinics/${c}/areas`)).json()).areas, stack.clinic);
  const north = areas.find((a) => a.slug === 'north-wing');
  assert.deepEqual(
    { name: north.name, tz: north.time_zone, hours: north.hours, welcome: north.welcome, q: north.fields_asked, profile: north.profile, relay: north.relay_only },
    { name: 'North wing (2nd floor)', tz: 'Europe/Berlin', hours: 'mon-fri 08:00-17:00', welcome: 'Welcome to the north wing.', q: 'name,reason', profile: 'low', relay: true },
  );
  const demo = areas.find((a) => a.slug === 'demo');

  // ---- rooms ----
  await A.fill('#room-name', 'Dr Ada’s room');
  await A.click('#room-save');
  await A.waitForSelector('[data-testid="room"] h3:text("Dr Ada’s room")');

  // ---- staff: roles, second-factor reset, removal of another member ----
  const pat = await addClinician(stack, 'Pat Provider', ['provider']);
  await A.click('#nav-staff');
  await A.waitForSelector('#v-staff:not([hidden]) [data-testid="member"]');
  await A.reload();
  const card = A.locator(`[data-testid="member"][data-email="${pat.email}"]`);
  await card.waitFor();
  await card.locator('input[value="receptionist"]').check();
  await card.locator('button:text("Save roles")').click();
  await until('roles saved', async () => /Roles of Pat Provider saved/.test(await A.textContent('#announce')));
  const staffRoles = async () =>
    A.evaluate(async ([c, e]) => (await (await fetch(`/api/v1/clinics/${c}/staff`)).json()).staff.find((m) => m.email === e), [stack.clinic, pat.email]);
  assert.deepEqual((await staffRoles()).roles.sort(), ['provider', 'receptionist']);
  await A.locator(`[data-testid="member"][data-email="${pat.email}"] button:text("Reset second factor")`).click();
  await until('second factor reset', async () => /Second factor of Pat Provider reset/.test(await A.textContent('#announce')));
  A.once('dialog', (d) => d.accept());
  await A.locator(`[data-testid="member"][data-email="${pat.email}"] button:text("Remove from clinic")`).click();
  await until('member removed', async () => (await A.locator(`[data-testid="member"][data-email="${pat.email}"]`).count()) === 0);
  assert.equal(await staffRoles(), undefined);
  // The administrator cannot remove themselves: no such button on their own card.
  assert.equal(await A.locator(`[data-testid="member"][data-email="${adminUser.email}"] button:text("Remove from clinic")`).count(), 0);

  // ---- invitation: the one-time link is shown ----
  await A.fill('#invite-email', 'new.reporter@clinic.test');
  await A.selectOption('#invite-role', 'reporter');
  await A.click('#invite-send');
  const link = await (await A.waitForSelector('[data-testid="invite-link"]')).inputValue();
  assert.match(link, new RegExp(`^${stack.origin.replace(/[.]/g, '\\.')}/invite#[A-Za-z0-9_-]{43}$`));

  // ---- clinic settings: the name ----
  await A.click('#nav-settings');
  await A.waitForSelector('#v-settings:not([hidden])');
  assert.equal(await A.inputValue('#settings-name'), 'Demo clinic');
  await A.fill('#settings-name', 'Demo clinic, north and south');
  await A.click('#settings-save');
  await A.waitForSelector('#clinic-name:text("Demo clinic, north and south")');
  const renamed = await A.evaluate(async (c) => (await (await fetch(`/api/v1/clinics/${c}`)).json()).name, stack.clinic);
  assert.equal(renamed, 'Demo clinic, north and south');

  // ---- known inputs for the report ----
  // Three patients enter the demo area; each entry answer carries the monitor token their
  // browser would report with (no identity: clinic and area only).
  const tokens = [];
  for (let i = 0; i < 3; i++) {
    const r = await post(`${stack.origin}/api/v1/entry/${stack.clinic}/demo`, '{}');
    assert.equal(r.status, 201, r.body);
    tokens.push(JSON.parse(r.body).monitor_token);
    assert.ok(tokens[i], 'the entry answer carries a monitor token');
  }
  // Their three calls: the first relayed; waits 30, 60, 90 s; calls of 60, 120, 180 s;
  // round-trip times 10, 12, ..., 20 ms over the six reports.
  const statsUrl = `https://127.0.0.1:${stack.ports.monitor}/v1/stats`;
  let rtt = 10;
  for (let i = 0; i < 3; i++) {
    for (const final of [false, true]) {
      const rep = { v: 1, token: tokens[i], interval_s: 10, call_s: final ? 60 * (i + 1) : 10, browser: 'chrome', profile: 'standard', candidate: i === 0 ? 'relay' : 'host', rtt_ms: rtt, loss_permille: 2, bitrate_in_kbps: 1200 };
      rtt += 2;
      if (final) rep.final = true;
      else rep.wait_s = 30 * (i + 1);
      const r = await post(statsUrl, JSON.stringify(rep), { Origin: stack.origin });
      assert.equal(r.status, 204, `monitor answered ${r.status}`);
      assert.equal(r.body, '');
    }
  }
  const today = new Date().toISOString().slice(0, 10);
  const yesterday = new Date(Date.now() - 86400000).toISOString().slice(0, 10);
  await until('the monitor flush', () =>
    A.evaluate(async ([c, f, t]) => (await (await fetch(`/api/v1/clinics/${c}/reports?from=${f}&to=${t}&area=demo`)).json()).total.calls === 3, [stack.clinic, yesterday, today]),
  );

  // ---- the report page ----
  await A.click('#nav-reports');
  await A.waitForSelector('#v-reports:not([hidden])');
  await A.fill('#rep-from', yesterday);
  await A.fill('#rep-to', today);
  await A.selectOption('#rep-by', 'day');
  await A.selectOption('#rep-area', 'demo');
  await A.click('#rep-run');
  await A.waitForSelector('svg#chart-calls rect.bar', { state: 'attached' });
  await until('the live region', async () => /Report ready: 3 calls and 3 entries/.test(await A.textContent('#announce')));
  const bars = await A.$$eval('svg#chart-calls rect.bar', (rs) => rs.map((r) => Number(r.getAttribute('data-value'))));
  assert.equal(bars.length, 2);
  assert.equal(bars.reduce((a, v) => a + v, 0), 3);
  assert.equal(await A.getAttribute('svg#chart-calls', 'role'), 'img');
  assert.match(await A.textContent('svg#chart-calls desc'), /total 3/);
  const entryBars = await A.$$eval('svg#chart-entries rect.bar', (rs) => rs.map((r) => Number(r.getAttribute('data-value'))));
  assert.equal(entryBars.reduce((a, v) => a + v, 0), 3);
  const summary = await A.textContent('[data-testid="rep-summary"]');
  assert.match(summary, /Mean call120 s/);
  assert.match(summary, /Mean wait60 s/);
  assert.match(summary, /Relayed calls1 \(33\.3 %\)/);
  assert.match(summary, /median \/ 95th percentile14 \/ 20 ms/);
  assert.equal(await A.locator('[data-testid="rep-table"] tbody tr').count(), 2);

  // ---- the CSV download ----
  const href = await A.getAttribute('#rep-csv', 'href');
  assert.equal(href, `/api/v1/clinics/${stack.clinic}/reports.csv?from=${yesterday}&to=${today}&by=day&area=demo`);
  const [download] = await Promise.all([A.waitForEvent('download'), A.click('#rep-csv')]);
  assert.equal(download.suggestedFilename(), `anteroom-report-${stack.clinic}-${yesterday}-${today}.csv`);
  const rows = parseCsv(await readFile(await download.path(), 'utf8'));
  const head = rows[0];
  const total = rows.find((r) => r[1] === 'total');
  const cell = (name) => total[head.indexOf(name)];
  assert.equal(rows.length, 4); // header, two days, total
  assert.equal(total[0], demo.name); // the area's name
  assert.equal(cell('entries'), '3');
  assert.equal(cell('calls'), '3');
  assert.equal(cell('ended_calls'), '3');
  assert.equal(cell('call_seconds'), '360');
  assert.equal(cell('mean_call_s'), '120');
  assert.equal(cell('wait_seconds'), '180');
  assert.equal(cell('relayed_permille'), '333');
  assert.equal(cell('rtt_ms_p50'), '14');
  assert.equal(cell('rtt_ms_p95'), '20');
  assert.equal(cell('loss_permille_p50'), '2');

  assert.deepEqual(errors, [], `console errors or CSP violations: ${errors.join('; ')}`);
  const csp = await A.evaluate(() => window.__csp);
  assert.deepEqual(csp, []);
  for (const url of b.requests) assert.ok(url.startsWith(stack.origin) || url.startsWith('wss://127.0.0.1:'), `request outside the deployment: ${url}`);
});

test('reporter: only the reports view, and the staff API refuses them', async () => {
  const rae = await addClinician(stack, 'Rae Reporter', ['reporter']);
  const b = await openBrowser('reporter');
  const R = b.page;
  await signIn(R, rae);
  await R.goto(`${stack.origin}/admin.html#staff`);
  // The staff view is not offered: the page lands on reports.
  await R.waitForSelector('#v-reports:not([hidden])');
  assert.equal(await R.isHidden('#v-staff'), true);
  assert.equal(await R.isHidden('#nav-staff'), true);
  assert.equal(await R.isHidden('#nav-areas'), true);
  assert.equal(await R.isHidden('#nav-settings'), true);
  // The area list is there for narrowing the report.
  await until('area options', async () => (await R.locator('#rep-area option[value="demo"]').count()) === 1);
  await R.click('#rep-run');
  await R.waitForSelector('svg#chart-calls', { state: 'attached' });
  const staff = await R.evaluate(async (c) => (await fetch(`/api/v1/clinics/${c}/staff`)).status, stack.clinic);
  assert.equal(staff, 403);
});

test('operator: no clinic of their own; opens one by number, enrols a second factor, administers it', async () => {
  const O = (await openBrowser('operator')).page;
  // The staff page leads a first operator to enrolment at sign-in (no clinic to probe there);
  // leaving it unfinished, the admin page must lead there too.
  await operatorSignsIn(O, stack);
  await O.goto(`${stack.origin}/admin.html`);
  await O.waitForSelector('#v-none:not([hidden])');
  assert.equal(await O.isHidden('#operator-form'), false);
  await O.fill('#operator-id', String(stack.clinic));
  await O.click('#operator-form button[type="submit"]');
  // The first operator has no second factor yet: clinic data needs one, so the page enrols it.
  await O.waitForSelector('#v-enrol:not([hidden]) #enrol-secret:not(:empty)');
  await O.fill('#enrol-code', totp(await O.textContent('#enrol-secret')));
  await O.click('#enrol-confirm');
  await O.waitForSelector('#enrol-codes li');
  assert.equal(await O.locator('#enrol-codes li').count(), 10);
  await O.click('#enrol-done');
  await O.waitForSelector('#v-staff:not([hidden]) [data-testid="member"]');
  assert.equal(await O.isHidden('#v-enrol'), true);
  assert.equal(await O.isHidden('#v-none'), true);
  assert.match(await O.textContent('#clinic-name'), /Demo clinic/);
});
