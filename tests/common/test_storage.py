"""Files at URIs: joining, atomic writes, JSON, fingerprints, removal, and clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from common import storage, tables
from common.step import StepError


@pytest.mark.parametrize(
    ("base", "parts", "expected"),
    [
        ("s3://bucket/key", ("x.parquet",), "s3://bucket/key/x.parquet"),
        ("s3://bucket/key/", ("raw", "t.parquet"), "s3://bucket/key/raw/t.parquet"),
        ("file:///tmp/out", ("m.json",), "file:///tmp/out/m.json"),
        ("/tmp/out", ("m.json",), "/tmp/out/m.json"),
    ],
)
def test_join_uri_keeps_the_scheme(base: str, parts: tuple[str, ...], expected: str) -> None:
    assert storage.join_uri(base, *parts) == expected


def test_unsupported_scheme_is_refused() -> None:
    with pytest.raises(StepError, match="unsupported URI"):
        tables.read_table("nosuchscheme://bucket/data.parquet")


def test_json_round_trip(tmp_path: Path) -> None:
    uri = str(tmp_path / "a" / "b.json")
    storage.write_json({"z": 1, "a": [1.5, None]}, uri)
    assert storage.read_json(uri) == {"z": 1, "a": [1.5, None]}
    assert json.loads(Path(uri).read_text())["z"] == 1


def test_write_json_refuses_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        storage.write_json({"x": float("nan")}, str(tmp_path / "n.json"))


def test_read_json_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(StepError, match=re.escape(f"{missing} does not exist")):
        storage.read_json(str(missing))
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(StepError, match=re.escape(f"{bad} is not valid JSON")):
        storage.read_json(str(bad))


def test_remove(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{}")
    storage.remove(str(path))
    assert not path.exists()
    storage.remove(str(path))  # removing again is fine


def test_fingerprint_depends_on_content_not_location(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        (folder / "day=1").mkdir(parents=True)
        (folder / "day=1" / "part.parquet").write_bytes(b"rows of day 1")
        (folder / "_SUCCESS").write_bytes(b"")
    assert storage.fingerprint(str(first)) == storage.fingerprint(str(second))
    assert storage.fingerprint(str(first)).startswith("sha256:")
    (second / "day=1" / "part.parquet").write_bytes(b"rows of day 2")
    assert storage.fingerprint(str(first)) != storage.fingerprint(str(second))


def test_fingerprint_covers_file_names_in_a_folder(tmp_path: Path) -> None:
    for name, part in (("a", "x.parquet"), ("b", "y.parquet")):
        (tmp_path / name).mkdir()
        (tmp_path / name / part).write_bytes(b"same bytes")
    assert storage.fingerprint(str(tmp_path / "a")) != storage.fingerprint(str(tmp_path / "b"))


def test_fingerprint_of_a_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(StepError, match=r"nowhere\.parquet does not exist"):
        storage.fingerprint(str(tmp_path / "nowhere.parquet"))


# --- streaming sources and atomic writes ------------------------------------------------------


def test_open_for_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out" / "file.bin"
    with pytest.raises(RuntimeError, match="boom"), storage.open_for_write(str(target)) as fh:
        fh.write(b"half")
        raise RuntimeError("boom")
    assert list((tmp_path / "out").iterdir()) == []
    with storage.open_for_write(str(target)) as fh:
        fh.write(b"whole")
    assert target.read_bytes() == b"whole"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["file.bin"]


def test_remove_partials_cleans_what_a_killed_run_left(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "train.parquet.partial-123").write_bytes(b"x")
    (tmp_path / "raw" / "test.parquet.partial-9").write_bytes(b"x")
    (tmp_path / "train.parquet").write_bytes(b"kept")
    assert storage.remove_partials(str(tmp_path)) == 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["train.parquet"]
    assert storage.remove_partials(str(tmp_path / "nowhere")) == 0
