"""The measured child process of the memory benchmarks (``bench.preprocess``,
``bench.validate``): each contender runs in a fresh interpreter, so its peak memory is its own,
and reports its work time and peak RSS on one marked line of stdout."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULT_MARKER = "BENCH-CHILD "


def report_work(work: Callable[[], None]) -> None:
    """Run ``work`` in this (child) process; print its time and the peak RSS as one line."""
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    print(RESULT_MARKER + json.dumps({"work_s": seconds, "peak_rss_bytes": peak_rss()}), flush=True)


def peak_rss() -> int:
    """This process's peak resident memory. Linux: VmHWM, which starts afresh at exec;
    ``ru_maxrss`` would carry over the parent's peak from before the exec."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def measure(module: str, kind: str, data: Path, work_dir: Path) -> dict[str, Any]:
    """Run ``python -m <module> --child <kind> <data> <out>`` and return its wall time (imports
    included) with the work time and peak RSS it reported."""
    out = work_dir / f"out-{kind}"
    command = [sys.executable, "-m", module, "--child", kind, str(data), str(out)]
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    lines = [x for x in done.stdout.splitlines() if x.startswith(RESULT_MARKER)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{kind} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"wall_s": wall, **json.loads(lines[-1].removeprefix(RESULT_MARKER))}
