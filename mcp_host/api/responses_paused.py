"""A Responses turn that waits on approvals, as data: what a restarted server needs to go on with it.

    paused = PausedTurn.of(live, expires_at=time.time() + idle_expiry_s)   # None unless it waits on approvals alone
    record["paused"] = paused.to_json()                  # in the response's record (`StoredResponse.paused`)
    paused = PausedTurn.from_json(record["paused"])
    ruled = paused.tools_for(body, response_id)          # the answering request's tools: ApiError 400
    paused.restore(live)                                 # into a new turn's chat: ApiError 409

A record keeps the chat's snapshot (`Chat.snapshot()`: the conversation, and the round whose calls wait to run),
the approval request ids with the chat's ids of their calls, the round's calls (tool, server, arguments), the
model, the chat's generation settings, and the request's MCP tools (their rules: `allowed_tools`,
`require_approval`) without headers or tokens. Secrets are never stored: the request that answers the
approvals sends its tools again, as OpenAI's approval flow does, and their headers connect the servers. A
server the turn had keeps the turn's rules, as it would in memory; the servers its waiting calls run on must
come again, at the same URL. A turn waiting on a client's function call is not kept: that call runs beside the
round's other calls, which a rebuilt turn would run a second time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any, get_args

from mcp_host.agent import ChatOptions
from mcp_host.api.responses_live import LiveTurn
from mcp_host.api.responses_requests import McpTool, ResponsesRequest
from mcp_host.errors import ApiError
from mcp_host.prompt.harmony import Effort

RULE_FIELDS = {"type", "server_label", "server_url", "allowed_tools", "require_approval", "server_description"}
MCP_JSON = "the host's mcp.json"


@dataclass(frozen=True)
class WaitingCall:
    """A call of the round the turn stopped in, to run again when it goes on."""

    call_id: str  # the chat's
    tool: str  # qualified: `server.tool`
    server: str | None  # the request's server label; None for a client's function or a tool of no server
    arguments: dict[str, Any] | str


@dataclass(frozen=True)
class PausedTurn:
    """One turn waiting on approvals (see the module's docstring)."""

    model: str
    snapshot: dict[str, Any]
    approvals: dict[str, str]  # approval request id -> the chat's call id
    calls: list[WaitingCall]
    rules: dict[str, McpTool]  # by server label, without headers or tokens
    settings: dict[str, Any]  # the chat's generation settings
    effort: Effort | None  # the turn's reasoning effort
    expires_at: float  # Unix time: a turn waiting longer is gone, as a live one is closed

    @classmethod
    def of(cls, live: LiveTurn, *, expires_at: float) -> PausedTurn | None:
        """`live` as data, while it waits on approvals alone; None when it waits on anything else."""
        waiting = live.approvals_only()
        if waiting is None:
            return None
        approvals, created = waiting
        calls = []
        for call in created:
            provider = live.tools.provider(call.tool)
            calls.append(WaitingCall(call.call_id, call.tool, provider.server if provider else None, call.arguments))
        options = live.chat.options
        settings = {
            "reasoning_effort": options.harmony.reasoning_effort,
            "instructions": options.harmony.instructions,
            "start_date": options.harmony.start_date,
            "max_tokens_per_round": options.max_tokens_per_round,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "seed": options.seed,
            "required_tool": options.required_tool,
        }
        rules = {label: _without_secrets(rule) for label, rule in live.rules.items()}
        return cls(live.model, live.chat.snapshot(), approvals, calls, rules, settings, live.effort, expires_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "snapshot": self.snapshot,
            "approvals": self.approvals,
            "calls": [asdict(call) for call in self.calls],
            "rules": {label: _rule_json(rule) for label, rule in self.rules.items()},
            "settings": self.settings,
            "effort": self.effort,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PausedTurn:
        effort = data.get("effort")
        return cls(
            model=str(data["model"]),
            snapshot=dict(data["snapshot"]),
            approvals={str(key): str(value) for key, value in data["approvals"].items()},
            calls=[WaitingCall(**call) for call in data["calls"]],
            rules={label: McpTool.model_validate(rule) for label, rule in data["rules"].items()},
            settings=dict(data["settings"]),
            effort=effort if effort in get_args(Effort) else None,
            expires_at=float(data["expires_at"]),
        )

    @property
    def call_ids(self) -> list[str]:
        return [call.call_id for call in self.calls]

    @property
    def servers(self) -> list[str]:
        """The labels of the servers the waiting calls run on."""
        return sorted({call.server for call in self.calls if call.server is not None and call.server in self.rules})

    def expired(self) -> bool:
        return time.time() >= self.expires_at

    def tools_for(self, body: ResponsesRequest, response_id: str) -> ResponsesRequest:
        """`body` with a server the turn had under the turn's rules (the request's headers connect it).

        Raises `ApiError` (400) when the servers the waiting calls run on are not all there, at their URLs.
        """
        given = {tool.server_label: (index, tool) for index, tool in enumerate(body.tools) if isinstance(tool, McpTool)}
        for label in self.servers:
            where = self.rules[label].server_url or MCP_JSON
            if label not in given:
                raise ApiError(
                    400,
                    f"the turn of {response_id} waits to call the MCP server {label!r} ({where}), and this server "
                    "restarted since: send that server again in `tools`, as the request that began the turn did "
                    "(its headers are not stored)",
                    param="tools",
                )
            index, tool = given[label]
            if tool.server_url != self.rules[label].server_url:
                raise ApiError(
                    400,
                    f"the turn of {response_id} waits to call the MCP server {label!r} at {where}, "
                    f"not at {tool.server_url or MCP_JSON}",
                    param=f"tools.{index}",
                )
        tools = [self._ruled(tool) if isinstance(tool, McpTool) else tool for tool in body.tools]
        return body.model_copy(update={"tools": tools})

    def _ruled(self, tool: McpTool) -> McpTool:
        rule = self.rules.get(tool.server_label)
        if rule is None or rule.server_url != tool.server_url:
            return tool  # a server the turn did not have: the request's own rules
        return rule.model_copy(update={"headers": tool.headers, "authorization": tool.authorization})

    def chat_options(self, base: ChatOptions) -> ChatOptions:
        """`base` (the answering request's options) with the turn's own generation settings."""
        settings = self.settings
        harmony = replace(
            base.harmony,
            reasoning_effort=settings["reasoning_effort"],
            instructions=settings["instructions"],
            start_date=settings["start_date"],
        )
        return replace(
            base,
            harmony=harmony,
            max_tokens_per_round=int(settings["max_tokens_per_round"]),
            temperature=float(settings["temperature"]),
            top_p=float(settings["top_p"]),
            seed=settings["seed"],
            required_tool=settings["required_tool"],
        )

    def restore(self, live: LiveTurn, response_id: str) -> None:
        """Put the conversation into `live`'s new chat. Raises `ApiError` (409) when it cannot go on there."""
        missing = [call.tool for call in self.calls if call.server is not None and call.tool not in live.chat.tools]
        if missing:
            raise ApiError(
                409,
                f"the turn of {response_id} waits to call {missing[0]}, which its server no longer offers; "
                "send the conversation again with a new user message",
                param="previous_response_id",
                code="turn_expired",
            )
        try:
            live.chat.restore(self.snapshot)
        except ValueError as exc:
            raise ApiError(
                409,
                f"the turn of {response_id} cannot go on with the model {self.model!r} as it is loaded now: {exc}",
                param="previous_response_id",
                code="turn_expired",
            ) from exc


def _rule_json(rule: McpTool) -> dict[str, Any]:
    return rule.model_dump(mode="json", include=RULE_FIELDS, exclude_none=True)


def _without_secrets(rule: McpTool) -> McpTool:
    return McpTool.model_validate(_rule_json(rule))
