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
import re
from dataclasses import dataclass
from typing import Any

from mcp_host.errors import ElicitationInputError

Content = dict[str, str | int | float | bool | list[str] | None]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class FormField:
    """One field of an elicitation form."""

    name: str
    kind: str  # string, number, integer, boolean, enum, multi
    title: str
    description: str
    required: bool
    default: Any = None
    options: tuple[tuple[str, str], ...] = ()  # (value, label) for enum and multi
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

    def _option(self, text: str) -> str:
        text = text.strip()
        for index, (value, label) in enumerate(self.options, start=1):
            if text in (value, label, str(index)):
                return value
        choices = ", ".join(value for value, _ in self.options)
        raise ElicitationInputError(f"{self.name}: {text!r} is not one of {choices}")


def _options(prop: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    if isinstance(prop.get("enum"), list):
        names = prop.get("enumNames") if isinstance(prop.get("enumNames"), list) else None
        values = [str(v) for v in prop["enum"]]
        labels = [str(n) for n in names] if names and len(names) == len(values) else values
        return tuple(zip(values, labels, strict=True))
    for key in ("oneOf", "anyOf"):
        if isinstance(prop.get(key), list):
            return tuple(
                (str(item["const"]), str(item.get("title", item["const"])))
                for item in prop[key]
                if isinstance(item, dict) and "const" in item
            )
    return ()


def form_fields(schema: dict[str, Any]) -> list[FormField]:
    """The fields of a requested schema, in its order."""
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = set(schema.get("required") or [])
    fields = []
    for name, prop in (properties or {}).items():
        if not isinstance(prop, dict):
            continue
        kind = str(prop.get("type", "string"))
        options = _options(prop)
        if kind == "array":
            items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
            kind, options = "multi", _options(items or {})
        elif options:
            kind = "enum"
        fields.append(
            FormField(
                name=name,
                kind=kind,
                title=str(prop.get("title") or name),
                description=str(prop.get("description") or ""),
                required=name in required,
                default=prop.get("default"),
                options=options,
                format=prop.get("format"),
                minimum=prop.get("minimum"),
                maximum=prop.get("maximum"),
                min_length=prop.get("minLength"),
                max_length=prop.get("maxLength"),
            )
        )
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
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if kind == "integer" and not float(value).is_integer():
            return "must be a whole number"
        if field.minimum is not None and value < field.minimum:
            return f"must be at least {field.minimum:g}"
        if field.maximum is not None and value > field.maximum:
            return f"must be at most {field.maximum:g}"
        return None
    allowed = {option for option, _ in field.options}
    if kind == "multi":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "must be a list of choices"
        wrong = [v for v in value if allowed and v not in allowed]
        return f"{wrong} not among {sorted(allowed)}" if wrong else None
    if not isinstance(value, str):
        return "must be text"
    if kind == "enum":
        return None if value in allowed else f"must be one of {', '.join(sorted(allowed))}"
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
