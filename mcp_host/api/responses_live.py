"""Responses turns with MCP tools: the host's loop, kept alive while it waits for the client.

    turns = LiveTurns(host)                                # an async resource: the app's lifespan enters it
    live = await turns.open(tools, backend, options, functions, rules)   # connects the request's servers
    live.start(history, text, effort)
    outcome = await live.run(draft)                        # until the turn ends, or waits for the client
    live.resume(call_ids, approvals, conversation, effort)  # or: a restored chat's turn goes on (a restart)

A turn runs in a chat (`RequestTools.chat`'s tools plus the client's functions, as `app.<name>`) held
open by a keeper task, like a session's. MCP calls run here under the request's `require_approval`:
the host's policy asks (its default for tools it knows nothing about), and the turn answers at once
for `never` tools, or pauses with an `mcp_approval_request` item for the rest. `never` waives the policy's
asking for the request's own servers; for the host's mcp.json servers only where the settings allow
unattended calls (else the call is denied, its `mcp_call` saying why). A tool the request wants approved
is asked about even where the host's policy would let it run (`Permissions.asking_also`); what the policy
denies stays denied. A call of a client's
function pauses the turn with a `function_call` item: the call waits, in the chat, for its
`function_call_output`. A paused turn is continued by the next request naming its response
(`previous_response_id`): `answer()` gives the waiting calls their answers and `run()` goes on where the
turn stopped. A turn lost with its server is rebuilt in a new one (`mcp_host.api.responses_paused`): its chat
restored, `resume()` runs the calls it waited on again, and the approvals they ask for again get the
client's answers at once. A paused turn nobody continues for `idle_expiry_s` is closed. The chat counts a turn's tokens
when it ends, so a response that leaves its turn waiting reports no usage, and the one that ends it reports
the whole turn's.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import AsyncResource, TaskGroup, TaskStatus

from mcp_host.agent import (
    ApprovalAnswer,
    ApprovalRequired,
    Chat,
    ChatOptions,
    ElicitationAnswer,
    ElicitationRequired,
    ErrorEvent,
    Event,
    MessageDelta,
    ReasoningDelta,
    ToolCallCreated,
    ToolCallProgress,
    ToolCallResult,
    TurnCompleted,
)
from mcp_host.agent.turn_stream import TurnStream
from mcp_host.api.integrations import RequestTools
from mcp_host.api.responses_output import ResponseDraft, usage_json
from mcp_host.api.responses_requests import McpApprovalResponseItem, McpTool
from mcp_host.api.responses_turn import Conversation, TurnOutcome, count_tokens
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.errors import ApiError
from mcp_host.host import Host
from mcp_host.prompt.harmony import Effort, HarmonyRenderer
from mcp_host.servers.asks import ServerAsks
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolResult, ToolSpec

logger = logging.getLogger(__name__)

FUNCTIONS = "app"  # the client's functions are offered as `app.<name>`, like the functions a library turn passes
IDLE_EXPIRY_S = 3600.0
NO_SAMPLING = "the Responses API has no way to ask the client about sampling"
NOT_WAIVED = (
    "the host's policy asks before {tool} runs, and a request's require_approval 'never' does not waive that for "
    'the host\'s own servers (unless its settings say [api] unattended_calls = "allow"); ask for approval instead'
)


@dataclass
class _Waiter:
    """A client's function call waiting in the chat for its output."""

    token: str
    answered: anyio.Event
    output: str = ""
    call_id: str | None = None  # the client's id, once the call is announced


