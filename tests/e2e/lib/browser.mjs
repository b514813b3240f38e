// Chromium for the end-to-end tests: Debian's /usr/bin/chromium driven by playwright-core, fake
// camera and microphone, a fresh profile and a fresh $HOME per browser whose NSS database trusts
// the stack's self-signed certificate (Debian's Chromium verifies TLS against it). Records every
// request and WebSocket, console errors and CSP violations, and every RTCPeerConnection made.

import { chromium } from 'playwright-core';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

// Records inside the page, before any of its scripts run: peer connections (for getStats) and
// CSP violations.
const INIT = () => {
  window.__pcs = [];
  window.__csp = [];
  const Orig = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...a) {
    const pc = new Orig(...a);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Orig.prototype;
  document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
};

export async function launch(stack, label) {
  const home = await mkdtemp(join(tmpdir(), `anteroom-e2e-${label}-`));
  const nss = join(home, '.pki/nssdb');
  await mkdir(nss, { recursive: true });
  await run('certutil', ['-d', `sql:${nss}`, '-N', '--empty-password']);
  await run('certutil', ['-d', `sql:${nss}`, '-A', '-t', 'P,,', '-n', 'anteroom-e2e', '-i', join(stack.dir, 'tls/cert.pem')]);
  const browser = await chromium.launch({
    executablePath: process.env.AR_CHROMIUM || '/usr/bin/chromium',
    env: { ...process.env, HOME: home },
    args: [
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--no-sandbox', // the tests run as root in a container
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const context = await browser.newContext({ permissions: ['camera', 'microphone', 'notifications'] });
  await context.addInitScript(INIT);
  const b = { browser, context, home, requests: [], console: [], label };
  context.on('request', (r) => b.requests.push(r.url()));
  context.on('page', (p) => watch(b, p));
  b.page = await context.newPage();
  return b;
}

function watch(b, page) {
  page.on('websocket', (ws) => b.requests.push(ws.url()));
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) b.console.push(m.text());
  });
  page.on('pageerror', (e) => b.console.push(`pageerror: ${e.message}`));
}

export async function close(b) {
  await b.browser.close().catch(() => {});
  await rm(b.home, { recursive: true, force: true });
}

// Frames decoded by every inbound video stream of every peer connection in the page.
export async function framesDecoded(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__pcs) {
      if (pc.connectionState === 'closed') continue;
      const st = await pc.getStats();
      st.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') out.push(s.framesDecoded || 0);
      });
    }
    return out;
  });
}
