"""A chat: one conversation with a model and the host's tools, turn by turn.

    async with host.chat(backend) as chat:
        async with chat.turn("What time is it in Tokyo?") as events:
            async for event in events:
                if isinstance(event, ApprovalRequired):
                    chat.answer(event.call_id, ApprovalAnswer("allow"))

A turn runs in a task of its own and hands its events over a memory stream, so the consumer may
stop early, be cancelled, or read from another task: leaving `turn()` cancels what is left of the
turn (generation, tool calls with the MCP cancellation). `send()` is the same as an async iterator.
The prompt format (`TurnFormat`: Harmony, the model's chat template, or a server's chat) builds
prompts and reads calls; the call pipeline (`CallPipeline`) decides, asks, runs and reports them.
Failures the model can recover from become what the model reads; only the host's own bugs propagate.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import mcp_types

from mcp_host.agent import sampling
from mcp_host.agent.asks import ElicitationAnswer, TurnAsks, TurnQuestions
from mcp_host.agent.attachments import Attachment, with_attachments
from mcp_host.agent.calls import Approvals, CallPipeline, Emit, LiveSpec, ToolCaller
from mcp_host.agent.chat_options import ChatOptions
from mcp_host.agent.chat_tools import ChatNatives, NativesBuilder, chosen_tools, switch_natives, turn_tools
from mcp_host.agent.events import (
    Annotation,
    ApprovalRequired,
    ElicitationRequired,
    ErrorEvent,
    Event,
    MessageDelta,
    ToolCallResult,
    TurnCompleted,
    TurnStats,
)
from mcp_host.agent.formats import TurnFormat, TurnTools, make_format
from mcp_host.agent.hooks import TurnPlugins
from mcp_host.agent.permissions import ApprovalAnswer, AuditLog, Permissions
from mcp_host.agent.rounds import resumed_round, run_rounds
from mcp_host.agent.selection import ToolSelection, ToolSelector, conversation_of, tool_cost_for
from mcp_host.agent.turn_stream import RunningTurn, TurnEvents, TurnInput, TurnSlot, TurnStream
from mcp_host.backends.base import Backend, ChatBackend
from mcp_host.config.paths import implicit_roots
from mcp_host.config.settings import ToolSettings
from mcp_host.errors import ChatBusyError, ChatClosedError, UnsupportedFeatureError
from mcp_host.prompt.harmony import Effort, HarmonyRenderer
from mcp_host.servers.asks import SamplingReply
from mcp_host.tools.native.base import NativeTool
from mcp_host.tools.native.browser import BrowserSession
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolResult


class Chat:
    """One conversation with a model and the host's tools; an async resource. One turn at a time."""

    def __init__(
        self,
        backend: Backend | ChatBackend,
        *,
        tools: ToolRegistry,
        call_tool: ToolCaller,
        permissions: Permissions,
        audit: AuditLog | None = None,
        options: ChatOptions | None = None,
        renderer: HarmonyRenderer | None = None,
        natives: Mapping[str, NativeTool] | None = None,
        browser: BrowserSession | None = None,
        workdir: Path | None = None,
        build_natives: NativesBuilder | None = None,
        task_group: anyio.abc.TaskGroup | None = None,
        plugins: TurnPlugins | None = None,
        live_spec: LiveSpec | None = None,
    ) -> None:
        self.backend = backend
        self._build_natives = build_natives  # None: the built-in tools cannot be switched (`select_tools`)
        self._live_spec = live_spec
        self.tools = tools
        self.permissions = permissions
        self.audit = audit or AuditLog(None)
        self.options = options or ChatOptions()
        self.natives = dict(natives or {})  # by the name the model calls: `python`, `browser.search`
        self.turn_format: TurnFormat = make_format(backend, self.options, renderer)
        self._renderer = renderer
        self._plugins = plugins
        # The plugins this chat uses, changeable between turns (None: all the host's).
        self.enabled_plugins: set[str] | None = None if self.options.plugins is None else set(self.options.plugins)
        # The MCP servers this chat uses, changeable between turns (None: every one, those added later too).
        self.enabled_servers: set[str] | None = None if self.options.servers is None else set(self.options.servers)
        self._call_tool = call_tool
        self._browser = browser
        self._workdir = workdir  # owned: removed on close
        self._approvals = Approvals()
        self._questions = TurnQuestions()
        self._question_ids = itertools.count(1)
        self._calls_made = 0
        self._turns = TurnSlot(self._turn, task_group)  # `task_group`: where `send()` runs turns outside `async with`
        self._stack: AsyncExitStack | None = None
        self._selector: ToolSelector | None = None
        self.tool_selection: ToolSelection | None = None  # the tools the last turn offered, and why

    def use_backend(self, backend: Backend | ChatBackend) -> None:
        """Generate with `backend` from the next turn on: the same model loaded again (the API's models come and go).

        Raises `UnsupportedFeatureError` for a backend that takes another prompt format, `ChatBusyError` mid-turn.
        """
        if backend is self.backend:
            return
        if self._turns.running is not None:
            raise ChatBusyError("the backend cannot change while a turn runs")
        self.turn_format.rebind(backend)
        self.backend = backend
        self._selector = None  # it counted tokens with the model that went away

    async def select_tools(
        self, *, servers: Collection[str] | None, plugins: Collection[str] | None, browser: bool, python: bool
    ) -> None:
        """Offer these tools from the next turn on: the MCP servers' (None: every one) and the plugins' (None: those
        on by default), and the built-in browser and python; the conversation goes on. A built-in tool switched off
        stops (python's working directory is removed), one switched on starts afresh.

        Raises `ChatBusyError` mid-turn, `ChatClosedError`, and `UnsupportedFeatureError` to switch a built-in tool
        of a chat that was given its built-in tools rather than a way to build them (`Host.chat` gives one).
        """
        if self._turns.closed:
            raise ChatClosedError("this chat is closed")
        if self._turns.running is not None:
            raise ChatBusyError("the tools cannot change while a turn runs")
        options = replace(
            self.options,
            servers=None if servers is None else tuple(dict.fromkeys(servers)),
            plugins=None if plugins is None else tuple(dict.fromkeys(plugins)),
        )
        harmony = options.harmony
        if (browser, python) != (harmony.browser, harmony.python):
            if self._build_natives is None:
                raise UnsupportedFeatureError("this chat's built-in tools were given to it: they cannot be switched")
            self._turns.running = RunningTurn()  # no turn starts while the tools change
            try:
                owned = ChatNatives(self.natives, self._browser, self._workdir, harmony.python_description)
                switched = await switch_natives(owned, self._build_natives, browser=browser, python=python)
            finally:
                self._turns.running = None
            if self._turns.closed:  # closed meanwhile: what was built for it goes too
                await switched.aclose()
                raise ChatClosedError("this chat was closed while its tools changed")
            self.natives, self._browser, self._workdir = switched.tools, switched.browser, switched.workdir
            harmony = replace(harmony, browser=browser, python=python, python_description=switched.python_description)
            options = replace(options, harmony=harmony)
            # Harmony lists the built-in tools in the system message: the conversation goes on in a format made
            # with the new ones (its history travels as a snapshot, as a restored session's does).
            turn_format = make_format(self.backend, options, self._renderer)
            turn_format.restore(self.turn_format.snapshot())
            self.turn_format = turn_format
            self._selector = None  # it counted the built-in tools that were
        self.options = options
        self.enabled_servers = None if options.servers is None else set(options.servers)
        self.enabled_plugins = None if options.plugins is None else set(options.plugins)

    def tool_registry(self) -> ToolRegistry:
        """The MCP servers' and plugins' tools the next turn chooses from (before any selection), this chat's."""
        return chosen_tools(self.tools, self._plugins, servers=self.enabled_servers, plugins=self.enabled_plugins)

    @property
    def format(self) -> str:
        """The prompt format in use: `harmony`, `template` or `chat`."""
        return self.turn_format.name

    @property
    def busy(self) -> bool:
        return self._turns.running is not None

    async def __aenter__(self) -> Chat:
        if self._turns.closed:
            raise ChatClosedError("this chat is closed")
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self.aclose)
            self._turns.tasks = await stack.enter_async_context(anyio.create_task_group())
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._stack is not None and self._turns.tasks is not None
        self._turns.tasks.cancel_scope.cancel()  # a turn still running (an abandoned `send()`) stops
        stack, self._stack, self._turns.tasks = self._stack, None, None
        await stack.__aexit__(None, None, None)  # the body's own exception propagates as it is

    async def aclose(self) -> None:
        """Stop the chat's native tools (its python interpreter) and remove its working directory. Idempotent."""
        if self._turns.closed:
            return
        self._turns.close()
        await ChatNatives(self.natives, workdir=self._workdir).aclose()

    @property
    def workdir(self) -> Path | None:
        """The python tool's working directory (the files its code wrote); removed when the chat closes."""
        return self._workdir

    def answer(self, call_id: str, answer: ApprovalAnswer) -> None:
        """Answer an `approval.required` event (from any task)."""
        self._approvals.answer(call_id, answer)

    def answer_elicitation(self, elicitation_id: str, answer: ElicitationAnswer) -> None:
        """Answer an `elicitation.required` event (from any task); an accepted form gets its defaults.

        Raises `UnknownApprovalError` when it is no longer pending, `ElicitationInputError` when the
        content does not fit the requested schema (the question stays open: answer again).
        """
        self._questions.answer(elicitation_id, answer)

    async def _sample(self, params: mcp_types.CreateMessageRequestParams) -> SamplingReply:
        return await sampling.sample(self.backend, self.options, self._renderer, params)

    def _asks_for(self, call_id: str, emit: Emit) -> TurnAsks:
        return TurnAsks(
            call_id=call_id,
            emit=emit,
            questions=self._questions,
            approvals=self._approvals,
            permissions=self.permissions,
            audit=self.audit,
            sampler=self._sample,
            next_id=lambda kind: f"{kind}_{next(self._question_ids)}",
        )

    def _next_call_id(self) -> str:
        self._calls_made += 1
        return f"call_{self._calls_made}"

    def snapshot(self) -> dict[str, Any]:
        """The conversation as JSON-able data, the round in progress included: what `restore` takes.

        Taken while a turn waits on an approval, it holds the calls waiting to run, which `resume` runs.
        """
        return {"format": self.format, "turn": self.turn_format.snapshot(), "calls_made": self._calls_made}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the conversation with a `snapshot` (of a chat with the same kind of model).

        Raises `ValueError` for a snapshot of another prompt format, `ChatBusyError` mid-turn.
        """
        if self._turns.running is not None:
            raise ChatBusyError("a chat cannot be restored while a turn runs")
        if snapshot.get("format") != self.format:
            raise ValueError(f"a {snapshot.get('format')!r} conversation cannot go on with a {self.format} model")
        self.turn_format.restore(snapshot.get("turn", {}))
        self._calls_made = int(snapshot.get("calls_made", 0))

    def resume(
        self, *, call_ids: Sequence[str] = (), reasoning: Effort | None = None
    ) -> AbstractAsyncContextManager[TurnEvents]:
        """Go on with a restored turn: run the calls it was waiting on (announced as `call_ids`, in order),
        then generate as a turn does. Events and errors as `turn()`; with no calls waiting, it just generates."""
        return self._turns.in_block(TurnInput(None, reasoning, call_ids=tuple(call_ids)))

    def load_messages(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Earlier conversation in OpenAI chat shape: system/developer, user, assistant (tool_calls), tool."""
        self.turn_format.load_messages(messages)

    def transcript(self) -> list[dict[str, Any]]:
        return self.turn_format.transcript()

    def reset(self) -> None:
        self.turn_format.reset()

    def turn(
        self,
        text: str,
        *,
        reasoning: Effort | None = None,
        attachments: Sequence[Attachment] = (),
        tools: Sequence[Callable[..., Any]] = (),
    ) -> AbstractAsyncContextManager[TurnEvents]:
        """Run one turn in a task of this block; its events end with `turn.completed`.

        `attachments` (resources read with `Host.attachment`) follow the user's text in the message;
        `tools` are plain Python functions offered for this turn only, as `app.<function name>`
        (their schema comes from type hints and docstrings; see `mcp_host.plugins.FunctionTool`).

        Leaving the block early cancels the rest of the turn. Raises `ChatBusyError`, `ChatClosedError`.
        """
        return self._turns.in_block(TurnInput(text, reasoning, tuple(attachments), tuple(tools)))

    def send(
        self,
        text: str,
        *,
        reasoning: Effort | None = None,
        attachments: Sequence[Attachment] = (),
        tools: Sequence[Callable[..., Any]] = (),
    ) -> TurnStream:
        """Run one turn: an async stream of events ending with `turn.completed`.

        The turn runs in the chat's task group (`async with chat`) or its host's; breaking out of
        the loop (dropping the stream) or cancelling the reader cancels it at once. Raises
        `ChatBusyError`, `ChatClosedError` when iteration starts.
        """
        return self._turns.stream(TurnInput(text, reasoning, tuple(attachments), tuple(tools)))

    def send_resumed(self, *, call_ids: Sequence[str] = (), reasoning: Effort | None = None) -> TurnStream:
        """`resume()` as a stream, as `send()` is `turn()`: the restored turn runs in the chat's task group."""
        return self._turns.stream(TurnInput(None, reasoning, call_ids=tuple(call_ids)))

    async def act(
        self,
        text: str,
        *,
        on_message: Callable[[str], Any] | None = None,
        on_fragment: Callable[[str], Any] | None = None,
        on_round_start: Callable[[int], Any] | None = None,
        on_round_end: Callable[[int], Any] | None = None,
        on_approval: Callable[[ApprovalRequired], Awaitable[ApprovalAnswer]] | None = None,
        on_elicitation: Callable[[ElicitationRequired], Awaitable[ElicitationAnswer]] | None = None,
        on_event: Callable[[Event], Any] | None = None,
        tools: Sequence[Callable[..., Any]] = (),
    ) -> TurnCompleted:
        """LM Studio `.act()` style: run a turn with callbacks instead of an event stream.

        `tools` are plain functions the model may call this turn (as in LM Studio's SDK); being the
        application's own, they run without asking unless the policy names them (`app.<name>`).
        Without `on_approval`, other calls that need approval are denied (nobody is there to say yes);
        without `on_elicitation`, a server's questions are declined.
        """
        rounds = 0
        final: list[str] = []
        completed: TurnCompleted | None = None
        if on_round_start:
            on_round_start(0)
        async with self.turn(text, tools=tools) as events:
            async for event in events:
                if on_event:
                    on_event(event)
                if isinstance(event, MessageDelta):
                    final.append(event.text)
                    if on_fragment:
                        on_fragment(event.text)
                elif isinstance(event, ApprovalRequired):
                    answer = (
                        await on_approval(event)
                        if on_approval
                        else ApprovalAnswer("deny", reason="no one is available to approve it")
                    )
                    self.answer(event.call_id, answer)
                elif isinstance(event, ElicitationRequired):
                    reply = await on_elicitation(event) if on_elicitation else ElicitationAnswer("decline")
                    self.answer_elicitation(event.elicitation_id, reply)
                elif isinstance(event, ToolCallResult):
                    if on_round_end:
                        on_round_end(rounds)
                    rounds += 1
                    if on_round_start:
                        on_round_start(rounds)
                elif isinstance(event, TurnCompleted):
                    completed = event
        if on_round_end:
            on_round_end(rounds)
        if on_message:
            on_message("".join(final))
        assert completed is not None, "a turn always ends with turn.completed"
        return completed

    async def _turn(self, turn_input: TurnInput, emit: Emit, stats: TurnStats) -> None:
        started = time.perf_counter()
        turn_format = self.turn_format
        text, attachments = turn_input.text, turn_input.attachments
        if self._plugins is not None and text is not None:
            text, attachments, problems = await self._plugins.preprocess(text, attachments, self.enabled_plugins)
            for problem in problems:
                await emit(ErrorEvent(message=problem, kind="plugin"))
        # Plugin tools and the turn's functions run here, the rest through the host.
        tools, call_tool = turn_tools(
            self.tools,
            self._plugins,
            turn_input.functions,
            servers=self.enabled_servers,
            plugins=self.enabled_plugins,
            call_tool=self._call_tool,
            timeout_s=self.options.call_timeout_s,
            roots=lambda: self.roots,
        )
        tools = self._offered_tools(tools, text)
        pipeline = CallPipeline(
            call_tool=call_tool,
            natives=self.natives,
            approvals=self._approvals,
            permissions=self.permissions,
            audit=self.audit,
            limits=self.options.call_limits(),
            next_call_id=self._next_call_id,
            asks_for=self._asks_for,
            live_spec=self._live_spec,
            postprocess=self._postprocess if self._plugins is not None else None,
        )
        if text is None:
            resumed = resumed_round(turn_format, TurnTools(tools, self.natives), turn_input)
        else:
            resumed = None
            turn_format.start_turn(
                with_attachments(text, attachments), TurnTools(tools, self.natives), turn_input.reasoning
            )
        outcome = await run_rounds(turn_format, pipeline, self.options, resumed=resumed, emit=emit, stats=stats)
        stats.duration_s = time.perf_counter() - started
        answer = turn_format.answer()
        annotations = self._annotations(answer)
        self._approvals.forget()
        self._questions.pending.forget()
        completed = TurnCompleted(stop_reason=outcome, stats=stats, answer=answer, annotations=annotations)
        await emit(completed)
        if self._turns.running is not None:
            self._turns.running.completed = True

    @property
    def roots(self) -> tuple[Path, ...]:
        """The folders this chat's tools may work in (`ChatOptions.roots`, else the working directory, unless `/`)."""
        return tuple(Path(r).expanduser().resolve() for r in self.options.roots) or implicit_roots()

    def _offered_tools(self, registry: ToolRegistry, text: str | None) -> ToolRegistry:
        """The turn's tools: all of them, or a selection where they would crowd the context (`agent.selection`).
        Chosen once, before the first round, so that every round of the turn offers the same tools."""
        if self._selector is None:
            cost = tool_cost_for(self.turn_format.name, self.backend, self.options.harmony, self._renderer)
            self._selector = ToolSelector(self.options.tool_selection or ToolSettings(), cost)
        self.tool_selection = self._selector.select(
            registry,
            context_tokens=self.backend.context_length,
            message=text or "",
            conversation=lambda: conversation_of(self.turn_format.transcript(), registry.names),
            required=[self.options.required_tool] if self.options.required_tool else [],
            natives=[tool.spec for tool in self.natives.values()],
        )
        return self.tool_selection.registry

    async def _postprocess(self, tool: str, arguments: dict[str, Any], result: ToolResult) -> ToolResult:
        assert self._plugins is not None
        return await self._plugins.postprocess(tool, arguments, result, self.enabled_plugins)

    def _annotations(self, answer: str) -> list[Annotation]:
        if self._browser is None or not answer:
            return []
        return [
            Annotation(start=c.start, end=c.end, url=c.url, title=c.title, line_start=c.line_start, line_end=c.line_end)
            for c in self._browser.citations(answer)
        ]
