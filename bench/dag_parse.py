"""Parse cost of the ``tabular_training`` DAG file beyond Airflow's own imports, in fresh processes.

The DAG processor parses every DAG file again and again (every ``min_file_process_interval``, in
a process forked from its manager for each parse), so what the file costs at its top level is paid
all day. That cost must stay the DAG's own (reading the config, building the operators), never
the training stack or anything else. Each sample is a fresh interpreter that times, in order:

1. **imports**, the baseline. ``baseline`` mode: everything the DAG file needs from Airflow and
   its providers: ``airflow.sdk``, the cncf-kubernetes ``KubernetesPodOperator`` module,
   ``kubernetes.client.models``, the standard provider's ``EmptyOperator`` and TaskFlow
   decorators (``@task``, ``@task.branch``) and both data sensors (``FileSensor`` and the
   Amazon provider's ``S3KeySensor``; the DAG file imports both). ``processor`` mode: only what
   the DAG processor imports in its manager before it forks a parse, the ``airflow.*`` modules
   imported at the top level of the DAG file (``airflow.utils.file.iter_airflow_imports``,
   ``[dag_processor] parsing_pre_import_modules``); everything else is paid by every parse.
2. **airflow warm-up**: Airflow's own first-use costs, the same for any DAG using these features:
   importing the DAG bag and the serializer, then parsing and serializing a minimal DAG with a
   cron schedule, a param, a TaskFlow task and branch, and an operator.
3. **DAG parse**: ``BundleDagBag(dag_folder=<the DAG file>, bundle_path=dags/)``, the call the
   DAG processor makes. In ``baseline`` mode this is the DAG's own cost (goal: under 100 ms); in
   ``processor`` mode it is what a real parse of the file costs.
4. **serialize**: ``DagSerialization.to_dict`` of the parsed DAG, the processor's next step.

``total`` = imports + airflow warm-up + DAG parse: one fresh process parsing this file, the
interpreter's start-up excluded. Two configs: ``local`` (a local source file, so the file sensor)
and ``s3`` (the cluster config ``dags/tabular_training.yaml``, so the S3 sensor). One uncounted
sample per case first writes ``airflow.cfg`` and the bytecode caches; then the samples of all
cases are interleaved, so background load spreads over all of them. Median and minimum of
``--repeat`` samples per case are reported (the maximum too, in the JSON).

``python -m bench.dag_parse [--repeat N] [--mode baseline|processor|both] [--json]`` prints a table
and, with ``--json``, the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module, metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "dags"
DAG_FILE = DAGS_FOLDER / "tabular_training.py"
CLUSTER_CONFIG = DAGS_FOLDER / "tabular_training.yaml"
DAG_ID = "tabular_training"
GOAL_MS = 100.0
RESULT_MARKER = "DAG-PARSE-BENCH "
PHASES = ("imports", "airflow_warm_up", "dag_parse", "serialize")

BASELINE_MODULES = (
    "airflow.sdk",
    "airflow.providers.cncf.kubernetes.operators.pod",
    "kubernetes.client.models",
    "airflow.providers.standard.operators.empty",
    "airflow.providers.standard.decorators.python",  # @task
    "airflow.providers.standard.decorators.branch_python",  # @task.branch
    "airflow.providers.standard.sensors.filesystem",
    "airflow.providers.amazon.aws.sensors.s3",
)
# Airflow's first-use costs, paid once per process by any DAG with these features (a cron
# schedule, params, a TaskFlow task and branch, an operator), so they stay out of the DAG's cost.
MINIMAL_DAG = """\
import datetime as dt

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, task


@task
def hello() -> int:
    return 1


@task.branch
def pick() -> str:
    return "end"


with DAG(
    dag_id="minimal",
    schedule="@daily",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    params={"x": Param(1, type="integer", minimum=0)},
):
    hello() >> pick() >> EmptyOperator(task_id="end")
