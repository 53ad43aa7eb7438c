"""The terminal's side of a server's questions: elicitation forms, URL requests, and sampling requests shown readably.

The form reads each answer through an injected `Ask` (the terminal's prompt, or a script in tests) and
writes through `Say` (rich markup, one line each):

    answer = await fill_elicitation(event, ask=session.prompt_async, say=console.print)
    chat.answer_elicitation(event.elicitation_id, answer)

Ctrl-C (`KeyboardInterrupt`) or Ctrl-D (`EOFError`) while the form is open cancels the question, not
the program. A URL is shown, never opened. Everything a server wrote is shown through `shown()`:
markup escaped and terminal control characters replaced, so a server cannot restyle or spoof the prompt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal
from urllib.parse import urlsplit

from rich.markup import escape

from mcp_host.agent import ElicitationAnswer, ElicitationRequired
from mcp_host.errors import ElicitationInputError
from mcp_host.servers.elicitation import FormField, form_fields, validate_content

Ask = Callable[[str], Awaitable[str]]
Say = Callable[[str], None]
Action = Literal["accept", "decline", "cancel"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """Text with terminal control characters (escape sequences, bidi overrides) replaced; newlines and tabs kept."""
    return _CONTROL.sub("\ufffd", text)


def shown(text: str) -> str:
    """Server-written text made safe to print as rich markup: no markup, no terminal control characters."""
    return escape(printable(text))


async def fill_elicitation(event: ElicitationRequired, ask: Ask, say: Say) -> ElicitationAnswer:
    """Ask the user for what the server wants: a form's fields, or a visit to a URL."""
    try:
        if event.mode == "url":
            return await _visit(event, ask, say)
        return await _fill(event, ask, say)
    except (KeyboardInterrupt, EOFError):
        say("[yellow]cancelled the server's question[/yellow]")
        return ElicitationAnswer("cancel")


async def _choose(ask: Ask, say: Say, question: str) -> Action:
    while True:
        answer = (await ask(question)).strip().lower()
        if answer in ("a", "accept"):
            return "accept"
        if answer in ("d", "decline"):
            return "decline"
        if answer in ("c", "cancel"):
            return "cancel"
        say("[red]answer a (accept), d (decline) or c (cancel)[/red]")


async def _visit(event: ElicitationRequired, ask: Ask, say: Say) -> ElicitationAnswer:
    say(f"[bold]{shown(event.server)}[/bold] asks you to open a link: {shown(event.message)}")
    say(f"  [bold underline]{shown(event.url or '(no URL given)')}[/bold underline]")
    parts = urlsplit(event.url or "")
    if parts.hostname:
        say(
            f"  it leads to [bold]{shown(parts.hostname)}[/bold]"
            + ("" if parts.scheme == "https" else " [red](not https)[/red]")
        )
    if parts.username is not None or parts.password is not None:
        say("[bold red]  the link hides its real address behind a user name (user@host): be careful[/bold red]")
    say("[dim]  not opened for you: open it yourself if you trust it, then answer[/dim]")
    return ElicitationAnswer(await _choose(ask, say, "[a]ccept (I opened it) / [d]ecline / [c]ancel? "))


async def _fill(event: ElicitationRequired, ask: Ask, say: Say) -> ElicitationAnswer:
    schema = event.requested_schema or {}
    fields = form_fields(schema)
    say(f"[bold]{shown(event.server)}[/bold] asks: {shown(event.message)}")
    say(f"[dim]  a form of {len(fields)} field(s); Enter keeps a default, Ctrl-C cancels[/dim]")
    action = await _choose(ask, say, "[a]ccept and fill in / [d]ecline / [c]ancel? ")
    if action != "accept":
        return ElicitationAnswer(action)
    content: dict[str, Any] = {}
    for field in fields:
        value = await ask_field(field, schema, ask, say)
        if value is not None:
            content[field.name] = value
    while True:  # MCP: the user reviews (and may change) what is sent before it goes
        say("  [dim]about to send:[/dim]")
        for field in fields:
            shown_value = "•••" if field.secret and field.name in content else _value_text(content.get(field.name))
            say(f"    {shown(field.name)}: {shown(shown_value)}")
        choice = (await ask("[s]end / [e]dit a field / [d]ecline / [c]ancel? ")).strip().lower()
        if choice in ("s", "send", ""):
            return ElicitationAnswer("accept", content)
        if choice in ("d", "decline"):
            return ElicitationAnswer("decline")
        if choice in ("c", "cancel"):
            return ElicitationAnswer("cancel")
        if choice in ("e", "edit"):
            name = (await ask("  which field? ")).strip()
            chosen = next((f for f in fields if f.name == name or f.title == name), None)
            if chosen is None:
                say(f"[red]  no field {shown(name)!s}[/red]")
                continue
            value = await ask_field(chosen, schema, ask, say)
            if value is None:
                content.pop(chosen.name, None)
            else:
                content[chosen.name] = value
            continue
        say("[red]answer s (send), e (edit), d (decline) or c (cancel)[/red]")


