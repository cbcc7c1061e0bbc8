// The API client: JSON in and out, the cookie session, and the CSRF header every
// cookie-authenticated POST/PUT/DELETE must carry (see functions/openapi.yaml).

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// Routes that work without a session, so they need no CSRF token.
const PUBLIC_POSTS = new Set(['/api/register', '/api/token']);

let csrfToken = null;
let onUnauthorized = () => {};

/** Called when a signed-in request gets 401 (session expired or revoked). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** Forget the CSRF token: it is bound to the session, which changes at sign-in and sign-out. */
export function resetSession() {
  csrfToken = null;
}

async function freshCsrfToken() {
  const data = await api('GET', '/api/csrf/token');
  csrfToken = data.csrf_token;
  return csrfToken;
}

async function parse(resp) {
  const text = await resp.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { message: text };
  }
}

/**
 * api('POST', '/api/uploads', { filename, size_bytes }) → parsed JSON, or throws ApiError.
 * A CSRF refusal is retried once with a fresh token (tokens expire after 30 minutes).
 */
export async function api(method, path, body) {
  const needsCsrf = method !== 'GET' && !PUBLIC_POSTS.has(path);
  for (let attempt = 0; ; attempt += 1) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (needsCsrf) {
      try {
        headers['X-CSRF-Token'] = csrfToken && attempt === 0 ? csrfToken : await freshCsrfToken();
      } catch (e) {
        // Logging out without a valid session still clears the cookie server-side.
        if (path !== '/api/logout') throw e;
      }
    }
    const resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
    const data = await parse(resp);
    if (resp.ok) return data;
    const code = data?.error ?? 'http_error';
    if (resp.status === 403 && code === 'csrf_failed' && attempt === 0) continue;
    const err = new ApiError(
      resp.status,
      code,
      data?.message ?? `${resp.status} ${resp.statusText}`,
      Number(resp.headers.get('Retry-After')) || null,
    );
    if (resp.status === 401 && !PUBLIC_POSTS.has(path) && path !== '/api/users/me') {
      onUnauthorized(err);
    }
    throw err;
  }
}

/**
 * PUTs `file` to a presigned URL with exactly the signed headers, reporting progress.
 * XMLHttpRequest rather than fetch: only it reports upload progress.
 */
export function putWithProgress(url, file, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [k, v] of Object.entries(headers ?? {})) {
      // The browser sets these itself (and refuses to let scripts set them).
      if (['content-length', 'host'].includes(k.toLowerCase())) continue;
      xhr.setRequestHeader(k, v);
    }
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(new ApiError(xhr.status, 'upload_refused', storageMessage(xhr.status)));
    });
    xhr.addEventListener('error', () =>
      reject(new ApiError(0, 'network', 'the upload failed: network error or storage unreachable')),
    );
    xhr.addEventListener('abort', () => reject(new ApiError(0, 'aborted', 'upload cancelled')));
    xhr.send(file);
  });
}

function storageMessage(status) {
  if (status === 403) return 'storage refused the upload (link expired, or the file changed size); try again';
  if (status === 400) return 'storage refused the upload (file too large or malformed request)';
  return `storage answered ${status}; try again`;
}
