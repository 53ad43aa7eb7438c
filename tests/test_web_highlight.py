"""highlight.js, the web chat's syntax highlighter, in a real browser (Debian's chromium, driven by Playwright).

The module, with the highlight-*.js modules it imports, is loaded from `mcp-host serve` the way the page loads it
(same origin, under the page's CSP). The code it colours comes from a model, so: the text always comes back exactly,
the DOM it builds holds nothing but Text nodes and `<span class="hl-...">`, hostile input stays text, and
pathological input costs linear work (counted by `tokenize` in characters examined, with a generous clock bound
besides).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import ROOT
from tests.web_page import served

WEB = ROOT / "mcp_host" / "web"
SOURCES = sorted(WEB.glob("highlight*.js"))  # highlight.js and the scanner modules it imports
KINDS = ["keyword", "string", "number", "comment", "function", "builtin", "literal", "property", "punct"]
KINDS += ["added", "removed"]
LANGUAGES = ["python", "javascript", "typescript", "json", "bash", "console", "html", "xml", "css", "sql", "rust"]
LANGUAGES += ["go", "c", "cpp", "yaml", "toml", "ini", "diff", "text", "", "brainfuck"]
HOSTILE = [
    "</span><script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "</code></pre><iframe src=javascript:alert(1)>",
    "&lt;b&gt; &amp; &#x3C;script&#x3E;",
    "\u202e\u200b\x00\ufeff😀 é 𝒳",
    "",
]
CORPUS = {
    "python": '@cache\ndef greet(name="hi", *args):\n    """doc"""\n    print(f"{name}", None, 42)  # note\n',
    "javascript": "const x = 'x'; // c\nfunction foo(a) { return a ?? null; }\nconsole.log(`t ${3.14}`);\n",
    "typescript": "interface A { b: string }\nexport type C = A | null;\n",
    "json": '{"name": "x", "ok": true, "n": 1, "list": [null, -2.5e3]}',
    "bash": 'if [ -d "$HOME/x" ]; then\n  echo $USER ${PATH} # c\nfi\n',
    "console": "$ pip install x\nCollecting x\n(venv) me@box:~/src$ ls -la\ntotal 0\n",
    "html": '<!DOCTYPE html>\n<div class="x" id=y>a &amp; b<!-- c --></div>\n<script>const z = "</div>";</script>',
    "xml": '<?xml version="1.0"?>\n<a b="c"><![CDATA[<x>]]></a>',
    "css": "@media (max-width: 10px) {\n  a:hover { color: #fff; margin: -5px 10% !important; } /* c */\n}\n",
    "sql": "SELECT a, COUNT(*) FROM t WHERE b = 'a' AND c IS NULL; -- c\n",
    "rust": 'fn main<\'a>() { let r = r#"x"#; println!("x"); let c = \'\\n\'; None } // c\n',
    "go": 'package main\nfunc main() { s := `raw`; fmt.Println(s, nil, "x") }\n',
    "c": '#include <stdio.h>\nint main(void) { printf("%d\\n", 1); /* c */ return 0; }\n',
    "cpp": "class A { int *p = nullptr; };\n",
    "yaml": '# c\nname: x\nok: true\nlist:\n  - "q"\n  - key: It\'s fine\n',
    "toml": '[tool]\nkey = "v" # c\n[[arr]]\ns = """\nmulti = line\n"""\n',
    "ini": "; c\n[section]\nk = v\nport: 8080\n",
    "diff": "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-removed line\n+added line\n context\n",
    "text": "It's 'plain' # text 42",
    "": 'It\'s a "s" # c\n12 // d\n',
}
EXPECTED = {  # tokens that must come out as a span of that kind, with exactly that text
    "python": [("def", "keyword"), ('"hi"', "string"), ("# note", "comment"), ("None", "literal")]
    + [("greet", "function"), ("print", "builtin"), ("42", "number"), ("@cache", "function"), ('f"{name}"', "string")],
    "javascript": [("const", "keyword"), ("'x'", "string"), ("// c", "comment"), ("null", "literal")]
    + [("foo", "function"), ("console", "builtin"), ("`t ${3.14}`", "string")],
    "typescript": [("interface", "keyword"), ("string", "builtin"), ("null", "literal")],
    "json": [('"name"', "property"), ('"x"', "string"), ("true", "literal"), ("1", "number"), ("2.5e3", "number")],
    "bash": [("if", "keyword"), ('"$HOME/x"', "string"), ("$USER", "builtin"), ("${PATH}", "builtin")]
    + [("# c", "comment"), ("echo", "builtin")],
    "console": [("$ ", "punct"), ("(venv) me@box:~/src$ ", "punct")],
    "html": [("div", "keyword"), ("class", "property"), ('"x"', "string"), ("<!-- c -->", "comment")]
    + [("&amp;", "builtin"), ("const", "keyword"), ('"</div>"', "string")],
    "xml": [('<?xml version="1.0"?>', "keyword"), ("<![CDATA[<x>]]>", "string")],
    "css": [("@media", "keyword"), ("color", "property"), ("#fff", "number"), ("10%", "number")]
    + [("!important", "keyword"), ("/* c */", "comment")],
    "sql": [("SELECT", "keyword"), ("COUNT", "builtin"), ("'a'", "string"), ("NULL", "literal"), ("-- c", "comment")],
    "rust": [("fn", "keyword"), ("'a", "builtin"), ('r#"x"#', "string"), ("println!", "function")]
    + [("'\\n'", "string"), ("None", "literal"), ("// c", "comment")],
    "go": [("func", "keyword"), ("`raw`", "string"), ("Println", "function"), ("nil", "literal")],
    "c": [("#include", "keyword"), ("<stdio.h>", "string"), ("int", "keyword"), ("printf", "builtin")]
    + [("/* c */", "comment"), ("0", "number")],
    "cpp": [("class", "keyword"), ("nullptr", "literal")],
    "yaml": [("# c", "comment"), ("name", "property"), ("true", "literal"), ('"q"', "string"), ("key", "property")],
    "toml": [("[tool]", "keyword"), ("key", "property"), ('"v"', "string"), ("[[arr]]", "keyword")]
    + [('"""\nmulti = line\n"""', "string")],
    "ini": [("; c", "comment"), ("[section]", "keyword"), ("k", "property"), ("port", "property")],
    "diff": [("-removed line", "removed"), ("+added line", "added"), ("@@ -1 +1 @@", "builtin")]
    + [("--- a/x", "comment"), ("+++ b/x", "comment")],
    "": [('"s"', "string"), ("# c", "comment"), ("12", "number"), ("// d", "comment")],
}
NOT_IN_SPANS = {  # text that must stay plain: output of a terminal, an apostrophe, prose, a word after a dot
    "console": ["Collecting x", "total 0"],
    "yaml": ["It's fine"],
    "text": ["It's 'plain' # text 42"],
    "": ["It's"],
}
# Pathological inputs, as a unit repeated after a prefix: unterminated strings of escapes and quotes, comments
# never closed, tags never finished, and runs of every character some rule starts on.
PATHOLOGICAL = [
    ["\\", '"'],
    ["\\", "'"],
    ['\\"', '"'],
    ["\\'", "'"],
    ["'\\'\"", ""],
    ['"', ""],
    ["'", ""],
    ["`", ""],
    ['"""\\', ""],
    ["*", "/*"],
    ["/", ""],
    ["#", ""],
    ["-", "<!--"],
    ["<", ""],
    ["<a ", ""],
    ["a=", "<a "],
    ["&a", ""],
    ["${", ""],
    ["#", "r"],
    ['"#######', 'r########"'],
    ["'\\", ""],
    ["'a", ""],
    ["1_", ""],
    ["1e+", ""],
    [".1", ""],
    ["a", ""],
    ["a(", ""],
    [" ", ""],
    ["\n", ""],
    ["- ", ""],
    ["a: ", ""],
    [" '\n", ""],
    ["[", ""],
    ["$ a\n", ""],
    ["a", "user@"],
    ["é😀", ""],
    ["]", "<![CDATA["],
    ["'", "<script>"],
    ["{", "<style>"],
    ["#", "a{"],
    ["@", ""],
    ["f'\\", ""],
    ["<", "#include "],
    ['"a"  ', ""],
    ["-\n", ""],
]
WORK_PER_CHAR = 8  # the scanners examine each character a few times at most (measured worst: a little over 5)
PATHOLOGICAL_SIZE = 99_000  # just under the cap, so the scanners run
CAP = 100_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's chromium, headless (no browser download); one for the module."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed (apt-get install -y chromium; .ci/run does)")
    with sync_playwright() as driver:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # root cannot use chromium's sandbox
        launched = driver.chromium.launch(executable_path=path, headless=True, args=args)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served(tmp_path_factory.mktemp("highlight"), ["<|channel|>final<|message|>Hi.<|return|>"]) as url:
        yield url


