const FULL = 'The call is full: it already has four participants.';

// What the patient page does when the signalling server closes the session for good (the final
// close codes of docs/protocol.md 4.2, web/js/signal.js FINAL): the consultation screen ends and
// everything the page kept for a reload is wiped (patient.js finish). Returns null when the page
// stays as it is (1000: the page closed it itself), else {msg} (msg undefined: the plain end
// screen); 4005 only while the page holds a session (active). Codes that mean a client bug or
// an old page end it too: the session is gone on the server, and stored tokens would only
// outlive it in the tab.
export function patientEnding(code, { active = false, invitee = false } = {}) {
  switch (code) {
    case 4007:
      return { msg: undefined };
    case 4015:
      return { msg: 'You have left the call.' };
    case 4005:
      return active ? { msg: FULL } : null;
    case 4001:
      return {
        msg: invitee
          ? 'This invitation link was already used or has expired. Please ask for a new one.'
          : 'Your link has expired. Please open it again.',
      };
    case 4012:
      return { msg: 'This page is out of date. Please open your link again.' };
    case 4003:
    case 4008:
    case 4013:
      return { msg: 'Something went wrong on this page. Please open your link again.' };
    default:
      return null;
  }
}

// What the patient page does with an error frame that ends its part (protocol 5.7): null when the
// page goes on, else {msg}. room_full only while the page holds a session (a race after
// `joined`); forbidden on an invitee's join: its link names another clinic's room.
export function patientErrorEnding(err, { active = false, invitee = false } = {}) {
  if (err.name === 'room_full') return active ? { msg: FULL } : null;
  if (err.name === 'forbidden' && err.about === 'join' && invitee) {
    return { msg: 'This invitation link cannot be used. Please ask for a new one.' };
  }
  return null;
}
