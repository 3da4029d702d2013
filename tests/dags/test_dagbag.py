"""The ``tabular_training`` DAG as the DAG processor sees it: the real ``BundleDagBag`` parses the
DAG folder and the tests check what parsing must (and must not) do.

* In a fresh interpreter (``sys.executable -c``), so that nothing the test session imported
  hides a heavy import: parsing succeeds for the cluster (S3) config and for a local-source
  config, imports none of the training stack (torch, MLflow, pandas, NumPy, scikit-learn ...),
  and looks up no Airflow Variable or Connection. Every look-up path of Airflow 3's task SDK and
  core (public API, task-SDK internals, the secrets backends) is replaced before parsing by a
  function that records the call and raises; a canary folder of DAG files that do look something
  up proves the guard catches each path, and parses cleanly without the guard.
* In this process, through ``load_dag``: task ids, TaskGroups, dependencies, trigger rules,
  schedule, params, the data sensor, the trainer's mapping and its concurrency limit.
* A bad config fails the import with an error naming the config file and the key.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tabular_pipeline.config import load_config

from .conftest import CLUSTER_CONFIG, DAG_ID, DAGS_FOLDER

LoadDag = Callable[[Path | None], Any]
WriteConfig = Callable[..., Path]

DAG_FILE = "tabular_training.py"
# The training stack lives in the images; the Airflow side must never import it to parse.
HEAVY_MODULES = ("torch", "mlflow", "pandas", "numpy", "sklearn", "scipy", "pyarrow")
RESULT_MARKER = "DAGBAG-RESULT "

# Every task's direct upstream tasks: the whole graph, edge by edge. XComArg inputs add edges
# of their own (e.g. select_best's run_id into deploy, data_ready's result into notify).
UPSTREAM = {
    "wait_for_data": set(),
    "data_preparation.validate": {"wait_for_data"},
    "data_preparation.preprocess": {"data_preparation.validate"},
    "data_preparation.data_ready": {"data_preparation.validate", "data_preparation.preprocess"},
    "hyperparameter_set": {"data_preparation.data_ready"},
    "hyperparameter_tuning.train": {"hyperparameter_set"},
    "select_best": {"hyperparameter_set", "hyperparameter_tuning.train"},
    "evaluate": {"select_best"},
    "decide": {"evaluate"},
    "deploy": {"decide", "select_best"},
    "skip_deploy": {"decide"},
    "notify": {"data_preparation.data_ready", "select_best", "evaluate", "deploy", "skip_deploy"},
}
TASK_IDS = set(UPSTREAM)
MAIN_PATH = (
    "wait_for_data",
    "data_preparation.validate",
    "data_preparation.preprocess",
    "data_preparation.data_ready",
    "hyperparameter_set",
    "hyperparameter_tuning.train",
    "select_best",
    "evaluate",
    "decide",
)

# Runs in a fresh interpreter. argv: dags folder, then "guarded" (guard, parse) or
# "open-then-guarded" (parse without the guard, then with it). Prints one JSON line per parse.
PARSE_SCRIPT = (
    textwrap.dedent(
        """
    import importlib
    import json
    import sys

    HEAVY = __HEAVY__
    MARKER = __MARKER__
    LOOKUPS = []


    class ParseTimeLookup(RuntimeError):
        pass


    def refusing(where):
        def refuse(*args, **kwargs):
            names = [a for a in (*args, *kwargs.values()) if isinstance(a, str)]
            LOOKUPS.append(f"{where}({', '.join(names)})")
            raise ParseTimeLookup(f"{where}({', '.join(names)}) called while parsing DAG files")

        return refuse


    # (module, class or None for a module function, attributes, whether they are classmethods)
    TARGETS = [
        # The public API of the task SDK (airflow.sdk.Variable / Connection, hooks).
        ("airflow.sdk.definitions.variable", "Variable", ("get",), True),
        ("airflow.sdk.definitions.connection", "Connection", ("get", "async_get"), True),
        ("airflow.sdk.bases.hook", "BaseHook", ("get_connection", "aget_connection"), True),
        # What those call: the look-ups themselves and the chain of secrets backends.
        (
            "airflow.sdk.execution_time.context",
            None,
            ("_get_variable", "_get_connection", "_async_get_connection"),
            False,
        ),
        ("airflow.sdk.execution_time.supervisor", None, ("ensure_secrets_backend_loaded",), False),
        # Deprecated core models (airflow.models.Variable.get still works in DAG files).
        ("airflow.models.variable", "Variable", ("get", "get_variable_from_secrets"), True),
        ("airflow.models.connection", "Connection", ("get_connection_from_secrets",), True),
        # Every secrets backend class, SDK and core, down to the shared base classes.
        (
            "airflow.sdk._shared.secrets_backend.base",
            "BaseSecretsBackend",
            ("get_conn_value", "get_connection", "get_variable"),
            False,
        ),
        (
            "airflow._shared.secrets_backend.base",
            "BaseSecretsBackend",
            ("get_conn_value", "get_connection", "get_variable"),
            False,
        ),
        (
            "airflow.sdk.execution_time.secrets.execution_api",
            "ExecutionAPISecretsBackend",
            ("get_conn_value", "get_connection", "get_variable", "aget_connection",
             "aget_variable"),
            False,
        ),
        (
            "airflow.secrets.environment_variables",
            "EnvironmentVariablesBackend",
            ("get_conn_value", "get_variable"),
            False,
        ),
        ("airflow.secrets.metastore", "MetastoreBackend", ("get_connection", "get_variable"),
         False),
        (
            "airflow.secrets.local_filesystem",
            "LocalFilesystemBackend",
            ("get_connection", "get_variable"),
            False,
        ),
    ]


    def install_guard():
        patched = []
        for module_name, class_name, attributes, is_classmethod in TARGETS:
            owner = importlib.import_module(module_name)
            if class_name is not None:
                owner = getattr(owner, class_name)
            for attribute in attributes:
                getattr(owner, attribute)  # fails loudly when Airflow renames one
                where = ".".join(filter(None, (module_name, class_name, attribute)))
                refuse = refusing(where)
                setattr(owner, attribute, classmethod(refuse) if is_classmethod else refuse)
                patched.append(where)
        return patched


    def parse(folder, guarded, patched):
        from airflow.dag_processing.dagbag import BundleDagBag

        heavy_before = sorted(m for m in HEAVY if m in sys.modules)
        bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
        print(MARKER + json.dumps({
            "guarded": guarded,
            "patched": patched,
            "import_errors": bag.import_errors,
            "dags": {
                dag_id: {task.task_id: type(task).__name__ for task in dag.tasks}
                for dag_id, dag in bag.dags.items()
            },
            "heavy_before_parse": heavy_before,
            "heavy_after_parse": sorted(m for m in HEAVY if m in sys.modules),
            "lookups": list(LOOKUPS),
        }), flush=True)


    folder, mode = sys.argv[1], sys.argv[2]
    if mode == "open-then-guarded":
        parse(folder, False, [])
    parse(folder, True, install_guard())
    """
    )
    .replace("__HEAVY__", repr(HEAVY_MODULES))
    .replace("__MARKER__", repr(RESULT_MARKER))
)

# DAG files that look something up at parse time, one per look-up path, with the guarded call
# that must refuse it. The subprocess's environment defines the Variable and the Connection, so
# every canary parses cleanly without the guard.
CANARY_LOOKUPS = {
    "sdk_variable": (
        "from airflow.sdk import Variable\nVariable.get('threshold', default='0')",
        "airflow.sdk.definitions.variable.Variable.get(threshold, 0)",
    ),
    "sdk_connection": (
        "from airflow.sdk import Connection\nConnection.get('canary_conn')",
        "airflow.sdk.definitions.connection.Connection.get(canary_conn)",
    ),
    "hook_connection": (
        "from airflow.sdk.bases.hook import BaseHook\nBaseHook.get_connection('canary_conn')",
        "airflow.sdk.bases.hook.BaseHook.get_connection(canary_conn)",
    ),
    "provider_hook": (
        "from airflow.providers.amazon.aws.hooks.s3 import S3Hook\n"
        "S3Hook(aws_conn_id='canary_conn').conn_config",
        "airflow.sdk.bases.hook.BaseHook.get_connection(canary_conn)",
    ),
    "core_variable": (
        "from airflow.models import Variable as CoreVariable\n"
        "CoreVariable.get('threshold', default_var='0')",
        "airflow.models.variable.Variable.get(threshold, 0)",
    ),
    "secrets_backend": (
        "from airflow.secrets.environment_variables import EnvironmentVariablesBackend\n"
        "EnvironmentVariablesBackend().get_variable('threshold')",
        "airflow.secrets.environment_variables.EnvironmentVariablesBackend.get_variable(threshold)",
    ),
}
CANARY_DAG = """\
import datetime as dt
from airflow.sdk import DAG
{lookup}
with DAG(dag_id="canary_{name}", schedule=None, start_date=dt.datetime(2026, 1, 1)):
    pass