@pytest.fixture(scope="module")
def chat_page(chromium: Browser, base_url: str) -> Iterator[Page]:
    """The chat page, with highlight.js imported as `window.hl` (the tests only read from it)."""
    context = chromium.new_context()
    opened = context.new_page()
    response = opened.goto(base_url + "/")
    assert response is not None and response.ok
    opened.evaluate("async () => { window.hl = await import('/web/highlight.js'); }")
    yield opened
    context.close()


def in_page(page: Page, script: str, arg: Any = None) -> Any:
    return page.evaluate(f"(arg) => {{ const hl = window.hl; {script} }}", arg)


# Checks one highlighted fragment: its text is `code`, and only Text nodes and classed spans of text are in it.
CHECK_FRAGMENT = (
    f"const KINDS = {json.dumps(KINDS)};\n"
    + """
const check = (code, language) => {
  const fragment = hl.highlight(code, language);
  const problems = [];
  if (!(fragment instanceof DocumentFragment)) problems.push('not a DocumentFragment');
  if (fragment.textContent !== code) problems.push('text changed');
  for (const node of fragment.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) continue;
    if (node.nodeType !== Node.ELEMENT_NODE || node.tagName !== 'SPAN') {
      problems.push('node ' + node.nodeName);
      continue;
    }
    const names = [...node.attributes].map((a) => a.name);
    if (names.length !== 1 || names[0] !== 'class') problems.push('attributes ' + names.join(','));
    const kind = /^hl-([a-z]+)$/.exec(node.className)?.[1];
    if (!KINDS.includes(kind)) problems.push('class ' + node.className);
    if (node.childNodes.length !== 1 || node.firstChild.nodeType !== Node.TEXT_NODE) problems.push('span content');
  }
  const box = document.createElement('pre');
  box.append(fragment);  // on the page: nothing runs, nothing loads
  document.body.append(box);
  const loaded = box.querySelectorAll('script, img, iframe, svg, a, [onerror], [onload]').length;
  if (loaded) problems.push('active elements: ' + loaded);
  box.remove();
  return problems.map((p) => `${JSON.stringify(language)} ${JSON.stringify(code.slice(0, 40))}: ${p}`);
};
"""
)


