// Steps of the journeys, shared by the end-to-end tests (they follow web/README.md's contract).
import { totp } from './stack.mjs';

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

// First sign-in of a clinician made by addClinician: password, TOTP enrolment with a code
// computed here, recovery codes; resolves on the connected dashboard with
// {secret, recoveryCodes}.
export async function enrolClinician(page, stack, doc) {
  await page.goto(`${stack.origin}/`);
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
  await page.waitForSelector('#dash-status:text("Connected.")');
  return { secret, recoveryCodes };
}

// The patient's way in: entry page, pre-call check, details and consent; resolves once queued.
export async function patientArrives(page, link, fields) {
  await page.goto(link);
  await page.waitForSelector('#btn-check:not([disabled])');
  await page.click('#btn-check');
  await page.click('#btn-check-done');
  for (const [k, v] of Object.entries(fields)) await page.fill(`#f-${k}`, v);
  await page.check('#f-consent');
  await page.click('#btn-arrive');
  await page.waitForSelector('#wait-status:text("waiting room")');
}

// The clinician admits the patient whose card shows name, confirming first.
export async function admit(page, name) {
  const card = page.locator('[data-testid="queue-card"]', { hasText: name });
  await card.waitFor();
  await card.locator('[data-action="admit"]').click();
  await page.click('#btn-confirm-ok');
  await page.waitForSelector('#call:not([hidden])');
  return card;
}
