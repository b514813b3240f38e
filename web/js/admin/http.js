// The app's JSON API for the administration pages (docs/api.md): same origin, the session
// cookie, and X-CSRF-Token (from GET /api/v1/me) on every state change.
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

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const r = await fetch(path, {
    method,
    headers,
    body: body !== undefined ? JSON.stringify(body) : undefined,
    credentials: 'same-origin',
    cache: 'no-store',
    redirect: 'error',
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