"""


def parse_in_fresh_process(
    folder: Path, config: Path, home: Path, mode: str = "guarded"
) -> list[dict[str, Any]]:
    """Runs PARSE_SCRIPT on ``folder`` with Airflow settings of its own; returns each parse."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "TABULAR_TRAINING", "PYTHONPATH"))
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(folder),
        TABULAR_TRAINING_CONFIG=str(config),
        # Defined, so that a look-up that slipped past the guard would succeed silently.
        AIRFLOW_VAR_THRESHOLD="0.5",
        AIRFLOW_CONN_CANARY_CONN="aws://key:secret@",
        AIRFLOW_CONN_AWS_DEFAULT="aws://key:secret@",
        AIRFLOW_CONN_FS_DEFAULT="fs://",
    )
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, str(folder), mode],
        cwd=home,  # not the repository: the DAG folder must be enough
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    assert lines, output[-5000:]
    return [json.loads(line[len(RESULT_MARKER) :]) for line in lines]


def local_source_overrides(root: Path) -> dict[str, Any]:
    """The demo's shape: local launcher, a local source file, local run folders, no Secrets."""
    return {
        "launcher": "local",
        "secrets": [],
        "data": {
            "source": str(root / "data" / "{{ ds }}" / "sample.parquet"),
            "root": str(root / "runs"),
        },
    }


