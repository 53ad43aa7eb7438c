"""The request body of `POST /v1/responses` as pydantic models (OpenAI's Responses API, as its client sends it).

    body = await reader.read(request, ResponsesRequest)     # ApiError 400 with `param` on a bad body

Like every OpenAI shape here the models are strict (`"stream": "no"` is not a boolean) and accept
unknown fields, because OpenAI's clients send many (`include`, `prompt_cache_key`, `service_tier`, ...).
Input items and tools are told apart by `type` (a message may leave it out), so an unknown item or tool
type is one clear error naming its place (`input.3`, `tools.0`). What this host cannot do is refused
with a 400 rather than ignored: structured output (`text.format` other than text), background
responses, images and files in the input, OpenAI's hosted connectors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from mcp_host.prompt.harmony import Effort

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"  # Harmony renders function tools as TypeScript functions
LABEL = r"^[A-Za-z0-9_-]{1,64}$"  # a server label names the MCP tools the model sees: `label__tool`
MAX_METADATA_KEYS = 16  # OpenAI's limits
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512


class _Shape(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow", frozen=True)


def _kind(default: str | None, what: str, tags: tuple[str, ...]) -> Any:
    """A discriminator on `type` that reads a dict or a model; `default` stands for a missing `type`."""

    def kind(value: Any) -> str | None:
        found = value.get("type", default) if isinstance(value, dict) else getattr(value, "type", default)
        return found if isinstance(found, str) else None

    return Discriminator(
        kind, custom_error_type="unknown_type", custom_error_message=f"{what} type must be one of {', '.join(tags)}"
    )


def _text_or_list(value: Any) -> str:
    return "text" if isinstance(value, str) else "list"


# -- input items -------------------------------------------------------------------------------------


class ContentPart(_Shape):
    """Text in a message (`input_text`, or `output_text` / `refusal` when an assistant message is replayed)."""

    type: Literal["input_text", "output_text", "refusal"]
    text: str | None = None
    refusal: str | None = None

    @property
    def plain(self) -> str:
        return self.text if self.text is not None else self.refusal or ""


Content = Annotated[
    Annotated[str, Tag("text")] | Annotated[list[ContentPart], Tag("list")], Discriminator(_text_or_list)
]


def content_text(content: str | list[ContentPart]) -> str:
    return content if isinstance(content, str) else "".join(part.plain for part in content)


class MessageItem(_Shape):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: Content
    id: str | None = None

    @property
    def text(self) -> str:
        return content_text(self.content)


class FunctionCallItem(_Shape):
    """A call the model made (replayed from an earlier response's output)."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None


class FunctionCallOutputItem(_Shape):
    """The client's result of a function call."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: Content
    id: str | None = None

    @property
    def text(self) -> str:
        return content_text(self.output)


class ReasoningItem(_Shape):
    """Reasoning of an earlier turn: accepted, and left out of the prompt (Harmony drops it once a turn ended)."""

    type: Literal["reasoning"]
    id: str | None = None
    summary: list[dict[str, Any]] = Field(default_factory=list)
    content: list[dict[str, Any]] | None = None


class McpListToolsItem(_Shape):
    type: Literal["mcp_list_tools"]
    id: str | None = None
    server_label: str
    tools: list[dict[str, Any]] = Field(default_factory=list)


class McpCallItem(_Shape):
    """An MCP call that ran (replayed): its arguments and output go back into the prompt."""

    type: Literal["mcp_call"]
    id: str | None = None
    server_label: str
    name: str
    arguments: str
    output: str | None = None
    error: Any = None
    approval_request_id: str | None = None


class McpApprovalRequestItem(_Shape):
    type: Literal["mcp_approval_request"]
    id: str = Field(min_length=1)
    server_label: str
    name: str
    arguments: str


class McpApprovalResponseItem(_Shape):
    """The client's answer to an `mcp_approval_request`."""

    type: Literal["mcp_approval_response"]
    approval_request_id: str = Field(min_length=1)
    approve: bool
    reason: str | None = None
    id: str | None = None


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[McpListToolsItem, Tag("mcp_list_tools")]
    | Annotated[McpCallItem, Tag("mcp_call")]
    | Annotated[McpApprovalRequestItem, Tag("mcp_approval_request")]
    | Annotated[McpApprovalResponseItem, Tag("mcp_approval_response")],
    _kind(
        "message",
        "an input item's",
        (
            "message",
            "function_call",
            "function_call_output",
            "reasoning",
            "mcp_list_tools",
            "mcp_call",
            "mcp_approval_request",
            "mcp_approval_response",
        ),
    ),
]
Input = Annotated[Annotated[str, Tag("text")] | Annotated[list[InputItem], Tag("list")], Discriminator(_text_or_list)]


# -- tools -------------------------------------------------------------------------------------------


