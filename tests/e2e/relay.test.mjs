// Relay-only (S11): in a waiting area that requires it, the call goes through anteroom-turn on
// both sides: getStats' selected candidate pair is relay at each end, and video decodes.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { admit, patientArrives, entryLink, patchArea, enrolClinician } from './lib/journeys.mjs';
import { waitDecoding } from './lib/rtcstats.mjs';
import { addClinician } from './lib/stack.mjs';
import { openBrowser, stack, useStack } from './lib/suite.mjs';

// Everything is on 127.0.0.1 here, so relaying between two allocations means a loopback peer,
// which the relay refuses unless told (a deployment's relay address is public).
useStack({ env: { ANTEROOM_TURN_ALLOW_LOOPBACK_PEERS: 'true' } });

test('relay-only area: both ends of the selected candidate pair are relay candidates', async () => {
  const doc = await addClinician(stack, 'Dr Rel Ay', ['provider']);
  const staff = await openBrowser('staff');
  const patient = await openBrowser('patient');
  const S = staff.page;
  const P = patient.page;
  // A clinic administrator makes the area relay-only before the clinician's day begins (the
  // dashboard reads the areas' rules at sign-in).
  const adm = await addClinician(stack, 'Ad Ministrator', ['clinic_admin']);
  const admCtx = await staff.browser.newContext();
  const A = await admCtx.newPage();
  await enrolClinician(A, stack.origin, adm, { connected: false });
  await patchArea(A, stack.clinic, { relay_only: true });
  await admCtx.close();
  await enrolClinician(S, stack.origin, doc);

  const name = await patientArrives(P, await entryLink(S), null, { waitCheck: true });
  await admit(S, name, P);

  for (const [who, page] of [['clinician', S], ['patient', P]]) {
    const peers = await waitDecoding(page, 1, 30000);
    const pair = peers[0];
    assert.equal(pair.local?.type, 'relay', `${who}: local end ${JSON.stringify(pair)}`);
    assert.equal(pair.remote?.type, 'relay', `${who}: remote end ${JSON.stringify(pair)}`);
    // Each page asked for relay candidates only; no host candidate was even gathered.
    const policy = await page.evaluate(() => window.__pcs.map((pc) => pc.getConfiguration().iceTransportPolicy));
    assert.ok(policy.length > 0 && policy.every((p) => p === 'relay'), `${who}: ${policy}`);
  }
});
