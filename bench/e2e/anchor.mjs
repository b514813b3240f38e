// The anchor of the join-to-first-frame benchmark: the same two Chromium processes, the same
// fake camera and the same relay, but no Anteroom page, app or signalling node: two bare
// RTCPeerConnections whose offer, answer and candidates the benchmark process passes between
// the pages as soon as they appear (page.exposeFunction, no polling). Its time is what WebRTC
// itself costs on this machine; the Anteroom figure beside it adds our pages, the app's
// admission and anteroom-signal.
const PAGE = 'https://anchor.anteroom.invalid/';
const HTML = '<!doctype html><meta charset="utf-8"><title>anchor</title><body></body>';

// The page side, as a function playwright serialises into each page.
function pageSetup(cfg) {
  window.__pending = [];
  window.__setup = async () => {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const pc = new RTCPeerConnection(cfg);
    for (const t of stream.getTracks()) pc.addTrack(t, stream);
    pc.onicecandidate = (e) => {
      if (e.candidate) window.__signal({ cand: e.candidate.toJSON() });
    };
    const v = document.createElement('video');
    v.muted = true;
    v.autoplay = true;
    v.playsInline = true;
    document.body.append(v);
    pc.ontrack = (e) => {
      if (v.srcObject) return;
      v.srcObject = e.streams[0];
      v.requestVideoFrameCallback(() => {
        window.__first = performance.timeOrigin + performance.now();
      });
    };
    window.__pc = pc;
  };
  window.__start = async () => {
    window.__t0 = performance.timeOrigin + performance.now();
    await window.__pc.setLocalDescription();
    window.__signal({ sdp: window.__pc.localDescription.toJSON() });
    return window.__t0;
  };
  window.__onSignal = async (m) => {
    const pc = window.__pc;
    if (m.sdp) {
      await pc.setRemoteDescription(m.sdp);
      for (const c of window.__pending.splice(0)) await pc.addIceCandidate(c);
      if (m.sdp.type === 'offer') {
        await pc.setLocalDescription();
        window.__signal({ sdp: pc.localDescription.toJSON() });
      }
    } else if (m.cand) {
      if (pc.remoteDescription) await pc.addIceCandidate(m.cand);
      else window.__pending.push(m.cand);
    }
  };
}

async function openPage(browser) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.route(PAGE, (r) => r.fulfill({ status: 200, contentType: 'text/html', body: HTML }));
  await page.goto(PAGE);
  return page;
}

// One bare call between two browsers; returns ms from the offer to the first decoded remote
// frame on each side. cfg: the RTCConfiguration both pages use.
export async function bareCall(callerBrowser, calleeBrowser, cfg, timeoutMs = 20000) {
  const a = await openPage(callerBrowser);
  const b = await openPage(calleeBrowser);
  try {
    await a.exposeFunction('__signal', (m) => b.evaluate((x) => window.__onSignal(x), m).catch(() => {}));
    await b.exposeFunction('__signal', (m) => a.evaluate((x) => window.__onSignal(x), m).catch(() => {}));
    for (const p of [a, b]) {
      await p.evaluate(pageSetup, cfg);
      await p.evaluate(() => window.__setup());
    }
    const t0 = await a.evaluate(() => window.__start());
    const first = async (p) => {
      await p.waitForFunction(() => window.__first !== undefined, null, { timeout: timeoutMs });
      return p.evaluate(() => window.__first);
    };
    const [fa, fb] = await Promise.all([first(a), first(b)]);
    return { caller: fa - t0, callee: fb - t0 };
  } finally {
    await a.context().close().catch(() => {});
    await b.context().close().catch(() => {});
  }
}
