// The highlighter's markup, configuration and line-based languages: HTML and XML (with the scripts and style
// sheets HTML embeds), CSS, YAML, TOML and INI (keys and sections at the start of a line), diffs, and terminal
// sessions (shell after a prompt, plain output otherwise).

import { BASH, C_STRINGS, JAVASCRIPT } from "./highlight-code.js";
import { isLetter, isWord, quotedEnd, SPACE, scanCode, spec, wordStart } from "./highlight-scan.js";

function cssHook(s, lang, c, state) {
  if (c === "{" || c === "}" || c === ";") {
    state.depth = Math.max(0, state.depth + (c === "{" ? 1 : c === "}" ? -1 : 0));
    s.emit("", s.pos + 1);
    state.declaration = state.depth > 0 && c !== "}";
    return true;
  }
  const declaration = state.declaration || s.lineStart;
  state.declaration = false;
  if (c === "@" || c === "!") {
    s.emit("keyword", s.runWhile((ch) => isWord(ch, "-"), s.pos + 1)); // @media, !important
    return true;
  }
  const hex = c === "#" && state.depth > 0 ? s.runWhile((ch) => isWord(ch, ""), s.pos + 1) : -1;
  if (hex >= 0 && [4, 5, 7, 9].includes(hex - s.pos) && /^#[\da-f]+$/i.test(s.text.slice(s.pos, hex))) {
    return s.emit("number", hex), true; // #fff, #1e1e1e80 (and not the selector #id)
  }
  if (!declaration || state.depth === 0 || !wordStart(s, lang, c)) return false;
  const end = s.runWhile((ch) => isWord(ch, "-"));
  if (s.text[s.runWhile((ch) => ch === " " || ch === "\t", end)] !== ":") return false;
  s.emit("property", end);
  return true;
}

// YAML, TOML and INI: a key (or a section) at the start of a line, then values.
function configHook(s, lang, c) {
  if (lang.name === "yaml" && !s.lineStart && (c === '"' || c === "'")) {
    let i = s.pos - 1; // a quote starts a string only where a value starts; elsewhere it is an apostrophe
    while (i >= 0 && (s.text[i] === " " || s.text[i] === "\t")) i -= 1;
    s.work += s.pos - i;
    if (i >= 0 && !":-[{,\n".includes(s.text[i])) return s.emit("", s.pos + 1), true;
    return false;
  }
  if (!s.lineStart) return false;
  if (lang.name === "yaml") {
    let marked = false;
    for (let dash = s.pos; s.text[dash] === "-" && SPACE.has(s.text[dash + 1] ?? " "); dash = s.pos) {
      s.emit("punct", dash + 1); // the list markers of `- - key: value`
      const gap = s.runWhile((ch) => ch === " " || ch === "\t");
      if (gap > s.pos) s.emit("", gap);
      marked = true;
    }
    if (s.done || SPACE.has(s.text[s.pos])) return marked;
    const end = keyEnd(s, lang);
    const keyed = end > s.pos;
    if (keyed) s.emit("property", end);
    return marked || keyed; // after a marker the char `c` is stale: the caller must not go on with it
  }
  if (c === "[") {
    const close = s.findInLine("]", s.pos + 1);
    const end = close >= 0 ? close + (s.text[close + 1] === "]" ? 2 : 1) : s.lineEnd();
    return s.emit("keyword", end), true; // [section], [[array.of.tables]]
  }
  const end = keyEnd(s, lang);
  if (end > s.pos) return s.emit("property", end), true;
  return false;
}

// Where the key starting at s.pos ends (before the spaces ahead of `:` or `=`), or -1; scans one line at most.
function keyEnd(s, lang) {
  const { text } = s;
  const separators = lang.name === "yaml" ? ":" : lang.name === "toml" ? "=" : "=:";
  let i = s.pos;
  let end = -1;
  for (; i < text.length && text[i] !== "\n"; i += 1) {
    const c = text[i];
    if (c === '"' || c === "'") {
      const quoted = quotedEnd(s, i + 1, c, c === '"', false);
      if (!quoted.closed) break;
      i = quoted.end - 1;
      end = quoted.end;
    } else if (separators.includes(c)) {
      if (lang.name === "yaml" && !SPACE.has(text[i + 1] ?? " ")) continue; // http://x is no key
      break;
    } else if (c === "#" || (lang.name === "toml" && !isWord(c, ".- \t"))) break;
    else if (!SPACE.has(c)) end = i + 1;
  }
  s.work += i - s.pos + 1;
  return i < text.length && separators.includes(text[i]) && "[{>|*&!%@`#,;".indexOf(text[s.pos]) < 0 ? end : -1;
}

const DIFF_META = ["diff ", "index ", "\\ ", "new file", "deleted file", "similarity", "rename "];

function scanDiff(s) {
  while (!s.done) {
    const end = s.lineEnd();
    const c = s.at();
    let kind = "";
    if ((c === "+" && s.sees("+++ ")) || (c === "-" && s.sees("--- "))) kind = "comment"; // file names, not changes
    else if (c === "+" || c === "-") kind = c === "+" ? "added" : "removed";
    else if (c === "@" && s.sees("@@")) kind = "builtin";
    else if (end > s.pos && DIFF_META.some((start) => start[0] === c && s.sees(start))) kind = "comment";
    if (end > s.pos) s.emit(kind, end);
    if (end < s.text.length) s.emit("", end + 1);
  }
}

