"""The MCP side of a Responses request: its servers, its chat's options, and the run that reads its turn.

    tools = request_tools(host, body, conversation)                               # checked: 400, 403, 409
    run = await open_mcp_run(turns, tools, body, conversation, backend, renderer)  # a new turn, servers connected
    run = continue_mcp_run(live, body, conversation)                              # a turn that waited for us
    run = await reopen_mcp_run(turns, tools, body, conversation, paused, backend, renderer)  # one a restart lost
    outcome = await run.run(draft)

`{"type": "mcp", "server_label", "server_url", "headers", "allowed_tools"}` is a server of the request's
own (connected for its turn, when `[api] allow_ephemeral_mcp` is on); with no `server_url` the label names
a server of the host's mcp.json (our extension; `[api] allow_mcp_json_servers`). A new turn lists each
server's tools in an `mcp_list_tools` item, unless the conversation already holds one for that server.
A continued turn first hands the waiting calls their answers; when it ends, new user words in the same
request start the next turn of the same chat. A turn that waited on approvals when its server stopped is
reopened from its record (`mcp_host.api.responses_paused`) with the answering request's servers: a new chat,
the conversation restored, the waiting calls run again with the client's answers; then as a continued turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mcp_host.agent import ChatOptions
from mcp_host.api.completions import DEFAULT_MAX_TOKENS
from mcp_host.api.integrations import ConfiguredServer, EphemeralServer, RequestTools, ServerRef, ServerTools
from mcp_host.api.responses_history import chat_messages, split_last_user
from mcp_host.api.responses_live import FUNCTIONS, LiveTurn, LiveTurns
from mcp_host.api.responses_output import ResponseDraft, usage_json
from mcp_host.api.responses_paused import PausedTurn
from mcp_host.api.responses_requests import (
    FunctionCallOutputItem,
    FunctionTool,
    McpApprovalResponseItem,
    McpTool,
    NamedFunction,
    NamedMcpTool,
    ReasoningItem,
    ResponsesRequest,
)
from mcp_host.api.responses_turn import Conversation, TurnOutcome
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.errors import ApiError
from mcp_host.host import Host
from mcp_host.prompt.harmony import Effort, HarmonyOptions, HarmonyRenderer
from mcp_host.tools.names import identifier_for
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.schema import normalise_schema
from mcp_host.tools.spec import ToolSpec

MAX_PARALLEL_CALLS = 32  # a round's calls all run at once: a client's function waits while the others finish


def server_refs(body: ResponsesRequest) -> list[ServerRef]:
    """The request's MCP tools as the servers `RequestTools` connects or finds. Raises `ApiError` (400)."""
    refs: list[ServerRef] = []
    for index, tool in enumerate(body.tools):
        if not isinstance(tool, McpTool):
            continue
        param = f"tools.{index}"
        if tool.server_label == FUNCTIONS:
            raise ApiError(
                400, f"the label {FUNCTIONS!r} names the request's functions; label the server otherwise", param=param
            )
        names = tuple(tool.allowed_tools) if isinstance(tool.allowed_tools, list) else None
        if tool.server_url is None:
            refs.append(ConfiguredServer(tool.server_label, allowed_tools=names, param=param))
        else:
            headers = tool.request_headers()
            refs.append(EphemeralServer(tool.server_label, tool.server_url, headers, allowed_tools=names, param=param))
    return refs


def function_specs(tools: Sequence[FunctionTool]) -> list[ToolSpec]:
    """The client's functions as tools of the chat (origin `function`: the policy lets them run)."""
    specs = []
    for tool in tools:
        schema = tool.parameters or {"type": "object", "properties": {}}
        specs.append(
            ToolSpec(
                server=FUNCTIONS,
                tool=tool.name,
                description=tool.description or "",
                input_schema=normalise_schema(schema),
                original_schema=schema,
                origin="function",
            )
        )
    return specs


