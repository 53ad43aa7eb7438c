"""JSON Schema normalisation for tool parameters.

MCP servers send schemas written for JSON Schema validators (`$ref` into `$defs`,
`anyOf [X, null]` for optional values, `type: [X, "null"]`). The Harmony renderer
understands `enum`, `default`, `items`, `oneOf`, `nullable` and `title`, so schemas are
rewritten into that subset before they reach a prompt. The original is always kept
next to the result (see `ToolSpec`).

    normalise_schema({"anyOf": [{"type": "string"}, {"type": "null"}]})
    # {'type': 'string', 'nullable': True}
"""

from __future__ import annotations

import copy
from typing import Any

JsonSchema = dict[str, Any]

_NULL = {"type": "null"}
_COMBINATORS = ("anyOf", "oneOf")


def normalise_schema(schema: JsonSchema | None) -> JsonSchema:
    """Return a self-contained copy of a tool's input schema: refs inlined, optional values as `nullable`.

    A recursive `$ref` is cut at its second appearance and replaced by an object described as such,
    so the result is finite. The root is always an object schema with `properties`.
    """
    root: JsonSchema = copy.deepcopy(schema) if isinstance(schema, dict) else {}
    result: JsonSchema = _Normaliser(root).walk(root, ())
    for key in ("$defs", "definitions", "$schema", "$id"):
        result.pop(key, None)
    if result.get("type") is None:
        result["type"] = "object"
    if result["type"] == "object":
        result.setdefault("properties", {})
    return result


class _Normaliser:
    def __init__(self, root: JsonSchema) -> None:
        self.root = root

    def walk(self, node: Any, active_refs: tuple[str, ...]) -> Any:
        if not isinstance(node, dict):
            return node
        while isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            if ref in active_refs:
                name = ref.rsplit("/", 1)[-1]
                return {"type": "object", "description": f"(recursive: another {name})", **siblings}
            active_refs = (*active_refs, ref)
            node = {**copy.deepcopy(self._resolve_pointer(ref)), **siblings}
        node = dict(node)
        if isinstance(node.get("type"), list):
            node = self._flatten_type_list(node)
        if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            only = node.pop("allOf")[0]
            node = {**self.walk(only, active_refs), **node}
        for combinator in _COMBINATORS:
            if isinstance(node.get(combinator), list):
                node = self._collapse_union(node, combinator, active_refs)
        if isinstance(node.get("properties"), dict):
            node["properties"] = {name: self.walk(sub, active_refs) for name, sub in node["properties"].items()}
        if isinstance(node.get("items"), dict):
            node["items"] = self.walk(node["items"], active_refs)
        if isinstance(node.get("additionalProperties"), dict):
            node["additionalProperties"] = self.walk(node["additionalProperties"], active_refs)
        return node

    def _resolve_pointer(self, ref: str) -> JsonSchema:
        if not ref.startswith("#"):
            return {}  # remote refs are never fetched: the tool still renders, untyped
        node: Any = self.root
        for part in ref.lstrip("#").strip("/").split("/") if ref not in ("#", "#/") else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return {}
        return node if isinstance(node, dict) else {}

    @staticmethod
    def _flatten_type_list(node: JsonSchema) -> JsonSchema:
        types = [t for t in node["type"] if t != "null"]
        if len(types) < len(node["type"]):
            node["nullable"] = True
        if len(types) == 1:
            node["type"] = types[0]
        elif not types:
            node["type"] = "null"
        else:
            del node["type"]
            node["oneOf"] = [{"type": t} for t in types]
        return node

    def _collapse_union(self, node: JsonSchema, combinator: str, active_refs: tuple[str, ...]) -> JsonSchema:
        variants = [self.walk(variant, active_refs) for variant in node.pop(combinator)]
        others = [variant for variant in variants if variant != _NULL]
        if len(others) < len(variants):
            node["nullable"] = True
        if len(others) == 1:
            merged = {**others[0], **node}
            if others[0].get("description") and node.get("description"):
                merged["description"] = node["description"]
            return merged
        node["oneOf"] = others
        return node
