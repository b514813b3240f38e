// I1: a call of four is a full mesh in which every participant decodes every other's video; a
// fifth is refused with a clear error (room_full, "the room already has four participants")
// and the four are not disturbed.
//
// The patient and the clinician use their pages (admission as in call.test.mjs). The third and
// fourth are meant to come by invite links (C4); while the clinician's page has none (and the
// app mints no invitee token), two more clinicians of the clinic join the consultation room, as
// signalling allows staff with a calling role, through the web client's own SignalClient and
// Mesh (lib/joiner.mjs). The fifth is a third such clinician.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { admit, patientArrives, entryLink, enrolClinician, until } from './lib/journeys.mjs';
import { joinRoom, joinState, patientRoom } from './lib/joiner.mjs';
import { callStats, decodingCount, instrumentContext, keepConsole, reporting, waitDecoding, waitProgress } from './lib/rtcstats.mjs';
import { addClinician } from './lib/stack.mjs';
import { openBrowser, stack, useStack } from './lib/suite.mjs';

useStack();

test('four in one call all decode all; a fifth is refused with room_full', async () => {
  const people = {};
  const docs = {};
  for (const n of ['one', 'three', 'four', 'five']) docs[n] = await addClinician(stack, `Dr ${n}`, ['provider']);
  // Browsers start and sign in side by side (the run time is mostly Chromium starting).
  await Promise.all(Object.keys(docs).map(async (n) => {
    people[n] = await openBrowser(n);
    await instrumentContext(people[n].context);
    keepConsole(people[n]);
    await enrolClinician(people[n].page, stack.origin, docs[n]);
  }));
  const patient = await openBrowser('patient');
  await instrumentContext(patient.context);
  keepConsole(patient);
  const all = { patient, ...people };
  const S = people.one.page;
  const P = patient.page;
  const name = await patientArrives(P, await entryLink(S), null, { waitCheck: true });
  await admit(S, name, P);
  await reporting(all, () => waitProgress('the patient decoding the clinician', { P }, (s) => decodingCount(s.P) >= 1));
  const room = await patientRoom(P);
  assert.ok(room, 'the patient token names its room');

  // The third and the fourth join at the same instant (each is the other's newcomer or the
  // one already there, whichever signalling ranks first); every page ends with three peers
  // decoding fresh video, however long a busy machine takes, as long as the call advances.
  await Promise.all(['three', 'four'].map((n) => joinRoom(people[n].page, room, `Dr ${n}`)));
  for (const n of ['three', 'four'])
    await until(`${n} joined`, async () => (await joinState(people[n].page))?.joined);
  const four = [['patient', P], ['one', S], ['three', people.three.page], ['four', people.four.page]];
  await reporting(all, () => waitProgress('every page decoding three videos', Object.fromEntries(four),
    (snaps) => Object.values(snaps).every((s) => decodingCount(s) >= 3)));
  for (const [who, page] of four) {
    const peers = await reporting(all, () => waitDecoding(page, 3, 20000));
    assert.equal(peers.length, 3, `${who}: ${JSON.stringify(peers)}`);
  }
  // The pages show a tile per other participant.
  assert.equal(await P.locator('[data-testid="remote-tile"]').count(), 3, 'patient tiles');
  assert.equal(await S.locator('[data-testid="remote-tile"]').count(), 3, 'clinician tiles');

  // The fifth is refused, with the reason in words, and never connects.
  await joinRoom(people.five.page, room, 'Dr five');
  const refused = await until('the refusal', async () => (await joinState(people.five.page))?.error);
  assert.equal(refused.name, 'room_full');
  assert.match(refused.text, /four participants/);
  assert.equal((await joinState(people.five.page)).joined, false);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await callStats(people.five.page)).filter((s) => s.state === 'connected').length, 0);
  for (const [who, page] of four) {
    const connected = (await callStats(page)).filter((s) => s.state === 'connected');
    assert.equal(connected.length, 3, `${who} after the fifth: ${connected.length}`);
  }
});
