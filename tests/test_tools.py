"""Schema normalisation, identifier-safe names and the registry."""

from __future__ import annotations

from typing import Any

import mcp_types
import pytest

from mcp_host.errors import UnknownToolError
from mcp_host.tools import NameMap, ToolRegistry, ToolSpec, identifier_for, normalise_schema

PYDANTIC_STYLE = {
    "$defs": {
        "Point": {
            "properties": {"x": {"type": "number", "description": "horizontal"}, "y": {"type": "number"}},
            "required": ["x", "y"],
            "title": "Point",
            "type": "object",
        },
        "Tree": {
            "type": "object",
            "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}},
        },
    },
    "properties": {
        "start": {"$ref": "#/$defs/Point", "description": "where to start"},
        "end": {"anyOf": [{"$ref": "#/$defs/Point"}, {"type": "null"}], "default": None},
        "mode": {"enum": ["fast", "slow"], "default": "fast", "title": "Mode"},
        "count": {"type": ["integer", "null"]},
        "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "tree": {"$ref": "#/$defs/Tree"},
        "one": {"allOf": [{"$ref": "#/$defs/Point"}]},
    },
    "required": ["start"],
    "type": "object",
}


def test_refs_are_inlined_and_optional_values_become_nullable() -> None:
    schema = normalise_schema(PYDANTIC_STYLE)
    assert "$defs" not in schema
    props = schema["properties"]
    assert props["start"]["properties"]["x"] == {"type": "number", "description": "horizontal"}
    assert props["start"]["description"] == "where to start"
    assert props["end"]["nullable"] is True and props["end"]["type"] == "object" and props["end"]["default"] is None
    assert "anyOf" not in props["end"]
    assert props["mode"] == {"enum": ["fast", "slow"], "default": "fast", "title": "Mode"}
    assert props["count"] == {"type": "integer", "nullable": True}
    assert props["either"] == {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    assert props["one"]["required"] == ["x", "y"]
    assert schema["required"] == ["start"]


def test_recursive_refs_are_cut_and_the_original_is_untouched() -> None:
    original = repr(PYDANTIC_STYLE)
    tree = normalise_schema(PYDANTIC_STYLE)["properties"]["tree"]
    child = tree["properties"]["children"]["items"]
    assert child["type"] == "object" and "recursive" in child["description"]
    assert repr(PYDANTIC_STYLE) == original
    assert "$ref" not in repr(normalise_schema(PYDANTIC_STYLE))


@pytest.mark.parametrize("schema", [None, {}, {"properties": {}}, {"type": "object", "$ref": "http://remote"}])
def test_degenerate_schemas_become_empty_objects(schema: dict[str, Any] | None) -> None:
    result = normalise_schema(schema)
    assert result["type"] == "object" and result["properties"] == {}


def test_identifiers_are_safe_and_collisions_are_deterministic_and_reported() -> None:
    assert identifier_for("my-server", "get.time") == "my_server__get_time"
    assert identifier_for("1st", "x") == "_1st__x"
    pairs = [("my_srv", "x"), ("my-srv", "x"), ("my.srv", "x"), ("a", "b")]
    first = NameMap.build(pairs)
    assert NameMap.build(reversed(pairs)) == first
    assert first.to_identifier == {
        "a.b": "a__b",
        "my-srv.x": "my_srv__x",
        "my.srv.x": "my_srv__x_2",
        "my_srv.x": "my_srv__x_3",
    }
    assert {first.to_qualified[v] for v in first.to_identifier.values()} == set(first.to_identifier)
    assert [str(c) for c in first.collisions] == [
        "my.srv.x renders as my_srv__x_2 (my_srv__x is taken by my-srv.x)",
        "my_srv.x renders as my_srv__x_3 (my_srv__x is taken by my-srv.x)",
    ]


def spec(server: str, tool: str, **schema: Any) -> ToolSpec:
    annotations = mcp_types.ToolAnnotations(read_only_hint=True, title="T")
    return ToolSpec.from_mcp(
        server,
        mcp_types.Tool(
            name=tool, description=f"{tool}\nmore", input_schema=schema or {"type": "object"}, annotations=annotations
        ),
    )


def test_registry_merges_servers_under_qualified_names() -> None:
    registry = ToolRegistry()
    registry.replace_server("time", [spec("time", "now"), spec("time", "now"), spec("time", "convert")])
    registry.replace_server("a.b", [spec("a.b", "c")])
    assert [s.name for s in registry] == ["a.b.c", "time.now", "time.convert"]
    assert registry.duplicates == {"time": ["now"]}
    assert registry.get("a.b.c").server == "a.b"
    assert registry.get_by_identifier("a_b__c").name == "a.b.c"
    now = registry.get("time.now")
    assert now.summary == "now" and now.annotations == {"readOnlyHint": True, "title": "T"} and now.title == "T"
    version = registry.version
    registry.replace_server("time", [spec("time", "now"), spec("time", "convert")])
    assert registry.version == version  # same tools: no change
    registry.remove_server("time")
    assert "time.now" not in registry and registry.version == version + 1
    with pytest.raises(UnknownToolError, match="no tool named 'time.now'"):
        registry.get("time.now")


def test_spec_keeps_original_schema_next_to_the_normalised_one() -> None:
    s = spec("srv", "t", **PYDANTIC_STYLE)
    assert s.original_schema == PYDANTIC_STYLE
    assert s.input_schema == normalise_schema(PYDANTIC_STYLE)
