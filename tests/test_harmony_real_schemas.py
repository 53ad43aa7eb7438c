"""Real MCP tool schemas (server-everything, mcp-server-time) render into the prompt without loss."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mcp_host.config.mcpjson import McpConfig, StdioServerConfig
from mcp_host.prompt import FunctionTool, HarmonyOptions, HarmonyRenderer
from mcp_host.servers import ServerManager, ServerState
from mcp_host.tools import ToolSpec
from tests.conftest import everything_command, fast_settings, time_server_command

pytestmark = pytest.mark.anyio


def facts(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, str]]:
    """Every parameter name, enum value, default and description in a normalised schema."""
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}{name}", f"\n{name}"
        yield from facts_of_value(sub, f"{path}{name}.")
    if isinstance(schema.get("items"), dict):
        yield from facts_of_value(schema["items"], f"{path}[].")


def facts_of_value(schema: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
    for line in str(schema.get("description", "")).splitlines():
        if line.strip():
            yield f"{path}description", line.strip()
    for value in schema.get("enum", []):
        yield f"{path}enum", json.dumps(value).replace("|", "")
    if "default" in schema and not isinstance(schema["default"], dict | list):
        default = schema["default"]
        # openai_harmony quotes a string default except on enums; either way the value is there.
        yield f"{path}default", f"// default: {json.dumps(default)}|// default: {default}"
    for variant in schema.get("oneOf", []):
        yield from facts_of_value(variant, path)
    yield from facts(schema, path)


async def served_tools() -> list[ToolSpec]:
    config = McpConfig(
        servers={
            "everything": StdioServerConfig(command=everything_command(), args=["stdio"]),
            "time": StdioServerConfig(command=time_server_command()),
        }
    )
    async with ServerManager(fast_settings(connect_timeout_s=30)) as manager:
        await manager.apply(config)
        await manager.wait_settled()
        assert all(status.state is ServerState.READY for status in manager.statuses()), manager.statuses()
        return list(manager.registry)


async def test_every_parameter_enum_default_and_description_is_rendered() -> None:
    specs = await served_tools()
    assert {spec.server for spec in specs} == {"everything", "time"} and len(specs) > 10
    renderer = HarmonyRenderer()
    tools = FunctionTool.from_specs(specs)
    text = renderer.encoding.decode(renderer.render_prompt(HarmonyOptions(), tools, []))
    checked = 0
    for tool in tools:
        start = text.index(f"type {tool.identifier} = ")
        block = text[text.rindex("\n\n", 0, start) : text.index("}) => any;", start)]
        for line in tool.spec.description.splitlines():
            if line.strip():
                assert line.strip() in block, (tool.spec.name, line)
        for where, fact in facts(tool.spec.input_schema):
            assert any(alternative in block for alternative in fact.split("|")), (tool.spec.name, where, fact)
            checked += 1
    assert checked > 30
