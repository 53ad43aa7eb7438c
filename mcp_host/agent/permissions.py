"""Permission policies, approvals that persist, and the audit log.

    permissions = Permissions.load(settings_path)
    verdict = permissions.verdict(spec)           # allow / ask / deny, with the reason
    permissions.remember(spec)                    # an "always" answer, saved beside the settings TOML

Defaults: `ask` for the python tool, for tools annotated `destructiveHint`, and for tools with no
annotations; tools annotated `readOnlyHint` run without asking only when `allow_read_only` is set
(annotations are the server's claim, not a guarantee). An "always" answer is keyed by server, tool
and a fingerprint of the tool's description, schema and annotations, so a tool that changes asks again.

The settings TOML is only read. "Always" answers go to their own file beside it
(`settings.approvals.json`, see `mcp_host.config.approvals`), which every host sharing the settings
reads at each check and changes under a lock; answers that earlier versions wrote into the TOML's
`[permissions] always` still count.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcp_host.config.approvals import AlwaysAllowed, ApprovalStore, approvals_path
from mcp_host.config.settings import HostSettings, Policy, load_settings
from mcp_host.errors import ConfigError
from mcp_host.tools.spec import ToolSpec

logger = logging.getLogger(__name__)


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
    """The policy in force (from the settings TOML) and the "always" answers (in their own file).

    `approvals` defaults to the file beside `settings_path`; with neither, answers last as long as the object.
    """

    def __init__(
        self, settings: HostSettings, settings_path: Path | None = None, *, approvals: ApprovalStore | None = None
    ) -> None:
        self._settings = settings
        self.settings_path = settings_path
        if approvals is None and settings_path is not None:
            approvals = ApprovalStore(approvals_path(settings_path))
        self.approvals = approvals
        self._unsaved: list[AlwaysAllowed] = []  # answers no file holds: none configured, or it failed
        self._must_ask: Callable[[ToolSpec], str | None] | None = None

    @classmethod
    def load(cls, settings_path: Path) -> Permissions:
        return cls(load_settings(settings_path), settings_path)

    @property
    def policy(self) -> Any:
        return self._settings.permissions

    def asking_also(self, must_ask: Callable[[ToolSpec], str | None]) -> Permissions:
        """This policy, but asking about the calls it would allow where `must_ask(spec)` gives a reason (a client
        that wants to approve every call of a tool, say). What the policy denies stays denied; "always" answers
        are shared with this object."""
        stricter = copy.copy(self)
        stricter._must_ask = must_ask
        return stricter

    def verdict(self, spec: ToolSpec) -> Verdict:
        verdict = self._policy_verdict(spec)
        if verdict.policy == "allow" and self._must_ask is not None:
            reason = self._must_ask(spec)
            if reason is not None:
                return Verdict("ask", reason)
        return verdict

    def _policy_verdict(self, spec: ToolSpec) -> Verdict:
        rules = self._settings.permissions
        if spec.name in rules.tools:
            return Verdict(rules.tools[spec.name], f"the policy for {spec.name} says {rules.tools[spec.name]}")
        if spec.server in rules.servers and not is_python_tool(spec):
            return Verdict(rules.servers[spec.server], f"the policy for server {spec.server} says so")
        if spec.origin == "function":
            return Verdict("allow", "the application passed this function for the turn")
        if spec.unsandboxed_code:
            return Verdict("ask", "it runs code outside any sandbox, so it asks every time")
        if self.is_always_allowed(spec):
            return Verdict("allow", "always allowed earlier")
        if is_python_tool(spec):
            return Verdict("ask", "it runs code")
        annotations = spec.annotations or {}
        if annotations.get("destructiveHint"):
            return Verdict("ask", "the server says it is destructive")
        if annotations.get("readOnlyHint") and rules.allow_read_only:
            if annotations.get("openWorldHint"):  # it reads the world and can carry data out in its arguments
                return Verdict("ask", "it reaches the outside world (open-world), so allow_read_only does not cover it")
            return Verdict("allow", "read-only tools are allowed by the settings")
        if not annotations:
            return Verdict("ask", "the server did not describe what it does (no annotations)")
        return Verdict("ask", "tools ask before they run unless allowed")

    def sampling_verdict(self, spec: ToolSpec) -> Verdict:
        """May `spec.server` sample the chat's model? Only `[permissions.sampling]` or an "always" answer say yes."""
        rules = self._settings.permissions.sampling
        if spec.server in rules:
            return Verdict(rules[spec.server], f"the sampling policy for {spec.server} says {rules[spec.server]}")
        if self.is_always_allowed(spec):
            return Verdict("allow", "always allowed earlier")
        return Verdict("ask", f"{spec.server} asks the model to write a message (sampling)")

    def is_always_allowed(self, spec: ToolSpec) -> bool:
        wanted = AlwaysAllowed(server=spec.server, tool=spec.tool, fingerprint=fingerprint(spec))
        if wanted in self._settings.permissions.always or wanted in self._unsaved:
            return True
        return self.approvals is not None and self.approvals.contains(wanted)

    def remember(self, spec: ToolSpec) -> None:
        """Record an "always allow" for this exact version of the tool, in the approvals file when there is one.

        A file that cannot be written is logged; the answer then holds until this object goes away.
        """
        if spec.unsandboxed_code:
            logger.warning("%s runs code outside any sandbox: allowed this once, not always", spec.name)
            return
        entry = AlwaysAllowed(server=spec.server, tool=spec.tool, fingerprint=fingerprint(spec))
        self._unsaved = [a for a in self._unsaved if (a.server, a.tool) != (spec.server, spec.tool)]
        if self.approvals is not None:
            try:
                self.approvals.add(entry)
                return
            except ConfigError as exc:
                logger.warning("%s; the answer for %s holds until the host stops", exc, spec.name)
        self._unsaved.append(entry)


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
