// One assistant turn on the page: streamed reasoning and answer, tool-call cards with their approvals, stats.
import { api, chat, errorText } from "./api.js";
import { $, append, button, element, formatArguments, formatDuration, nearBottom, setStatus } from "./dom.js";
import { askElicitation } from "./forms.js";
import { renderMarkdown } from "./markdown.js";

export class TurnView {
  constructor() {
    this.root = append($("log"), element("article", "turn assistant"));
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
    if (follow) $("log").scrollTop = $("log").scrollHeight;
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

  // The turn is over: cards still asking and questions still open can no longer be answered.
  close() {
    for (const card of this.cards.values()) card.abandon();
    for (const closeQuestion of this.questions) closeQuestion();
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
    // `server.tool` for MCP and plugin tools; `browser.*` and `python` are the model's built-ins
    const server = tool.includes(".") ? tool.slice(0, tool.indexOf(".")) : "";
    const where = server && server !== "browser" ? `on ${server}` : "built-in";
    head.append(element("span", "tool-server hint", where));
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
        chat.path(`/approvals/${encodeURIComponent(this.callId)}`),
        { decision, ...extra },
      );
      if (!response.ok) throw new Error(await errorText(response));
      this.root.classList.remove("asking");
      this.actions.replaceChildren(element("p", `tool-decision ${decision}`, done));
      this.state.textContent = decision === "deny" ? "denied" : "running";
      this.started = performance.now();
      $("message").focus();
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

export function handleEvent(view, type, event) {
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
