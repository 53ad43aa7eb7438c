"""LM Studio's own `/api/v1` examples, run as published but for the addresses, against this server.

The curl examples run with curl itself, the TypeScript ones with node (they are plain JavaScript), the Python
ones with this interpreter and `requests`. Remote MCP
servers (huggingface.co, playwright, tiktoken) are stood in for by MCP servers of the same tool names on
127.0.0.1: the request's own (`ephemeral_mcp`) server by address, the plugins as mcp.json entries by URL. A
model an example names is served under that name: scripted Harmony where the answer is a tool call or must
be checked, SmolLM2 (real, on llama.cpp, its context bounding the answer) where any answer will do. The
examples LM Studio published broken (section 11 of the spec notes) are shown broken, then run as meant.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.server.mcpserver import Context, MCPServer

from mcp_host.backends.llama_cpp import LlamaCppBackend
from mcp_host.backends.models import discover_models
from mcp_host.backends.registry import ModelRegistry
from mcp_host.config.settings import ApiSettings, HostSettings
from tests.conftest import serve_app, smollm2_path
from tests.test_api_lmstudio_v1 import V1, call, final, rendered, v1_server
from tests.test_api_openai import scripted

pytestmark = pytest.mark.anyio
TOKEN = "lm-test-token"
GRANITE = "ibm/granite-4-micro"
SETTINGS = HostSettings(api=ApiSettings(allow_ephemeral_mcp=True))

# -- the examples, verbatim ---------------------------------------------------------------------------------

CHAT_WITH_MCP = """curl http://localhost:1234/api/v1/chat \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "ibm/granite-4-micro",
    "input": "Tell me the top trending model on hugging face and navigate to https://lmstudio.ai",
    "integrations": [
      {
        "type": "ephemeral_mcp",
        "server_label": "huggingface",
        "server_url": "https://huggingface.co/mcp",
        "allowed_tools": [
          "model_search"
        ]
      },
      {
        "type": "plugin",
        "id": "mcp/playwright",
        "allowed_tools": [
          "browser_navigate"
        ]
      }
    ],
    "context_length": 8000,
    "temperature": 0
  }'
"""

RED_SQUARE = (  # the example's data URL, too long for one line here
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAoAAAAKCAYAAACNMs+9AAAAFUlEQVR42mP8z8BQz0AEYBxVSF+FABJADveWkH6oAAAAA"
    "ElFTkSuQmCC"
)
CHAT_WITH_IMAGES = """# Image is a small red square encoded as a base64 data URL
curl http://localhost:1234/api/v1/chat \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "qwen/qwen3-vl-4b",
    "input": [
      {
        "type": "text",
        "content": "Describe this image in two sentences"
      },
      {
        "type": "image",
        "data_url": "RED_SQUARE"
      }
    ],
    "context_length": 2048,
    "temperature": 0
  }'
""".replace("RED_SQUARE", RED_SQUARE)

START_CONVERSATION = """curl http://localhost:1234/api/v1/chat \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "ibm/granite-4-micro",
    "input": "My favorite color is blue."
  }'
"""

CONTINUE_CONVERSATION = """curl http://localhost:1234/api/v1/chat \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "ibm/granite-4-micro",
    "input": "What color did I just mention?",
    "previous_response_id": "resp_abc123xyz..."
  }'
"""

STATELESS_CHAT = """curl http://localhost:1234/api/v1/chat \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "ibm/granite-4-micro",
    "input": "Tell me a joke.",
    "store": false
  }'
"""

QUICKSTART_CHAT = """curl http://localhost:1234/api/v1/chat \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "ibm/granite-4-micro",
    "input": "Write a short haiku about sunrise."
  }'
"""

QUICKSTART_CHAT_TS = """const response = await fetch("http://localhost:1234/api/v1/chat", {
  method: "POST",
  headers: {
    "Authorization": `Bearer ${process.env.LM_API_TOKEN}`,
    "Content-Type": "application/json"
  },
  body: JSON.stringify({
    model: "ibm/granite-4-micro",
    input: "Write a short haiku about sunrise."
  })
});
const data = await response.json();
console.log(data);
"""

QUICKSTART_EPHEMERAL = """curl http://localhost:1234/api/v1/chat \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "ibm/granite-4-micro",
    "input": "What is the top trending model on hugging face?",
    "integrations": [
      {
        "type": "ephemeral_mcp",
        "server_label": "huggingface",
        "server_url": "https://huggingface.co/mcp",
        "allowed_tools": ["model_search"]
      }
    ],
    "context_length": 8000
  }'