# --- parsing in a fresh interpreter -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config_kind", "sensor"), [("cluster", "S3KeySensor"), ("local", "FileSensor")]
)
def test_a_fresh_parse_is_clean_light_and_looks_nothing_up(
    config_kind: str, sensor: str, write_config: WriteConfig, tmp_path: Path
) -> None:
    config = (
        CLUSTER_CONFIG
        if config_kind == "cluster"
        else write_config(local_source_overrides(tmp_path))
    )
    (result,) = parse_in_fresh_process(DAGS_FOLDER, config, tmp_path / "airflow-home")

    assert result["patched"], "the look-up guard was not installed"
    assert result["import_errors"] == {}
    assert sorted(result["dags"]) == ["tabular_scoring", DAG_ID]
    tasks = result["dags"][DAG_ID]
    assert set(tasks) == TASK_IDS
    assert tasks["wait_for_data"] == sensor
    assert result["heavy_before_parse"] == []
    assert result["heavy_after_parse"] == [], "parsing imported the training stack"
    assert result["lookups"] == [], "the DAG looks up Variables or Connections at parse time"


@pytest.mark.slow
def test_the_guard_catches_every_look_up_path_and_only_it_fails_them(tmp_path: Path) -> None:
    """Canary DAG files parse cleanly without the guard (the look-ups succeed) and each fails,
    naming its look-up, with it: the guard is what makes look-ups fail, and it misses none."""
    folder = tmp_path / "canaries"
    folder.mkdir()
    for name, (lookup, _) in CANARY_LOOKUPS.items():
        (folder / f"{name}.py").write_text(CANARY_DAG.format(name=name, lookup=lookup))

    open_parse, guarded = parse_in_fresh_process(
        folder, CLUSTER_CONFIG, tmp_path / "airflow-home", mode="open-then-guarded"
    )

    assert open_parse["import_errors"] == {}
    assert sorted(open_parse["dags"]) == sorted(f"canary_{name}" for name in CANARY_LOOKUPS)
    assert open_parse["lookups"] == []

    assert guarded["dags"] == {}
    assert sorted(guarded["import_errors"]) == sorted(f"{name}.py" for name in CANARY_LOOKUPS)
    for name, (_, refused) in CANARY_LOOKUPS.items():
        error = guarded["import_errors"][f"{name}.py"]
        assert f"ParseTimeLookup: {refused} called while parsing DAG files" in error, error
        assert refused in guarded["lookups"]