def chat_options(body: ResponsesRequest, host: Host) -> ChatOptions:
    choice = body.tool_choice
    required = None
    if isinstance(choice, NamedFunction):
        required = f"{FUNCTIONS}.{choice.name}"
    elif isinstance(choice, NamedMcpTool) and choice.name is not None:
        required = f"{choice.server_label}.{choice.name}"
    return ChatOptions(
        harmony=HarmonyOptions(
            reasoning_effort=body.effort or host.settings.prompt.reasoning_effort, instructions=body.instructions
        ),
        max_tokens_per_round=body.max_output_tokens or DEFAULT_MAX_TOKENS,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        seed=body.seed,
        required_tool=required,
        max_parallel_calls=MAX_PARALLEL_CALLS,
        plugins=(),  # the request's tools are the turn's only tools; no plugin's hooks run
    )


def listed_tools(server: ServerTools) -> list[dict[str, Any]]:
    """A server's offered tools as an `mcp_list_tools` item lists them."""
    return [
        {
            "name": spec.tool,
            "description": spec.description,
            "input_schema": spec.original_schema,
            "annotations": spec.annotations,
        }
        for spec in server.tools
    ]


def offered_tools(body: ResponsesRequest) -> Callable[[RequestTools], ToolRegistry]:
    """What the chat offers once the servers are connected: their tools as `allowed_tools` filters them (a
    `{"read_only": true}` filter needs the tools' annotations; a list of names `RequestTools` applies itself),
    and the client's functions."""
    rules = {tool.server_label: tool for tool in body.mcp_tools}

    def offered(tools: RequestTools) -> ToolRegistry:
        for index, server in enumerate(tools.servers):
            rule = rules[server.name]
            if rule.allowed_tools is None or isinstance(rule.allowed_tools, list):
                continue
            kept = [spec for spec in server.tools if rule.allows(spec.tool, spec.annotations)]
            tools.registry.replace_server(server.name, kept)
            tools.servers[index] = ServerTools(server.ref, tuple(kept))
        return tools.registry.view(extra=function_specs(body.function_tools))

    return offered


class McpRun:
    """One request's part of an MCP turn: listing tools, answering what waited, then reading the turn."""

    def __init__(
        self,
        live: LiveTurn,
        *,
        start: tuple[list[dict[str, Any]], str] | None,
        effort: Effort | None,
        listings: list[ServerTools] | None = None,
        answers: Conversation | None = None,
    ) -> None:
        self.live = live
        self.answers = answers  # what the waiting calls get when the run begins
        self.start = start  # (history, the user's words): a turn this request begins
        self.effort = effort
        self.listings = listings or []

    async def run(self, draft: ResponseDraft) -> TurnOutcome:
        if self.live.closing.is_set():  # deleted, or the server stops
            return TurnOutcome(status="failed", error="the turn was closed")
        for server in self.listings:
            await draft.mcp_list_tools(server.name, listed_tools(server))
        if self.answers is not None:
            self.live.answer(self.answers)
            self.answers = None
        if self.live.stream is None:
            assert self.start is not None, "a turn that is not waiting needs the user's words"
            self.live.start(*self.start, self.effort)
            self.start = None
        outcome = await self.live.run(draft)
        if self.start is not None and not self.live.waiting and outcome.status == "completed":
            self.live.start(*self.start, self.effort)  # the user's new words, after the turn that waited
            self.start = None
            following = await self.live.run(draft)
            following.usage = _added(outcome.usage, following.usage)
            outcome = following
        return outcome


def request_tools(host: Host, body: ResponsesRequest, conversation: Conversation) -> RequestTools:
    """The request's servers, checked before anything loads or connects. Raises `ApiError` (400, 403, 409)."""
    if split_last_user(chat_messages(conversation.items))[1] is None:
        if conversation.answered_calls or conversation.answered_approvals:
            raise ApiError(
                409,
                "the turn that waited for these answers is gone (it was answered already, waited too long, or the "
                "server restarted); send the conversation again with a new user message",
                param="previous_response_id",
                code="turn_expired",
            )
        raise ApiError(400, "with MCP tools, the input must end with a user message", param="input")
    return mcp_servers(host, body)


def mcp_servers(host: Host, body: ResponsesRequest) -> RequestTools:
    """The request's MCP tools as servers to connect. Raises `ApiError` (400, 403)."""
    settings = host.settings.api
    return RequestTools(
        host,
        server_refs(body),
        allow_configured=settings.allow_mcp_json_servers,
        allow_ephemeral=settings.allow_ephemeral_mcp,
    )


