"""The HTTP API's own cost, on a scripted backend, measured in one run.

    python bench/api.py [--repeat 20] [--sessions 32] [--tokens 200] [--rate 50]

1. Time to the first answer text through `POST /v1/chat/completions`, LM Studio's `POST /api/v1/chat` and
   OpenAI's `POST /v1/responses` (streaming, nothing stored) against the backend's own time to the first
   answer text (the same script, parsed the same way, no HTTP), median over `--repeat`.
2. `--sessions` concurrent streaming sessions (`POST /v1/sessions/{id}/messages`), each a `--tokens`-token
   answer paced at `--rate` tokens/s: p50 / p99 of first-event and whole-turn latency, against the
   pacing alone (tokens / rate), and the longest stall of a 5 ms ticker on the server's event loop.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import anyio
import httpx2
import uvicorn

from mcp_host.api import create_app
from mcp_host.backends import GenerationParams, RecordedGeneration, ReplayBackend
from mcp_host.backends.base import OutputText
from mcp_host.host import Host
from mcp_host.prompt import STOP_TOKENS, HarmonyStreamParser, harmony_encoding

MODEL = "scripted gpt-oss"


def script(count: int, tokens: int, rate: float) -> ReplayBackend:
    text = "<|channel|>final<|message|>" + "word " * (tokens - 4) + "<|return|>"
    encoded = list(harmony_encoding().encode(text, allowed_special="all"))
    return ReplayBackend([RecordedGeneration([], encoded, "stop")] * count, name=MODEL, tokens_per_second=rate)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(round(fraction * (len(ordered) - 1))), len(ordered) - 1)]


async def backend_ttft(repeat: int, rate: float) -> float:
    """The backend's own time to the first answer text: the same script, parsed, without HTTP."""
    backend = script(repeat, 50, rate)
    timings = []
    for _ in range(repeat):
        parser = HarmonyStreamParser(set())
        started = time.perf_counter()
        async with backend.generate([200006], GenerationParams(stop_tokens=STOP_TOKENS)) as generation:
            async for token in generation:
                if any(isinstance(event, OutputText) for event in parser.feed(token)):
                    timings.append(time.perf_counter() - started)
                    break
    return statistics.median(timings)


# Each endpoint's streaming request for one answer, and the line that carries its first answer text.
ENDPOINTS: dict[str, tuple[dict[str, object], str]] = {
    "/v1/chat/completions": ({"messages": [{"role": "user", "content": "hi"}], "stream": True}, '"content":"w'),
    "/api/v1/chat": ({"model": MODEL, "input": "hi", "stream": True, "store": False}, "event: message.delta"),
    "/v1/responses": ({"model": MODEL, "input": "hi", "stream": True, "store": False}, "response.output_text.delta"),
}


async def api_ttfb(base: str, repeat: int, path: str) -> float:
    """Time to the first answer text through `path`, streaming: the median of `repeat` requests."""
    body, marker = ENDPOINTS[path]
    timings = []
    async with httpx2.AsyncClient(base_url=base, timeout=60) as http:
        for _ in range(repeat):
            started = time.perf_counter()
            async with http.stream("POST", path, json=body) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if marker in line:
                        timings.append(time.perf_counter() - started)
                        break
                else:
                    raise RuntimeError(f"{path} streamed no answer text")
    return statistics.median(timings)


async def one_session(http: httpx2.AsyncClient, first: list[float], whole: list[float]) -> None:
    session = (await http.post("/v1/sessions")).json()["id"]
    started = time.perf_counter()
    seen_first = False
    async with http.stream("POST", f"/v1/sessions/{session}/messages", json={"content": "talk"}) as response:
        async for line in response.aiter_lines():
            if line.startswith("event: message.delta") and not seen_first:
                first.append(time.perf_counter() - started)
                seen_first = True
    whole.append(time.perf_counter() - started)


async def main(repeat: int, sessions: int, tokens: int, rate: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "mcp.json"
        config.write_text('{"mcpServers": {}}')
        backend = script(len(ENDPOINTS) * repeat + sessions, tokens, rate)
        async with Host(config, settings_path=Path(folder) / "settings.toml") as host:
            server = uvicorn.Server(
                uvicorn.Config(create_app(host, backend), host="127.0.0.1", port=0, log_level="warning")
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(server.serve)
                while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
                    await anyio.sleep(0.01)
                port = server.servers[0].sockets[0].getsockname()[1]
                base = f"http://127.0.0.1:{port}"

                own = await backend_ttft(repeat, rate)
                print(f"time to first token: backend alone {own * 1e3:.2f} ms (median of {repeat})")
                for path in ENDPOINTS:
                    through = await api_ttfb(base, repeat, path)
                    print(
                        f"  through {path}: {through * 1e3:.2f} ms, API overhead {(through - own) * 1e3:.2f} ms, "
                        f"ratio {through / own:.2f}x"
                    )

                gaps: list[float] = []
                done = anyio.Event()

                async def ticker() -> None:
                    last = time.perf_counter()
                    while not done.is_set():
                        await anyio.sleep(0.005)
                        now = time.perf_counter()
                        gaps.append(now - last - 0.005)
                        last = now

                first: list[float] = []
                whole: list[float] = []
                tg.start_soon(ticker)
                async with httpx2.AsyncClient(
                    base_url=base, timeout=120, limits=httpx2.Limits(max_connections=sessions * 2)
                ) as http:
                    async with anyio.create_task_group() as clients:
                        for _ in range(sessions):
                            clients.start_soon(one_session, http, first, whole)
                done.set()
                pacing = tokens / rate
                print(
                    f"{sessions} concurrent sessions, {tokens} tokens each at {rate:g} tok/s (pacing alone "
                    f"{pacing:.2f} s): first event p50 {percentile(first, 0.5) * 1e3:.1f} ms / p99 "
                    f"{percentile(first, 0.99) * 1e3:.1f} ms; whole turn p50 {percentile(whole, 0.5):.2f} s / "
                    f"p99 {percentile(whole, 0.99):.2f} s (p99 / pacing {percentile(whole, 0.99) / pacing:.3f}); "
                    f"longest event-loop stall {max(gaps) * 1e3:.1f} ms"
                )
                server.should_exit = True


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0)
    options = parser.parse_args()
    anyio.run(main, options.repeat, options.sessions, options.tokens, options.rate)
