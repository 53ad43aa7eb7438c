"""Rendering is token-exact against openai_harmony driven directly, for canonical conversations."""

from __future__ import annotations

import mcp_types
import pytest
from openai_harmony import (
    Author,
    Conversation,
    DeveloperContent,
    Message,
    ReasoningEffort,
    RenderConversationConfig,
    Role,
    SystemContent,
    ToolDescription,
    ToolNamespaceConfig,
)

from mcp_host.prompt import (
    FunctionTool,
    HarmonyOptions,
    HarmonyRenderer,
    TokenLog,
    assistant_message,
    tool_call_message,
    tool_result_message,
    user_message,
)
from mcp_host.prompt.budget import tool_budget_warning
from mcp_host.tools import ToolSpec
from mcp_host.tools.native.python import python_tool_description

DATE = "2026-11-25"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"anyOf": [{"enum": ["c", "f"], "type": "string"}, {"type": "null"}], "default": None},
    },
    "required": ["city"],
}


@pytest.fixture(scope="module")
def renderer() -> HarmonyRenderer:
    return HarmonyRenderer()


def weather_tool() -> FunctionTool:
    spec = ToolSpec.from_mcp(
        "my-weather",
        mcp_types.Tool(name="get.forecast", description="Forecast for a city.", input_schema=WEATHER_SCHEMA),
    )
    return FunctionTool.from_specs([spec])[0]


def reference(messages: list[Message], renderer: HarmonyRenderer) -> list[int]:
    conversation = Conversation.from_messages(messages)
    return list(
        renderer.encoding.render_conversation_for_completion(
            conversation, Role.ASSISTANT, RenderConversationConfig(auto_drop_analysis=False)
        )
    )


def system(effort: ReasoningEffort = ReasoningEffort.MEDIUM, *, browser: bool = False, python: bool = False) -> Message:
    content = (
        SystemContent.new()
        .with_reasoning_effort(effort)
        .with_conversation_start_date(DATE)
        .with_knowledge_cutoff("2024-06")
    )
    if browser:
        content = content.with_browser_tool()
    if python:  # the host's own description of its python tool, not openai_harmony's stock text
        content = content.with_tools(
            ToolNamespaceConfig(name="python", description=python_tool_description(), tools=[])
        )
    return Message.from_role_and_content(Role.SYSTEM, content)


def test_plain_chat_matches_the_documented_format(renderer: HarmonyRenderer) -> None:
    options = HarmonyOptions(reasoning_effort="low", start_date=DATE)
    tokens = renderer.render_prompt(options, [], [user_message("Hello")])
    assert renderer.encoding.decode(tokens) == (
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\nCurrent date: 2026-11-25\n\nReasoning: low\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
        "<|start|>user<|message|>Hello<|end|><|start|>assistant"
    )
    assert tokens == reference(
        [system(ReasoningEffort.LOW), Message.from_role_and_content(Role.USER, "Hello")], renderer
    )


@pytest.mark.parametrize(
    ("effort", "expected"),
    [("low", ReasoningEffort.LOW), ("medium", ReasoningEffort.MEDIUM), ("high", ReasoningEffort.HIGH)],
)
def test_reasoning_effort_levels(renderer: HarmonyRenderer, effort: str, expected: ReasoningEffort) -> None:
    options = HarmonyOptions(start_date=DATE).with_effort(effort)  # type: ignore[arg-type]
    tokens = renderer.render_prompt(options, [], [user_message("x")])
    assert tokens == reference([system(expected), Message.from_role_and_content(Role.USER, "x")], renderer)
    assert f"Reasoning: {expected.value.lower()}" in renderer.encoding.decode(tokens)


def test_function_call_and_result(renderer: HarmonyRenderer) -> None:
    tool = weather_tool()
    assert tool.identifier == "my_weather__get_forecast"
    history = [
        user_message("Weather in Paris?"),
        assistant_message("Need the forecast.", "analysis"),
        tool_call_message("functions.my_weather__get_forecast", '{"city": "Paris"}'),
        tool_result_message("functions.my_weather__get_forecast", '{"temp": 21}'),
    ]
    options = HarmonyOptions(start_date=DATE, instructions="Answer briefly.")
    tokens = renderer.render_prompt(options, [tool], history)
    developer = Message.from_role_and_content(
        Role.DEVELOPER,
        DeveloperContent.new()
        .with_instructions("Answer briefly.")
        .with_function_tools(
            [ToolDescription.new("my_weather__get_forecast", "Forecast for a city.", tool.spec.input_schema)]
        ),
    )
    expected = [
        system(),
        developer,
        Message.from_role_and_content(Role.USER, "Weather in Paris?"),
        Message.from_role_and_content(Role.ASSISTANT, "Need the forecast.").with_channel("analysis"),
        Message.from_role_and_content(Role.ASSISTANT, '{"city": "Paris"}')
        .with_channel("commentary")
        .with_recipient("functions.my_weather__get_forecast")
        .with_content_type("<|constrain|>json"),
        Message.from_author_and_content(Author.new(Role.TOOL, "functions.my_weather__get_forecast"), '{"temp": 21}')
        .with_recipient("assistant")
        .with_channel("commentary"),
    ]
    assert tokens == reference(expected, renderer)
    text = renderer.encoding.decode(tokens)
    # Within the running tool loop the chain of thought stays.
    assert "Need the forecast." in text
    assert "<|start|>functions.my_weather__get_forecast to=assistant<|channel|>commentary<|message|>" in text
    assert '// City name\ncity: string,\nunit?: "c" | "f" | null, // default: null' in text
    assert text.endswith("<|start|>assistant")