async def open_mcp_run(
    turns: LiveTurns,
    tools: RequestTools,
    body: ResponsesRequest,
    conversation: Conversation,
    backend: Backend | ChatBackend,
    renderer: HarmonyRenderer,
) -> McpRun:
    """A new turn with the request's servers connected. Raises `ApiError` (400, 502, 503)."""
    rules = {tool.server_label: tool for tool in body.mcp_tools}
    options = chat_options(body, turns.host)
    live = await turns.open(tools, offered_tools(body), backend, options, rules, renderer)
    try:
        return _new_run(live, body, conversation, tools)
    except BaseException:
        live.close()
        raise


def _new_run(live: LiveTurn, body: ResponsesRequest, conversation: Conversation, tools: RequestTools) -> McpRun:
    names = live.chat.tools.names.to_identifier

    def function_name(name: str) -> str:
        return names.get(f"{FUNCTIONS}.{name}") or identifier_for(FUNCTIONS, name)

    def mcp_name(label: str, tool: str) -> str:
        return names.get(f"{label}.{tool}") or identifier_for(label, tool)

    history, text = split_last_user(chat_messages(conversation.items, function_name=function_name, mcp_name=mcp_name))
    assert text is not None
    return McpRun(live, start=(history, text), effort=body.effort, listings=_unlisted(tools, conversation))


def _unlisted(tools: RequestTools, conversation: Conversation) -> list[ServerTools]:
    """The servers whose tools the conversation has not listed yet."""
    listed = {item.get("server_label") for item in conversation.items if item.get("type") == "mcp_list_tools"}
    return [server for server in tools.servers if server.name not in listed]


def continue_mcp_run(live: LiveTurn, body: ResponsesRequest, conversation: Conversation) -> McpRun:
    """The waiting turn, to be given its calls' answers; new user words start the next turn. Raises `ApiError`
    (400) for a waiting call with no answer."""
    live.check(conversation)
    return McpRun(live, start=_new_words(body), effort=body.effort, answers=conversation)


async def reopen_mcp_run(
    turns: LiveTurns,
    tools: RequestTools,
    body: ResponsesRequest,
    conversation: Conversation,
    paused: PausedTurn,
    backend: Backend | ChatBackend,
    renderer: HarmonyRenderer,
) -> McpRun:
    """The turn of `conversation`'s previous response, which a restart lost, in a new chat with the request's
    servers (`body`'s tools as `paused.tools_for` rules them): the calls it waited on run again, the approvals
    they ask for answered from `conversation`; new user words start the next turn. Raises `ApiError` (409: it
    cannot go on here, 400, 502, 503)."""
    rules = {tool.server_label: tool for tool in body.mcp_tools}
    options = paused.chat_options(chat_options(body, turns.host))
    live = await turns.open(tools, offered_tools(body), backend, options, rules, renderer)
    try:
        paused.restore(live, str(body.previous_response_id))
        live.resume(paused.call_ids, paused.approvals, conversation, paused.effort)
        return McpRun(live, start=_new_words(body), effort=body.effort, listings=_unlisted(tools, conversation))
    except BaseException:
        live.close()
        raise


def _new_words(body: ResponsesRequest) -> tuple[list[dict[str, Any]], str] | None:
    """(the messages before, the user's words) when the request goes on past its answers with new words."""
    answers = (FunctionCallOutputItem, McpApprovalResponseItem, ReasoningItem)
    rest = [item.model_dump(mode="json", exclude_none=True) for item in body.items if not isinstance(item, answers)]
    history, text = split_last_user(chat_messages(rest))
    return None if text is None else (history, text)


def _added(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    return usage_json(
        input_tokens=first["input_tokens"] + second["input_tokens"],
        cached_tokens=first["input_tokens_details"]["cached_tokens"] + second["input_tokens_details"]["cached_tokens"],
        output_tokens=first["output_tokens"] + second["output_tokens"],
        reasoning_tokens=first["output_tokens_details"]["reasoning_tokens"]
        + second["output_tokens_details"]["reasoning_tokens"],
    )
