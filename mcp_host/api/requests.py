"""The HTTP API's request bodies as pydantic models, and the one mapping from their errors to a 400.

    reader = BodyReader(limit=8 * 1024 * 1024)
    body = await reader.read(request, ChatCompletionRequest)      # ApiError 400 / 413 on a bad body

Types are strict (`"stream": "no"` is not a boolean, `NaN` is not a temperature). OpenAI's shapes
accept unknown fields, because its clients send many (`n`, `user`, `logprobs`, ...); our own shapes
(sessions, approvals, the `mcp_host` extension) accept none, so a misspelt field is an error.
A body nested deeper than the JSON parser's limit (a few hundred levels) is a 400 too.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.requests import Request

from mcp_host.api.session_summary import unsafe_char
from mcp_host.errors import ApiError
from mcp_host.prompt.harmony import Effort

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"  # Harmony renders client tools as TypeScript functions
MAX_ATTACHMENTS = 16  # resources attached to one message, each read before the turn starts
MAX_URI_CHARS = 8192
MAX_ROOTS = 64
# Servers or plugins named in one body: more than anyone configures (a page that switches one of 150 servers off
# sends the other 149), still a bound on the work a body can ask for (2,000 names of 200 characters: 400 KB).
MAX_NAMES = 2000
# A server's or a plugin's name: long enough for any real one, short enough to quote back in an error.
Name = Annotated[str, Field(min_length=1, max_length=200)]
LogLevel = Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]


class OpenAIShape(BaseModel):
    """How OpenAI's and LM Studio's bodies are read: strict types, no NaN, unknown fields allowed."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow", frozen=True)


class ClosedShape(BaseModel):
    """As `OpenAIShape`, but an unknown field is an error: the host's own bodies, and LM Studio's v1 API."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid", frozen=True)


# -- chat completions ----------------------------------------------------------------------------


class ContentPart(OpenAIShape):
    """One part of a message's content; only text parts are read."""

    type: str
    text: str | None = None


class FunctionCall(OpenAIShape):
    name: str
    arguments: str | dict[str, Any] = "{}"  # LM Studio's older `function_call` example sends an object

    @property
    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


class ToolCall(OpenAIShape):
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall

    def openai_dict(self) -> dict[str, Any]:
        function = {"name": self.function.name, "arguments": self.function.arguments_json}
        return {"id": self.id, "type": "function", "function": function}


class ChatMessage(OpenAIShape):
    """A message of the conversation, in OpenAI's chat shape."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None  # the older single-call form LM Studio documents
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content)
        return self.content or ""

    @property
    def calls(self) -> list[ToolCall]:
        older = [ToolCall(function=self.function_call)] if self.function_call is not None else []
        return [*(self.tool_calls or []), *older]

    def openai_dict(self) -> dict[str, Any]:
        """The message as the chat template and `Chat.load_messages` read it: content as plain text."""
        message: dict[str, Any] = {"role": self.role, "content": self.text}
        if self.name is not None:
            message["name"] = self.name
        if self.role == "assistant" and self.calls:
            message["tool_calls"] = [call.openai_dict() for call in self.calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


class FunctionDefinition(OpenAIShape):
    name: str = Field(pattern=IDENTIFIER)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDefinition(OpenAIShape):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(OpenAIShape):
    name: str


class NamedToolChoice(OpenAIShape):
    type: Literal["function"] = "function"
    function: NamedFunction


class StreamOptions(OpenAIShape):
    include_usage: bool | None = None


class HostTools(ClosedShape):
    """The `mcp_host` extension: run these servers' or plugins' tools (or the native `browser` / `python`) here."""

    tools: list[str]


class ChatCompletionRequest(OpenAIShape):
    """`POST /v1/chat/completions` (and LM Studio's `/api/v0/chat/completions`)."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    max_tokens: int | None = Field(default=None, ge=-1)  # LM Studio's clients send -1: no limit
    max_completion_tokens: int | None = Field(default=None, ge=-1)
    reasoning_effort: Effort | None = None
    mcp_host: HostTools | None = None

    @property
    def streamed(self) -> bool:
        return bool(self.stream)

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and bool(self.stream_options.include_usage)

    def token_limit(self, default: int) -> int:
        """`max_tokens` (or `max_completion_tokens`); -1, 0 and absent mean the default limit."""
        limit = self.max_tokens if self.max_tokens is not None else self.max_completion_tokens
        return limit if limit is not None and limit > 0 else default


# -- sessions --------------------------------------------------------------------------------------


class SessionCreate(ClosedShape):
    """`POST /v1/sessions`; an empty body takes every default."""

    model: str | None = Field(default=None, max_length=500)  # None: the server's default model
    reasoning_effort: Effort | None = None
    instructions: str | None = None
    browser: bool = False
    python: bool = False
    plugins: list[Name] | None = Field(default=None, max_length=MAX_NAMES)  # None: every loaded plugin
    servers: list[Name] | None = Field(default=None, max_length=MAX_NAMES)  # None: every server of mcp.json
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)  # each answer of the model; None: 4096


class SessionTools(ClosedShape):
    """`PATCH /v1/sessions/{id}/tools`: only the fields sent change (`model_fields_set`); `null` servers or plugins
    means all of them."""

    servers: list[Name] | None = Field(default=None, max_length=MAX_NAMES)
    plugins: list[Name] | None = Field(default=None, max_length=MAX_NAMES)
    python: bool = False
    browser: bool = False


class ToolBudgetBody(ClosedShape):
    """`POST /v1/tools/budget`: what these tools would take of a prompt, as `mcp-host render` counts it."""

    servers: list[Name] | None = Field(default=None, max_length=MAX_NAMES)  # None: every server
    plugins: list[Name] | None = Field(default=None, max_length=MAX_NAMES)  # None: those on by default
    python: bool = False
    browser: bool = False
    reasoning_effort: Effort | None = None
    model: str | None = Field(default=None, max_length=500)  # whose context (None: the settings' context_tokens)


