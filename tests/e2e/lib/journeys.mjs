// The journeys the browser tests share, through the pages' DOM contract (web/README.md): a
// clinician's first sign-in (enrolling TOTP), the first operator's, a patient's way in through
// the entry link, admission, and the clinic API through a signed-in page's own session.
import { randomBytes } from 'node:crypto';

import { totp } from './stack.mjs';

// Polls fn every 250 ms until it returns something truthy (returned), or fails after ms.
export async function until(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

// First sign-in on page of a clinician made by addClinician, at origin (stack.origin): password,
// TOTP enrolment with a code computed here (RFC 6238), recovery codes. Resolves on the dashboard,
// connected to signalling unless connected is false (an administrator only changing settings),
// with {secret, recoveryCodes}.
export async function enrolClinician(page, origin, doc, { connected = true } = {}) {
  await page.goto(`${origin}/`);
  await page.fill('#email', doc.email);
  await page.fill('#password', doc.password);
  await page.click('#btn-signin');
  await page.waitForSelector('#enrol-secret:not(:empty)');
  const secret = await page.textContent('#enrol-secret');
  await page.fill('#enrol-code', totp(secret));
  await page.click('#btn-enrol');
  await page.waitForSelector('#recovery-codes li');
  const recoveryCodes = await page.locator('#recovery-codes li').allTextContents();
  await page.click('#btn-recovery-done');
  if (connected) await page.waitForSelector('#dash-status:text("Connected.")', { timeout: 45000 });
  else await page.waitForSelector('#s-dash:not([hidden])');
  return { secret, recoveryCodes };
}

// The first operator (`anteroom up` prints their one-time password) signs in on the staff page
// O; resolves on the enrolment screen the page leads them to (no clinic of their own, no second
// factor yet).
export async function operatorSignsIn(O, stack) {
  const m = stack.output().match(/operator account (\S+), one-time password (\S+)/);
  if (!m) throw new Error('anteroom up printed no first operator');
  await O.goto(`${stack.origin}/`);
  await O.fill('#email', m[1]);
  await O.fill('#password', m[2]);
  await O.click('#btn-signin');
  await O.waitForSelector('#s-enrol:not([hidden]) #enrol-secret:not(:empty)');
}

// The patient's way in on page: entry link, pre-call check (waiting until signalling is
// reachable when waitCheck), details, consent; resolves once queued, with the name typed.
// fields: #f-<key> to fill with each value; without them a random name (so the queue card is
// found by it) and a reason when the area asks one.
export async function patientArrives(page, link, fields = null, { waitCheck = false } = {}) {
  await page.goto(link);
  await page.waitForSelector('#btn-check:not([disabled])');
  await page.click('#btn-check');
  if (waitCheck)
    await until('signalling reachable', async () => (await page.textContent('#reach-signal')) === 'reachable');
  await page.click('#btn-check-done');
  const typed = fields ?? { name: `Pat ${randomBytes(4).toString('hex')}` };
  for (const [k, v] of Object.entries(typed)) await page.fill(`#f-${k}`, v);
  if (!fields && (await page.locator('#f-reason').isVisible())) await page.fill('#f-reason', 'check-up');
  await page.check('#f-consent');
  await page.click('#btn-arrive');
  await page.waitForSelector('#wait-status:text("waiting room")');
  return typed.name;
}

export function entryLink(S) {
  return S.textContent('[data-testid="entry-link"]');
}

export function queueCard(S, name) {
  return S.locator('[data-testid="queue-card"]', { hasText: name });
}

// The clinician on page S admits the patient whose card shows name, confirming first; resolves
// with the card once S (and the patient's page P, when given) shows the call screen.
export async function admit(S, name, P = null) {
  const card = queueCard(S, name);
  await card.waitFor();
  await card.locator('[data-action="admit"]').click();
  await S.click('#btn-confirm-ok');
  await S.waitForSelector('#call:not([hidden])');
  if (P) await P.waitForSelector('#call:not([hidden])');
  return card;
}

// A request to the app's API through page's own session (a signed-in clinician or
// administrator), with the session's CSRF token: {status, text}.
export function pageApi(page, method, path, body) {
  return page.evaluate(
    async ([method, path, body]) => {
      const me = await (await fetch('/api/v1/me')).json();
      const r = await fetch(path, {
        method,
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: r.status, text: await r.text() };
    },
    [method, path, body],
  );
}

// PATCHes the demo area through the page's session (e.g. {relay_only: true}).
export async function patchArea(S, clinic, body) {
  const r = await pageApi(S, 'PATCH', `/api/v1/clinics/${clinic}/areas/demo`, body);
  if (r.status >= 300) throw new Error(`PATCH area: ${r.status}`);
}
