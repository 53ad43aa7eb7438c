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
import math
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.abc
import mcp_types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from mcp_host.agent import sampling
from mcp_host.agent.asks import ElicitationAnswer, TurnAsks, TurnQuestions
from mcp_host.agent.attachments import Attachment, with_attachments
from mcp_host.agent.calls import Approvals, CallLimits, CallPipeline, Emit, LiveSpec, ToolCaller
from mcp_host.agent.chat_tools import ChatNatives, NativesBuilder, chosen_tools, switch_natives
from mcp_host.agent.events import (
    Annotation,
    ApprovalRequired,
    ElicitationRequired,
    ErrorEvent,
    Event,
    MessageDelta,
    PromptProgress,
    ToolCallResult,
    TurnCompleted,
    TurnStats,
)
from mcp_host.agent.formats import Round, TurnFormat, TurnTools, make_format
from mcp_host.agent.hooks import TurnPlugins
from mcp_host.agent.permissions import ApprovalAnswer, AuditLog, Permissions
from mcp_host.agent.selection import ToolSelection, ToolSelector, conversation_of, tool_cost_for
from mcp_host.backends.base import Backend, ChatBackend, GenerationParams
from mcp_host.config.paths import implicit_roots
from mcp_host.config.settings import ToolSettings
from mcp_host.errors import BackendError, ChatBusyError, ChatClosedError, TemplateError, UnsupportedFeatureError
from mcp_host.prompt.harmony import Effort, HarmonyOptions, HarmonyRenderer
from mcp_host.servers.asks import SamplingReply, ServerAsks
from mcp_host.tools.native.base import NativeTool
from mcp_host.tools.native.browser import BrowserSession
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolResult

Outcome = Literal["answered", "max_rounds", "length", "cancelled", "error"]
DEFAULT_PLUGIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ChatOptions:
    """Per-chat settings; `turn(..., reasoning=...)` overrides the effort for one turn."""

    harmony: HarmonyOptions = field(default_factory=HarmonyOptions)
    max_rounds: int = 10
    max_tokens_per_round: int = 4096
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    top_k: int = 0  # 0: off
    min_p: float = 0.0  # 0: off
    repeat_penalty: float = 1.0  # 1: off
    call_timeout_s: float | None = None
    output_limit_chars: int = 20_000
    repeat_limit: int = 3
    format: Literal["auto", "harmony", "template", "chat"] = "auto"
    required_tool: str | None = None  # template path: the first round must call this tool (grammar-constrained)
    max_parallel_calls: int = 4
    plugins: tuple[str, ...] | None = None  # the plugins this chat uses (None: every one the host loaded)
    servers: tuple[str, ...] | None = None  # the MCP servers whose tools it offers (None: every one of mcp.json)
    roots: tuple[str, ...] = ()  # the folders plugin tools may work in (empty: the working directory)
    tool_selection: ToolSettings | None = None  # when a turn offers a selection of the tools (None: the defaults)

    def generation_params(self) -> GenerationParams:
        """Sampling for every round; the prompt format adds its stop tokens and grammar."""
        return GenerationParams(
            max_tokens=self.max_tokens_per_round,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            top_k=self.top_k,
            min_p=self.min_p,
            repeat_penalty=self.repeat_penalty,
        )

    def call_limits(self) -> CallLimits:
        return CallLimits(
            timeout_s=self.call_timeout_s,
            output_limit_chars=self.output_limit_chars,
            repeat_limit=self.repeat_limit,
            max_parallel=self.max_parallel_calls,
        )


class TurnEvents:
    """The events of one running turn, in order; an async iterator safe to read from any task.

    Raises, once the events are exhausted, the host bug that ended the turn, if one did.
    """

    def __init__(self, receive: MemoryObjectReceiveStream[Event], running: _RunningTurn) -> None:
        self._receive = receive
        self._running = running

    def __aiter__(self) -> TurnEvents:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._running.failure is not None:
                raise self._running.failure from None
            raise StopAsyncIteration from None

    def cancel(self) -> None:
        """Stop the turn (from any task); the events end."""
        self._running.scope.cancel()
        self._receive.close()


class _RunningTurn:
    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self.failure: Exception | None = None
        self.stats = TurnStats()
        self.completed = False