"""

QUICKSTART_EPHEMERAL_TS = """const response = await fetch("http://localhost:1234/api/v1/chat", {
  method: "POST",
  headers: {
    "Authorization": `Bearer ${process.env.LM_API_TOKEN}`,
    "Content-Type": "application/json"
  },
  body: JSON.stringify({
    model: "ibm/granite-4-micro",
    input: "What is the top trending model on hugging face?",
    integrations: [
      {
        type: "ephemeral_mcp",
        server_label: "huggingface",
        server_url: "https://huggingface.co/mcp",
        allowed_tools: ["model_search"]
      }
    ],
    context_length: 8000
  })
const data = await response.json();
console.log(data);
"""

QUICKSTART_PLUGIN = """curl http://localhost:1234/api/v1/chat \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "ibm/granite-4-micro",
    "input": "Open lmstudio.ai",
    "integrations": [
      {
        "type": "plugin",
        "id": "mcp/playwright",
        "allowed_tools": ["browser_navigate"]
      }
    ],
    "context_length": 8000
  }'
"""

QUICKSTART_PLUGIN_TS = """const response = await fetch("http://localhost:1234/api/v1/chat", {
  method: "POST",
  headers: {
    "Authorization": `Bearer ${process.env.LM_API_TOKEN}`,
    "Content-Type": "application/json"
  },
  body: JSON.stringify({
    model: "ibm/granite-4-micro",
    input: "Open lmstudio.ai",
    integrations: [
      {
        type: "plugin",
        id: "mcp/playwright",
        allowed_tools: ["browser_navigate"]
      }
    ],
    context_length: 8000
  })
});
const data = await response.json();
console.log(data);
"""

MCP_EPHEMERAL_TS = """const response = await fetch("http://localhost:1234/api/v1/chat", {
  method: "POST",
  headers: {
    "Authorization": `Bearer ${process.env.LM_API_TOKEN}`,
    "Content-Type": "application/json"
  },
  body: JSON.stringify({
    "model": "ibm/granite-4-micro",
    "input": "What is the top trending model on hugging face?",
    "integrations": [
      {
        "type": "ephemeral_mcp",
        "server_label": "huggingface",
        "server_url": "https://huggingface.co/mcp",
        "allowed_tools": ["model_search"]
      }
    ],
    "context_length": 8000
  });
const data = await response.json();
console.log(data);
"""

# mcp.md's "Restricting tool access" TypeScript: quickstart's ephemeral example with its closing `});`. (Its curl
# example, and the curl one of mcp.md's "Ephemeral MCP servers", send quickstart's body to the letter.)
RESTRICT_TOOLS_TS = QUICKSTART_EPHEMERAL_TS.replace("  })\nconst data", "  })\n});\nconst data")

MCP_JSON_SERVERS = """curl http://localhost:1234/api/v1/chat \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "ibm/granite-4-micro",
    "input": "Open lmstudio.ai",
    "integrations": ["mcp/playwright"],
    "context_length": 8000,
    "temperature": 0
  }'
"""

MCP_JSON_SERVERS_TS = """const response = await fetch("http://localhost:1234/api/v1/chat", {
  method: "POST",
  headers: {
    "Authorization": `Bearer ${process.env.LM_API_TOKEN}`,
    "Content-Type": "application/json"
  },
  body: JSON.stringify({
    model: "ibm/granite-4-micro",
    input: "Open lmstudio.ai",
    integrations: ["mcp/playwright"],
    context_length: 8000,
    temperature: 0
  })
});
const data = await response.json();
console.log(data);
"""

CUSTOM_HEADERS = """curl http://localhost:1234/api/v1/chat \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "ibm/granite-4-micro",
    "input": "Give me details about my SUPER-SECRET-PRIVATE Hugging face model",
    "integrations": [
      {
        "type": "ephemeral_mcp",
        "server_label": "huggingface",
        "server_url": "https://huggingface.co/mcp",
        "allowed_tools": ["model_search"],
        "headers": {
          "Authorization": "Bearer <YOUR_HF_TOKEN>"
        }
      }
    ],
    "context_length": 8000
  }'
"""

CUSTOM_HEADERS_TS = """const response = await fetch("http://localhost:1234/api/v1/chat", {
  method: "POST",
  headers: {
    "Authorization": `Bearer ${process.env.LM_API_TOKEN}`,
    "Content-Type": "application/json"
  },
  body: JSON.stringify({
    model: "ibm/granite-4-micro",
    input: "Give me details about my SUPER-SECRET-PRIVATE Hugging face model",
    integrations: [
      {
        type: "ephemeral_mcp",
        server_label: "huggingface",
        server_url: "https://huggingface.co/mcp",
        allowed_tools: ["model_search"],
        headers: {
          Authorization: "Bearer <YOUR_HF_TOKEN>"
        }
      }
    ],
    context_length: 8000
  })
const data = await response.json();
console.log(data);
"""

API_TOKENS = """curl -X POST \\
  http://localhost:1234/api/v1/chat \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "ibm/granite-4-micro",
    "input": "What is the first line in the tiktoken documentation?",
    "integrations": [
      {
        "type": "plugin",
        "id": "mcp/tiktoken",
        "allowed_tools": [
          "fetch_tiktoken_documentation"
        ]
      }
    ]
  }'
"""

OLDER_CHAT = """curl http://127.0.0.1:1234/api/v1/chat \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
      "model": "openai/gpt-oss-20b",
      "input": "Take me to the page for the top trending model on huggingface",
      "integrations": [
          {
              "type": "ephemeral_mcp",
              "server_label": "huggingface",
              "server_url": "https://huggingface.co/mcp",
              "allowed_tools": ["model_search"]
          },
          {
              "type": "plugin",
              "id": "mcp/playwright",
              "allowed_tools": ["browser_navigate"]
          }
      ],
      "context_length": 20000
  }'
"""

OLDEST_CHAT = """curl http://127.0.0.1:1234/api/v1/chat \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "openai/gpt-oss-20b",
    "input": "What is the first sentence of the tiktoken documentation?",
    "mcp_servers": [
      {
        "server_label": "tiktoken",
        "server_url": "https://gitmcp.io/openai/tiktoken",
        "allowed_tools": ["fetch_tiktoken_documentation"]
      }
    ],
    "reasoning_effort": "low",
    "temperature": 0.7,
    "context_length": 5000
  }'
