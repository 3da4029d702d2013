"""The screen of ``python -m demo``: short lines for the person watching, each after the time
since the start, while everything else the run writes (Airflow's log, the steps' logs, Python
warnings) goes to a log file. It imports no Airflow: the output is redirected before Airflow is
imported and configures its logging."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

MAX_LINE = 200  # a screen line longer than this is cut: the log file has the whole text


class Screen:
    """Lines for the person watching, each after the time since the start (``  12s  ...``)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        """``text`` as it is (messages, the summary)."""
        print(text, file=self.stream, flush=True)

    def event(self, text: str) -> None:
        """``text`` on one line after the elapsed time, cut at ``MAX_LINE`` characters."""
        elapsed = f"{time.monotonic() - self.started:>5.0f}s"
        line = f"{elapsed}  {' '.join(text.splitlines())}"
        if len(line) > MAX_LINE:
            line = line[: MAX_LINE - 3] + "..."
        self.say(line)


@contextlib.contextmanager
def output_to(log_path: Path) -> Iterator[TextIO]:
    """Send everything this process and its children write on stdout and stderr (Airflow's
    log, the steps' logs, Python warnings) to ``log_path``; yields a stream to the screen (the
    original stdout). File descriptors are redirected, not only ``sys.stdout``, so the output of
    loggers and of the local pods' processes follows, whenever their streams were opened."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    screen = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    with log_path.open("a", encoding="utf-8") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            yield screen
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            screen.close()
