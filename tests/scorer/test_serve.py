"""``python -m scorer.serve``: the champion, checked against its integrity record, is served by
MLflow's own scoring app (a real server process on loopback) and answers ``/invocations`` as the
model does, for JSON bodies and for CSV bodies alike; a tampered champion is refused before any
server starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from scorer.serve import main
from tests.trainer.workspace import features_of, stored_model_file
from tools.servers import free_port, stop, wait_until_ok

from .conftest import Champion
from .test_cli import served_predictions

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180  # a bound on waiting, not a performance check


def serve_env(champion: Champion) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    return {**env, "PIPELINE_HOME": str(champion.workspace.home), "LOG_LEVEL": "INFO"}


@dataclass(frozen=True)
class Server:
    """A running ``python -m scorer.serve``: its process, port and the files its stdout and
    stderr go to (files, not pipes: a pipe nobody reads would stall a busy server)."""

    proc: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def serving(champion: Champion, logs: Path, *flags: str) -> Iterator[Server]:
    """``python -m scorer.serve`` on a free port in its own process group, its output in
    ``logs``; stopped (the whole group: uvicorn and its workers) at the end."""
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "scorer.serve", "--model", champion.uri, "--port", str(port), *flags
    ]  # fmt: skip
    with (logs / "stdout.log").open("wb") as out, (logs / "stderr.log").open("wb") as err:
        proc = subprocess.Popen(
            command, cwd=REPO, env=serve_env(champion), stdout=out, stderr=err,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield Server(proc, port, logs / "stdout.log", logs / "stderr.log")
    finally:
        stop(proc)


def wait_until_up(server: Server) -> None:
    url = f"{server.url}/ping"
    wait_until_ok(url, server.proc, server.stderr, START_TIMEOUT_S, "python -m scorer.serve")


@contextmanager
def running(champion: Champion, logs: Path, *flags: str) -> Iterator[Server]:
    with serving(champion, logs, *flags) as server:
        wait_until_up(server)
        yield server


@pytest.fixture(scope="module")
def server(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server (one worker) on the champion for the tests that only send requests."""
    with running(champion, tmp_path_factory.mktemp("serve")) as server:
        yield server


@pytest.fixture(scope="module")
def rows(champion: Champion) -> pd.DataFrame:
    """Raw rows as the model takes them (some values missing, as in the sample data)."""
    frame = features_of(champion.workspace.raw_test()).head(20)
    assert frame.isna().any().any(), "the rows should hold missing values"
    return frame


def post(server: Server, body: str | bytes, content_type: str) -> requests.Response:
    return requests.post(
        f"{server.url}/invocations", data=body, headers={"Content-Type": content_type}, timeout=60
    )


def as_json(frame: pd.DataFrame) -> str:
    """``frame`` as a ``dataframe_split`` body (missing values as null)."""
    split = json.loads(frame.to_json(orient="split", index=False))
    return json.dumps({"dataframe_split": split})


