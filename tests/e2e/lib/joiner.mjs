// A further participant who joins a consultation room by its id, for the call-of-four test
// while the clinician's page has no invite link (C4): in a signed-in clinician's page it loads
// the web client's own SignalClient and Mesh (the modules the page itself preloads, same
// hashed URLs and SRI) and does what staff.js does on `joined`: a mesh toward every peer,
// offers from the newcomer, and the other pages' offers, answers and candidates. Signalling lets
// a clinician with a calling role join a consultation room of its clinic (docs/signal.md).

// Starts joining; resolves once the request is sent. Read the outcome with joinState().
export async function joinRoom(page, room, name) {
  await page.evaluate(async ([roomId, who]) => {
    const href = (n) => [...document.querySelectorAll('link[rel="modulepreload"]')]
      .map((l) => l.href).find((h) => h.includes(`/js/${n}.`));
    const { SignalClient } = await import(href('signal'));
    const { Mesh } = await import(href('mesh'));
    const tokens = async () => (await (await fetch('/api/v1/signal-token')).json()).tokens;
    const first = (await tokens())[0];
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const sig = new SignalClient({ urls: first.servers.signal, name: who, token: async () => (await tokens())[0].token });
    const st = { joined: false, error: null, peers: 0 };
    window.__join = st;
    let mesh = null;
    sig.addEventListener('welcome', () => sig.send('join', { room: roomId }));
    sig.addEventListener('joined', (e) => {
      st.joined = true;
      mesh = new Mesh({ signal: sig, iceServers: first.servers.ice_servers, stream });
      for (const p of e.detail.peers) mesh.add(p, true);
    });
    sig.addEventListener('peer_joined', (e) => mesh?.add(e.detail, false));
    sig.addEventListener('peer_left', (e) => mesh?.remove(e.detail.peer));
    sig.addEventListener('offer', (e) => mesh?.onOffer(e.detail));
    sig.addEventListener('answer', (e) => mesh?.onAnswer(e.detail));
    sig.addEventListener('candidate', (e) => mesh?.onCandidate(e.detail));
    sig.addEventListener('error', (e) => {
      st.error = { name: e.detail.name, text: e.detail.text };
    });
    sig.connect();
  }, [room, name]);
}

// {joined, error: {name, text} | null}
export function joinState(page) {
  return page.evaluate(() => window.__join);
}

// The consultation room's id from the patient's own capability token (its `room` claim), read
// from the patient page's session storage (web/README.md: anteroom.resume).
export async function patientRoom(P) {
  const token = await P.evaluate(() => JSON.parse(sessionStorage.getItem('anteroom.resume')).token);
  const payload = token.split('.')[2];
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')).room;
}
