// The web chat of `mcp-host serve`: talks to this origin's API only (/v1/sessions..., /v1/servers, /v1/config...).
//
// Safety rules, kept by construction in every module: whatever the model, a tool or a server sends is put on the
// page through textContent, Text nodes and createElement, never as HTML; links are made only for http(s) URLs;
// images in answers are never loaded. The page's CSP forbids inline code and other origins anyway.
import { Unauthorised, api, chat, errorText, onUnauthorised, serverSentEvents, setKey } from "./api.js";
import { $, append, button, element, panel, setStatus } from "./dom.js";
import { attachmentList, putBack, takeAttachments } from "./attach.js";
import { loadChats, setupChats } from "./chats.js";
import { loadConfig } from "./config.js";
import { openChat } from "./history.js";
import { followLoads, loadModels } from "./models.js";
import { loadServers } from "./servers.js";
import { forgetNewChatTools, loadTools, newChatTools } from "./tools.js";
import { TurnView, handleEvent } from "./turn.js";

const SESSION_STORAGE = "mcp-host-session"; // the chat a reload comes back to (the server keeps it in its store)
const log = $("log");
const composer = $("composer");
const input = $("message");
const sendButton = $("send");
const stopButton = $("stop");
const keyForm = $("key-form");
const keyInput = $("key-input");
const keyError = $("key-error");

let turn = null; // the running turn: {controller, view}

// ---- the API key -------------------------------------------------------------------------------------------

onUnauthorised((problem) => {
  keyError.textContent = problem;
  keyError.hidden = !problem;
  keyForm.hidden = false;
  keyInput.focus();
});

async function checkAccess() {
  try {
    const response = await api("GET", "/v1/models");
    if (response.ok) {
      keyForm.hidden = true;
      setStatus("");
    } else {
      setStatus(await errorText(response));
    }
  } catch (error) {
    if (!(error instanceof Unauthorised)) setStatus("The server cannot be reached: " + error.message);
  }
}

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) return;
  setKey(key);
  keyInput.value = "";
  checkAccess().then(async () => {
    if (!keyForm.hidden) return;
    input.focus();
    // What the refused requests could not show, shown now: the chat of the last visit, the list, open panels.
    if (!chat.id) await restoreSession();
    await loadChats();
    document.dispatchEvent(new CustomEvent("servers-changed"));
    if (!$("config").hidden) loadConfig();
    if (!$("options").hidden) loadModels();
  });
});

// ---- sending and stopping ------------------------------------------------------------------------------------

function setBusy(busy) {
  sendButton.hidden = busy;
  stopButton.hidden = !busy;
  stopButton.disabled = false;
}

// What the Options and Tools panels say for new sessions (only what was chosen: the rest takes the defaults).
function sessionOptions() {
  const options = newChatTools();
  const model = $("option-model").value;
  const reasoning = $("option-reasoning").value;
  if (model) options.model = model;
  if (reasoning) options.reasoning_effort = reasoning;
  const limit = $("option-max-tokens");
  if (limit.value && limit.checkValidity()) options.max_tokens = Number(limit.value);
  return options;
}

async function openSession() {
  const opening = api("POST", "/v1/sessions", sessionOptions());
  const loading = setTimeout(() => followLoads(opening), 300); // a model not loaded yet: show its progress
  let response;
  try {
    response = await opening;
  } finally {
    clearTimeout(loading);
  }
  if (!response.ok) throw new Error(await errorText(response));
  chat.id = (await response.json()).id;
  forgetNewChatTools();
  localStorage.setItem(SESSION_STORAGE, chat.id);
  document.dispatchEvent(new CustomEvent("chat-changed")); // listed at once, not when its first turn ends
}

let renewed = false; // the last message went to a new session: the model no longer sees the earlier turns

async function postMessage(text, attachments, signal) {
  const body = { content: text };
  if (attachments.length) body.attachments = attachments.map(({ server, uri }) => ({ server, uri }));
  for (let attempt = 0; ; attempt += 1) {
    if (!chat.id) await openSession();
    const response = await api("POST", chat.path("/messages"), body, signal);
    if (response.status === 404 && attempt === 0) {
      chat.id = null; // deleted elsewhere: start another, and say so
      renewed = true;
      continue;
    }
    if (!response.ok) throw new Error(await errorText(response));
    return response;
  }
}

