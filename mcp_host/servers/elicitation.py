"""Elicitation forms: the fields a server's requested schema describes, their defaults, and validation.

MCP restricts a form to a flat object of primitive fields (string with an optional format, number,
integer, boolean, single-choice enum, multi-choice array). Every front end builds its form from
`form_fields()`, fills what the user left empty with `apply_defaults()`, and checks the answer with
`validate_content()` before it goes back to the server.

    fields = form_fields(params.requested_schema)
    content = validate_content(params.requested_schema, apply_defaults(params.requested_schema, answers))
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass, replace
from typing import Any

from mcp_host.errors import ElicitationInputError

Content = dict[str, str | int | float | bool | list[str] | None]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KINDS = ("string", "number", "integer", "boolean", "array")
_SECRET = re.compile(r"pass(word|phrase)?|secret|token|api[ _-]?key|private[ _-]?key|pin\b|credit[ _-]?card|cvv", re.I)
MAX_FIELDS = 200


@dataclass(frozen=True)
class FormField:
    """One field of an elicitation form."""

    name: str
    kind: str  # string, number, integer, boolean, enum, multi
    title: str
    description: str
    required: bool
    default: Any = None
    options: tuple[tuple[Any, str], ...] = ()  # (value as the schema has it, label) for enum and multi
    format: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None

    def coerce(self, text: str) -> Any:
        """Read a typed-in answer; raises `ElicitationInputError` when it is not of this field's kind."""
        text = text.strip()
        if self.kind == "boolean":
            lowered = text.lower()
            if lowered in ("y", "yes", "true", "1", "on"):
                return True
            if lowered in ("n", "no", "false", "0", "off"):
                return False
            raise ElicitationInputError(f"{self.name}: answer yes or no")
        if self.kind in ("number", "integer"):
            try:
                number = float(text)
            except ValueError:
                raise ElicitationInputError(f"{self.name}: {text!r} is not a number") from None
            if not math.isfinite(number):
                raise ElicitationInputError(f"{self.name}: {text!r} is not a finite number")
            if self.kind == "integer":
                if not number.is_integer():
                    raise ElicitationInputError(f"{self.name}: {text!r} is not a whole number")
                return int(number)
            return number
        if self.kind == "enum":
            return self._option(text)
        if self.kind == "multi":
            return [self._option(part) for part in text.split(",") if part.strip()]
        return text

    @property
    def secret(self) -> bool:
        """The field looks like it asks for a secret (a password, a key), which servers must not ask in a form."""
        return bool(_SECRET.search(f"{self.name} {self.title}"))

    def _option(self, text: str) -> Any:
        text = text.strip()
        for index, (value, label) in enumerate(self.options, start=1):
            if text in (str(value), label, str(index)):
                return value
        choices = ", ".join(str(value) for value, _ in self.options)
        raise ElicitationInputError(f"{self.name}: {text!r} is not one of {choices}")


def _options(prop: dict[str, Any]) -> tuple[tuple[Any, str], ...]:
    if isinstance(prop.get("enum"), list):
        names = prop.get("enumNames") if isinstance(prop.get("enumNames"), list) else None
        values = [v for v in prop["enum"] if isinstance(v, str | int | float) and not isinstance(v, bool)]
        labels = [str(n) for n in names] if names and len(names) == len(values) else [str(v) for v in values]
        return tuple(zip(values, labels, strict=True))
    for key in ("oneOf", "anyOf"):
        if isinstance(prop.get(key), list):
            return tuple(
                (item["const"], str(item.get("title", item["const"])))
                for item in prop[key]
                if isinstance(item, dict) and isinstance(item.get("const"), str | int | float)
            )
    return ()


def _primitive(value: Any) -> bool:
    if isinstance(value, list):
        return len(value) <= MAX_FIELDS and all(isinstance(v, str | int | float | bool) for v in value)
    return isinstance(value, str | int | float | bool)