def predictions(response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text[-2000:]
    return response.json()["predictions"]  # type: ignore[no-any-return]


def refusal(response: requests.Response, error_code: str) -> str:
    """The message of a 400 answer in MLflow's error format."""
    assert response.status_code == 400, response.text[-2000:]
    body = response.json()
    assert body["error_code"] == error_code, body
    return str(body["message"])


def test_a_verified_champion_answers_invocations(
    store: Champion, server: Server, rows: pd.DataFrame
) -> None:
    predicted = pd.DataFrame(predictions(post(server, as_json(rows), "application/json")))
    expected = served_predictions(store, rows)
    assert list(predicted.columns) == list(expected.columns)
    assert predicted["prediction"].tolist() == expected["prediction"].tolist()
    pd.testing.assert_frame_equal(
        predicted.drop(columns=["prediction"]), expected.drop(columns=["prediction"]),
        check_dtype=False, atol=1e-6,
    )  # fmt: skip


@pytest.mark.parametrize("content_type", ["text/csv", "text/csv; charset=utf-8"])
def test_a_csv_body_scores_as_the_same_rows_in_json(
    server: Server, rows: pd.DataFrame, content_type: str
) -> None:
    from_csv = predictions(post(server, rows.to_csv(index=False), content_type))
    assert from_csv == predictions(post(server, as_json(rows), "application/json"))
    assert len(from_csv) == len(rows)


def test_empty_cells_and_missing_markers_are_missing_values(
    server: Server, rows: pd.DataFrame
) -> None:
    """An empty cell, and a marker such as ``NA`` (as ``python -m scorer`` reads a CSV file),
    scores as the JSON null; ``abc`` in the same categorical column does not."""
    head = rows.head(3).astype(object)
    head.loc[0, ["income", "occupation"]] = None
    csv = head.to_csv(index=False)
    text = head.assign(occupation=["NA", "null", "abc"]).to_csv(index=False)
    as_null = predictions(post(server, as_json(head.assign(occupation=None)), "application/json"))
    assert predictions(post(server, csv, "text/csv")) == predictions(
        post(server, as_json(head), "application/json")
    )
    from_markers = predictions(post(server, text, "text/csv"))
    abc = predictions(post(server, as_json(head.assign(occupation="abc")), "application/json"))
    assert from_markers[:2] == as_null[:2] != abc[:2]  # an unseen text is not a missing value
    assert from_markers[2] == abc[2]


def test_a_csv_without_a_column_is_refused_naming_it(server: Server, rows: pd.DataFrame) -> None:
    body = rows.drop(columns=["income"]).to_csv(index=False)
    from_json = post(server, as_json(rows.drop(columns=["income"])), "application/json")
    error_code = from_json.json()["error_code"]  # CSV and JSON are refused alike
    assert "missing inputs ['income']" in refusal(from_json, error_code)
    message = refusal(post(server, body, "text/csv"), error_code)
    assert "missing inputs ['income']" in message, message


def test_text_in_a_numeric_csv_column_is_refused_naming_it(
    server: Server, rows: pd.DataFrame
) -> None:
    bad = rows.head(3).astype(object)
    bad.loc[1, "age"] = "abc"
    message = refusal(post(server, bad.to_csv(index=False), "text/csv"), "INVALID_PARAMETER_VALUE")
    assert "column 'age': 1 of 3 value(s) are not numbers" in message, message


def test_an_extra_csv_column_is_ignored(server: Server, rows: pd.DataFrame) -> None:
    body = rows.assign(note="x", extra=1).to_csv(index=False)
    assert predictions(post(server, body, "text/csv")) == predictions(
        post(server, as_json(rows), "application/json")
    )


def test_a_header_only_csv_gives_no_predictions(server: Server, rows: pd.DataFrame) -> None:
    header = ",".join(rows.columns)
    for body in (header + "\n", header):
        assert predictions(post(server, body, "text/csv")) == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "the CSV body is empty"),
        (b"\n\n", "the CSV body is empty"),
        (b"age,\xff\xfe\n", "the CSV body is not UTF-8 text"),
        (b"age,age\n1,2\n", "column 'age' appears twice in the CSV header"),
        (b"age,,income\n1,2,3\n", "column 2 of the CSV header has no name"),
        (b'age,income\n"1,2\n', "the CSV body cannot be read"),  # a quote never closed
    ],
    ids=["empty", "blank-lines", "not-utf8", "repeated-column", "nameless-column", "open-quote"],
)
def test_a_malformed_csv_is_refused(server: Server, body: bytes, needle: str) -> None:
    assert needle in refusal(post(server, body, "text/csv"), "BAD_REQUEST")


@pytest.mark.parametrize("change", ["one cell more", "one cell less"])
def test_a_ragged_csv_is_refused(server: Server, rows: pd.DataFrame, change: str) -> None:
    header, first, second = rows.head(2).to_csv(index=False).splitlines()
    ragged = f"{first},1" if change == "one cell more" else first.rsplit(",", 1)[0]
    body = "\n".join([header, second, ragged, second])
    message = refusal(post(server, body, "text/csv"), "BAD_REQUEST")
    assert "the CSV body cannot be read" in message, message
    width = len(rows.columns) + (1 if change == "one cell more" else -1)
    assert f"Expected {len(rows.columns)} columns, got {width}" in message, message


def test_another_charset_is_left_to_mlflow(server: Server, rows: pd.DataFrame) -> None:
    response = post(server, rows.to_csv(index=False), "text/csv; charset=latin-1")
    assert response.status_code == 415 and "only supports UTF-8" in response.text


def test_two_workers_serve_json_and_csv(
    champion: Champion, rows: pd.DataFrame, tmp_path: Path
) -> None:
    with running(champion, tmp_path, "--workers", "2") as server:
        from_json = [predictions(post(server, as_json(rows), "application/json"))]
        from_csv = [predictions(post(server, rows.to_csv(index=False), "text/csv"))]
    started = server.stdout.read_text() + server.stderr.read_text()
    assert started.count("Started server process") == 2, started[-3000:]
    assert from_json == from_csv and len(from_json[0]) == len(rows)


def test_a_tampered_champion_is_refused_and_no_server_starts(
    store: Champion, tmp_path: Path
) -> None:
    champion = store
    weights = stored_model_file(champion.run_id, "weights.safetensors")
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with serving(champion, tmp_path) as server:
            returncode = server.proc.wait(timeout=START_TIMEOUT_S)
    finally:
        weights.write_bytes(original)
    err = server.stderr.read_text()
    assert returncode == 1, err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(f"serve failed: --model {champion.uri} failed its integrity check")
    )
    assert "weights.safetensors" in err
    with socket.socket() as s:  # nothing listens on the port
        assert s.connect_ex(("127.0.0.1", server.port)) != 0


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--model", "runs:/x/model"], "--model: expected models:/NAME@ALIAS"),
        (["--model", "models:/m@champion", "--port", "0"], "--port: expected a port"),
        (["--model", "models:/m@champion", "--workers", "0"], "--workers: expected a whole"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("serve failed: python -m scorer.serve: ") and needle in err, err
