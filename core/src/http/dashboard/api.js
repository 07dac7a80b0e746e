// Calls to Tally's HTTP API with the signed-in key.

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(key, path, init = {}) {
  let res;
  try {
    res = await fetch(path, {
      ...init,
      headers: { Authorization: `Bearer ${key}`, ...(init.body ? { 'Content-Type': 'application/json' } : {}) },
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'The server did not answer (network error).', 'network');
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) throw new ApiError(res.status, body?.error || `${res.status} ${res.statusText}`, body?.code);
  return body;
}

/** POST /api/v2/query. */
export const query = (key, body, signal) => call(key, '/api/v2/query', { method: 'POST', body: JSON.stringify(body), signal });

/** POST /api/v2/props: {props: [{name, events}], truncated, meta}, most events first. */
export const props = (key, body, signal) => call(key, '/api/v2/props', { method: 'POST', body: JSON.stringify(body), signal });

/** GET /api/v1/sites: [{domain, timezone}]. */
export const sites = async (key) => (await call(key, '/api/v1/sites')).sites || [];
