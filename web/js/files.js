// File transfer over the 'files' data channel (I2): a JSON header, binary chunks with
// back-pressure, a JSON trailer. The receiver hashes what arrived (SHA-256, WebCrypto) and shows
// the hash, so both people can compare it with the sender's.

const CHUNK = 16 * 1024;
const HIGH_WATER = 1024 * 1024;
export const FILE_MAX = 100 * 1024 * 1024;

export async function sha256Hex(buf) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return [...d].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// Sends file (a File or Blob with a name) on channel; progress(sent, total) as it goes.
export async function sendFile(channel, file, progress) {
  if (file.size > FILE_MAX) throw new Error('file too large');
  const buf = await file.arrayBuffer();
  const hash = await sha256Hex(buf);
  channel.bufferedAmountLowThreshold = HIGH_WATER / 4;
  channel.send(JSON.stringify({ t: 'file', name: String(file.name || 'file').slice(0, 200), size: buf.byteLength, type: file.type || '' }));
  for (let off = 0; off < buf.byteLength; off += CHUNK) {
    if (channel.readyState !== 'open') throw new Error('channel closed');
    if (channel.bufferedAmount > HIGH_WATER)
      await new Promise((res) => channel.addEventListener('bufferedamountlow', res, { once: true }));
    channel.send(buf.slice(off, off + CHUNK));
    progress(Math.min(off + CHUNK, buf.byteLength), buf.byteLength);
  }
  channel.send(JSON.stringify({ t: 'end', sha256: hash }));
  return hash;
}

// One receiver per channel: feed it every message; it calls onProgress(name, got, total) and
// onFile({name, type, blob, sha256, sentSha256}).
export function fileReceiver(onProgress, onFile) {
  let cur = null;
  return async (data) => {
    if (typeof data === 'string') {
      let m;
      try {
        m = JSON.parse(data);
      } catch {
        return;
      }
      if (m.t === 'file' && Number.isInteger(m.size) && m.size >= 0 && m.size <= FILE_MAX) {
        cur = { name: String(m.name).slice(0, 200), type: String(m.type || ''), size: m.size, parts: [], got: 0 };
        onProgress(cur.name, 0, cur.size);
      } else if (m.t === 'end' && cur) {
        const f = cur;
        cur = null;
        const blob = new Blob(f.parts, { type: f.type });
        const sha256 = await sha256Hex(await blob.arrayBuffer());
        onFile({ name: f.name, type: f.type, blob, size: f.got, sha256, sentSha256: String(m.sha256 || '') });
      }
      return;
    }
    if (!cur) return;
    cur.got += data.byteLength;
    if (cur.got > cur.size) {
      cur = null; // more than announced: drop it
      return;
    }
    cur.parts.push(data);
    onProgress(cur.name, cur.got, cur.size);
  };
}
