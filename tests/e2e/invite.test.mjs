// C4: a clinician in a call with a patient makes invite links; a third and a fourth participant
// (an interpreter with a language, and a relative) join through them and all four decode all;
// the interpreter's language shows on the others' tiles; a used link is refused, and a fifth
// participant is refused with a clear message on their page. A room_full arriving after
// `joined` (two joins racing on two nodes; injected into the real signalling stream here) takes
// the invitee and the clinician off the call screen with the same message.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addClinician } from './lib/stack.mjs';
import { until, enrolClinician, patientArrives, admit } from './lib/journeys.mjs';
import { openBrowser, stack, useStack } from './lib/suite.mjs';
import { decodingCount, instrumentContext, keepConsole, reporting, waitProgress } from './lib/rtcstats.mjs';

useStack();

async function makeLink(S, lang) {
  await S.fill('#invite-lang', lang);
  const before = await S.inputValue('#invite-link');
  await S.click('#btn-invite');
  return until('a new invite link', async () => {
    const v = await S.inputValue('#invite-link');
    return v !== before && v.includes('#invite=') ? v : null;
  });
}

async function inviteeJoins(page, link, name) {
  await page.goto(link);
  await page.waitForSelector('#btn-check:not([disabled])');
  assert.equal(new URL(page.url()).hash, '', 'the invite fragment left the address bar');
  await page.click('#btn-check');
  await page.waitForSelector('#s-details:not([hidden])');
  await page.fill('#f-name', name);
  await page.check('#f-consent');
  await page.click('#btn-arrive');
}

test('invite links: four participants decode all, a used link and a fifth are refused', async () => {
  const doc = await addClinician(stack, 'Dr Ines Test', ['provider']);
  const [staff, patient, interp, relative, fifth, reuse] = await Promise.all(
    ['staff', 'patient', 'interp', 'relative', 'fifth', 'reuse'].map((l) => openBrowser(l)),
  );
  for (const b of [staff, patient, interp, relative]) {
    await instrumentContext(b.context);
    keepConsole(b);
  }
  // The patient's camera starts only when released here: the patient goes on without waiting
  // for the preview and is admitted while it still starts (as a slow camera on a busy machine
  // does), so its tracks must reach a call already made.
  await patient.context.addInitScript(() => {
    const md = navigator.mediaDevices;
    const gum = md.getUserMedia.bind(md);
    const gate = new Promise((r) => (window.__releaseCamera = r));
    md.getUserMedia = async (c) => {
      await gate;
      return gum(c);
    };
  });
  const S = staff.page;
  const P = patient.page;
  // The relative's and the clinician's signalling pass through here, so a frame a racing join
  // would bring can be handed to them (protocol 5.7: room_full after joined).
  const sockets = {};
  for (const [who, b] of [['relative', relative], ['staff', staff]])
    await b.page.routeWebSocket(/^wss:/, (ws) => {
      ws.connectToServer(); // frames flow both ways unchanged
      sockets[who] = ws;
    });
  await enrolClinician(S, stack.origin, doc);
  const entryLink = await S.locator('[data-testid="entry-link"]').first().textContent();
  await patientArrives(P, entryLink, { name: 'Pat Invite' });
  await admit(S, 'Pat Invite');
  await P.waitForSelector('#call:not([hidden])');
  await P.evaluate(() => window.__releaseCamera());
  const all = { staff, patient, interp, relative };
  await reporting(all, () => waitProgress('the clinician decoding the patient who was admitted before the camera started',
    { S }, (s) => decodingCount(s.S) >= 1));

  // Links carry the token in the fragment only.
  const l1 = await makeLink(S, 'uk');
  assert.match(l1, /^https:\/\/[^/]+\/patient\.html#invite=AR1\.[^&]+&servers=[A-Za-z0-9_-]+&monitor=AR1\.[^&]+$/);
  const l2 = await makeLink(S, '');
  assert.notEqual(l1, l2);
  await inviteeJoins(interp.page, l1, 'Olena Interpreter');
  await interp.page.waitForSelector('#call:not([hidden])');
  await inviteeJoins(relative.page, l2, 'Sam Relative');
  await relative.page.waitForSelector('#call:not([hidden])');

  // All four decode all: three inbound videos on every page, each with frames decoded.
  const pages = [S, P, interp.page, relative.page];
  await reporting(all, () => waitProgress('every page decoding three videos',
    { S, P, interp: interp.page, relative: relative.page },
    (snaps) => Object.values(snaps).every((s) => decodingCount(s) >= 3)));

  // The interpreter's language on the clinician's and the patient's tiles.
  for (const page of [S, P])
    await page.locator('[data-testid="remote-tile"] figcaption', { hasText: 'interpreter, uk' }).waitFor();

  // The first link again: already used.
  await inviteeJoins(reuse.page, l1, 'Someone Again');
  await reuse.page.waitForSelector('#s-end:not([hidden])');
  assert.match(await reuse.page.textContent('#end-text'), /already used/);

  // A fifth participant: the room is full.
  const l5 = await makeLink(S, 'fr');
  await inviteeJoins(fifth.page, l5, 'Fifth Person');
  await fifth.page.waitForSelector('#s-end:not([hidden])');
  assert.match(await fifth.page.textContent('#end-text'), /call is full/);
  // Nobody else lost their call.
  for (const page of pages) assert.equal(await page.isHidden('#call'), false);

  // Two joins racing on two nodes: the one ranked fifth was answered `joined` and is taken out
  // again with room_full. The invitee's page leaves the call with the clear message; so does a
  // clinician's, back to the dashboard.
  const full = JSON.stringify({ v: 1, type: 'error', seq: 0, code: 12, name: 'room_full', about: 'join', text: 'the room already has four participants' });
  sockets.relative.send(full);
  await relative.page.waitForSelector('#s-end:not([hidden])');
  assert.match(await relative.page.textContent('#end-text'), /call is full/);
  assert.equal(await relative.page.isHidden('#call'), true);
  sockets.staff.send(full);
  await S.waitForSelector('#s-dash:not([hidden])');
  assert.equal(await S.isHidden('#call'), true);
  assert.match(await S.textContent('#dash-status'), /call is full/);
});
