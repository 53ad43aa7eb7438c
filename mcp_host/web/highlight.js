// Syntax highlighting for the web chat's code blocks: untrusted text in, DOM nodes out. No dependencies.
//
//   import { highlight, languageOf } from "/web/highlight.js";
//   codeNode.replaceChildren(highlight(code, languageOf(infoString)));
//
// Safety: the code comes from a model. It is cut into tokens and each token becomes a Text node or a
// <span class="hl-KIND"> whose text is set with textContent; no markup is ever parsed, so what is shown is the
// text given, and the fragment's textContent is `code` exactly.
// Cost: one forward pass per language, no regular expression over unbounded text. Every scan that looks for a
// closer (a quote, the end of a comment) consumes what it scanned whether or not it found one (an unterminated
// string runs to the end of its line, or of the text), and the few that must close on their line remember
// where they failed, so the work is linear. `tokenize` counts it (characters examined) for the tests' budget.

export const MAX_HIGHLIGHT_CHARS = 100_000; // past this, plain text: a huge block is not worth the time

const words = (list) => new Set(list.split(" ").filter(Boolean));
const NONE = new Set();
const SPACE = new Set([" ", "\t", "\n", "\r", "\f", "\v"]);
const isDigit = (c) => c >= "0" && c <= "9";
const isLetter = (c) => (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_" || c > "\x7f";
const isWord = (c, extra) => isLetter(c) || isDigit(c) || (extra !== "" && c !== "" && extra.includes(c));

// Collects tokens as [kind, start, end) spans of `text`, merging neighbours of one kind.
class Scanner {
  constructor(text) {
    this.text = text;
    this.pos = 0;
    this.work = 0;
    this.lineStart = true; // nothing but spaces since the last line break
    this.unclosed = new Map(); // quote → the end of the line on which a scan from it found no closer
    this.kinds = [];
    this.ends = [];
  }

  get done() {
    return this.pos >= this.text.length;
  }

  at(offset = 0) {
    this.work += 1;
    return this.text[this.pos + offset] ?? "";
  }

  sees(literal, from = this.pos) {
    this.work += literal.length;
    return this.text.startsWith(literal, from);
  }

  find(literal, from) {
    const found = this.text.indexOf(literal, from);
    this.work += (found < 0 ? this.text.length : found + literal.length) - from;
    return found;
  }

  lineEnd(from = this.pos) {
    const found = this.find("\n", from);
    return found < 0 ? this.text.length : found;
  }

  // The index of `char` ahead on this line (within `limit` characters), or -1.
  findInLine(char, from, limit = Infinity) {
    let i = from;
    while (i < this.text.length && i - from < limit && this.text[i] !== char && this.text[i] !== "\n") i += 1;
    this.work += i - from + 1;
    return i - from < limit && this.text[i] === char ? i : -1;
  }

  runWhile(test, from = this.pos) {
    let i = from;
    while (i < this.text.length && test(this.text[i])) i += 1;
    this.work += i - from + 1;
    return i;
  }

  emit(kind, end) {
    if (!(end > this.pos)) throw new Error(`highlight: no progress at ${this.pos}`); // a bug, not bad input
    const last = this.kinds.length - 1;
    if (last >= 0 && this.kinds[last] === kind) this.ends[last] = end;
    else {
      this.kinds.push(kind);
      this.ends.push(end);
    }
    this.pos = end;
    this.lineStart = false;
  }

  space() {
    let end = this.pos;
    let broke = false;
    for (; end < this.text.length && SPACE.has(this.text[end]); end += 1) broke ||= this.text[end] === "\n";
    this.work += end - this.pos + 1;
    const wasLineStart = this.lineStart;
    this.emit("", end);
    this.lineStart = wasLineStart || broke;
  }

  embed(end, language) {
    if (end <= this.pos) return;
    const inner = new Scanner(this.text.slice(this.pos, end));
    language.scan(inner, language);
    const offset = this.pos;
    inner.kinds.forEach((kind, i) => this.emit(kind, offset + inner.ends[i]));
    this.work += inner.work;
  }

  tokens() {
    let start = 0;
    return this.kinds.map((kind, i) => {
      const token = [kind, this.text.slice(start, this.ends[i])];
      start = this.ends[i];
      return token;
    });
  }
}

// From `from` (just past an opening quote) to just past `close`; unclosed: to the end of the line (or of the text).
function quotedEnd(s, from, close, escapes, multiline) {
  const { text } = s;
  let i = from;
  let closed = false;
  while (i < text.length) {
    const c = text[i];
    if (escapes && c === "\\") i += 2;
    else if (c === "\n" && !multiline) break;
    else if (c === close[0] && text.startsWith(close, i)) {
      i += close.length;
      closed = true;
      break;
    } else i += 1;
  }
  s.work += i - from + 1;
  return { end: Math.min(i, text.length), closed };
}

// A string opening at `from` (after a prefix such as Python's `rb`), emitted from s.pos; false when none does.
function string(s, lang, from = s.pos) {
  for (const [open, close, flags = ""] of lang.strings) {
    if (!s.sees(open, from)) continue;
    const mustClose = flags.includes("c"); // a lone quote is text (an apostrophe), not a string to the line's end
    if (mustClose && (s.unclosed.get(open) ?? -1) > from) return false;
    const { end, closed } = quotedEnd(s, from + open.length, close, flags.includes("e"), flags.includes("m"));
    if (mustClose && !closed) {
      // every later quote before `end` was escaped in this scan, and a scan from it would fail the same way
      s.unclosed.set(open, end);
      return false;
    }
    s.emit("string", end);
    return true;
  }
  return false;
}

function comment(s, lang, c) {
  for (const open of lang.lineComments) {
    if (open[0] === c && s.sees(open)) return s.emit("comment", s.lineEnd()), true;
  }
  const bounded = s.pos === 0 || SPACE.has(s.text[s.pos - 1]);
  for (const open of lang.spacedComments) {
    if (bounded && open[0] === c && s.sees(open)) return s.emit("comment", s.lineEnd()), true;
  }
  for (const [open, close] of lang.blockComments) {
    if (open[0] !== c || !s.sees(open)) continue;
    const found = s.find(close, s.pos + open.length);
    s.emit("comment", found < 0 ? s.text.length : found + close.length);
    return true;
  }
  return false;
}

function number(s, lang) {
  const { text } = s;
  const hex = text[s.pos] === "0" && (text[s.pos + 1] === "x" || text[s.pos + 1] === "X");
  let i = s.pos + 1;
  for (; i < text.length; i += 1) {
    const c = text[i];
    const exponent = !hex && (c === "+" || c === "-") && (text[i - 1] === "e" || text[i - 1] === "E");
    if (!(isWord(c, "") || ((c === "." || exponent) && isDigit(text[i + 1] ?? "")))) break;
  }
  s.work += i - s.pos + 1;
  if (lang.percent && text[i] === "%") i += 1;
  s.emit("number", i);
}

function word(s, lang) {
  const { text } = s;
  const start = s.pos;
  let end = s.runWhile((c) => isWord(c, lang.wordChars), start + 1);
  const name = text.slice(start, end);
  const key = lang.caseless ? name.toLowerCase() : name;
  const member = text[start - 1] === "." && text[start - 2] !== "."; // obj.type is not the keyword `type`
  let kind = "";
  if (!member && lang.keywords.has(key)) kind = "keyword";
  else if (!member && lang.literals.has(key)) kind = "literal";
  else if (!member && lang.builtins.has(key)) kind = "builtin";
  else if (lang.macros && text[end] === "!" && text[end + 1] !== "=") [kind, end] = ["function", end + 1];
  else if (lang.calls && text[end] === "(") kind = "function";
  s.emit(kind, end);
}

function wordStart(s, lang, c) {
  if (isLetter(c) || (c !== "-" && lang.wordChars.includes(c))) return true;
  return c === "-" && lang.wordChars.includes("-") && (isLetter(s.at(1)) || s.at(1) === "-"); // CSS: -webkit-, --x
}

// The scanner of every C-like language, configured by a spec; `hook` handles what is particular to one.
function scanCode(s, lang) {
  const state = { depth: 0 };
  while (!s.done) {
    const c = s.at();
    const before = s.text[s.pos - 1] ?? "";
    if (SPACE.has(c)) s.space();
    else if (lang.hook?.(s, lang, c, state)) continue;
    else if (lang.commentStarts.has(c) && comment(s, lang, c)) continue;
    else if (lang.quotes.has(c) && string(s, lang)) continue;
    else if (isDigit(c) || (c === "." && isDigit(s.at(1)) && !isWord(before, lang.wordChars))) number(s, lang);
    else if (wordStart(s, lang, c)) word(s, lang);
    else s.emit("", s.pos + 1);
  }
}

function spec(fields) {
  const lang = {
    scan: scanCode,
    keywords: NONE,
    literals: NONE,
    builtins: NONE,
    lineComments: [],
    spacedComments: [],
    blockComments: [],
    strings: [],
    wordChars: "",
    calls: true,
    ...fields,
  };
  for (const key of ["keywords", "literals", "builtins"]) if (typeof lang[key] === "string") lang[key] = words(lang[key]);
  lang.strings = lang.strings.map((entry) => (typeof entry === "string" ? entry.split(" ") : entry));
  lang.strings.sort((a, b) => b[0].length - a[0].length); // """ before "
  lang.quotes = new Set(lang.strings.map(([open]) => open[0]));
  const opens = [...lang.lineComments, ...lang.spacedComments, ...lang.blockComments.map(([open]) => open)];
  lang.commentStarts = new Set(opens.map((open) => open[0]));
  return lang;
}

const C_COMMENTS = { lineComments: ["//"], blockComments: [["/*", "*/"]] };
const C_STRINGS = ['" " e', "' ' e"];

function pythonHook(s, lang, c) {
  if (c === "@" && s.lineStart && isLetter(s.at(1))) {
    s.emit("function", s.runWhile((ch) => isWord(ch, "."), s.pos + 1)); // a decorator
    return true;
  }
  if (!"rRbBuUfF".includes(c)) return false;
  const second = s.at(1);
  const prefix = "rRbBuUfF".includes(second) && second !== "" ? 2 : 1;
  return (s.at(prefix) === '"' || s.at(prefix) === "'") && string(s, lang, s.pos + prefix);
}

function bashHook(s, lang, c) {
  if (c !== "$") return false;
  const next = s.at(1);
  if (next === "{") {
    const close = s.findInLine("}", s.pos + 2);
    s.emit("builtin", close >= 0 ? close + 1 : s.lineEnd());
  } else if (isLetter(next)) s.emit("builtin", s.runWhile((ch) => isWord(ch, ""), s.pos + 1));
  else if (next !== "" && "0123456789@#?$!*-".includes(next)) s.emit("builtin", s.pos + 2);
  else return false;
  return true;
}

function rustHook(s, lang, c) {
  if (c === "'") {
    // 'x', '\n', '\u{1F600}' are chars; 'a (no closing quote right after) is a lifetime
    const close = s.at(1) === "\\" ? s.findInLine("'", s.pos + 3, 10) : -1;
    if (close >= 0) return s.emit("string", close + 1), true;
    const width = s.text.codePointAt(s.pos + 1) > 0xffff ? 2 : 1;
    if (s.at(1) !== "" && s.at(1 + width) === "'") return s.emit("string", s.pos + 2 + width), true;
    if (isLetter(s.at(1))) return s.emit("builtin", s.runWhile((ch) => isWord(ch, ""), s.pos + 1)), true;
    return false;
  }
  if (c !== "r" && c !== "b") return false;
  let i = s.pos + (c === "b" && s.at(1) === "r" ? 2 : 1);
  if (c === "b" && (s.at(1) === '"' || s.at(1) === "'")) return string(s, lang, s.pos + 1);
  if (s.text[i - 1] !== "r") return false;
  const hashes = s.runWhile((ch) => ch === "#", i) - i;
  i += hashes;
  if (hashes > 8 || s.text[i] !== '"') return false; // r##"…"##; more hashes than that is not a raw string here
  s.emit("string", quotedEnd(s, i + 1, `"${"#".repeat(hashes)}`, false, true).end);
  return true;
}

function cHook(s, lang, c) {
  if (c !== "#" || !s.lineStart) return false;
  s.emit("keyword", s.runWhile((ch) => isWord(ch, ""), s.runWhile((ch) => ch === " " || ch === "\t", s.pos + 1)));
  const gap = s.runWhile((ch) => ch === " " || ch === "\t");
  if (s.text[gap] !== "<") return true;
  if (gap > s.pos) s.emit("", gap);
  const close = s.findInLine(">", gap + 1);
  s.emit("string", close >= 0 ? close + 1 : s.lineEnd()); // #include <stdio.h>
  return true;
}

function jsonHook(s, lang, c) {
  if (c !== '"') return false;
  const { end } = quotedEnd(s, s.pos + 1, '"', true, false);
  const after = s.runWhile((ch) => ch === " " || ch === "\t", end);
  s.emit(s.text[after] === ":" ? "property" : "string", end);
  return true;
}

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
function scanConsole(s) {
  let prompted = false;
  for (let at = 0; at < s.text.length && !prompted; at = s.lineEnd(at) + 1) {
    s.pos = at;
    prompted = promptEnd(s) >= 0;
  }
  s.pos = 0;
  if (!prompted) return void scanCode(s, LANGUAGES.bash);
  while (!s.done) {
    const prompt = promptEnd(s);
    const end = s.lineEnd();
    if (prompt > s.pos) s.emit("punct", prompt);
    if (prompt >= 0) s.embed(end, LANGUAGES.bash);
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
  if (!opened || closing || !lang.embeds || (name !== "script" && name !== "style")) return;
  const end = name === "script" ? SCRIPT_END : STYLE_END;
  end.lastIndex = s.pos;
  const found = end.exec(s.text);
  const stop = found ? found.index : s.text.length;
  s.work += stop - s.pos + 1;
  s.embed(stop, name === "script" ? LANGUAGES.javascript : LANGUAGES.css);
}

function scanPlain(s) {
  if (!s.done) s.emit("", s.text.length);
}

const JS = spec({
  ...C_COMMENTS,
  strings: [...C_STRINGS, "` ` em"],
  wordChars: "$",
  keywords:
    "abstract as async await break case catch class const continue debugger declare default delete do else enum " +
    "export extends finally for from function if implements import in instanceof interface keyof let namespace new " +
    "of private protected public readonly return satisfies static super switch this throw try type typeof var void " +
    "while with yield",
  literals: "true false null undefined NaN Infinity",
  builtins:
    "Array BigInt Boolean Date Error JSON Map Math Number Object Promise Proxy Reflect RegExp Set String Symbol " +
    "TypeError WeakMap console document fetch globalThis module parseFloat parseInt process require setTimeout " +
    "window any unknown never string number boolean bigint symbol",
});

const C = spec({
  ...C_COMMENTS,
  strings: C_STRINGS,
  hook: cHook,
  keywords:
    "auto bool break case catch char class const constexpr continue default delete do double else enum explicit " +
    "extern float for friend goto if inline int long mutable namespace new noexcept operator override private " +
    "protected public register return short signed sizeof static static_cast struct switch template this throw " +
    "try typedef typename union unsigned using virtual void volatile while",
  literals: "true false NULL nullptr",
  builtins:
    "printf fprintf scanf malloc calloc free memcpy memset strlen strcmp size_t int8_t int16_t int32_t int64_t " +
    "uint8_t uint16_t uint32_t uint64_t FILE std cout cin endl string vector map unique_ptr shared_ptr",
});

const YAML_LITERALS = "true false null True False Null TRUE FALSE NULL yes no";

const LANGUAGES = {
  python: spec({
    lineComments: ["#"],
    strings: ['""" """ em', "''' ''' em", '" " e', "' ' e"],
    hook: pythonHook,
    keywords:
      "and as assert async await break class continue def del elif else except finally for from global if import " +
      "in is lambda nonlocal not or pass raise return try while with yield",
    literals: "True False None",
    builtins:
      "abs all any bool bytes callable chr classmethod dict dir divmod enumerate filter float format frozenset " +
      "getattr hasattr hash hex id input int isinstance issubclass iter len list map max min next object open ord " +
      "pow print property range repr reversed round set setattr slice sorted staticmethod str sum super tuple type " +
      "vars zip self cls Exception ValueError TypeError KeyError IndexError RuntimeError OSError NotImplementedError",
  }),
  javascript: JS,
  typescript: JS,
  json: spec({ ...C_COMMENTS, strings: ['" " e'], hook: jsonHook, literals: "true false null", calls: false }),
  bash: spec({
    spacedComments: ["#"],
    strings: ['" " em', "' ' m"],
    hook: bashHook,
    keywords:
      "if then else elif fi for while until do done case esac function in select return local export readonly " +
      "declare break continue",
    literals: "true false",
    builtins: "echo printf cd pwd read set unset source exit eval exec shift trap alias test type wait kill",
  }),
  console: { scan: scanConsole },
  html: { scan: scanMarkup, embeds: true },
  xml: { scan: scanMarkup, embeds: false },
  css: spec({
    blockComments: [["/*", "*/"]],
    strings: C_STRINGS,
    hook: cssHook,
    wordChars: "-",
    percent: true,
  }),
  sql: spec({
    lineComments: ["--"],
    blockComments: [["/*", "*/"]],
    strings: ["' '", '" "', "` `"],
    caseless: true,
    keywords:
      "add all alter and as asc begin between by cascade case check column commit constraint create cross " +
      "database default delete desc distinct drop else end except exists explain foreign from full grant group " +
      "having if in index inner insert intersect into is join key left like limit not offset on or order outer " +
      "over partition primary references replace returning revoke right rollback schema select set table then " +
      "transaction trigger union unique update using values view when where window with",
    literals: "true false null",
    builtins:
      "avg bigint blob boolean bytea cast char coalesce concat count date decimal float int integer json jsonb " +
      "length lower max min now numeric real serial smallint substring sum text time timestamp upper uuid varchar",
  }),
  rust: spec({
    ...C_COMMENTS,
    strings: ['" " em'],
    hook: rustHook,
    macros: true,
    keywords:
      "as async await break const continue crate dyn else enum extern fn for if impl in let loop match mod move mut " +
      "pub ref return self Self static struct super trait type unsafe use where while",
    literals: "true false None",
    builtins:
      "Some Ok Err Option Result Box Vec String str bool char i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize " +
      "f32 f64 HashMap HashSet Rc Arc",
  }),
  go: spec({
    ...C_COMMENTS,
    strings: [...C_STRINGS, "` ` m"],
    keywords:
      "break case chan const continue default defer else fallthrough for func go goto if import interface map " +
      "package range return select struct switch type var",
    literals: "true false nil iota",
    builtins:
      "any append bool byte cap close complex copy delete error float32 float64 int int8 int16 int32 int64 len " +
      "make new panic print println recover rune string uint uint8 uint16 uint32 uint64 uintptr",
  }),
  c: C,
  cpp: C,
  yaml: spec({
    name: "yaml",
    spacedComments: ["#"],
    strings: ['" " e', "' '"],
    hook: configHook,
    literals: YAML_LITERALS,
    calls: false,
  }),
  toml: spec({
    name: "toml",
    lineComments: ["#"],
    strings: ['""" """ em', "''' ''' m", '" " e', "' '"],
    hook: configHook,
    literals: "true false inf nan",
    calls: false,
  }),
  ini: spec({
    name: "ini",
    spacedComments: [";", "#"],
    strings: ['" " c', "' ' c"],
    hook: configHook,
    literals: "true false yes no on off",
    calls: false,
  }),
  diff: { scan: scanDiff },
  text: { scan: scanPlain },
  // no language named: strings that close on their line, numbers, comments; never a keyword guessed at
  generic: spec({
    spacedComments: ["#", "//"],
    blockComments: [["/*", "*/"]],
    strings: ['" " ec', "' ' ec"],
    calls: false,
  }),
};

// other names a fence may give each language
const ALIASES = new Map(
  [
    "python py py3 python3",
    "javascript js mjs cjs jsx node",
    "typescript ts tsx",
    "json jsonc json5",
    "bash sh shell zsh shellscript",
    "console shell-session terminal",
    "html htm xhtml",
    "xml svg",
    "css scss",
    "sql postgresql postgres mysql sqlite",
    "rust rs",
    "go golang",
    "c h",
    "cpp c++ cc cxx hpp",
    "yaml yml",
    "ini cfg conf dosini",
    "diff patch",
    "text txt plaintext plain output log markdown md",
  ].flatMap((line) => {
    const [key, ...names] = line.split(" ");
    return names.map((name) => [name, key]);
  }),
);

/** The language key for a code fence's info string (```python title="x" → "python"); "" when unknown. */
export function languageOf(infoString) {
  if (typeof infoString !== "string") return "";
  const name = /^[\s{.]*(?:language-)?([\w+#.-]{1,40})/.exec(infoString)?.[1]?.toLowerCase() ?? "";
  const key = ALIASES.get(name) ?? name;
  return key !== "generic" && Object.hasOwn(LANGUAGES, key) ? key : "";
}

/** Tokens of `code` as [kind, text] pairs ("" for plain text), and the characters examined to find them. */
export function tokenize(code, language = "") {
  if (typeof code !== "string") throw new TypeError("highlight: code must be a string");
  const s = new Scanner(code);
  const key = languageOf(String(language ?? ""));
  const lang = code.length > MAX_HIGHLIGHT_CHARS ? LANGUAGES.text : LANGUAGES[key || "generic"];
  lang.scan(s, lang);
  return { tokens: s.tokens(), work: s.work };
}

/** `code` as a DocumentFragment of Text nodes and <span class="hl-KIND"> elements, its text unchanged. */
export function highlight(code, language = "") {
  const fragment = document.createDocumentFragment();
  for (const [kind, text] of tokenize(code, language).tokens) {
    if (kind === "") {
      fragment.append(document.createTextNode(text));
      continue;
    }
    const span = document.createElement("span");
    span.className = `hl-${kind}`;
    span.textContent = text;
    fragment.append(span);
  }
  return fragment;
}
