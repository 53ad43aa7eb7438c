// The chat's tools: which servers, plugins and built-ins it offers the model, and what they cost in context.
// With a chat open the switches change that chat (from its next turn); before the first message they choose
// what the new chat will start with.
import { chat, json } from "./api.js";
import { $, element } from "./dom.js";

const box = $("tools-choice");
const budgetLine = $("tools-budget");
const budgetTable = $("tools-budget-parts");
const problem = $("tools-error");
let pending = {}; // what a new chat starts with: {servers, plugins, python, browser}
let version = 0; // drawing only the latest answer

function showError(message) {
  problem.textContent = message;
  problem.hidden = !message;
}

// The selection a new chat is created with (only what differs from the server's defaults).
export function newChatTools() {
  const chosen = {};
  for (const key of ["servers", "plugins"]) if (Array.isArray(pending[key])) chosen[key] = pending[key];
  if (pending.python) chosen.python = true;
  if (pending.browser) chosen.browser = true;
  return chosen;
}

export function forgetNewChatTools() {
  pending = {};
}

export async function loadTools() {
  const mine = ++version;
  showError("");
  $("tools-heading").textContent = chat.id ? "Tools of this chat" : "Tools of the next new chat";
  try {
    const [servers, plugins] = await Promise.all([json("GET", "/v1/servers"), json("GET", "/v1/plugins")]);
    const state = chat.id ? await json("GET", chat.path("/tools")) : await newChatState();
    if (mine !== version) return;
    draw(servers.data, plugins.data.filter((plugin) => plugin.state === "loaded"), state);
  } catch (error) {
    if (mine === version) showError(error.message);
  }
}

// What a new chat would start with (the server says what "every server" and "the default plugins" are), and its cost.
async function newChatState() {
  const budget = await json("POST", "/v1/tools/budget", newChatTools());
  return { ...budget.choice, budget };
}

function draw(servers, plugins, state) {
  const groups = [
    ["Servers", "servers", servers.map((server) => [server.name, `${server.state} · ${server.tools} tools`])],
    ["Plugins", "plugins", plugins.map((plugin) => [plugin.name, `${plugin.tools.length} tools`])],
  ];
  const fieldsets = [];
  for (const [legend, key, entries] of groups) {
    if (!entries.length) continue;
    const set = element("fieldset", "tool-group");
    set.append(element("legend", "", legend));
    const on = new Set(state[key] || []);
    for (const [name, facts] of entries) {
      set.append(switchFor(`${key}:${name}`, name, facts, on.has(name), (checked) => toggleNamed(key, name, checked, entries)));
    }
    fieldsets.push(set);
  }
  const natives = element("fieldset", "tool-group");
  natives.append(element("legend", "", "Built-in tools"));
  natives.append(switchFor("native:python", "python", "runs code in a sandbox, asks first", Boolean(state.python), (checked) => change({ python: checked })));
  natives.append(switchFor("native:browser", "browser", "search and open pages", Boolean(state.browser), (checked) => change({ browser: checked })));
  fieldsets.push(natives);
  box.replaceChildren(...fieldsets);
  drawBudget(state.budget);
}

function switchFor(id, name, facts, checked, onChange) {
  const label = element("label", "tool-switch");
  const control = element("input");
  control.type = "checkbox";
  control.checked = checked;
  control.dataset.tool = id;
  control.addEventListener("change", () => onChange(control.checked));
  label.append(control, element("span", "tool-switch-name", name), element("span", "hint", facts));
  return label;
}

// The names switched on in a group, read back from its checkboxes. Every server on is sent as null (so a server
// added to mcp.json later is on too); plugins are always named (null would mean "those on by default").
function toggleNamed(key, name, checked, entries) {
  const on = entries
    .map(([entry]) => entry)
    .filter((entry) => (entry === name ? checked : box.querySelector(`input[data-tool="${CSS.escape(`${key}:${entry}`)}"]`).checked));
  return change({ [key]: key === "servers" && on.length === entries.length ? null : on });
}

async function change(update) {
  showError("");
  try {
    if (chat.id) {
      const state = await json("PATCH", chat.path("/tools"), update);
      drawBudget(state.budget);
    } else {
      pending = { ...pending, ...update };
      drawBudget((await newChatState()).budget);
    }
  } catch (error) {
    showError(error.message);
    await loadTools(); // the switches show what is true again
  }
}

function drawBudget(budget) {
  if (!budget) return;
  const share = budget.context_tokens ? ` (${((100 * budget.tool_tokens) / budget.context_tokens).toFixed(1)}% of ${budget.context_tokens})` : "";
  budgetLine.textContent = `Tool definitions take ${budget.tool_tokens} tokens of the prompt${share}.`;
  budgetLine.classList.toggle("error", Boolean(budget.warning));
  // The prompt's parts as `mcp-host render` lists them: system, built-in tools, each server's functions, history.
  const rows = (budget.parts || []).map((part) => {
    const row = element("tr");
    row.append(element("td", "", part.label), element("td", "number", String(part.tokens)));
    return row;
  });
  budgetTable.replaceChildren(...rows);
  if (budget.warning) budgetLine.append(" ", element("span", "", budget.warning));
}
