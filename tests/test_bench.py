"""Every benchmark still starts: its imports and options follow the package as it changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = sorted(p for p in (Path(__file__).resolve().parent.parent / "bench").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("script", BENCH, ids=[path.stem for path in BENCH])
def test_a_benchmark_starts(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and "usage" in done.stdout, done.stderr[-2000:]