"""


# --- the child: one sample in a fresh interpreter ----------------------------------------------


def _parse(dag_file: Path, bundle: Path, dag_id: str) -> Any:
    """``dag_file`` parsed as the DAG processor does it; returns the DAG."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(dag_file), bundle_path=bundle, bundle_name="dags-folder")
    if bag.import_errors or dag_id not in bag.dags:
        raise RuntimeError(f"{dag_file} did not parse: {bag.import_errors}")
    return bag.dags[dag_id]


def _serialize(dag: Any) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    DagSerialization.to_dict(dag)


def _new_modules(before: set[str]) -> dict[str, int]:
    """Modules imported since ``before``, counted by top-level package (the DAG file's own
    module, which Airflow names ``unusual_prefix_<hash>_<file>``, as ``<DAG file>``)."""
    names = (name.split(".")[0] for name in set(sys.modules) - before)
    new = Counter("<DAG file>" if name.startswith("unusual_prefix_") else name for name in names)
    return dict(new.most_common())


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One sample: the phases of the module docstring, timed in this (fresh) process."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    baseline = spec["baseline"]
    if baseline is None:  # what the DAG processor's manager pre-imports before it forks a parse
        from airflow.utils.file import iter_airflow_imports

        baseline = list(iter_airflow_imports(str(DAG_FILE)))
    for module in baseline:
        import_module(module)
    seconds["imports"] = time.perf_counter() - started

    started = time.perf_counter()
    minimal = Path(spec["minimal_dag"])
    _serialize(_parse(minimal, minimal.parent, "minimal"))
    seconds["airflow_warm_up"] = time.perf_counter() - started

    before = set(sys.modules)
    started = time.perf_counter()
    dag = _parse(DAG_FILE, DAGS_FOLDER, DAG_ID)
    seconds["dag_parse"] = time.perf_counter() - started
    imported_by_parse = _new_modules(before)

    before = set(sys.modules)
    started = time.perf_counter()
    _serialize(dag)
    seconds["serialize"] = time.perf_counter() - started
    return {
        "seconds": seconds,
        "baseline": baseline,
        "tasks": len(dag.tasks),
        "sensor": type(dag.get_task("wait_for_data")).__name__,
        "modules_imported_by_dag_parse": imported_by_parse,
        "modules_imported_by_serialize": _new_modules(before),
    }


# --- the parent ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    config: str  # local or s3
    mode: str  # baseline or processor
    path: Path

    @property
    def name(self) -> str:
        return f"{self.config}/{self.mode}"

    def baseline(self) -> list[str] | None:
        """The modules to import first; None: the DAG processor's pre-imports (in the child)."""
        if self.mode == "baseline":
            return list(BASELINE_MODULES)
        return None


