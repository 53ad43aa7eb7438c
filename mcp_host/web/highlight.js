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
//
// The scanning lives in highlight-scan.js (the Scanner, the shared scans, the C-like scanner), highlight-code.js
// (programming languages) and highlight-markup.js (markup, configuration, diffs, terminal sessions).

import { CONSOLE, CSS, DIFF, HTML, INI, TOML, XML, YAML } from "./highlight-markup.js";
import { BASH, C, GENERIC, GO, JAVASCRIPT, JSON_LANGUAGE, PYTHON, RUST, SQL } from "./highlight-code.js";
import { PLAIN, Scanner } from "./highlight-scan.js";

export const MAX_HIGHLIGHT_CHARS = 100_000; // past this, plain text: a huge block is not worth the time

// The languages by key; `languageOf` admits only these own keys (never a prototype's).
const LANGUAGES = {
  python: PYTHON,
  javascript: JAVASCRIPT,
  typescript: JAVASCRIPT,
  json: JSON_LANGUAGE,
  bash: BASH,
  console: CONSOLE,
  html: HTML,
  xml: XML,
  css: CSS,
  sql: SQL,
  rust: RUST,
  go: GO,
  c: C,
  cpp: C,
  yaml: YAML,
  toml: TOML,
  ini: INI,
  diff: DIFF,
  text: PLAIN,
  generic: GENERIC, // no language named
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
