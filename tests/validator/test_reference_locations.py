"""Where ``--reference`` may read from: models:/NAME@ALIAS, none, and data under an allowed root
(``--allowed-reference-root``, else beside ``--source``). Anything else is refused before any
read, with exit status 2 and a message saying what is allowed; a real HTTP server on loopback
shows that a refused URL is never contacted."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from contract.xcom import read_result
from demo.sample_data import TARGET
from tests.validator.loopback import SECRET_LINE, http_server
from validator.cli import main

__all__ = ["http_server"]  # a fixture used here


def validate(source: Path, out: Path, reference: str, *extra: str) -> int:
    argv = ["--source", str(source), "--target", TARGET, "--output", str(out)]
    return main([*argv, "--reference", reference, "--max-plots", "0", *extra])


@pytest.mark.parametrize(
    "form",
    [
        "{url}/meta.csv",
        "simplecache::{url}/meta.csv",
        "blockcache::{url}/meta.parquet",
        "HTTP://127.0.0.1:{port}/meta.csv",
    ],
)
def test_a_url_reference_is_refused_before_any_read(
    form: str,
    http_server: tuple[str, list[str]],
    sample_parquet: Path,
    tmp_path: Path,
    xcom_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, requests = http_server
    reference = form.format(url=url, port=url.rsplit(":", 1)[1])
    out = tmp_path / "out"
    termination = tmp_path / "termination-log"  # written only where it exists, as in a pod
    termination.touch()
    assert validate(sample_parquet, out, reference) == 2
    assert requests == []  # the server was never contacted
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"validate failed: --reference {reference!r} is not allowed: ")
    assert "models:/NAME@ALIAS" in line and "none" in line
    assert SECRET_LINE not in line
    assert termination.read_text() == line + "\n"
    assert not out.exists()
    assert not xcom_file.exists()


def test_the_http_server_of_these_tests_does_answer(http_server: tuple[str, list[str]]) -> None:
    """The refusals above are the validator's doing, not a server that cannot be reached."""
    import urllib.request

    url, requests = http_server
    with urllib.request.urlopen(f"{url}/meta.csv") as reply:
        assert reply.read().decode().startswith(SECRET_LINE)
    assert requests == ["/meta.csv"]


@pytest.fixture
def roots(tmp_path: Path, sample_frame: pd.DataFrame) -> tuple[Path, Path]:
    """A data root holding a reference, and a folder outside it holding another."""
    inside, outside = tmp_path / "root" / "runs", tmp_path / "elsewhere"
    for folder in (inside, outside):
        folder.mkdir(parents=True)
        sample_frame.to_parquet(folder / "ref.parquet", index=False)
    return inside, outside


def test_data_under_an_allowed_root_is_read(
    roots: tuple[Path, Path], sample_parquet: Path, tmp_path: Path, xcom_file: Path
) -> None:
    inside, _ = roots
    reference = str(inside / "ref.parquet")
    flags = ("--allowed-reference-root", str(inside))
    assert validate(sample_parquet, tmp_path / "out", reference, *flags) == 0
    assert read_result("validate", xcom_file)["drift"]["reference_uri"] == reference
    file_uri = (inside / "ref.parquet").as_uri()
    assert validate(sample_parquet, tmp_path / "out2", file_uri, *flags) == 0


@pytest.mark.parametrize(
    "reference",
    [
        "{outside}/ref.parquet",
        "{inside}/../../elsewhere/ref.parquet",
        "{inside}-sibling/ref.parquet",
        "file://{outside}/ref.parquet",
        "s3://bucket/runs/ref.parquet",
        "memory://ref.parquet",
    ],
)
def test_data_outside_the_allowed_roots_is_refused(
    reference: str,
    roots: tuple[Path, Path],
    sample_parquet: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inside, outside = roots
    reference = reference.format(inside=inside, outside=outside)
    flags = ("--allowed-reference-root", str(inside))
    assert validate(sample_parquet, tmp_path / "out", reference, *flags) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"is not allowed: give models:/NAME@ALIAS, none, or data under {inside}" in line
    assert not (tmp_path / "out").exists()


def test_a_symlink_out_of_the_root_is_refused(
    roots: tuple[Path, Path], sample_parquet: Path, tmp_path: Path
) -> None:
    inside, outside = roots
    (inside / "link.parquet").symlink_to(outside / "ref.parquet")
    flags = ("--allowed-reference-root", str(inside))
    assert validate(sample_parquet, tmp_path / "out", str(inside / "link.parquet"), *flags) == 2


@pytest.mark.parametrize(
    ("reference", "source", "roots", "allowed"),
    [
        ("models:/churn@champion", "s3://data/x.parquet", [], True),
        ("none", "s3://data/x.parquet", ["s3://runs/a"], True),
        # Without roots: data beside the source (its bucket; any local path for a local one).
        ("s3://data/old/x.parquet", "s3://data/x.parquet", [], True),
        ("s3://other/x.parquet", "s3://data/x.parquet", [], False),
        ("/tmp/ref.parquet", "s3://data/x.parquet", [], False),
        ("/tmp/ref.parquet", "/srv/x.parquet", [], True),
        ("s3://data/x.parquet", "/srv/x.parquet", [], False),
        ("http://data/x.parquet", "http://data/y.parquet", [], False),
        # With roots: under one of them, segment by segment.
        ("s3://runs/a/b/x.parquet", "s3://data/x.parquet", ["s3://runs/a"], True),
        ("s3://runs/a/b/x.parquet", "s3://data/x.parquet", ["s3://runs/a/"], True),
        ("s3://runs/ab/x.parquet", "s3://data/x.parquet", ["s3://runs/a"], False),
        ("s3://runs/a/../b/x.parquet", "s3://data/x.parquet", ["s3://runs/a"], False),
        ("s3://runs/a//x.parquet", "s3://data/x.parquet", ["s3://runs/a"], False),
        ("s3://runs/a/x.parquet?versionId=1", "s3://data/x.parquet", ["s3://runs/a"], False),
        ("gs://runs/a/x.parquet", "s3://data/x.parquet", ["s3://runs/a"], False),
        ("s3://data/x.parquet", "s3://data/x.parquet", ["s3://runs/a"], False),
        ("/srv/runs/x.parquet", "/srv/x.parquet", ["/srv/runs", "s3://runs/a"], True),
        ("data:text/csv,a%0A1", "/srv/x.parquet", [], False),
        ("/srv/a::b", "/srv/x.parquet", [], False),
        ("/srv/x/http://h/y", "/srv/x.parquet", [], False),
        ("models:/churn", "/srv/x.parquet", [], False),
        ("models:/churn/3", "/srv/x.parquet", [], False),
    ],
)
def test_reference_location_rule(
    reference: str, source: str, roots: list[str], allowed: bool
) -> None:
    from common.step import UsageError
    from validator.reference import check_reference_location

    if allowed:
        check_reference_location(reference, source, tuple(roots))
    else:
        with pytest.raises(UsageError, match=r"is not allowed|write a model as"):
            check_reference_location(reference, source, tuple(roots))


def test_a_root_that_is_not_a_storage_location_is_refused(
    sample_parquet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ("--allowed-reference-root", "http://127.0.0.1:1/")
    assert validate(sample_parquet, tmp_path / "out", "none", *flags) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--allowed-reference-root 'http://127.0.0.1:1/': not a storage location" in line


def test_help_states_the_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--allowed-reference-root" in text
    assert "refused before anything is read" in text
