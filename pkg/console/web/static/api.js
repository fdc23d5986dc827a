// The admin API client. The admin token lives in this tab's sessionStorage
// only: it is gone when the tab closes, and no other tab, cookie or
// request to anyone but this console ever carries it.

const tokenKey = "ringtap.admin_token";

export function token() {
  return sessionStorage.getItem(tokenKey);
}

export function setToken(t) {
  sessionStorage.setItem(tokenKey, t);
}

export function clearToken() {
  sessionStorage.removeItem(tokenKey);
}

// ApiError is a failed call: status is the HTTP status (0 when the console
// did not answer), message one sentence for the banner, and errors the
// validation messages of a 422.
export class ApiError extends Error {
  constructor(status, message, errors = []) {
    super(message);
    this.status = status;
    this.errors = errors;
  }
}

// onUnauthorized is called on any 401, after the token is cleared.
let unauthorized = () => {};
export function onUnauthorized(fn) {
  unauthorized = fn;
}

// call sends one request to /api/v1/PATH and returns the decoded JSON body
// (null for an empty one). It throws ApiError.
export async function call(method, path, { body, ifMatch, tokenOverride } = {}) {
  const headers = { Accept: "application/json" };
  const t = tokenOverride ?? token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch !== undefined) headers["If-Match"] = String(ifMatch);
  let res;
  try {
    res = await fetch(`/api/v1/${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
  } catch {
    throw new ApiError(0, "The console did not answer: check that it is running and reachable, then try again.");
  }
  if (res.ok) return decode(await res.text());
  throw await failure(res, tokenOverride);
}

// download fetches /api/v1/PATH, a file only the admin token may read, and
// hands it to the browser as a download named as the console says
// (Content-Disposition), or fallbackName. onProgress(received, total) is
// called as the body arrives; total is 0 when the console did not say.
// The body goes into a Blob, which the browser keeps on disk when it is
// large, and is saved through an object URL that is revoked once the
// browser has taken it. It throws ApiError.
export async function download(path, fallbackName, onProgress = () => {}) {
  let res;
  try {
    res = await fetch(`/api/v1/${path}`, {
      headers: { Authorization: `Bearer ${token()}` },
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
  } catch {
    throw new ApiError(0, "The console did not answer: check that it is running and reachable, then try again.");
  }
  if (!res.ok) throw await failure(res);
  const total = Number(res.headers.get("Content-Length")) || 0;
  let received = 0;
  onProgress(0, total);
  const counted = res.body.pipeThrough(new TransformStream({
    transform(chunk, ctl) {
      received += chunk.byteLength;
      onProgress(received, total);
      ctl.enqueue(chunk);
    },
  }));
  let blob;
  try {
    blob = await new Response(counted).blob();
  } catch {
    throw new ApiError(0, "The download broke off: try again.");
  }
  const name = attachmentName(res.headers.get("Content-Disposition")) || fallbackName;
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // The browser reads the object URL when it starts the download; give it
  // time before the memory is let go.
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return { name, size: blob.size };
}

// attachmentName is the filename of a Content-Disposition header, without
// any directory part, or "".
function attachmentName(cd) {
  if (!cd) return "";
  let m = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(cd);
  let name = "";
  if (m) {
    try {
      name = decodeURIComponent(m[1].trim());
    } catch {
      name = "";
    }
  }
  if (!name) {
    m = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(cd);
    if (m) name = m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2];
  }
  return name.replace(/^.*[\\/]/, "");
}

function decode(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// failure is the ApiError of a non-2xx answer; a 401 also forgets the token.
async function failure(res, tokenOverride) {
  const data = decode(await res.text().catch(() => ""));
  const said = data && typeof data.error === "string" && data.error ? sentence(data.error) : "";
  const errors = (data && Array.isArray(data.errors)) ? data.errors : [];
  if (res.status === 401 && !tokenOverride) {
    clearToken();
    unauthorized(said || "The console no longer accepts this token: sign in again.");
  }
  return new ApiError(res.status, said || fallback(res), errors);
}

function fallback(res) {
  switch (res.status) {
    case 401: return "The console did not accept this admin token.";
    case 403: return "The console refused this request.";
    case 404: return "The console does not know this item: it may have been removed.";
    case 409: return "Someone else changed this since you loaded it.";
    case 428: return "The console needs the generation this change is based on: reload and try again.";
    case 413: return "The request is too large for the console.";
    default: return `The console answered ${res.status} ${res.statusText || ""}`.trim() + ".";
  }
}

// sentence capitalizes a server message and ends it with a full stop.
function sentence(s) {
  s = s.trim();
  if (!s) return s;
  s = s[0].toUpperCase() + s.slice(1);
  return /[.!?]$/.test(s) ? s : s + ".";
}
