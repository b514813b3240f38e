// What the patient's page asks for again after `error lost` (docs/protocol.md 5.10): frames for
// its session were lost before the server numbered them, so a change of its own status (waiting,
// hold, seen, a transfer) or of the call may be missing, and the replay cannot bring it back.
// - In the queue or in the call: `subscribe` to its own clinic. For a patient the server answers
//   with its current `wait {area, status}` (never anything about the queue or another patient);
//   the page's 'wait' handler then moves it to the right screen. `arrive` would not do: it is
//   accepted once per session and needs the name the page no longer holds.
// - In a call (a mesh exists): every peer connection is renegotiated with an ICE restart.
// An invitee has no queue place; before arriving there is nothing to resynchronise.
const QUEUED = new Set(['arriving', 'waiting', 'hold', 'call']);

// sig: a SignalClient; st: the page's state ({clinic, area, phase, invitee?}) or null; mesh: the
// call's Mesh or null. Returns what was asked for, for the page's own record.
export function patientResync(sig, st, mesh) {
  const asked = [];
  if (!st) return asked;
  if (mesh) {
    mesh.restart();
    asked.push('restart');
  }
  if (!st.invitee && QUEUED.has(st.phase) && st.clinic) {
    sig.send('subscribe', { clinic: st.clinic, area: st.area });
    asked.push('subscribe');
  }
  return asked;
}
