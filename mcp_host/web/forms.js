// A server's questions (elicitation): forms built from the requested schema, answered through the session API.
import { api, chat, errorText } from "./api.js";
import { $, button, element } from "./dom.js";

// A server's question: a form built from its schema (flat, primitive fields), or a link to open (never opened for
// the user). The server checks the answer again; an answer it refuses leaves the form open with its reason.
export function askElicitation(view, event) {
  const box = view.note(`${event.server} asks: ${event.message}`, "elicitation");
  const path = chat.path(`/elicitations/${encodeURIComponent(event.elicitation_id)}`);
  const form = box.appendChild(element("form", "elicitation-form"));
  form.noValidate = false;
  const fields = event.mode === "form" ? formFields(form, event.requested_schema || {}) : [];
  if (event.mode === "url") {
    form.append(element("p", "hint", "The server asks you to open this address yourself, then to say when done:"));
    form.append(element("code", "elicitation-url", event.url || ""));
  }
  const problem = form.appendChild(element("p", "error"));
  problem.hidden = true;
  const row = form.appendChild(element("div", "row"));
  const send = element("button", "primary", event.mode === "url" ? "Done" : "Send");
  send.type = "submit";
  const decline = button("Decline", "", () => answer("decline"));
  const cancel = button("Cancel", "", () => answer("cancel"));
  row.append(send, decline, cancel);
  const controls = [send, decline, cancel];
  form.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    if (!form.reportValidity()) return;
    answer("accept");
  });

  async function answer(action) {
    for (const node of controls) node.disabled = true;
    const body = { action };
    if (action === "accept" && event.mode === "form") body.content = collect(fields);
    try {
      const response = await api("POST", path, body);
      if (!response.ok) throw new Error(await errorText(response));
      const said = { accept: "sent", decline: "declined", cancel: "cancelled" }[action];
      form.replaceChildren(element("p", "tool-decision", `Answered: ${said}.`));
      $("message").focus();
    } catch (error) {
      problem.textContent = error.message;
      problem.hidden = false;
      for (const node of controls) node.disabled = false;
    }
  }
  view.questions.push(() => {
    if (form.isConnected && form.querySelector("button")) {
      form.replaceChildren(element("p", "tool-decision deny", "Not answered: the turn ended first."));
    }
  });
}

// One input per property; returns what `collect` needs to read them back with their types.
function formFields(form, schema) {
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  const fields = [];
  for (const [name, property] of Object.entries(schema.properties || {})) {
    const spec = property && typeof property === "object" ? property : {};
    const label = form.appendChild(element("label", "field"));
    label.append(element("span", "field-name", String(spec.title || name)));
    const choices = Array.isArray(spec.enum) ? spec.enum : Array.isArray(spec.oneOf) ? spec.oneOf.map((o) => o && o.const) : null;
    let control;
    if (spec.type === "boolean") {
      control = element("input");
      control.type = "checkbox";
      control.checked = spec.default === true;
    } else if (choices) {
      control = element("select");
      if (!required.has(name)) control.append(element("option", "", ""));
      choices.forEach((choice, index) => {
        const option = element("option", "", String(Array.isArray(spec.enumNames) ? spec.enumNames[index] : choice));
        option.value = String(choice);
        control.append(option);
      });
      if (spec.default !== undefined) control.value = String(spec.default);
    } else {
      control = element("input");
      const numeric = spec.type === "number" || spec.type === "integer";
      const formats = { email: "email", uri: "url", date: "date", "date-time": "datetime-local" };
      control.type = numeric ? "number" : formats[spec.format] || "text";
      if (spec.type === "integer") control.step = "1";
      if (spec.type === "number") control.step = "any";
      if (typeof spec.minimum === "number") control.min = String(spec.minimum);
      if (typeof spec.maximum === "number") control.max = String(spec.maximum);
      if (typeof spec.minLength === "number") control.minLength = spec.minLength;
      if (typeof spec.maxLength === "number") control.maxLength = spec.maxLength;
      if (spec.default !== undefined && spec.default !== null) control.value = String(spec.default);
    }
    control.name = name;
    if (required.has(name) && spec.type !== "boolean") control.required = true;
    label.append(control);
    if (spec.description) label.append(element("span", "hint", String(spec.description)));
    fields.push({ name, type: spec.type, control });
  }
  return fields;
}

function collect(fields) {
  const content = {};
  for (const { name, type, control } of fields) {
    if (type === "boolean") {
      content[name] = control.checked;
    } else if (control.value !== "") {
      content[name] = type === "number" || type === "integer" ? Number(control.value) : control.value;
    }
  }
  return content;
}
