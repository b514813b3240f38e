// Encrypted keeping (S5, docs/keeping.md): the browser-side cryptography, shared by the
// clinician's page (sealing) and the administration page (key pair, opening). WebCrypto only.
//
// An item is sealed with a fresh AES-GCM-256 key; that key is wrapped with RSA-OAEP (SHA-256)
// to the clinic's public key. The plaintext is a 4-byte big-endian length, a JSON header
// ({kind, name, type, size, sha256, saved_at}: the file name lives here, inside the ciphertext)
// and the content bytes. The server receives {kind, wrapped_key, iv} and the ciphertext (in chunks:
// keeping.js) and nothing else.

const RSA = { name: 'RSA-OAEP', hash: 'SHA-256' };
export const KEY_FILE_FORMAT = 'anteroom-keeping-key-v1';

export function toB64(buf) {
  const b = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromB64(s) {
  const bin = atob(s);
  const b = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
  return b;
}

export async function sha256Hex(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return [...d].map((x) => x.toString(16).padStart(2, '0')).join('');
}

// The key file's passphrase protection: PBKDF2-SHA256 (OWASP's 2023 figure of 600,000
// iterations) derives an AES-GCM-256 key that seals the private JWK; the format and clinic are
// the additional data, so a sealed key cannot be moved into another file unnoticed.
const PBKDF2_ITERATIONS = 600000;

async function passKey(passphrase, salt, iterations) {
  const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(passphrase), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, base, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

const aad = (clinic) => new TextEncoder().encode(`${KEY_FILE_FORMAT}/${clinic}`);

// A new clinic key pair: the public half as base64 SPKI (for the app) and the private half as
// the text of a key file (for the administrator alone; never sent), sealed with the passphrase
// when one is given.
export async function makeKeyPair(clinic, passphrase = '') {
  const kp = await crypto.subtle.generateKey(
    { ...RSA, modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]) },
    true,
    ['wrapKey', 'unwrapKey'],
  );
  const spki = await crypto.subtle.exportKey('spki', kp.publicKey);
  const jwk = await crypto.subtle.exportKey('jwk', kp.privateKey);
  const publicKey = toB64(spki);
  const doc = { format: KEY_FILE_FORMAT, clinic: String(clinic), public_key: publicKey };
  if (passphrase) {
    const salt = crypto.getRandomValues(new Uint8Array(16));
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const k = await passKey(passphrase, salt, PBKDF2_ITERATIONS);
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad(clinic) }, k, new TextEncoder().encode(JSON.stringify(jwk)));
    doc.sealed_private_key = { kdf: 'PBKDF2-SHA256', iterations: PBKDF2_ITERATIONS, salt: toB64(salt), iv: toB64(iv), ciphertext: toB64(ct) };
  } else {
    doc.private_key = jwk;
  }
  return { publicKey, file: JSON.stringify(doc) };
}

// The private key from a key file's text (and its passphrase, when sealed); refuses a file of
// another format or clinic.
export async function loadKeyFile(text, clinic, passphrase = '') {
  const k = JSON.parse(text);
  if (k.format !== KEY_FILE_FORMAT) throw new Error('This is not an Anteroom keeping key file.');
  if (String(k.clinic) !== String(clinic)) throw new Error('This key file belongs to another clinic.');
  let jwk = k.private_key;
  const s = k.sealed_private_key;
  if (s) {
    if (!passphrase) throw new Error('This key file needs its passphrase.');
    if (s.kdf !== 'PBKDF2-SHA256' || !(s.iterations >= 100000 && s.iterations <= 10000000)) throw new Error('Unknown key file protection.');
    const key = await passKey(passphrase, fromB64(s.salt), s.iterations);
    let plain;
    try {
      plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromB64(s.iv), additionalData: aad(k.clinic) }, key, fromB64(s.ciphertext));
    } catch {
      throw new Error('Wrong passphrase (or a damaged key file).');
    }
    jwk = JSON.parse(new TextDecoder().decode(plain));
  }
  return crypto.subtle.importKey('jwk', jwk, RSA, false, ['unwrapKey']);
}

export async function sealItem(publicKeyB64, kind, header, bytes) {
  const pub = await crypto.subtle.importKey('spki', fromB64(publicKeyB64), RSA, false, ['wrapKey']);
  const aes = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt']);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const head = new TextEncoder().encode(JSON.stringify({ ...header, kind, size: bytes.length, sha256: await sha256Hex(bytes) }));
  const plain = new Uint8Array(4 + head.length + bytes.length);
  new DataView(plain.buffer).setUint32(0, head.length);
  plain.set(head, 4);
  plain.set(bytes, 4 + head.length);
  const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, aes, plain);
  const wrapped = await crypto.subtle.wrapKey('raw', aes, pub, RSA);
  // The ciphertext stays bytes: the caller uploads it in chunks (keeping.js).
  return { kind, wrapped_key: toB64(wrapped), iv: toB64(iv), ciphertext: new Uint8Array(ct) };
}

// Opens an item from GET .../keeping/items/{item}: {header, bytes}.
export async function openItem(privateKey, item) {
  const aes = await crypto.subtle.unwrapKey('raw', fromB64(item.wrapped_key), privateKey, RSA, { name: 'AES-GCM' }, false, ['decrypt']);
  const plain = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromB64(item.iv) }, aes, fromB64(item.ciphertext)));
  const n = new DataView(plain.buffer).getUint32(0);
  const header = JSON.parse(new TextDecoder().decode(plain.subarray(4, 4 + n)));
  return { header, bytes: plain.subarray(4 + n) };
}