def test_the_modules_never_parse_markup_and_import_only_each_other() -> None:
    assert WEB / "highlight.js" in SOURCES and len(SOURCES) > 1, SOURCES
    imported: set[str] = set()
    for path in SOURCES:
        source = path.read_text()
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser", "createContextual"]:
            assert sink not in source, (path.name, sink)
        assert not re.search(r"\beval\(|new Function|setAttribute|\bimport\(", source), path.name
        # relative, so they load from the page's origin under script-src 'self'; and only the highlighter's own
        for specifier in re.findall(r"^(?:import|export)\b[^;]*?\bfrom\s*[\"']([^\"']*)[\"']", source, re.MULTILINE):
            assert re.fullmatch(r"\./highlight-[a-z]+\.js", specifier), (path.name, specifier)
            assert (WEB / specifier).is_file(), (path.name, specifier)
            imported.add(specifier.removeprefix("./"))
    assert imported == {path.name for path in SOURCES} - {"highlight.js"}  # every module is in use


def test_language_of_a_fence_info_string(chat_page: Page) -> None:
    cases = {
        'python title="x"': "python",
        "py": "python",
        "{.python}": "python",
        "language-ts": "typescript",
        "TSX": "typescript",
        "jsx": "javascript",
        "js,linenos": "javascript",
        "sh": "bash",
        "Shell": "bash",
        "shell-session": "console",
        "console": "console",
        "c++": "cpp",
        "h": "c",
        "golang": "go",
        "rs": "rust",
        "yml": "yaml",
        "dosini": "ini",
        "patch": "diff",
        "svg": "xml",
        "htm": "html",
        "postgresql": "sql",
        "plaintext": "text",
        "": "",
        "   ": "",
        "brainfuck": "",
        "generic": "",  # internal: the tokenizer used when no language is named
        "__proto__": "",
        "constructor": "",
        "x" * 10_000: "",
    }
    found = in_page(chat_page, "return arg.map((info) => [info, hl.languageOf(info)]);", list(cases))
    assert dict(found) == cases
    not_strings = in_page(chat_page, "return [hl.languageOf(undefined), hl.languageOf(null), hl.languageOf(42)];")
    assert not_strings == ["", "", ""]