// After a stop, the server cancels the turn as it sees the connection close: wait for that.
async function waitUntilIdle() {
  const deadline = performance.now() + 5000;
  while (chat.id && performance.now() < deadline) {
    try {
      const response = await api("GET", chat.path());
      if (!response.ok || !(await response.json()).busy) return;
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function send(text) {
  if (turn) return;
  const mine = append(log, element("article", "turn user"));
  mine.setAttribute("aria-label", "You");
  mine.append(element("p", "", text));
  const attachments = takeAttachments();
  if (attachments.length) mine.append(attachmentList(attachments));
  input.value = "";
  renewed = false;
  await streamTurn(async (signal, view) => {
    let response;
    try {
      response = await postMessage(text, attachments, signal);
    } catch (error) {
      putBack(attachments); // not sent: they stay for the next try
      throw error;
    }
    if (renewed) view.note("The earlier session had closed: a new one began, and the model no longer sees the messages above.", "stopped");
    return response;
  }, text);
}

// Goes on with the turn a restart of the server interrupted (the calls it waited on are asked again).
async function resumeTurn() {
  if (turn) return;
  await streamTurn(async (signal) => {
    const response = await api("POST", chat.path("/resume"), {}, signal);
    if (!response.ok) throw new Error(await errorText(response));
    return response;
  });
}

// One turn on the page: `start(signal, view)` makes the request whose events stream in.
async function streamTurn(start, text) {
  const view = new TurnView();
  const controller = new AbortController();
  turn = { controller, view };
  setBusy(true);
  setStatus("Sending…");
  try {
    const response = await start(controller.signal, view);
    for await (const message of serverSentEvents(response)) {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        continue;
      }
      handleEvent(view, message.type, event);
    }
    if (!view.completed) view.note("The answer's stream ended early.", "error");
    setStatus("");
  } catch (error) {
    view.drawAnswer();
    if (controller.signal.aborted) {
      view.note("Stopped.", "stopped");
      setStatus("Stopped");
    } else {
      if (error instanceof Unauthorised && text) input.value = text;
      view.note(error.message, "error");
      setStatus("");
    }
  } finally {
    if (controller.signal.aborted) await waitUntilIdle();
    view.close();
    turn = null;
    setBusy(false);
    input.focus();
    document.dispatchEvent(new CustomEvent("chat-changed"));
  }
}

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (text) send(text);
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    composer.requestSubmit();
  }
});

function stop() {
  if (!turn) return;
  stopButton.disabled = true;
  setStatus("Stopping…");
  turn.controller.abort();
}

stopButton.addEventListener("click", stop);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && turn) {
    event.preventDefault();
    stop();
  } else if (event.key === "k" && (event.ctrlKey || event.metaKey) && !event.altKey) {
    event.preventDefault(); // Ctrl+K: search the chats (the drawer opens on a phone)
    if (getComputedStyle(chatsToggle).display !== "none") showDrawer(true);
    else $("chats-search").focus();
  }
});

// ---- panels ----------------------------------------------------------------------------------------------------

const toolsPanel = panel("tools-toggle", "tools", loadTools);
panel("options-toggle", "options", loadModels);
const serversPanel = panel("servers-toggle", "servers", loadServers);
panel("config-toggle", "config", loadConfig);
$("servers-refresh").addEventListener("click", loadServers);

// What shows the current chat's state follows it when it changes.
document.addEventListener("chat-changed", () => {
  if (!toolsPanel.hidden) loadTools();
});
document.addEventListener("servers-changed", () => {
  if (!serversPanel.hidden) loadServers();
  if (!toolsPanel.hidden) loadTools();
});

// On a phone the chats list is a drawer.
const chatsNav = $("chats");
const chatsToggle = $("chats-toggle");
function showDrawer(open) {
  chatsNav.style.top = `${document.querySelector(".bar").getBoundingClientRect().bottom}px`;
  chatsNav.classList.toggle("open", open);
  chatsToggle.setAttribute("aria-expanded", String(open));
  if (open) $("chats-search").focus();
}
chatsToggle.addEventListener("click", () => showDrawer(!chatsNav.classList.contains("open")));
chatsNav.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && chatsNav.classList.contains("open")) {
    event.stopPropagation();
    showDrawer(false);
    chatsToggle.focus();
  }
});

// ---- which chat is shown ----------------------------------------------------------------------------------------

// A new, empty chat: the session opens with the first message (so the Options panel still applies).
function newChat() {
  if (turn) turn.controller.abort();
  chat.id = null;
  localStorage.removeItem(SESSION_STORAGE);
  log.replaceChildren();
  setStatus("");
  input.focus();
  document.dispatchEvent(new CustomEvent("chat-changed"));
}

$("new-chat").addEventListener("click", newChat);

// Shows a stored chat; a failure leaves the page as it was.
async function showChat(id) {
  if (turn) {
    setStatus("Stop the answer (Esc) or let it finish before opening another chat.");
    return false;
  }
  try {
    const session = await openChat(id);
    localStorage.setItem(SESSION_STORAGE, id);
    setStatus("");
    if (session.state === "interrupted") offerResume(session);
    document.dispatchEvent(new CustomEvent("chat-changed"));
    input.focus();
    return true;
  } catch (error) {
    if (!(error instanceof Unauthorised)) setStatus(error.message);
    return false;
  }
}

// A turn a restart of the server cut off: say so, and offer to go on with it.
function offerResume(session) {
  const note = append(log, element("div", "note stopped resume"));
  const waiting = (session.waiting_calls || []).map((call) => call.tool).filter(Boolean);
  note.append(
    element(
      "p",
      "",
      waiting.length
        ? `The last turn was interrupted by a restart of the server while ${waiting.join(", ")} waited for your approval.`
        : "The last turn was interrupted by a restart of the server before it was answered.",
    ),
  );
  const resume = button("Resume the turn", "primary", () => {
    note.remove();
    resumeTurn();
  });
  note.append(resume);
}

// A reload comes back to the chat it showed.
async function restoreSession() {
  const stored = localStorage.getItem(SESSION_STORAGE);
  if (!stored) return;
  try {
    const response = await api("GET", `/v1/sessions/${encodeURIComponent(stored)}`);
    if (!response.ok) {
      localStorage.removeItem(SESSION_STORAGE);
      return;
    }
  } catch {
    return;
  }
  await showChat(stored);
}

setupChats(showChat, newChat);

checkAccess()
  .then(restoreSession)
  .then(() => loadChats());
input.focus();