# --- structure, in this process -----------------------------------------------------------------


@pytest.fixture
def dag(load_dag: LoadDag) -> Any:
    """The DAG parsed with the cluster config."""
    return load_dag(None)


def test_task_ids_and_task_groups(dag: Any) -> None:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    assert dag.dag_id == DAG_ID
    assert set(dag.task_ids) == TASK_IDS
    groups = {
        group_id: set(group.children)
        for group_id, group in dag.task_group.children.items()
        if group_id in ("data_preparation", "hyperparameter_tuning")
    }
    assert groups == {
        "data_preparation": {
            "data_preparation.validate",
            "data_preparation.preprocess",
            "data_preparation.data_ready",
        },
        "hyperparameter_tuning": {"hyperparameter_tuning.train"},
    }
    assert isinstance(dag.get_task("hyperparameter_tuning.train"), MappedOperator)
    unmapped = TASK_IDS - {"hyperparameter_tuning.train"}
    assert not any(isinstance(dag.get_task(t), MappedOperator) for t in unmapped)


def test_dependencies_edge_by_edge(dag: Any) -> None:
    assert {t: set(dag.get_task(t).upstream_task_ids) for t in TASK_IDS} == UPSTREAM
    for upstream, downstream in itertools.pairwise(MAIN_PATH):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert dag.get_task("decide").downstream_task_ids == {"deploy", "skip_deploy"}
    assert dag.get_task("notify").downstream_task_ids == set()
    assert [t.task_id for t in dag.roots] == ["wait_for_data"]
    assert [t.task_id for t in dag.leaves] == ["notify"]


def test_trigger_rules(dag: Any) -> None:
    from airflow.sdk import TriggerRule

    special = {
        "select_best": TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
        "notify": TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
    }
    rules = {t: dag.get_task(t).trigger_rule for t in TASK_IDS}
    assert rules == {t: special.get(t, TriggerRule.ALL_SUCCESS) for t in TASK_IDS}


def test_decide_is_a_branch_to_deploy_or_skip(dag: Any) -> None:
    from airflow.sdk.bases.branch import BranchMixIn

    assert isinstance(dag.get_task("decide"), BranchMixIn)
    assert type(dag.get_task("skip_deploy")).__name__ == "EmptyOperator"


def test_schedule_and_run_settings(dag: Any) -> None:
    from airflow.sdk.definitions.timetables.trigger import CronTriggerTimetable

    assert dag.schedule == "@daily"
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.timetable.expression == "0 0 * * *"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.start_date.isoformat() == "2026-01-01T00:00:00+00:00"
    assert dag.owner == "ml-platform"


def test_params_and_their_defaults(dag: Any) -> None:
    from tabular_pipeline.sweep import hyperparameter_set

    defaults = {key: dag.params[key] for key in dag.params}
    assert defaults == {
        "search": "grid",
        "search_space": [
            {"numeric_embedding": ["ple+periodic", "ple"]},
            {"numeric_embedding": ["periodic"], "periodic_sigma": [0.3, 10.0]},
        ],
        "n_trials": 8,
        "max_trials": 32,
        "seed": 0,
        "min_success_fraction": 0.5,
        "min_accuracy": 0.0,
        "min_r2": 0.0,
        "min_improvement": 0.0,
        "confidence": 0.95,
        "slice_tolerance": 0.05,
        "drift_reference": "models:/tabular-classifier@champion",
        "calibration_tolerance": 0.02,
    }
    assert dag.params.validate() == defaults  # the defaults meet their own schemas
    assert dag.params.get_param("search").schema["enum"] == ["grid", "random"]
    fraction = dag.params.get_param("min_success_fraction").schema
    assert (fraction["minimum"], fraction["maximum"]) == (0, 1)
    trials = hyperparameter_set(
        defaults["search"],
        defaults["search_space"],
        defaults["n_trials"],
        defaults["seed"],
        defaults["max_trials"],
    )
    assert len(trials) == 4  # none, ple, periodic at two scales


