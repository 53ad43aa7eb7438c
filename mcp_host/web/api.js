// The API of this origin: requests with the API key when one is needed, Server-Sent Events read from fetch.

const KEY_STORAGE = "mcp-host-api-key";

export class Unauthorised extends Error {}

let askForKey = () => {};

// What the page does when the server answers 401: ask for the key (`problem` says why, or is empty).
export function onUnauthorised(handler) {
  askForKey = handler;
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export async function api(method, path, body, signal) {
  const headers = {};
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key) headers.Authorization = "Bearer " + key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    if (signal && signal.aborted) throw error;
    throw new Error("The server cannot be reached: is mcp-host serve still running?");
  }
  if (response.status === 401) {
    setKey(null);
    askForKey(key ? "The server refused this key." : "");
    throw new Unauthorised("This server needs its API key.");
  }
  return response;
}

export async function errorText(response) {
  try {
    const body = await response.json();
    return (body.error && body.error.message) || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

// The JSON of a successful answer; an error answer throws with the server's message.
export async function json(method, path, body, signal) {
  const response = await api(method, path, body, signal);
  if (!response.ok) throw new Error(await errorText(response));
  return response.json();
}

// Server-Sent Events read from a fetch body (EventSource cannot send the Authorization header).
export async function* serverSentEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let kind = "";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      let line = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        if (data.length) yield { type: kind || "message", data: data.join("\n") };
        kind = "";
        data = [];
      } else if (line.startsWith(":")) {
        // a keep-alive comment
      } else {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") kind = value;
        else if (field === "data") data.push(value);
      }
    }
  }
}

// The current chat: its id (null before the first message) and the path of its endpoints.
export const chat = {
  id: null,
  path(suffix = "") {
    return `/v1/sessions/${encodeURIComponent(this.id)}${suffix}`;
  },
};
