"""Permission policies, approvals that persist, and the audit log.

    permissions = Permissions.load(settings_path)
    verdict = permissions.verdict(spec)           # allow / ask / deny, with the reason
    permissions.remember(spec)                    # an "always" answer, saved to the settings TOML

Defaults: `ask` for the python tool, for tools annotated `destructiveHint`, and for tools with no
annotations; tools annotated `readOnlyHint` run without asking only when `allow_read_only` is set
(annotations are the server's claim, not a guarantee). An "always" answer is keyed by server, tool
and a fingerprint of the tool's description, schema and annotations, so a tool that changes asks again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcp_host.config.settings import AlwaysAllowed, HostSettings, Policy, load_settings, save_settings
from mcp_host.tools.spec import ToolSpec


@dataclass(frozen=True)
class Verdict:
    policy: Policy
    reason: str


@dataclass(frozen=True)
class ApprovalAnswer:
    """The user's answer to `approval.required`: allow once, always allow, or deny (with a reason the model reads).

    `arguments`, when given, replaces the model's arguments (allow with edited arguments).
    """

    decision: Literal["allow", "always", "deny"]
    reason: str | None = None
    arguments: dict[str, Any] | None = None


def fingerprint(spec: ToolSpec) -> str:
    """A short hash of what the user approved: the tool's description, input schema and annotations."""
    material = json.dumps(
        {"description": spec.description, "schema": spec.original_schema, "annotations": spec.annotations},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def is_python_tool(spec: ToolSpec) -> bool:
    return spec.origin == "native" and spec.tool == "python"


class Permissions:
    """The policy in force, and the "always" answers, persisted in the host's settings TOML."""

    def __init__(self, settings: HostSettings, settings_path: Path | None = None) -> None:
        self._settings = settings
        self.settings_path = settings_path

    @classmethod
    def load(cls, settings_path: Path) -> Permissions:
        return cls(load_settings(settings_path), settings_path)

    @property
    def policy(self) -> Any:
        return self._settings.permissions

    def verdict(self, spec: ToolSpec) -> Verdict:
        rules = self._settings.permissions
        if spec.name in rules.tools:
            return Verdict(rules.tools[spec.name], f"the policy for {spec.name} says {rules.tools[spec.name]}")
        if spec.server in rules.servers and not is_python_tool(spec):
            return Verdict(rules.servers[spec.server], f"the policy for server {spec.server} says so")
        if self.is_always_allowed(spec):
            return Verdict("allow", "always allowed earlier")
        if is_python_tool(spec):
            return Verdict("ask", "it runs code")
        annotations = spec.annotations or {}
        if annotations.get("destructiveHint"):
            return Verdict("ask", "the server says it is destructive")
        if annotations.get("readOnlyHint") and rules.allow_read_only:
            return Verdict("allow", "read-only tools are allowed by the settings")
        if not annotations:
            return Verdict("ask", "the server did not describe what it does (no annotations)")
        return Verdict("ask", "tools ask before they run unless allowed")

    def is_always_allowed(self, spec: ToolSpec) -> bool:
        wanted = AlwaysAllowed(server=spec.server, tool=spec.tool, fingerprint=fingerprint(spec))
        return wanted in self._settings.permissions.always

    def remember(self, spec: ToolSpec) -> None:
        """Record an "always allow" for this exact version of the tool, and save it when there is a settings file."""
        entry = AlwaysAllowed(server=spec.server, tool=spec.tool, fingerprint=fingerprint(spec))
        rules = self._settings.permissions
        kept = [a for a in rules.always if (a.server, a.tool) != (spec.server, spec.tool)]
        permissions = rules.model_copy(update={"always": [*kept, entry]})
        self._settings = self._settings.model_copy(update={"permissions": permissions})
        if self.settings_path is not None:
            save_settings(self.settings_path, self._settings)


class AuditLog:
    """Every decision and every call, as JSON lines: names, sizes and outcomes, never argument values."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def record(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        entry = {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "event": event,
            **fields,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def describe_arguments(arguments: dict[str, Any] | str) -> dict[str, Any]:
    """What the audit log keeps of arguments: their keys and size, not their values (which may be secrets)."""
    if isinstance(arguments, str):
        return {"argument_chars": len(arguments)}
    return {"argument_keys": sorted(arguments), "argument_chars": len(json.dumps(arguments, ensure_ascii=False))}
