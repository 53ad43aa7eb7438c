// The web chat of `mcp-host serve`: talks to this origin's session API only (/v1/sessions...).
//
// Safety rules, kept by construction: whatever the model, a tool or a server sends is put on the page
// through textContent, Text nodes and createElement, never as HTML; links are made only for http(s)
// URLs; images in answers are never loaded. The page's CSP forbids inline code and other origins anyway.
"use strict";

(() => {
  const KEY_STORAGE = "mcp-host-api-key";
  const SESSION_STORAGE = "mcp-host-session"; // the chat a reload comes back to (the server keeps it in its store)
  const $ = (id) => document.getElementById(id);
  const log = $("log");
  const statusLine = $("status");
  const composer = $("composer");
  const input = $("message");
  const sendButton = $("send");
  const stopButton = $("stop");
  const keyForm = $("key-form");
  const keyInput = $("key-input");
  const keyError = $("key-error");

  let sessionId = null;
  let turn = null; // the running turn: {controller, view}

  class Unauthorised extends Error {}

  // ---- the API ---------------------------------------------------------------------------------------

  async function api(method, path, body, signal) {
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
      askForKey(key ? "The server refused this key." : "");
      throw new Unauthorised("This server needs its API key.");
    }
    return response;
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return (body.error && body.error.message) || `HTTP ${response.status}`;
    } catch {
      return `HTTP ${response.status}`;
    }
  }

  // Server-Sent Events read from a fetch body (EventSource cannot send the Authorization header).
  async function* serverSentEvents(response) {
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

  // ---- the API key -------------------------------------------------------------------------------------

  function askForKey(problem) {
    sessionStorage.removeItem(KEY_STORAGE);
    keyError.textContent = problem;
    keyError.hidden = !problem;
    keyForm.hidden = false;
    keyInput.focus();
  }

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
    sessionStorage.setItem(KEY_STORAGE, key);
    keyInput.value = "";
    checkAccess().then(() => {
      if (keyForm.hidden) input.focus();
    });
  });

  // ---- small DOM helpers -------------------------------------------------------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function button(label, className, onClick) {
    const node = element("button", className, label);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function setStatus(text) {
    statusLine.textContent = text;
  }

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  function append(parent, child) {
    const follow = nearBottom();
    parent.append(child);
    if (follow) log.scrollTop = log.scrollHeight;
    return child;
  }

  function formatDuration(ms) {
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
  }

  function formatArguments(args) {
    if (typeof args === "string") {
      try {
        return JSON.stringify(JSON.parse(args), null, 2);
      } catch {
        return args;
      }
    }
    return JSON.stringify(args, null, 2);
  }

  // ---- a tiny Markdown renderer that builds DOM nodes ---------------------------------------------------

  const FENCE = /^\s*(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
  const HEADING = /^(#{1,6})\s+(.*)$/;
  const LIST_ITEM = /^\s*([-*+]|\d+[.)])\s+/;
  const INLINE =
    /`([^`\n]+)`|!\[([^\]\n]*)\]\(([^)\s]+)\)|\[([^\]\n]+)\]\(([^)\s]+)\)|\*\*([^*\n]+)\*\*|\*([^*\n]+)\*|(?<!\w)_([^_\n]+)_(?!\w)/g;

  function startsBlock(line) {
    return FENCE.test(line) || HEADING.test(line) || LIST_ITEM.test(line);
  }

  function renderMarkdown(text) {
    const fragment = document.createDocumentFragment();
    const lines = text.split("\n");
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = line.match(FENCE);
      if (fence) {
        const code = [];
        i += 1;
        while (i < lines.length && !lines[i].trim().startsWith(fence[1])) code.push(lines[i++]);
        i += 1; // the closing fence (absent while the answer is still streaming)
        const pre = element("pre", "code-block");
        const codeNode = element("code", "", code.join("\n"));
        if (fence[2]) codeNode.dataset.language = fence[2];
        pre.append(codeNode);
        fragment.append(pre);
      } else if (!line.trim()) {
        i += 1;
      } else if (HEADING.test(line)) {
        const [, marks, title] = line.match(HEADING);
        const heading = element(`h${Math.min(marks.length + 2, 6)}`);
        appendInline(heading, title);
        fragment.append(heading);
        i += 1;
      } else if (LIST_ITEM.test(line)) {
        const list = element(/^\s*\d/.test(line) ? "ol" : "ul");
        while (i < lines.length && LIST_ITEM.test(lines[i])) {
          const item = element("li");
          appendInline(item, lines[i].replace(LIST_ITEM, ""));
          list.append(item);
          i += 1;
        }
        fragment.append(list);
      } else {
        const paragraph = [];
        do paragraph.push(lines[i++]);
        while (i < lines.length && lines[i].trim() && !startsBlock(lines[i]));
        const node = element("p");
        appendInline(node, paragraph.join("\n"));
        fragment.append(node);
      }
    }
    return fragment;
  }

  function appendInline(parent, text) {
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
      if (match.index > last) parent.append(text.slice(last, match.index)); // a string becomes a Text node
      const [source, code, imageAlt, imageUrl, label, url, strong, em1, em2] = match;
      if (code !== undefined) {
        parent.append(element("code", "", code));
      } else if (imageUrl !== undefined) {
        // Never an <img>: a remote image would tell its server that this page was read.
        parent.append(safeLink(imageUrl, `image: ${imageAlt || imageUrl}`, source));
      } else if (url !== undefined) {
        parent.append(safeLink(url, label, source));
      } else {
        const node = element(strong !== undefined ? "strong" : "em");
        appendInline(node, strong ?? em1 ?? em2);
        parent.append(node);
      }
      last = match.index + source.length;
    }
    if (last < text.length) parent.append(text.slice(last));
  }

  function safeLink(href, label, source) {
    let url = null;
    try {
      url = new URL(href);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) return document.createTextNode(source);
    const link = element("a", "", label);
    link.href = url.href;
    link.rel = "noopener noreferrer";
    link.target = "_blank";
    return link;
  }

  // ---- one assistant turn on the page ---------------------------------------------------------------------

  class TurnView {
    constructor() {
      this.root = append(log, element("article", "turn assistant"));
      this.root.setAttribute("aria-label", "Answer");
      this.last = null; // what the latest event added: "reasoning", "answer" or "tool"
      this.reasoning = null;
      this.answer = null;
      this.answerText = "";
      this.cards = new Map();
      this.questions = []; // what closes each open server question when the turn ends
      this.completed = false;
      this.drawPending = false;
    }

    addReasoning(text) {
      if (this.last !== "reasoning") {
        const details = element("details", "reasoning");
        details.append(element("summary", "", "Reasoning"));
        this.reasoning = details.appendChild(element("div", "reasoning-text")).appendChild(document.createTextNode(""));
        append(this.root, details);
        this.last = "reasoning";
      }
      this.reasoning.appendData(text);
    }

    addAnswer(text) {
      if (this.last !== "answer") {
        this.answer = append(this.root, element("div", "answer"));
        this.answerText = "";
        this.last = "answer";
      }
      this.answerText += text;
      if (!this.drawPending) {
        this.drawPending = true;
        requestAnimationFrame(() => this.drawAnswer());
      }
    }

    drawAnswer() {
      this.drawPending = false;
      if (!this.answer) return;
      const follow = nearBottom();
      this.answer.replaceChildren(renderMarkdown(this.answerText));
      if (follow) log.scrollTop = log.scrollHeight;
    }

    card(callId, tool) {
      let card = this.cards.get(callId);
      if (!card) {
        card = new ToolCard(callId, tool);
        this.cards.set(callId, card);
        append(this.root, card.root);
        this.last = "tool";
      }
      return card;
    }

    note(text, kind) {
      return append(this.root, element("p", `note ${kind}`, text));
    }

    finish(event) {
      this.completed = true;
      this.drawAnswer();
      const reasons = {
        cancelled: "Stopped.",
        max_rounds: "Stopped: too many tool rounds.",
        length: "Stopped at the token limit.",
        error: "The turn failed.",
      };
      if (reasons[event.stop_reason]) this.note(reasons[event.stop_reason], "stopped");
      const stats = event.stats || {};
      const parts = [];
      if (stats.generated_tokens) parts.push(`${stats.generated_tokens} tokens`);
      if (stats.tokens_per_second) parts.push(`${stats.tokens_per_second.toFixed(1)} tokens/s`);
      if (stats.duration_s) parts.push(formatDuration(stats.duration_s * 1000));
      if (typeof stats.time_to_first_token_s === "number") {
        parts.push(`first token after ${formatDuration(stats.time_to_first_token_s * 1000)}`);
      }
      if (stats.prompt_tokens_reused || stats.prompt_tokens_evaluated) {
        parts.push(`prompt: ${stats.prompt_tokens_reused || 0} tokens reused, ${stats.prompt_tokens_evaluated || 0} read`);
      }
      if (parts.length) this.note(parts.join(" · "), "stats");
    }
  }

  const DECISIONS = [
    ["allow", "Allow once", "Allowed once"],
    ["always", "Always", "Always allowed"],
    ["deny", "Deny", "Denied"],
  ];

  class ToolCard {
    constructor(callId, tool) {
      this.callId = callId;
      this.tool = tool;
      this.started = performance.now();
      this.root = element("section", "tool-card");
      this.root.setAttribute("aria-label", `Tool call ${tool}`);
      this.root.dataset.callId = callId;
      const head = this.root.appendChild(element("div", "tool-head"));
      head.append(element("code", "tool-name", tool));
      this.state = head.appendChild(element("span", "tool-state", "running"));
      this.duration = head.appendChild(element("span", "tool-duration"));
      this.root.append(element("div", "tool-label", "Arguments"));
      this.args = this.root.appendChild(element("pre", "tool-arguments"));
      this.actions = this.root.appendChild(element("div", "tool-actions"));
      this.actions.hidden = true;
      this.resultLabel = this.root.appendChild(element("div", "tool-label", "Result"));
      this.result = this.root.appendChild(element("pre", "tool-result"));
      this.resultLabel.hidden = this.result.hidden = true;
    }

    setArguments(args) {
      this.args.textContent = formatArguments(args);
    }

    askApproval(reason) {
      this.state.textContent = "needs approval";
      this.root.classList.add("asking");
      this.actions.replaceChildren(element("p", "tool-reason", reason ? `Asking because: ${reason}` : ""));
      const row = this.actions.appendChild(element("div", "row"));
      const why = element("input", "deny-reason");
      why.type = "text";
      why.placeholder = "reason (optional, for Deny)";
      why.setAttribute("aria-label", "Reason for denying");
      const buttons = DECISIONS.map(([decision, label, done]) =>
        button(label, decision === "deny" ? "danger" : decision === "allow" ? "primary" : "", () =>
          this.answer(decision, done, buttons, decision === "deny" && why.value.trim() ? { reason: why.value.trim() } : {}),
        ),
      );
      const edit = button("Edit…", "", () => this.editArguments(buttons));
      buttons.splice(2, 0, edit);
      row.append(...buttons, why);
      this.actions.hidden = false;
      this.buttons = buttons;
      // Focus stays where the user is: a key typed for the next message must never answer this question.
      setStatus(`${this.tool} needs your approval: Allow once, Always, Edit… or Deny (Tab to the buttons).`);
    }

    // The arguments as editable JSON; allowed as edited once they parse to an object (the tool checks the rest).
    editArguments(buttons) {
      if (this.editor) return;
      const box = (this.editor = this.actions.appendChild(element("div", "edit-arguments")));
      const area = box.appendChild(element("textarea", "arguments-editor"));
      area.setAttribute("aria-label", `Arguments for ${this.tool}`);
      area.value = this.args.textContent || "{}";
      area.rows = Math.min(12, area.value.split("\n").length + 1);
      const problem = box.appendChild(element("p", "error"));
      problem.hidden = true;
      const allow = button("Allow with these arguments", "primary", () => {
        let edited;
        try {
          edited = JSON.parse(area.value);
        } catch (error) {
          edited = error;
        }
        if (edited === null || typeof edited !== "object" || Array.isArray(edited) || edited instanceof Error) {
          problem.textContent = edited instanceof Error ? `Not JSON: ${edited.message}` : "The arguments must be a JSON object.";
          problem.hidden = false;
          return;
        }
        this.answer("allow", "Allowed with edited arguments", [...buttons, allow], { arguments: edited });
      });
      box.append(allow);
      area.focus();
    }

    // The turn ended while this card still asked: nothing was run, and nothing can be answered any more.
    abandon() {
      if (!this.root.classList.contains("asking")) return;
      this.root.classList.remove("asking");
      this.actions.replaceChildren(element("p", "tool-decision deny", "Not run: the turn ended before an answer."));
      this.state.textContent = "not run";
    }

    async answer(decision, done, buttons, extra = {}) {
      for (const node of buttons) node.disabled = true;
      try {
        const response = await api(
          "POST",
          `/v1/sessions/${encodeURIComponent(sessionId)}/approvals/${encodeURIComponent(this.callId)}`,
          { decision, ...extra },
        );
        if (!response.ok) throw new Error(await errorText(response));
        this.root.classList.remove("asking");
        this.actions.replaceChildren(element("p", `tool-decision ${decision}`, done));
        this.state.textContent = decision === "deny" ? "denied" : "running";
        this.started = performance.now();
        input.focus();
      } catch (error) {
        this.actions.append(element("p", "error", error.message));
        for (const node of buttons) node.disabled = false;
      }
    }

    progress(event) {
      const parts = [];
      if (event.total) parts.push(`${Math.round((100 * event.progress) / event.total)}%`);
      if (event.message) parts.push(event.message);
      this.state.textContent = parts.join(" ") || "running";
    }

    finish(event) {
      this.root.classList.remove("asking");
      this.actions.hidden = this.actions.childElementCount === 0;
      this.root.classList.add(event.is_error ? "failed" : "done");
      this.state.textContent = event.is_error ? "error" : "done";
      this.duration.textContent = formatDuration(performance.now() - this.started);
      let text = event.text;
      if (event.truncated_chars) text += `\n… (${event.truncated_chars} more characters)`;
      this.result.textContent = text;
      this.resultLabel.hidden = this.result.hidden = false;
    }
  }

  function handleEvent(view, type, event) {
    switch (type) {
      case "prompt.progress":
        setStatus(`Reading the prompt: ${Math.round((100 * event.done) / Math.max(event.total, 1))}%`);
        break;
      case "reasoning.delta":
        setStatus("Thinking…");
        view.addReasoning(event.text);
        break;
      case "message.delta":
        setStatus("Answering…");
        view.addAnswer(event.text);
        break;
      case "tool_call.created":
        setStatus(`Calling ${event.tool}…`);
        view.card(event.call_id, event.tool).setArguments(event.arguments);
        break;
      case "approval.required": {
        setStatus("Waiting for your approval");
        const card = view.card(event.call_id, event.tool);
        card.setArguments(event.arguments);
        card.askApproval(event.reason);
        break;
      }
      case "tool_call.progress":
        view.card(event.call_id, event.server).progress(event);
        break;
      case "tool_call.result":
        view.card(event.call_id, event.tool).finish(event);
        break;
      case "elicitation.required":
        askElicitation(view, event);
        break;
      case "server.log":
        view.note(`${event.server} (${event.level}): ${event.text}`, "log");
        break;
      case "error":
        view.note(event.message, "error");
        break;
      case "turn.completed":
        view.finish(event);
        break;
      default:
        break;
    }
  }

  // A server's question: a form built from its schema (flat, primitive fields), or a link to open (never opened for
  // the user). The server checks the answer again; an answer it refuses leaves the form open with its reason.
  function askElicitation(view, event) {
    const box = view.note(`${event.server} asks: ${event.message}`, "elicitation");
    const path = `/v1/sessions/${encodeURIComponent(sessionId)}/elicitations/${encodeURIComponent(event.elicitation_id)}`;
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
        input.focus();
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

  // ---- sending and stopping --------------------------------------------------------------------------------

  function setBusy(busy) {
    sendButton.hidden = busy;
    stopButton.hidden = !busy;
    stopButton.disabled = false;
  }

  // What the Options panel says for new sessions (only what was chosen: the rest takes the server's defaults).
  function sessionOptions() {
    const options = {};
    const model = $("option-model").value;
    const reasoning = $("option-reasoning").value;
    if (model) options.model = model;
    if (reasoning) options.reasoning_effort = reasoning;
    if ($("option-python").checked) options.python = true;
    if ($("option-browser").checked) options.browser = true;
    return options;
  }

  async function openSession() {
    const response = await api("POST", "/v1/sessions", sessionOptions());
    if (!response.ok) throw new Error(await errorText(response));
    sessionId = (await response.json()).id;
    localStorage.setItem(SESSION_STORAGE, sessionId);
  }

  let renewed = false; // the last message went to a new session: the model no longer sees the earlier turns

  async function postMessage(text, signal) {
    for (let attempt = 0; ; attempt += 1) {
      if (!sessionId) await openSession();
      const path = `/v1/sessions/${encodeURIComponent(sessionId)}/messages`;
      const response = await api("POST", path, { content: text }, signal);
      if (response.status === 404 && attempt === 0) {
        sessionId = null; // closed after being idle: start another, and say so
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
    while (sessionId && performance.now() < deadline) {
      try {
        const response = await api("GET", `/v1/sessions/${encodeURIComponent(sessionId)}`);
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
    input.value = "";
    const view = new TurnView();
    const controller = new AbortController();
    turn = { controller, view };
    setBusy(true);
    setStatus("Sending…");
    try {
      renewed = false;
      const response = await postMessage(text, controller.signal);
      if (renewed) view.note("The earlier session had closed: a new one began, and the model no longer sees the messages above.", "stopped");
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
        if (error instanceof Unauthorised) input.value = text;
        view.note(error.message, "error");
        setStatus("");
      }
    } finally {
      if (controller.signal.aborted) await waitUntilIdle();
      for (const card of view.cards.values()) card.abandon();
      for (const close of view.questions) close();
      turn = null;
      setBusy(false);
      input.focus();
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
    }
  });

  // ---- the servers panel ---------------------------------------------------------------------------------

  const serversPanel = $("servers");
  const serversToggle = $("servers-toggle");
  const serversList = $("servers-list");
  const serversError = $("servers-error");

  async function loadServers() {
    serversError.hidden = true;
    try {
      const [servers, tools] = await Promise.all([api("GET", "/v1/servers"), api("GET", "/v1/tools")]);
      if (!servers.ok) throw new Error(await errorText(servers));
      if (!tools.ok) throw new Error(await errorText(tools));
      const byServer = new Map();
      for (const tool of (await tools.json()).data) {
        if (!byServer.has(tool.server)) byServer.set(tool.server, []);
        byServer.get(tool.server).push(tool);
      }
      serversList.replaceChildren(...(await servers.json()).data.map((server) => serverItem(server, byServer.get(server.name) || [])));
      if (!serversList.childElementCount) serversList.append(element("li", "hint", "No servers: add one to mcp.json."));
    } catch (error) {
      serversError.textContent = error.message;
      serversError.hidden = false;
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
        serversError.textContent = error.message;
        serversError.hidden = false;
      }
      await loadServers();
    });
    restart.setAttribute("aria-label", `Restart ${server.name}`);
    head.append(restart);
    return item;
  }

  const optionsPanel = $("options");
  const optionsToggle = $("options-toggle");

  async function loadModels() {
    const select = $("option-model");
    try {
      const response = await api("GET", "/v1/models");
      if (!response.ok) throw new Error(await errorText(response));
      const chosen = select.value;
      const choices = (await response.json()).data.map((model) => {
        const option = element("option", "", String(model.id));
        option.value = String(model.id);
        return option;
      });
      select.replaceChildren(element("option", "", "the server's default"), ...choices);
      select.firstChild.value = "";
      select.value = chosen;
    } catch (error) {
      setStatus(`Models could not be listed: ${error.message}`);
    }
  }

  optionsToggle.addEventListener("click", () => {
    const open = optionsPanel.hidden;
    optionsPanel.hidden = !open;
    optionsToggle.setAttribute("aria-expanded", String(open));
    if (open) loadModels();
  });

  serversToggle.addEventListener("click", () => {
    const open = serversPanel.hidden;
    serversPanel.hidden = !open;
    serversToggle.setAttribute("aria-expanded", String(open));
    if (open) loadServers();
  });
  $("servers-refresh").addEventListener("click", loadServers);

  $("new-chat").addEventListener("click", async () => {
    if (turn) turn.controller.abort();
    const old = sessionId;
    sessionId = null;
    localStorage.removeItem(SESSION_STORAGE);
    log.replaceChildren();
    setStatus("");
    if (old) await api("DELETE", `/v1/sessions/${encodeURIComponent(old)}`).catch(() => null);
    input.focus();
  });

  // ---- coming back to the chat after a reload --------------------------------------------------------------

  function messageText(message) {
    const content = message.content;
    if (typeof content === "string") return content;
    if (Array.isArray(content)) return content.map((part) => (part && typeof part.text === "string" ? part.text : "")).join("");
    return "";
  }

  // The session's history as the server keeps it (Harmony messages, or chat messages for other models).
  function showHistory(history, names) {
    let view = null;
    let lastCard = null;
    history.forEach((message, index) => {
      const role = message.role || (message.author && message.author.role);
      const text = messageText(message);
      if (role === "user") {
        const mine = append(log, element("article", "turn user"));
        mine.setAttribute("aria-label", "You");
        mine.append(element("p", "", text));
        view = null;
        return;
      }
      if (role === "system" || role === "developer") return;
      if (!view) view = new TurnView();
      const calls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
      if (role === "assistant" && message.recipient && message.recipient !== "assistant") {
        const identifier = message.recipient.replace(/^functions\./, "");
        lastCard = view.card(`restored-${index}`, names.get(identifier) || identifier);
        view.last = "tool";
        lastCard.setArguments(parseArguments(text));
      } else if (role === "assistant" && calls.length) {
        for (const call of calls) {
          const identifier = call.function ? call.function.name : "tool";
          lastCard = view.card(`restored-${index}-${call.id}`, names.get(identifier) || identifier);
          lastCard.setArguments(parseArguments(call.function ? call.function.arguments : ""));
        }
      } else if (role === "assistant" && message.channel === "analysis") {
        view.addReasoning(text);
      } else if (role === "assistant") {
        view.addAnswer(text);
        view.drawAnswer();
      } else if (role === "tool" && lastCard) {
        lastCard.finish({ is_error: false, text });
        lastCard.duration.textContent = "";
      }
    });
  }

  function parseArguments(text) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  async function restoreSession() {
    const stored = localStorage.getItem(SESSION_STORAGE);
    if (!stored) return;
    try {
      const response = await api("GET", `/v1/sessions/${encodeURIComponent(stored)}`);
      if (!response.ok) {
        localStorage.removeItem(SESSION_STORAGE);
        return;
      }
      const session = await response.json();
      sessionId = stored;
      const names = new Map(); // the model's identifiers (`fx__add`) back to the tools' names (`fx.add`)
      const tools = await api("GET", "/v1/tools");
      if (tools.ok) for (const tool of (await tools.json()).data) names.set(tool.identifier, tool.name);
      showHistory(session.history || [], names);
      if (session.state === "interrupted") setStatus("The last turn was interrupted by a restart of the server.");
    } catch (error) {
      if (!(error instanceof Unauthorised)) setStatus(error.message);
    }
  }

  checkAccess().then(restoreSession);
  input.focus();
})();
