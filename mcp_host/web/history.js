// A stored chat shown again: its history as the server keeps it, turned back into turns and tool cards.
import { chat, json } from "./api.js";
import { $, append, element } from "./dom.js";
import { TurnView } from "./turn.js";

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
      const mine = append($("log"), element("article", "turn user"));
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

// Shows the chat `id` (the page's log is replaced) and makes it the current one; returns its summary.
export async function openChat(id) {
  const session = await json("GET", `/v1/sessions/${encodeURIComponent(id)}`);
  const names = new Map(); // the model's identifiers (`fx__add`) back to the tools' names (`fx.add`)
  try {
    for (const tool of (await json("GET", "/v1/tools")).data) names.set(tool.identifier, tool.name);
  } catch {
    // the names stay as the model wrote them
  }
  chat.id = id;
  $("log").replaceChildren();
  showHistory(session.history || [], names);
  return session;
}