"""

OLDEST_API_TOKENS = """curl --request POST \\
  --url http://localhost:1234/api/v1/chat \\
  --header 'authorization: Bearer <GENERATED_API_TOKEN>' \\
  --header 'content-type: application/json' \\
  --data '{
  "model": "gpt-oss-20b",s
  "input": "What is the first line in the tiktoken documentation?",
  "plugins": [
    {
      "id": "mcp/tiktoken",
      "allowed_tools": [
        "fetch_tiktoken_documentation"
      ]
    }
  ],
  "temperature": 0.7,
  "stream": true
}'
"""

LIST_MODELS = """curl http://localhost:1234/api/v1/models \\
  -H "Authorization: Bearer $LM_API_TOKEN"
"""

LOAD_MODEL = """curl http://localhost:1234/api/v1/models/load \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "openai/gpt-oss-20b",
    "context_length": 16384,
    "flash_attention": true,
    "echo_load_config": true
  }'
"""

UNLOAD_MODEL = """curl http://localhost:1234/api/v1/models/unload \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "instance_id": "openai/gpt-oss-20b"
  }'
"""

DOWNLOAD_MODEL = """curl http://localhost:1234/api/v1/models/download \\
  -H "Authorization: Bearer $LM_API_TOKEN" \\
  -H "Content-Type: application/json" \\
  -d '{
    "model": "ibm/granite-4-micro"
  }'
"""

DOWNLOAD_PROGRESS = """curl -H "Authorization: Bearer $LM_API_TOKEN" \\
  http://localhost:1234/api/v1/models/download/status/{job_id}
"""

DOWNLOAD_JOBS = """curl \\
  http://127.0.0.1:1234/api/v1/models/download/status
"""

# The quickstart's Python variants (they need `requests`, a dev dependency).
QUICKSTART_CHAT_PY = """import os
import requests
import json

response = requests.post(
  "http://localhost:1234/api/v1/chat",
  headers={
    "Authorization": f"Bearer {os.environ['LM_API_TOKEN']}",
    "Content-Type": "application/json"
  },
  json={
    "model": "ibm/granite-4-micro",
    "input": "Write a short haiku about sunrise."
  }
)
print(json.dumps(response.json(), indent=2))
"""

QUICKSTART_EPHEMERAL_PY = """import os
import requests
import json