def test_browser_and_python_calls(renderer: HarmonyRenderer) -> None:
    history = [
        user_message("Search and compute"),
        tool_call_message("browser.search", '{"query": "gpt-oss"}', channel="analysis", content_type=None),
        tool_result_message("browser.search", "[0] result", channel="analysis"),
        tool_call_message("python", "print(1 + 1)", channel="analysis", content_type="code"),
        tool_result_message("python", "2", channel="analysis"),
    ]
    options = HarmonyOptions(start_date=DATE, browser=True, python=True)
    tokens = renderer.render_prompt(options, [], history)
    expected = [
        system(browser=True, python=True),
        Message.from_role_and_content(Role.USER, "Search and compute"),
        Message.from_role_and_content(Role.ASSISTANT, '{"query": "gpt-oss"}')
        .with_channel("analysis")
        .with_recipient("browser.search"),
        Message.from_author_and_content(Author.new(Role.TOOL, "browser.search"), "[0] result")
        .with_recipient("assistant")
        .with_channel("analysis"),
        Message.from_role_and_content(Role.ASSISTANT, "print(1 + 1)")
        .with_channel("analysis")
        .with_recipient("python")
        .with_content_type("code"),
        Message.from_author_and_content(Author.new(Role.TOOL, "python"), "2")
        .with_recipient("assistant")
        .with_channel("analysis"),
    ]
    assert tokens == reference(expected, renderer)
    text = renderer.encoding.decode(tokens)
    assert "namespace browser {" in text and "## python" in text


def test_multi_turn_drops_finished_chain_of_thought(renderer: HarmonyRenderer) -> None:
    history = [
        user_message("first"),
        assistant_message("secret reasoning one", "analysis"),
        assistant_message("answer one"),
        user_message("second"),
        assistant_message("secret reasoning two", "analysis"),
        assistant_message("answer two"),
        user_message("third"),
        assistant_message("current reasoning", "analysis"),
    ]
    text = renderer.encoding.decode(renderer.render_prompt(HarmonyOptions(start_date=DATE), [], history))
    assert "secret reasoning" not in text
    assert "answer one" in text and "answer two" in text and "current reasoning" in text


def test_token_log_appends_exactly_and_only_re_renders_at_turn_boundaries(renderer: HarmonyRenderer) -> None:
    tool = weather_tool()
    options = HarmonyOptions(start_date=DATE)
    history = [user_message("Weather?")]
    log = TokenLog(renderer)
    prompt = renderer.render_prompt(options, [tool], history)
    log.start_turn(prompt)
    generated = renderer.encoding.encode(
        '<|channel|>commentary to=functions.my_weather__get_forecast <|constrain|>json<|message|>{"city":"Oslo"}'
        "<|call|>",
        allowed_special="all",
    )
    log.append_generated(generated)
    log.append_tool_result(tool_result_message("functions.my_weather__get_forecast", "cold"))
    assert log.tokens[: len(prompt)] == prompt
    assert log.tokens[len(prompt) : len(prompt) + len(generated)] == generated  # what the model said, verbatim
    assert renderer.encoding.decode(log.tokens[len(prompt) + len(generated) :]) == (
        "<|start|>functions.my_weather__get_forecast to=assistant<|channel|>commentary<|message|>cold<|end|>"
        "<|start|>assistant"
    )
    # A re-rendering of the same history is not token-identical (to= moves into the role position).
    rerendered = renderer.render_prompt(
        options,
        [tool],
        [
            *history,
            tool_call_message("functions.my_weather__get_forecast", '{"city":"Oslo"}'),
            tool_result_message("functions.my_weather__get_forecast", "cold"),
        ],
    )
    assert rerendered != log.tokens


def test_breakdown_and_the_context_warning(renderer: HarmonyRenderer) -> None:
    options = HarmonyOptions(start_date=DATE, browser=True)
    history = [user_message("hi")]
    tools = [weather_tool()]
    parts = {part.label: part.tokens for part in renderer.breakdown(options, tools, history)}
    total = len(renderer.render_prompt(options, tools, history))
    assert set(parts) == {"system", "built-in tools", "tools: my-weather", "history"}
    assert sum(parts.values()) == total  # exact with a single server
    assert parts["built-in tools"] == 400  # the browser namespace, as openai_harmony 0.0.8 renders it
    warning = tool_budget_warning(renderer.breakdown(options, tools, history), 1000, 0.25)
    assert warning is not None and "my-weather" in warning and "of the 1000-token context" in warning
    assert tool_budget_warning(renderer.breakdown(options, tools, history), 100_000, 0.25) is None
