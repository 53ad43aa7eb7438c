"""Client-side MCP tasks: the sampling and elicitation a 2025-11-25 server sends as tasks, run by the host.

server-everything's async triggers (over stdio and Streamable HTTP, and through a chat turn) poll `tasks/get`
and fetch `tasks/result`; a scripted raw server (`fixtures/task_requester.py`) drives `tasks/cancel`,
`tasks/list`, TTLs and bad requests; an in-process SDK server reads the capability each era declares.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pytest
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError

from mcp_host.agent import ApprovalAnswer, ApprovalRequired, ElicitationAnswer, ElicitationRequired, ToolCallResult
from mcp_host.config.mcpjson import McpConfig, ServerConfig, StdioServerConfig
from mcp_host.host import Host
from mcp_host.servers import ServerManager, ServerState
from mcp_host.servers.asks import SamplingReply
from mcp_host.servers.client_tasks import ClientTasks, TaskingClient
from tests.conftest import everything_command, fast_settings, write_config
from tests.test_client_features import (  # noqa: F401 - `everything` is a fixture (stdio and HTTP)
    ScriptedUser,
    connected,
    everything,
    harmony_script,
)

pytestmark = pytest.mark.anyio

REQUESTER = Path(__file__).parent / "fixtures" / "task_requester.py"
FORM = {
    "message": "Your name?",
    "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
}


class RefusingUser(ScriptedUser):
    """Answers forms, but nobody approves sampling."""

    async def sample(self, server: str, params: mcp_types.CreateMessageRequestParams) -> SamplingReply:
        self.samplings.append(params)
        return mcp_types.ErrorData(code=mcp_types.INVALID_REQUEST, message="the user declined sampling")


class SlowUser(ScriptedUser):
    """Takes their time over every form: until the task is cancelled or dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = anyio.Event()
        self.cancelled = anyio.Event()

    async def elicit(self, server: str, params: mcp_types.ElicitRequestParams) -> mcp_types.ElicitResult:
        self.elicitations.append(params)
        self.asked.set()
        try:
            await anyio.sleep_forever()
        finally:
            self.cancelled.set()
        raise AssertionError("unreachable")


# -- server-everything's async triggers ---------------------------------------------------


async def test_async_elicitation_is_answered_as_a_task(everything: ServerConfig) -> None:  # noqa: F811
    user = ScriptedUser()
    async with connected(everything, user) as manager:
        accepted = await manager.call_tool("everything.trigger-elicitation-request-async", {})
        assert not accepted.is_error, accepted.text
        assert "[COMPLETED] User provided the requested information!" in accepted.text
        assert "- Name: Ada Lovelace" in accepted.text and "io.modelcontextprotocol/related-task" in accepted.text
        (asked,) = user.elicitations
        assert isinstance(asked, mcp_types.ElicitRequestFormParams) and "async task demo" in asked.message
        user.action = "decline"
        declined = await manager.call_tool("everything.trigger-elicitation-request-async", {})
        assert "[DECLINED]" in declined.text, declined.text
        assert [task.status for task in manager.connection("everything").tasks] == ["completed", "completed"]


async def test_async_sampling_is_answered_as_a_task_and_a_refusal_fails_it(everything: ServerConfig) -> None:  # noqa: F811
    user = ScriptedUser()
    async with connected(everything, user) as manager:
        sampled = await manager.call_tool(
            "everything.trigger-sampling-request-async", {"prompt": "Say hi", "maxTokens": 7}
        )
        assert not sampled.is_error, sampled.text
        assert "[COMPLETED] Async sampling completed!" in sampled.text and "sampled reply" in sampled.text
        (asked,) = user.samplings
        assert asked.max_tokens == 7 and "Say hi" in json.dumps(asked.model_dump(mode="json"))
    refusing = RefusingUser()
    async with connected(everything, refusing) as manager:
        refused = await manager.call_tool("everything.trigger-sampling-request-async", {"prompt": "Say hi"})
        assert "[FAILED] the user declined sampling" in refused.text, refused.text
        assert [task.status for task in manager.connection("everything").tasks] == ["failed"]


