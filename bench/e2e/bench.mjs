// Join-to-first-frame (issue 5's benchmark): from the clinician's click on "Admit and join" to
// the first decoded video frame on each side, median over N calls, with direct ICE and in a
// relay-only area; beside it the anchor (anchor.mjs): bare RTCPeerConnections between the same
// two browsers, offer to first frame, no Anteroom code. Usage: node bench/e2e/bench.mjs [N].
//
// Times are read in the pages (performance.timeOrigin + now(): both browsers run on this
// machine's clock): the click by a capture listener, the first frame by requestVideoFrameCallback
// on every remote video track (tests/e2e/lib/rtcstats.mjs). The patient arrives before the
// clock starts; every call is a fresh patient context, the clinician stays signed in.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const e2e = new URL('../../tests/e2e/', import.meta.url).pathname;
const { startStack, addClinician } = await import(`${e2e}lib/stack.mjs`);
const { launch, close } = await import(`${e2e}lib/browser.mjs`);
const { enrolClinician, patchArea, patientArrives, entryLink, admit } = await import(`${e2e}lib/journeys.mjs`);
const { instrumentContext, timings, callStats } = await import(`${e2e}lib/rtcstats.mjs`);
const { bareCall } = await import('./anchor.mjs');

const N = Number(process.argv[2] || process.env.BENCH_CALLS || 10);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// One admitted call; returns {clinician, patient} ms from the join click to the first frame.
async function anteroomCall(S, patientBrowser, link, relay) {
  const ctx = await patientBrowser.newContext({ permissions: ['camera', 'microphone'] });
  await instrumentContext(ctx);
  const P = await ctx.newPage();
  try {
    const name = await patientArrives(P, link);
    const since = (await timings(S)).clicks.length;
    await admit(S, name, P);
    const wait = (p) => p.waitForFunction((n) => window.__firstFrames.some((f) => f.t >= n), 0, { timeout: 30000 });
    const click = (await timings(S)).clicks.slice(since).find((c) => c.id === 'btn-confirm-ok');
    if (!click) throw new Error('no join click recorded');
    await wait(P);
    await S.waitForFunction((t) => window.__firstFrames.some((f) => f.t >= t), click.t, { timeout: 30000 });
    const firstAfter = async (p) => Math.min(...(await timings(p)).firstFrames.map((f) => f.t).filter((t) => t >= click.t));
    const r = { clinician: (await firstAfter(S)) - click.t, patient: (await firstAfter(P)) - click.t };
    // The path measured is the one named: relay at both ends in relay-only, else not.
    const ends = (await callStats(P)).filter((x) => x.state === 'connected').map((x) => [x.local?.type, x.remote?.type]);
    const relayed = ends.length > 0 && ends.every(([l, rm]) => l === 'relay' && rm === 'relay');
    if (relayed !== relay) throw new Error(`call path ${JSON.stringify(ends)} is not ${relay ? 'relay-only' : 'direct'}`);
    await S.click('#btn-end');
    await P.waitForSelector('#s-end:not([hidden])');
    await S.waitForSelector('#s-dash:not([hidden])');
    return r;
  } finally {
    await ctx.close().catch(() => {});
  }
}

function summary(label, rows, a, b) {
  const ma = median(rows.map((r) => r[a]));
  const mb = median(rows.map((r) => r[b]));
  return { label, n: rows.length, [a]: ma, [b]: mb, worst: Math.max(ma, mb), runs: rows };
}

async function main() {
  process.env.ANTEROOM_TURN_ALLOW_LOOPBACK_PEERS = 'true'; // relay-to-relay on 127.0.0.1
  const stack = await startStack();
  const browsers = [];
  try {
    const staff = await launch(stack, 'staff');
    const patient = await launch(stack, 'patient');
    browsers.push(staff, patient);
    await instrumentContext(staff.context);
    const secret = fs.readFileSync(path.join(stack.dir, 'secrets/turn-static-auth-secret'), 'utf8').trim();
    const turnCfg = () => {
      const username = `${Math.floor(Date.now() / 1000) + 600}:bench${crypto.randomBytes(4).toString('hex')}`;
      const credential = crypto.createHmac('sha1', secret).update(username).digest('base64');
      return { iceTransportPolicy: 'relay',
        iceServers: [{ urls: [`turn:127.0.0.1:${stack.ports.turn}?transport=udp`], username, credential }] };
    };
    const results = [];

    for (const relay of [false, true]) {
      const mode = relay ? 'relay-only' : 'direct';
      // The anchor first: bare WebRTC between the same two browser processes.
      const bare = [];
      for (let i = 0; i < N; i++) bare.push(await bareCall(staff.browser, patient.browser, relay ? turnCfg() : {}));
      results.push(summary(`bare WebRTC (anchor), ${mode}`, bare, 'caller', 'callee'));
      process.stderr.write(`${results.at(-1).label}: ${JSON.stringify(bare)}\n`);

      // Anteroom: a clinician signed in after the area's rule is set (the dashboard reads it then).
      if (relay) {
        const adm = await addClinician(stack, 'Bench Admin', ['clinic_admin']);
        const actx = await staff.browser.newContext();
        const A = await actx.newPage();
        await enrolClinician(A, stack.origin, adm, { connected: false });
        await patchArea(A, stack.clinic, { relay_only: true });
        await actx.close();
      }
      const doc = await addClinician(stack, `Bench Doc ${mode}`, ['provider']);
      const sctx = await staff.browser.newContext({ permissions: ['camera', 'microphone', 'notifications'] });
      await instrumentContext(sctx);
      const S = await sctx.newPage();
      await enrolClinician(S, stack.origin, doc);
      const link = await entryLink(S);
      const calls = [];
      for (let i = 0; i < N; i++) calls.push(await anteroomCall(S, patient.browser, link, relay));
      await sctx.close();
      results.push(summary(`Anteroom, ${mode}`, calls, 'clinician', 'patient'));
      process.stderr.write(`${results.at(-1).label}: ${JSON.stringify(calls)}\n`);
    }

    const f = (x) => `${Math.round(x)} ms`;
    const load = os.loadavg().map((x) => x.toFixed(1)).join(' ');
    console.log(`\njoin click (anchor: offer) to first decoded frame, median of ${N} calls; ` +
      `${os.cpus().length} cores, load ${load}, Chromium ${await patient.browser.version()}\n`);
    console.log('| path | clinician (anchor: caller) | patient (anchor: callee) | slower side | ratio to anchor |');
    console.log('|---|---|---|---|---|');
    for (let i = 0; i < results.length; i += 2) {
      const a = results[i];
      const r = results[i + 1];
      console.log(`| ${a.label} | ${f(a.caller)} | ${f(a.callee)} | ${f(a.worst)} | 1.00 |`);
      console.log(`| ${r.label} | ${f(r.clinician)} | ${f(r.patient)} | ${f(r.worst)} | ${(r.worst / a.worst).toFixed(2)} |`);
    }
  } finally {
    for (const b of browsers) await close(b);
    await stack.stop();
    await stack.cleanup();
  }
}

await main();
