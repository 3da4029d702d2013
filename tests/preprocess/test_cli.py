"""``python -m preprocess`` end to end on the sample data, and the readers of its output."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common import dataset, storage
from common.step import StepError, UsageError
from contract.xcom import read_result
from demo.sample_data import TARGET
from preprocess import passes
from preprocess.cli import build_parser, config_from_args, main
from preprocess.job import PreprocessConfig
from tabular_model.transform import TableTransform
from tests.preprocess.frames import seeded_splits


def run(input_path: Path | str, output: Path, *extra: str, target: str = TARGET) -> int:
    return main(["--input", str(input_path), "--output", str(output), "--target", target, *extra])


def test_writes_every_output_file(preprocessed: Path) -> None:
    files = sorted(str(p.relative_to(preprocessed)) for p in preprocessed.rglob("*") if p.is_file())
    assert files == [
        "manifest.json",
        "raw/sample.parquet",
        "raw/test.parquet",
        "test.parquet",
        "train.parquet",
        "transform.json",
        "val.parquet",
    ]


def test_result_matches_the_schema_and_the_files(preprocessed: Path, xcom_file: Path) -> None:
    result = read_result("preprocess", xcom_file)
    out = str(preprocessed)
    assert result["output_uri"] == out
    assert result["train_uri"] == f"{out}/train.parquet"
    assert result["val_uri"] == f"{out}/val.parquet"
    assert result["test_uri"] == f"{out}/test.parquet"
    assert result["raw_test_uri"] == f"{out}/raw/test.parquet"
    assert result["transform_uri"] == f"{out}/transform.json"
    assert result["target"] == TARGET
    assert result["classes"] == ["no", "yes"]
    for key in ("train_uri", "val_uri", "test_uri", "raw_test_uri", "transform_uri"):
        assert Path(result[key]).is_file(), key


def test_row_counts_add_up(preprocessed: Path, xcom_file: Path, sample_frame: pd.DataFrame) -> None:
    counts = read_result("preprocess", xcom_file)["row_counts"]
    expected = seeded_splits(sample_frame)
    assert counts == {name: len(rows) for name, rows in expected.items()}
    assert counts == {"train": 2088, "val": 459, "test": 453}
    manifest = json.loads((preprocessed / "manifest.json").read_text())
    assert manifest["row_counts"] == counts
    assert manifest["seed"] == 42
    for split, rows in counts.items():
        assert len(pd.read_parquet(preprocessed / f"{split}.parquet")) == rows
    assert len(pd.read_parquet(preprocessed / "raw" / "test.parquet")) == counts["test"]
    assert len(pd.read_parquet(preprocessed / "raw" / "sample.parquet")) == 20


def test_feature_count_matches_transform_and_files(preprocessed: Path, xcom_file: Path) -> None:
    result = read_result("preprocess", xcom_file)
    transform = dataset.load_transform(str(preprocessed))
    assert result["feature_count"] == transform.feature_count
    train = pd.read_parquet(preprocessed / "train.parquet")
    assert train.shape[1] == transform.feature_count + 1  # + the target column
    assert train.columns[-1] == dataset.TARGET_COLUMN
    # income, tenure_months and occupation have missing values in the sample
    assert "income__missing" in transform.numeric_feature_names
    assert "tenure_months__missing" in transform.numeric_feature_names


def test_transform_is_fitted_on_train_rows_only(
    preprocessed: Path, sample_frame: pd.DataFrame
) -> None:
    transform = dataset.load_transform(str(preprocessed))
    train_rows = seeded_splits(sample_frame)["train"]
    by_name = {c.name: c for c in transform.numeric}
    income = by_name["income"]  # robust scaling by default
    assert income.scaling == "robust"
    assert income.center == pytest.approx(train_rows["income"].median())
    iqr = train_rows["income"].quantile(0.75) - train_rows["income"].quantile(0.25)
    assert income.scale == pytest.approx(iqr)
    assert income.center != pytest.approx(sample_frame["income"].median(), abs=0, rel=1e-9)
    region = next(c for c in transform.categorical if c.name == "region")
    counts = train_rows["region"].value_counts()
    assert list(region.vocabulary) == sorted(counts.index, key=lambda v: (-counts[v], v))


def test_encoded_test_split_matches_raw_test_rows(preprocessed: Path) -> None:
    transform = dataset.load_transform(str(preprocessed))
    raw = pd.read_parquet(preprocessed / "raw" / "test.parquet")
    encoded = pd.read_parquet(preprocessed / "test.parquet")
    assert encoded[dataset.TARGET_COLUMN].tolist() == (raw[TARGET] == "yes").astype(int).tolist()
    age = next(c for c in transform.numeric if c.name == "age")
    np.testing.assert_allclose(encoded["age"], (raw["age"] - age.center) / age.scale, rtol=1e-5)
    region = next(c for c in transform.categorical if c.name == "region")
    expected = [region.vocabulary.index(v) + 2 for v in raw["region"]]
    assert encoded["region"].tolist() == expected


def test_load_split_reads_every_split(preprocessed: Path, xcom_file: Path) -> None:
    counts = read_result("preprocess", xcom_file)["row_counts"]
    transform = dataset.load_transform(str(preprocessed))
    for split in dataset.SPLITS:
        encoded = dataset.load_split(str(preprocessed), transform, split)
        assert encoded.rows == counts[split]
        assert encoded.numeric.dtype == np.float32
        assert encoded.numeric.shape == (counts[split], len(transform.numeric_feature_names))
        assert encoded.categorical.shape == (counts[split], len(transform.categorical))
        assert np.isfinite(encoded.numeric).all()
        assert set(np.unique(encoded.target)) == {0, 1}
        for i, col in enumerate(transform.categorical):
            assert encoded.categorical[:, i].min() >= 0
            assert encoded.categorical[:, i].max() < col.cardinality


def test_rerun_is_byte_identical(preprocessed: Path, sample_parquet: Path, tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in preprocessed.glob("*.parquet")}
    first_transform = (preprocessed / "transform.json").read_bytes()
    assert run(sample_parquet, preprocessed) == 0
    assert {p.name: p.read_bytes() for p in preprocessed.glob("*.parquet")} == first
    assert (preprocessed / "transform.json").read_bytes() == first_transform
    elsewhere = tmp_path / "again"
    assert run(sample_parquet, elsewhere) == 0
    assert (elsewhere / "train.parquet").read_bytes() == first["train.parquet"]


def test_another_seed_gives_another_split(
    preprocessed: Path, sample_parquet: Path, tmp_path: Path
) -> None:
    other = tmp_path / "seed7"
    assert run(sample_parquet, other, "--seed", "7") == 0
    assert (other / "train.parquet").read_bytes() != (preprocessed / "train.parquet").read_bytes()
    assert json.loads((other / "manifest.json").read_text())["seed"] == 7


def test_csv_input(sample_frame: pd.DataFrame, tmp_path: Path, xcom_file: Path) -> None:
    path = tmp_path / "data.csv"
    sample_frame.to_csv(path, index=False)
    assert run(path, tmp_path / "out") == 0
    result = read_result("preprocess", xcom_file)
    assert sum(result["row_counts"].values()) == len(sample_frame)
    assert result["classes"] == ["no", "yes"]
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_folder_of_parquet_files(
    sample_frame: pd.DataFrame, preprocessed: Path, tmp_path: Path, xcom_file: Path
) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate(range(0, len(sample_frame), 1000)):
        part = sample_frame.iloc[start : start + 1000]
        part.to_parquet(folder / f"part-{i}.parquet", index=False)
    assert run(folder, tmp_path / "out") == 0
    result = read_result("preprocess", xcom_file)
    assert result["row_counts"] == {"train": 2088, "val": 459, "test": 453}
    transform = dataset.load_transform(str(tmp_path / "out"))
    assert transform == dataset.load_transform(str(preprocessed))
    for split in dataset.SPLITS:  # the same rows in the same order as from one file
        expected = pd.read_parquet(preprocessed / f"{split}.parquet")
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "out" / f"{split}.parquet"), expected
        )


def test_custom_fractions_and_sample_rows(
    sample_frame: pd.DataFrame, sample_parquet: Path, tmp_path: Path, xcom_file: Path
) -> None:
    out = tmp_path / "out"
    args = ("--val-fraction", "0.1", "--test-fraction", "0.2", "--sample-rows", "5")
    assert run(sample_parquet, out, *args) == 0
    parts = seeded_splits(sample_frame, 0.1, 0.2)
    assert read_result("preprocess", xcom_file)["row_counts"] == {
        name: len(rows) for name, rows in parts.items()
    }
    assert len(pd.read_parquet(out / "raw" / "sample.parquet")) == 5


def test_trailing_slash_on_output_is_ignored(
    sample_parquet: Path, tmp_path: Path, xcom_file: Path
) -> None:
    out = tmp_path / "out"
    assert main(["--input", str(sample_parquet), "--output", f"{out}/", "--target", TARGET]) == 0
    assert read_result("preprocess", xcom_file)["train_uri"] == f"{out}/train.parquet"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--val-fraction", "0.5"), "--val-fraction must be in (0, 0.5), got 0.5"),
        (("--test-fraction", "0"), "--test-fraction must be in (0, 0.5), got 0.0"),
        (("--val-fraction", "2"), "--val-fraction must be in (0, 0.5), got 2.0"),
        (("--val-fraction", "nan"), "--val-fraction must be in (0, 0.5), got nan"),
        (("--test-fraction", "inf"), "--test-fraction must be in (0, 0.5), got inf"),
        (("--test-fraction=-inf",), "--test-fraction must be in (0, 0.5), got -inf"),
    ],
)
def test_bad_fractions_are_usage_errors(
    flags: tuple[str, ...],
    expected: str,
    sample_parquet: Path,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(sample_parquet, tmp_path / "out", *flags) == 2
    assert capsys.readouterr().err.splitlines() == [f"preprocess failed: {expected}"]
    assert not xcom_file.exists()
    assert not (tmp_path / "out").exists()


def test_too_few_rows_are_refused(
    sample_frame: pd.DataFrame, tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tiny.parquet"
    sample_frame.head(3).assign(default=["no", "yes", "no"]).to_parquet(path)
    assert run(path, tmp_path / "out") == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{path}: 3 rows are too few" in line
    assert not xcom_file.exists()


def test_null_labels_are_refused(
    sample_frame: pd.DataFrame, tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = sample_frame.head(200).copy()
    frame.loc[[3, 9], TARGET] = None
    path = tmp_path / "nulls.parquet"
    frame.to_parquet(path, index=False)
    assert run(path, tmp_path / "out") == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert f"{path}: target column 'default' has 2 nulls" in line
    assert not xcom_file.exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_infinite_value_is_refused_naming_the_column(
    sample_frame: pd.DataFrame, tmp_path: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = sample_frame.head(200).copy()
    frame.loc[range(0, 200, 10), "income"] = np.inf  # some of these rows land in train
    path = tmp_path / "inf.parquet"
    frame.to_parquet(path, index=False)
    assert run(path, tmp_path / "out") == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert str(path) in line
    assert "income" in line
    assert not xcom_file.exists()


def test_failed_rerun_leaves_no_manifest(
    preprocessed: Path, sample_parquet: Path, xcom_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(preprocessed / "raw")
    (preprocessed / "raw").write_text("a file where the raw/ folder should be")
    capsys.readouterr()
    assert run(sample_parquet, preprocessed) == 1
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert (preprocessed / "train.parquet").exists()  # the rerun got past the first writes
    assert not (preprocessed / "manifest.json").exists()
    assert not xcom_file.exists()
    with pytest.raises(StepError, match="not a complete preprocess output"):
        dataset.load_transform(str(preprocessed))


# --- readers of a preprocess output ---------------------------------------------------------


def test_load_transform_refuses_a_folder_without_manifest(preprocessed: Path) -> None:
    (preprocessed / "manifest.json").unlink()
    with pytest.raises(StepError, match=r"not a complete preprocess output.*manifest\.json"):
        dataset.load_transform(str(preprocessed))


def test_read_manifest_refuses_a_corrupt_manifest(preprocessed: Path) -> None:
    (preprocessed / "manifest.json").write_text("{half")
    with pytest.raises(StepError, match=r"manifest\.json missing or unreadable"):
        dataset.read_manifest(str(preprocessed))


def test_load_split_refuses_a_folder_without_manifest(preprocessed: Path) -> None:
    transform = dataset.load_transform(str(preprocessed))
    (preprocessed / "manifest.json").unlink()
    with pytest.raises(StepError, match=r"manifest\.json"):
        dataset.load_split(str(preprocessed), transform, "train")


def test_load_transform_refuses_an_invalid_transform(preprocessed: Path) -> None:
    (preprocessed / "transform.json").write_text(json.dumps({"version": 1, "target": "x"}))
    with pytest.raises(StepError, match=r"transform\.json is not a valid transform"):
        dataset.load_transform(str(preprocessed))


def test_load_split_refuses_missing_columns(preprocessed: Path) -> None:
    transform = dataset.load_transform(str(preprocessed))
    path = preprocessed / "val.parquet"
    pd.read_parquet(path).drop(columns=["age", "region"]).to_parquet(path, index=False)
    with pytest.raises(StepError, match=r"val.parquet lacks column\(s\) \['age', 'region'\]"):
        dataset.load_split(str(preprocessed), transform, "val")


def test_load_split_refuses_nan_features(preprocessed: Path) -> None:
    transform: TableTransform = dataset.load_transform(str(preprocessed))
    path = preprocessed / "test.parquet"
    frame = pd.read_parquet(path)
    frame.loc[0, "income"] = np.nan
    frame.to_parquet(path, index=False)
    with pytest.raises(
        StepError, match=r"NaN or infinite values in feature column\(s\) \['income'\]"
    ):
        dataset.load_split(str(preprocessed), transform, "test")


# --- splits by key, scalings, batches, the manifest ------------------------------------------


def with_ids(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(customer_id=[f"c{i:05d}" for i in range(len(frame))])


def test_split_key_puts_a_key_in_the_same_split_every_day(
    sample_frame: pd.DataFrame, tmp_path: Path, xcom_file: Path
) -> None:
    day1 = with_ids(sample_frame)
    day2 = pd.concat([day1.iloc[::-1], with_ids(sample_frame.head(500)).assign(
        customer_id=[f"new{i}" for i in range(500)]
    )])  # fmt: skip
    splits = {}
    for day, frame in (("1", day1), ("2", day2)):
        frame.to_parquet(tmp_path / f"day{day}.parquet", index=False)
        out = tmp_path / f"out{day}"
        assert run(tmp_path / f"day{day}.parquet", out, "--split-key", "customer_id") == 0
        raw = pd.read_parquet(out / "raw" / "test.parquet")
        splits[day] = set(raw["customer_id"])
        transform = dataset.load_transform(str(out))
        assert "customer_id" not in transform.input_columns  # a key is not a feature
        assert json.loads((out / "manifest.json").read_text())["split_key"] == "customer_id"
    assert splits["2"] - {k for k in splits["2"] if k.startswith("new")} == splits["1"]
    assert 300 < len(splits["1"]) < 600  # about 15 % of 3000


def test_split_key_problems_name_the_column(
    sample_frame: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = with_ids(sample_frame.head(300))
    frame.loc[7, "customer_id"] = None
    path = tmp_path / "ids.parquet"
    frame.to_parquet(path, index=False)
    assert run(path, tmp_path / "out", "--split-key", "customer_id") == 1
    assert "split key column 'customer_id' has 1 null value(s)" in capsys.readouterr().err
    assert run(path, tmp_path / "out", "--split-key", "account") == 1
    assert f"{path}: --split-key column 'account' not found" in capsys.readouterr().err


def test_split_column_decides_each_rows_split(
    sample_frame: pd.DataFrame, tmp_path: Path, xcom_file: Path
) -> None:
    names = np.array(["train", "val", "test"])[np.arange(len(sample_frame)) % 10 // 4]
    frame = sample_frame.assign(fold=names)  # rows 8, 9 of every 10 are test
    frame.to_parquet(tmp_path / "folds.parquet", index=False)
    out = tmp_path / "out"
    assert run(tmp_path / "folds.parquet", out, "--split-column", "fold") == 0
    counts = read_result("preprocess", xcom_file)["row_counts"]
    assert counts == {"train": 1200, "val": 1200, "test": 600}
    raw = pd.read_parquet(out / "raw" / "test.parquet")
    expected = pd.read_parquet(tmp_path / "folds.parquet")[names == "test"].drop(columns="fold")
    pd.testing.assert_frame_equal(raw, expected.reset_index(drop=True))  # the fold is dropped
    assert "fold" not in pd.read_parquet(out / "raw" / "sample.parquet").columns
    assert "fold" not in dataset.load_transform(str(out)).input_columns
    assert dataset.read_manifest(str(out))["split_column"] == "fold"


def test_split_column_problems_name_the_column(
    sample_frame: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = sample_frame.head(300).assign(fold="train")
    frame.loc[3, "fold"], frame.loc[5, "fold"] = "holdout", None
    path = tmp_path / "folds.parquet"
    frame.to_parquet(path, index=False)
    assert run(path, tmp_path / "out", "--split-column", "fold") == 1
    err = capsys.readouterr().err
    assert "split column 'fold' holds 2 value(s) other than ['train', 'val', 'test']" in err
    assert "holdout" in err
    assert run(path, tmp_path / "out", "--split-column", "fold", "--split-key", "age") == 2
    assert "--split-key and --split-column are alternatives" in capsys.readouterr().err
    frame["fold"] = "train"
    frame.to_parquet(path, index=False)
    assert run(path, tmp_path / "out", "--split-column", "fold") == 1
    assert "too few for train/val/test splits" in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("scaling", ["quantile", "standard"])
def test_numeric_scaling_flag(
    scaling: str, sample_parquet: Path, sample_frame: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run(sample_parquet, out, "--numeric-scaling", scaling) == 0
    transform = dataset.load_transform(str(out))
    assert {c.scaling for c in transform.numeric} == {scaling}
    assert json.loads((out / "manifest.json").read_text())["numeric_scaling"] == scaling
    train = dataset.load_split(str(out), transform, "train").numeric
    if scaling == "quantile":
        assert train[:, 0].min() >= -1.0 and train[:, 0].max() <= 1.0
    else:
        assert abs(float(train[:, 0].mean())) < 1e-3


def test_min_frequency_sends_rare_categories_to_the_other_code(
    sample_parquet: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run(sample_parquet, out, "--min-frequency", "130") == 0
    occupation = next(
        c for c in dataset.load_transform(str(out)).categorical if c.name == "occupation"
    )
    assert len(occupation.vocabulary) == 9  # 9 of the 15 occupations occur 130 times in train
    codes = pd.read_parquet(out / "train.parquet")["occupation"]
    assert (codes == 1).any()


def test_batch_size_does_not_change_the_output(
    preprocessed: Path, sample_parquet: Path, tmp_path: Path
) -> None:
    small = tmp_path / "small-batches"  # and streamed twice instead of read once
    assert run(sample_parquet, small, "--batch-rows", "256", "--in-memory-limit-mb", "0") == 0
    assert dataset.load_transform(str(small)) == dataset.load_transform(str(preprocessed))
    for name in (
        "train.parquet",
        "val.parquet",
        "test.parquet",
        "raw/test.parquet",
        "raw/sample.parquet",
    ):
        pd.testing.assert_frame_equal(
            pd.read_parquet(small / name), pd.read_parquet(preprocessed / name)
        )


def test_manifest_records_the_input_and_the_settings(
    preprocessed: Path, sample_parquet: Path, xcom_file: Path
) -> None:
    manifest = dataset.read_manifest(str(preprocessed))
    result = read_result("preprocess", xcom_file)
    assert (
        manifest["fingerprint"] == result["fingerprint"] == storage.fingerprint(str(sample_parquet))
    )
    assert manifest == {
        "source": str(sample_parquet),
        "fingerprint": result["fingerprint"],
        "target": TARGET,
        "seed": 42,
        "split_key": None,
        "split_column": None,
        "val_fraction": 0.15,
        "test_fraction": 0.15,
        "numeric_scaling": "robust",
        "min_frequency": 5,
        "row_counts": result["row_counts"],
        "feature_count": result["feature_count"],
        "task": "classification",
        "transform_version": 2,
    }


def test_crash_in_mid_write_leaves_no_manifest_and_no_partial_files(
    preprocessed: Path, sample_parquet: Path, monkeypatch: pytest.MonkeyPatch, xcom_file: Path
) -> None:
    before = {p: p.read_bytes() for p in preprocessed.rglob("*.parquet")}
    calls = {"n": 0}
    real = passes.encode_batch

    def crash(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real(*args)

    with monkeypatch.context() as patch:
        patch.setattr(passes, "encode_batch", crash)
        argv = ("--batch-rows", "500", "--seed", "9", "--in-memory-limit-mb", "0")
        assert run(sample_parquet, preprocessed, *argv) == 1
    assert not (preprocessed / "manifest.json").exists()
    assert not xcom_file.exists()
    assert sorted(p.name for p in preprocessed.rglob("*") if ".partial-" in p.name) == []
    assert {p: p.read_bytes() for p in preprocessed.rglob("*.parquet")} == before  # untouched
    assert run(sample_parquet, preprocessed, "--seed", "9") == 0  # a rerun completes it
    assert dataset.read_manifest(str(preprocessed))["seed"] == 9


def test_a_version_1_output_still_loads(preprocessed: Path) -> None:
    transform = dataset.load_transform(str(preprocessed))
    version_1 = {
        "version": 1,
        "target": transform.target,
        "classes": list(transform.classes),
        "numeric": [
            {"name": c.name, "mean": 1.0, "std": 2.0, "missing_indicator": c.missing_indicator}
            for c in transform.numeric
        ],
        "categorical": [
            {"name": c.name, "vocabulary": list(c.vocabulary)} for c in transform.categorical
        ],
    }
    (preprocessed / "transform.json").write_text(json.dumps(version_1))
    old = dataset.load_transform(str(preprocessed))
    assert [c.cardinality for c in old.categorical] == [
        len(c.vocabulary) + 1 for c in transform.categorical
    ]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--min-frequency", "0"), "--min-frequency must be at least 1, got 0"),
        (("--batch-rows", "0"), "--batch-rows must be at least 1, got 0"),
        (("--batch-rows", "16777217"), "--batch-rows must be at most 16777216, got 16777217"),
        (("--sample-rows", "-1"), "--sample-rows must be at least 0, got -1"),
        (("--sample-rows", "10001"), "--sample-rows must be at most 10000, got 10001"),
        (("--in-memory-limit-mb", "-1"), "--in-memory-limit-mb must be at least 0, got -1"),
    ],
)
def test_bad_counts_are_usage_errors(
    flags: tuple[str, ...],
    expected: str,
    sample_parquet: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(sample_parquet, tmp_path / "out", *flags) == 2
    assert capsys.readouterr().err.splitlines() == [f"preprocess failed: {expected}"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flag", "limit"), [("--batch-rows", 16_777_216), ("--sample-rows", 10_000)]
)
def test_size_bounds_are_documented(flag: str, limit: int) -> None:
    (action,) = [a for a in build_parser()._actions if flag in a.option_strings]
    assert f"at most {limit}" in (action.help or "")
    assert resolve("in.parquet", "out", flag, str(limit)) is not None


def resolve(input_uri: str, output: str, *flags: str) -> PreprocessConfig:
    args = ["--input", input_uri, "--output", output, "--target", TARGET, *flags]
    return config_from_args(build_parser().parse_args(args))


@pytest.mark.parametrize(
    ("input_uri", "output"),
    [
        ("s3://bucket/raw", "s3://bucket/raw"),
        ("s3://bucket/raw", "s3://bucket/raw/"),
        ("s3://bucket/raw/", "s3://bucket/raw/out"),
        ("s3://bucket/raw", "s3a://bucket/raw/2024/out"),
        ("s3://bucket/raw/data.csv", "s3://bucket/raw/data.csv/"),
        ("/data/raw", "file:///data/raw/out"),
        ("file:///data/raw/", "/data/raw"),
        ("/data/raw", "/data/other/../raw/out"),
    ],
)
def test_an_output_that_is_the_input_or_inside_it_is_refused(input_uri: str, output: str) -> None:
    with pytest.raises(
        UsageError, match=f"^--output {re.escape(output)} is the input or inside it"
    ):
        resolve(input_uri, output)


@pytest.mark.parametrize(
    ("input_uri", "output"),
    [
        ("s3://bucket/out/raw/test.parquet", "s3://bucket/out"),
        ("/data/out/raw", "/data/out/"),
        ("s3://bucket/out/raw/", "s3://bucket/out"),
        ("/data/out/train.parquet", "file:///data/out"),
        ("/data/out/manifest.json", "/data/out"),
    ],
)
def test_an_input_among_the_files_the_output_gets_is_refused(input_uri: str, output: str) -> None:
    with pytest.raises(UsageError, match=f"^--output {re.escape(output)} would overwrite --input"):
        resolve(input_uri, output)


@pytest.mark.parametrize(
    ("input_uri", "output", "expected"),
    [
        ("s3://bucket/raw", "s3://bucket/raw-out/", "s3://bucket/raw-out"),
        ("s3://bucket/raw/data.parquet", "s3://bucket/processed", "s3://bucket/processed"),
        ("/data/raw/data.parquet", "/data", "/data"),  # the output's files sit beside the input
        ("/data/raw.parquet", "/data/raw", "/data/raw"),
    ],
)
def test_outputs_beside_the_input_are_accepted(input_uri: str, output: str, expected: str) -> None:
    assert resolve(input_uri, output).output == expected


@pytest.mark.parametrize("output", ["", "  ", "/", "//", "s3://", "file://"])
def test_an_output_naming_no_folder_is_refused(output: str) -> None:
    with pytest.raises(UsageError, match=f"^--output {re.escape(repr(output))} names no folder"):
        resolve("/data/raw.parquet", output)


def test_writing_into_the_input_folder_exits_2_and_leaves_it_as_it_was(
    sample_parquet: Path,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = sample_parquet.parent
    (tmp_path / "link").symlink_to(folder)
    before = sorted(tmp_path.rglob("*"))
    for output in (str(folder), f"file://{folder}/processed/", f"{tmp_path}/link/processed"):
        assert main(["--input", str(folder), "--output", output, "--target", TARGET]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"preprocess failed: --output {output}")
    assert sorted(tmp_path.rglob("*")) == before
    assert not xcom_file.exists()
