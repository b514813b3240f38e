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

// A page of the app with its own Mesh module, a camera stream and a sleep in window.__meshKit,
// for negotiation cases made to happen between Meshes in one page.
async function meshPage(name) {
  const b = await openBrowser(name);
  await b.page.goto(`${stack.origin}/`);
  await b.page.evaluate(async () => {
    const href = [...document.querySelectorAll('link[rel="modulepreload"]')].map((l) => l.href).find((h) => h.includes('/js/mesh.'));
    const { Mesh } = await import(href);
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    window.__meshKit = { Mesh, stream, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };
  });
  return b.page;
}

// Negotiation races made to happen rather than waited for: two Meshes in one page, their
// signalling an in-order, asynchronous queue between them (as the server relays).
// - A restart collision: one side restarts ICE; its offer reaches the other, and the other's own
//   restart (its 2 s disconnected timer, or `failed`) fires while that offer is still being
//   applied. Both must end stable and connected on new ICE credentials, with no error (an offer
//   begun then was an answer sent as an offer, and both sides waited in have-local-offer).
// - Two joins racing on two signalling workers: each is told of the other by `peer_joined`, so
//   neither is the newcomer that offers; they must connect all the same.
test('negotiation races settle: a restart collision (both orders), two members each waiting for the other', async () => {
  const page = await meshPage('races');
  const out = await page.evaluate(async () => {
    const { Mesh, stream, sleep } = window.__meshKit;
    const results = [];
    // late: the side whose restart fires as the other's restart offer lands (a is polite, the
    // smaller id); null: no restart, and neither side is the newcomer.
    for (const late of ['a', 'b', null]) {
      const meshes = {};
      const errors = [];
      let onOfferArrives = null;
      const signal = (peer) => ({
        peer,
        send(type, f) {
          const to = f.to;
          const frame = { ...f, from: peer };
          delete frame.to;
          setTimeout(() => {
            const m = meshes[to];
            if (type === 'offer') {
              m.onOffer(frame);
              if (onOfferArrives && to === late && frame.restart) {
                const act = onOfferArrives;
                onOfferArrives = null;
                act();
              }
            } else if (type === 'answer') m.onAnswer(frame);
            else m.onCandidate(frame);
          }, 5);
        },
      });
      for (const id of ['a', 'b']) {
        meshes[id] = new Mesh({ signal: signal(id), stream });
        meshes[id].addEventListener('error', (e) => errors.push(`${id}: ${e.detail}`));
      }
      meshes.a.add({ peer: 'b', role: 'peer' }, false);
      meshes.b.add({ peer: 'a', role: 'peer' }, late !== null); // b is the newcomer, or nobody is
      const pcs = () => [meshes.a.peers.get('b').pc, meshes.b.peers.get('a').pc];
      const ufrags = () => pcs().map((pc) => (/a=ice-ufrag:(\S+)/.exec(pc.localDescription?.sdp || '') || [])[1]);
      // Connected and stable (after a restart: on ICE credentials other than `old` on both sides).
      // Each change of the pair's states on the way is kept, with its ms, for a failure to show.
      const trace = [];
      const settled = async (ms, old = null) => {
        const t0 = Date.now();
        for (const end = t0 + ms; Date.now() < end; await sleep(100)) {
          const now = pcs().map((pc, i) => `${pc.iceConnectionState}/${pc.signalingState}/${ufrags()[i] === old?.[i] ? 'old' : 'new'}`).join(' ');
          if (trace.at(-1)?.[1] !== now) trace.push([Date.now() - t0, now]);
          if (pcs().every((pc) => pc.connectionState === 'connected' && pc.signalingState === 'stable') &&
              (!old || ufrags().every((u, i) => u && u !== old[i]))) return true;
        }
        return false;
      };
      const r = { late, first: await settled(20000) };
      if (late) {
        const before = ufrags();
        // The early side restarts; the late side's restart fires as the early side's offer lands.
        const early = late === 'a' ? 'b' : 'a';
        onOfferArrives = () => meshes[late].restart(meshes[late].peers.get(early));
        meshes[early].restart(meshes[early].peers.get(late));
        // Usually settled within 0.1 to 3 s; twice in about fifteen runs it took 10 to 11 s (not
        // yet understood), so 20 s, and the trace says how it went when it does not settle.
        trace.length = 0;
        r.second = await settled(20000, before);
        r.trace = trace.map(([ms, st]) => `${ms}: ${st}`);
        await sleep(1000); // a late answer or error would show now
        r.restarted = ufrags().every((u, i) => u && u !== before[i]);
      }
      r.stable = pcs().map((pc) => `${pc.connectionState}/${pc.signalingState}`);
      r.errors = errors;
      results.push(r);
      meshes.a.close();
      meshes.b.close();
    }
    for (const t of stream.getTracks()) t.stop();
    return results;
  });
  assert.equal(out.length, 3);
  for (const r of out) {
    assert.ok(r.first, `connected (before any restart): ${JSON.stringify(r)}`);
    assert.ok(r.stable.every((s) => s === 'connected/stable'), `settled: ${JSON.stringify(r)}`);
    if (r.late) {
      assert.ok(r.second, `settled after the collision: ${JSON.stringify(r)}`);
      assert.ok(r.restarted, `both sides on new ICE credentials: ${JSON.stringify(r)}`);
    }
    assert.deepEqual(r.errors, [], `no negotiation error: ${JSON.stringify(r)}`);
  }
});

