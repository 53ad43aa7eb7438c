"""OpenAI's Responses API without MCP tools, on a real uvicorn server, driven by the official `openai` client.

gpt-oss cannot run here, so the model is a replay of scripted Harmony; what the model was asked is read
back from the replay's prompts. One test runs the real gemma-3-270m on llama.cpp.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from mcp_host.prompt import harmony_encoding
from tests.test_api_openai import Served, serving

pytestmark = pytest.mark.anyio

MODEL = "openai/gpt-oss-20b"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": None,
}
CALL = (
    "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>'
)
SUNNY = (
    "<|channel|>analysis<|message|>It said sunny.<|end|><|start|>assistant<|channel|>final<|message|>"
    "It is sunny in Paris.<|return|>"
)


def final(text: str, thought: str = "Easy.") -> str:
    return (
        f"<|channel|>analysis<|message|>{thought}<|end|><|start|>assistant<|channel|>final<|message|>{text}<|return|>"
    )


def prompt(served: Served, index: int) -> str:
    return harmony_encoding().decode(served.backend.prompts[index])  # type: ignore[attr-defined]


async def events_of(stream: Any) -> list[Any]:
    return [event async for event in stream]


def check_numbers(events: list[Any]) -> None:
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(len(numbers))), numbers


@pytest.fixture
async def api(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    async for served in serving(tmp_path, getattr(request, "param", [CALL, SUNNY])):
        yield served


async def test_a_function_call_round_trip_continues_the_stored_conversation(api: Served) -> None:
    client = api.client()
    first = await client.responses.create(
        model=MODEL, input="What's the weather in Paris?", tools=[WEATHER], reasoning={"effort": "high"}
    )  # type: ignore[list-item]
    assert first.status == "completed" and first.object == "response"
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and reasoning.content and reasoning.content[0].text == "Need the weather."
    assert (
        call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    )
    assert first.usage is not None and first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    assert first.usage.output_tokens_details.reasoning_tokens > 0
    assert "Reasoning: high" in prompt(api, 0) and "type get_weather = (_: {" in prompt(api, 0)

    second = await client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.output_text == "It is sunny in Paris." and second.previous_response_id == first.id
    resumed = prompt(api, 1)
    assert "<|start|>user<|message|>What's the weather in Paris?<|end|>" in resumed
    assert '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"sky": "sunny"}' in resumed
    assert "Need the weather." not in resumed  # an earlier turn's reasoning is left out
    assert second.usage is not None and second.usage.input_tokens_details.cached_tokens > 0

    again = await client.responses.retrieve(second.id)
    assert again.output_text == "It is sunny in Paris." and again.id == second.id
    await client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(second.id)


def strict(served: Served) -> openai.AsyncOpenAI:
    """A client that validates every answer against the API's schema (missing required fields raise)."""
    client = openai.AsyncOpenAI(
        base_url=f"{served.url}/v1", api_key="not-needed", max_retries=0, _strict_response_validation=True
    )
    served.clients.append(client)
    return client


async def test_streamed_function_call_and_its_continuation_pass_the_stream_helper(api: Served) -> None:
    client = strict(api)
    async with client.responses.stream(model=MODEL, input="Weather in Paris?", tools=[WEATHER]) as stream:  # type: ignore[list-item]
        events = await events_of(stream)
        first = await stream.get_final_response()
    check_numbers(events)
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",  # reasoning
        "response.content_part.added",
        *["response.reasoning_text.delta"] * kinds.count("response.reasoning_text.delta"),
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",  # the function call
        *["response.function_call_arguments.delta"] * kinds.count("response.function_call_arguments.delta"),
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    call = first.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    assert events[-1].response.id == first.id == events[0].response.id

    async with client.responses.stream(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    ) as stream:
        events = await events_of(stream)
        second = await stream.get_final_response()
    check_numbers(events)
    assert second.output_text == "It is sunny in Paris."
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == "It is sunny in Paris."
    assert [item.type for item in second.output] == ["reasoning", "message"]
    assert (await client.responses.retrieve(second.id)).output_text == "It is sunny in Paris."


