"""The measured child process of the memory benchmarks (``bench.preprocess``,
``bench.validate``, ``bench.batch_scoring``): each contender runs in a fresh interpreter, so its
peak memory is its own, and reports its work time and peak RSS on one marked line of stdout;
``print_runs`` shows the runs as one table."""

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


MIB = 1 << 20
# How the runs table shows each measured value, by its key in a run's numbers.
RUN_COLUMNS: dict[str, tuple[str, Callable[[float], str]]] = {
    "wall_s": ("wall s", lambda v: f"{v:.2f}"),
    "work_s": ("work s", lambda v: f"{v:.2f}"),
    "speedup": ("speedup", lambda v: f"{v:.1f}x"),
    "rows_per_s": ("rows/s", lambda v: f"{v:,.0f}"),
    "peak_rss_bytes": ("peak MiB", lambda v: f"{v / MIB:,.0f}"),
    "peak_over_arrow": ("x Arrow", lambda v: f"{v:.2f}"),
}


def print_runs(runs: dict[str, dict[str, Any]], keys: list[str]) -> None:
    """A table of the measured runs: one line per run, one column per key of RUN_COLUMNS."""
    name_width = max(len("run"), *map(len, runs)) + 2
    widths = [max(10, len(RUN_COLUMNS[key][0]) + 2) for key in keys]
    headings = "".join(f"{RUN_COLUMNS[k][0]:>{w}}" for k, w in zip(keys, widths, strict=True))
    print(f"{'run':<{name_width}}{headings}")
    for name, run in runs.items():
        cells = [RUN_COLUMNS[k][1](run[k]) for k in keys]
        line = "".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))
        print(f"{name:<{name_width}}{line}")