@dataclass(frozen=True)
class _TurnInput:
    """What a turn starts from: the user's words, the resources attached, and functions offered this turn only."""

    text: str | None  # None: a restored turn goes on with the calls it was waiting on (`Chat.resume`)
    reasoning: Effort | None = None
    attachments: tuple[Attachment, ...] = ()
    functions: tuple[Callable[..., Any], ...] = ()
    call_ids: tuple[str, ...] = ()  # the ids the resumed calls were announced with


class TurnStream:
    """`Chat.send()`: the turn starts at the first `anext()`; dropping or cancelling the reader cancels it."""

    def __init__(self, chat: Chat, turn_input: _TurnInput) -> None:
        self._chat = chat
        self._input = turn_input
        self._events: TurnEvents | None = None
        self._running: _RunningTurn | None = None

    def __aiter__(self) -> TurnStream:
        return self

    async def __anext__(self) -> Event:
        if self._events is None:
            chat = self._chat
            tasks = chat._task_group()
            self._running = await chat._claim()
            self._events = await chat._start(tasks, self._running, self._input)
        try:
            return await self._events.__anext__()
        except StopAsyncIteration:
            raise
        except BaseException:  # the reader was cancelled: so is the turn, before the reader goes on
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Cancel the turn and wait until it has stopped (its tool calls too). Idempotent."""
        if self._events is None or self._running is None:
            return
        self._events.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            await self._running.done.wait()

    def __del__(self) -> None:
        if self._events is not None:
            self._events.cancel()  # `break` out of the loop: the turn stops now, not at garbage collection


def _single(exc: Exception) -> Exception:
    """The one exception a task group wrapped, so that a host bug reaches the reader as itself."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1 and isinstance(exc.exceptions[0], Exception):
        exc = exc.exceptions[0]
    return exc


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
        self._host_tasks = task_group  # where `send()` runs turns when the chat itself was not entered
        self._stack: AsyncExitStack | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._running: _RunningTurn | None = None
        self._closed = False
        self._selector: ToolSelector | None = None
        self.tool_selection: ToolSelection | None = None  # the tools the last turn offered, and why

    def use_backend(self, backend: Backend | ChatBackend) -> None:
        """Generate with `backend` from the next turn on: the same model loaded again (the API's models come and go).

        Raises `UnsupportedFeatureError` for a backend that takes another prompt format, `ChatBusyError` mid-turn.
        """
        if backend is self.backend:
            return
        if self._running is not None:
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
        if self._closed:
            raise ChatClosedError("this chat is closed")
        if self._running is not None:
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
            self._running = _RunningTurn()  # no turn starts while the tools change
            try:
                owned = ChatNatives(self.natives, self._browser, self._workdir, harmony.python_description)
                switched = await switch_natives(owned, self._build_natives, browser=browser, python=python)
            finally:
                self._running = None
            if self._closed:  # closed meanwhile: what was built for it goes too
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
        return self._running is not None

    async def __aenter__(self) -> Chat:
        if self._closed:
            raise ChatClosedError("this chat is closed")
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self.aclose)
            self._tasks = await stack.enter_async_context(anyio.create_task_group())
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._stack is not None and self._tasks is not None
        self._tasks.cancel_scope.cancel()  # a turn still running (an abandoned `send()`) stops
        stack, self._stack, self._tasks = self._stack, None, None
        await stack.__aexit__(None, None, None)  # the body's own exception propagates as it is

    async def aclose(self) -> None:
        """Stop the chat's native tools (its python interpreter) and remove its working directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            if self._running is not None:
                self._running.scope.cancel()
            for tool in self.natives.values():
                await tool.aclose()
            if self._workdir is not None:
                workdir = self._workdir
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(workdir, ignore_errors=True))

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
        if self._running is not None:
            raise ChatBusyError("a chat cannot be restored while a turn runs")
        if snapshot.get("format") != self.format:
            raise ValueError(f"a {snapshot.get('format')!r} conversation cannot go on with a {self.format} model")
        self.turn_format.restore(snapshot.get("turn", {}))
        self._calls_made = int(snapshot.get("calls_made", 0))

    @asynccontextmanager
    async def resume(
        self, *, call_ids: Sequence[str] = (), reasoning: Effort | None = None
    ) -> AsyncIterator[TurnEvents]:
        """Go on with a restored turn: run the calls it was waiting on (announced as `call_ids`, in order),
        then generate as a turn does. Events and errors as `turn()`; with no calls waiting, it just generates."""
        running = await self._claim()
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            events = await self._start(tg, running, _TurnInput(None, reasoning, call_ids=tuple(call_ids)))
            try:
                yield events
            except Exception as exc:  # noqa: BLE001 - re-raised below as it is
                failure = exc
            finally:
                events.cancel()
        if failure is not None:
            raise failure

    def load_messages(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Earlier conversation in OpenAI chat shape: system/developer, user, assistant (tool_calls), tool."""
        self.turn_format.load_messages(messages)

    def transcript(self) -> list[dict[str, Any]]:
        return self.turn_format.transcript()

    def reset(self) -> None:
        self.turn_format.reset()

    @asynccontextmanager
    async def turn(
        self,
        text: str,
        *,
        reasoning: Effort | None = None,
        attachments: Sequence[Attachment] = (),
        tools: Sequence[Callable[..., Any]] = (),
    ) -> AsyncIterator[TurnEvents]:
        """Run one turn in a task of this block; its events end with `turn.completed`.

        `attachments` (resources read with `Host.attachment`) follow the user's text in the message;
        `tools` are plain Python functions offered for this turn only, as `app.<function name>`
        (their schema comes from type hints and docstrings; see `mcp_host.plugins.FunctionTool`).

        Leaving the block early cancels the rest of the turn. Raises `ChatBusyError`, `ChatClosedError`.
        """
        running = await self._claim()
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            events = await self._start(tg, running, _TurnInput(text, reasoning, tuple(attachments), tuple(tools)))
            try:
                yield events
            except Exception as exc:  # noqa: BLE001 - re-raised below as it is, not wrapped in the group's
                failure = exc
            finally:
                events.cancel()
        if failure is not None:
            raise failure

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
        return TurnStream(self, _TurnInput(text, reasoning, tuple(attachments), tuple(tools)))

    def send_resumed(self, *, call_ids: Sequence[str] = (), reasoning: Effort | None = None) -> TurnStream:
        """`resume()` as a stream, as `send()` is `turn()`: the restored turn runs in the chat's task group."""
        return TurnStream(self, _TurnInput(None, reasoning, call_ids=tuple(call_ids)))

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

    async def _claim(self) -> _RunningTurn:
        if self._closed:
            raise ChatClosedError("this chat is closed")
        previous = self._running
        if previous is not None and previous.scope.cancel_called:
            with anyio.move_on_after(30):  # a reader that went away: its turn is stopping
                await previous.done.wait()
        if self._running is not None:
            raise ChatBusyError("this chat is already answering; wait for turn.completed")
        self._running = _RunningTurn()
        return self._running

    def _task_group(self) -> anyio.abc.TaskGroup:
        tasks = self._tasks or self._host_tasks
        if tasks is None:
            raise ChatClosedError(
                "this chat has no task group to run turns in: use `async with chat:` or `async with chat.turn(text)`"
            )
        return tasks

    async def _start(self, tasks: anyio.abc.TaskGroup, running: _RunningTurn, turn_input: _TurnInput) -> TurnEvents:
        send, receive = anyio.create_memory_object_stream[Event](math.inf)
        try:
            await tasks.start(self._run, turn_input, send, running)
        except BaseException:
            self._running = None
            send.close()
            receive.close()
            raise
        return TurnEvents(receive, running)

    async def _run(
        self,
        turn_input: _TurnInput,
        send: MemoryObjectSendStream[Event],
        running: _RunningTurn,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            task_status.started()
            with running.scope:
                try:
                    await self._turn(turn_input, send.send, running.stats)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # nobody reads the events any more: the turn ends
                except Exception as exc:  # noqa: BLE001 - a host bug: re-raised to the reader of the events
                    running.failure = _single(exc)
        finally:
            if not running.completed and running.failure is None:  # cancelled: the events still end properly
                try:
                    send.send_nowait(TurnCompleted(stop_reason="cancelled", stats=running.stats))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock):
                    pass
            send.close()
            self._running = None
            running.done.set()

    async def _turn(self, turn_input: _TurnInput, emit: Emit, stats: TurnStats) -> None:
        started = time.perf_counter()
        turn_format = self.turn_format
        text, attachments = turn_input.text, turn_input.attachments
        if self._plugins is not None and text is not None:
            text, attachments, problems = await self._plugins.preprocess(text, attachments, self.enabled_plugins)
            for problem in problems:
                await emit(ErrorEvent(message=problem, kind="plugin"))
        tools, call_tool = self._turn_tools(turn_input.functions)
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
        resumed: Round | None = None
        if text is None:
            calls = turn_format.resume_turn(TurnTools(tools, self.natives), turn_input.reasoning)
            ids = list(turn_input.call_ids) + [None] * len(calls)
            calls = [replace(call, call_id=call_id) for call, call_id in zip(calls, ids, strict=False)]
            resumed = Round(calls=calls) if calls else None
        else:
            turn_format.start_turn(
                with_attachments(text, attachments), TurnTools(tools, self.natives), turn_input.reasoning
            )

        async def prompt_progress(done: int, total: int) -> None:
            await emit(PromptProgress(done=done, total=total))

        # Every format's rounds report how far the engine read a long prompt (engines that cannot tell never call it).
        params = replace(self.options.generation_params(), on_prompt_progress=prompt_progress)
        outcome: Outcome = "max_rounds"
        for index in range(self.options.max_rounds):
            stats.rounds += 1
            last_round = index == self.options.max_rounds - 1 and index > 0
            try:
                if resumed is not None:  # the restored round: its calls run, nothing is generated
                    round_, resumed = resumed, None
                else:
                    round_ = await turn_format.generate(params, last_round=last_round, emit=emit)
            except (BackendError, TemplateError) as exc:
                await emit(ErrorEvent(message=str(exc), kind="backend"))
                outcome = "error"
                break
            stats.add_generation(round_.stats)
            cut = round_.stats.stop_reason == "length" and not round_.calls
            for fault in round_.faults:
                if not (cut and fault.kind == "model_output.truncated"):  # what the token limit cut: `length` says so
                    await emit(ErrorEvent(message=fault.text, kind=fault.kind))
            if cut:
                # The answer reached the token limit: the turn ends here, since asking again would be cut again.
                turn_format.end_round([])
                outcome = "length"
                break
            outcomes = await pipeline.run(round_.calls, emit, stats) if round_.calls else []
            turn_format.end_round(outcomes)
            if round_.answered:
                outcome = "answered"
                break
        stats.duration_s = time.perf_counter() - started
        answer = turn_format.answer()
        annotations = self._annotations(answer)
        self._approvals.forget()
        self._questions.pending.forget()
        completed = TurnCompleted(stop_reason=outcome, stats=stats, answer=answer, annotations=annotations)
        await emit(completed)
        if self._running is not None:
            self._running.completed = True

    @property
    def roots(self) -> tuple[Path, ...]:
        """The folders this chat's tools may work in (`ChatOptions.roots`, else the working directory, unless `/`)."""
        return tuple(Path(r).expanduser().resolve() for r in self.options.roots) or implicit_roots()

    def _turn_tools(self, functions: Sequence[Callable[..., Any]]) -> tuple[ToolRegistry, ToolCaller]:
        """The registry this turn offers (plugins this chat turned off left out, the turn's functions in),
        and the caller that runs plugin tools and functions here and the rest through the host."""
        extra: dict[str, Any] = {}
        if functions:
            from mcp_host.plugins.api import functions_plugin  # the plugins package imports the agent's

            extra = {tool.spec.name: tool for tool in functions_plugin(functions).tools}
        registry = chosen_tools(
            self.tools,
            self._plugins,
            servers=self.enabled_servers,
            plugins=self.enabled_plugins,
            extra=[tool.spec for tool in extra.values()],
        )
        timeout_s = self.options.call_timeout_s or DEFAULT_PLUGIN_TIMEOUT_S
        plugins = self._plugins

        async def call(
            name: str, arguments: dict[str, Any], limit: float | None, asks: ServerAsks | None
        ) -> ToolResult:
            if name in extra:
                result: ToolResult = await extra[name].call(arguments, timeout_s=limit or timeout_s)
                return result
            spec = registry.get(name) if name in registry else None
            if spec is None and name in self.tools:  # a server or plugin this chat switched off is never reached
                return ToolResult.error(f"{name} is switched off in this chat.")
            if spec is not None and spec.origin == "plugin" and plugins is not None:
                return await plugins.call(name, arguments, timeout_s=limit or timeout_s, roots=self.roots)
            return await self._call_tool(name, arguments, limit, asks)

        return registry, call

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