async def test_without_store_nothing_is_kept_and_the_client_sends_the_conversation_itself(api: Served) -> None:
    client = strict(api)
    question = {"role": "user", "content": "What's the weather in Paris?"}
    first = await client.responses.create(model=MODEL, input=[question], tools=[WEATHER], store=False)  # type: ignore[list-item]
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as missing:
        await client.responses.create(model=MODEL, previous_response_id=first.id, input="and?")
    assert missing.value.param == "previous_response_id"  # type: ignore[attr-defined]

    call = first.output[-1]
    assert call.type == "function_call"
    replayed = [question, *[item.model_dump(exclude_none=True) for item in first.output]]
    replayed.append({"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'})
    second = await client.responses.create(model=MODEL, input=replayed, tools=[WEATHER], store=False)  # type: ignore[arg-type,list-item]
    assert second.output_text == "It is sunny in Paris."
    assert '{"sky": "sunny"}' in prompt(api, 1) and "Need the weather." not in prompt(api, 1)


@pytest.mark.parametrize("api", [[final("Bonjour.")]], indirect=True)
async def test_instructions_and_earlier_messages_reach_the_model(api: Served) -> None:
    response = await strict(api).responses.create(
        model=MODEL,
        instructions="Answer in French.",
        input=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]},
            {"type": "message", "role": "user", "content": "Say hello"},
        ],
        metadata={"ticket": "42"},
        temperature=0.5,
        max_output_tokens=64,
    )
    assert response.output_text == "Bonjour." and response.metadata == {"ticket": "42"}
    assert response.temperature == 0.5 and response.max_output_tokens == 64
    seen = prompt(api, 0)
    assert "Answer in French." in seen and "Be brief." in seen
    assert "<|start|>user<|message|>Hi<|end|><|start|>assistant<|channel|>final<|message|>Hello!<|end|>" in seen
    assert seen.endswith("<|start|>user<|message|>Say hello<|end|><|start|>assistant")


@pytest.mark.parametrize("api", [[final("Fine.")]], indirect=True)
async def test_bad_requests_are_openai_shaped_400s_with_their_param(api: Served) -> None:
    async with httpx2.AsyncClient(base_url=api.url) as http:

        async def error(body: Any) -> tuple[int, dict[str, Any]]:
            answer = await http.post("/v1/responses", json=body)
            return answer.status_code, answer.json()["error"]

        status, body = await error([1, 2])
        assert status == 400 and body["message"] == "the request body must be a JSON object"
        status, body = await error({"input": [{"role": "user", "content": "x"}, {"type": "computer_call"}]})
        assert status == 400 and body["param"] == "input.1" and "function_call_output" in body["message"]
        status, body = await error({"input": "x", "reasoning": {"effort": "extreme"}})
        assert status == 400 and body["param"] == "reasoning.effort"
        status, body = await error({"input": "x", "stream": "no"})
        assert status == 400 and body["param"] == "stream"
        status, body = await error({"input": "x", "tools": [{"type": "web_search"}]})
        assert status == 400 and body["param"] == "tools.0"
        status, body = await error(
            {"input": "x", "text": {"format": {"type": "json_schema", "name": "a", "schema": {}}}}
        )
        assert status == 400 and body["param"] == "text.format.type" and "not supported" in body["message"]
        status, body = await error(
            {"input": [{"type": "mcp_approval_response", "approval_request_id": "mcpr_x", "approve": True}]}
        )
        assert status == 400 and body["param"] == "input.0.approval_request_id"
        status, body = await error({"input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}]})
        assert status == 400 and body["param"] == "input.0.call_id"
        status, body = await error({"input": "x", "previous_response_id": "resp_nothing"})
        assert status == 404 and body["param"] == "previous_response_id"
        status, body = await error(
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}
        )
        assert status == 400 and body["param"] == "input.0.content.0.type"
        status, body = await error({"input": "x", "background": True})
        assert status == 400 and body["param"] == "background"
        missing = await http.delete("/v1/responses/resp_nothing")
        assert missing.status_code == 404
    with pytest.raises(openai.BadRequestError) as bad:
        await api.client().responses.create(model=MODEL, input="x", reasoning={"effort": "extreme"})  # type: ignore[typeddict-item]
    assert bad.value.param == "reasoning.effort"  # type: ignore[attr-defined]


async def test_an_unanswered_function_call_is_a_400(api: Served) -> None:
    client = api.client()
    first = await client.responses.create(model=MODEL, input="Weather?", tools=[WEATHER])  # type: ignore[list-item]
    with pytest.raises(openai.BadRequestError) as unanswered:
        await client.responses.create(model=MODEL, previous_response_id=first.id, input="never mind")
    assert "no tool output found" in str(unanswered.value)


@pytest.mark.parametrize("api", [[final("Once.")]], indirect=True)
async def test_a_model_that_fails_gives_a_failed_response(api: Served) -> None:
    client = strict(api)
    assert (await client.responses.create(model=MODEL, input="Once?")).output_text == "Once."
    failed = await client.responses.create(model=MODEL, input="Twice?")  # the script has no second answer
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"
    assert "the model failed" in failed.error.message
    stream = await client.responses.create(model=MODEL, input="Thrice?", stream=True)
    events = [event async for event in stream]
    check_numbers(events)
    assert [event.type for event in events] == ["response.created", "response.in_progress", "response.failed"]
    assert (await client.responses.retrieve(failed.id)).status == "failed"
