// Keeps a staff signalling session's token fresh (protocol 5.15): at 80% of the token's life
// (from its iat and exp) it asks the app for the next one and sends `refresh {token}`; the server
// answers `refreshed {exp}` and the next round is planned from the new token. A failure (the app
// unreachable, the server refusing) is tried again after 1 s, doubling up to 30 s. When the app
// says there is no token for this session any more (fetchToken resolves to null: the account
// lost its clinics or roles in this jurisdiction, or was signed out), it stops and says so
// ('revoked'): the server closes the session once the current token is past its exp and the
// node's allowance (error token_expired, close 4001).

export const REFRESH_AT = 0.8;
const RETRY_MS = 1000;
const RETRY_MAX_MS = 30000;

export class TokenRefresher extends EventTarget {
  // opts: {sig: a SignalClient (send, addEventListener), token: the current token,
  // fetchToken: async () => the next token, or null when the app has none for us any more,
  // claims: token => {iat, exp}, timers?: {set, clear, now} (tests)}
  // Events: 'token' (detail: the token the server accepted), 'revoked'.
  constructor(opts) {
    super();
    this.sig = opts.sig;
    this.current = opts.token;
    this.fetchToken = opts.fetchToken;
    this.claims = opts.claims;
    // Wrapped: a browser refuses setTimeout called as a method of another object.
    this.timers = opts.timers || { set: (fn, ms) => setTimeout(fn, ms), clear: (h) => clearTimeout(h), now: () => Date.now() };
    this.timer = null;
    this.failures = 0;
    this.pending = null; // the token sent, until refreshed or refused
    this.stopped = false;
    this.sig.addEventListener('refreshed', () => this.onRefreshed());
    this.sig.addEventListener('error', (e) => {
      if (e.detail?.about === 'refresh' && this.pending) this.failed();
    });
    // The session is over (a final close, or the page closed the client): nothing to renew.
    this.sig.addEventListener('closed', () => this.stop());
    // A new connection (resumed or not) presents the current token in its hello: plan from it.
    this.sig.addEventListener('welcome', () => {
      this.pending = null;
      this.plan();
    });
  }

  // When the next refresh is due: 80% of the current token's life, in ms from now.
  due() {
    const c = this.claims(this.current);
    const iat = Number.isFinite(c.iat) ? c.iat : c.exp;
    return Math.max(0, (iat + REFRESH_AT * (c.exp - iat)) * 1000 - this.timers.now());
  }

  plan(delay = this.due()) {
    if (this.stopped) return;
    if (this.timer) this.timers.clear(this.timer);
    this.timer = this.timers.set(() => {
      this.timer = null;
      this.run();
    }, delay);
  }

  async run() {
    if (this.sig.stopped) this.stop();
    if (this.stopped) return;
    let token;
    try {
      token = await this.fetchToken();
    } catch {
      this.failed();
      return;
    }
    if (this.stopped) return;
    if (token === null || token === undefined) {
      this.stop();
      this.dispatchEvent(new CustomEvent('revoked'));
      return;
    }
    this.pending = token;
    if (!this.sig.send('refresh', { token })) this.failed(); // no connection now
  }

  onRefreshed() {
    if (!this.pending) return;
    this.current = this.pending;
    this.pending = null;
    this.failures = 0;
    this.dispatchEvent(new CustomEvent('token', { detail: this.current }));
    this.plan();
  }

  failed() {
    this.pending = null;
    const delay = Math.min(RETRY_MS * 2 ** this.failures, RETRY_MAX_MS);
    this.failures++;
    this.plan(delay);
  }

  stop() {
    this.stopped = true;
    if (this.timer) this.timers.clear(this.timer);
    this.timer = null;
  }
}
