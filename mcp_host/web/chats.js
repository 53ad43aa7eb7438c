// The list of stored chats: open one, rename it, delete it, search them by text.
import { chat, json } from "./api.js";
import { $, button, element, formatAge, setStatus } from "./dom.js";

const list = $("chats-list");
const search = $("chats-search");
const problem = $("chats-error");
let onOpen = async () => false;
let onDeleted = () => {};
let loading = null; // the listing in flight: a newer one aborts it
const PAGE = 50;

function showError(message) {
  problem.textContent = message;
  problem.hidden = !message;
}

// `open(id)` shows a chat (resolves true when it did); `deleted(id)` runs after the chat shown is deleted.
export function setupChats(open, deleted) {
  onOpen = open;
  onDeleted = deleted;
  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(loadChats, 250);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      clearTimeout(typing);
      loadChats();
    }
  });
  document.addEventListener("chat-changed", () => loadChats());
}

// The newest chats (or those the search finds); "Show older" pages on from the last one listed.
export async function loadChats(focusId) {
  if (loading) loading.abort();
  const controller = (loading = new AbortController());
  try {
    const found = await listChats(controller.signal);
    if (controller.signal.aborted) return;
    showError("");
    list.replaceChildren(...found.data.map(chatItem));
    if (!found.data.length) list.append(element("li", "hint", search.value.trim() ? "No chat says that." : "No chats yet."));
    more(found, controller);
    if (focusId) {
      const again = list.querySelector(`li[data-chat="${CSS.escape(focusId)}"] .chat-open`);
      if (again) again.focus();
    }
  } catch (error) {
    if (!controller.signal.aborted) showError(error.message);
  } finally {
    if (loading === controller) loading = null;
  }
}

async function listChats(signal, before) {
  const query = search.value.trim();
  const parameters = new URLSearchParams({ limit: String(PAGE) });
  if (query) parameters.set("q", query);
  if (before !== undefined && before !== null) parameters.set("before", String(before));
  return json("GET", `/v1/sessions?${parameters}`, undefined, signal);
}

// What follows the listed chats: a button for older ones, and whether a search stopped early.
function more(found, controller) {
  if (found.truncated) list.append(element("li", "hint", `Searched the latest ${found.searched} chats; older ones next.`));
  if (!(found.has_more || found.truncated) || found.next_before === undefined || found.next_before === null) return;
  const item = element("li", "chat-more");
  const older = button("Show older", "quiet small", async () => {
    older.disabled = true;
    try {
      const next = await listChats(controller.signal, found.next_before);
      item.remove();
      list.querySelectorAll("li.hint").forEach((hint) => hint.remove());
      const items = next.data.map(chatItem);
      list.append(...items);
      more(next, controller);
      if (items.length) items[0].querySelector(".chat-open").focus();
    } catch (error) {
      if (!controller.signal.aborted) showError(error.message);
      older.disabled = false;
    }
  });
  item.append(older);
  list.append(item);
}

function chatItem(summary) {
  const item = element("li", "chat-item");
  item.dataset.chat = summary.id;
  if (summary.id === chat.id) item.setAttribute("aria-current", "true");
  const title = summary.title || "Untitled chat";
  const open = button("", "chat-open", async () => {
    if (await onOpen(summary.id)) closeOnPhone();
  });
  open.append(element("span", "chat-title", title));
  const facts = [formatAge(summary.updated), summary.state === "interrupted" ? "interrupted" : ""];
  open.append(element("span", "chat-meta hint", facts.filter(Boolean).join(" · ")));
  if (summary.preview) open.append(element("span", "chat-preview hint", summary.preview));
  const rename = button("Rename", "quiet small", () => startRename(item, summary, title));
  rename.setAttribute("aria-label", `Rename ${title}`);
  const remove = button("Delete", "quiet small danger-text", () => removeChat(item, summary, title, remove));
  remove.setAttribute("aria-label", `Delete ${title}`);
  const actions = element("div", "chat-actions");
  actions.append(rename, remove);
  item.append(open, actions);
  return item;
}

function startRename(item, summary, title) {
  const form = element("form", "chat-rename");
  const field = element("input");
  field.value = summary.title || "";
  field.maxLength = 200;
  field.required = true;
  field.setAttribute("aria-label", `New title for ${title}`);
  const save = element("button", "primary small", "Save");
  save.type = "submit";
  const cancel = button("Cancel", "quiet small", () => loadChats(summary.id));
  form.append(field, save, cancel);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const wanted = field.value.trim();
    if (!wanted) return;
    save.disabled = true;
    try {
      await json("PATCH", `/v1/sessions/${encodeURIComponent(summary.id)}`, { title: wanted });
      await loadChats(summary.id);
    } catch (error) {
      showError(error.message);
      save.disabled = false;
    }
  });
  field.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      loadChats(summary.id);
    }
  });
  item.replaceChildren(form);
  field.focus();
  field.select();
}

// Deleting asks once more on the button itself: a second click within a few seconds deletes.
async function removeChat(item, summary, title, remove) {
  if (!remove.classList.contains("confirm")) {
    remove.classList.add("confirm");
    remove.textContent = "Delete?";
    remove.setAttribute("aria-label", `Confirm deleting ${title}`);
    setTimeout(() => {
      if (remove.isConnected && remove.classList.contains("confirm")) {
        remove.classList.remove("confirm");
        remove.textContent = "Delete";
        remove.setAttribute("aria-label", `Delete ${title}`);
      }
    }, 4000);
    return;
  }
  remove.disabled = true;
  try {
    await json("DELETE", `/v1/sessions/${encodeURIComponent(summary.id)}`);
    item.remove();
    if (summary.id === chat.id) onDeleted(summary.id);
    setStatus(`Deleted "${title}".`);
    await loadChats();
  } catch (error) {
    showError(error.message);
    remove.disabled = false;
  }
}

function closeOnPhone() {
  const nav = $("chats");
  if (nav.classList.contains("open")) {
    nav.classList.remove("open");
    $("chats-toggle").setAttribute("aria-expanded", "false");
  }
}
