"""LM Studio's `/v1/responses` documentation examples, sent unchanged but for the base URL (as its `curl` does).

The scripted model is served under the name each example asks for. The remote MCP examples name servers on
the internet, which LM Studio lets requests use only when the user opts in: so does this server
(`[api] allow_ephemeral_mcp`), and without it they are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mcp_host.prompt import harmony_encoding
from tests.test_api_openai import scripted, serving

pytestmark = pytest.mark.anyio


def final(text: str) -> str:
    return f"<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>{text}<|return|>"


async def test_non_streaming_then_a_stateful_follow_up(tmp_path: Path) -> None:
    backend = scripted(final("37"), final("74"), name="openai/gpt-oss-20b")
    async for served in serving(tmp_path, [], backend):
        async with httpx2.AsyncClient(base_url=served.url, headers={"Content-Type": "application/json"}) as http:
            first = await http.post(
                "/v1/responses",
                content="""{
    "model": "openai/gpt-oss-20b",
    "input": "Provide a prime number less than 50",
    "reasoning": { "effort": "low" }
  }""",
            )
            assert first.status_code == 200
            answer = first.json()
            assert answer["object"] == "response" and answer["status"] == "completed"
            assert answer["output"][-1]["content"][0]["text"] == "37"
            assert answer["reasoning"]["effort"] == "low"

            # "Use the `id` from a previous response as `previous_response_id`": the example's `resp_123`
            # is such an id; as written it names no response here.
            follow_up = """{
    "model": "openai/gpt-oss-20b",
    "input": "Multiply it by 2",
    "previous_response_id": "resp_123"
  }"""
            missing = await http.post("/v1/responses", content=follow_up)
            assert missing.status_code == 404 and missing.json()["error"]["param"] == "previous_response_id"
            second = await http.post("/v1/responses", content=follow_up.replace("resp_123", answer["id"]))
            assert second.status_code == 200 and second.json()["output"][-1]["content"][0]["text"] == "74"
        encoding = harmony_encoding()
        assert "Reasoning: low" in encoding.decode(backend.prompts[0])
        resumed = encoding.decode(backend.prompts[1])
        assert "<|start|>user<|message|>Provide a prime number less than 50<|end|>" in resumed
        assert "<|channel|>final<|message|>37<|end|><|start|>user<|message|>Multiply it by 2<|end|>" in resumed


async def test_streaming(tmp_path: Path) -> None:
    async for served in serving(tmp_path, [final("Hello! How can I help?")]):
        async with httpx2.AsyncClient(base_url=served.url, headers={"Content-Type": "application/json"}) as http:
            body = """{
    "model": "openai/gpt-oss-20b",
    "input": "Hello",
    "stream": true
  }"""
            events: list[tuple[str, dict[str, Any]]] = []
            async with http.stream("POST", "/v1/responses", content=body) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                name = ""
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        events.append((name, json.loads(line.removeprefix("data: "))))
    names = [name for name, _ in events]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    assert all(name == data["type"] for name, data in events)
    text = "".join(data["delta"] for name, data in events if name == "response.output_text.delta")
    assert text == "Hello! How can I help?" == events[-1][1]["response"]["output"][-1]["content"][0]["text"]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))


REMOTE_MCP = [
    pytest.param(
        "ibm/granite-4-micro",
        """{
    "model": "ibm/granite-4-micro",
    "input": "What is the top trending model on hugging face?",
    "tools": [
      {
        "type": "mcp",
        "server_label": "huggingface",
        "server_url": "https://huggingface.co/mcp",
        "allowed_tools": [
          "model_search"
        ]
      }
    ]
  }""",
        id="huggingface",
    ),
    pytest.param(
        "openai/gpt-oss-20b",
        """{
    "model": "openai/gpt-oss-20b",
    "input": "What is the main header on lmstudio.ai?",
    "tools": [
      {
        "type": "mcp",
        "server_label": "exa",
        "server_url": "https://mcp.exa.ai/mcp",
        "allowed_tools": [
          "web_search_exa"
        ]
      }
    ]
  }""",
        id="exa",
    ),
    pytest.param(
        "openai/gpt-oss-20b",
        """{
    "model": "openai/gpt-oss-20b",
    "tools": [{
      "type": "mcp",
      "server_label": "tiktoken",
      "server_url": "https://gitmcp.io/openai/tiktoken",
      "allowed_tools": ["fetch_tiktoken_documentation"]
    }],
    "input": "What is the first sentence of the tiktoken documentation?"
  }""",
        id="tiktoken",
    ),
]


@pytest.mark.parametrize(("model", "body"), REMOTE_MCP)
async def test_remote_mcp_needs_the_user_to_opt_in(tmp_path: Path, model: str, body: str) -> None:
    backend = scripted(final("unused"), name=model)
    async for served in serving(tmp_path, [], backend):
        async with httpx2.AsyncClient(base_url=served.url, headers={"Content-Type": "application/json"}) as http:
            refused = await http.post("/v1/responses", content=body)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "permission_denied" and error["param"] == "tools.0"
    assert "allow_ephemeral_mcp" in error["message"]
    assert backend.prompts == []  # nothing was generated
