"""Tools at scale: which tools a turn offers when all of them would crowd the model's context.

    selector = ToolSelector(settings.tools, HarmonyToolCost(renderer, options))
    selection = selector.select(registry, context_tokens=16384, message="What time is it in Tokyo?")
    selection.registry          # the turn's tools; `selection.choices` say why each one is there

Below the threshold (`[tools] select_above_share` of the context, counting every tool and the built-in ones)
every tool is offered, as before. Above it, a turn offers, until the budget (`[tools] budget_share` of the
context, counted as the prompt format renders tools: `mcp_host.prompt.budget`) is spent:

1. the tools it keeps whatever they cost: the built-in ones (browser, python: Harmony renders them in the
   system message, the start of every prompt, so leaving one out would invalidate the whole prompt cache;
   they count against the budget all the same), the plugins' tools (`[tools] pin_plugins`: a plugin is
   installed on purpose and small), those pinned in the settings (`[tools] pinned`, qualified names or
   patterns such as `fs.*`), those the chat has called before, the one it requires (`required_tool`), and
   functions the application offered for this turn;
2. the tools that match the conversation, best first: BM25 (`bm25s`, offline) over each tool's name, server,
   title, description and parameter names, queried with the new message (weight 1) and the recent
   messages (the one before weighs 1/2, the one before that 1/4, ...);
3. the tools the previous turn offered, so that a turn that stays on its topic keeps its prompt;
4. the others, in the registry's order, while they fit: the budget is what tools may take, and a tool the
   ranking missed may still be the one the model needs.

The selection is made once per turn, before its first round, so every round of the turn sees the same tools
and the token log only grows. The selected tools are listed in the registry's order (by server, then the
server's own order), not by score, so two turns that select nearly the same tools share the prompt up to the
first tool that changed, and the backend's KV cache is reused that far.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from mcp_host.backends.base import Backend, ChatBackend, PromptFormat
from mcp_host.config.settings import ToolSettings
from mcp_host.prompt.budget import HarmonyToolCost, TextToolCost, ToolCost
from mcp_host.prompt.harmony import FunctionTool, HarmonyOptions, HarmonyRenderer, message_text
from mcp_host.prompt.vocab import harmony_encoding
from mcp_host.tools.names import NameMap
from mcp_host.tools.registry import ToolRegistry
from mcp_host.tools.spec import ToolSpec

PINNED = "pinned"
PLUGIN = "plugin"  # pinned by default: `[tools] pin_plugins`
USED = "used earlier"
OFFERED = "offered for this turn"
REQUIRED = "required by the chat"
BUILT_IN = "built-in"
MATCHES = "matches the conversation"
CARRIED = "offered last turn"
FILLS = "fills the budget"
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[^\W_]+")
_MESSAGE_CHARS = 4000  # of each earlier message: a pasted document should not drown the ranking


@dataclass(frozen=True)
class ToolChoice:
    """One tool as the selection saw it: what it costs, how well it matches, and why it is offered (empty: not)."""

    name: str
    tokens: int
    score: float
    reasons: tuple[str, ...]

    @property
    def selected(self) -> bool:
        return bool(self.reasons)


@dataclass(frozen=True)
class ToolSelection:
    """The tools of one turn. Inactive: every tool is offered (they fit under the threshold, or selection is off).

    `choices` lists the offered tools in the order they were chosen, then the others by score (active only).
    """

    active: bool
    registry: ToolRegistry
    context_tokens: int
    all_tokens: int  # every tool, the built-in ones included
    threshold_tokens: int
    budget_tokens: int
    selected_tokens: int  # what the offered tools take, the built-in ones included
    builtin_tokens: int  # what the built-in tools take (browser, python: always offered)
    choices: tuple[ToolChoice, ...] = ()

    @property
    def selected(self) -> list[ToolChoice]:
        return [choice for choice in self.choices if choice.selected]

    def summary(self) -> str:
        """One line for people: whether the host selects, and what it offers."""
        share = f"{self.all_tokens} tokens, {self.all_tokens / self.context_tokens:.0%} of the {self.context_tokens}"
        if not self.active:
            return (
                f"every tool is offered: tools take {share}-token context "
                f"(a turn offers a selection above {self.threshold_tokens})"
            )
        offered = sum(1 for choice in self.selected if BUILT_IN not in choice.reasons)
        listed = sum(1 for choice in self.choices if BUILT_IN not in choice.reasons)
        return (
            f"tools take {share}-token context: this turn offers {offered} of {listed} tools, "
            f"{self.selected_tokens} tokens (budget {self.budget_tokens})"
        )


class ToolSelector:
    """Chooses the tools of each turn of one chat; remembers what tools cost and what the last turn offered."""

    def __init__(self, settings: ToolSettings, cost: ToolCost) -> None:
        self.settings = settings
        self.cost = cost
        self._index: _Index | None = None
        self._previous: frozenset[str] = frozenset()
        self._framed: tuple[tuple[str, int], int] | None = None

    def select(
        self,
        registry: ToolRegistry,
        *,
        context_tokens: int,
        message: str,
        earlier: Sequence[str] = (),
        used: Sequence[str] = (),
        required: Sequence[str] = (),
        natives: Sequence[ToolSpec] = (),
        conversation: Callable[[], tuple[Sequence[str], Sequence[str]]] | None = None,
    ) -> ToolSelection:
        """The tools to offer with `message`. `earlier`: the chat's earlier messages, oldest first; `used`: the
        tools it called (or `conversation()` gives both, asked only when a selection is made); `required`: tools
        the chat must offer (qualified names or identifiers); `natives`: its built-in tools."""
        settings = self.settings
        specs = list(registry)
        names = registry.names
        functions = [FunctionTool(names.to_identifier[spec.name], spec) for spec in specs]
        native_tokens = self.cost.natives(natives)
        costs = [self.cost.tool(tool) for tool in functions]
        framing = self._framing(functions[0], costs[0]) if functions else 0
        all_tokens = native_tokens + framing + sum(costs)
        threshold = math.floor(settings.select_above_share * context_tokens)
        budget = math.floor(settings.budget_share * context_tokens)
        if settings.selection == "off" or (settings.selection == "auto" and all_tokens <= threshold):
            self._previous = frozenset()
            return ToolSelection(
                False, registry, context_tokens, all_tokens, threshold, budget, all_tokens, native_tokens
            )

        if conversation is not None:
            earlier, used = conversation()
        scores = self._scores(specs, _weighted_queries(message, earlier, settings.recent_messages))
        used_set, required_set = set(used), set(required)
        reasons = {
            index: kept for index, tool in enumerate(functions) if (kept := self._kept(tool, used_set, required_set))
        }
        spent = native_tokens + framing + sum(costs[index] for index in reasons)
        ranked = sorted((i for i in range(len(specs)) if scores[i] > 0), key=lambda i: (-scores[i], i))
        carried = [i for i, spec in enumerate(specs) if spec.name in self._previous]
        for group, why in ((ranked, MATCHES), (carried, CARRIED), (range(len(specs)), FILLS)):
            for index in group:
                if index not in reasons and spent + costs[index] <= budget:
                    reasons[index] = (why,)
                    spent += costs[index]
        offered = self._fit(functions, reasons, native_tokens, budget)
        self._previous = frozenset(specs[index].name for index in offered)

        order = [i for i in reasons if i in offered]
        order += sorted((i for i in range(len(specs)) if i not in offered), key=lambda i: (-scores[i], i))
        choices = [ToolChoice(spec.name, 0, 0.0, (BUILT_IN,)) for spec in natives] + [
            ToolChoice(specs[i].name, costs[i], scores[i], reasons[i] if i in offered else ()) for i in order
        ]
        exact = native_tokens + self.cost.tools([functions[i] for i in sorted(offered)])
        return ToolSelection(
            True,
            _subset(specs, sorted(offered)),
            context_tokens,
            all_tokens,
            threshold,
            budget,
            exact,
            native_tokens,
            tuple(choices),
        )

    def _framing(self, first: FunctionTool, cost: int) -> int:
        """What listing tools costs besides the tools: measured once per chat (a render), by the first tool."""
        if self._framed is None or self._framed[0] != (first.identifier, cost):
            self._framed = ((first.identifier, cost), self.cost.tools([first]) - cost)
        return self._framed[1]

    def _kept(self, tool: FunctionTool, used: set[str], required: set[str]) -> tuple[str, ...]:
        """Why `tool` is offered whatever it costs (empty: it is not)."""
        spec, reasons = tool.spec, []
        if any(fnmatch.fnmatchcase(spec.name, pattern) for pattern in self.settings.pinned):
            reasons.append(PINNED)
        if spec.origin == "plugin" and self.settings.pin_plugins:
            reasons.append(PLUGIN)
        if spec.name in used:
            reasons.append(USED)
        if spec.name in required or tool.identifier in required:
            reasons.append(REQUIRED)
        if spec.origin == "function":
            reasons.append(OFFERED)
        return tuple(reasons)

    def _fit(
        self, functions: list[FunctionTool], reasons: dict[int, tuple[str, ...]], natives: int, budget: int
    ) -> set[int]:
        """The chosen tools, less the last ones chosen (never those kept) while the exact listing exceeds the budget.

        The per-tool costs add up to the listing's cost but for a token or two where tools meet: check once.
        """
        offered = set(reasons)
        droppable = [i for i, why in reasons.items() if why in ((MATCHES,), (CARRIED,), (FILLS,))]
        while droppable and natives + self.cost.tools([functions[i] for i in sorted(offered)]) > budget:
            offered.discard(droppable.pop())
        return offered

    def _scores(self, specs: list[ToolSpec], queries: list[tuple[float, list[str]]]) -> list[float]:
        if self._index is None or not self._index.covers(specs):
            self._index = _Index.of(specs)
        return self._index.scores(queries)


class _Index:
    """BM25 over the tools' words, built once per set of tools (the same spec objects): chats share the last one."""

    _last: ClassVar[_Index | None] = None

    @classmethod
    def of(cls, specs: list[ToolSpec]) -> _Index:
        if cls._last is None or not cls._last.covers(specs):
            cls._last = cls(specs)
        return cls._last

    def __init__(self, specs: list[ToolSpec]) -> None:
        self._specs = specs  # held, so that the ids in the key stay theirs
        self._key = tuple(id(spec) for spec in specs)
        corpus = [tool_terms(spec) for spec in specs]
        self._bm25: Any = None
        if any(corpus):  # BM25 of a corpus with no words at all divides by zero
            import bm25s  # type: ignore[import-untyped]  # numpy with it: imported when first needed

            self._bm25 = bm25s.BM25()
            self._bm25.index(corpus, show_progress=False)

    def covers(self, specs: list[ToolSpec]) -> bool:
        return self._key == tuple(id(spec) for spec in specs)

    def scores(self, queries: list[tuple[float, list[str]]]) -> list[float]:
        total = [0.0] * len(self._specs)
        if self._bm25 is None:
            return total
        for weight, terms in queries:
            for index, score in enumerate(self._bm25.get_scores(terms)):
                total[index] += weight * float(score)
        return total


