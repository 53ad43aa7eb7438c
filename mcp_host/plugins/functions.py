"""Plain Python functions as tools: a JSON schema from the type hints and the docstring, via pydantic.

    def multiply(a: float, b: float = 2) -> float:
        '''Multiply two numbers.

        Args:
            a: The first factor.
            b: The second factor.
        '''
        return a * b

    tool = FunctionTool.build(multiply, server="app")
    tool.spec.original_schema     # {"type": "object", "properties": {"a": {...}, "b": {...}}, "required": ["a"]}
    await tool.call({"a": 3}, timeout_s=10)  # ToolResult "6.0"

Types: str, int, float, bool, list, dict, `Literal`, `Optional`/`X | None`, enums, pydantic models,
and defaults. A parameter annotated `PluginContext` is filled by the host, not by the model. Sync
functions run in a worker thread; a call that outlives its timeout returns an error at once (the
thread is left to finish). Anything the function raises becomes an error result the model reads.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from mcp_host.errors import ToolDefinitionError
from mcp_host.tools.schema import normalise_schema
from mcp_host.tools.spec import ToolResult, ToolSpec

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?):\s*$")
_SPHINX_PARAM = re.compile(r"^\s*:param\s+(?:\w+\s+)?(\w+):\s*(.*)$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What plugin code may raise that the host reports instead of dying of: `SystemExit` (argparse does it),
# `KeyboardInterrupt` raised by the code itself. The event loop's cancellation is not among them.
PLUGIN_FAILURES = (Exception, SystemExit, KeyboardInterrupt, GeneratorExit)


@dataclass(frozen=True)
class PluginContext:
    """What the host gives a plugin tool that asks for it (a parameter annotated `PluginContext`).

    `roots`: the folders the chat may work in (the working directory by default); `config`: the
    plugin's settings from `[plugins.NAME]`, validated by its config model (None without one);
    `state_dir`: a folder of the plugin's own for data it keeps.
    """

    plugin: str
    roots: tuple[Path, ...] = ()
    config: Any = None
    state_dir: Path | None = None


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description without the parameter sections, {parameter: description}) from Google or Sphinx style."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in lines:
        header = _SECTION.match(line)
        sphinx = _SPHINX_PARAM.match(line)
        if header:
            section, current = header.group(1).lower(), None
            continue
        if sphinx:
            current = sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            continue
        if section in ("args", "arguments", "parameters"):
            entry = re.match(r"^\s{0,8}(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            if entry and not line.startswith(" " * 9):
                current = entry.group(1).lstrip("*")
                params[current] = entry.group(2).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
            continue
        if section is None:
            description.append(line)
    return "\n".join(description).strip(), params


def _is_context(annotation: Any) -> bool:
    return annotation is PluginContext or (isinstance(annotation, str) and annotation.endswith("PluginContext"))


def _result(value: Any) -> ToolResult:
    """What a function returned, as the model reads it."""
    if isinstance(value, ToolResult):
        return value
    if value is None:
        return ToolResult.text_result("done (no output)")
    if isinstance(value, str):
        return ToolResult.text_result(value)
    if isinstance(value, BaseModel):
        return ToolResult.text_result(value.model_dump_json())
    if isinstance(value, enum.Enum):
        return ToolResult.text_result(str(value.value))
    try:
        return ToolResult.text_result(json.dumps(value, ensure_ascii=False, default=str))
    except (TypeError, ValueError):
        return ToolResult.text_result(str(value))


@dataclass
class FunctionTool:
    """One function as a tool: its spec (qualified `server.name`), its arguments model, and how to call it."""

    spec: ToolSpec
    function: Callable[..., Any]
    arguments: type[BaseModel]
    context_parameter: str | None = None
    is_async: bool = field(default=False)

    @classmethod
    def build(
        cls,
        function: Callable[..., Any],
        *,
        server: str,
        name: str | None = None,
        description: str | None = None,
        annotations: dict[str, Any] | None = None,
        origin: str = "plugin",
    ) -> FunctionTool:
        """Raises `ToolDefinitionError` for a function that cannot be a tool."""
        tool_name: str = name or str(getattr(function, "__name__", ""))
        if not _NAME.match(tool_name):
            raise ToolDefinitionError(f"tool name {tool_name!r} must be 1-64 letters, digits, '_' or '-'")
        try:
            signature = inspect.signature(function)
            hints = typing.get_type_hints(function, include_extras=True)
        except (TypeError, ValueError, NameError) as exc:
            raise ToolDefinitionError(f"{tool_name}: cannot read its signature: {exc}") from exc
        summary, documented = parse_docstring(inspect.getdoc(function))
        fields: dict[str, Any] = {}
        context_parameter = None
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise ToolDefinitionError(f"{tool_name}: *{parameter.name} cannot be a tool parameter; name each one")
            annotation = hints.get(parameter.name, parameter.annotation)
            if _is_context(annotation):
                context_parameter = parameter.name
                continue
            if annotation is inspect.Parameter.empty:
                raise ToolDefinitionError(
                    f"{tool_name}: parameter {parameter.name!r} has no type annotation (the model needs its type)"
                )
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[parameter.name] = (annotation, Field(default, description=documented.get(parameter.name)))
        try:
            model = create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
            schema = model.model_json_schema()
        except Exception as exc:  # noqa: BLE001 - pydantic's errors for unsupported types vary
            raise ToolDefinitionError(f"{tool_name}: its parameter types cannot be described: {exc}") from exc
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
        spec = ToolSpec(
            server=server,
            tool=tool_name,
            description=str(description or summary or tool_name),
            input_schema=normalise_schema(schema),
            original_schema=schema,
            origin=origin,  # type: ignore[arg-type]
            annotations=annotations or None,
        )
        return cls(spec, function, model, context_parameter, inspect.iscoroutinefunction(function))

    async def call(
        self, arguments: dict[str, Any], *, timeout_s: float, context: PluginContext | None = None
    ) -> ToolResult:
        """Validate, run within `timeout_s`, and turn the outcome (or the exception) into a result."""
        try:
            parsed = self.arguments.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}" for error in exc.errors()
            )
            return ToolResult.error(f"invalid arguments for {self.spec.name}: {problems}")
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        if self.context_parameter is not None:
            kwargs[self.context_parameter] = context or PluginContext(plugin=self.spec.server)
        try:
            with anyio.fail_after(timeout_s):
                if self.is_async:
                    value = await self.function(**kwargs)
                else:
                    value = await anyio.to_thread.run_sync(lambda: self.function(**kwargs), abandon_on_cancel=True)
        except TimeoutError:
            return ToolResult.error(f"{self.spec.name} did not finish within {timeout_s:g}s")
        except PLUGIN_FAILURES as exc:  # the tool's failure is a result the model reads, never the host's end
            return ToolResult.error(f"{self.spec.name} failed: {type(exc).__name__}: {exc}")
        return _result(value)