class FunctionTool(_Shape):
    """A function the client runs: the model's call comes back as a `function_call` item."""

    type: Literal["function"]
    name: str = Field(pattern=IDENTIFIER, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolFilter(_Shape):
    """OpenAI's tool filter: names, and/or the tools the server marks read-only."""

    tool_names: list[str] | None = None
    read_only: bool | None = None

    def matches(self, name: str, annotations: dict[str, Any] | None) -> bool:
        named = self.tool_names is not None and name in self.tool_names
        read_only = bool(self.read_only) and bool((annotations or {}).get("readOnlyHint"))
        return named or read_only


class ApprovalRules(_Shape):
    """`require_approval: {"never": {...}, "always": {...}}`; a tool neither names needs approval."""

    always: ToolFilter | None = None
    never: ToolFilter | None = None


class McpTool(_Shape):
    """An MCP server's tools, run here: by URL (connected for the request), or our extension, an mcp.json
    server named by `server_label` with no `server_url`."""

    type: Literal["mcp"]
    server_label: str = Field(pattern=LABEL)
    server_url: str | None = Field(default=None, min_length=1, max_length=8192, repr=False)  # may hold a token
    headers: dict[str, str] | None = Field(default=None, repr=False)  # credentials: never in a repr or a log
    authorization: str | None = Field(default=None, repr=False)  # OpenAI's OAuth access token, sent as a Bearer
    allowed_tools: list[str] | ToolFilter | None = None
    require_approval: Literal["always", "never"] | ApprovalRules | None = None
    server_description: str | None = None
    connector_id: str | None = None

    @field_validator("connector_id")
    @classmethod
    def _no_connectors(cls, connector_id: str | None) -> None:
        if connector_id is not None:
            raise ValueError(
                "OpenAI's hosted connectors do not exist here: give a server_url, or an mcp.json server's name"
            )

    def allows(self, name: str, annotations: dict[str, Any] | None) -> bool:
        """Whether the request offers this tool of the server to the model."""
        if self.allowed_tools is None:
            return True
        if isinstance(self.allowed_tools, list):
            return name in self.allowed_tools
        return self.allowed_tools.matches(name, annotations)

    def needs_approval(self, name: str, annotations: dict[str, Any] | None) -> bool:
        """OpenAI's rule: approval unless `never` covers the tool (`always` wins where both do)."""
        rule = self.require_approval
        if rule is None or rule == "always":
            return True
        if rule == "never":
            return False
        if rule.always is not None and rule.always.matches(name, annotations):
            return True
        return not (rule.never is not None and rule.never.matches(name, annotations))

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers or {})
        if self.authorization:
            headers.setdefault("Authorization", f"Bearer {self.authorization}")
        return headers


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[McpTool, Tag("mcp")],
    _kind(None, "a tool's", ("function", "mcp")),
]


class NamedFunction(_Shape):
    type: Literal["function"]
    name: str


class NamedMcpTool(_Shape):
    type: Literal["mcp"]
    server_label: str
    name: str | None = None


def _choice_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "mode"
    found = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return found if isinstance(found, str) else None


ToolChoice = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag("mode")]
    | Annotated[NamedFunction, Tag("function")]
    | Annotated[NamedMcpTool, Tag("mcp")],
    Discriminator(_choice_kind),
]


# -- the rest ----------------------------------------------------------------------------------------


class Reasoning(_Shape):
    effort: Effort | None = None
    summary: str | None = None


class TextFormat(_Shape):
    type: str

    @field_validator("type")
    @classmethod
    def _text_only(cls, kind: str) -> str:
        if kind != "text":
            raise ValueError(f"structured output ({kind!r}) is not supported here; only 'text'")
        return kind


class TextOptions(_Shape):
    format: TextFormat | None = None
    verbosity: str | None = None


class ResponsesRequest(_Shape):
    """`POST /v1/responses`."""

    model: str | None = Field(default=None, max_length=500)
    input: Input = ""
    instructions: str | None = None
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=200)
    reasoning: Reasoning | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    store: bool = True
    stream: bool | None = None
    tools: list[Tool] = Field(default_factory=list, max_length=128)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    metadata: dict[str, str] | None = None
    text: TextOptions | None = None
    truncation: Literal["auto", "disabled"] = "disabled"
    user: str | None = None
    background: bool | None = None

    @field_validator("background")
    @classmethod
    def _in_the_foreground(cls, background: bool | None) -> bool | None:
        if background:
            raise ValueError("background responses are not supported here")
        return background

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, metadata: dict[str, str] | None) -> dict[str, str] | None:
        if metadata is None:
            return None
        if len(metadata) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} metadata keys")
        for key, value in metadata.items():
            if len(key) > MAX_METADATA_KEY_CHARS or len(value) > MAX_METADATA_VALUE_CHARS:
                raise ValueError(
                    f"metadata keys hold at most {MAX_METADATA_KEY_CHARS} characters, values {MAX_METADATA_VALUE_CHARS}"
                )
        return metadata

    @property
    def items(self) -> list[InputItem]:
        """The input as items: a string is one user message."""
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)] if self.input else []
        return list(self.input)

    @property
    def effort(self) -> Effort | None:
        return self.reasoning.effort if self.reasoning is not None else None

    @property
    def function_tools(self) -> list[FunctionTool]:
        return [tool for tool in self.tools if isinstance(tool, FunctionTool)]

    @property
    def mcp_tools(self) -> list[McpTool]:
        return [tool for tool in self.tools if isinstance(tool, McpTool)]