// After a signalling resume the pages call restartUnsettled(), not restart(): the resume lost
// no frame, so a connection that is connected and stable is left alone (an ICE restart there is
// an offer, an answer and candidates through signalling, for every call of a dead node at once);
// one still negotiating (here an offer whose answer never came) is restarted. restart() on the
// settled pair is the control: the same counting sees its offer.
test('after a resume, ICE restarts only where a connection is unsettled', async () => {
  const page = await meshPage('unsettled');
  const out = await page.evaluate(async () => {
    const { Mesh, stream, sleep } = window.__meshKit;
    const meshes = {};
    const offers = { a: 0, b: 0, c: 0, d: 0 };
    const signal = (peer) => ({
      peer,
      send(type, f) {
        if (type === 'offer') offers[peer]++;
        if (type === 'answer' && peer === 'c') return; // c's answers are lost: d stays offering
        const frame = { ...f, from: peer };
        delete frame.to;
        setTimeout(() => {
          const m = meshes[f.to];
          if (type === 'offer') m.onOffer(frame);
          else if (type === 'answer') m.onAnswer(frame);
          else m.onCandidate(frame);
        }, 5);
      },
    });
    for (const id of ['a', 'b', 'c', 'd']) meshes[id] = new Mesh({ signal: signal(id), stream });
    // a and b connect (b, the impolite one, offers); d (impolite: 'd' > 'c') offers to c and
    // never hears the answer.
    meshes.a.add({ peer: 'b', role: 'peer' }, false);
    const ab = meshes.b.add({ peer: 'a', role: 'peer' }, true);
    meshes.c.add({ peer: 'd', role: 'peer' }, false);
    const dc = meshes.d.add({ peer: 'c', role: 'peer' }, true);
    const ufrag = (pc) => (/a=ice-ufrag:(\S+)/.exec(pc.localDescription?.sdp || '') || [])[1];
    const settled = () => [ab.pc, meshes.a.peers.get('b').pc].every((pc) => pc.connectionState === 'connected' && pc.signalingState === 'stable');
    for (const end = Date.now() + 20000; Date.now() < end && !settled(); ) await sleep(100);
    for (const end = Date.now() + 5000; Date.now() < end && dc.pc.signalingState !== 'have-local-offer'; ) await sleep(100);
    const r = { settled: settled(), d: `${dc.pc.connectionState}/${dc.pc.signalingState}` };
    const before = { offers: offers.b, ufrag: ufrag(ab.pc) };
    for (const id of ['a', 'b', 'c', 'd']) meshes[id].restartUnsettled();
    await sleep(1500);
    r.settledAfter = settled();
    r.offersAfter = offers.b - before.offers;
    r.sameUfrag = ufrag(ab.pc) === before.ufrag;
    r.settledRestarting = !!ab.restarting;
    r.unsettledRestarting = !!dc.restarting;
    // The control: restart() on the settled pair sends an offer on new credentials.
    meshes.b.restart();
    for (const end = Date.now() + 10000; Date.now() < end && (offers.b === before.offers || !settled()); ) await sleep(100);
    r.controlOffers = offers.b - before.offers;
    r.controlNewUfrag = ufrag(ab.pc) !== before.ufrag;
    for (const id of ['a', 'b', 'c', 'd']) meshes[id].close();
    for (const t of stream.getTracks()) t.stop();
    return r;
  });
  const show = JSON.stringify(out);
  assert.ok(out.settled, `a and b connected first: ${show}`);
  assert.match(out.d, /^(new|connecting)\/have-local-offer$/, `d still offering: ${show}`);
  assert.equal(out.offersAfter, 0, `no offer on the settled connection: ${show}`);
  assert.ok(out.sameUfrag && out.settledAfter && !out.settledRestarting, `the settled connection left alone: ${show}`);
  assert.ok(out.unsettledRestarting, `the unsettled connection restarts: ${show}`);
  assert.ok(out.controlOffers >= 1 && out.controlNewUfrag, `restart() does restart it: ${show}`);
});
