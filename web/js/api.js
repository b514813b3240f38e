// The app's JSON API (docs/api.md): same origin only; state changes carry X-CSRF-Token.
let csrf = null;

export function setCsrf(t) {
  csrf = t;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const r = await fetch(path, {
    method,
    headers,
    body: body !== undefined ? JSON.stringify(body) : undefined,
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await r.text();
  const data = text ? JSON.parse(text) : {};
  if (!r.ok) throw new ApiError(r.status, data.error?.code || 'error', data.error?.message);
  return data;
}

// A token's claims (the payload part of AR1.kid.payload.sig), for display decisions only: the
// servers check the signature.
export function claims(token) {
  const p = token.split('.')[2].replace(/-/g, '+').replace(/_/g, '/');
  return JSON.parse(atob(p + '='.repeat((4 - (p.length % 4)) % 4)));
}
