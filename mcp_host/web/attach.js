// Attaching servers' resources to a message: the resources every ready server lists, or an address typed in (a
// template's, say). The server reads each one into the message when it is sent (at most 16).
import { json } from "./api.js";
import { $, button, element } from "./dom.js";

const MAX_ATTACHMENTS = 16; // what the session API takes
const panelBox = $("attach-panel");
const toggle = $("attach");
const listBox = $("attach-list");
const problem = $("attach-error");
const chips = $("attachments");
let chosen = []; // [{server, uri, label}]

function showError(message) {
  problem.textContent = message;
  problem.hidden = !message;
}

// What the next message takes with it, taken off the composer.
export function takeAttachments() {
  const taken = chosen;
  chosen = [];
  drawChips();
  return taken;
}

// Puts attachments back on the composer (their message was not sent).
export function putBack(refs) {
  chosen = [...refs, ...chosen].slice(0, MAX_ATTACHMENTS);
  drawChips();
}

// The attachments of a sent message, shown under its words.
export function attachmentList(refs) {
  const list = element("ul", "attached");
  for (const ref of refs) list.append(element("li", "attachment", `${ref.server}: ${ref.label}`));
  return list;
}

function add(server, uri, label) {
  showError("");
  if (chosen.some((ref) => ref.server === server && ref.uri === uri)) return;
  if (chosen.length >= MAX_ATTACHMENTS) {
    showError(`A message takes at most ${MAX_ATTACHMENTS} attachments.`);
    return;
  }
  chosen.push({ server, uri, label: label || uri });
  drawChips();
}

function drawChips() {
  chips.replaceChildren(
    ...chosen.map((ref) => {
      const chip = element("span", "attachment");
      chip.append(element("span", "", `${ref.server}: ${ref.label}`));
      const remove = button("×", "quiet small", () => {
        chosen = chosen.filter((other) => other !== ref);
        drawChips();
        $("message").focus();
      });
      remove.setAttribute("aria-label", `Remove ${ref.label}`);
      chip.append(remove);
      return chip;
    }),
  );
  chips.hidden = !chosen.length;
}

async function loadResources() {
  showError("");
  listBox.replaceChildren(element("p", "hint", "Asking the servers…"));
  try {
    const servers = (await json("GET", "/v1/servers")).data.filter((server) => server.state === "ready");
    const listings = await Promise.all(
      servers.map((server) =>
        json("GET", `/v1/servers/${encodeURIComponent(server.name)}/resources`).catch(() => null),
      ),
    );
    const groups = [];
    servers.forEach((server, index) => {
      const listing = listings[index];
      if (!listing || (!listing.data.length && !listing.templates.length)) return;
      groups.push(serverGroup(server.name, listing));
    });
    listBox.replaceChildren(...groups);
    if (!groups.length) listBox.append(element("p", "hint", "No server offers resources."));
  } catch (error) {
    listBox.replaceChildren();
    showError(error.message);
  }
}

function serverGroup(server, listing) {
  const group = element("section", "attach-server");
  group.append(element("h3", "", server));
  const list = group.appendChild(element("ul"));
  for (const resource of listing.data) {
    const label = resource.title || resource.name || resource.uri;
    const item = list.appendChild(element("li"));
    const pick = button(label, "quiet small", () => add(server, resource.uri, label));
    pick.setAttribute("aria-label", `Attach ${label} from ${server}`);
    item.append(pick, " ", element("code", "hint", resource.uri));
  }
  // An address of the server's own (a template filled in, say): read when the message is sent.
  const form = group.appendChild(element("form", "attach-uri"));
  const field = element("input");
  field.type = "text";
  field.required = true;
  field.maxLength = 8192;
  field.placeholder = listing.templates.length ? listing.templates[0].uri_template : "an address on this server";
  field.setAttribute("aria-label", `Address of a resource on ${server}`);
  const submit = element("button", "quiet small", "Attach");
  submit.type = "submit";
  form.append(field, submit);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const uri = field.value.trim();
    if (!uri) return;
    add(server, uri, uri);
    field.value = "";
  });
  return group;
}

toggle.addEventListener("click", () => {
  const open = panelBox.hidden;
  panelBox.hidden = !open;
  toggle.setAttribute("aria-expanded", String(open));
  if (open) loadResources();
});