def write_local_config(folder: Path) -> Path:
    """The cluster config with a local source (the file sensor), like ``python -m demo``."""
    import yaml  # here, so that the child's timed imports start without it

    raw = yaml.safe_load(CLUSTER_CONFIG.read_text())
    raw.update(launcher="local", secrets=[])
    raw["data"].update(
        source=str(folder / "data" / "{{ ds }}" / "features.parquet"), root=str(folder / "runs")
    )
    path = folder / "local.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def sample(case: Case, work: Path) -> dict[str, Any]:
    """Runs the child for ``case`` in a fresh interpreter and returns what it measured."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "TABULAR_TRAINING", "PYTHONPATH"))
    }
    env.update(
        AIRFLOW_HOME=str(work / "airflow-home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
        TABULAR_TRAINING_CONFIG=str(case.path),
    )
    spec = {"baseline": case.baseline(), "minimal_dag": str(work / "minimal" / "minimal_dag.py")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.dag_parse", "--child", json.dumps(spec)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{case.name} sample failed:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return json.loads(lines[-1][len(RESULT_MARKER) :])  # type: ignore[no-any-return]


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs"


def summarize(case: Case, samples: list[dict[str, Any]]) -> dict[str, Any]:
    ms = {phase: [s["seconds"][phase] * 1000 for s in samples] for phase in PHASES}
    ms["total"] = [
        sum(s["seconds"][p] for p in ("imports", "airflow_warm_up", "dag_parse")) * 1000
        for s in samples
    ]
    return {
        "config": case.config,
        "mode": case.mode,
        "sensor": samples[0]["sensor"],
        "baseline_modules": samples[0]["baseline"],
        "tasks": samples[0]["tasks"],
        "ms": {
            name: {
                "median": round(statistics.median(values), 1),
                "min": round(min(values), 1),
                "max": round(max(values), 1),
            }
            for name, values in ms.items()
        },
        "modules_imported_by_dag_parse": samples[0]["modules_imported_by_dag_parse"],
        "modules_imported_by_serialize": samples[0]["modules_imported_by_serialize"],
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"{DAG_ID} parse cost, {report['repeat']} fresh process(es) per case, on "
        f"{report['machine']} (Python {report['python']}, Airflow {report['airflow']})"
    )
    columns = ("imports", "airflow_warm_up", "dag_parse", "serialize", "total")
    labels = ("imports", "airflow warm-up", "DAG parse", "serialize", "total")
    print(f"  {'ms: median / min':<16}" + "".join(f"{label:>17}" for label in labels))
    for r in report["results"]:
        ms = r["ms"]
        cells = "".join(f"{ms[c]['median']:>11.0f} /{ms[c]['min']:>5.0f}" for c in columns)
        print(f"  {r['config'] + ' ' + r['mode']:<16}{cells}")
    print("  modules the DAG parse imported (by top-level package):")
    for r in report["results"]:
        new = r["modules_imported_by_dag_parse"]
        shown = ", ".join(f"{name} {count}" for name, count in list(new.items())[:5])
        more = f", ... ({sum(new.values())} in all)" if len(new) > 5 else ""
        print(f"    {r['config'] + ' ' + r['mode']:<16}{shown}{more}")
    for config, median in report["own_cost_ms"].items():
        verdict = "met" if median < report["goal_ms"] else "NOT met"
        print(
            f"  DAG's own cost, {config} config (DAG parse after the baseline imports, median): "
            f"{median:.0f} ms; goal < {report['goal_ms']:.0f} ms: {verdict}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dag_parse", description=__doc__)
    p.add_argument("--repeat", type=int, default=5, help="fresh processes per case")
    p.add_argument("--mode", choices=("baseline", "processor", "both"), default="both")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(RESULT_MARKER + json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    if args.repeat < 1:
        p.error("--repeat must be at least 1")

    modes = ("baseline", "processor") if args.mode == "both" else (args.mode,)
    with tempfile.TemporaryDirectory(prefix="dag-parse-bench-") as tmp:
        work = Path(tmp)
        (work / "minimal").mkdir()
        (work / "minimal" / "minimal_dag.py").write_text(MINIMAL_DAG)
        configs = {"local": write_local_config(work), "s3": CLUSTER_CONFIG}
        cases = [Case(c, m, path) for m in modes for c, path in configs.items()]
        for case in cases:  # warm-up, not counted: writes airflow.cfg and the bytecode caches
            sample(case, work)
        samples: dict[str, list[dict[str, Any]]] = {case.name: [] for case in cases}
        for _ in range(args.repeat):
            for case in cases:  # interleaved, so background load spreads over every case
                samples[case.name].append(sample(case, work))

    results = [summarize(case, samples[case.name]) for case in cases]
    own = {r["config"]: r["ms"]["dag_parse"]["median"] for r in results if r["mode"] == "baseline"}
    report = {
        "machine": machine(),
        "python": platform.python_version(),
        "airflow": metadata.version("apache-airflow"),
        "repeat": args.repeat,
        "goal_ms": GOAL_MS,
        "own_cost_ms": own,
        "own_cost_under_goal": all(ms < GOAL_MS for ms in own.values()) if own else None,
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
