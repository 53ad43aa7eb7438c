// Small DOM helpers shared by the page's modules. Text from the model, tools or servers goes in through
// textContent and Text nodes only, never as HTML.

export const $ = (id) => document.getElementById(id);

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function button(label, className, onClick) {
  const node = element("button", className, label);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

export function setStatus(text) {
  $("status").textContent = text;
}

export function nearBottom() {
  const log = $("log");
  return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
}

// Appends and keeps the conversation scrolled to its end if the reader was there.
export function append(parent, child) {
  const follow = nearBottom();
  parent.append(child);
  if (follow) $("log").scrollTop = $("log").scrollHeight;
  return child;
}

export function formatDuration(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function formatArguments(args) {
  if (typeof args === "string") {
    try {
      return JSON.stringify(JSON.parse(args), null, 2);
    } catch {
      return args;
    }
  }
  return JSON.stringify(args, null, 2);
}

// A panel opened and closed by its toggle button; `onOpen` runs each time it opens.
export function panel(toggleId, panelId, onOpen) {
  const toggle = $(toggleId);
  const box = $(panelId);
  toggle.addEventListener("click", () => {
    const open = box.hidden;
    box.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open && onOpen) onOpen();
  });
  return box;
}

// "just now", "5 min ago", "3 h ago", else the date, for an epoch time in seconds.
export function formatAge(epochSeconds) {
  if (!epochSeconds) return "";
  const seconds = Date.now() / 1000 - epochSeconds;
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(epochSeconds * 1000).toLocaleDateString();
}
