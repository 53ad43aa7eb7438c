"""What every response turn shares, and the turn of a request without MCP tools.

    conversation = Conversation.of(body, previous)        # raises ApiError (400) for answers to nothing
    turn = FunctionsTurn(body, conversation, backend, renderer)
    await turn.prepare()                                  # rendered: ApiError (400) for what cannot be
    outcome = await turn.run(draft)                       # the model's answer, into the ResponseDraft

Without MCP tools nothing runs on the server: the conversation (the previous response's, then this
request's input) is rendered whole, as `/v1/chat/completions` renders its messages (Harmony for
gpt-oss, the model's template otherwise), and one generation answers it. A function call ends the
response; the client's `function_call_output` in the next request, with or without
`previous_response_id`, continues the conversation. Nothing of the turn lives on in memory, so it
continues the same after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mcp_host.api.completions import Completion, prepare_completion
from mcp_host.api.requests import ChatCompletionRequest
from mcp_host.api.responses_history import chat_messages
from mcp_host.api.responses_output import ResponseDraft, Status, usage_json
from mcp_host.api.responses_requests import (
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    McpApprovalRequestItem,
    McpApprovalResponseItem,
    NamedFunction,
    ResponsesRequest,
)
from mcp_host.api.responses_store import StoredResponse
from mcp_host.backends.base import (
    Backend,
    ChatBackend,
    ModelOutput,
    OutputEnd,
    OutputReasoning,
    OutputText,
    OutputToolCall,
)
from mcp_host.errors import ApiError, BackendError
from mcp_host.prompt.harmony import HarmonyRenderer

DEFAULT_MAX_OUTPUT_TOKENS = 4096


def response_fields(body: ResponsesRequest, model: str) -> dict[str, Any]:
    """The fields of the Response object that echo the request (tool headers and tokens left out)."""
    tools = [
        tool.model_dump(mode="json", exclude_none=True, exclude={"headers", "authorization"}) for tool in body.tools
    ]
    choice = body.tool_choice
    return {
        "model": model,
        "instructions": body.instructions,
        "metadata": body.metadata or {},
        "parallel_tool_calls": body.parallel_tool_calls,
        "previous_response_id": body.previous_response_id,
        "reasoning": {"effort": body.effort, "summary": None},
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "max_output_tokens": body.max_output_tokens,
        "text": {"format": {"type": "text"}},
        "tool_choice": choice if isinstance(choice, str) else choice.model_dump(mode="json", exclude_none=True),
        "tools": tools,
        "truncation": body.truncation,
        "user": body.user,
        "store": body.store,
        "background": False,
    }


def input_json(body: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's input items as JSON (a string input is one user message)."""
    return [item.model_dump(mode="json", exclude_none=True) for item in body.items]


@dataclass
class Conversation:
    """The conversation a request continues: the previous response's, then this request's input."""

    earlier: list[dict[str, Any]]
    input: list[dict[str, Any]]
    answered_calls: dict[str, str] = field(default_factory=dict)  # function call id -> the client's output
    answered_approvals: dict[str, McpApprovalResponseItem] = field(default_factory=dict)

    @property
    def items(self) -> list[dict[str, Any]]:
        return [*self.earlier, *self.input]

    @classmethod
    def of(cls, body: ResponsesRequest, previous: StoredResponse | None) -> Conversation:
        """Raises `ApiError` (400) for an output or an answer to no call of the conversation, and for a
        previous response's call left unanswered."""
        earlier = previous.conversation if previous is not None else []
        called = {item["call_id"] for item in earlier if item.get("type") == "function_call"}
        asked = {item["id"] for item in earlier if item.get("type") == "mcp_approval_request"}
        conversation = cls(earlier, input_json(body))
        for index, item in enumerate(body.items):
            if isinstance(item, FunctionCallItem):
                called.add(item.call_id)
            elif isinstance(item, McpApprovalRequestItem):
                asked.add(item.id)
            elif isinstance(item, FunctionCallOutputItem):
                if item.call_id not in called:
                    raise ApiError(
                        400,
                        f"no function call {item.call_id!r} in this conversation for this output",
                        param=f"input.{index}.call_id",
                    )
                conversation.answered_calls[item.call_id] = item.text
            elif isinstance(item, McpApprovalResponseItem):
                if item.approval_request_id not in asked:
                    raise ApiError(
                        400,
                        f"no approval request {item.approval_request_id!r} in this conversation",
                        param=f"input.{index}.approval_request_id",
                    )
                conversation.answered_approvals[item.approval_request_id] = item
        if previous is not None:
            missing = [call for call in previous.waiting_calls if call not in conversation.answered_calls]
            if missing:
                raise ApiError(400, f"no tool output found for function call {missing[0]}", param="input")
        return conversation