def test_s3_source_waits_with_a_deferrable_s3_key_sensor(dag: Any) -> None:
    from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

    config = load_config(CLUSTER_CONFIG)
    sensor = dag.get_task("wait_for_data")
    assert isinstance(sensor, S3KeySensor)
    assert config.data.source.startswith("s3://")
    assert sensor.bucket_key == config.data.source
    assert sensor.deferrable is True
    assert sensor.aws_conn_id == config.data.aws_conn_id
    assert sensor.poke_interval == config.data.poke_interval_seconds
    assert sensor.timeout == config.data.wait_timeout_seconds


def test_local_source_waits_with_a_rescheduling_file_sensor(
    load_dag: LoadDag, write_config: WriteConfig, tmp_path: Path
) -> None:
    from airflow.providers.standard.sensors.filesystem import FileSensor

    overrides = local_source_overrides(tmp_path)
    overrides["data"]["source"] = "/data/raw/{{ ds }}/f.parquet"
    path = write_config(overrides)
    sensor = load_dag(path).get_task("wait_for_data")
    assert isinstance(sensor, FileSensor)
    assert sensor.filepath == "/data/raw/{{ ds }}/f.parquet"
    assert sensor.mode == "reschedule"
    assert sensor.fs_conn_id == "fs_default"
    assert "filepath" in type(sensor).template_fields  # the run's date is filled in


@pytest.mark.parametrize("parallel", [None, 2])
def test_trainer_concurrency_is_the_configured_max_parallel_trials(
    parallel: int | None, load_dag: LoadDag, write_config: WriteConfig
) -> None:
    path = CLUSTER_CONFIG if parallel is None else write_config({"max_parallel_trials": parallel})
    train = load_dag(path).get_task("hyperparameter_tuning.train")
    assert train.max_active_tis_per_dagrun == load_config(path).max_parallel_trials
    assert train.max_active_tis_per_dagrun == (4 if parallel is None else parallel)


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside nested dicts, lists and tuples (XComArgs hold none)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.items():
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)


def test_mapped_arguments_come_from_hyperparameter_set_not_templates(dag: Any) -> None:
    """Values handed to ``expand`` are not templated, so the trainer's arguments (with the
    run's date in the run's tags) are rendered by hyperparameter_set, at run time."""
    from airflow.sdk.definitions.xcom_arg import MapXComArg, PlainXComArg

    train = dag.get_task("hyperparameter_tuning.train")
    expanded = train.expand_input.value
    assert set(expanded) == {"arguments"}
    assert "arguments" not in train.partial_kwargs
    mapped = expanded["arguments"]
    assert isinstance(mapped, MapXComArg)
    assert isinstance(mapped.arg, PlainXComArg)
    assert mapped.arg.operator.task_id == "hyperparameter_set"
    assert [c.__name__ for c in mapped.callables] == ["pod_arguments"]
    assert not any("{{" in s for s in strings_in(expanded))
    assert not any("{{" in s for s in strings_in(train.partial_kwargs))

    validate = dag.get_task("data_preparation.validate")
    assert "arguments" in type(validate).template_fields
    arguments = validate.arguments
    assert arguments[arguments.index("--date") + 1] == "{{ ds }}"
    assert "{{ ds }}" in arguments[arguments.index("--source") + 1]


