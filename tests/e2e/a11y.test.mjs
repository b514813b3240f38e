// Accessibility (I5) in real Chromium: axe-core (npm) run inside every page and screen a person
// meets (patient entry, pre-call check, details, waiting; staff sign-in, enrolment, recovery
// codes, second step, dashboard; administration: staff, waiting areas, settings, the
// re-authentication dialog, reports with charts, an operator's first visit and enrolment)
// must report no violation; sign-in works by keyboard alone (Tab order, typing, Enter, the
// second factor included); and at 200 % zoom no page scrolls sideways, both as a 640-pixel
// viewport (1280 at 200 %) and with CSS zoom 2.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { addClinician, totp } from './lib/stack.mjs';
import { operatorSignsIn, until } from './lib/journeys.mjs';
import { openBrowser, stack, useStack } from './lib/suite.mjs';

const AXE = await readFile(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
useStack();
const found = []; // "page: violation" lines from every check, reported together at the end


// axe-core in the page. Evaluated through the DevTools protocol, which the page's CSP
// (script-src 'self') does not govern, so the page itself stays as it is served.
async function axe(page, what) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE);
  const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  for (const v of res.violations)
    found.push(`${what}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  return res;
}

// 200 % zoom, two ways: the layout width a 1280-pixel window has at 200 % (640 CSS pixels), and
// CSS zoom 2 at 1280. Either way the page must not be wider than the window.
async function zoom(page, what) {
  const vp = page.viewportSize();
  await page.setViewportSize({ width: 640, height: 400 });
  const narrow = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  await page.setViewportSize({ width: 1280, height: 800 });
  const zoomed = await page.evaluate(() => {
    document.documentElement.style.zoom = '2';
    const r = [document.documentElement.scrollWidth, document.documentElement.clientWidth];
    document.documentElement.style.zoom = '';
    return r;
  });
  await page.setViewportSize(vp);
  if (narrow[0] > narrow[1]) found.push(`${what}: scrolls sideways at 640 px (${narrow[0]} > ${narrow[1]})`);
  if (zoomed[0] > zoomed[1]) found.push(`${what}: scrolls sideways at CSS zoom 2 (${zoomed[0]} > ${zoomed[1]})`);
}

async function check(page, what) {
  await axe(page, what);
  await zoom(page, what);
}

// Presses Tab until the element with this id has focus (at most `max` presses).
async function tabTo(page, id, max = 15) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if ((await page.evaluate(() => document.activeElement && document.activeElement.id)) === id) return i + 1;
  }
  throw new Error(`Tab never reached #${id}`);
}

const focused = (page) => page.evaluate(() => document.activeElement && document.activeElement.id);

// The next TOTP step's code once the current one (used already) is over: codes work once.
async function freshCode(secret, usedStep) {
  while (Math.floor(Date.now() / 30000) <= usedStep) await new Promise((r) => setTimeout(r, 500));
  return { code: totp(secret), step: Math.floor(Date.now() / 30000) };
}