@dataclass
class TurnOutcome:
    """How a turn ended, for the response's status and its record."""

    status: Status = "completed"
    usage: dict[str, Any] = field(
        default_factory=lambda: usage_json(input_tokens=0, cached_tokens=0, output_tokens=0, reasoning_tokens=0)
    )
    error: str | None = None
    incomplete_reason: str | None = None
    waiting_calls: list[str] = field(default_factory=list)
    waiting_approvals: list[str] = field(default_factory=list)

    async def finish(self, draft: ResponseDraft) -> None:
        await draft.finish(self.status, self.usage, error=self.error, incomplete_reason=self.incomplete_reason)


def count_tokens(backend: Backend | ChatBackend, renderer: HarmonyRenderer, text: str) -> int:
    """Tokens of `text` as the model counts them (reasoning tokens); 0 where a server holds the tokenizer."""
    if not text or not isinstance(backend, Backend):
        return 0
    if backend.capabilities.prompt_format == "harmony":
        return len(renderer.encoding.encode(text, disallowed_special=()))
    return len(backend.tokenize(text, special=False))


class FunctionsTurn:
    """One generation over the whole conversation, with the client's function tools (see the module)."""

    def __init__(
        self,
        body: ResponsesRequest,
        conversation: Conversation,
        backend: Backend | ChatBackend,
        renderer: HarmonyRenderer,
    ) -> None:
        self.body = body
        self.conversation = conversation
        self.backend = backend
        self.renderer = renderer
        self._completion: Completion | None = None

    async def prepare(self) -> None:
        """Render the conversation. Raises `ApiError` (400: nothing to answer, or too long for the model)."""
        try:
            self._completion = await prepare_completion(self.completion_request(), self.renderer, self.backend)
        except ApiError as exc:
            if exc.param != "messages":
                raise
            raise ApiError(exc.status, str(exc), param="input", code=exc.code) from None

    def completion_request(self) -> ChatCompletionRequest:
        """The conversation as a chat completion request. Raises `ApiError` (400)."""
        body = self.body
        messages = chat_messages(self.conversation.items)
        if body.instructions:
            messages.insert(0, {"role": "system", "content": body.instructions})
        if not messages:
            raise ApiError(400, "there is nothing to answer: give some input", param="input")
        tools = [] if body.tool_choice == "none" else body.function_tools
        choice = body.tool_choice
        request: dict[str, Any] = {
            "model": self.backend.name,
            "messages": messages,
            "tools": [_chat_tool(tool) for tool in tools] or None,
            "tool_choice": (
                {"type": "function", "function": {"name": choice.name}}
                if isinstance(choice, NamedFunction)
                else choice
                if isinstance(choice, str) and tools
                else None
            ),
            "temperature": body.temperature,
            "top_p": body.top_p,
            "seed": body.seed,
            "max_completion_tokens": body.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS,
            "reasoning_effort": body.effort,
        }
        try:
            return ChatCompletionRequest.model_validate(request)
        except ValidationError as exc:  # a replayed item the chat shape cannot hold
            problem = exc.errors()[0]["msg"]
            raise ApiError(400, f"the conversation cannot be rendered: {problem}", param="input") from exc

    async def run(self, draft: ResponseDraft) -> TurnOutcome:
        """Generate into `draft` (after `prepare()`); the model's failure is a failed response."""
        completion = self._completion
        assert completion is not None, "prepare() comes first"
        outcome = TurnOutcome()
        reasoning: list[str] = []

        async def emit(piece: ModelOutput) -> None:
            if isinstance(piece, OutputReasoning):
                reasoning.append(piece.text)
                await draft.reasoning(piece.text)
            elif isinstance(piece, OutputText):
                await draft.text(piece.text)
            elif isinstance(piece, OutputToolCall):
                await draft.function_call(piece.id, piece.name, piece.arguments)
                outcome.waiting_calls.append(piece.id)
            elif isinstance(piece, OutputEnd):
                stats = piece.stats
                outcome.usage = usage_json(
                    input_tokens=stats.prompt_tokens,
                    cached_tokens=stats.reused_prompt_tokens,
                    output_tokens=stats.generated_tokens,
                    reasoning_tokens=count_tokens(self.backend, self.renderer, "".join(reasoning)),
                )
                if piece.finish_reason == "length":
                    outcome.status, outcome.incomplete_reason = "incomplete", "max_output_tokens"

        try:
            await completion.run(self.renderer, emit)
        except BackendError as exc:
            outcome.status, outcome.error = "failed", f"the model failed: {exc}"
        return outcome


def _chat_tool(tool: FunctionTool) -> dict[str, Any]:
    parameters = tool.parameters or {"type": "object", "properties": {}}
    function: dict[str, Any] = {"name": tool.name, "parameters": parameters}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}
