// The patient behind a firewall that lets only TCP to the server's HTTPS ports out (443 for the
// relay; UDP and every other port dropped): calls still connect, over TURN/TLS on 443.
// Needs root (network namespaces); lib/netns.sh skips the file otherwise.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  Topology, barePeer, netnsUnavailable, connectBare, launchChromium, selectedPair, startServers, turnCredentials,
} from './lib/netns.mjs';

const skip = netnsUnavailable() ?? false;
let topo;
let srv;
const browsers = [];

before(async () => {
  if (skip) return;
  topo = Topology.create({ allowPorts: [443] });
  srv = await startServers(topo);
});

after(async () => {
  for (const b of browsers) await b.close().catch(() => {});
  if (srv) await srv.stop();
  if (topo) topo.teardown();
});

// The infrastructure on its own, with blank pages: what the app hands out (TURN over UDP and
// TCP on the relay's port, TLS on 443), relay-only on both sides. Inside the firewall only the
// TLS one can work; the UDP attempts are dropped and counted.
test('bare peers: the patient gathers a TURN/TLS relay candidate on 443 and a data channel connects', { skip }, async () => {
  const patientB = await launchChromium(topo, { inNamespace: true, tag: 'patient' });
  browsers.push(patientB);
  const clinicianB = await launchChromium(topo, { inNamespace: false, tag: 'clinician' });
  browsers.push(clinicianB);
  const patient = await (await patientB.newContext()).newPage();
  const clinician = await (await clinicianB.newContext()).newPage();
  const ice = (c) => ({
    iceTransportPolicy: 'relay',
    iceServers: [{
      urls: [`turn:${srv.host}:${srv.ports.turn}?transport=udp`,
        `turn:${srv.host}:${srv.ports.turn}?transport=tcp`, `turns:${srv.host}:443?transport=tcp`],
      ...c,
    }],
  });
  await barePeer(patient, ice(turnCredentials(srv.turnSecret)));
  await barePeer(clinician, ice(turnCredentials(srv.turnSecret)));
  const before = topo.counters();
  await connectBare(patient, clinician, 30000);

  await patient.evaluate(() => window.__dc.send('from behind the firewall'));
  await clinician.evaluate(() => window.__dc.send('to the patient'));
  const got = async (p, m) => p.evaluate((x) => window.__msgs.includes(x), m);
  for (let i = 0; i < 50 && !((await got(clinician, 'from behind the firewall')) && (await got(patient, 'to the patient'))); i++)
    await new Promise((r) => setTimeout(r, 100));
  assert.ok(await got(clinician, 'from behind the firewall'), 'the clinician got the message');
  assert.ok(await got(patient, 'to the patient'), 'the patient got the message');

  const p = await selectedPair(patient);
  const c = await selectedPair(clinician);
  assert.equal(p.local.type, 'relay', `patient's local candidate: ${JSON.stringify(p)}`);
  assert.equal(p.local.relayProtocol, 'tls', `patient's relay is reached over TLS: ${JSON.stringify(p)}`);
  assert.match(p.local.url || '', /^turns:.*:443/, `patient's relay URL: ${JSON.stringify(p)}`);
  assert.equal(c.local.type, 'relay', `clinician's local candidate: ${JSON.stringify(c)}`);
  // Every relay candidate the patient gathered came through TLS: UDP and TCP 3478 were blocked.
  const cands = await patient.evaluate(() => window.__cands);
  const relays = cands.filter((x) => / typ relay/.test(x.candidate));
  assert.ok(relays.length > 0, 'the patient gathered a relay candidate');
  const after = topo.counters();
  assert.ok(after.out_allowed > before.out_allowed, `TCP 443 went through: ${JSON.stringify(after)}`);
  assert.ok(after.out_udp_server_dropped > before.out_udp_server_dropped,
    `the patient's UDP to the relay was dropped by the firewall: ${JSON.stringify(after)}`);
  await patient.context().close();
  await clinician.context().close();
});
