// Encrypted keeping (S5, docs/keeping.md) in real Chromium: a clinic administrator turns it on
// on the administration page (the key pair is made in the browser; the test downloads the
// private key file, sealed with a passphrase), a patient and the clinician have a call with chat and a file, and the
// clinician saves the transcript and the file encrypted (uploaded in chunks, each body under
// the app's 64 KiB cap). The database and logs then hold
// neither the chat text, nor the file's bytes or name, nor the private key; the administrator
// loads the key file in the browser and opens both items: the original text and the file's
// SHA-256 come back.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addClinician, stateFiles, totp } from './lib/stack.mjs';
import { until, enrolClinician, patientArrives, admit } from './lib/journeys.mjs';
import { openBrowser, stack, useStack } from './lib/suite.mjs';

useStack();
let dir;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'anteroom-e2e-keeping-'));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('keeping: enable with a browser-made key, save transcript and file encrypted, open them with the key file', async () => {
  const doc = await addClinician(stack, 'Dr Kim Keeper', ['provider', 'clinic_admin']);
  const staff = await openBrowser('staff');
  const patient = await openBrowser('patient');
  const S = staff.page;
  const P = patient.page;
  const { secret } = await enrolClinician(S, stack.origin, doc);

  // ---- the administrator turns keeping on; the key file is downloaded ----
  const A = await staff.context.newPage();
  await A.goto(`${stack.origin}/admin.html#settings`);
  await A.waitForSelector('#v-settings:not([hidden]) [data-testid="keep-state"]:text("off")');
  const passphrase = `correct horse ${randomBytes(4).toString('hex')}`;
  await A.fill('#keep-passphrase', passphrase);
  await A.click('#keep-enable');
  // A fresh sign-in counts as re-authentication; should the page still ask, answer it.
  await until('keeping on (or the re-authentication dialog)', async () => {
    if (await A.isVisible('#reauth[open]')) {
      await A.fill('#reauth-password', doc.password);
      await A.fill('#reauth-code', totp(secret));
      await A.click('#reauth-form button[type="submit"]');
    }
    return (await A.textContent('[data-testid="keep-state"]')) === 'on';
  });
  const [download] = await Promise.all([A.waitForEvent('download'), A.click('#keep-keyfile-link')]);
  const keyPath = join(dir, 'key.json');
  await download.saveAs(keyPath);
  const keyFile = JSON.parse(await readFile(keyPath, 'utf8'));
  assert.equal(keyFile.private_key, undefined, 'the private key is not in the file in clear');
  // Unsealed here with Node's WebCrypto, following docs/keeping.md, not the page's code.
  const s = keyFile.sealed_private_key;
  assert.equal(s.kdf, 'PBKDF2-SHA256');
  const base = await webcrypto.subtle.importKey('raw', Buffer.from(passphrase), 'PBKDF2', false, ['deriveKey']);
  const kek = await webcrypto.subtle.deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt: Buffer.from(s.salt, 'base64'), iterations: s.iterations },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['decrypt'],
  );
  const jwk = JSON.parse(
    Buffer.from(
      await webcrypto.subtle.decrypt(
        { name: 'AES-GCM', iv: Buffer.from(s.iv, 'base64'), additionalData: Buffer.from(`${keyFile.format}/${keyFile.clinic}`) },
        kek,
        Buffer.from(s.ciphertext, 'base64'),
      ),
    ).toString(),
  );
  assert.equal(jwk.kty, 'RSA');
  assert.ok(jwk.d.length > 300, 'the private exponent is in the sealed part');

  // ---- a call: chat and a file from the patient ----
  const link = await S.locator('[data-testid="entry-link"]').first().textContent();
  const name = `Ivy Patient ${randomBytes(4).toString('hex')}`;
  const chatText = `my private symptom ${randomBytes(6).toString('hex')}`;
  await patientArrives(P, link, { name });
  await admit(S, name);
  await P.waitForSelector('#call:not([hidden])');
  // The clinician is a peer on the patient's side (the line waits there for the channel to open).
  await P.waitForSelector('[data-testid="remote-tile"]');
  await P.fill('#chat-input', chatText);
  await P.click('#chat-send');
  await S.locator('[data-testid="chat-line"]', { hasText: chatText }).waitFor();
  const file = randomBytes(200 * 1024);
  const fileName = `scan-${randomBytes(4).toString('hex')}.bin`;
  const sha = createHash('sha256').update(file).digest('hex');
  await P.setInputFiles('#file-input', { name: fileName, mimeType: 'application/octet-stream', buffer: file });
  await P.click('#file-send');
  const line = S.locator(`[data-testid="file-line"][data-sha256="${sha}"]`);
  await line.waitFor({ timeout: 20000 });

  // ---- the clinician keeps both, encrypted in the page, uploaded in chunks ----
  const sent = [];
  S.on('request', (r) => {
    if (r.method() !== 'GET') sent.push({ path: new URL(r.url()).pathname, size: r.postDataBuffer()?.length ?? 0 });
  });
  await S.waitForSelector('#btn-keep-chat:not([hidden])');
  await S.click('#btn-keep-chat');
  await S.waitForSelector('#keep-status:text("Saved encrypted (transcript")');
  await line.locator('[data-action="keep"]').click();
  await S.waitForSelector('#keep-status:text("Saved encrypted (file")');
  // Every body under the app's 64 KiB reading cap: the 200 KiB file went as six chunks of at
  // most 36 KiB (48 KiB of base64), the transcript as one; two uploads finished.
  const keeping = sent.filter((r) => r.path.includes('/keeping/'));
  assert.equal(keeping.filter((r) => /\/keeping\/uploads$/.test(r.path)).length, 2, 'two uploads started');
  assert.equal(keeping.filter((r) => /\/chunks$/.test(r.path)).length, 1 + 6, 'chunks sent');
  assert.equal(keeping.filter((r) => /\/finish$/.test(r.path)).length, 2, 'two uploads finished');
  for (const r of keeping) assert.ok(r.size <= 48 * 1024 + 64, `${r.path}: a ${r.size}-byte body`);
  await S.click('#btn-end');
  await S.waitForSelector('#s-dash:not([hidden])');
  await P.waitForSelector('#s-end:not([hidden])');

  // ---- only ciphertext at rest: no chat text, file bytes, file name or private key ----
  await new Promise((r) => setTimeout(r, 500));
  const needles = [
    Buffer.from(chatText),
    Buffer.from(name),
    Buffer.from(fileName),
    file.subarray(0, 64),
    file.subarray(100 * 1024, 100 * 1024 + 64),
    Buffer.from(jwk.d),
  ];
  let sawDb = false;
  for (const f of await stateFiles(stack)) {
    const data = await readFile(f);
    if (/app\.db$/.test(f)) sawDb = true;
    for (const n of needles) assert.equal(data.includes(n), false, `${f} holds a plaintext needle`);
  }
  assert.ok(sawDb, 'the SQLite database was read');

  // ---- the administrator opens both items with the key file ----
  await A.reload(); // the list is read when the page loads the clinic
  await A.waitForSelector('[data-testid="keep-item"][data-kind="transcript"]');
  assert.equal(await A.locator('[data-testid="keep-item"]').count(), 2);
  // A wrong passphrase is refused; the right one opens the key file.
  await A.fill('#keep-unlock', 'not the passphrase');
  await A.setInputFiles('#keep-keyfile', keyPath);
  await A.waitForSelector('#keeping-error:text("Wrong passphrase")');
  await A.fill('#keep-unlock', passphrase);
  await A.locator('#keep-unlock').dispatchEvent('change');
  await A.waitForSelector('#keep-keyfile[data-loaded="true"]');
  await A.locator('[data-testid="keep-item"][data-kind="transcript"] button').click();
  const text = await A.locator('#keep-opened [data-testid="keep-text"]').textContent();
  assert.ok(text.includes(chatText), 'the transcript holds the chat text');
  await A.locator('[data-testid="keep-item"][data-kind="file"] button').click();
  await A.waitForSelector(`#keep-opened[data-sha256="${sha}"]`);
  assert.match(await A.textContent('#keep-opened'), new RegExp(fileName.replace('.', '\\.')));

  // No CSP violation or script error on any page (as e2e_call).
  for (const b of [staff, patient])
    assert.deepEqual(b.console.filter((m) => /Content Security Policy|pageerror/i.test(m)), [], `${b.label} console`);
  for (const page of [S, A, P]) assert.deepEqual(await page.evaluate(() => window.__csp), [], 'CSP violations');
});
