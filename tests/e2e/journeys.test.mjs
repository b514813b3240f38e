// The clinician's other tools, in real Chromium: hold (no peer connection survives it) and back,
// the quality profile applied to the patient's senders, transfer to another waiting area where
// another clinician admits the patient; a second call for the first clinician with mute, chat and screen share; plus the
// pre-call check's TURN over TLS.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addClinician } from './lib/stack.mjs';
import { framesDecoded } from './lib/browser.mjs';
import { until, enrolClinician, pageApi, patientArrives, admit } from './lib/journeys.mjs';
import { openBrowser, stack, useStack } from './lib/suite.mjs';

useStack();

const senderBitrates = (page) =>
  page.evaluate(() =>
    window.__pcs
      .filter((pc) => pc.connectionState === 'connected')
      .flatMap((pc) => pc.getSenders())
      .filter((s) => s.track && s.track.kind === 'video')
      .map((s) => s.getParameters().encodings[0]?.maxBitrate),
  );

test('hold, quality, transfer, TURN over TLS', async () => {
  const ana = await addClinician(stack, 'Dr Ana', ['provider', 'clinic_admin']);
  const ben = await addClinician(stack, 'Dr Ben', ['provider']);
  const A = await openBrowser('ana');
  const B = await openBrowser('ben');
  const P = await openBrowser('patient');

  await enrolClinician(A.page, stack.origin, ana);
  // A second area, before Dr Ben signs in and loads them.
  const c = stack.clinic;
  assert.equal((await pageApi(A.page, 'POST', `/api/v1/clinics/${c}/areas`, { slug: 'physio', name: 'Physiotherapy' })).status, 201);
  await A.page.reload();
  await A.page.waitForSelector('#dash-status:text("Connected.")');
  await enrolClinician(B.page, stack.origin, ben);
  await B.page.waitForSelector('section.area >> nth=1');

  const link = await A.page.locator('[data-testid="entry-link"]').first().textContent();
  await patientArrives(P.page, link, { name: 'Hana Hold' });
  await until('TURN over TLS reachable', async () => (await P.page.textContent('#reach-turn-tls')) === 'reachable', 15000);

  // Ben sees Ana take the patient ("who is seeing whom").
  await admit(A.page, 'Hana Hold');
  await P.page.waitForSelector('#call:not([hidden])');
  const benCard = B.page.locator('[data-testid="queue-card"]', { hasText: 'Hana Hold' });
  await until('seen by Dr Ana on Ben\'s dashboard', async () => /with Dr Ana/.test(await benCard.textContent()));
  await until('patient decoding', async () => (await framesDecoded(P.page)).some((n) => n > 0), 30000);

  // Quality: low applies to the patient's video sender too.
  await A.page.selectOption('#sel-profile', 'low');
  await until('low profile on the patient side', async () => (await senderBitrates(P.page)).includes(300000));

  // Hold: the patient's connections close; back in, video flows again.
  await A.page.click('#btn-hold-call');
  await P.page.waitForSelector('#wait-status:text("on hold")');
  assert.equal(await P.page.evaluate(() => window.__pcs.filter((pc) => pc.connectionState !== 'closed').length), 0);
  await A.page.click('#btn-hold-call');
  await P.page.waitForSelector('#call:not([hidden])');
  await until('patient decoding after hold', async () => (await framesDecoded(P.page)).some((n) => n > 0), 30000);

  // Dr Ben transfers her to Physiotherapy while Dr Ana is still with her: the patient waits
  // again, in the other area's queue; Dr Ana is taken out of the room (peer_left "removed"
  // about the patient) and is back on her dashboard, told why.
  await benCard.locator('[data-action="transfer-to"]').selectOption({ label: 'Physiotherapy' });
  await benCard.locator('[data-action="transfer"]').click();
  await P.page.waitForSelector('#wait-status:text("waiting room")');
  await A.page.waitForSelector('#s-dash:not([hidden])');
  assert.match(await A.page.textContent('#dash-status'), /moved to another waiting area/);
  const physio = B.page.locator('section.area', { hasText: 'Physiotherapy' });
  await physio.locator('[data-testid="queue-card"]', { hasText: 'Hana Hold' }).waitFor();
  await physio.locator('[data-action="admit"]').click();
  await B.page.click('#btn-confirm-ok');
  await P.page.waitForSelector('#call:not([hidden])');
  await until('patient decoding Dr Ben', async () => (await framesDecoded(P.page)).some((n) => n > 0), 30000);
  await B.page.click('#btn-end');
  await P.page.waitForSelector('#s-end:not([hidden])');

  // Dr Ana's second call of the day: the controls act once (not once per earlier call).
  await patientArrives(P.page, link, { name: 'Nina Next' });
  await admit(A.page, 'Nina Next');
  await P.page.waitForSelector('#call:not([hidden])');
  assert.equal(await A.page.getAttribute('#btn-mute', 'aria-pressed'), 'false');
  await A.page.click('#btn-mute');
  assert.equal(await A.page.getAttribute('#btn-mute', 'aria-pressed'), 'true');
  // Until the chat channel is open each try sends a message of its own ("[k]": no text is a
  // part of another), so the one that got through can be counted exactly.
  const lines = (pg, text) => pg.locator('[data-testid="chat-line"]', { hasText: text }).count();
  let k = 0;
  let sent = '';
  await until('chat open', async () => {
    sent = `second call [${++k}]`;
    await A.page.fill('#chat-input', sent);
    await A.page.click('#chat-send');
    await new Promise((r) => setTimeout(r, 300));
    return (await lines(P.page, sent)) > 0;
  });
  await new Promise((r) => setTimeout(r, 1000));
  // One submit, one message: a control bound once per earlier call would send it twice.
  assert.equal(await lines(P.page, sent), 1);
  assert.equal(await lines(A.page, sent), 1);
  // Screen share replaces the camera on the video sender, and back.
  const videoTrack = () =>
    A.page.evaluate(() =>
      window.__pcs
        .filter((pc) => pc.connectionState === 'connected')
        .flatMap((pc) => pc.getSenders())
        .filter((x) => x.track && x.track.kind === 'video')
        .map((x) => x.track.label)
        .join(),
    );
  const camera = await videoTrack();
  await A.page.click('#btn-share');
  await until('screen on the sender', async () => (await videoTrack()).startsWith('screen'));
  assert.equal(await A.page.getAttribute('#btn-share', 'aria-pressed'), 'true');
  await A.page.click('#btn-share');
  await until('camera back on the sender', async () => (await videoTrack()) === camera);
  await A.page.click('#btn-end');
  await P.page.waitForSelector('#s-end:not([hidden])');
});