// $ or % or > (or user@host:path$ ) and a space at the start of a line, optionally after a (venv)
const PROMPT = /(?:\([\w.-]{1,40}\) )?(?:[\w.-]{1,40}@[\w.-]{1,60}(?::[^\s$#]{0,200})? ?[$#]|[$%>]) /y;

function promptEnd(s) {
  PROMPT.lastIndex = s.pos;
  const found = PROMPT.exec(s.text);
  s.work += (found ? found[0].length : 0) + 1;
  return found ? s.pos + found[0].length : -1;
}

// A terminal session: commands after a prompt are shell, the rest is output (plain); no prompt at all: all shell.
function scanConsole(s, lang) {
  let prompted = false;
  for (let at = 0; at < s.text.length && !prompted; at = s.lineEnd(at) + 1) {
    s.pos = at;
    prompted = promptEnd(s) >= 0;
  }
  s.pos = 0;
  if (!prompted) return void scanCode(s, lang.shell);
  while (!s.done) {
    const prompt = promptEnd(s);
    const end = s.lineEnd();
    if (prompt > s.pos) s.emit("punct", prompt);
    if (prompt >= 0) s.embed(end, lang.shell);
    else if (end > s.pos) s.emit("", end);
    if (end < s.text.length) s.emit("", end + 1);
  }
}

const SCRIPT_END = /<\/script/gi;
const STYLE_END = /<\/style/gi;

function scanMarkup(s, lang) {
  while (!s.done) {
    const c = s.at();
    const next = c === "<" ? s.at(1) : "";
    if (next === "!" && s.sees("<!--")) {
      const found = s.find("-->", s.pos + 4);
      s.emit("comment", found < 0 ? s.text.length : found + 3);
    } else if (next === "!" && s.sees("<![CDATA[")) {
      const found = s.find("]]>", s.pos + 9);
      s.emit("string", found < 0 ? s.text.length : found + 3);
    } else if (next === "!" || next === "?") {
      const found = s.find(">", s.pos + 2);
      s.emit("keyword", found < 0 ? s.text.length : found + 1); // <!DOCTYPE html>, <?xml …?>
    } else if (isLetter(next) || (next === "/" && isLetter(s.at(2)))) tag(s, lang);
    else if (c === "&" && isWord(s.at(1), "#")) {
      const end = s.runWhile((ch) => isWord(ch, "#"), s.pos + 1);
      s.emit("builtin", s.text[end] === ";" ? end + 1 : end); // &amp; &#x27;
    } else s.emit("", c === "<" || c === "&" ? s.pos + 1 : s.runWhile((ch) => ch !== "<" && ch !== "&"));
  }
}

function tag(s, lang) {
  const closing = s.at(1) === "/";
  s.emit("punct", s.pos + (closing ? 2 : 1));
  const nameStart = s.pos;
  s.emit("keyword", s.runWhile((ch) => isWord(ch, ":.-")));
  const name = s.text.slice(nameStart, s.pos).toLowerCase();
  let value = false; // just after `=`: an unquoted value comes next
  let opened = false;
  while (!s.done) {
    const c = s.at();
    if (SPACE.has(c)) {
      s.space(); // `a= b`: still the value
      continue;
    }
    if (c === ">" || (c === "/" && s.at(1) === ">")) {
      opened = c === ">";
      s.emit("punct", s.pos + (opened ? 1 : 2));
      break;
    } else if (c === "<") break; // unfinished tag: the next one starts here
    else if (c === "=") {
      s.emit("punct", s.pos + 1);
      value = true;
      continue;
    } else if (c === '"' || c === "'") s.emit("string", quotedEnd(s, s.pos + 1, c, false, true).end);
    else s.emit(value ? "string" : "property", s.runWhile((ch) => !SPACE.has(ch) && !"=<>\"'".includes(ch)));
    value = false;
  }
  const embedded = name === "script" ? lang.script : name === "style" ? lang.style : undefined; // HTML only
  if (!opened || closing || !embedded) return;
  const end = name === "script" ? SCRIPT_END : STYLE_END;
  end.lastIndex = s.pos;
  const found = end.exec(s.text);
  const stop = found ? found.index : s.text.length;
  s.work += stop - s.pos + 1;
  s.embed(stop, embedded);
}

export const CSS = spec({
  blockComments: [["/*", "*/"]],
  strings: C_STRINGS,
  hook: cssHook,
  wordChars: "-",
  percent: true,
});

export const YAML = spec({
  name: "yaml",
  spacedComments: ["#"],
  strings: ['" " e', "' '"],
  hook: configHook,
  literals: "true false null True False Null TRUE FALSE NULL yes no",
  calls: false,
});

export const TOML = spec({
  name: "toml",
  lineComments: ["#"],
  strings: ['""" """ em', "''' ''' m", '" " e', "' '"],
  hook: configHook,
  literals: "true false inf nan",
  calls: false,
});

export const INI = spec({
  name: "ini",
  spacedComments: [";", "#"],
  strings: ['" " c', "' ' c"],
  hook: configHook,
  literals: "true false yes no on off",
  calls: false,
});

export const HTML = { scan: scanMarkup, script: JAVASCRIPT, style: CSS };
export const XML = { scan: scanMarkup };
export const DIFF = { scan: scanDiff };
export const CONSOLE = { scan: scanConsole, shell: BASH };
