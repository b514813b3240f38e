// The signalling node dies mid-call (SIGKILL; `anteroom up` starts it again) and its sessions
// with it: both pages reconnect, start new sessions, rejoin the consultation's room (the
// patient's token opens it, the clinician's clinic role lets them back in) and set up fresh
// peer connections, so video flows again on both sides without anyone reloading (I4).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addClinician } from './lib/stack.mjs';
import { until, enrolClinician, patientArrives, admit } from './lib/journeys.mjs';
import { openBrowser, stack, useStack } from './lib/suite.mjs';

useStack();

// The most frames decoded by a live connection made after `since` peer connections existed.
const decodedSince = (page, since) =>
  page.evaluate(async (n) => {
    let best = 0;
    for (const pc of window.__pcs.slice(n)) {
      if (pc.connectionState !== 'connected') continue;
      (await pc.getStats()).forEach((x) => {
        if (x.type === 'inbound-rtp' && x.kind === 'video') best = Math.max(best, x.framesDecoded || 0);
      });
    }
    return best;
  }, since);

test('a signalling restart mid-call: both sides rejoin the room and video flows again', async () => {
  const doc = await addClinician(stack, 'Dr Sam', ['provider']);
  const S = await openBrowser('staff');
  const P = await openBrowser('patient');
  await enrolClinician(S.page, stack.origin, doc);
  const link = await S.page.locator('[data-testid="entry-link"]').first().textContent();
  await patientArrives(P.page, link, { name: 'Kim Restart' });
  await admit(S.page, 'Kim Restart');
  await P.page.waitForSelector('#call:not([hidden])');
  await until('patient decoding', async () => (await decodedSince(P.page, 0)) > 0, 30000);
  await until('clinician decoding', async () => (await decodedSince(S.page, 0)) > 0, 30000);

  const before = { p: await P.page.evaluate(() => window.__pcs.length), s: await S.page.evaluate(() => window.__pcs.length) };
  const pid = Number([...stack.output().matchAll(/signal: pid (\d+)/g)].pop()[1]);
  process.kill(pid, 'SIGKILL');
  await until('signalling restarted', async () => [...stack.output().matchAll(/signal: pid (\d+)/g)].length > 1, 15000);

  // New connections on both sides (made after the restart), decoding.
  await until('patient decoding on a new connection', async () => (await decodedSince(P.page, before.p)) > 0, 30000);
  await until('clinician decoding on a new connection', async () => (await decodedSince(S.page, before.s)) > 0, 30000);
  assert.equal(await P.page.isVisible('#call'), true);
  assert.equal(await S.page.isVisible('#call'), true);

  await S.page.click('#btn-end');
  await P.page.waitForSelector('#s-end:not([hidden])');
});
