// Keyboard alone (I5): the patient's way in (entry, check, details, consent) and the clinician's
// sign-in, enrolment and admission are done with Tab, Shift+Tab, typing, Space and Enter only:
// every control is reached through the tab order and activated from the keyboard; the screen
// change moves focus to the new screen's heading. At 200% zoom the screens still fit the width.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addClinician, totp } from './lib/stack.mjs';
import { openBrowser, stack, useStack } from './lib/suite.mjs';

useStack();

// Presses Tab until selector has focus (at most 40 times); fails if it never gets it.
async function tabTo(page, selector) {
  for (let i = 0; i < 40; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
    await page.keyboard.press('Tab');
  }
  assert.fail(`${selector} cannot be reached with Tab`);
}

// 200% zoom of a 1280-pixel-wide window is a 640-pixel viewport in CSS pixels: the screen must
// still fit its width (no sideways scrolling).
async function fitsAtDoubleZoom(page, what) {
  const size = page.viewportSize();
  await page.setViewportSize({ width: 640, height: 400 });
  const over = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  await page.setViewportSize(size);
  assert.ok(over <= 0, `${what}: ${over} px wider than the viewport at 200% zoom`);
}

async function typeInto(page, selector, text) {
  await tabTo(page, selector);
  await page.keyboard.type(text);
}

test('patient and clinician journeys by keyboard alone', async () => {
  const doc = await addClinician(stack, 'Dr Kay', ['provider']);
  const staff = await openBrowser('staff');
  const patient = await openBrowser('patient');
  const S = staff.page;
  const P = patient.page;

  await S.goto(`${stack.origin}/`);
  await typeInto(S, '#email', doc.email);
  await typeInto(S, '#password', doc.password);
  await S.keyboard.press('Enter');
  await S.waitForSelector('#enrol-secret:not(:empty)');
  assert.equal(await S.evaluate(() => document.activeElement.id), 'enrol-h', 'focus moves to the new screen');
  await typeInto(S, '#enrol-code', totp(await S.textContent('#enrol-secret')));
  await S.keyboard.press('Enter');
  await S.waitForSelector('#recovery-codes li');
  await tabTo(S, '#btn-recovery-done');
  await S.keyboard.press('Enter');
  await S.waitForSelector('#dash-status:text("Connected.")');
  await fitsAtDoubleZoom(S, 'dashboard');

  const link = await S.locator('[data-testid="entry-link"]').first().textContent();
  await P.goto(link);
  await P.waitForSelector('#btn-check:not([disabled])');
  await tabTo(P, '#btn-check');
  await P.keyboard.press('Enter');
  await P.waitForSelector('#s-check:not([hidden])');
  await tabTo(P, '#btn-speaker');
  await P.keyboard.press('Space');
  await tabTo(P, '#btn-check-done');
  await P.keyboard.press('Enter');
  await P.waitForSelector('#s-details:not([hidden])');
  await fitsAtDoubleZoom(P, 'details');
  await typeInto(P, '#f-name', 'Kai Keys');
  await tabTo(P, '#f-consent');
  await P.keyboard.press('Space');
  await tabTo(P, '#btn-arrive');
  await P.keyboard.press('Enter');
  await P.waitForSelector('#wait-status:text("waiting room")');

  await S.locator('[data-testid="queue-card"]', { hasText: 'Kai Keys' }).waitFor();
  await tabTo(S, '[data-action="admit"]');
  await S.keyboard.press('Enter');
  await S.waitForSelector('#confirm[open]');
  await tabTo(S, '#btn-confirm-ok');
  await S.keyboard.press('Enter');
  await S.waitForSelector('#call:not([hidden])');
  await P.waitForSelector('#call:not([hidden])');
  await fitsAtDoubleZoom(P, 'patient call');
  await fitsAtDoubleZoom(S, 'clinician call');

  // In the call: mute by keyboard, then end.
  await tabTo(S, '#btn-mute');
  await S.keyboard.press('Space');
  assert.equal(await S.getAttribute('#btn-mute', 'aria-pressed'), 'true');
  await tabTo(S, '#btn-end');
  await S.keyboard.press('Enter');
  await P.waitForSelector('#s-end:not([hidden])');
});
