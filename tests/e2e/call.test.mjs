// A patient enters through the clinic link, a clinician signs in (enrolling TOTP), admits them,
// and the two talk in real Chromium: both decode each other's video, chat and a 1 MB file cross,
// the verification codes match, and the page's own verify.js gives the same code whichever
// fingerprint comes first and a different one when either changes (I3). After the consultation: the patient's browser storage is empty,
// the database and logs hold nothing the patient typed, no request left the deployment, and no
// CSP violation happened. Then the clinician signs in again through the second step, and the
// first operator (no clinic of their own) is led to enrolment at their first sign-in.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { addClinician, stateFiles, totp } from './lib/stack.mjs';
import { framesDecoded } from './lib/browser.mjs';
import { until, enrolClinician, operatorSignsIn, patchArea, patientArrives, admit } from './lib/journeys.mjs';
import { openBrowser, stack, useStack } from './lib/suite.mjs';

useStack();

test('patient and clinician: video both ways, chat, file, verification code, nothing left behind', async (t) => {
  const doc = await addClinician(stack, 'Dr Ana Test', ['provider', 'clinic_admin']);
  const staff = await openBrowser('staff');
  const patient = await openBrowser('patient');
  const S = staff.page;
  const P = patient.page;

  // Clinician: password, then TOTP enrolment with a code computed here (RFC 6238).
  const { recoveryCodes } = await enrolClinician(S, stack.origin, doc);
  assert.equal(recoveryCodes.length, 10);

  // The demo area asks for a reason too (PATCH through the clinician's own session).
  await patchArea(S, stack.clinic, { fields_asked: 'name,reason' });

  // Patient: the entry link from the dashboard; the fragment leaves the address bar at once.
  const link = await S.locator('[data-testid="entry-link"]').first().textContent();
  assert.match(link, /\/patient\.html#clinic=\d+&area=demo$/);
  const name = `Zoe Patient ${randomBytes(4).toString('hex')}`;
  const reason = `Knee pain ${randomBytes(4).toString('hex')}`;
  const chatText = `hello from the patient ${randomBytes(4).toString('hex')}`;
  await patientArrives(P, link, { name, reason });
  assert.equal(new URL(P.url()).hash, '', 'the entry fragment left the address bar');
  for (const id of ['#reach-signal', '#reach-turn-udp'])
    await until(`${id} reachable`, async () => (await P.textContent(id)) === 'reachable');

  // Clinician: the card shows the patient and the answer; a message reaches the waiting room;
  // admit after confirming.
  const card = S.locator('[data-testid="queue-card"]', { hasText: name });
  await card.waitFor();
  assert.match(await card.textContent(), new RegExp(reason));
  await card.locator('[data-action="message"]').click();
  await S.fill('#msg-text', 'Running five minutes late');
  await S.click('#btn-msg-send');
  await P.locator('#wait-messages li', { hasText: 'Running five minutes late' }).waitFor();
  await admit(S, name);
  await P.waitForSelector('#call:not([hidden])');

  // Both decode each other's video.
  for (const [who, page] of [['clinician', S], ['patient', P]])
    await until(`${who} decoding video`, async () => (await framesDecoded(page)).some((n) => n > 0), 30000);

  // Verification codes: the same digits on both screens.
  const code = (page) => page.getAttribute('[data-testid="remote-tile"]', 'data-verify');
  const transports = (page) =>
    page.evaluate(async () => {
      const o = [];
      for (const pc of window.__pcs) (await pc.getStats()).forEach((x) => x.type === 'transport' && o.push(x));
      return JSON.stringify(o);
    });
  const codeS = await until('clinician code', () => code(S)).catch(async (e) => assert.fail(`${e.message}: ${await transports(S)}`));
  const codeP = await until('patient code', () => code(P)).catch(async (e) => assert.fail(`${e.message}: ${await transports(P)}`));
  assert.match(codeS, /^\d{4} \d{4} \d{4}$/);
  assert.equal(codeS, codeP);

  // I3, "different when a server sits in the middle": the page's own verify.js (the module it
  // loaded, through its modulepreload link) on the fingerprints this connection negotiated. The
  // code is the displayed one, the same whichever fingerprint comes first, and changes when
  // either fingerprint is replaced (a relay terminating DTLS presents its own certificate).
  const i3 = await P.evaluate(async () => {
    const href = document.querySelector('link[rel="modulepreload"][href*="/verify."]').href;
    const v = await import(href);
    const pc = window.__pcs.find((x) => x.connectionState === 'connected');
    const [local, remote] = await v.fingerprints(pc);
    const other = (fp) => fp.replace(/[0-9A-F]{2}$/, (h) => ((parseInt(h, 16) + 1) & 255).toString(16).padStart(2, '0').toUpperCase());
    return {
      local,
      remote,
      code: await v.codeFromFingerprints(local, remote),
      swapped: await v.codeFromFingerprints(remote, local),
      lower: await v.codeFromFingerprints(local.toLowerCase(), remote),
      mitmRemote: await v.codeFromFingerprints(local, other(remote)),
      mitmLocal: await v.codeFromFingerprints(other(local), remote),
      viaApi: await v.verificationCode(pc),
      // Whether Chromium's transport stats named the remote certificate (else the code came
      // from the DTLS transport's own certificate list): reported, not asserted.
      statsRemote: [...(await pc.getStats()).values()].some((x) => x.type === 'transport' && x.remoteCertificateId),
    };
  });
  assert.match(i3.local, /^sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.notEqual(i3.local, i3.remote);
  assert.equal(i3.code, codeP);
  assert.equal(i3.viaApi, codeP);
  assert.equal(i3.swapped, i3.code);
  assert.equal(i3.lower, i3.code);
  assert.notEqual(i3.mitmRemote, i3.code);
  assert.notEqual(i3.mitmLocal, i3.code);
  assert.notEqual(i3.mitmLocal, i3.mitmRemote);
  t.diagnostic(`remote certificate in the patient's transport stats: ${i3.statsRemote}`);

  // Chat both ways.
  await P.fill('#chat-input', chatText);
  await P.click('#chat-send');
  await S.locator('[data-testid="chat-line"]', { hasText: chatText }).waitFor();
  await S.fill('#chat-input', 'hello from the clinic');
  await S.click('#chat-send');
  await P.locator('[data-testid="chat-line"]', { hasText: 'hello from the clinic' }).waitFor();

  // A 1 MB file from the patient, checked by its SHA-256 on the clinician's side.
  const file = randomBytes(1024 * 1024);
  const sha = createHash('sha256').update(file).digest('hex');
  await P.setInputFiles('#file-input', { name: 'scan.bin', mimeType: 'application/octet-stream', buffer: file });
  await P.click('#file-send');
  const line = S.locator(`[data-testid="file-line"][data-sha256="${sha}"]`);
  await line.waitFor({ timeout: 20000 });
  assert.doesNotMatch(await line.textContent(), /damaged/);

  // The clinician ends the consultation; the patient sees the end screen.
  await S.click('#btn-end');
  await P.waitForSelector('#s-end:not([hidden])');
  await S.waitForSelector('#s-dash:not([hidden])');

  // The patient's browser keeps nothing.
  const storage = await P.evaluate(async () => ({
    cookie: document.cookie,
    local: localStorage.length,
    session: sessionStorage.length,
    idb: (await indexedDB.databases()).length,
    caches: (await caches.keys()).length,
  }));
  assert.deepEqual(storage, { cookie: '', local: 0, session: 0, idb: 0, caches: 0 });
  // Nor does the page itself: the call's chat and files are gone from the DOM.
  assert.equal(await P.evaluate((t) => document.body.innerHTML.includes(t), chatText), false);
  assert.equal(await P.locator('[data-testid="file-line"]').count(), 0);
  assert.deepEqual((await patient.context.storageState()).cookies, []);

  // Nothing the patient typed reached the database or a log. SQLite may still hold pages in
  // the WAL, so the -wal file is read too.
  await new Promise((r) => setTimeout(r, 500));
  for (const f of await stateFiles(stack)) {
    const data = await readFile(f);
    for (const s of [name, reason, chatText, 'scan.bin'])
      assert.equal(data.includes(Buffer.from(s)), false, `${f} holds "${s}"`);
  }

  // Every request went to the deployment's own origins (app, signalling, call monitor); no CSP
  // violation anywhere.
  const allowed = new Set([`127.0.0.1:${stack.ports.app}`, `127.0.0.1:${stack.ports.signal}`, `127.0.0.1:${stack.ports.monitor}`]);
  for (const b of [staff, patient]) {
    for (const u of b.requests) {
      const url = new URL(u);
      if (url.protocol === 'data:' || url.protocol === 'blob:') continue;
      assert.ok(allowed.has(url.host), `${b.label} requested ${u}`);
    }
    assert.ok(b.requests.some((u) => u.startsWith('wss://')), `${b.label} opened no WebSocket`);
    for (const p of b.context.pages()) assert.deepEqual(await p.evaluate(() => window.__csp), [], `${b.label} CSP`);
    assert.deepEqual(b.console.filter((m) => /Content Security Policy|pageerror/i.test(m)), [], `${b.label} console`);
  }

  // Signing in again goes through the second step (a recovery code: the enrolment code's time
  // step cannot be used twice, and waiting for the next one would cost up to 30 s).
  await S.click('#btn-signout');
  await S.waitForSelector('#s-signin:not([hidden])');
  await S.fill('#email', doc.email);
  await S.fill('#password', doc.password);
  await S.click('#btn-signin');
  await S.waitForSelector('#s-totp:not([hidden])');
  await S.fill('#totp-code', recoveryCodes[0]);
  await S.click('#btn-totp');
  await S.waitForSelector('#dash-status:text("Connected.")');
});

test('the first operator signing in on the staff page is led to enrolment', async () => {
  const O = (await openBrowser('operator')).page;
  // No clinic of their own, so nothing on the page would have probed a clinic route: the
  // sign-in itself must lead to enrolment (clinic routes answer 403 until then).
  await operatorSignsIn(O, stack);
  const refused = await O.evaluate(async (c) => (await fetch(`/api/v1/clinics/${c}/areas`)).json(), stack.clinic);
  assert.equal(refused.error?.code, 'mfa_enrolment_required');
  await O.fill('#enrol-code', totp(await O.textContent('#enrol-secret')));
  await O.click('#btn-enrol');
  await O.waitForSelector('#recovery-codes li');
  assert.equal(await O.locator('#recovery-codes li').count(), 10);
  await O.click('#btn-recovery-done');
  await O.waitForSelector('#s-dash:not([hidden])');
  const areas = await O.evaluate(async (c) => (await fetch(`/api/v1/clinics/${c}/areas`)).status, stack.clinic);
  assert.equal(areas, 200, 'clinic routes open once the second factor is enrolled');
});