test('axe-core finds nothing on any page, sign-in works by keyboard, 200 % zoom reflows', async () => {
  // ---- patient ----
  const pb = await openBrowser('patient');
  const P = pb.page;
  await P.goto(`${stack.origin}/patient.html#clinic=${stack.clinic}&area=demo`);
  await P.waitForSelector('#btn-check:not([disabled])');
  await check(P, 'patient entry');
  await P.click('#btn-check');
  await until('reachability', async () => (await P.textContent('#reach-signal')) === 'reachable');
  await check(P, 'patient pre-call check');
  await P.click('#btn-check-done');
  await P.waitForSelector('#f-name');
  await check(P, 'patient details');
  await P.fill('#f-name', 'Avery Access');
  await P.check('#f-consent');
  await P.click('#btn-arrive');
  await P.waitForSelector('#wait-status:text("waiting room")');
  await check(P, 'patient waiting');

  // ---- staff sign-in by keyboard alone, with enrolment ----
  const who = await addClinician(stack, 'Kim Keyboard', ['clinic_admin', 'provider']);
  const sb = await openBrowser('staff');
  const S = sb.page;
  await S.goto(`${stack.origin}/`);
  await S.waitForSelector('#s-signin:not([hidden])');
  await check(S, 'staff sign-in');
  await tabTo(S, 'email');
  await S.keyboard.type(who.email);
  await S.keyboard.press('Tab');
  assert.equal(await focused(S), 'password', 'Tab from the email goes to the password');
  await S.keyboard.type(who.password);
  await S.keyboard.press('Tab');
  assert.equal(await focused(S), 'btn-signin', 'then to the sign-in button');
  await S.keyboard.press('Enter');
  await S.waitForSelector('#enrol-secret:not(:empty)');
  await check(S, 'staff second-factor enrolment');
  const secret = await S.textContent('#enrol-secret');
  const first = { code: totp(secret), step: Math.floor(Date.now() / 30000) };
  await tabTo(S, 'enrol-code');
  await S.keyboard.type(first.code);
  await S.keyboard.press('Enter');
  await S.waitForSelector('#recovery-codes li');
  await check(S, 'staff recovery codes');
  await tabTo(S, 'btn-recovery-done');
  await S.keyboard.press('Enter');
  await S.waitForSelector('#s-dash:not([hidden])');
  await until('the dashboard', async () => (await S.textContent('#dash-status')) === 'Connected.');
  await check(S, 'staff dashboard');

  // Sign out and in again by keyboard: password, then the second step with a fresh code.
  await tabTo(S, 'btn-signout', 40);
  await S.keyboard.press('Enter');
  await S.waitForSelector('#s-signin:not([hidden])');
  await tabTo(S, 'email');
  await S.keyboard.type(who.email);
  await S.keyboard.press('Tab');
  await S.keyboard.type(who.password);
  await S.keyboard.press('Enter');
  await S.waitForSelector('#s-totp:not([hidden])');
  await check(S, 'staff second step');
  const second = await freshCode(secret, first.step);
  if ((await focused(S)) !== 'totp-code') await tabTo(S, 'totp-code');
  await S.keyboard.type(second.code);
  await S.keyboard.press('Enter');
  await S.waitForSelector('#s-dash:not([hidden])');

  // ---- administration ----
  await S.goto(`${stack.origin}/admin.html#staff`);
  await S.waitForSelector('#v-staff:not([hidden]) [data-testid="member"]');
  await check(S, 'admin staff');
  await S.goto(`${stack.origin}/admin.html#areas`);
  await S.waitForSelector('#v-areas:not([hidden]) [data-testid="area"]');
  await check(S, 'admin waiting areas');
  await S.goto(`${stack.origin}/admin.html#settings`);
  await S.waitForSelector('#v-settings:not([hidden])');
  await until('the clinic name', async () => (await S.inputValue('#settings-name')) !== '');
  await check(S, 'admin clinic settings');
  await S.evaluate(() => document.getElementById('reauth').showModal());
  await check(S, 'admin re-authentication dialog');
  await S.keyboard.press('Escape');
  // Reports by keyboard: the form's controls in order, Enter runs it.
  await S.goto(`${stack.origin}/admin.html#reports`);
  await S.waitForSelector('#v-reports:not([hidden])');
  await tabTo(S, 'rep-run', 40);
  await S.keyboard.press('Enter');
  await S.waitForSelector('svg#chart-calls', { state: 'attached' });
  await tabTo(S, 'rep-csv', 5);
  await check(S, 'admin reports');
  await S.setViewportSize({ width: 1280, height: 800 });
  await S.selectOption('#rep-by', 'hour');
  await S.click('#rep-run');
  await until('hourly report', async () => (await S.locator('[data-testid="rep-table"] tbody tr').count()) >= 24);
  await check(S, 'admin reports by hour');

  // ---- an operator's first visit: no clinic yet, then the second-factor enrolment ----
  const O = (await openBrowser('operator')).page;
  // The staff page leads to enrolment at once; the operator goes to the admin page instead,
  // which leads there too once a clinic route refuses.
  await operatorSignsIn(O, stack);
  await O.goto(`${stack.origin}/admin.html`);
  await O.waitForSelector('#v-none:not([hidden])');
  await check(O, 'admin, operator without a clinic');
  await O.fill('#operator-id', String(stack.clinic));
  await O.click('#operator-form button[type="submit"]');
  await O.waitForSelector('#v-enrol:not([hidden]) #enrol-secret:not(:empty)');
  await check(O, 'admin second-factor enrolment');

  assert.deepEqual(found, [], `accessibility findings:\n${found.join('\n')}`);
});
