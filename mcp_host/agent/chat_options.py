"""A chat's settings: the prompt format, sampling, limits on rounds and tool calls, and the tools it offers.

options = ChatOptions(max_rounds=4, temperature=0.2, servers=("time",))
async with host.chat(backend, options=options) as chat: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mcp_host.agent.calls import CallLimits
from mcp_host.backends.base import GenerationParams
from mcp_host.config.settings import ToolSettings
from mcp_host.prompt.harmony import HarmonyOptions


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
