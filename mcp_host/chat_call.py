"""`/call SERVER.TOOL {json}` in the terminal chat: the user's own tool call, checked before it runs.

    call = parse_call('time.get_current_time {"timezone": "Asia/Tokyo"}', chat.tools)   # raises UsageError
    hint = example_call(chat.tools)      # a line that should work as it is, for the start-up notice

The JSON, the tool's name (the closest names suggested) and the tool's schema are checked here; running the
call through the approval flow is `SlashCommands.run_call`'s.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # the MCP SDK's own dependency
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]

from mcp_host.errors import UnknownToolError, UsageError
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolSpec

CALL_USAGE = "SERVER.TOOL {json}"


@dataclass(frozen=True)
class UserCall:
    """A call the user asked for with `/call`, checked against the chat's tools."""

    spec: ToolSpec
    function: str  # the name the model knows the tool by (`time__get_current_time`)
    arguments: dict[str, Any]


def parse_call(rest: str, tools: ToolRegistry) -> UserCall:
    """`SERVER.TOOL {json}` (no JSON: no arguments) → the call; raises `UsageError` naming what is wrong."""
    name, _, text = rest.strip().partition(" ")
    if not name:
        raise UsageError(f"/call needs a tool: /call {CALL_USAGE} (/tools lists them)")
    try:
        spec = tools.get(name)
    except UnknownToolError as exc:  # its message suggests the closest names, or lists the server's tools
        raise UsageError(f"/call: {exc} (/tools lists them)") from None
    try:
        arguments = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise UsageError(f"/call {name}: the arguments are not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(arguments, dict):
        raise UsageError(f"/call {name}: the arguments must be a JSON object, like {example_arguments(spec)}")
    validator = jsonschema.validators.validator_for(spec.original_schema)(spec.original_schema)
    problem = best_match(validator.iter_errors(arguments))
    if problem is not None:
        where = "".join(f"[{part!r}]" if isinstance(part, int) else f".{part}" for part in problem.absolute_path)
        raise UsageError(
            f"/call {name}: the arguments do not fit the tool's schema: {problem.message}"
            + (f" (at {where.lstrip('.')})" if where else "")
            + f"; for example {example_arguments(spec)}"
        )
    return UserCall(spec, tools.names.to_identifier[spec.name], arguments)


def example_call(tools: ToolRegistry) -> str | None:
    """A `/call` line for one of `tools` that should work as it is, for the user to try (None: no tools).

    Preferred: values the schema gives as examples, a tool with arguments (it shows the JSON), a read-only one.
    """
    specs = [spec for spec in tools if spec.origin != "native"]
    if not specs:
        return None

    def rank(spec: ToolSpec) -> tuple[int, int, int, int]:
        required = _required(spec)
        worst = max((_example(spec, name)[1] for name in required), default=0)
        read_only = bool((spec.annotations or {}).get("readOnlyHint"))
        return worst, 0 if required else 1, 0 if read_only else 1, len(required)

    best = min(specs, key=rank)
    return f"/call {best.name} {example_arguments(best)}"


def example_arguments(spec: ToolSpec) -> str:
    """The tool's required arguments as JSON, with values taken from its schema where it gives one."""
    return json.dumps({name: _example(spec, name)[0] for name in _required(spec)}, ensure_ascii=False)


_EXAMPLE = re.compile(r"""e\.g\.,?\s*['"`]([^'"`]+)['"`]""")
_PLACEHOLDERS: dict[str, Any] = {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}


def _required(spec: ToolSpec) -> list[str]:
    required = spec.input_schema.get("required")
    return [str(name) for name in required] if isinstance(required, list) else []


def _example(spec: ToolSpec, name: str) -> tuple[Any, int]:
    """A value for a property and how good a guess it is: 0 the schema's own example (default, `examples`, an
    "e.g." in its description), 1 the first of its `enum`, 2 a placeholder for its type, 3 none ("…")."""
    properties = spec.input_schema.get("properties")
    schema = properties.get(name) if isinstance(properties, dict) else None
    if not isinstance(schema, dict):
        return "…", 3
    if "default" in schema:
        return schema["default"], 0
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0], 0
    found = _EXAMPLE.search(str(schema.get("description") or ""))
    if found:
        return found.group(1), 0
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0], 1
    kind = str(schema.get("type"))
    return (_PLACEHOLDERS[kind], 2) if kind in _PLACEHOLDERS else ("…", 3)
