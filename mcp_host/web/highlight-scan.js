// The highlighter's shared scanning machinery: the Scanner that collects tokens, the scans every language reuses
// (strings, comments, numbers, words) and `scanCode`, the one scanner of C-like languages, configured by `spec`.
//
//   const lang = spec({ lineComments: ["#"], strings: ['" " e'], keywords: "if else" });
//   const s = new Scanner(code);
//   lang.scan(s, lang);  // s.tokens(): [kind, text] pairs
//
// Cost: every scan that looks for a closer (a quote, the end of a comment) consumes what it scanned whether or
// not it found one, and `work` counts the characters examined, so the tests can hold the scanners to linear work.

const words = (list) => new Set(list.split(" ").filter(Boolean));
const NONE = new Set();
export const SPACE = new Set([" ", "\t", "\n", "\r", "\f", "\v"]);
export const isDigit = (c) => c >= "0" && c <= "9";
export const isLetter = (c) => (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_" || c > "\x7f";
export const isWord = (c, extra) => isLetter(c) || isDigit(c) || (extra !== "" && c !== "" && extra.includes(c));

// Collects tokens as [kind, start, end) spans of `text`, merging neighbours of one kind.
export class Scanner {
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
export function quotedEnd(s, from, close, escapes, multiline) {
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
export function string(s, lang, from = s.pos) {
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

export function wordStart(s, lang, c) {
  if (isLetter(c) || (c !== "-" && lang.wordChars.includes(c))) return true;
  return c === "-" && lang.wordChars.includes("-") && (isLetter(s.at(1)) || s.at(1) === "-"); // CSS: -webkit-, --x
}

// The scanner of every C-like language, configured by a spec; `hook` handles what is particular to one.
export function scanCode(s, lang) {
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

// A language for scanCode from its fields; word lists may be given as space-separated strings, and a string
// entry as "open close flags" (e: backslash escapes, m: may span lines, c: must close on its line).
export function spec(fields) {
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
  for (const key of ["keywords", "literals", "builtins"]) {
    if (typeof lang[key] === "string") lang[key] = words(lang[key]);
  }
  lang.strings = lang.strings.map((entry) => (typeof entry === "string" ? entry.split(" ") : entry));
  lang.strings.sort((a, b) => b[0].length - a[0].length); // """ before "
  lang.quotes = new Set(lang.strings.map(([open]) => open[0]));
  const opens = [...lang.lineComments, ...lang.spacedComments, ...lang.blockComments.map(([open]) => open)];
  lang.commentStarts = new Set(opens.map((open) => open[0]));
  return lang;
}

function scanPlain(s) {
  if (!s.done) s.emit("", s.text.length);
}

export const PLAIN = { scan: scanPlain };
