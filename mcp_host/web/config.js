// The mcp.json editor: the file as it is on disk, checked as you type with the CLI's own errors (line and key),
// saved only when valid and only over the version it was read from, then applied to the running servers.
import { api, errorText, json } from "./api.js";
import { $, element, setStatus } from "./dom.js";

const editor = $("config-text");
const where = $("config-path");
const errors = $("config-errors");
const outcome = $("config-outcome");
const saveButton = $("config-save");
let version = null; // the SHA-256 of the text read from disk ("" when there was no file)
let checking = null;
let checked = 0; // drawing only the latest check

export async function loadConfig() {
  outcome.replaceChildren();
  try {
    const file = await json("GET", "/v1/config/mcp.json");
    editor.value = file.exists ? file.text : '{\n  "mcpServers": {}\n}\n';
    version = file.version;
    where.textContent = file.exists ? file.path : `${file.path} (not created yet)`;
    showErrors([], []);
    saveButton.disabled = false;
  } catch (error) {
    where.textContent = "";
    showProblem(error.message);
  }
}

function showProblem(message) {
  outcome.replaceChildren(element("p", "error", message));
}

function describe(problem) {
  const place = [];
  if (problem.line) place.push(`line ${problem.line}${problem.column ? `, column ${problem.column}` : ""}`);
  if (problem.server) place.push(`server "${problem.server}"`);
  if (problem.key) place.push(`key "${problem.key}"`);
  return place.length ? `${place.join(", ")}: ${problem.message}` : problem.message;
}

// Each problem a button that puts the cursor on its line.
function showErrors(found, warnings) {
  const items = [];
  for (const [kind, list] of [["error", found], ["warning", warnings]]) {
    for (const problem of list || []) {
      const item = element("li", `config-${kind}`);
      const jump = element("button", "quiet small", kind === "error" ? "Error" : "Warning");
      jump.type = "button";
      jump.disabled = !problem.line;
      jump.setAttribute("aria-label", `Go to line ${problem.line || "?"}`);
      jump.addEventListener("click", () => goToLine(problem.line));
      item.append(jump, " ", element("span", "", describe(problem)));
      items.push(item);
    }
  }
  errors.replaceChildren(...items);
  errors.hidden = !items.length;
  editor.setAttribute("aria-invalid", String(Boolean(found && found.length)));
}

function goToLine(line) {
  const lines = editor.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((sum, text) => sum + text.length + 1, 0);
  editor.focus();
  editor.setSelectionRange(start, start + (lines[line - 1] || "").length);
}

async function validate() {
  const mine = ++checked;
  try {
    const result = await json("POST", "/v1/config/mcp.json/validate", { text: editor.value });
    if (mine === checked) showErrors(result.errors, result.warnings);
    return result.ok;
  } catch (error) {
    if (mine === checked) showProblem(error.message);
    return false;
  }
}

editor.addEventListener("input", () => {
  outcome.replaceChildren();
  clearTimeout(checking);
  checking = setTimeout(validate, 400);
});

function appliedText(applied) {
  const parts = [];
  for (const [key, label] of [["added", "started"], ["removed", "stopped"], ["changed", "restarted"]]) {
    const names = applied && Array.isArray(applied[key]) ? applied[key] : [];
    if (names.length) parts.push(`${label} ${names.join(", ")}`);
  }
  return parts.length ? `Saved and applied: ${parts.join("; ")}.` : "Saved: no server changed.";
}

async function save() {
  clearTimeout(checking);
  saveButton.disabled = true;
  try {
    const response = await api("PUT", "/v1/config/mcp.json", { text: editor.value, version });
    if (response.status === 422) {
      const body = await response.json();
      showErrors(body.errors || [{ message: (body.error && body.error.message) || "not valid" }], body.warnings);
      showProblem("Not saved: fix the errors above first.");
      return;
    }
    if (response.status === 409) {
      const body = await response.json().catch(() => ({}));
      const error = body.error || {};
      // A file changed on disk meanwhile can be reloaded; any other refusal (a linked file, say) says why itself.
      showProblem(
        error.code === "stale_version"
          ? "Not saved: mcp.json changed on disk since it was opened here. Copy your edits, then Reload to start from the file as it is now."
          : `Not saved: ${error.message || "the server refused the file"}`,
      );
      return;
    }
    if (!response.ok) throw new Error(await errorText(response));
    const body = await response.json();
    version = body.version;
    showErrors([], body.warnings);
    const said = body.applied
      ? element("p", "config-applied", appliedText(body.applied))
      : element("p", "error", "Saved, but not applied yet: the running servers keep the previous file.");
    outcome.replaceChildren(said);
    for (const problem of body.errors || []) outcome.append(element("p", "error", describe(problem)));
    setStatus("mcp.json saved.");
    document.dispatchEvent(new CustomEvent("servers-changed"));
  } catch (error) {
    showProblem(error.message);
  } finally {
    saveButton.disabled = false;
  }
}

saveButton.addEventListener("click", save);
$("config-reload").addEventListener("click", loadConfig);
$("config-check").addEventListener("click", validate);
editor.addEventListener("keydown", (event) => {
  if (event.key === "s" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    save();
  }
});