response = requests.post(
  "http://localhost:1234/api/v1/chat",
  headers={
    "Authorization": f"Bearer {os.environ['LM_API_TOKEN']}",
    "Content-Type": "application/json"
  },
  json={
    "model": "ibm/granite-4-micro",
    "input": "What is the top trending model on hugging face?",
    "integrations": [
      {
        "type": "ephemeral_mcp",
        "server_label": "huggingface",
        "server_url": "https://huggingface.co/mcp",
        "allowed_tools": ["model_search"]
      }
    ],
    "context_length": 8000
  }
)
print(json.dumps(response.json(), indent=2))
"""

QUICKSTART_PLUGIN_PY = """import os
import requests
import json

response = requests.post(
  "http://localhost:1234/api/v1/chat",
  headers={
    "Authorization": f"Bearer {os.environ['LM_API_TOKEN']}",
    "Content-Type": "application/json"
  },
  json={
    "model": "ibm/granite-4-micro",
    "input": "Open lmstudio.ai",
    "integrations": [
      {
        "type": "plugin",
        "id": "mcp/playwright",
        "allowed_tools": ["browser_navigate"]
      }
    ],
    "context_length": 8000
  }
)
print(json.dumps(response.json(), indent=2))
"""

# -- running them -------------------------------------------------------------------------------------------


def lookalike(name: str, *tools: str) -> Any:
    """An MCP server with the tool names of the one it stands in for, over Streamable HTTP."""
    server = MCPServer(name, version="1.0")

    def model_search(ctx: Context, query: str = "", sort: str = "downloads", limit: int = 10) -> str:
        """Search models on the Hub."""
        request = ctx.request_context.request
        auth = request.headers.get("authorization") if request is not None else None
        seen = f" (authorized as {auth})" if auth else ""
        return f"Showing first {limit} models matching {query!r} sorted by {sort}: deepseek-ai/DeepSeek-OCR{seen}"

    def browser_navigate(url: str) -> str:
        """Navigate to a URL."""
        return f"Navigated to {url}"

    def fetch_tiktoken_documentation() -> str:
        """Fetch the tiktoken documentation."""
        return "# ⏳ tiktoken\n\ntiktoken is a fast BPE tokeniser for use with OpenAI's models."

    known: dict[str, Callable[..., str]] = {"model_search": model_search, "browser_navigate": browser_navigate}
    known["fetch_tiktoken_documentation"] = fetch_tiktoken_documentation
    for tool in tools:
        server.add_tool(known[tool], name=tool)
    return server.streamable_http_app()


@asynccontextmanager
async def lookalikes() -> AsyncIterator[dict[str, str]]:
    """huggingface, playwright and tiktoken stand-ins on 127.0.0.1; their /mcp URLs by name."""
    async with AsyncExitStack() as stack:
        urls = {}
        for name, tool in (
            ("huggingface", "model_search"),
            ("playwright", "browser_navigate"),
            ("tiktoken", "fetch_tiktoken_documentation"),
        ):
            urls[name] = await stack.enter_async_context(serve_app(lookalike(name, tool))) + "/mcp"
        yield urls


@asynccontextmanager
async def examples_server(tmp_path: Path, backend: Any, urls: dict[str, str]) -> AsyncIterator[V1]:
    servers = {"playwright": {"url": urls["playwright"]}, "tiktoken": {"url": urls["tiktoken"]}}
    async with v1_server(
        tmp_path, backend, servers=servers, settings=SETTINGS, unattended_calls=True, api_key=TOKEN
    ) as api:
        yield api


def where(example: str, api: V1, urls: dict[str, str] | None = None) -> str:
    """The example with this server's address for LM Studio's, and the stand-in's for huggingface.co."""
    moved = example.replace("http://localhost:1234", api.url).replace("http://127.0.0.1:1234", api.url)
    return moved.replace("https://huggingface.co/mcp", urls["huggingface"]) if urls else moved


async def curl(example: str, api: V1, urls: dict[str, str] | None = None) -> Any:
    """Run a curl example with bash, as a reader would paste it; its output, parsed as JSON."""
    done = await anyio.run_process(["bash", "-c", where(example, api, urls)], env={**os.environ, "LM_API_TOKEN": TOKEN})
    return json.loads(done.stdout)


