// Exactly once after a node's death (docs/protocol.md 5.10.1). Node O (one worker) holds the
// patient's session and a peer Y; node K (one worker) holds a peer X and is the session's
// backup. K's bus inbox holds fewer bytes than one of O's numbered copies of an offer but more
// than the offer itself (inbox-max between the two), so K receives X's offers directly from
// X's publication and never any numbered copy of an offer: it knows neither the numbers O gave
// X's offers nor Y's (local on O) at all. X and Y send offers in turn; the patient goes away;
// X sends three more; O is killed (-9). K promotes the session and numbers X's seven offers in
// a row after the last number it knew, below the patient's last_seq: before 5.10.1 the resume
// replayed nothing above last_seq and the three offers the patient never got were missed. Now
// they are uncertain and replayed; the client drops the four it has by fid. A second case has
// the patient acknowledge its frames first (see scenario). A third has X send one more offer
// after K promoted the session and before the patient resumes: K numbers it after its own
// count, still at or below the patient's last_seq, and it must be replayed all the same.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, kill, patientToken, rid, sleep, startNats, startNode, stopAll, waitFor } from './lib.mjs';

const PAD = 'a=x-pad:0123456789abcdef\r\n'.repeat(600); // about 16 KB
const sdp = (tag) => `v=0\r\na=x-id:${tag}\r\n${PAD}`;
// The frame K's worker builds for an offer (the frame in X's to.<peer> publication): the tags
// all have one length, so every offer's frame is this long.
const FRAME = Buffer.byteLength(JSON.stringify({ v: 1, type: 'offer', seq: 0, from: 'x'.repeat(22), sdp: sdp('x1') }));
// to.<peer> carries 25 bytes of header before the frame; a numbered copy ('N' batch of one)
// 52. Room for a frame and 20 bytes of anything else, never for a copy.
const INBOX = FRAME + 25 + 20;

// K lives through the file; each case starts (and kills) an owner node O of its own.
let nats, K;
before(async () => {
  nats = await startNats();
  K = await startNode('k', nats.slice(1), { workers: 1, inboxMax: `${INBOX}` });
});
after(() => stopAll());

