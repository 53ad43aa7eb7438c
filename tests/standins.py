"""Stand-ins on 127.0.0.1 for the servers people run gpt-oss on: LM Studio, Ollama and vLLM.

Each answers the routes the host uses in the shapes the server's documentation gives (LM Studio's REST API v0
and OpenAI-compatible endpoints; Ollama's `/api/version`, `/api/tags`, `/api/show`, `/api/generate` with NDJSON
streaming and its OpenAI-compatible endpoints; vLLM's `/version` and OpenAI-compatible endpoints with token-id
prompts and `stop_reason`), and what each says of a model (architecture, context length) or leaves unsaid.

A raw completion answers with the next of `script` (Harmony text), as a server would: cut at the first stop
string of the request, which is not sent back; vLLM names it in `stop_reason`, LM Studio and Ollama do not. Each
request's body is kept in `requests` for the tests to read. A chat completion answers with the next of `chat`.

Assumptions beyond the documentation, stated: LM Studio's `/v1/completions` takes a string prompt only (its
documentation shows no other), answering 400 to a list.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from mcp_host.prompt import harmony_encoding

Kind = Literal["LM Studio", "Ollama", "vLLM"]
TOKENS_A_PIECE = 2


@dataclass
class Standin:
    kind: Kind
    models: list[dict[str, Any]]  # {"id", "arch", "context"}
    script: list[str] = field(default_factory=list)  # raw completions, in order
    chat: list[dict[str, Any]] = field(default_factory=list)  # chat completion messages, in order
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    def next_raw(self, stops: list[str]) -> tuple[str, str | None]:
        """The next scripted answer cut at its first stop string, and the stop string that cut it."""
        text = self.script.pop(0)
        cuts = [(text.find(stop), stop) for stop in stops if stop in text]
        if not cuts:
            return text, None
        at, stop = min(cuts)
        return text[:at], stop


def _pieces(text: str) -> Iterator[str]:
    """The text as a server streams it: a token at a time (a special token whole), a few tokens a piece."""
    encoding = harmony_encoding()
    tokens = encoding.encode(text, allowed_special="all")
    for start in range(0, len(tokens), TOKENS_A_PIECE):
        yield encoding.decode(tokens[start : start + TOKENS_A_PIECE])


class _Handler(BaseHTTPRequestHandler):
    standin: Standin

    def log_message(self, *args: object) -> None:
        return None

    def _json(self, value: object, status: int = 200) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, content_type: str, lines: Iterator[str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Connection", "close")
        self.end_headers()
        for line in lines:
            self.wfile.write(line.encode())
            self.wfile.flush()
        self.close_connection = True

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.standin.requests.append((self.path, body))
        return body  # type: ignore[no-any-return]

    # -- what each server says of itself -----------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        s = self.standin
        if self.path == "/v1/models":
            data = [{"id": m["id"], "object": "model", "owned_by": "organization_owner"} for m in s.models]
            if s.kind == "vLLM":
                data = [
                    {**d, "owned_by": "vllm", "root": d["id"], "max_model_len": m["context"]}
                    for d, m in zip(data, s.models, strict=True)
                ]
            self._json({"object": "list", "data": data})
        elif s.kind == "LM Studio" and self.path == "/api/v0/models":
            data = [
                {
                    "id": m["id"],
                    "object": "model",
                    "type": "llm",
                    "publisher": "openai",
                    "arch": m["arch"],
                    "compatibility_type": "gguf",
                    "quantization": "MXFP4",
                    "state": "loaded",
                    "max_context_length": m["context"],
                }
                for m in s.models
            ]
            self._json({"object": "list", "data": data})
        elif s.kind == "Ollama" and self.path == "/api/version":
            self._json({"version": "0.12.3"})
        elif s.kind == "Ollama" and self.path == "/api/tags":
            self._json(
                {"models": [{"name": m["id"], "model": m["id"], "details": {"family": m["arch"]}} for m in s.models]}
            )
        elif s.kind == "vLLM" and self.path == "/version":
            self._json({"version": "0.10.1"})
        elif s.kind == "LM Studio":  # LM Studio answers an unknown route with 200 and an error object
            self._json({"error": f"Unexpected endpoint or method. (GET {self.path})"})
        else:
            self._json({"detail": "Not Found"}, 404)

    def do_POST(self) -> None:  # noqa: N802
        s = self.standin
        body = self._body()
        if s.kind == "Ollama" and self.path == "/api/show":
            model = next((m for m in s.models if m["id"] == body.get("model")), None)
            if model is None:
                self._json({"error": f"model '{body.get('model')}' not found"}, 404)
                return
            info = {"general.architecture": model["arch"], f"{model['arch']}.context_length": model["context"]}
            self._json({"model_info": info, "capabilities": ["completion", "tools", "thinking"]})
        elif s.kind == "Ollama" and self.path == "/api/generate":
            self._ollama_generate(body)
        elif self.path == "/v1/completions" and s.kind != "Ollama":
            self._completions(body)
        elif self.path == "/v1/chat/completions":
            self._chat(body)
        else:
            self._json({"error": "not found"}, 404)

    # -- answers ----------------------------------------------------------------------------

    def _completions(self, body: dict[str, Any]) -> None:
        s = self.standin
        prompt = body.get("prompt")
        if not prompt:
            self._json({"error": {"message": "'prompt' is required"}}, 400)
            return
        if s.kind == "LM Studio" and not isinstance(prompt, str):
            self._json({"error": {"message": "'prompt' must be a string"}}, 400)
            return
        counted = (
            len(prompt) if isinstance(prompt, list) else len(harmony_encoding().encode(prompt, allowed_special="all"))
        )
        text, stop = s.next_raw(list(body.get("stop") or []))

        def lines() -> Iterator[str]:
            for piece in _pieces(text):
                yield (
                    "data: "
                    + json.dumps(
                        {"object": "text_completion", "choices": [{"index": 0, "text": piece, "finish_reason": None}]}
                    )
                    + "\n\n"
                )
            final: dict[str, Any] = {"index": 0, "text": "", "finish_reason": "stop"}
            if s.kind == "vLLM":
                final["stop_reason"] = stop
            yield "data: " + json.dumps({"object": "text_completion", "choices": [final]}) + "\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": counted, "completion_tokens": 0, "total_tokens": counted}
                yield "data: " + json.dumps({"object": "text_completion", "choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        self._stream("text/event-stream", lines())

    def _ollama_generate(self, body: dict[str, Any]) -> None:
        s = self.standin
        if not body.get("raw"):
            self._json({"error": "the stand-in answers raw prompts only"}, 400)
            return
        text, _ = s.next_raw(list((body.get("options") or {}).get("stop") or []))
        evaluated = len(harmony_encoding().encode(str(body.get("prompt", "")), allowed_special="all"))

        def lines() -> Iterator[str]:
            for piece in _pieces(text):
                yield json.dumps({"model": body["model"], "response": piece, "done": False}) + "\n"
            yield (
                json.dumps(
                    {
                        "model": body["model"],
                        "response": "",
                        "done": True,
                        "done_reason": "stop",
                        "prompt_eval_count": evaluated,
                        "eval_count": 9,
                    }
                )
                + "\n"
            )

        self._stream("application/x-ndjson", lines())

    def _chat(self, body: dict[str, Any]) -> None:
        message = self.standin.chat.pop(0)

        def lines() -> Iterator[str]:
            delta: dict[str, Any] = {"role": "assistant"}
            if message.get("reasoning"):
                delta["reasoning_content"] = message["reasoning"]
            if message.get("content"):
                delta["content"] = message["content"]
            if message.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            finish = "tool_calls" if message.get("tool_calls") else "stop"
            yield (
                "data: "
                + json.dumps(
                    {
                        "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                    }
                )
                + "\n\n"
            )
            yield (
                "data: "
                + json.dumps(
                    {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
                )
                + "\n\n"
            )
            yield "data: [DONE]\n\n"

        self._stream("text/event-stream", lines())


@contextmanager
def serving(standin: Standin) -> Iterator[Standin]:
    """`standin` on a free port of 127.0.0.1 (its `url` set) for the block."""
    handler = type("Handler", (_Handler,), {"standin": standin})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    standin.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
