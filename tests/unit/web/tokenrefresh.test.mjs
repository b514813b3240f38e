// web/js/tokenrefresh.js over web/js/signal.js and a stand-in WebSocket (protocol 5.15): the
// staff client sends `refresh` with the app's next token at 80% of the current one's life, plans
// the next round from the token the server accepted, retries with a growing delay when the app
// or the server fails, and stops (revoked) when the app has no token for it any more.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeSocket } from './fake_socket.mjs';
const { SignalClient } = await import('../../../web/js/signal.js');
const { TokenRefresher, REFRESH_AT } = await import('../../../web/js/tokenrefresh.js');

// Tokens as the app's (AR1.kid.payload.sig) with just the claims the client reads.
const tok = (iat, exp, n) => `AR1.k1.${Buffer.from(JSON.stringify({ iat, exp, n })).toString('base64url')}.c2ln`;
const claims = (t) => JSON.parse(Buffer.from(t.split('.')[2], 'base64url').toString());

// A clock and timers the test moves by hand.
function clock(start) {
  const c = { t: start, timers: [] };
  c.now = () => c.t;
  c.set = (fn, ms) => {
    const h = { at: c.t + ms, fn };
    c.timers.push(h);
    return h;
  };
  c.clear = (h) => (c.timers = c.timers.filter((x) => x !== h));
  c.next = () => Math.min(...c.timers.map((h) => h.at));
  // Runs the earliest timer (moving the clock to it) and lets its promises settle.
  c.fire = async () => {
    const h = c.timers.reduce((a, b) => (b.at < a.at ? b : a));
    c.clear(h);
    c.t = h.at;
    h.fn();
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  return c;
}

async function setup(t, fetchToken) {
  const T0 = 1_000_000;
  const clk = clock(T0 * 1000);
  const first = tok(T0, T0 + 600, 0);
  const sig = new SignalClient({ urls: ['wss://x.example/ws'], token: () => first });
  t.after(() => {
    sig.stopped = true;
    clearInterval(sig.pingTimer);
  });
  const r = new TokenRefresher({ sig, token: first, fetchToken, claims, timers: clk });
  await sig.connect();
  await new Promise((res) => setImmediate(res));
  const ws = FakeSocket.last;
  ws.deliver({ v: 1, type: 'welcome', seq: 0, peer: 'p1', resume: 'r', grace: 120, ping: 25 });
  return { T0, clk, sig, r, ws };
}

const refreshes = (ws) => ws.sent.filter((f) => f.type === 'refresh').map((f) => f.token);

test('refreshes at 80% of the token life, then from the accepted token', async (t) => {
  let n = 0;
  const { T0, clk, r, ws } = await setup(t, async () => tok(clk.t / 1000, clk.t / 1000 + 600, ++n));
  const accepted = [];
  r.addEventListener('token', (e) => accepted.push(e.detail));
  assert.equal(clk.next(), (T0 + REFRESH_AT * 600) * 1000);
  await clk.fire();
  const sent = refreshes(ws);
  assert.equal(sent.length, 1);
  assert.equal(claims(sent[0]).n, 1);
  ws.deliver({ v: 1, type: 'refreshed', seq: 0, exp: claims(sent[0]).exp });
  assert.deepEqual(accepted, [sent[0]]);
  assert.equal(r.current, sent[0]);
  // The next round: 80% into the new token's life.
  assert.equal(clk.next(), (claims(sent[0]).iat + 480) * 1000);
});

test('the app or the server failing: tried again after 1 s, 2 s, 4 s', async (t) => {
  let calls = 0;
  const { clk, r, ws } = await setup(t, async () => {
    calls++;
    if (calls <= 2) throw new Error('app unreachable');
    return tok(clk.t / 1000, clk.t / 1000 + 600, calls);
  });
  await clk.fire(); // 80%: the app fails
  let at = clk.t;
  assert.equal(clk.next() - at, 1000);
  await clk.fire(); // fails again
  at = clk.t;
  assert.equal(clk.next() - at, 2000);
  await clk.fire(); // a token: sent; the server refuses it
  assert.equal(refreshes(ws).length, 1);
  ws.deliver({ v: 1, type: 'error', seq: 0, code: 10, name: 'forbidden', text: 'x', about: 'refresh' });
  assert.equal(clk.next() - clk.t, 4000);
  assert.notEqual(r.current, refreshes(ws)[0]); // a refused token is not taken
  // An error about something else changes nothing.
  const before = clk.timers.length;
  ws.deliver({ v: 1, type: 'error', seq: 0, code: 10, name: 'forbidden', text: 'x', about: 'join' });
  assert.equal(clk.timers.length, before);
});

test('no token from the app any more: stops and says revoked', async (t) => {
  const { clk, r, ws } = await setup(t, async () => null);
  let revoked = 0;
  r.addEventListener('revoked', () => revoked++);
  await clk.fire();
  assert.equal(revoked, 1);
  assert.equal(refreshes(ws).length, 0);
  assert.equal(clk.timers.length, 0);
  // A new welcome (a resume) plans nothing once stopped.
  ws.deliver({ v: 1, type: 'welcome', seq: 0, peer: 'p1', resume: 'r2', resumed: true, grace: 120, ping: 25 });
  assert.equal(clk.timers.length, 0);
});

test('a welcome with a token already past 80% refreshes at once', async (t) => {
  const { T0, clk, r, ws } = await setup(t, async () => tok(clk.t / 1000, clk.t / 1000 + 600, 9));
  clk.t = (T0 + 590) * 1000; // e.g. a resume long after the last refresh
  r.current = tok(T0, T0 + 600, 0);
  ws.deliver({ v: 1, type: 'welcome', seq: 0, peer: 'p1', resume: 'r2', resumed: true, grace: 120, ping: 25 });
  assert.equal(clk.timers.length, 1);
  assert.equal(clk.next(), clk.t);
});

test('a client closed by the page: the refresher stops instead of retrying', async (t) => {
  const { clk, sig, r, ws } = await setup(t, async () => tok(clk.t / 1000, clk.t / 1000 + 600, 1));
  sig.close();
  await clk.fire();
  assert.equal(r.stopped, true);
  assert.equal(clk.timers.length, 0);
  assert.equal(refreshes(ws).length, 0);
});

test('the default timers are called as functions (a browser refuses setTimeout as a method)', async (t) => {
  const saved = globalThis.setTimeout;
  let planned = 0;
  globalThis.setTimeout = function (fn, ms) {
    if (this !== undefined && this !== globalThis) throw new TypeError('Illegal invocation');
    planned++;
    return saved(() => {}, 0);
  };
  t.after(() => (globalThis.setTimeout = saved));
  const ev = new EventTarget();
  ev.send = () => 1;
  const r = new TokenRefresher({ sig: ev, token: tok(1, 2, 0), fetchToken: async () => null, claims });
  ev.dispatchEvent(new CustomEvent('welcome'));
  assert.equal(planned, 1);
  r.stop();
});