async function dropped(node, kind) {
  const text = await (await fetch(`http://127.0.0.1:${node.metrics}/metrics`)).text();
  const m = text.match(new RegExp(`^anteroom_signal_bus_dropped_total\\{kind="${kind}"\\} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : 0;
}

// Sessions the node owns (a gauge set every second).
async function owned(node) {
  const text = await (await fetch(`http://127.0.0.1:${node.metrics}/metrics`)).text();
  const m = text.match(/^anteroom_signal_sessions (\d+)$/m);
  return m ? Number(m[1]) : 0;
}

const tagOf = (f) => /a=x-id:(\w+)/.exec(f.sdp)[1];

// Three sessions of one patient token in its room (an invitee opens no room, and a join on a
// node that has not heard of the room yet would refuse it): the patient P and Y on O, X on K.
// Returns them once each has seen the others (joins cross the bus).
async function room(O) {
  const r = rid();
  const tok = patientToken(r);
  const p = await connect(O, tok);
  const y = await connect(O, patientToken(r));
  const x = await connect(K, patientToken(r));
  for (const c of [p, y, x]) {
    c.send({ type: 'join', room: r });
    await c.next('joined');
  }
  // Each node must know all three before the offers: X's offer to P is checked on K.
  for (let i = 0; ; i++) {
    x.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n', id: 1 });
    y.send({ type: 'offer', to: p.peer, sdp: 'v=0\r\n', id: 1 });
    await sleep(200);
    const got = p.frames.filter((f) => f.type === 'offer').map((f) => f.from);
    if (got.includes(x.peer) && got.includes(y.peer)) break;
    assert.ok(i < 40, 'the room never formed across the two nodes');
  }
  p.frames = p.frames.filter((f) => f.type !== 'offer');
  p.all = p.all.filter((f) => f.type !== 'offer');
  for (const c of [x, y]) c.frames = [];
  return { tok, p, x, y };
}

// ack: the patient acknowledges what it has before going away. The acknowledgement reaches K
// (it is small) although the copies did not, so K's acknowledged number is ahead of its count:
// the promotion numbers after it (an acknowledged number would be trimmed at once).
// late: X sends x8 after K promoted the session and before the patient resumes.
async function scenario(ack, late = false) {
  const O = await startNode(late ? 'o3' : ack ? 'o2' : 'o', nats.slice(0, 1), { workers: 1 });
  let t;
  // A to.<peer> frame K drops (its inbox held something else at that moment) would be a
  // frame K cannot replay: such a try is abandoned for a new room (at most three).
  for (let attempt = 0; ; attempt++) {
    assert.ok(attempt < 3, 'node K kept dropping frames it had room for');
    t = await room(O);
    const before = await dropped(K, 'frame');
    const copies = await dropped(K, 'proc');
    for (let i = 1; i <= 4; i++) {
      t.x.send({ type: 'offer', to: t.p.peer, sdp: sdp(`x${i}`) });
      await sleep(60);
      t.y.send({ type: 'offer', to: t.p.peer, sdp: sdp(`y${i}`) });
      await sleep(60);
    }
    for (let i = 1; i <= 4; i++) {
      await t.p.next((f) => f.type === 'offer' && tagOf(f) === `x${i}`);
      await t.p.next((f) => f.type === 'offer' && tagOf(f) === `y${i}`);
    }
    t.live = [...t.p.dups];
    if (ack) t.p.ack();
    await sleep(ack ? 200 : 0);
    // The patient goes away; X sends three more, which O numbers and keeps for the resume.
    t.p.close();
    await sleep(400);
    for (let i = 5; i <= 7; i++) {
      t.x.send({ type: 'offer', to: t.p.peer, sdp: sdp(`x${i}`) });
      await sleep(60);
    }
    await sleep(400);
    assert.ok((await dropped(K, 'proc')) >= copies + 8, 'K received numbered copies of offers');
    if ((await dropped(K, 'frame')) === before) break;
    for (const c of [t.x, t.y]) c.close();
  }
  const { tok, p, x } = t;
  assert.deepEqual(t.live, [], 'nothing repeated while live');
  const last = p.lastSeq;
  const ownedBefore = await owned(K);

  kill(O, 'SIGKILL');
  if (late) {
    await waitFor(async () => (await owned(K)) > ownedBefore, 15000, 'K to promote the session');
    x.send({ type: 'offer', to: p.peer, sdp: sdp('x8') });
    await sleep(1000); /* K numbers it before the resume (checked below: it is replayed) */
  }
  // K promotes the session after 3 s of silence; a resume meanwhile waits for it.
  const p2 = await connect(K, tok, { resume: p.welcome.resume, last_seq: last }, p);
  assert.equal(p2.welcome.resumed, true);
  assert.equal(p2.peer, p.peer);
  const lastX = late ? 8 : 7;
  for (let i = 5; i <= lastX; i++) await p2.next((f) => f.type === 'offer' && tagOf(f) === `x${i}`, 10000);
  await sleep(500);
  // Every offer exactly once across the two connections; the four K replayed that the client
  // already had went again under K's numbers and were dropped by their fid.
  const offers = [...p.all, ...p2.all].filter((f) => f.type === 'offer').map(tagOf);
  const all = [...p.all, ...p2.all].filter((f) => f.seq > 0);
  const seen = new Set();
  for (const f of all) {
    assert.equal(typeof f.fid, 'string');
    assert.match(f.fid, /^[A-Za-z0-9_-]{22}$/);
    assert.ok(!seen.has(f.fid), 'a frame processed twice');
    seen.add(f.fid);
  }
  if (late) {
    // x8 reached K before the resume and was numbered at or below last_seq: the case itself.
    const x8 = p2.all.find((f) => f.type === 'offer' && tagOf(f) === 'x8');
    assert.ok(x8.seq <= last, `x8 numbered ${x8.seq}, after the client's last_seq ${last}: not the replay`);
  }
  const xTags = Array.from({ length: lastX }, (_, i) => `x${i + 1}`);
  assert.deepEqual(offers.sort(), [...xTags, 'y1', 'y2', 'y3', 'y4'].sort());
  // Each sender's order holds: X's offers in order.
  const xs = [...p.all, ...p2.all].filter((f) => f.type === 'offer' && f.from === x.peer).map(tagOf);
  assert.deepEqual(xs, xTags);
  const again = p2.dups.filter((f) => f.type === 'offer').map(tagOf).sort();
  assert.deepEqual(again, ['x1', 'x2', 'x3', 'x4'], 'the uncertain offers the client had came again');
  // Without the acknowledgement K numbered X's offers below the client's last_seq (replayed as
  // uncertain); with it, after it (replayed as above last_seq).
  assert.ok(p2.dups.every((f) => (ack ? f.seq > last : f.seq <= last)), 'where K numbered them');

  // The call goes on from K: the next frame is numbered after everything replayed.
  const tag = `x${lastX + 1}`;
  x.send({ type: 'offer', to: p.peer, sdp: sdp(tag) });
  const next = await p2.next((f) => f.type === 'offer' && tagOf(f) === tag);
  assert.equal(next.seq, ack ? last + 8 : last + 1);
  for (const c of [p2, x]) c.close();
}

test('a backup that missed the owner\'s numbered copies: after kill -9 the resumed client gets every frame once', () => scenario(false));

test('the same after the client acknowledged frames whose copies the backup missed', () => scenario(true));

test('a frame the backup receives after its promotion and before the resume is replayed', () => scenario(false, true));
