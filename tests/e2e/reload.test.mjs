// P6: a patient who reloads the page is back where they were. Mid-wait: the same queue card
// (same peer, same place before a patient who came later); mid-call: the call resumes and video
// decodes again on both sides.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { admit, patientArrives, entryLink, queueCard, enrolClinician, until } from './lib/journeys.mjs';
import { waitDecoding, waitSomeDecoding } from './lib/rtcstats.mjs';
import { addClinician } from './lib/stack.mjs';
import { openBrowser, stack, useStack } from './lib/suite.mjs';

useStack();

const cards = (S) => S.locator('[data-testid="queue-card"]').evaluateAll((els) =>
  els.map((e) => ({ peer: e.dataset.peer, text: e.textContent })));

test('a reload mid-wait keeps the place in the queue; a reload mid-call resumes the call', async () => {
  const doc = await addClinician(stack, 'Dr Re Load', ['provider']);
  const staff = await openBrowser('staff');
  const patient = await openBrowser('patient');
  const S = staff.page;
  const P = patient.page;
  await enrolClinician(S, stack.origin, doc);
  const link = await entryLink(S);

  // Two patients wait: P first, then Q (a second context: its own session storage).
  const first = await patientArrives(P, link, null, { waitCheck: true });
  await queueCard(S, first).waitFor();
  const qctx = await patient.browser.newContext({ permissions: ['camera', 'microphone'] });
  const Q = await qctx.newPage();
  const second = await patientArrives(Q, link, null, { waitCheck: true });
  await queueCard(S, second).waitFor();
  const before = await cards(S);
  assert.equal(before.length, 2);
  assert.match(before[0].text, new RegExp(first));
  assert.match(before[1].text, new RegExp(second));

  // The page keeps the ids of the frames it processed with its resume token (a resume after a
  // node's death drops replayed ones by id, protocol.md 5.10.1).
  const savedFids = async () =>
    P.evaluate(() => JSON.parse(sessionStorage.getItem('anteroom.resume') || '{}').fids || []);
  const fidsBefore = await savedFids();
  assert.ok(fidsBefore.length > 0 && fidsBefore.every((f) => /^[A-Za-z0-9_-]{22}$/.test(f)), JSON.stringify(fidsBefore));

  // P reloads while waiting: the waiting screen comes back by itself (nothing typed again).
  await P.reload();
  await P.waitForSelector('#s-wait:not([hidden])');
  await P.waitForSelector('#wait-status:text("waiting room")');
  assert.equal(await P.locator('#s-details').isHidden(), true);
  // The clinician still sees one card for P, the same peer, still ahead of Q.
  await new Promise((r) => setTimeout(r, 1500));
  const afterWait = await cards(S);
  assert.deepEqual(afterWait.map((c) => c.peer), before.map((c) => c.peer), JSON.stringify(afterWait));
  assert.match(afterWait[0].text, new RegExp(first));

  // The clinician admits P; both decode video.
  await admit(S, first, P);
  // The reloaded page started from the saved ids and adds the new frames' to them.
  await until('the ids saved before the reload kept after it', async () => {
    const now = await savedFids();
    return now.length > fidsBefore.length && fidsBefore.every((f) => now.includes(f));
  });
  await waitDecoding(P, 1, 30000);
  await waitDecoding(S, 1, 30000);

  // P reloads mid-call: the call screen comes back and video decodes again both ways (the
  // reloaded page has new connections; the clinician's fresh frames can only come from them).
  await P.reload();
  await P.waitForSelector('#call:not([hidden])', { timeout: 20000 });
  await waitDecoding(P, 1, 30000);
  await waitSomeDecoding(S, 20000);
  await until('the clinician still in the call', async () => !(await S.locator('#call').isHidden()));
  await qctx.close();
});