def _items(prop: dict[str, Any]) -> dict[str, Any]:
    items = prop.get("items")
    return items if isinstance(items, dict) else {}


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def schema_problems(schema: Any) -> list[str]:
    """Why a requested schema is not a form MCP allows (a flat object of primitive fields); [] when it is."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties", {}), dict):
        return ["the schema is not an object with properties"]
    properties: dict[str, Any] = schema.get("properties", {})
    problems = []
    if len(properties) > MAX_FIELDS:
        problems.append(f"{len(properties)} fields (at most {MAX_FIELDS})")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        problems.append("'required' is not a list of field names")
    for name, prop in list(properties.items())[:MAX_FIELDS]:
        if not isinstance(prop, dict):
            problems.append(f"{name}: not a field description")
            continue
        kind = prop.get("type", "string")
        if kind not in _KINDS:
            problems.append(f"{name}: type {kind!r} is not a primitive (string, number, integer, boolean, array)")
        elif (kind == "array" or "enum" in prop) and not _options(_items(prop) if kind == "array" else prop):
            problems.append(f"{name}: a choice with no options")
        default = prop.get("default")
        if default is not None and not _primitive(default):
            problems.append(f"{name}: the default is not a plain value")
        for key in ("minimum", "maximum"):
            if key in prop and _number(prop[key]) is None:
                problems.append(f"{name}: {key} is not a number")
        for key in ("minLength", "maxLength"):
            if key in prop and _count(prop[key]) is None:
                problems.append(f"{name}: {key} is not a count")
    return problems


def form_fields(schema: dict[str, Any]) -> list[FormField]:
    """The fields of a requested schema, in its order; what `schema_problems` names is left out or ignored."""
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required_list = schema.get("required")
    required = {r for r in required_list if isinstance(r, str)} if isinstance(required_list, list) else set()
    fields = []
    for name, prop in list((properties or {}).items())[:MAX_FIELDS]:
        if not isinstance(prop, dict) or prop.get("type", "string") not in _KINDS:
            continue
        kind = str(prop.get("type", "string"))
        options = _options(prop)
        if kind == "array":
            items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
            kind, options = "multi", _options(items or {})
        elif options:
            kind = "enum"
        fmt = prop.get("format")
        field = FormField(
            name=str(name),
            kind=kind,
            title=str(prop.get("title") or name),
            description=str(prop.get("description") or ""),
            required=name in required,
            options=options,
            format=fmt if isinstance(fmt, str) else None,
            minimum=_number(prop.get("minimum")),
            maximum=_number(prop.get("maximum")),
            min_length=_count(prop.get("minLength")),
            max_length=_count(prop.get("maxLength")),
        )
        default = prop.get("default")
        if default is not None and _check(field, default) is None:  # a default that does not fit is dropped
            field = replace(field, default=default)
        fields.append(field)
    return fields


def apply_defaults(schema: dict[str, Any], content: dict[str, Any] | None) -> dict[str, Any]:
    """The answer with every field the user left out filled from its schema default."""
    filled = dict(content or {})
    for field in form_fields(schema):
        if filled.get(field.name) is None and field.default is not None:
            filled[field.name] = field.default
    return filled


def _check(field: FormField, value: Any) -> str | None:
    kind = field.kind
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return "must be a finite number"
        if kind == "integer" and not float(value).is_integer():
            return "must be a whole number"
        if field.minimum is not None and value < field.minimum:
            return f"must be at least {field.minimum:g}"
        if field.maximum is not None and value > field.maximum:
            return f"must be at most {field.maximum:g}"
        return None
    allowed = [option for option, _ in field.options]
    if kind == "multi":
        if not isinstance(value, list):
            return "must be a list of choices"
        wrong = [v for v in value if v not in allowed]
        return f"{wrong} not among {allowed}" if wrong else None
    if kind == "enum":
        return (
            None if value in allowed and type(value) is not bool else f"must be one of {', '.join(map(str, allowed))}"
        )
    if not isinstance(value, str):
        return "must be text"
    if field.min_length is not None and len(value) < field.min_length:
        return f"must be at least {field.min_length} characters"
    if field.max_length is not None and len(value) > field.max_length:
        return f"must be at most {field.max_length} characters"
    return _check_format(field.format, value)


def _check_format(fmt: str | None, value: str) -> str | None:
    if fmt == "email" and not _EMAIL.match(value):
        return "must be an email address"
    if fmt == "uri" and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$", value):
        return "must be a URI"
    try:
        if fmt == "date":
            datetime.date.fromisoformat(value)
        elif fmt == "date-time":
            datetime.datetime.fromisoformat(value)
    except ValueError:
        return f"must be an ISO {fmt}"
    return None


def validate_content(schema: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    """The answer, checked against the schema: required fields present, kinds, choices, bounds, formats.

    Raises `ElicitationInputError` listing every problem; fields the schema does not name are dropped.
    """
    problems = []
    checked: dict[str, Any] = {}
    for field in form_fields(schema):
        value = content.get(field.name)
        if value is None:
            if field.required:
                problems.append(f"{field.name}: required")
            continue
        problem = _check(field, value)
        if problem:
            problems.append(f"{field.name}: {problem}")
        checked[field.name] = value
    if problems:
        raise ElicitationInputError("; ".join(problems))
    return checked
