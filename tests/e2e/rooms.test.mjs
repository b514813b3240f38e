// C6: an administrator makes a persistent clinic room; two clinicians enter it from their
// dashboards (each with a token naming the room) and decode each other's video. Their pages
// send the call monitor their statistics (servers.monitor and a monitor token from the app):
// its accepted-reports counter rises. When video cannot get through, the page falls back to
// audio only (I4).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addClinician } from './lib/stack.mjs';
import { framesDecoded } from './lib/browser.mjs';
import { until, enrolClinician, pageApi } from './lib/journeys.mjs';
import { openBrowser, stack, useStack } from './lib/suite.mjs';

useStack();

test('two clinicians meet in a persistent room', async () => {
  const a = await addClinician(stack, 'Dr Room One', ['provider', 'clinic_admin']);
  const b = await addClinician(stack, 'Dr Room Two', ['provider']);
  const [ba, bb] = await Promise.all([openBrowser('room-a'), openBrowser('room-b')]);
  const A = ba.page;
  const B = bb.page;
  await enrolClinician(A, stack.origin, a);
  await enrolClinician(B, stack.origin, b);

  const made = await pageApi(A, 'POST', `/api/v1/clinics/${stack.clinic}/rooms`, { name: 'Team huddle' });
  assert.equal(made.status, 201);

  // A reload keeps the session; the dashboard then lists the new room.
  for (const page of [A, B]) {
    await page.reload();
    await page.waitForSelector('#dash-status:text("Connected.")');
    await page.locator('#rooms button[data-room]', { hasText: 'Team huddle' }).click();
    await page.waitForSelector('#call:not([hidden])');
  }
  for (const [who, page] of [['first', A], ['second', B]])
    await until(`${who} clinician decoding video`, async () => (await framesDecoded(page)).some((n) => n > 0), 30000);
  await A.locator('[data-testid="remote-tile"] figcaption', { hasText: 'Dr Room Two' }).waitFor();
  await B.locator('[data-testid="remote-tile"] figcaption', { hasText: 'Dr Room One' }).waitFor();

  // I4: when the estimate of the outgoing bandwidth stays too low for video (forced here by
  // rewriting getStats in A's page), A sends B audio only and says so; B's video stops.
  await A.evaluate(() => {
    const orig = RTCPeerConnection.prototype.getStats;
    RTCPeerConnection.prototype.getStats = async function (...args) {
      const r = await orig.apply(this, args);
      const m = new Map();
      r.forEach((v, k) => m.set(k, v.type === 'candidate-pair' ? { ...v, availableOutgoingBitrate: 20000 } : v));
      return m;
    };
  });
  await until('audio only shown', async () => /audio only to Dr Room Two/.test(await A.textContent('#quality')), 20000);
  const active = await A.evaluate(() =>
    window.__pcs.filter((pc) => pc.connectionState === 'connected').flatMap((pc) =>
      pc.getSenders().filter((s) => s.track?.kind === 'video').flatMap((s) => s.getParameters().encodings.map((e) => e.active))));
  assert.ok(active.length > 0 && active.every((a) => a === false), `video encodings: ${JSON.stringify(active)}`);
  const f0 = Math.max(...(await framesDecoded(B)));
  await new Promise((r) => setTimeout(r, 4000));
  const f1 = Math.max(...(await framesDecoded(B)));
  assert.ok(f1 - f0 <= 3, `B still decodes A's video: ${f0} -> ${f1}`);

  // Leaving takes the clinician back to the dashboard; the other stays in the room.
  await B.click('#btn-leave-call');
  await B.waitForSelector('#s-dash:not([hidden])');
  assert.equal(await A.isHidden('#call'), false);

  // The leaver's final report (sendBeacon) and the periodic ones (every 10 s) reach the monitor.
  const accepted = async () => {
    const r = await fetch(`http://127.0.0.1:${stack.ports.metrics + 3}/metrics`).catch(() => null);
    const m = r && r.ok ? (await r.text()).match(/^anteroom_monitor_reports_accepted_total(?:\{[^}]*\})? (\d+)/m) : null;
    return m && Number(m[1]) > 0 ? Number(m[1]) : 0;
  };
  const n = await until('the monitor accepting reports', accepted, 25000).catch(async (e) => {
    const r = await fetch(`http://127.0.0.1:${stack.ports.metrics + 3}/metrics`).catch(() => null);
    const t = r ? await r.text() : 'no metrics';
    throw new Error(`${e.message}\n${t.split('\n').filter((l) => l.startsWith('anteroom_monitor_')).join('\n')}`);
  });
  assert.ok(n > 0);
});
