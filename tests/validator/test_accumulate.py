"""Profiles built batch by batch: the same however the rows are batched (but for the last digits
of a sampled column's mean and std), exact while a column's values fit in the sample, close to
exact (and flagged) past it, one out-of-range value never missed, and category counts capped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from common import tables
from validator import accumulate, job
from validator.checks import Thresholds, check_against_schema
from validator.cli import main
from validator.drift import compare
from validator.profile import TableProfile
from validator.scan import profile_table
from validator.schema import infer_schema

ROWS = 20_000


def profile_in_batches(frame: pd.DataFrame, rows: int, target: str = "y") -> TableProfile:
    """``frame`` profiled as batches of ``rows`` rows (text dictionary-encoded, as read)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in table.to_batches(max_chunksize=rows):
            yield tables.dictionary_encode(batch)

    return profile_table(table.schema, batches, target)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    x = rng.normal(10, 3, ROWS)
    x[rng.random(ROWS) < 0.05] = np.nan
    return pd.DataFrame({
        "x": x,
        "n": rng.integers(0, 1000, ROWS),
        "c": rng.choice(np.array(["a", "b", "c", None], dtype=object), ROWS),
        "y": rng.choice(["no", "yes"], ROWS),
    })  # fmt: skip


@pytest.fixture
def small_sample(monkeypatch: pytest.MonkeyPatch) -> int:
    """Samples of 1 000 values per numeric column, so that 20 000 rows are sampled."""
    monkeypatch.setattr(accumulate, "SAMPLE_ROWS", (1_000, 1_000))
    return 1_000


def summaries(table: TableProfile) -> dict[str, dict[str, object]]:
    """Each column's statistics; the mean and std of a sampled column rounded to 12 digits
    (merged batch by batch: another cut of the rows may change their last digits)."""
    found = {}
    for name, profile in table.columns.items():
        stats = profile.stats()
        if profile.sampled:
            stats.update({k: float(f"{stats[k]:.12g}") for k in ("mean", "std")})
        found[name] = stats
    return found


@pytest.mark.parametrize("sampled", [False, True], ids=["exact", "sampled"])
def test_the_profile_does_not_depend_on_the_batches(
    frame: pd.DataFrame, sampled: bool, request: pytest.FixtureRequest
) -> None:
    if sampled:
        request.getfixturevalue("small_sample")
    whole = profile_in_batches(frame, ROWS)
    for rows in (1, 997, 4096):
        if rows == 1 and not sampled:
            continue  # 20 000 one-row batches: slow, and 997 already cuts everywhere
        cut = profile_in_batches(frame, rows)
        assert summaries(cut) == summaries(whole), rows
        assert cut.labels == whole.labels
        for name in ("x", "n"):
            values = cut.columns[name].values
            assert values is not None
            np.testing.assert_array_equal(values, whole.columns[name].values)


def test_within_the_sample_every_statistic_is_what_numpy_gives(frame: pd.DataFrame) -> None:
    profile = profile_in_batches(frame, 997).columns["x"]
    finite = np.sort(frame["x"].dropna().to_numpy())
    assert not profile.sampled
    np.testing.assert_array_equal(profile.values, finite)
    stats = profile.stats()
    assert "sample_size" not in stats
    assert (stats["min"], stats["max"]) == (finite[0], finite[-1])
    assert (stats["mean"], stats["std"]) == (finite.mean(), finite.std())
    assert stats["p25"] == np.quantile(finite, 0.25)


def test_past_the_sample_counts_are_exact_and_quantiles_close(
    frame: pd.DataFrame, small_sample: int
) -> None:
    profile = profile_in_batches(frame, 4096).columns["x"]
    finite = frame["x"].dropna().to_numpy()
    assert profile.sampled and profile.values is not None and len(profile.values) == small_sample
    stats = profile.stats()
    assert stats["sample_size"] == small_sample
    assert stats["null_count"] == int(frame["x"].isna().sum())
    assert (stats["min"], stats["max"]) == (finite.min(), finite.max())
    assert stats["mean"] == pytest.approx(finite.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(finite.std(), rel=1e-12)
    for name, q in (("p25", 0.25), ("p50", 0.5), ("p75", 0.75)):
        rank = np.mean(finite <= stats[name])  # the estimate's rank among all values
        assert abs(rank - q) < 4 * 0.5 / np.sqrt(small_sample), name


def test_one_value_out_of_range_is_never_missed_in_a_sample(
    frame: pd.DataFrame, small_sample: int
) -> None:
    schema = infer_schema(profile_in_batches(frame, ROWS), "y")
    changed = frame.copy()
    changed.loc[12_345, "x"] = 1e6  # most likely not in the sample: its extreme is exact
    found = check_against_schema(profile_in_batches(changed, 4096), schema, Thresholds())
    (anomaly,) = [a for a in found if a.check == "out_of_range"]
    assert anomaly.severity == "warning"
    assert "has about 1 value (0.01%) outside the schema range" in anomaly.description
    assert anomaly.observed[1] == 1e6


def test_many_values_out_of_range_are_estimated_from_the_sample(
    frame: pd.DataFrame, small_sample: int
) -> None:
    schema = infer_schema(profile_in_batches(frame, ROWS), "y")
    shifted = frame.assign(x=frame["x"] + 12)  # one value in five or so past the range
    found = check_against_schema(profile_in_batches(shifted, 4096), schema, Thresholds())
    (anomaly,) = [a for a in found if a.check == "out_of_range"]
    low, high = frame["x"].min(), frame["x"].max()
    margin = (high - low) * Thresholds().range_margin
    values = shifted["x"].dropna()
    exact = int(((values < low - margin) | (values > high + margin)).sum())
    estimate = int(anomaly.description.split("has about ")[1].split(" values")[0])
    assert anomaly.severity == "error"
    assert abs(estimate - exact) < 0.05 * len(frame)


def test_drift_of_a_sampled_column_is_scaled_to_all_its_rows(
    frame: pd.DataFrame, small_sample: int
) -> None:
    reference = profile_in_batches(frame, 4096).columns
    drift = compare(reference, reference, 10)["x"]
    assert drift.psi == 0.0
    assert drift.reference[-1] == pytest.approx(frame["x"].isna().mean())  # the missing bin
    assert drift.reference.sum() == pytest.approx(1.0)


def test_category_counts_stop_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accumulate, "CATEGORY_CAP", 3)
    frame = pd.DataFrame({"c": ["a", "b", "a", "c", "d", "a", "e", "d"], "y": [0, 1] * 4})
    profile = profile_in_batches(frame, 3).columns["c"]
    assert profile.counts is not None
    assert profile.counts.to_dict() == {"a": 3, "b": 1, "c": 1}
    assert profile.untracked == 3  # d twice and e, first seen after three distinct values
    assert profile.stats()["untracked_values"] == 3
    assert profile.present == 8


