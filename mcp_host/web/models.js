// The model picker: every model on disk (LM Studio's folders, the Hugging Face cache, the settings' paths) with
// what it is, which are loaded, and a load's progress while one runs (a new chat's, or "Load now").
import { json } from "./api.js";
import { $, element, setStatus } from "./dom.js";

const select = $("option-model");
const facts = $("model-facts");
const loadingBox = $("model-loading");
const loadingLabel = $("model-loading-label");
const loadingBar = $("model-loading-bar");
const loadButton = $("model-load");
let models = new Map(); // key -> the model as /api/v1/models describes it

function sizeText(bytes) {
  if (!bytes) return "";
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.round(bytes / 1e6)} MB`;
}

function describe(model) {
  const parts = [model.architecture, model.params_string, model.quantization && model.quantization.name, sizeText(model.size_bytes)];
  if (model.loaded_instances && model.loaded_instances.length) parts.push("loaded");
  return parts.filter(Boolean).join(" · ");
}

export async function loadModels() {
  try {
    // Every model this server answers with (a replayed or remote one included), with what the disk says of it.
    const [served, onDisk] = await Promise.all([json("GET", "/v1/models"), json("GET", "/api/v1/models")]);
    const found = onDisk.models.filter((model) => model.type === "llm");
    const known = new Set(found.map((model) => model.key));
    for (const model of served.data) {
      if (!known.has(model.id)) found.unshift({ key: String(model.id), type: "llm", loaded_instances: [{ id: model.id }] });
    }
    const chosen = select.value;
    models = new Map(found.map((model) => [model.key, model]));
    const choices = found.map((model) => {
      const option = element("option", "", `${model.display_name || model.key} (${describe(model)})`);
      option.value = model.key;
      return option;
    });
    const fallback = element("option", "", "the server's default");
    fallback.value = "";
    select.replaceChildren(fallback, ...choices);
    select.value = models.has(chosen) ? chosen : "";
    showFacts();
    if (found.some((model) => model.loading)) followLoads();
  } catch (error) {
    setStatus(`Models could not be listed: ${error.message}`);
  }
}

function showFacts() {
  const model = models.get(select.value);
  facts.textContent = model ? `${model.key}: ${describe(model)}${model.max_context_length ? `, context up to ${model.max_context_length} tokens` : ""}` : "";
  loadButton.hidden = !model || Boolean(model.loaded_instances && model.loaded_instances.length);
}

select.addEventListener("change", showFacts);

let following = null;

// Polls the loads in progress until none is left and `request` (the one that loads, if any) has settled; the bar
// shows the first one.
export function followLoads(request) {
  let settled = !request;
  if (request) request.then(() => (settled = true), () => (settled = true));
  if (following) return following;
  following = (async () => {
    try {
      for (;;) {
        const loads = (await json("GET", "/v1/models/loading")).data;
        if (!loads.length && settled) break;
        if (loads.length) {
          const load = loads[0];
          loadingBox.hidden = false;
          loadingLabel.textContent = `Loading ${load.model}: ${Math.round(100 * load.progress)}%`;
          loadingBar.value = load.progress;
          setStatus(loadingLabel.textContent);
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    } catch {
      // the listing answers again on the next open of the panel
    } finally {
      loadingBox.hidden = true;
      following = null;
    }
  })();
  return following;
}

loadButton.addEventListener("click", async () => {
  const key = select.value;
  if (!key) return;
  loadButton.disabled = true;
  const load = json("POST", "/api/v1/models/load", { model: key });
  followLoads(load);
  try {
    const done = await load;
    setStatus(`Loaded ${key} in ${done.load_time_seconds} s.`);
  } catch (error) {
    setStatus(`${key} could not be loaded: ${error.message}`);
  } finally {
    loadButton.disabled = false;
    await loadModels();
  }
});
