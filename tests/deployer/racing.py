"""Deploys that race: each runs ``python -m deployer`` in a process of its own, and they all
meet at a barrier right before moving ``champion``, so every one of them has read the champion,
passed its early checks, registered and smoke-tested its version before any alias moves. Then
they move it at the same instant, or one after the other (each once the one before it is done):
the two worst cases for a compare-and-set, made certain instead of left to timing."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BARRIER_TIMEOUT_S = 300.0  # every process imports MLflow and torch before it gets there


@dataclass(frozen=True)
class Outcome:
    """How one racing deploy ended: its exit code, result and one-line failure reason."""

    exit_code: int | None
    result: dict[str, Any] | None
    failure: str


def deploy_at_barrier(
    argv: list[str], folder: str, barrier: Any, after: Any | None, done: Any
) -> None:
    """Child process: deploy with ``argv`` (its return.json and termination log in ``folder``),
    moving champion once all have met at ``barrier`` and the event ``after`` (if any) is set;
    set ``done`` when its move has ended."""
    os.environ["XCOM_RETURN_PATH"] = str(Path(folder) / "return.json")
    os.environ["TERMINATION_LOG_PATH"] = str(Path(folder) / "termination-log")
    Path(folder, "termination-log").touch()
    import deployer.job
    from deployer.cli import main

    move = deployer.job.move_champion

    def meet_then_move(*args: Any, **kwargs: Any) -> Any:
        barrier.wait(BARRIER_TIMEOUT_S)
        if after is not None:
            after.wait(BARRIER_TIMEOUT_S)
        try:
            return move(*args, **kwargs)
        finally:
            done.set()

    deployer.job.move_champion = meet_then_move  # type: ignore[assignment]
    raise SystemExit(main(argv))


def race(argvs: Sequence[list[str]], root: Path, in_turn: bool) -> list[Outcome]:
    """Start one deploy per ``argvs`` entry at once (fresh interpreters: ``spawn``), moving
    champion at the same instant or, ``in_turn``, in the order given; return how each ended,
    in the same order."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(argvs))
    done = [context.Event() for _ in argvs]
    after = [None, *done[:-1]] if in_turn else [None] * len(argvs)
    folders = [root / f"deploy-{i}" for i in range(len(argvs))]
    processes = []
    for i, (argv, folder) in enumerate(zip(argvs, folders, strict=True)):
        folder.mkdir(parents=True)
        process = context.Process(
            target=deploy_at_barrier, args=(argv, str(folder), barrier, after[i], done[i])
        )
        process.start()
        processes.append(process)
    for process in processes:
        process.join(2 * BARRIER_TIMEOUT_S)
    return [
        outcome(process.exitcode, folder)
        for process, folder in zip(processes, folders, strict=True)
    ]


def outcome(exit_code: int | None, folder: Path) -> Outcome:
    from contract.xcom import read_result

    result_file = folder / "return.json"
    result = read_result("deploy", result_file) if result_file.exists() else None
    return Outcome(exit_code, result, (folder / "termination-log").read_text().strip())
