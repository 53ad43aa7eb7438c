"""The server features beyond tools, on one connected `mcp.Client`: resources, prompts, completion, tasks.

`Connection` calls these with its client once the server is ready; each list follows every page
(bounded by `MAX_PAGES`, and by a cursor seen twice).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import mcp_types
from mcp import Client
from mcp.shared.dispatcher import CallOptions
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

MAX_PAGES = 1000
# A task the server did not give a poll interval for is polled this often, and never faster than the floor.
TASK_POLL_DEFAULT_S = 1.0
TASK_POLL_FLOOR_S = 0.05
TASK_TTL_MS = 30 * 60 * 1000
TERMINAL_TASK_STATES = ("completed", "failed", "cancelled")

_T = TypeVar("_T")
Progress = Callable[[float, float | None, str | None], Awaitable[None]]


async def all_pages(fetch: Callable[[str | None], Awaitable[tuple[list[_T], str | None]]], what: str) -> list[_T]:
    items: list[_T] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page, cursor = await fetch(cursor)
        items.extend(page)
        if cursor is None or cursor in seen:
            return items
        seen.add(cursor)
    logger.warning("stopped listing %s after %d pages", what, MAX_PAGES)
    return items


async def list_resources(client: Client) -> list[mcp_types.Resource]:
    async def page(cursor: str | None) -> tuple[list[mcp_types.Resource], str | None]:
        result = await client.list_resources(cursor=cursor, cache_mode="refresh")
        return list(result.resources), result.next_cursor

    return await all_pages(page, "resources")


async def list_resource_templates(client: Client) -> list[mcp_types.ResourceTemplate]:
    async def page(cursor: str | None) -> tuple[list[mcp_types.ResourceTemplate], str | None]:
        result = await client.list_resource_templates(cursor=cursor, cache_mode="refresh")
        return list(result.resource_templates), result.next_cursor

    return await all_pages(page, "resource templates")


async def list_prompts(client: Client) -> list[mcp_types.Prompt]:
    async def page(cursor: str | None) -> tuple[list[mcp_types.Prompt], str | None]:
        result = await client.list_prompts(cursor=cursor, cache_mode="refresh")
        return list(result.prompts), result.next_cursor

    return await all_pages(page, "prompts")


@dataclass(frozen=True)
class ResourceText:
    """What a resource read gives a person or a model: its text, or a note for binary contents."""

    uri: str
    mime_type: str | None
    text: str
    binary_bytes: int = 0


def resource_texts(result: mcp_types.ReadResourceResult) -> list[ResourceText]:
    parts = []
    for contents in result.contents:
        if isinstance(contents, mcp_types.TextResourceContents):
            parts.append(ResourceText(contents.uri, contents.mime_type, contents.text))
        else:
            size = len(contents.blob) * 3 // 4
            note = f"[binary resource {contents.uri}, {contents.mime_type or 'unknown type'}, {size} bytes]"
            parts.append(ResourceText(contents.uri, contents.mime_type, note, binary_bytes=size))
    return parts


def prompt_text(result: mcp_types.GetPromptResult) -> list[tuple[str, str]]:
    """A prompt's messages as (role, text) pairs; embedded resources give their text, images a note."""
    messages: list[tuple[str, str]] = []
    for message in result.messages:
        content = message.content
        if isinstance(content, mcp_types.TextContent):
            text = content.text
        elif isinstance(content, mcp_types.EmbeddedResource):
            resource = content.resource
            text = (
                resource.text if isinstance(resource, mcp_types.TextResourceContents) else f"[resource {resource.uri}]"
            )
        elif isinstance(content, mcp_types.ResourceLink):
            text = f"[resource link {content.uri}]"
        else:
            text = f"[{content.type} content]"
        messages.append((message.role, text))
    return messages


# -- tasks ------------------------------------------------------------------------------------


class TaskState(BaseModel):
    """A task's state as servers send it (leniently: servers leave out timestamps the schema requires)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    task_id: str = Field(alias="taskId")
    status: str
    status_message: str | None = Field(default=None, alias="statusMessage")
    poll_interval: float | None = Field(default=None, alias="pollInterval")


async def _raw_request(client: Client, request: mcp_types.Request[Any, Any]) -> dict[str, Any]:
    """Send `request` and return the server's result unvalidated.

    The SDK validates a `tools/call` result as a `CallToolResult` and has no task support of its own,
    so task requests go through its dispatcher, stamped as every other request is.
    """
    session = client.session
    data = request.model_dump(by_alias=True, mode="json", exclude_none=True)
    options: CallOptions = {}
    session._stamp(data, options)  # noqa: SLF001 - the SDK's own per-request stamping (version, meta)
    raw = await session._dispatcher.send_raw_request(data["method"], data.get("params"), options)  # noqa: SLF001
    return dict(raw)


def server_runs_tool_tasks(client: Client) -> bool:
    tasks = client.server_capabilities.tasks
    return tasks is not None and tasks.requests is not None and tasks.requests.tools is not None


async def call_as_task(
    client: Client,
    tool: str,
    arguments: dict[str, Any],
    progress: Progress | None,
) -> mcp_types.CallToolResult:
    """Run a tool as a task: create it, poll until it ends (its status message is progress), fetch the result.

    Cancelled from outside, the task is cancelled on the server too.
    """
    params = mcp_types.CallToolRequestParams(
        name=tool, arguments=arguments, task=mcp_types.TaskMetadata(ttl=TASK_TTL_MS)
    )
    created = await _raw_request(client, mcp_types.CallToolRequest(params=params))
    if "task" not in created:
        return mcp_types.CallToolResult.model_validate(created)  # `optional`: the server answered at once
    task = TaskState.model_validate(created["task"])
    try:
        polls = 0
        while task.status not in TERMINAL_TASK_STATES:
            if task.status == "input_required":
                break  # tasks/result blocks while the server asks its questions, then gives the result
            interval = (task.poll_interval or TASK_POLL_DEFAULT_S * 1000) / 1000
            await anyio.sleep(max(interval, TASK_POLL_FLOOR_S))
            state = await _raw_request(
                client, mcp_types.GetTaskRequest(params=mcp_types.GetTaskRequestParams(task_id=task.task_id))
            )
            task = TaskState.model_validate(state)
            polls += 1
            if progress is not None and task.status_message:
                await progress(polls, None, task.status_message)
        if task.status == "cancelled":
            return mcp_types.CallToolResult(
                content=[mcp_types.TextContent(text=f"the task was cancelled: {task.status_message or ''}")],
                is_error=True,
            )
        payload = await _raw_request(
            client, mcp_types.GetTaskPayloadRequest(params=mcp_types.GetTaskPayloadRequestParams(task_id=task.task_id))
        )
        return mcp_types.CallToolResult.model_validate(payload)
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await _raw_request(
                client, mcp_types.CancelTaskRequest(params=mcp_types.CancelTaskRequestParams(task_id=task.task_id))
            )
        raise