def _arguments(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


class LiveTurn:
    """One chat with the request's tools, between requests (see the module's docstring)."""

    def __init__(
        self,
        model: str,
        tools: RequestTools,
        rules: dict[str, McpTool],
        renderer: HarmonyRenderer,
        *,
        unattended: bool = False,
    ) -> None:
        self.model = model
        self.unattended = unattended  # `never` waives the host policy's asking for mcp.json servers too
        self._chat: Chat | None = None  # the keeper opens it with `call_tool` as its caller
        self.tools = tools
        self.rules = rules  # by server label
        self.renderer = renderer
        self.busy = True  # a request holds the turn (the one that opens it, then each that continues it)
        self.closing = anyio.Event()
        self.closed = anyio.Event()
        self.last_used = time.monotonic()
        self.stream: TurnStream | None = None
        self._created: dict[str, ToolCallCreated] = {}  # calls of the chat not yet finished, by the chat's id
        self._functions: dict[str, str] = {}  # the chat's id of a function call -> the client's
        self._tokens: dict[str, _Waiter] = {}  # function calls that wait, by the token they announce
        self._waiting: dict[str, _Waiter] = {}  # by the client's call id
        self._asked: dict[str, str] = {}  # approval request id -> the chat's call id
        self._approved: dict[str, str] = {}  # the chat's call id -> its approval request id
        self._denied: set[str] = set()
        self._given: dict[str, tuple[str, McpApprovalResponseItem | None]] = {}  # a resumed turn's answers, by call
        self._reasoning: list[str] = []
        self.effort: Effort | None = None  # the running turn's reasoning effort

    @property
    def chat(self) -> Chat:
        assert self._chat is not None, "the keeper opens the chat before the turn is handed out"
        return self._chat

    @chat.setter
    def chat(self, chat: Chat) -> None:
        self._chat = chat

    @property
    def waiting(self) -> bool:
        return bool(self._waiting or self._asked)

    def idle_for(self) -> float:
        return 0.0 if self.busy else time.monotonic() - self.last_used

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def close(self) -> None:
        """Stop the turn: the keeper closes the chat (cancelling what runs) and the request's connections."""
        self.closing.set()

    async def stop(self) -> None:
        """Cancel the turn's events, in the keeper, before its chat closes (a reader sees them end)."""
        stream, self.stream = self.stream, None
        if stream is not None:
            await stream.aclose()

    def must_ask(self, spec: ToolSpec) -> str | None:
        """Why the client must approve a call of `spec` even where the host's policy allows it, or None: the
        request's `require_approval` covers it (`always`, or a tool list naming it)."""
        provider = self.tools.provider(spec.name)
        rule = self.rules.get(provider.server) if provider is not None else None
        if provider is None or rule is None or not rule.needs_approval(provider.tool, spec.annotations):
            return None
        return f"the request requires approval of {provider.server}.{provider.tool} (require_approval)"

    # -- the chat's side ------------------------------------------------------------------------

    async def call_tool(
        self, name: str, arguments: dict[str, Any], timeout_s: float | None, asks: ServerAsks | None
    ) -> ToolResult:
        """The chat's caller: the request's MCP tools through `RequestTools`; a function waits for the client."""
        if not name.startswith(f"{FUNCTIONS}.") or self.tools.provider(name) is not None:
            return await self.tools.call_tool(name, arguments, timeout_s, asks)
        if asks is None:
            return ToolResult.error("the client's function cannot be called outside a turn")
        waiter = _Waiter(uuid.uuid4().hex, anyio.Event())
        self._tokens[waiter.token] = waiter
        try:
            await asks.progress(FUNCTIONS, 0.0, None, waiter.token)  # tells the reader, in order, that it waits
            await waiter.answered.wait()
        finally:
            self._tokens.pop(waiter.token, None)
        return ToolResult.text_result(waiter.output)

    # -- the request's side -----------------------------------------------------------------------

    def start(self, history: list[dict[str, Any]], text: str, effort: Effort | None) -> None:
        """Begin a turn with the user's `text` after `history` (chat messages); `run()` reads it."""
        self.chat.load_messages(history)
        self.effort = effort
        self.stream = self.chat.send(text, reasoning=effort)

    def resume(
        self, call_ids: Sequence[str], approvals: dict[str, str], conversation: Conversation, effort: Effort | None
    ) -> None:
        """Go on with the turn of a restored chat: its waiting calls (the chat's `call_ids`) run again, and the
        approvals they ask for again are answered from `conversation` (`approvals`: request id -> call id)."""
        for approval_id, chat_call in approvals.items():
            self._given[chat_call] = (approval_id, conversation.answered_approvals.get(approval_id))
        self.effort = effort
        self.stream = self.chat.send_resumed(call_ids=call_ids, reasoning=effort)

    def approvals_only(self) -> tuple[dict[str, str], list[ToolCallCreated]] | None:
        """When the turn waits on approvals alone (no client's function): the approvals asked (request id -> the
        chat's call id) and the round's calls waiting to run, in order; else None."""
        if not self._asked or self._waiting:
            return None
        return dict(self._asked), list(self._created.values())

    def check(self, conversation: Conversation) -> None:
        """Raises `ApiError` (400) when a waiting function call has no output in `conversation`."""
        missing = [call_id for call_id in self._waiting if call_id not in conversation.answered_calls]
        if missing:
            raise ApiError(400, f"no tool output found for function call {missing[0]}", param="input")

    def answer(self, conversation: Conversation) -> None:
        """Hand the waiting calls their answers: function outputs, approvals (one not answered is denied)."""
        self.check(conversation)
        for call_id, waiter in list(self._waiting.items()):
            waiter.output = conversation.answered_calls[call_id]
            waiter.answered.set()
        self._waiting.clear()
        for approval_id, chat_call in list(self._asked.items()):
            self._give(chat_call, approval_id, conversation.answered_approvals.get(approval_id))
        self._asked.clear()

    def _give(self, chat_call: str, approval_id: str, answer: McpApprovalResponseItem | None) -> None:
        if answer is not None and answer.approve:
            self._approved[chat_call] = approval_id
            self.chat.answer(chat_call, ApprovalAnswer("allow"))
        else:
            self._denied.add(chat_call)
            reason = answer.reason if answer is not None else "the client did not approve it"
            self.chat.answer(chat_call, ApprovalAnswer("deny", reason=reason))

    async def run(self, draft: ResponseDraft) -> TurnOutcome:
        """Read the turn into `draft` until it ends or waits for the client (`outcome.waiting_*`)."""
        assert self.stream is not None, "start() comes first"
        outcome = TurnOutcome()
        async for event in self.stream:
            if await self._on(event, draft, outcome):
                self.stream = None
                return outcome
            if self._paused():
                return outcome
        self.stream = None  # the events ended without turn.completed: the turn was closed under the reader
        outcome.status, outcome.error = "failed", "the turn was cancelled"
        return outcome

    async def _on(self, event: Event, draft: ResponseDraft, outcome: TurnOutcome) -> bool:
        """Handle one event; whether the turn ended."""
        if isinstance(event, ReasoningDelta):
            self._reasoning.append(event.text)
            await draft.reasoning(event.text)
        elif isinstance(event, MessageDelta):
            await draft.text(event.text)
        elif isinstance(event, ToolCallCreated):
            self._created[event.call_id] = event
            if self._is_function(event.tool):
                self._functions[event.call_id] = f"call_{uuid.uuid4().hex[:24]}"
        elif isinstance(event, ApprovalRequired):
            await self._on_approval(event, draft, outcome)
        elif isinstance(event, ElicitationRequired):  # nobody can fill a form through this API
            self.chat.answer_elicitation(event.elicitation_id, ElicitationAnswer("decline"))
        elif isinstance(event, ToolCallProgress):
            await self._on_progress(event, draft, outcome)
        elif isinstance(event, ToolCallResult):
            await self._on_result(event, draft)
        elif isinstance(event, ErrorEvent) and event.kind == "backend":
            outcome.status, outcome.error = "failed", f"the model failed: {event.message}"
        elif isinstance(event, TurnCompleted):
            stats = event.stats
            outcome.usage = usage_json(
                input_tokens=stats.prompt_tokens_evaluated + stats.prompt_tokens_reused,
                cached_tokens=stats.prompt_tokens_reused,
                output_tokens=stats.generated_tokens,
                reasoning_tokens=count_tokens(self.chat.backend, self.renderer, "".join(self._reasoning)),
            )
            self._reasoning.clear()
            if event.stop_reason == "cancelled" and outcome.status != "failed":
                outcome.status, outcome.error = "failed", "the turn was cancelled"
            elif event.stop_reason == "length" and outcome.status == "completed":
                outcome.status, outcome.incomplete_reason = "incomplete", "max_output_tokens"
            return True
        return False

    async def _on_approval(self, event: ApprovalRequired, draft: ResponseDraft, outcome: TurnOutcome) -> None:
        created = self._created.get(event.call_id)
        if created is None:  # a server asks to sample the model during a call
            self.chat.answer(event.call_id, ApprovalAnswer("deny", reason=NO_SAMPLING))
            return
        given = self._given.pop(event.call_id, None)
        if given is not None:  # asked again by a resumed turn: the client answered before the restart's rebuild
            self._give(event.call_id, *given)
            return
        provider = self.tools.provider(created.tool)
        rule = self.rules.get(provider.server) if provider is not None else None
        spec = self.chat.tools.get(created.tool) if created.tool in self.chat.tools else None
        annotations = spec.annotations if spec is not None else None
        if provider is None or rule is None or not rule.needs_approval(provider.tool, annotations):
            if provider is not None and provider.kind == "mcp_json" and not self.unattended:
                reason = NOT_WAIVED.format(tool=f"{provider.server}.{provider.tool}")
                self.chat.answer(event.call_id, ApprovalAnswer("deny", reason=reason))
                return
            self.chat.answer(event.call_id, ApprovalAnswer("allow"))  # the client's own function, or a `never` tool
            return
        item = await draft.mcp_approval_request(provider.server, provider.tool, _arguments(created.arguments))
        self._asked[item["id"]] = event.call_id
        outcome.waiting_approvals.append(item["id"])

    async def _on_progress(self, event: ToolCallProgress, draft: ResponseDraft, outcome: TurnOutcome) -> None:
        waiter = self._tokens.get(event.message or "") if event.server == FUNCTIONS else None
        created = self._created.get(event.call_id)
        if waiter is None or created is None or event.call_id not in self._functions:
            return
        waiter.call_id = self._functions[event.call_id]
        name = created.tool.removeprefix(f"{FUNCTIONS}.")
        await draft.function_call(waiter.call_id, name, _arguments(created.arguments))
        self._waiting[waiter.call_id] = waiter
        outcome.waiting_calls.append(waiter.call_id)

    async def _on_result(self, event: ToolCallResult, draft: ResponseDraft) -> None:
        created = self._created.pop(event.call_id, None)
        self._functions.pop(event.call_id, None)
        approval = self._approved.pop(event.call_id, None)
        provider = self.tools.provider(created.tool) if created is not None else None
        if created is None or provider is None or event.call_id in self._denied:
            self._denied.discard(event.call_id)
            return  # a function's output (the client has it), a denied call, or a call of no tool
        key = event.call_id
        await draft.mcp_call_started(key, provider.server, provider.tool, _arguments(created.arguments), approval)
        await draft.mcp_call_finished(key, event.text, failed=event.is_error)

    def _paused(self) -> bool:
        """Whether everything the turn waits for is the client's: an approval, or every function call it runs."""
        if self._asked:
            return True
        running = [call for call in self._functions if self._will_run(call)]
        announced = {waiter.call_id for waiter in self._waiting.values()}
        return bool(running) and all(self._functions[call] in announced for call in running)

    def _will_run(self, chat_call: str) -> bool:
        created = self._created[chat_call]
        if created.tool not in self.chat.tools:
            return False
        return self.chat.permissions.verdict(self.chat.tools.get(created.tool)).policy != "deny"

    def _is_function(self, tool: str) -> bool:
        return tool.startswith(f"{FUNCTIONS}.") and self.tools.provider(tool) is None


class LiveTurns(AsyncResource):
    """The live MCP turns of the server, by the id of the response that left each waiting; an async resource."""

    def __init__(self, host: Host, *, idle_expiry_s: float = IDLE_EXPIRY_S, unattended: bool = False) -> None:
        self.host = host
        self.idle_expiry_s = idle_expiry_s
        self.unattended = unattended  # see `LiveTurn.unattended`
        self.waiting: dict[str, LiveTurn] = {}  # by the id of the response that left each waiting
        self._open: set[LiveTurn] = set()  # every turn whose keeper runs, waiting or not
        self._resources = AsyncExitStack()
        self._keepers: TaskGroup | None = None
        self._expiry = anyio.CancelScope()

    async def __aenter__(self) -> LiveTurns:
        self._keepers = await self._resources.enter_async_context(anyio.create_task_group())
        self._keepers.start_soon(self._expire_idle)
        return self

    async def aclose(self) -> None:
        """Close every live turn (their chats and connections). Idempotent."""
        self._expiry.cancel()
        for live in list(self._open):
            live.close()
        self.waiting.clear()
        self._keepers = None
        await self._resources.aclose()

    async def open(
        self,
        tools: RequestTools,
        offered: Callable[[RequestTools], ToolRegistry],
        backend: Backend | ChatBackend,
        options: ChatOptions,
        rules: dict[str, McpTool],
        renderer: HarmonyRenderer,
    ) -> LiveTurn:
        """Connect the request's servers and open its chat (offering `offered(tools)`), in a keeper task.

        Raises `ApiError` (400, 502, 503).
        """
        if self._keepers is None:
            raise ApiError(503, "responses with MCP tools are not open: the app's lifespan has not started, or ended")
        live = LiveTurn(backend.name, tools, rules, renderer, unattended=self.unattended)
        await self._keepers.start(self._keep, live, offered, backend, options)
        return live

    async def _keep(
        self,
        live: LiveTurn,
        offered: Callable[[RequestTools], ToolRegistry],
        backend: Backend | ChatBackend,
        options: ChatOptions,
        *,
        task_status: TaskStatus[None],
    ) -> None:
        """Holds one turn's connections and chat open, in this one task, until the turn closes."""
        started = False
        self._open.add(live)
        try:
            async with live.tools:
                registry = offered(live.tools)
                stricter = self.host.permissions.asking_also(live.must_ask)
                chat = self.host.chat(backend, options, tools=registry, call_tool=live.call_tool, permissions=stricter)
                async with chat:
                    live.chat = chat
                    task_status.started()
                    started = True
                    try:
                        await live.closing.wait()
                    finally:
                        await live.stop()
        except Exception:
            if not started:
                raise
            logger.exception("a Responses turn's connections did not close cleanly")
        finally:
            self._open.discard(live)
            live.closed.set()

    async def _expire_idle(self) -> None:
        with self._expiry:
            while True:
                await anyio.sleep(min(max(self.idle_expiry_s / 4, 0.05), 60.0))
                for response_id, live in list(self.waiting.items()):
                    if live.idle_for() >= self.idle_expiry_s:
                        self.waiting.pop(response_id, None)
                        live.close()
