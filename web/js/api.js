// The app's JSON API (docs/api.md), for every page: same origin, the session cookie, and
// X-CSRF-Token (from GET /api/v1/me) on every state change.
let csrf = null;

export function setCsrf(token) {
  csrf = token;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

// What to do when the app answers 403 mfa_enrolment_required (the account must enrol a second
// factor before any clinic route): a page that can enrol sets it to its enrolment screen; api()
// waits for it once (concurrent requests share one enrolment) and then sends the request again.
// Without it (the administration pages) the error reaches the caller.
let enrolment = null;
let enrolling = null;

export function onEnrolmentRequired(fn) {
  enrolment = fn;
}

export async function api(method, path, body) {
  try {
    return await request(method, path, body);
  } catch (e) {
    if (!(e instanceof ApiError) || e.code !== 'mfa_enrolment_required' || !enrolment) throw e;
    enrolling = enrolling || Promise.resolve(enrolment()).finally(() => (enrolling = null));
    await enrolling;
    return request(method, path, body);
  }
}

async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const r = await fetch(path, {
    method,
    headers,
    body: body !== undefined ? JSON.stringify(body) : undefined,
    credentials: 'same-origin',
    cache: 'no-store',
    redirect: 'error', // the API never redirects; a redirect is not followed anywhere
  });
  const text = await r.text();
  let data = {};
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      throw new ApiError(r.status, 'bad_answer', 'The server sent something unexpected.');
    }
  }
  if (!r.ok) throw new ApiError(r.status, data.error?.code || 'error', data.error?.message);
  return data;
}

// The path of a clinic's resource: /api/v1/clinics/<id>/<rest>.
export function clinicPath(clinic, rest = '') {
  return `/api/v1/clinics/${encodeURIComponent(String(clinic))}${rest ? '/' + rest : ''}`;
}

// A token's claims (the payload part of AR1.kid.payload.sig), for display decisions only: the
// servers check the signature.
export function claims(token) {
  const p = token.split('.')[2].replace(/-/g, '+').replace(/_/g, '/');
  return JSON.parse(atob(p + '='.repeat((4 - (p.length % 4)) % 4)));
}