async def node(example: str, api: V1, urls: dict[str, str], tmp_path: Path, *, check: bool = True) -> str:
    """Run a TypeScript example (plain JavaScript) with node; its output, or its error with `check=False`."""
    script = tmp_path / "example.mjs"
    script.write_text(where(example, api, urls))
    done = await anyio.run_process(["node", str(script)], env={**os.environ, "LM_API_TOKEN": TOKEN}, check=False)
    assert (done.returncode == 0) == check, done.stderr.decode()
    return (done.stdout if check else done.stderr).decode()


async def python(example: str, api: V1, urls: dict[str, str]) -> Any:
    """Run a Python example with this interpreter (it has `requests`); its printed JSON, parsed."""
    done = await anyio.run_process(
        [sys.executable, "-c", where(example, api, urls)], env={**os.environ, "LM_API_TOKEN": TOKEN}
    )
    return json.loads(done.stdout)


def tool_calls(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {key: item[key] for key in ("tool", "arguments", "provider_info")}
        for item in answer["output"]
        if item["type"] == "tool_call"
    ]


HF = {"type": "ephemeral_mcp", "server_label": "huggingface"}
PLAYWRIGHT = {"type": "plugin", "plugin_id": "mcp/playwright"}
SEARCH = call("huggingface__model_search", '{"sort": "trendingScore", "limit": 1}', "Need to call function.")
NAVIGATE = call("playwright__browser_navigate", '{"url": "https://lmstudio.ai"}', "Navigate.")


async def test_request_with_mcp(tmp_path: Path) -> None:
    backend = scripted(
        call("huggingface__model_search", '{"sort": "trendingScore", "query": "", "limit": 1}'),
        NAVIGATE,
        final("**Top Trending Model on Hugging Face** ... more details on the model or LM Studio itself!"),
        name=GRANITE,
    )
    async with lookalikes() as urls, examples_server(tmp_path, backend, urls) as api:
        answer = await curl(CHAT_WITH_MCP, api, urls)
    assert answer["model_instance_id"] == GRANITE
    assert tool_calls(answer) == [
        {"tool": "model_search", "arguments": {"sort": "trendingScore", "query": "", "limit": 1}, "provider_info": HF},
        {"tool": "browser_navigate", "arguments": {"url": "https://lmstudio.ai"}, "provider_info": PLAYWRIGHT},
    ]
    outputs = [json.loads(item["output"])[0]["text"] for item in answer["output"] if item["type"] == "tool_call"]
    assert "deepseek-ai/DeepSeek-OCR" in outputs[0] and outputs[1] == "Navigated to https://lmstudio.ai"
    assert answer["output"][-1]["content"].startswith("**Top Trending Model on Hugging Face**")
    assert set(answer["stats"]) >= {"input_tokens", "total_output_tokens", "tokens_per_second"}
    assert answer["response_id"].startswith("resp_")
    prompt = rendered(backend)
    assert "type huggingface__model_search" in prompt and "type playwright__browser_navigate" in prompt


async def test_request_with_images_is_refused_and_its_text_alone_is_read(tmp_path: Path) -> None:
    backend = scripted(final("A red square."), final("A red square."), name="qwen/qwen3-vl-4b")
    async with lookalikes() as urls, examples_server(tmp_path, backend, urls) as api:
        refused = await curl(CHAT_WITH_IMAGES, api)
        assert refused["error"]["param"] == "input.1" and "images are not supported" in refused["error"]["message"]
        # What the example means without its image, in both spellings of a text item the docs use.
        for kind in ("text", "message"):
            text = {"type": kind, "content": "Describe this image in two sentences"}
            answer = await api.chat({"model": "qwen/qwen3-vl-4b", "input": [text], "context_length": 2048})
            assert answer.json()["output"][-1] == {"type": "message", "content": "A red square."}


DOC_EVENTS: dict[str, dict[str, Any]] = {
    "chat.start": {"type": "chat.start", "model_instance_id": "openai/gpt-oss-20b"},
    "prompt_processing.start": {"type": "prompt_processing.start"},
    "prompt_processing.progress": {"type": "prompt_processing.progress", "progress": 0.5},
    "prompt_processing.end": {"type": "prompt_processing.end"},
    "reasoning.start": {"type": "reasoning.start"},
    "reasoning.delta": {"type": "reasoning.delta", "content": "Need to"},
    "reasoning.end": {"type": "reasoning.end"},
    "tool_call.start": {"type": "tool_call.start", "tool": "model_search", "provider_info": HF},
    "tool_call.arguments": {
        "type": "tool_call.arguments",
        "tool": "model_search",
        "arguments": {"sort": "trendingScore", "limit": 1},
        "provider_info": HF,
    },
    "tool_call.success": {
        "type": "tool_call.success",
        "tool": "model_search",
        "arguments": {"sort": "trendingScore", "limit": 1},
        "output": '[{"type":"text","text":"Showing first 1 models..."}]',
        "provider_info": HF,
    },
    "tool_call.failure": {
        "type": "tool_call.failure",
        "reason": "Cannot find tool with name open_browser.",
        "metadata": {"type": "invalid_name", "tool_name": "open_browser"},
    },
    "message.start": {"type": "message.start"},
    "message.delta": {"type": "message.delta", "content": "The current"},
    "message.end": {"type": "message.end"},
}


