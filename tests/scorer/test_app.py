"""scorer.app's reading of CSV bodies, without a server: which requests it reads, and the JSON
body it makes of a CSV one (the server itself is tested in test_serve.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scorer.app import CsvBodyError, csv_as_dataframe_split, csv_media_type


def split_of(body: bytes) -> dict[str, Any]:
    return json.loads(csv_as_dataframe_split(body))["dataframe_split"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("content_type", "read"),
    [
        ("text/csv", True),
        ("text/csv; charset=utf-8", True),
        ('Text/CSV;charset="UTF-8"', True),
        ("text/csv; charset=latin-1", False),  # MLflow's app answers 415
        ("text/csv; header=present", False),  # MLflow's app answers 415
        ("application/json", False),
        ("text/plain", False),
    ],
)
def test_which_content_types_are_read_as_csv(content_type: str, read: bool) -> None:
    assert csv_media_type(content_type) is read


def test_cells_are_text_and_missing_cells_null() -> None:
    body = b'age,region,note\n39,"north, upper",\n007,NA,""\n1e3,None,n/a\n'
    assert split_of(body) == {
        "columns": ["age", "region", "note"],
        "data": [["39", "north, upper", None], ["007", None, None], ["1e3", "None", None]],
    }


def test_quoted_names_and_cells_may_hold_line_ends_and_a_bom_is_no_name() -> None:
    body = '\ufeff"first\nname",b\r\n"x\ny",2\r\n'.encode()
    assert split_of(body) == {"columns": ["first\nname", "b"], "data": [["x\ny", "2"]]}


@pytest.mark.parametrize("body", [b"a,b\n", b"a,b", b"\na,b\n\n"])
def test_a_header_alone_is_no_rows(body: bytes) -> None:
    assert split_of(body) == {"columns": ["a", "b"], "data": []}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "the CSV body is empty"),
        (b"a,b\n1,\xe9\n", "not UTF-8 text"),
        (b"a,b\n1,2,3\n", "Expected 2 columns, got 3"),
        (b"a,b\n1,2\n3\n", "Expected 2 columns, got 1"),
        (b"a, \n1,2\n", "column 2 of the CSV header has no name"),
        (b"a,b,a\n1,2,3\n", "column 'a' appears twice"),
    ],
)
def test_unreadable_bodies_are_refused_saying_why(body: bytes, needle: str) -> None:
    with pytest.raises(CsvBodyError, match=needle):
        csv_as_dataframe_split(body)
