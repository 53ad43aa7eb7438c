"""LM Studio's tool-use documentation examples, run unchanged but for the base URL against this server.

The scripted model is served under the name the examples ask for: a model the server does not have is a 404.

The examples use the synchronous `openai` client, as the documentation does (run here in a worker thread).
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from openai import OpenAI

from mcp_host.prompt import harmony_encoding
from tests.test_api_openai import scripted, serving

pytestmark = pytest.mark.anyio
MODEL = "lmstudio-community/qwen2.5-7b-instruct"


def call(name: str, arguments: str) -> str:
    return (
        f"<|channel|>analysis<|message|>Use {name}.<|end|><|start|>assistant<|channel|>commentary "
        f"to=functions.{name} <|constrain|>json<|message|>{arguments}<|call|>"
    )


def final(text: str) -> str:
    return f"<|channel|>final<|message|>{text}<|return|>"


async def test_single_turn_say_hello(tmp_path: Path) -> None:
    async for served in serving(
        tmp_path, [], scripted(*[call("say_hello", '{"name": "Bob the Builder"}')], name=MODEL)
    ):

        def example(url: str) -> str:
            client = OpenAI(base_url=f"{url}/v1", api_key="lm-studio")
            tools = [
                {
                    "type": "function",
                    "function": {
                        "name": "say_hello",
                        "description": "Says hello to someone",
                        "parameters": {
                            "type": "object",
                            "properties": {"name": {"type": "string", "description": "The person's name"}},
                            "required": ["name"],
                        },
                    },
                }
            ]
            response = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Can you say hello to Bob the Builder?"}],
                tools=tools,
            )  # type: ignore[arg-type]
            tool_call = response.choices[0].message.tool_calls[0]  # type: ignore[index]
            name: str = eval(tool_call.function.arguments)["name"]  # noqa: S307 - as the documentation does
            client.close()
            return name

        assert await anyio.to_thread.run_sync(example, served.url) == "Bob the Builder"


async def test_multi_turn_delivery_date(tmp_path: Path) -> None:
    outputs = [
        call("get_delivery_date", '{"order_id": "1017"}'),
        final("Your order number 1017 is scheduled for delivery on November 19, 2024."),
    ]
    async for served in serving(tmp_path, [], scripted(*outputs, name=MODEL)):

        def example(url: str) -> str | None:
            client = OpenAI(base_url=f"{url}/v1", api_key="lm-studio")
            tools = [
                {
                    "type": "function",
                    "function": {
                        "name": "get_delivery_date",
                        "description": "Get the delivery date for a customer's order.",
                        "parameters": {
                            "type": "object",
                            "properties": {"order_id": {"type": "string"}},
                            "required": ["order_id"],
                            "additionalProperties": False,
                        },
                    },
                }
            ]
            messages = [
                {"role": "system", "content": "You are a helpful customer support assistant."},
                {"role": "user", "content": "Give me the delivery date and time for order number 1017"},
            ]
            response = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)  # type: ignore[arg-type]
            tool_call = response.choices[0].message.tool_calls[0]  # type: ignore[index]
            order_id = json.loads(tool_call.function.arguments).get("order_id")
            assistant_tool_call_request_message = {
                "role": "assistant",
                "tool_calls": [{"id": tool_call.id, "type": tool_call.type, "function": tool_call.function}],
            }
            function_call_result_message = {
                "role": "tool",
                "content": json.dumps({"order_id": order_id, "delivery_date": "2024-11-19 13:03:17"}),
                "tool_call_id": tool_call.id,
            }
            response = client.chat.completions.create(
                model=MODEL,
                messages=[  # type: ignore[arg-type]
                    messages[0],
                    messages[1],
                    assistant_tool_call_request_message,
                    function_call_result_message,
                ],
            )
            client.close()
            return response.choices[0].message.content

        assert (
            await anyio.to_thread.run_sync(example, served.url)
            == outputs[1].split("<|message|>")[1].split("<|return|>")[0]
        )
        resumed = served.backend.prompts[1]
        assert '"delivery_date": "2024-11-19 13:03:17"' in harmony_encoding().decode(resumed)


async def test_streaming_with_tool_call_deltas(tmp_path: Path) -> None:
    outputs = [call("get_current_time", "{}"), final("It is 12:34:56.")]
    async for served in serving(tmp_path, [], scripted(*outputs, name=MODEL)):

        def example(url: str) -> tuple[list[dict[str, object]], str]:
            client = OpenAI(base_url=f"{url}/v1", api_key="lm-studio")
            time_tool = {
                "type": "function",
                "function": {
                    "name": "get_current_time",
                    "description": "Get the current time, only if asked",
                    "parameters": {"type": "object", "properties": {}},
                },
            }

            def process_stream(stream: object) -> tuple[str, list[dict[str, object]]]:
                collected_text, tool_calls = "", []  # type: ignore[var-annotated]
                for chunk in stream:  # type: ignore[attr-defined]
                    delta = chunk.choices[0].delta
                    if delta.content:
                        collected_text += delta.content
                    elif delta.tool_calls:
                        for tc in delta.tool_calls:
                            if len(tool_calls) <= tc.index:
                                tool_calls.append(
                                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
                                )
                            tool_calls[tc.index] = {
                                "id": (tool_calls[tc.index]["id"] + (tc.id or "")),
                                "type": "function",
                                "function": {
                                    "name": (tool_calls[tc.index]["function"]["name"] + (tc.function.name or "")),
                                    "arguments": (
                                        tool_calls[tc.index]["function"]["arguments"] + (tc.function.arguments or "")
                                    ),
                                },
                            }
                return collected_text, tool_calls

            messages: list[dict[str, object]] = [{"role": "user", "content": "What time is it?"}]
            _, tool_calls = process_stream(
                client.chat.completions.create(
                    model=MODEL, messages=messages, tools=[time_tool], stream=True, temperature=0.2
                )
            )  # type: ignore[arg-type]
            messages.append({"role": "assistant", "tool_calls": tool_calls})
            messages.append({"role": "tool", "content": str({"time": "12:34:56"}), "tool_call_id": tool_calls[0]["id"]})
            final_text, _ = process_stream(
                client.chat.completions.create(
                    model=MODEL,
                    messages=messages,  # type: ignore[arg-type]
                    stream=True,
                )
            )
            client.close()
            return tool_calls, final_text

        tool_calls, final_text = await anyio.to_thread.run_sync(example, served.url)
        assert tool_calls[0]["function"] == {"name": "get_current_time", "arguments": "{}"}
        assert final_text == "It is 12:34:56."


async def test_the_older_function_call_form(tmp_path: Path) -> None:
    async for served in serving(tmp_path, [], scripted(*[final("It arrives on 2024-03-15.")], name=MODEL)):

        def example(url: str) -> str | None:
            client = OpenAI(base_url=f"{url}/v1", api_key="lm-studio")
            messages = [
                {"role": "user", "content": "When will order 123 be delivered?"},
                {"role": "assistant", "function_call": {"name": "get_delivery_date", "arguments": {"order_id": "123"}}},
                {"role": "tool", "content": "2024-03-15"},
            ]
            response = client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
            client.close()
            return response.choices[0].message.content

        assert await anyio.to_thread.run_sync(example, served.url) == "It arrives on 2024-03-15."
