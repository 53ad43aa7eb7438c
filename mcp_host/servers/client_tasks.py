"""Tasks a server asks the host to run: sampling and elicitation as client-side MCP tasks (2025-11-25).

A 2025-11-25 server may send `sampling/createMessage` or `elicitation/create` with a `task` field. The
host then answers at once with a task (`CreateTaskResult`), works out the answer in the background through
the very path a plain request takes (the connection's callbacks: the chat's approval, its form, the model),
and the server polls `tasks/get`, fetches `tasks/result`, lists `tasks/list` and cancels `tasks/cancel`.

    async with ClientTasks("everything") as tasks:
        async with TaskingClient(transport, tasks=tasks, sampling_callback=...) as client: ...

The SDK has the task types but no client side for them: its session parses only the requests it knows
(`tasks/*` are "deliberately absent"), so `TaskingClient` puts `ClientTasks` in front of the session's own
request handler and adds the `tasks` capability to the `initialize` it sends. 2026-07-28 servers send no
requests at all (their questions ride the call's result), so there the host declares and serves nothing.

A task moves `working` → `completed` | `failed` | `cancelled`; it never needs `input_required`, which asks
the *requestor* (the server) for input, and the host's questions go to its own user. Every task lives its
TTL (the server's, capped at `MAX_TTL_MS`) and is dropped then, answered or not, fetched or not: a question
still open is cancelled with it. Failures of the server's making are JSON-RPC errors it reads:

    MCPError INVALID_PARAMS    unknown or expired task id, bad cursor, cancelling a finished task, bad `task`
    MCPError INVALID_REQUEST   more than `MAX_TASKS` tasks in progress at once
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.abc
import mcp_types
from anyio.abc import AsyncResource
from mcp import Client
from mcp.client.session import ClientSession
from mcp.shared.dispatcher import DispatchContext
from mcp.shared.exceptions import MCPError
from mcp.shared.transport_context import TransportContext
from mcp_types import methods
from pydantic import ValidationError

logger = logging.getLogger(__name__)

# The protocol versions that define client-side tasks.
TASK_VERSIONS = ("2025-11-25",)
TASKABLE = ("sampling/createMessage", "elicitation/create")
RELATED_TASK = "io.modelcontextprotocol/related-task"
DEFAULT_TTL_MS = 10 * 60 * 1000  # a task whose server named no TTL
MAX_TTL_MS = 30 * 60 * 1000  # no task outlives this, whatever its server asked
MAX_TASKS = 64  # in progress at once per connection; finished ones make room for new ones
POLL_INTERVAL_MS = 500
LIST_PAGE = 50
STATUS_MESSAGES = {
    "sampling/createMessage": "waiting for the user's approval and the model's reply",
    "elicitation/create": "waiting for the user's answer",
}

Work = Callable[[], Awaitable[dict[str, Any]]]
OnRequest = Callable[[DispatchContext[TransportContext], str, Mapping[str, Any] | None], Awaitable[dict[str, Any]]]


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _invalid(message: str) -> MCPError:
    return MCPError(code=mcp_types.INVALID_PARAMS, message=message)


@dataclass
class _Task:
    task_id: str
    method: str
    ttl_ms: int
    created: datetime = field(default_factory=_now)
    updated: datetime = field(default_factory=_now)
    status: mcp_types.TaskStatus = "working"
    status_message: str | None = None
    outcome: dict[str, Any] | mcp_types.ErrorData | None = None
    finished: anyio.Event = field(default_factory=anyio.Event)  # set at a terminal status, or when dropped
    work: anyio.CancelScope = field(default_factory=anyio.CancelScope)  # cancelled by tasks/cancel
    life: anyio.CancelScope = field(default_factory=anyio.CancelScope)  # the work, then the wait for tasks/result
    dropped: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    def finish(
        self, status: mcp_types.TaskStatus, outcome: dict[str, Any] | mcp_types.ErrorData, message: str | None
    ) -> None:
        if self.terminal:
            return  # a cancelled task stays cancelled, even when its work ends after all
        self.status, self.outcome, self.status_message, self.updated = status, outcome, message, _now()
        self.finished.set()

    def state(self) -> mcp_types.Task:
        return mcp_types.Task(
            task_id=self.task_id,
            status=self.status,
            status_message=self.status_message,
            created_at=_iso(self.created),
            last_updated_at=_iso(self.updated),
            ttl=self.ttl_ms,
            poll_interval=POLL_INTERVAL_MS,
        )


def _dump(result: mcp_types.Result) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


class ClientTasks(AsyncResource):
    """The tasks one connection runs for its server; an async resource owning their background work."""

    def __init__(self, server: str, *, max_ttl_ms: int = MAX_TTL_MS, max_tasks: int = MAX_TASKS) -> None:
        self.server = server
        self.max_ttl_ms = max_ttl_ms
        self.max_tasks = max_tasks
        self._tasks: dict[str, _Task] = {}  # in creation order
        self._group: anyio.abc.TaskGroup | None = None
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> ClientTasks:
        self._group = await self._stack.enter_async_context(anyio.create_task_group())
        return self

    async def aclose(self) -> None:
        """Cancel every task still at work (its question or sampling with it) and forget them all."""
        group, self._group = self._group, None
        if group is not None:
            group.cancel_scope.cancel()
        try:
            await self._stack.aclose()
        finally:
            self._tasks.clear()

    @property
    def states(self) -> list[mcp_types.Task]:
        """The tasks held now (not yet past their TTL), oldest first."""
        return [task.state() for task in self._tasks.values()]

    def capability(self, capabilities: mcp_types.ClientCapabilities) -> mcp_types.ClientTasksCapability:
        """What the host runs as tasks: the requests among sampling and elicitation that it answers at all."""
        sampling = (
            mcp_types.TasksSamplingCapability(create_message=mcp_types.TasksCreateMessageCapability())
            if capabilities.sampling is not None
            else None
        )
        elicitation = (
            mcp_types.TasksElicitationCapability(create=mcp_types.TasksCreateElicitationCapability())
            if capabilities.elicitation is not None
            else None
        )
        return mcp_types.ClientTasksCapability(
            list=mcp_types.TasksListCapability(),
            cancel=mcp_types.TasksCancelCapability(),
            requests=mcp_types.ClientTasksRequestsCapability(sampling=sampling, elicitation=elicitation),
        )

    # -- what the server sends ------------------------------------------------------------

    def create(self, method: str, task: Any, work: Work) -> dict[str, Any]:
        """Start `work` (the plain request's answer) as a task; the `CreateTaskResult` to send at once."""
        group = self._group
        if group is None:
            raise MCPError(code=mcp_types.INTERNAL_ERROR, message="the connection is closing")
        try:
            metadata = mcp_types.TaskMetadata.model_validate(task)
        except ValidationError as exc:
            raise _invalid(f"task: not task metadata ({exc.error_count()} error(s))") from None
        requested = DEFAULT_TTL_MS if metadata.ttl is None else metadata.ttl
        self._make_room()
        entry = _Task(uuid.uuid4().hex, method, ttl_ms=max(0, min(requested, self.max_ttl_ms)))
        entry.status_message = STATUS_MESSAGES.get(method)
        self._tasks[entry.task_id] = entry
        # Started from the request's own task, the work keeps its context: the call it belongs to, if known.
        group.start_soon(self._run, entry, work, name=f"mcp task {self.server}/{entry.task_id}")
        logger.info("server %r: %s runs as task %s (ttl %d ms)", self.server, method, entry.task_id, entry.ttl_ms)
        return _dump(mcp_types.CreateTaskResult(task=entry.state()))

    async def serve(self, method: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Answer `tasks/get`, `tasks/result`, `tasks/list` or `tasks/cancel`."""
        params = params or {}
        if method == "tasks/list":
            return self._list(params.get("cursor"))
        task = self._find(params.get("taskId"))
        if method == "tasks/get":
            return _dump(mcp_types.GetTaskResult.model_validate(task.state(), from_attributes=True))
        if method == "tasks/cancel":
            return self._cancel(task)
        return await self._result(task)

    def _find(self, task_id: Any) -> _Task:
        task = self._tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None:
            raise _invalid(f"no task {task_id!r}: unknown, or dropped after its TTL")
        return task

    def _list(self, cursor: Any) -> dict[str, Any]:
        ids = list(self._tasks)
        if cursor is None:
            start = 0
        elif isinstance(cursor, str) and cursor in self._tasks:
            start = ids.index(cursor)
        else:
            raise _invalid(f"not a cursor of tasks/list: {cursor!r}")
        page = ids[start : start + LIST_PAGE]
        following = ids[start + LIST_PAGE] if len(ids) > start + LIST_PAGE else None
        tasks = [self._tasks[task_id].state() for task_id in page]
        return _dump(mcp_types.ListTasksResult(tasks=tasks, next_cursor=following))

    def _cancel(self, task: _Task) -> dict[str, Any]:
        if task.terminal:
            raise _invalid(f"task {task.task_id} is already {task.status}")
        cancelled = mcp_types.ErrorData(code=mcp_types.INVALID_REQUEST, message="the task was cancelled")
        task.finish("cancelled", cancelled, "cancelled by the server")
        task.work.cancel()
        logger.info("server %r cancelled task %s", self.server, task.task_id)
        return _dump(mcp_types.CancelTaskResult.model_validate(task.state(), from_attributes=True))

    async def _result(self, task: _Task) -> dict[str, Any]:
        await task.finished.wait()  # tasks/result blocks until the task ends (or is dropped at its TTL)
        outcome = task.outcome
        if outcome is None:
            raise _invalid(f"task {task.task_id} was dropped after its TTL")
        if isinstance(outcome, mcp_types.ErrorData):
            raise MCPError.from_error_data(outcome)
        meta = dict(outcome.get("_meta") or {})
        meta[RELATED_TASK] = {"taskId": task.task_id}
        return {**outcome, "_meta": meta}

    # -- the background --------------------------------------------------------------------

    def _make_room(self) -> None:
        if len(self._tasks) < self.max_tasks:
            return
        done = next((task for task in self._tasks.values() if task.terminal), None)
        if done is None:
            raise MCPError(
                code=mcp_types.INVALID_REQUEST, message=f"too many tasks in progress (at most {self.max_tasks})"
            )
        self._drop(done)

    def _drop(self, task: _Task) -> None:
        self._tasks.pop(task.task_id, None)
        task.dropped = True
        task.life.cancel()
        task.finished.set()

    async def _run(self, task: _Task, work: Work) -> None:
        task.life.deadline = anyio.current_time() + task.ttl_ms / 1000
        with task.life:
            with task.work:
                try:
                    result = await work()
                except MCPError as exc:
                    task.finish("failed", exc.error, exc.error.message)
                except Exception as exc:  # noqa: BLE001 - as a plain request's handler would, the server gets an error
                    logger.exception("server %r: task %s failed", self.server, task.task_id)
                    task.finish("failed", mcp_types.ErrorData(code=mcp_types.INTERNAL_ERROR, message=str(exc)), None)
                else:
                    task.finish("completed", result, None)
            await anyio.sleep(math.inf)  # the result waits for the server until the TTL
        if not task.dropped:  # the TTL passed
            logger.info("server %r: task %s dropped after its TTL (%s)", self.server, task.task_id, task.status)
            self._drop(task)


def serve_tasks(session: ClientSession, tasks: ClientTasks) -> None:
    """Put `tasks` in front of `session`'s request handler, and in its `initialize` capabilities.

    Called before the session starts. The SDK offers no hook for either: its private `_on_request` and
    `_build_capabilities` are wrapped (checked against mcp 2.3).
    """
    plain_request: OnRequest = session._on_request  # noqa: SLF001
    plain_capabilities = session._build_capabilities  # noqa: SLF001

    def capabilities(version: str) -> mcp_types.ClientCapabilities:
        declared = plain_capabilities(version)
        if version not in TASK_VERSIONS:
            return declared
        return declared.model_copy(update={"tasks": tasks.capability(declared)})

    async def on_request(
        dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        version = session.protocol_version
        if version not in TASK_VERSIONS:
            return await plain_request(dctx, method, params)
        if method in ("tasks/get", "tasks/result", "tasks/list", "tasks/cancel"):
            return await tasks.serve(method, params)
        if method in TASKABLE and params is not None and params.get("task") is not None:
            try:
                methods.parse_server_request(method, version, params)  # a bad request fails now, not as a task
            except ValidationError as exc:
                raise _invalid(f"{method}: {exc.error_count()} invalid field(s)") from None

            async def work() -> dict[str, Any]:
                return await plain_request(dctx, method, params)

            return tasks.create(method, params["task"], work)
        return await plain_request(dctx, method, params)

    session._on_request = on_request  # type: ignore[method-assign]  # noqa: SLF001
    session._build_capabilities = capabilities  # type: ignore[method-assign]  # noqa: SLF001


@dataclass(kw_only=True)
class TaskingClient(Client):
    """`mcp.Client` that runs, for a 2025-11-25 server, the sampling and elicitation it sends as tasks."""

    tasks: ClientTasks | None = None

    async def _build_session(self, exit_stack: AsyncExitStack) -> ClientSession:
        session = await super()._build_session(exit_stack)
        if self.tasks is not None:
            serve_tasks(session, self.tasks)
        return session
