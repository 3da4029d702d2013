"""The app ``python -m scorer.serve`` runs: MLflow's own scoring app (``/invocations``,
``/ping``, ``/health``, ``/version``) for the model in ``$SCORER_MODEL_DIR``, behind one
translation of ours: a CSV body posted to ``/invocations`` becomes the JSON ``dataframe_split``
body of the same rows before MLflow's app sees it.

Why: MLflow's CSV parser reads the body with one pandas type per column of the signature, and
this model's columns are typed ``any`` (a numeric column takes int64 and float64 alike), which
has no pandas type, so MLflow refuses every CSV body. As JSON the rows take MLflow's JSON path,
where the model reads numeric text as the number it spells and refuses, naming the column, what
it cannot score: CSV and JSON share one scoring path and one error format.

How a CSV body is read (``text/csv``, UTF-8, a header line of column names, then rows): every
cell is text, and a cell is missing when it is empty or one of Arrow's missing markers (``NA``,
``N/A``, ``NULL``, ``null``, ``NaN``, ``nan``, ``#N/A``, ...), as ``python -m scorer`` reads a
CSV file and close to ``pandas.read_csv``'s defaults, so a file scores the same either way
(Arrow reads it, not pandas: pandas fills a row shorter than the header with missing values,
where Arrow refuses it). A body that is not UTF-8, is empty, has a row wider or narrower than
its header, or a header with a nameless or repeated column is answered HTTP 400
(``BAD_REQUEST``) with a message saying so. A CSV body with a charset other than UTF-8, or any
other request, goes to MLflow's app unchanged.

Nothing of the model is loaded when this module is imported: ``create_app`` loads it, in each
server worker (uvicorn's ``--factory``), from the folder ``scorer.serve`` verified."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

MODEL_DIR_ENV = "SCORER_MODEL_DIR"  # the verified local copy the server loads
INVOCATIONS = "/invocations"
CSV_TYPE = "text/csv"


class CsvBodyError(ValueError):
    """A CSV body that cannot be read as rows under a header; the message says why."""


def csv_media_type(content_type: str) -> bool:
    """Whether ``content_type`` is ``text/csv`` with no parameter but a UTF-8 charset (any
    other parameter is left to MLflow's app, which answers 415 naming it)."""
    kind, *parameters = (part.strip() for part in content_type.split(";"))
    if kind.lower() != CSV_TYPE:
        return False
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def header_of(text: str) -> list[str]:
    """The column names on the first line that is not blank (quoted names may hold commas);
    CsvBodyError for an empty body or a header with a nameless or repeated column."""
    first = next((row for row in csv.reader(io.StringIO(text)) if row), None)
    if not first:
        raise CsvBodyError("the CSV body is empty: expected a header line of column names")
    for position, name in enumerate(first, start=1):
        if not name.strip():
            raise CsvBodyError(f"column {position} of the CSV header has no name")
        if name in first[: position - 1]:
            raise CsvBodyError(f"column {name!r} appears twice in the CSV header")
    return first


def csv_as_dataframe_split(body: bytes) -> bytes:
    """The JSON body ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`` of the
    rows of a CSV ``body``: text cells, ``null`` for a missing one. CsvBodyError says why a
    body cannot be read."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        text = body.decode("utf-8-sig")  # a byte order mark (Excel's UTF-8 CSV) is not a name
    except UnicodeDecodeError as exc:
        raise CsvBodyError(f"the CSV body is not UTF-8 text: {exc}") from exc
    columns = header_of(text)
    if not body.endswith((b"\n", b"\r")):
        body += b"\n"  # Arrow reads no columns from a header-only body without a line end
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(columns, pa.string()), strings_can_be_null=True
    )
    lines = pacsv.ParseOptions(newlines_in_values=True)  # a quoted cell may span lines
    try:
        table = pacsv.read_csv(io.BytesIO(body), parse_options=lines, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise CsvBodyError(f"the CSV body cannot be read: {str(exc).splitlines()[0]}") from exc
    if table.column_names != columns or any(t != pa.string() for t in table.schema.types):
        raise CsvBodyError("the CSV header cannot be read as one line of column names")
    rows = [list(row) for row in zip(*(c.to_pylist() for c in table.columns), strict=True)]
    return json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()


def bad_request(message: str) -> bytes:
    """MLflow's error body (``{"error_code": "BAD_REQUEST", "message": ...}``), as its app
    answers a body it cannot parse."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST

    return MlflowException(message, error_code=BAD_REQUEST).serialize_as_json().encode()


class CsvAsJson:
    """ASGI middleware: a ``POST /invocations`` with a CSV body reaches ``app`` as the same rows
    in a JSON ``dataframe_split`` body (its content type and length changed, nothing else); a
    body it cannot read is answered 400 here. Every other request passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.is_csv_invocation(scope):
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request
        from starlette.responses import Response

        body = await Request(scope, receive).body()
        try:
            payload = await asyncio.to_thread(csv_as_dataframe_split, body)
        except CsvBodyError as exc:
            answer = Response(bad_request(str(exc)), 400, media_type="application/json")
            await answer(scope, receive, send)
            return
        await self.app(self.json_scope(scope, len(payload)), replay(payload, receive), send)

    @staticmethod
    def is_csv_invocation(scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != INVOCATIONS:
            return False
        types = [v for k, v in scope["headers"] if k.lower() == b"content-type"]
        return len(types) == 1 and csv_media_type(types[0].decode("latin-1"))

    @staticmethod
    def json_scope(scope: Scope, length: int) -> Scope:
        replaced = {b"content-type", b"content-length", b"transfer-encoding"}
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in replaced]
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % length)]
        return {**scope, "headers": headers}


def replay(payload: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``payload`` as the whole request body, then defers to the
    client's (which then reports only a disconnect)."""
    sent = False

    async def receive_payload() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": payload, "more_body": False}

    return receive_payload


def create_app() -> ASGIApp:
    """MLflow's scoring app for the model in ``$SCORER_MODEL_DIR`` (loaded as ``mlflow models
    serve`` loads it, ``$SERVING_MODEL_CONFIG`` included), wrapped by ``CsvAsJson``. uvicorn
    calls it once per worker (``--factory scorer.app:create_app``)."""
    from mlflow.pyfunc import scoring_server

    model_dir = os.environ.get(MODEL_DIR_ENV)
    if not model_dir:
        raise RuntimeError(f"${MODEL_DIR_ENV} is not set: start the server with scorer.serve")
    model = scoring_server.load_model_with_mlflow_config(model_dir)
    return CsvAsJson(scoring_server.init(model))