def test_text_round_trips_and_only_classed_spans_are_built(chat_page: Page) -> None:
    snippets = (
        list(CORPUS.values()) + HOSTILE + [snippet + hostile for snippet in CORPUS.values() for hostile in HOSTILE]
    )
    problems = in_page(
        chat_page,
        CHECK_FRAGMENT
        + "window.pwned = undefined;"
        + "const out = arg.languages.flatMap((l) => arg.snippets.flatMap((s) => check(s, l)));"
        + "if (window.pwned !== undefined) out.push('script ran');"
        + "return out;",
        {"languages": [*LANGUAGES, "PY", "js", "weird lang"], "snippets": snippets},
    )
    assert problems == []
    error = in_page(chat_page, "try { hl.highlight(42, 'py'); return 'no error'; } catch (e) { return e.name; }")
    assert error == "TypeError"


def test_tokens_get_the_classes_they_should(chat_page: Page) -> None:
    spans = in_page(
        chat_page,
        """
        const out = {};
        for (const [language, code] of Object.entries(arg)) {
          const fragment = hl.highlight(code, language);
          out[language] = [...fragment.childNodes].map((n) => [n.textContent, n.nodeType === 1 ? n.className : '']);
        }
        return out;
        """,
        CORPUS,
    )
    for language, expected in EXPECTED.items():
        got = {(text, kind.removeprefix("hl-")) for text, kind in spans[language]}
        missing = [pair for pair in expected if pair not in got]
        assert not missing, (language, missing, spans[language])
    for language, texts in NOT_IN_SPANS.items():
        classed = "".join(text for text, kind in spans[language] if kind)
        assert not [text for text in texts if text in classed], (language, spans[language])


def test_pathological_input_costs_linear_work(chat_page: Page) -> None:
    result = in_page(
        chat_page,
        """
        const failures = [];
        let worst = 0, slowest = 0;
        for (const [unit, prefix] of arg.inputs) {
          const code = (prefix + unit.repeat(Math.ceil(arg.size / unit.length))).slice(0, arg.size);
          for (const language of arg.languages) {
            const started = performance.now();
            const { tokens, work } = hl.tokenize(code, language);
            slowest = Math.max(slowest, performance.now() - started);
            worst = Math.max(worst, work / code.length);
            const name = `${JSON.stringify(language)} ${JSON.stringify(prefix + unit)}`;
            if (work > arg.perChar * code.length) failures.push(`${name}: work ${work}`);
            if (tokens.map(([, text]) => text).join('') !== code) failures.push(`${name}: text changed`);
          }
        }
        return { failures, worst, slowest };
        """,
        {"inputs": PATHOLOGICAL, "languages": LANGUAGES, "size": PATHOLOGICAL_SIZE, "perChar": WORK_PER_CHAR},
    )
    assert result["failures"] == [], result
    assert result["slowest"] < 2_000, result  # milliseconds for ~100 KB: the budget above is the real check
    assert result["worst"] > 1  # the counter counts


