// web/js/endings.js: which final close codes end the patient's consultation screen (and wipe
// what the page kept for a reload), and with which words. Every final code of signal.js but
// 1000 ends it: a session the server ended must not leave its tokens in the tab.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';

const { patientEnding, patientErrorEnding } = await import('../../../web/js/endings.js');

test('every final close code but 1000 ends the page', () => {
  const src = readFileSync(new URL('../../../web/js/signal.js', import.meta.url), 'utf8');
  const finals = JSON.parse(src.match(/const FINAL = new Set\((\[[^\]]*\])\)/)[1]);
  assert.ok(finals.length >= 9, String(finals));
  for (const code of finals) {
    const end = patientEnding(code, { active: true });
    if (code === 1000) assert.equal(end, null);
    else assert.ok(end, `code ${code} leaves the page as it is`);
  }
});

test('the words for each ending', () => {
  assert.deepEqual(patientEnding(4007), { msg: undefined });
  assert.match(patientEnding(4015).msg, /left the call/);
  assert.equal(patientEnding(4005, { active: false }), null);
  assert.match(patientEnding(4005, { active: true }).msg, /four participants/);
  assert.match(patientEnding(4001, { invitee: true }).msg, /invitation link/);
  assert.match(patientEnding(4001).msg, /link has expired/);
  assert.match(patientEnding(4012).msg, /out of date/);
  for (const c of [4003, 4008, 4013]) assert.match(patientEnding(c).msg, /went wrong/);
  // Not final: the client resumes, nothing ends.
  for (const c of [1006, 4006, 4009, 4010, 4016]) assert.equal(patientEnding(c), null);
});

test('error frames that end the page: a full room in a call, an invitation into another clinic', () => {
  assert.match(patientErrorEnding({ name: 'room_full', about: 'join' }, { active: true }).msg, /four participants/);
  assert.equal(patientErrorEnding({ name: 'room_full', about: 'join' }), null);
  assert.match(patientErrorEnding({ name: 'forbidden', about: 'join' }, { active: true, invitee: true }).msg,
    /invitation link cannot be used/);
  // A patient's forbidden join, or an invitee's forbidden quality change: the page goes on.
  assert.equal(patientErrorEnding({ name: 'forbidden', about: 'join' }, { active: true }), null);
  assert.equal(patientErrorEnding({ name: 'forbidden', about: 'quality' }, { active: true, invitee: true }), null);
  assert.equal(patientErrorEnding({ name: 'closed', about: 'arrive' }, { active: true }), null);
});