class AttachmentRef(ClosedShape):
    """A resource to put in the user's message: `{"server": "everything", "uri": "demo://..."}`."""

    server: str = Field(min_length=1)
    uri: str = Field(min_length=1, max_length=MAX_URI_CHARS)


class SessionMessage(ClosedShape):
    """`POST /v1/sessions/{id}/messages`; `attachments` are read from their servers before the turn."""

    content: str = Field(min_length=1)
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)


class ApprovalBody(ClosedShape):
    """`POST /v1/sessions/{id}/approvals/{call_id}`; `arguments` replaces the model's when allowing."""

    decision: Literal["allow", "always", "deny"]
    reason: str | None = None
    arguments: dict[str, Any] | None = None


class ElicitationBody(ClosedShape):
    """`POST /v1/sessions/{id}/elicitations/{elicitation_id}`; `content` (the form) is read when accepting."""

    action: Literal["accept", "decline", "cancel"]
    content: dict[str, Any] | None = None


class SessionRename(ClosedShape):
    """`PATCH /v1/sessions/{id}`: `{"title": "Trip plans"}`, stripped, 1 to 200 characters, on one line and
    without bidirectional controls (a title that reorders the list's text could pass for another chat's)."""

    model_config = ConfigDict(str_strip_whitespace=True)  # merged with ClosedShape's

    title: str = Field(min_length=1, max_length=200)

    @field_validator("title")
    @classmethod
    def _shown_as_written(cls, title: str) -> str:
        char = unsafe_char(title)
        if char is not None:
            raise ValueError(
                f"a title holds no control characters, line breaks or bidirectional controls; this one holds "
                f"U+{ord(char):04X} ({unicodedata.name(char, 'a control character')})"
            )
        return title


# -- server features -------------------------------------------------------------------------------


class PromptArguments(ClosedShape):
    """`POST /v1/servers/{name}/prompts/{prompt}`; an empty body passes no arguments."""

    arguments: dict[str, str] = Field(default_factory=dict)


class CompletionBody(ClosedShape):
    """`POST /v1/servers/{name}/completion`: suggestions for one argument of a prompt or a resource template."""

    prompt: str | None = Field(default=None, min_length=1)
    resource_template: str | None = Field(default=None, min_length=1, max_length=MAX_URI_CHARS)
    argument: str = Field(min_length=1)
    value: str = ""
    context: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_reference(self) -> CompletionBody:
        if (self.prompt is None) == (self.resource_template is None):
            raise ValueError("name either a 'prompt' or a 'resource_template' to complete an argument of")
        return self


class LogLevelBody(ClosedShape):
    """`PUT /v1/servers/{name}/log-level`: the least severe message the server should send."""

    level: LogLevel


class RootsBody(ClosedShape):
    """`PUT /v1/servers/{name}/roots`: absolute paths or `file://` URIs of this machine."""

    roots: list[str] = Field(max_length=MAX_ROOTS)

    @field_validator("roots")
    @classmethod
    def _absolute(cls, roots: list[str]) -> list[str]:
        for root in roots:
            if len(root) > MAX_URI_CHARS:
                raise ValueError(f"a root is longer than {MAX_URI_CHARS} characters")
            if not (
                root.startswith("file://") or PurePosixPath(root).is_absolute() or PureWindowsPath(root).is_absolute()
            ):
                raise ValueError(f"{root!r} is neither an absolute path nor a file:// URI")
        return roots


# -- reading and the error mapping -----------------------------------------------------------------

Body = TypeVar("Body", bound=BaseModel)


# Bodies up to this size are parsed on the event loop (well under a millisecond); larger ones in a worker thread.
_PARSE_INLINE_BYTES = 256 * 1024


class BodyReader:
    """Reads a request body (at most `limit` bytes) into one of the models above."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    async def read(self, request: Request, model: type[Body], *, empty: Body | None = None) -> Body:
        """The validated body; `empty` stands for a request without one. Raises `ApiError` (400, 413)."""
        raw = await self._raw(request)
        if empty is not None and not raw.strip():
            return empty
        try:
            if len(raw) < _PARSE_INLINE_BYTES:
                return model.model_validate_json(raw)
            return await anyio.to_thread.run_sync(model.model_validate_json, raw)  # megabytes: off the event loop
        except ValidationError as exc:
            raise invalid_request(exc, raw) from exc

    async def _raw(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            raise ApiError(413, f"the request body is larger than {self.limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.limit:
                raise ApiError(413, f"the request body is larger than {self.limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def invalid_request(error: ValidationError, raw: bytes) -> ApiError:
    """A validation error as OpenAI's 400: `param` is the dotted path of the first error in the body."""
    first = error.errors(include_url=False)[0]
    param = _input_path(first["loc"], first["type"] == "missing", raw)
    if first["type"] == "model_type" and param is None:
        message = "the request body must be a JSON object"
    else:
        message = f"{param or 'the request body'}: {first['msg']}"
    if error.error_count() > 1:
        message += f" (and {error.error_count() - 1} more)"
    return ApiError(400, message, param=param)


def _input_path(loc: tuple[int | str, ...], missing: bool, raw: bytes) -> str | None:
    """`loc` walked along the input, leaving out pydantic's own labels (union members such as `str`)."""
    try:
        node: object = json.loads(raw)
    except (ValueError, RecursionError):
        return ".".join(map(str, loc)) or None
    path: list[str] = []
    for index, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif not (missing and index == len(loc) - 1):
            continue  # a label of pydantic's, not a key of the body
        path.append(str(part))
    return ".".join(path) or None
