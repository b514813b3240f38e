// Verification code (I3): derived from the DTLS certificate fingerprints the two browsers
// actually negotiated, read from getStats (the transport's local and remote RTCCertificateStats).
// Both sides sort the two fingerprints, so they hash the same text and show the same digits; a
// server in the middle would terminate DTLS with its own certificates and the codes would differ.

export async function fingerprints(pc) {
  const stats = await pc.getStats();
  let local = null;
  let remote = null;
  stats.forEach((s) => {
    // The remote certificate is known once the DTLS handshake has checked it.
    if (s.type === 'transport' && s.localCertificateId && s.remoteCertificateId) {
      const l = stats.get(s.localCertificateId);
      const r = stats.get(s.remoteCertificateId);
      if (l && r) {
        local = `${l.fingerprintAlgorithm} ${l.fingerprint}`;
        remote = `${r.fingerprintAlgorithm} ${r.fingerprint}`;
      }
    }
  });
  return local && remote ? [local, remote] : null;
}

// Twelve digits in three groups, from the first 8 bytes of SHA-256 over the sorted fingerprints.
export async function verificationCode(pc) {
  const fp = await fingerprints(pc);
  if (!fp) return null;
  const text = fp.map((f) => f.toUpperCase()).sort().join('\n');
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  let n = 0n;
  for (let i = 0; i < 8; i++) n = (n << 8n) | BigInt(digest[i]);
  const digits = (n % 10n ** 12n).toString().padStart(12, '0');
  return `${digits.slice(0, 4)} ${digits.slice(4, 8)} ${digits.slice(8)}`;
}
