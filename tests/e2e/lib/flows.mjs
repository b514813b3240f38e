// The journeys the call tests share, through the pages' DOM contract (web/README.md,
// tests/e2e/call.test.mjs): a clinician signs in (enrolling TOTP), changes a waiting area, a
// patient arrives through the entry link, the clinician admits them.
import { randomBytes } from 'node:crypto';

import { totp } from './stack.mjs';

// One polling helper for every test (lib/journeys.mjs).
import { until } from './journeys.mjs';

export { until };

// Signs the clinician in on page S (first sign-in: TOTP enrolment); ends on the dashboard,
// connected to signalling unless connected is false (an administrator only changing settings).
export async function signIn(S, origin, doc, { connected = true } = {}) {
  await S.goto(`${origin}/`);
  await S.fill('#email', doc.email);
  await S.fill('#password', doc.password);
  await S.click('#btn-signin');
  await S.waitForSelector('#enrol-secret:not(:empty)');
  const secret = await S.textContent('#enrol-secret');
  await S.fill('#enrol-code', totp(secret));
  await S.click('#btn-enrol');
  await S.waitForSelector('#recovery-codes li');
  await S.click('#btn-recovery-done');
  if (connected) await S.waitForSelector('#dash-status:text("Connected.")', { timeout: 45000 });
  else await S.waitForSelector('#s-dash:not([hidden])');
}

// PATCHes the demo area through the clinician's own session (e.g. {relay_only: true}).
export async function patchArea(S, clinic, body) {
  const status = await S.evaluate(async ([c, b]) => {
    const me = await (await fetch('/api/v1/me')).json();
    const r = await fetch(`/api/v1/clinics/${c}/areas/demo`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },
      body: JSON.stringify(b),
    });
    return r.status;
  }, [clinic, body]);
  if (status >= 300) throw new Error(`PATCH area: ${status}`);
}

// The patient on page P: entry link, pre-call check skipped through, details, consent, waiting.
// Returns the name typed (random, so the queue card is found by it).
export async function arrive(P, link, { waitCheck = true } = {}) {
  await P.goto(link);
  await P.waitForSelector('#btn-check:not([disabled])');
  await P.click('#btn-check');
  if (waitCheck)
    await until('signalling reachable', async () => (await P.textContent('#reach-signal')) === 'reachable');
  await P.click('#btn-check-done');
  const name = `Pat ${randomBytes(4).toString('hex')}`;
  await P.fill('#f-name', name);
  if (await P.locator('#f-reason').isVisible()) await P.fill('#f-reason', 'check-up');
  await P.check('#f-consent');
  await P.click('#btn-arrive');
  await P.waitForSelector('#wait-status:text("waiting room")');
  return name;
}

export function entryLink(S) {
  return S.textContent('[data-testid="entry-link"]');
}

export function queueCard(S, name) {
  return S.locator('[data-testid="queue-card"]', { hasText: name });
}

// The clinician admits the patient named; resolves when both show the call screen.
export async function admit(S, P, name) {
  const card = queueCard(S, name);
  await card.waitFor();
  await card.locator('[data-action="admit"]').click();
  await S.click('#btn-confirm-ok');
  await S.waitForSelector('#call:not([hidden])');
  await P.waitForSelector('#call:not([hidden])');
}

// POSTs to the clinic through the page's session (an administrator's): returns the JSON body.
export async function postClinic(S, clinic, pathTail, body) {
  const r = await S.evaluate(async ([c, t, b]) => {
    const me = await (await fetch('/api/v1/me')).json();
    const res = await fetch(`/api/v1/clinics/${c}/${t}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },
      body: JSON.stringify(b),
    });
    return { status: res.status, body: await res.json().catch(() => null) };
  }, [clinic, pathTail, body]);
  if (r.status >= 300) throw new Error(`POST ${pathTail}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}