async def test_async_triggers_ask_through_the_chat_like_plain_requests(tmp_path: Path) -> None:
    """The chat shows the async form and asks to approve the async sampling; its own model writes the reply."""
    config = write_config(tmp_path / "mcp.json", {"everything": {"command": everything_command(), "args": ["stdio"]}})
    settings = tmp_path / "settings.toml"
    settings.write_text('[permissions.servers]\neverything = "allow"\n')
    backend = harmony_script(
        "<|channel|>commentary to=functions.everything__trigger_elicitation_request_async"
        " <|constrain|>json<|message|>{}<|call|>",
        "<|channel|>commentary to=functions.everything__trigger_sampling_request_async"
        ' <|constrain|>json<|message|>{"prompt": "Greet the tester"}<|call|>',
        "<|channel|>final<|message|>Hello from the chat's model<|return|>",  # the sampling request's own turn
        "<|channel|>final<|message|>done<|return|>",
    )
    async with Host(config, settings_path=settings, plugins=False) as host:
        await host.wait_settled()
        chat = host.chat(backend)
        events: list[Any] = []
        async with chat.turn("go") as stream:
            async for event in stream:
                events.append(event)
                if isinstance(event, ElicitationRequired):
                    chat.answer_elicitation(event.elicitation_id, ElicitationAnswer("accept", {"name": "Grace"}))
                elif isinstance(event, ApprovalRequired):
                    chat.answer(event.call_id, ApprovalAnswer("allow"))
    (form,) = [e for e in events if isinstance(e, ElicitationRequired)]
    assert form.server == "everything" and form.requested_schema and "name" in form.requested_schema["properties"]
    (approval,) = [e for e in events if isinstance(e, ApprovalRequired)]
    assert approval.tool == "everything.sampling/createMessage"
    elicited, sampled = [e for e in events if isinstance(e, ToolCallResult)]
    assert "[COMPLETED]" in elicited.text and "- Name: Grace" in elicited.text
    assert "[COMPLETED]" in sampled.text and "Hello from the chat's model" in sampled.text


# -- the protocol, scripted -----------------------------------------------------------------