@pytest.mark.parametrize(
    ("value", "admitted"),
    [
        ("models:/tabular-classifier@champion", True),
        ("models:/other_model@challenger", True),
        ("none", True),
        ("s3://ml-pipeline/runs/tabular_training/reference/2026-01-01.parquet", True),
        ("s3://ml-pipeline/runs/x", True),
        ("", False),
        ("s3://ml-pipeline/runs", False),  # the root itself is no data file
        ("s3://ml-pipeline/runs-other/x.parquet", False),
        ("s3://ml-pipeline/runs/../secrets/x.parquet", False),
        ("s3://ml-pipeline/runs/x.parquet?versionId=3", False),
        ("simplecache::s3://ml-pipeline/runs/x.parquet", False),
        ("s3://other-bucket/x.parquet", False),
        ("http://169.254.169.254/latest/meta-data/", False),
        ("http://127.0.0.1:8765/meta.csv", False),
        ("/etc/passwd", False),
        ("models:/tabular-classifier", False),
        ("models:/tabular-classifier/3", False),
    ],
)
def test_drift_reference_param_admits_models_none_and_the_data_root_only(
    dag: Any, value: str, admitted: bool
) -> None:
    """The trigger form refuses a reference the validator would refuse (it checks again)."""
    from airflow.sdk.definitions.param import ParamValidationError

    param = dag.params.get_param("drift_reference")
    if admitted:
        assert param.resolve(value) == value
    else:
        with pytest.raises(ParamValidationError):
            param.resolve(value)


@pytest.mark.parametrize(
    ("value", "admitted"),
    [
        ({"lr": [0.001]}, True),
        ([{"lr": [0.001]}, {"numeric_embedding": ["periodic"], "periodic_sigma": [3.0]}], True),
        ("lr=0.001", False),
        (3, False),
    ],
)
def test_search_space_param_admits_a_space_or_a_list_of_spaces(
    dag: Any, value: Any, admitted: bool
) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    param = dag.params.get_param("search_space")
    if admitted:
        assert param.resolve(value) == value
    else:
        with pytest.raises(ParamValidationError):
            param.resolve(value)


def test_validate_reads_references_only_under_the_data_root(dag: Any) -> None:
    arguments = dag.get_task("data_preparation.validate").arguments
    roots = [b for a, b in itertools.pairwise(arguments) if a == "--allowed-reference-root"]
    assert roots == [load_config(CLUSTER_CONFIG).data.root]
    assert arguments[arguments.index("--reference") + 1] == "{{ params.drift_reference }}"


# --- bad configs ---------------------------------------------------------------------------------


def cluster_raw() -> dict[str, Any]:
    raw = yaml.safe_load(CLUSTER_CONFIG.read_text())
    assert isinstance(raw, dict)
    return raw


def without_image(raw: dict[str, Any]) -> None:
    del raw["image"]


def unknown_gpu_model(raw: dict[str, Any]) -> None:
    raw["gpu"]["models"] = ["B200"]


def no_parallel_trials(raw: dict[str, Any]) -> None:
    # 0 would be max_active_tis_per_dagrun=0: the scheduler would never start a trial.
    raw["max_parallel_trials"] = 0


@pytest.mark.parametrize(
    ("mutation", "key", "problem"),
    [
        (unknown_gpu_model, "gpu.models", "'B200' is not a key of gpu.products"),
        (without_image, "image", "missing"),
        (no_parallel_trials, "max_parallel_trials", "must be >= 1, got 0"),
    ],
)
def test_a_bad_config_is_an_import_error_naming_the_file_and_key(
    mutation: Callable[[dict[str, Any]], None],
    key: str,
    problem: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import BundleDagBag

    raw = cluster_raw()
    mutation(raw)
    path = tmp_path / "bad-config.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("TABULAR_TRAINING_CONFIG", str(path))

    bag = BundleDagBag(
        dag_folder=str(DAGS_FOLDER), bundle_path=DAGS_FOLDER, bundle_name="dags-folder"
    )

    assert DAG_ID not in bag.dags
    # The scoring DAG reads the same config, so it fails to import too.
    assert sorted(bag.import_errors) == ["tabular_scoring.py", DAG_FILE]
    assert f"ConfigError: {path}: {key}: {problem}" in bag.import_errors[DAG_FILE]


def test_a_missing_config_file_is_an_import_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import BundleDagBag

    path = tmp_path / "nowhere.yaml"
    monkeypatch.setenv("TABULAR_TRAINING_CONFIG", str(path))
    bag = BundleDagBag(
        dag_folder=str(DAGS_FOLDER), bundle_path=DAGS_FOLDER, bundle_name="dags-folder"
    )
    assert DAG_ID not in bag.dags
    assert f"{path}: cannot read the pipeline config" in bag.import_errors[DAG_FILE]
