// The servers panel: every server's state, error and tools, with Restart.
import { api, errorText, json } from "./api.js";
import { $, button, element } from "./dom.js";

const serversList = $("servers-list");
const serversError = $("servers-error");

function showError(message) {
  serversError.textContent = message;
  serversError.hidden = !message;
}

const SETTLING = new Set(["starting"]);
let again = null; // the next look while a server is still starting

export async function loadServers() {
  clearTimeout(again);
  showError("");
  try {
    const [servers, tools] = await Promise.all([json("GET", "/v1/servers"), json("GET", "/v1/tools")]);
    // A server still starting is looked at again until it is ready or has failed, while the panel is open.
    if (servers.data.some((server) => SETTLING.has(server.state))) {
      again = setTimeout(() => {
        if (!$("servers").hidden) loadServers();
      }, 500);
    }
    const byServer = new Map();
    for (const tool of tools.data) {
      if (!byServer.has(tool.server)) byServer.set(tool.server, []);
      byServer.get(tool.server).push(tool);
    }
    serversList.replaceChildren(...servers.data.map((server) => serverItem(server, byServer.get(server.name) || [])));
    if (!serversList.childElementCount) serversList.append(element("li", "hint", "No servers: add one to mcp.json."));
  } catch (error) {
    showError(error.message);
  }
}

function serverItem(server, tools) {
  const item = element("li", `server state-${server.state}`);
  item.dataset.server = server.name;
  const head = item.appendChild(element("div", "server-head"));
  head.append(element("strong", "server-name", server.name), element("span", "server-state", server.state));
  head.append(element("span", "hint", `${server.transport} · ${server.tools} tools`));
  if (server.error) item.append(element("p", "error server-error", server.error));
  if (tools.length) {
    const details = item.appendChild(element("details", "server-tools"));
    details.append(element("summary", "", "Tools"));
    const list = details.appendChild(element("ul"));
    for (const tool of tools) {
      const entry = list.appendChild(element("li"));
      entry.append(element("code", "", tool.name));
      const summary = String(tool.description || "").split("\n")[0];
      if (summary) entry.append(" ", element("span", "hint", summary));
    }
  }
  const restart = button("Restart", "quiet", async () => {
    restart.disabled = true;
    item.querySelector(".server-state").textContent = "restarting…";
    try {
      const response = await api("POST", `/v1/servers/${encodeURIComponent(server.name)}/restart`, {});
      if (!response.ok) throw new Error(await errorText(response));
    } catch (error) {
      showError(error.message);
    }
    await loadServers();
  });
  restart.setAttribute("aria-label", `Restart ${server.name}`);
  head.append(restart);
  return item;
}