def test_a_huge_block_is_plain_text_and_a_big_one_renders_whole(chat_page: Page) -> None:
    result = in_page(
        chat_page,
        CHECK_FRAGMENT
        + """
        const huge = '"' + '\\\\'.repeat(arg.cap * 2);
        const fragment = hl.highlight(huge, 'python');
        const big = 'x = "a\\\\"b" # c\\n'.repeat(Math.floor(arg.cap / 16));
        const started = performance.now();
        const problems = check(big, 'python');
        return {
          hugeNodes: [...fragment.childNodes].map((n) => n.nodeType),
          hugeText: fragment.textContent === huge,
          hugeWork: hl.tokenize(huge, 'python').work,
          atCap: hl.tokenize('1 '.repeat(arg.cap / 2), 'python').tokens.length,
          pastCap: hl.tokenize('1 '.repeat(arg.cap / 2) + '1', 'python').tokens.length,
          big: big.length, problems, ms: performance.now() - started,
        };
        """,
        {"cap": CAP},
    )
    assert in_page(chat_page, "return hl.MAX_HIGHLIGHT_CHARS;") == CAP
    assert result["hugeNodes"] == [3] and result["hugeText"] and result["hugeWork"] == 0
    assert result["atCap"] > 1 and result["pastCap"] == 1
    assert result["big"] > 90_000 and result["problems"] == [] and result["ms"] < 5_000, result


def contrast(foreground: str, background: str) -> float:
    """The WCAG contrast ratio of two opaque computed colours, `rgb(r, g, b)`."""

    def luminance(colour: str) -> float:
        rgb = [float(v) / 255 for v in re.findall(r"[\d.]+", colour)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted([luminance(foreground), luminance(background)], reverse=True)
    return (high + 0.05) / (low + 0.05)


def mix(top: str, bottom: str) -> str:
    """A translucent `rgba()` background laid over an opaque one, as an `rgb()`."""
    *front, alpha = [float(v) for v in re.findall(r"[\d.]+", top)]
    back = [float(v) for v in re.findall(r"[\d.]+", bottom)][:3]
    return "rgb({}, {}, {})".format(*(alpha * f + (1 - alpha) * b for f, b in zip(front, back, strict=True)))


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_class_is_readable_on_the_code_background(
    chromium: Browser, base_url: str, scheme: Literal["light", "dark"]
) -> None:
    context = chromium.new_context(color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(base_url + "/")
        colours = page.evaluate(
            """async (kinds) => {
                const link = document.createElement('link');
                link.rel = 'stylesheet';
                link.href = '/web/highlight.css';
                const loaded = new Promise((resolve, reject) => { link.onload = resolve; link.onerror = reject; });
                document.head.append(link);
                await loaded;
                const pre = document.createElement('pre');
                const code = document.createElement('code');
                pre.append(code);
                document.querySelector('main, body').append(pre);
                const background = getComputedStyle(pre).backgroundColor;
                return kinds.map((kind) => {
                  const span = document.createElement('span');
                  span.className = 'hl-' + kind;
                  span.textContent = kind;
                  code.append(span);
                  const style = getComputedStyle(span);
                  const own = style.backgroundColor;
                  return [kind, style.color, own === 'rgba(0, 0, 0, 0)' ? background : own, background];
                });
            }""",
            KINDS,
        )
    finally:
        context.close()
    colours_seen = {colour for _, colour, _, _ in colours}
    assert len(colours_seen) >= 6, colours  # the classes are told apart
    for kind, colour, own_background, background in colours:
        behind = own_background if own_background == background else mix(own_background, background)
        assert contrast(colour, behind) >= 4.5, (scheme, kind, colour, behind)
