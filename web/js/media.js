// Local media: camera and microphone with a fall-back to audio only (I4), device lists, and a
// microphone level meter for the pre-call check (P4).

export async function getLocalStream(videoId, audioId) {
  const video = videoId ? { deviceId: { exact: videoId } } : { width: { ideal: 1280 }, height: { ideal: 720 } };
  const audio = audioId ? { deviceId: { exact: audioId } } : true;
  try {
    return await navigator.mediaDevices.getUserMedia({ audio, video });
  } catch {
    return navigator.mediaDevices.getUserMedia({ audio, video: false });
  }
}

export async function listDevices() {
  const all = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: all.filter((d) => d.kind === 'videoinput'),
    mics: all.filter((d) => d.kind === 'audioinput'),
  };
}

// Calls onLevel(0..1) about 10 times a second with the microphone's level; returns stop().
export function levelMeter(stream, onLevel) {
  const track = stream.getAudioTracks()[0];
  if (!track) return () => {};
  const ctx = new AudioContext();
  const src = ctx.createMediaStreamSource(new MediaStream([track]));
  const an = ctx.createAnalyser();
  an.fftSize = 512;
  src.connect(an);
  const buf = new Float32Array(an.fftSize);
  const t = setInterval(() => {
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    onLevel(Math.min(1, Math.sqrt(sum / buf.length) * 4));
  }, 100);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    clearInterval(t);
    ctx.close();
  };
}

// Speaker test: a short 440 Hz tone.
export function playTone() {
  const ctx = new AudioContext();
  const o = ctx.createOscillator();
  const g = ctx.createGain();
  g.gain.value = 0.1;
  o.frequency.value = 440;
  o.connect(g).connect(ctx.destination);
  o.start();
  setTimeout(() => {
    o.stop();
    ctx.close();
  }, 600);
}

// Reachability of TURN over one transport: gather with only that server, relay candidates only;
// resolves true when a relay candidate appears within the time limit.
export function turnReachable(server, urlFilter, ms = 5000) {
  const urls = server.urls.filter(urlFilter);
  if (!urls.length) return Promise.resolve(false);
  return new Promise((resolve) => {
    const pc = new RTCPeerConnection({
      iceServers: [{ urls, username: server.username, credential: server.credential }],
      iceTransportPolicy: 'relay',
    });
    const done = (ok) => {
      clearTimeout(t);
      pc.close();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), ms);
    pc.onicecandidate = (ev) => {
      if (ev.candidate && / typ relay /.test(ev.candidate.candidate)) done(true);
    };
    pc.createDataChannel('probe');
    pc.createOffer().then((o) => pc.setLocalDescription(o)).catch(() => done(false));
  });
}

// Reachability of signalling: a WebSocket with our subprotocol that opens.
export function signalReachable(url, ms = 5000) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, 'anteroom.v1');
    const t = setTimeout(() => {
      ws.close();
      resolve(false);
    }, ms);
    ws.onopen = () => {
      clearTimeout(t);
      ws.close(1000);
      resolve(true);
    };
    ws.onerror = () => {
      clearTimeout(t);
      resolve(false);
    };
  });
}