def terms(text: str) -> list[str]:
    """The words that rank tools: split at `_`, `-`, `.` and camelCase, lower-cased, stop words out, plurals folded.

    `terms("getCurrentTime in the time zones") == ["get", "current", "time", "time", "zone"]`
    """
    words = _WORD.findall(_CAMEL.sub(" ", text).lower())
    stopwords = _stopwords()
    return [_stem(word) for word in words if len(word) > 1 and word not in stopwords]


def tool_terms(spec: ToolSpec) -> list[str]:
    """What a tool is found by: its name (twice: names say most), server, title, description and parameter names."""
    properties = spec.input_schema.get("properties")
    parameters = " ".join(properties) if isinstance(properties, Mapping) else ""
    name = f"{spec.server} {spec.tool}"
    return terms(f"{name} {name} {spec.title or ''} {spec.description} {parameters}")


def conversation_of(transcript: Sequence[Mapping[str, Any]], names: NameMap) -> tuple[list[str], list[str]]:
    """From a `TurnFormat.transcript()` (Harmony or OpenAI chat shape): the text of the user's messages and of the
    assistant's answers, oldest first, and the tools the chat called (qualified names, first call first)."""
    texts: list[str] = []
    used: dict[str, None] = {}
    for message in transcript:
        role = message.get("role")
        called = [str(message.get("recipient") or "").removeprefix("functions.")] if message.get("recipient") else []
        for call in message.get("tool_calls") or []:
            called.append(str((call.get("function") or {}).get("name", "")))
        for name in called:
            qualified = names.to_qualified.get(name) or (name if name in names.to_identifier else None)
            if qualified is not None:
                used.setdefault(qualified)
        if role == "user" or (role == "assistant" and not called and message.get("channel") in (None, "final")):
            text = message_text(message.get("content"))
            if text:
                texts.append(text[-_MESSAGE_CHARS:])
    return texts, list(used)