def shape(value: Any) -> Any:
    """The keys of a JSON value all the way down, and the `type` strings that tell its variants apart."""
    if isinstance(value, dict):
        return {key: (item if key == "type" else shape(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__ if not isinstance(value, int | float) else "number"


async def test_streaming_events_have_the_shapes_of_the_docs_examples(tmp_path: Path) -> None:
    backend = scripted(
        call("open_browser", '{"url": "https://huggingface.co"}', "Need to"),
        SEARCH,
        final("The current top‑trending model is..."),
        name="openai/gpt-oss-20b",
    )
    body = {
        "model": "openai/gpt-oss-20b",
        "input": "What is the top trending model on hugging face?",
        "integrations": [{"type": "ephemeral_mcp", "server_label": "huggingface", "allowed_tools": ["model_search"]}],
    }
    async with lookalikes() as urls, examples_server(tmp_path, backend, urls) as api:
        body["integrations"][0]["server_url"] = urls["huggingface"]  # type: ignore[index]
        events = await api.stream(body)
    seen = dict(events)
    assert set(DOC_EVENTS) | {"chat.end"} == set(seen)
    for name, example in DOC_EVENTS.items():
        assert shape(seen[name]) == shape(example), name
    result = seen["chat.end"]["result"]
    doc_result = {
        "model_instance_id": "openai/gpt-oss-20b",
        "output": [
            {"type": "reasoning", "content": "Need to call function."},
            {"type": "tool_call", **{k: v for k, v in DOC_EVENTS["tool_call.success"].items() if k != "type"}},
            {"type": "message", "content": "The current top‑trending model is..."},
        ],
        "stats": {
            "input_tokens": 329,
            "total_output_tokens": 268,
            "reasoning_output_tokens": 5,
            "tokens_per_second": 43.73,
            "time_to_first_token_seconds": 0.781,
        },
        "response_id": "resp_02b2017dbc06c12bfc353a2ed6c2b802f8cc682884bb5716",
    }
    ours = {**result, "output": [item for item in result["output"] if item["type"] != "invalid_tool_call"]}
    ours["output"] = [ours["output"][1], ours["output"][2], ours["output"][-1]]  # reasoning, call, answer
    assert shape(ours) == shape(doc_result)
    assert result["output"][-1] == {"type": "message", "content": "The current top‑trending model is..."}


async def test_stateful_chats(tmp_path: Path) -> None:
    backend = scripted(final("That's great! Blue is a beautiful color..."), final("You mentioned blue."), name=GRANITE)
    async with lookalikes() as urls, examples_server(tmp_path, backend, urls) as api:
        started = await curl(START_CONVERSATION, api)
        assert started["model_instance_id"] == GRANITE and started["response_id"].startswith("resp_")
        assert started["output"][-1] == {"type": "message", "content": "That's great! Blue is a beautiful color..."}
        placeholder = await curl(CONTINUE_CONVERSATION, api)  # the docs' id stands for the one just answered
        assert (
            placeholder["error"]["param"] == "previous_response_id"
            and "resp_abc123xyz..." in (placeholder["error"]["message"])
        )
        meant = CONTINUE_CONVERSATION.replace("resp_abc123xyz...", started["response_id"])
        continued = await curl(meant, api)
    assert continued["output"][-1] == {"type": "message", "content": "You mentioned blue."}
    assert continued["response_id"] not in (started["response_id"], None)
    prompt = rendered(backend, 1)
    assert "My favorite color is blue." in prompt and "Blue is a beautiful color" in prompt


@pytest.fixture(scope="module")
async def smol_as_granite() -> AsyncIterator[LlamaCppBackend]:
    """SmolLM2 served as ibm/granite-4-micro; its 128-token context bounds every answer the examples ask for."""
    backend = await anyio.to_thread.run_sync(lambda: LlamaCppBackend.load(smollm2_path(), context_length=128, seed=7))
    backend.name = GRANITE
    yield backend
    await backend.aclose()


async def test_quickstart_and_a_stateless_chat_on_a_real_model(
    tmp_path: Path, smol_as_granite: LlamaCppBackend
) -> None:
    async with lookalikes() as urls, examples_server(tmp_path, smol_as_granite, urls) as api:
        haiku = await curl(QUICKSTART_CHAT, api)
        assert haiku["output"][-1]["type"] == "message" and haiku["output"][-1]["content"].strip()
        assert haiku["response_id"].startswith("resp_") and haiku["stats"]["total_output_tokens"] > 0
        printed = await node(QUICKSTART_CHAT_TS, api, urls, tmp_path)
        assert "model_instance_id: 'ibm/granite-4-micro'" in printed and "response_id: 'resp_" in printed
        joke = await curl(STATELESS_CHAT, api)
        assert joke["output"][-1]["content"].strip() and "response_id" not in joke


async def test_mcp_servers_via_the_api(tmp_path: Path) -> None:
    """quickstart.md and mcp.md: ephemeral servers, mcp.json plugins, restricted tools, custom headers."""
    answer = final("The top trending model is deepseek-ai/DeepSeek-OCR.")
    search, navigate = [SEARCH, answer], [NAVIGATE, final("Opened lmstudio.ai.")]
    fetch = [call("tiktoken__fetch_tiktoken_documentation", "{}"), final("⏳ tiktoken")]
    runs: list[tuple[str, str, list[str]]] = [
        ("curl", QUICKSTART_EPHEMERAL, search),
        ("node", RESTRICT_TOOLS_TS, search),
        ("curl", QUICKSTART_PLUGIN, navigate),
        ("node", QUICKSTART_PLUGIN_TS, navigate),
        ("curl", MCP_JSON_SERVERS, navigate),
        ("node", MCP_JSON_SERVERS_TS, navigate),
        ("curl", CUSTOM_HEADERS, search),
        ("curl", API_TOKENS, fetch),
    ]
    backend = scripted(*[output for _, _, outputs in runs for output in outputs], name=GRANITE)
    async with lookalikes() as urls, examples_server(tmp_path, backend, urls) as api:
        answers: list[Any] = []
        for runner, example, _ in runs:
            if runner == "curl":
                answers.append(await curl(example, api, urls))
            else:
                answers.append(await node(example, api, urls, tmp_path))
        # Published with a missing `});` (or one too early): a syntax error as they stand.
        for broken in (QUICKSTART_EPHEMERAL_TS, MCP_EPHEMERAL_TS, CUSTOM_HEADERS_TS):
            assert "SyntaxError" in await node(broken, api, urls, tmp_path, check=False)
    ephemeral, restricted_ts, plugin, plugin_ts, mcp_json, mcp_json_ts, headers, tokens = answers
    assert "tool: 'model_search'" in restricted_ts
    assert tool_calls(ephemeral) == [
        {"tool": "model_search", "arguments": {"sort": "trendingScore", "limit": 1}, "provider_info": HF}
    ]
    navigated = [{"tool": "browser_navigate", "arguments": {"url": "https://lmstudio.ai"}, "provider_info": PLAYWRIGHT}]
    assert tool_calls(plugin) == navigated and tool_calls(mcp_json) == navigated
    for printed in (plugin_ts, mcp_json_ts):  # node prints objects nested deeper than two levels as [Object]
        assert "tool: 'browser_navigate'" in printed and "response_id: 'resp_" in printed
    (searched,) = [item["output"] for item in headers["output"] if item["type"] == "tool_call"]
    assert "authorized as Bearer <YOUR_HF_TOKEN>" in searched  # the request's headers reached its server
    (fetched,) = tool_calls(tokens)
    assert fetched["tool"] == "fetch_tiktoken_documentation"
    assert fetched["provider_info"] == {"type": "plugin", "plugin_id": "mcp/tiktoken"}


async def test_the_quickstarts_python_examples(tmp_path: Path) -> None:
    """quickstart.md's Python variants, run with `requests` as a reader would: a chat, an ephemeral server, a plugin."""
    haiku = "Gold light on the hill"
    backend = scripted(
        final(haiku), SEARCH, final("deepseek-ai/DeepSeek-OCR"), NAVIGATE, final("Opened lmstudio.ai."), name=GRANITE
    )
    async with lookalikes() as urls, examples_server(tmp_path, backend, urls) as api:
        chat = await python(QUICKSTART_CHAT_PY, api, urls)
        ephemeral = await python(QUICKSTART_EPHEMERAL_PY, api, urls)
        plugin = await python(QUICKSTART_PLUGIN_PY, api, urls)
    assert chat["output"][-1] == {"type": "message", "content": haiku} and chat["response_id"].startswith("resp_")
    assert tool_calls(ephemeral) == [
        {"tool": "model_search", "arguments": {"sort": "trendingScore", "limit": 1}, "provider_info": HF}
    ]
    assert ephemeral["output"][-1]["content"] == "deepseek-ai/DeepSeek-OCR"
    navigated = {"tool": "browser_navigate", "arguments": {"url": "https://lmstudio.ai"}, "provider_info": PLAYWRIGHT}
    assert tool_calls(plugin) == [navigated]
    assert "Navigated to https://lmstudio.ai" in json.dumps(plugin["output"])


async def test_superseded_examples(tmp_path: Path) -> None:
    """Older docs: their `integrations` request still runs; `mcp_servers` and a stray `s` are clear 400s."""
    backend = scripted(SEARCH, NAVIGATE, final("Here is the page."), name="openai/gpt-oss-20b")
    async with lookalikes() as urls, examples_server(tmp_path, backend, urls) as api:
        older = await curl(OLDER_CHAT, api, urls)
        assert [call["tool"] for call in tool_calls(older)] == ["model_search", "browser_navigate"]
        assert older["response_id"].startswith("resp_")  # the newer name of what this example called thread_id
        oldest = await curl(OLDEST_CHAT, api)  # it sends no API key, and this server asks for one
        assert oldest["error"]["code"] == "invalid_api_key"
        sent = await api.chat(json.loads(OLDEST_CHAT.split("-d '")[1].split("'")[0]))
        assert sent.status_code == 400 and sent.json()["error"]["param"] in ("mcp_servers", "reasoning_effort")
        assert "Extra inputs are not permitted" in sent.json()["error"]["message"]
        invalid = await curl(OLDEST_API_TOKENS.replace("<GENERATED_API_TOKEN>", TOKEN), api)
        assert invalid["error"]["type"] == "invalid_request_error"


async def test_model_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """list.md, load.md, unload.md, download.md, download-status.md; the model is SmolLM2 named as the docs."""
    folder = tmp_path / "models" / "openai" / "gpt-oss-20b"
    folder.mkdir(parents=True)
    (folder / smollm2_path().name).symlink_to(smollm2_path())
    monkeypatch.setenv("LMSTUDIO_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hf-cache"))
    async with v1_server(tmp_path, ModelRegistry(discover=discover_models)) as api:
        (listed,) = (await curl(LIST_MODELS, api))["models"]
        assert listed["key"] == "openai/gpt-oss-20b" and listed["loaded_instances"] == []
        doc_keys = {"type", "publisher", "key", "display_name", "architecture", "quantization", "size_bytes"}
        doc_keys |= {"params_string", "loaded_instances", "max_context_length", "format", "capabilities"}
        assert set(listed) == doc_keys | {"description"}
        loaded = await curl(LOAD_MODEL, api)
        assert {key: loaded[key] for key in ("type", "instance_id", "status", "load_config")} == {
            "type": "llm",
            "instance_id": "openai/gpt-oss-20b",
            "status": "loaded",
            "load_config": {"context_length": 16384},
        }
        (listed,) = (await curl(LIST_MODELS, api))["models"]
        assert listed["loaded_instances"] == [{"id": "openai/gpt-oss-20b", "config": {"context_length": 16384}}]
        assert await curl(UNLOAD_MODEL, api) == {"instance_id": "openai/gpt-oss-20b"}
        trailing_comma = LOAD_MODEL.replace('"echo_load_config": true', '"echo_load_config": true,')
        assert (await curl(trailing_comma, api))["error"]["type"] == "invalid_request_error"
        refused = await curl(DOWNLOAD_MODEL, api)
        assert refused["error"]["code"] == "not_implemented" and "offline" in refused["error"]["message"]
        assert (await curl(DOWNLOAD_PROGRESS, api))["error"]["code"] == "job_not_found"
        assert await curl(DOWNLOAD_JOBS, api) == {"downloading": [], "completed": [], "failed": [], "paused": []}