def _value_text(value: Any) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


async def ask_field(field: FormField, schema: dict[str, Any], ask: Ask, say: Say) -> Any:
    """One field's answer, coerced and checked against its schema, asked again until it fits.

    Empty input keeps the default; None when the field is optional, has no default, and was left empty.
    """
    say(_heading(field))
    for number, (value, label) in enumerate(field.options, start=1):
        say(f"    {number}. {shown(label)}" + (f" [dim]({shown(str(value))})[/dim]" if label != str(value) else ""))
    if field.secret:
        say("[bold red]  this looks like a secret: servers must not ask for secrets in a form (MCP)[/bold red]")
    one_field = _single_field_schema(schema, field)
    while True:
        text = (await ask(f"  {field.name}{_hint(field)}: ")).strip()
        if not text:
            if field.default is not None:
                return field.default
            if not field.required:
                return None
            say(f"[red]  {shown(field.name)} is required[/red]")
            continue
        try:
            value = field.coerce(text)
            validate_content(one_field, {field.name: value})
        except ElicitationInputError as exc:
            say(f"[red]  {shown(str(exc))}[/red]")
            continue
        return value


def _heading(field: FormField) -> str:
    title = shown(field.title) + ("" if field.title == field.name else f" [dim]({shown(field.name)})[/dim]")
    mark = " [red]*[/red]" if field.required else ""
    description = f" — {shown(field.description)}" if field.description else ""
    return f"  [bold]{title}[/bold]{mark}{description}"


def _hint(field: FormField) -> str:
    """What the prompt line says about the answer it wants: its kind, and the default Enter keeps."""
    kinds = {
        "boolean": " (y/n)",
        "enum": " (number or value)",
        "multi": " (numbers or values, comma-separated)",
        "integer": " (whole number)",
        "number": " (number)",
    }
    hint = kinds.get(field.kind, f" ({field.format})" if field.format else "")
    if field.default is not None:
        hint += f" [{_default_text(field)}]"
    return hint


def _default_text(field: FormField) -> str:
    labels = {str(value): label for value, label in field.options}
    default = field.default
    if field.kind == "boolean":
        return "y" if default else "n"
    if isinstance(default, list):
        return ", ".join(labels.get(str(v), str(v)) for v in default)
    return labels.get(str(default), str(default))


def _single_field_schema(schema: dict[str, Any], field: FormField) -> dict[str, Any]:
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    return {"type": "object", "properties": {field.name: (properties or {}).get(field.name, {})}}


def sampling_lines(server: str, request: dict[str, Any] | str) -> list[str]:
    """A sampling request (`sampling/createMessage` params) as markup lines a person can judge."""
    lines = [f"[bold]{shown(server)}[/bold] asks the model to write a message (sampling):"]
    if not isinstance(request, dict):
        return [*lines, f"  {shown(request)}"]
    if request.get("systemPrompt"):
        lines.append(f"  [dim]system:[/dim] {shown(str(request['systemPrompt']))}")
    for message in request.get("messages") or []:
        if isinstance(message, dict):
            lines.append(f"  [dim]{shown(str(message.get('role', '?')))}:[/dim] {shown(_content_text(message))}")
    details = [
        f"{key}: {request[key]}"
        for key in ("maxTokens", "temperature", "includeContext", "stopSequences")
        if request.get(key) is not None
    ]
    if details:
        lines.append(f"  [dim]{shown(', '.join(details))}[/dim]")
    return lines


def _content_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    blocks = content if isinstance(content, list) else [content]
    parts = []
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict):
            parts.append(f"[{block.get('type', 'unknown')} content]")
        else:
            parts.append(json.dumps(block, ensure_ascii=False))
    return " ".join(parts)
