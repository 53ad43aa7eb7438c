// A small Markdown renderer that builds DOM nodes: paragraphs, headings, lists, fenced code (highlighted),
// inline code, emphasis and http(s) links. Images are never loaded: they become links.
import { element } from "./dom.js";
import { highlight, languageOf } from "./highlight.js";

const FENCE = /^\s*(`{3,}|~{3,})\s*([^`]*)$/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const LIST_ITEM = /^\s*([-*+]|\d+[.)])\s+/;
const INLINE =
  /`([^`\n]+)`|!\[([^\]\n]*)\]\(([^)\s]+)\)|\[([^\]\n]+)\]\(([^)\s]+)\)|\*\*([^*\n]+)\*\*|\*([^*\n]+)\*|(?<!\w)_([^_\n]+)_(?!\w)/g;

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || LIST_ITEM.test(line);
}

export function renderMarkdown(text) {
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
      const language = languageOf(fence[2]);
      const pre = element("pre", "code-block");
      const codeNode = element("code");
      if (language) codeNode.dataset.language = language;
      codeNode.append(highlight(code.join("\n"), language));
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