async def ask(manager: ServerManager, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Have the scripted server send `method` to the host; its answer, `{"result": ...}` or `{"error": ...}`."""
    result = await manager.call_tool("fx.request", {"method": method, "params": params or {}})
    assert not result.is_error, result.text
    answer: dict[str, Any] = json.loads(result.text)
    return answer


def requester() -> McpConfig:
    return McpConfig(servers={"fx": StdioServerConfig(command=sys.executable, args=[str(REQUESTER)])})


async def test_cancelling_a_task_cancels_its_question() -> None:
    user = SlowUser()
    async with ServerManager(fast_settings(), asks=user) as manager:
        await manager.apply(requester())
        await manager.wait_settled()
        created = await ask(manager, "elicitation/create", {**FORM, "task": {"ttl": 60000}})
        task = created["result"]["task"]
        assert task["status"] == "working" and task["ttl"] == 60000 and task["pollInterval"] > 0
        with anyio.fail_after(5):
            await user.asked.wait()  # the question reached the user, as a plain one would
        polled = await ask(manager, "tasks/get", {"taskId": task["taskId"]})
        assert polled["result"]["status"] == "working"
        assert polled["result"]["statusMessage"] == "waiting for the user's answer"
        cancelled = await ask(manager, "tasks/cancel", {"taskId": task["taskId"]})
        assert cancelled["result"]["status"] == "cancelled"
        with anyio.fail_after(5):
            await user.cancelled.wait()  # the pending question went with it
        after = await ask(manager, "tasks/get", {"taskId": task["taskId"]})
        assert after["result"]["status"] == "cancelled"
        result = await ask(manager, "tasks/result", {"taskId": task["taskId"]})
        assert "cancelled" in result["error"]["message"]
        again = await ask(manager, "tasks/cancel", {"taskId": task["taskId"]})
        assert again["error"]["code"] == mcp_types.INVALID_PARAMS and "already cancelled" in again["error"]["message"]


async def test_a_task_whose_result_is_never_fetched_is_dropped_after_its_ttl() -> None:
    user = SlowUser()
    async with ServerManager(fast_settings(), asks=user) as manager:
        await manager.apply(requester())
        await manager.wait_settled()
        connection = manager.connection("fx")
        answered = await ask(manager, "sampling/createMessage", {"messages": [], "maxTokens": 5, "task": {"ttl": 400}})
        pending = await ask(manager, "elicitation/create", {**FORM, "task": {"ttl": 400}})
        with anyio.fail_after(5):
            await user.asked.wait()
        assert {task.status for task in connection.tasks} == {"completed", "working"}
        with anyio.fail_after(5):
            while connection.tasks:  # both dropped at their TTL: one answered, one still asking
                await anyio.sleep(0.05)
        assert user.cancelled.is_set()  # the question still open was cancelled with its task
        for created in (answered, pending):
            gone = await ask(manager, "tasks/get", {"taskId": created["result"]["task"]["taskId"]})
            assert gone["error"]["code"] == mcp_types.INVALID_PARAMS and "TTL" in gone["error"]["message"]
        assert connection.state is ServerState.READY


async def test_tasks_are_listed_fetched_and_bad_requests_refused_at_once() -> None:
    user = ScriptedUser()
    async with ServerManager(fast_settings(), asks=user) as manager:
        await manager.apply(requester())
        await manager.wait_settled()
        created = await ask(manager, "elicitation/create", {**FORM, "task": {}})
        task_id = created["result"]["task"]["taskId"]
        result = await ask(manager, "tasks/result", {"taskId": task_id})  # blocks until answered
        assert result["result"]["action"] == "accept" and result["result"]["content"] == {"name": "Ada Lovelace"}
        assert result["result"]["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task_id}
        listed = await ask(manager, "tasks/list")
        assert [(t["taskId"], t["status"]) for t in listed["result"]["tasks"]] == [(task_id, "completed")]
        assert listed["result"]["tasks"][0]["ttl"] == 10 * 60 * 1000  # no TTL asked: the host's default
        for method, params in [
            ("tasks/get", {"taskId": "nope"}),
            ("tasks/result", {}),
            ("tasks/list", {"cursor": "nope"}),
            ("elicitation/create", {**FORM, "task": {"ttl": "soon"}}),
            ("sampling/createMessage", {"maxTokens": "many", "task": {"ttl": 1000}}),  # bad before it is a task
        ]:
            refused = await ask(manager, method, params)
            assert refused["error"]["code"] == mcp_types.INVALID_PARAMS, (method, refused)
        assert len(manager.connection("fx").tasks) == 1 and len(user.elicitations) == 1


async def test_the_tasks_capability_is_declared_where_it_exists() -> None:
    """2025-11-25 `initialize` declares it; a 2026-07-28 client sends no requests-as-tasks and declares none."""
    async with ServerManager(fast_settings(), asks=ScriptedUser()) as manager:
        await manager.apply(requester())
        await manager.wait_settled()
        declared = json.loads((await manager.call_tool("fx.capabilities", {})).text)
    assert declared["tasks"] == {
        "list": {},
        "cancel": {},
        "requests": {"sampling": {"createMessage": {}}, "elicitation": {"create": {}}},
    }
    server = MCPServer("caps")

    @server.tool()
    def capabilities(ctx: Context) -> str:
        caps = ctx.client_capabilities
        return json.dumps(caps.model_dump(by_alias=True, mode="json", exclude_none=True) if caps else None)

    async def elicit(context: Any, params: mcp_types.ElicitRequestParams) -> mcp_types.ElicitResult:
        return mcp_types.ElicitResult(action="decline")

    for mode, has_tasks in (("legacy", True), ("2026-07-28", False)):
        async with (
            ClientTasks("caps") as tasks,
            TaskingClient(server, mode=mode, tasks=tasks, elicitation_callback=elicit) as client,
        ):
            result = await client.call_tool("capabilities", {})
            text = result.content[0]
            assert isinstance(text, mcp_types.TextContent)
            seen = json.loads(text.text)
            assert ("tasks" in seen) == has_tasks, (mode, seen)
            if has_tasks:  # no sampling callback: only elicitation runs as a task
                assert seen["tasks"]["requests"] == {"elicitation": {"create": {}}}


async def test_tasks_in_progress_are_bounded_and_finished_ones_make_room() -> None:
    release = anyio.Event()

    async def work() -> dict[str, Any]:
        await release.wait()
        return {"action": "decline"}

    async with ClientTasks("bounded", max_tasks=2) as tasks:
        first = tasks.create("elicitation/create", {"ttl": 60000}, work)["task"]["taskId"]
        tasks.create("elicitation/create", {"ttl": 60000}, work)
        with pytest.raises(MCPError) as full:
            tasks.create("elicitation/create", {"ttl": 60000}, work)
        assert full.value.error.code == mcp_types.INVALID_REQUEST and "at most 2" in full.value.error.message
        release.set()
        with anyio.fail_after(5):
            while any(task.status == "working" for task in tasks.states):
                await anyio.sleep(0.01)
        third = tasks.create("elicitation/create", {"ttl": 60000}, work)["task"]["taskId"]
        assert [task.task_id for task in tasks.states][-1] == third and first not in {t.task_id for t in tasks.states}
    assert tasks.states == []  # closed: nothing held
