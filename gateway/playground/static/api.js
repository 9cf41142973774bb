// The gateway's HTTP API as the playground uses it: the stored key, JSON calls, SSE streams, errors.
// Every failure becomes an ApiError carrying the gateway's own words (message, param, code, fields).

const KEY_STORAGE = "vlmgw.apiKey";

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.type = error.type || "";
    this.param = error.param || null;
    this.code = error.code || null;
    this.fields = error.fields || {};
  }
}

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
}

async function errorOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error) return new ApiError(response.status, body.error);
    if (body && body.detail) return new ApiError(response.status, { message: String(body.detail) });
  } catch (_) {
    /* not JSON: the text itself is the message */
  }
  return new ApiError(response.status, { message: text || response.statusText || "request failed" });
}

async function send(method, path, { json, form, signal } = {}) {
  const init = { method, signal, headers: headers() };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, { message: `The gateway did not answer: ${exc.message}` });
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

/** A JSON call; null for an empty answer (204). */
export async function call(method, path, options = {}) {
  const response = await send(method, path, options);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, options) => call("GET", path, options);
export const post = (path, json, options = {}) => call("POST", path, { ...options, json });
export const patch = (path, json, options = {}) => call("PATCH", path, { ...options, json });

/** An authorised file (an image) as an object URL, for <img> elements that cannot send the key. */
export async function objectUrl(path) {
  const response = await send("GET", path);
  return URL.createObjectURL(await response.blob());
}

/** POST with stream: true; yields each parsed SSE chunk. An error event throws an ApiError. */
export async function* stream(path, body, signal) {
  const response = await send("POST", path, { json: body, signal });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(response.status, chunk.error);
      yield chunk;
    }
  }
}