def test_the_step_gives_the_same_report_in_small_batches(
    sample_parquet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xcom_file: Path
) -> None:
    """Batches of 128 rows (the sample has 3 000) and one batch give byte-identical reports,
    repeated-key examples included (found by a second pass over the batches)."""
    sample = pd.read_parquet(sample_parquet)
    sample.assign(id=[*range(2990), 5, 7, 7, 11, 5, 13, 17, 19, 23, 29]).to_parquet(
        sample_parquet, index=False
    )
    outputs = []
    for rows in (1 << 16, 128):
        monkeypatch.setattr(job, "BATCH_ROWS", rows)
        out = tmp_path / f"batches-{rows}"
        argv = ["--source", str(sample_parquet), "--target", "default", "--key", "id"]
        assert main([*argv, "--output", str(out), "--max-plots", "0", "--date", "2024-01-02"]) == 1
        text = (out / "anomalies.json").read_text().replace(str(out), "OUT")
        outputs.append(text)
    assert outputs[0] == outputs[1]
    assert "e.g. ['5', '7', '11', '13', '17']" in outputs[0]


def test_the_step_never_holds_the_input_whole(
    sample_parquet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xcom_file: Path
) -> None:
    """Source and reference are read batch by batch: reading either whole fails here."""

    def whole(*args: object, **kwargs: object) -> None:
        raise AssertionError("the input was read whole")

    sizes: list[int] = []
    batches = tables.Source.batches

    def recorded(
        self: tables.Source, rows: int, dictionary: bool = False
    ) -> Iterator[pa.RecordBatch]:
        for batch in batches(self, rows, dictionary):
            sizes.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(tables, "read_table", whole)
    monkeypatch.setattr(tables.Source, "read_all", whole)
    monkeypatch.setattr(pd, "read_parquet", whole)
    monkeypatch.setattr(tables.Source, "batches", recorded)
    monkeypatch.setattr(job, "BATCH_ROWS", 1000)
    argv = ["--source", str(sample_parquet), "--target", "default", "--max-plots", "0"]
    assert main([*argv, "--reference", str(sample_parquet), "--output", str(tmp_path / "o")]) == 0
    assert sizes == [1000, 1000, 1000] * 2  # 3 000 rows of the source, then of the reference


def test_the_reports_say_what_is_approximate(
    frame: pd.DataFrame,
    small_sample: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    xcom_file: Path,
) -> None:
    monkeypatch.setattr(accumulate, "CATEGORY_CAP", 2)
    source = tmp_path / "data.parquet"
    frame.to_parquet(source, index=False)
    out = tmp_path / "out"
    argv = ["--source", str(source), "--target", "y", "--output", str(out), "--max-plots", "0"]
    assert main(argv) == 0
    columns = json.loads((out / "anomalies.json").read_text())["columns"]
    assert columns["x"]["sample_size"] == small_sample
    assert "sample_size" not in columns["c"] and "untracked_values" not in columns["x"]
    assert columns["c"]["untracked_values"] == int(frame["c"].notna().sum()) - sum(
        count for _, count in columns["c"]["top"]
    )
    html = (out / "report.html").read_text()
    assert "quantiles from" in html and f"a sample of {small_sample:,}" in html
    assert "values not counted" in html


def test_a_stored_pandas_index_is_not_a_column(
    sample_frame: pd.DataFrame, tmp_path: Path, xcom_file: Path
) -> None:
    """``DataFrame.to_parquet`` keeps a non-range index as ``__index_level_0__``: pandas reads
    it back as the index, and the profile leaves it out the same way."""
    source = tmp_path / "indexed.parquet"
    sample_frame.set_axis([f"row-{i}" for i in range(len(sample_frame))]).to_parquet(source)
    out = tmp_path / "out"
    argv = ["--source", str(source), "--target", "default", "--output", str(out)]
    assert main([*argv, "--max-plots", "0"]) == 0
    document = json.loads((out / "anomalies.json").read_text())
    assert sorted(document["columns"]) == sorted(sample_frame.columns)