def tool_cost_for(
    prompt_format: PromptFormat,
    backend: Backend | ChatBackend,
    harmony: HarmonyOptions,
    renderer: HarmonyRenderer | None,
) -> ToolCost:
    """How a chat's prompt format counts tools: Harmony exactly; other models by their own tokenizer, or by
    o200k_base for a server that applies its template itself."""
    if prompt_format == "harmony":
        return HarmonyToolCost(renderer or HarmonyRenderer(), harmony)
    if isinstance(backend, Backend) and backend.capabilities.tokenizer:
        model = backend
        return TextToolCost(lambda text: len(model.tokenize(text, special=False)))
    encoding = harmony_encoding()
    return TextToolCost(lambda text: len(encoding.encode(text, disallowed_special=())))


def _subset(specs: list[ToolSpec], indexes: list[int]) -> ToolRegistry:
    """A registry of `specs[indexes]`, each server's tools in the order the server listed them."""
    subset = ToolRegistry()
    by_server: dict[str, list[ToolSpec]] = {}
    for index in indexes:
        by_server.setdefault(specs[index].server, []).append(specs[index])
    for server, server_specs in by_server.items():
        subset.replace_server(server, server_specs)
    return subset


def _weighted_queries(message: str, earlier: Sequence[str], recent: int) -> list[tuple[float, list[str]]]:
    """The new message at weight 1, then the `recent` messages before it at 1/2, 1/4, ... (each term once)."""
    texts = [message, *reversed(earlier[-recent:] if recent else [])]
    queries = []
    for age, text in enumerate(texts):
        words = sorted(set(terms(text)))
        if words:
            queries.append((0.5**age, words))
    return queries


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS  # type: ignore[import-untyped]

    return frozenset(STOPWORDS_EN_PLUS)


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word
