"""The template path for models that do not speak Harmony, with chat templates as real GGUFs carry them."""

from __future__ import annotations

import re

import pytest
from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE, MISTRAL_INSTRUCT_CHAT_TEMPLATE

from mcp_host.backends import BackendUnavailableError
from mcp_host.backends.mlx import MlxBackend, mlx_available
from mcp_host.prompt.template import (
    TemplateError,
    TemplatePrompt,
    TemplateTool,
    default_tool_instructions,
    parse_tool_requests,
)

TIME = TemplateTool("get_time", "Current time", {"type": "object", "properties": {"tz": {"type": "string"}}})
# A template that renders tools itself, in the shape of Qwen's and Llama 3.1's.
TOOL_TEMPLATE = (
    "{% if tools %}<|tools|>{% for tool in tools %}{{ tool['function']['name'] }};{% endfor %}\n{% endif %}"
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_a_template_without_tools_gets_lm_studios_default_format() -> None:
    prompt = TemplatePrompt(CHATML_CHAT_TEMPLATE)
    assert not prompt.native_tools
    text = prompt.render(
        [
            {"role": "user", "content": "Time in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "1",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"tz": "Europe/Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "1", "name": "get_time", "content": "12:00"},
        ],
        [TIME],
    )
    assert text.startswith("<|im_start|>system\nYou are a tool-calling AI.")
    assert '"name": "get_time"' in text and "AVAILABLE TOOLS" in text
    assert '[TOOL_REQUEST]{"name": "get_time", "arguments": {"tz": "Europe/Oslo"}}[END_TOOL_REQUEST]' in text
    assert "<|im_start|>user\nResult of tool get_time: 12:00<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_a_template_that_renders_tools_gets_the_tools_list() -> None:
    prompt = TemplatePrompt(TOOL_TEMPLATE)
    assert prompt.native_tools
    # Rendered as transformers renders chat templates (trim_blocks): no newline after a block tag.
    assert prompt.render([{"role": "user", "content": "hi"}], [TIME]) == "<|tools|>get_time;<|user|>hi\n<|assistant|>"


def test_no_template_at_all_gives_a_plain_transcript() -> None:
    text = TemplatePrompt(None).render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert text == "System: Be brief.\n\nUser: hi\n\nAssistant:"


def test_template_errors_are_clear() -> None:
    prompt = TemplatePrompt(MISTRAL_INSTRUCT_CHAT_TEMPLATE)
    with pytest.raises(TemplateError, match="refused these messages: Conversation roles must alternate"):
        prompt.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    with pytest.raises(TemplateError, match="does not compile"):
        TemplatePrompt("{% for %}")


def test_tool_requests_are_parsed_and_bad_ones_become_faults() -> None:
    text = (
        'Sure. [TOOL_REQUEST]{"name": "get_time", "arguments": {"tz": "UTC"}}[END_TOOL_REQUEST]'
        '[TOOL_REQUEST]{"name": "nope", "arguments": {}}[END_TOOL_REQUEST]'
        '[TOOL_REQUEST]{broken}[END_TOOL_REQUEST][TOOL_REQUEST]{"name": "get_time"'
    )
    content, calls, faults = parse_tool_requests(text, ["get_time"])
    assert content == "Sure."
    assert [(c.name, c.arguments) for c in calls] == [("get_time", {"tz": "UTC"})]
    assert ["no tool named 'nope'" in f.text for f in faults] == [True, False, False]
    assert "not valid JSON" in faults[1].text and "not closed" in faults[2].text
    assert "get_time" in default_tool_instructions([TIME])


def test_mlx_says_clearly_why_it_cannot_run_here() -> None:
    available, reason = mlx_available()
    if available:
        pytest.skip("MLX is available here; its own tests apply")
    assert "Apple Silicon" in reason or "mlx-lm is not installed" in reason
    with pytest.raises(BackendUnavailableError, match=re.escape(reason)):
        MlxBackend.load("mlx-community/gpt-oss-20b-MXFP4-Q8")


def test_the_native_tool_call_form_of_templates_that_render_tools() -> None:
    text = 'Checking.\n<tool_call>\n{"name": "get_time", "arguments": {"tz": "Asia/Tokyo"}}\n</tool_call>'
    content, calls, faults = parse_tool_requests(text, ["get_time"])
    assert content == "Checking." and faults == []
    assert [(c.name, c.arguments) for c in calls] == [("get_time", {"tz": "Asia/Tokyo"})]
