// The highlighter's programming languages, all scanned by scanCode: each one's word lists and strings, and a hook
// for what is particular to it (Python's decorators and string prefixes, shell variables, Rust's lifetimes and raw
// strings, C's preprocessor lines, JSON's keys).

import { isLetter, isWord, quotedEnd, spec, string } from "./highlight-scan.js";

const C_COMMENTS = { lineComments: ["//"], blockComments: [["/*", "*/"]] };
export const C_STRINGS = ['" " e', "' ' e"];

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

export const JAVASCRIPT = spec({
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

export const C = spec({
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

export const PYTHON = spec({
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
});

export const JSON_LANGUAGE = spec({
  ...C_COMMENTS,
  strings: ['" " e'],
  hook: jsonHook,
  literals: "true false null",
  calls: false,
});

export const BASH = spec({
  spacedComments: ["#"],
  strings: ['" " em', "' ' m"],
  hook: bashHook,
  keywords:
    "if then else elif fi for while until do done case esac function in select return local export readonly " +
    "declare break continue",
  literals: "true false",
  builtins: "echo printf cd pwd read set unset source exit eval exec shift trap alias test type wait kill",
});

export const SQL = spec({
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
});

export const RUST = spec({
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
});

export const GO = spec({
  ...C_COMMENTS,
  strings: [...C_STRINGS, "` ` m"],
  keywords:
    "break case chan const continue default defer else fallthrough for func go goto if import interface map " +
    "package range return select struct switch type var",
  literals: "true false nil iota",
  builtins:
    "any append bool byte cap close complex copy delete error float32 float64 int int8 int16 int32 int64 len " +
    "make new panic print println recover rune string uint uint8 uint16 uint32 uint64 uintptr",
});

// no language named: strings that close on their line, numbers, comments; never a keyword guessed at
export const GENERIC = spec({
  spacedComments: ["#", "//"],
  blockComments: [["/*", "*/"]],
  strings: ['" " ec', "' ' ec"],
  calls: false,
});
