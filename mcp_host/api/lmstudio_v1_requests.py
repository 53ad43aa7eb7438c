"""The request bodies of LM Studio 0.4's REST API (`/api/v1/*`), as pydantic models.

    body = await reader.read(request, V1ChatRequest)     # ApiError 400 naming the field, before anything runs

Strict as the rest of the API's own shapes: unknown fields are errors (the oldest docs' `mcp_servers`,
`reasoning_effort` and `plugins` included), `"stream": "no"` is not a boolean. Both text item types of
LM Studio's docs are read (`"message"` in the field table, `"text"` in the image example).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from mcp_host.api.integrations import ConfiguredServer, EphemeralServer, ServerRef
from mcp_host.api.requests import ClosedShape

MAX_INTEGRATIONS = 32
MAX_TOOL_NAMES = 1000
LABEL = r"^[A-Za-z0-9_-]{1,64}$"  # OpenAI's and LM Studio's server labels: letters, digits, `-`, `_`
Reasoning = Literal["off", "low", "medium", "high", "on"]


class TextItem(ClosedShape):
    type: Literal["message", "text"]
    content: str


class ImageItem(ClosedShape):
    type: Literal["image"]
    data_url: str = Field(pattern=r"^data:")


InputItem = Annotated[TextItem | ImageItem, Field(discriminator="type")]


class PluginIntegration(ClosedShape):
    """`{"type": "plugin", "id": "mcp/playwright", "allowed_tools": [...]}`: a server of mcp.json."""

    type: Literal["plugin"]
    id: str = Field(min_length=1, max_length=200)
    allowed_tools: list[str] | None = Field(default=None, max_length=MAX_TOOL_NAMES)


class EphemeralIntegration(ClosedShape):
    """`{"type": "ephemeral_mcp", "server_label", "server_url", "allowed_tools", "headers"}`: a server of its own."""

    type: Literal["ephemeral_mcp"]
    server_label: str = Field(pattern=LABEL)
    server_url: str = Field(pattern=r"^https?://", max_length=2048, repr=False)  # its userinfo may hold a token
    allowed_tools: list[str] | None = Field(default=None, max_length=MAX_TOOL_NAMES)
    headers: dict[str, str] | None = Field(default=None, max_length=64, repr=False)  # credentials: never in a repr


Integration = str | Annotated[PluginIntegration | EphemeralIntegration, Field(discriminator="type")]


class V1ChatRequest(ClosedShape):
    """`POST /api/v1/chat`."""

    model: str = Field(min_length=1, max_length=500)
    input: Annotated[str, Field(min_length=1)] | Annotated[list[InputItem], Field(min_length=1)]
    system_prompt: str | None = None
    integrations: list[Integration] | None = Field(default=None, max_length=MAX_INTEGRATIONS)
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, ge=1)
    reasoning: Reasoning | None = None
    context_length: int | None = Field(default=None, ge=1)
    store: bool = True
    previous_response_id: str | None = Field(default=None, pattern=r"^resp_\S{1,200}$")
    thread_id: str | None = Field(default=None, pattern=r"^thread_\S{1,200}$")

    @model_validator(mode="after")
    def _one_continuation(self) -> V1ChatRequest:
        if self.previous_response_id is not None and self.thread_id is not None:
            raise ValueError("continue either a 'previous_response_id' or a 'thread_id', not both")
        return self

    @property
    def continues(self) -> str | None:
        """The conversation this request continues, if any."""
        return self.previous_response_id or self.thread_id

    def servers(self) -> list[ServerRef]:
        """The integrations as the servers of `mcp_host.api.integrations`; `"mcp/<name>"` names an mcp.json server.

        A plugin id of another form is still passed on by its whole id, so that the error lists what exists.
        """
        refs: list[ServerRef] = []
        for index, item in enumerate(self.integrations or ()):
            param = f"integrations.{index}"
            if isinstance(item, str):
                refs.append(ConfiguredServer(_plugin_server(item), param=param))
            elif isinstance(item, PluginIntegration):
                allowed = tuple(item.allowed_tools) if item.allowed_tools is not None else None
                refs.append(ConfiguredServer(_plugin_server(item.id), allowed, param=param))
            else:
                allowed = tuple(item.allowed_tools) if item.allowed_tools is not None else None
                refs.append(EphemeralServer(item.server_label, item.server_url, item.headers or {}, allowed, param))
        return refs


def _plugin_server(plugin_id: str) -> str:
    return plugin_id.removeprefix("mcp/")


class V1LoadRequest(ClosedShape):
    """`POST /api/v1/models/load`; of llama.cpp's knobs only `context_length` is applied (the rest: defaults)."""

    model: str = Field(min_length=1, max_length=500)
    context_length: int | None = Field(default=None, ge=1)
    eval_batch_size: int | None = Field(default=None, ge=1)
    flash_attention: bool | None = None
    num_experts: int | None = Field(default=None, ge=0)
    offload_kv_cache_to_gpu: bool | None = None
    echo_load_config: bool = False


class V1UnloadRequest(ClosedShape):
    """`POST /api/v1/models/unload`."""

    instance_id: str = Field(min_length=1, max_length=500)


class V1DownloadRequest(ClosedShape):
    """`POST /api/v1/models/download` (read so that a bad body is still a 400; nothing is ever downloaded)."""

    model: str = Field(min_length=1, max_length=2048)
    quantization: str | None = None
