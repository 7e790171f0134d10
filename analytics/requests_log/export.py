"""Rows as CSV or NDJSON lines, streamed: the request log from ClickHouse block streaming,
analytics answers point by point. Constant memory: one block of rows at a time.

CSV is RFC 4180 (request-log rows encoded by orjson where no escape is needed, else by the
``csv`` module: commas, quotes and newlines quoted) and every text cell that a
spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) is prefixed with a single quote (OWASP's CSV injection advice); numbers
are never prefixed (``-3.5`` stays a number). NDJSON carries the values as they are: JSON
is not opened by spreadsheets.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
import structlog
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from analytics.fields import json_text

logger = structlog.get_logger(__name__)

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
# Rows per write: large enough to keep the overhead per row small, small enough to stream.
LINES_PER_CHUNK = 2000


def neutralise(text: str) -> str:
    """A text cell safe to open in a spreadsheet: a leading formula character is escaped
    with a single quote."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_cell(value: Any) -> Any:
    """One value as a CSV cell: empty for null, true/false, JSON for objects and lists,
    numbers as written by Python (round-trips to the NDJSON number), text neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, dict | list):
        return neutralise(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())
    return neutralise(str(value))


class _Line:
    """A file-like target for ``csv.writer`` that hands back what was written."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def write(self, text: str) -> int:
        return self.buffer.write(text)

    def take(self) -> bytes:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text.encode()


def text_cell(value: Any) -> Any:
    """A text column's cell (``csv_cell`` for a column known to hold strings)."""
    return "'" + value if value[:1] in _FORMULA_FIRST else value


def bool_cell(value: Any) -> str:
    return "true" if value else "false"


def float_cell(value: Any) -> Any:
    """A float as Python writes it (orjson's shortest form may differ, e.g. ``1e-5``)."""
    return None if value is None else repr(value)


_FORMULA_FIRST = frozenset(FORMULA_PREFIXES)
# Request-log columns by how a CSV cell shows them: numbers and the engine's ids and times
# as written (they cannot start with a formula character), booleans as true/false, the
# tags map as JSON, every other (text) column neutralised.
_AS_WRITTEN = frozenset(
    {
        "request_id", "timestamp", "project_id", "model_id", "endpoint_id", "block_rule_id",
        "status_code", "response_time_ms", "gateway_processing_ms",
        "input_tokens", "output_tokens", "total_tokens", "request_size",
        "response_size", "ttft_ms", "attempts", "cached_input_tokens",
    }
)  # fmt: skip
_BOOLEANS = frozenset({"is_bot", "is_blocked", "is_streaming"})
_FLOATS = frozenset({"latitude", "longitude", "cost"})


def request_log_cells(fields: Iterable[str]) -> list[Callable[[Any], Any] | None]:
    """Per request-log column, the cell converter (None: written as it is)."""
    cells: list[Callable[[Any], Any] | None] = []
    for name in fields:
        if name in _AS_WRITTEN:
            cells.append(None)
        elif name in _BOOLEANS:
            cells.append(bool_cell)
        elif name in _FLOATS:
            cells.append(float_cell)
        elif name == "tags":
            cells.append(csv_cell)
        else:
            cells.append(text_cell)
    return cells


def csv_lines(
    header: list[str],
    rows: Iterable[list[Any]],
    cells: list[Callable[[Any], Any] | None] | None = None,
) -> Iterator[bytes]:
    """CSV lines, a chunk per LINES_PER_CHUNK rows. ``cells``: a converter per column
    when the column types are known (None: as written), else ``csv_cell`` for every value."""
    line = _Line()
    writer = csv.writer(line, lineterminator="\r\n")
    writer.writerow([neutralise(name) for name in header])
    yield line.take()
    if cells is None:
        for count, row in enumerate(rows, start=1):
            writer.writerow([csv_cell(value) for value in row])
            if count % LINES_PER_CHUNK == 0:
                yield line.take()
    else:
        yield from _typed_csv_lines(rows, cells, line, writer)
        return
    rest = line.take()
    if rest:
        yield rest


def _typed_csv_lines(
    rows: Iterable[list[Any]],
    cells: list[Callable[[Any], Any] | None],
    line: _Line,
    writer: Any,
) -> Iterator[bytes]:
    """CSV lines of rows whose column types are known. Each row is encoded by orjson in
    one call (a JSON array without its brackets is a CSV line when no value needed an
    escape: text double-quoted, numbers bare), which costs about half of ``csv.writer``
    per row (bench/README.md). A row whose JSON holds an escape (a quote, backslash or
    control character in a text) is written by ``csv.writer`` instead. Floats are written
    by ``repr`` (the NDJSON number's text), nulls as empty cells."""
    texts = [i for i, fn in enumerate(cells) if fn is text_cell]
    convert = [(i, fn) for i, fn in enumerate(cells) if fn and fn is not text_cell]
    first = _FORMULA_FIRST
    dumps = orjson.dumps
    chunk: list[bytes] = []
    for row in rows:
        # Text columns are neutralised inline (a call per cell costs a third of the time).
        for i in texts:
            value = row[i]
            if value[:1] in first:
                row[i] = "'" + value
        for i, fn in convert:
            row[i] = fn(row[i])
        if None in row:
            row = ["" if value is None else value for value in row]
        try:
            encoded = dumps(row, default=str)
        except orjson.JSONEncodeError:
            encoded = b"\\"
        if b"\\" in encoded:
            writer.writerow(row)
            chunk.append(line.take()[:-2])
        else:
            chunk.append(encoded[1:-1])
        if len(chunk) == LINES_PER_CHUNK:
            yield b"\r\n".join(chunk) + b"\r\n"
            chunk = []
    if chunk:
        yield b"\r\n".join(chunk) + b"\r\n"


def ndjson_lines(header: list[str], rows: Iterable[list[Any]]) -> Iterator[bytes]:
    chunk: list[bytes] = []
    for row in rows:
        chunk.append(orjson.dumps(dict(zip(header, row, strict=True))) + b"\n")
        if len(chunk) == LINES_PER_CHUNK:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


def encode(
    fmt: str,
    header: list[str],
    rows: Iterable[list[Any]],
    cells: list[Callable[[Any], Any] | None] | None = None,
) -> Iterator[bytes]:
    return csv_lines(header, rows, cells) if fmt == "csv" else ndjson_lines(header, rows)


def cap_trailer(fmt: str, cap: int) -> bytes:
    """The last line of an export cut at the cap, in the export's own format."""
    text = f"MAX_EXPORT_ROWS ({cap}) reached: the export is cut here; narrow the query."
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerow(["# truncated", text])
        return out.getvalue().encode()
    return orjson.dumps({"_truncated": True, "max_export_rows": cap, "message": text}) + b"\n"


def capped_lines(
    fmt: str,
    header: list[str],
    rows: Iterable[list[Any]],
    cap: int,
    *,
    trailer: bool = True,
    cells: list[Callable[[Any], Any] | None] | None = None,
) -> tuple[Iterator[bytes], Callable[[], tuple[int, bool]]]:
    """The encoded lines of at most ``cap`` rows, with the cap trailer when more came
    (unless ``trailer`` is off: a ``limit`` the caller chose); the second value tells
    (rows sent, whether cut) once the lines are consumed."""
    state = {"sent": 0, "cut": False}

    def capped() -> Iterator[list[Any]]:
        for row in rows:
            if state["sent"] == cap:
                state["cut"] = True
                return
            state["sent"] += 1
            yield row

    def lines() -> Iterator[bytes]:
        yield from encode(fmt, header, capped(), cells)
        if state["cut"] and trailer:
            yield cap_trailer(fmt, cap)

    return lines(), lambda: (state["sent"], state["cut"])


class ExportBody:
    """The body of a streamed export: iterates the encoded lines and, however it ends
    (finished, cut at the cap, the client gone), closes the ClickHouse stream and calls
    ``on_close(rows, status)`` once (the audit). Django closes it after the response."""

    def __init__(
        self,
        lines: Iterator[bytes],
        close_source: Callable[[], None],
        on_close: Callable[[int, int], None],
        counter: Callable[[], int],
    ) -> None:
        self._lines = lines
        self._close_source = close_source
        self._on_close = on_close
        self._counter = counter
        self._closed = False
        self._status = 200

    def __iter__(self) -> ExportBody:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._lines)
        except StopIteration:
            self.close()
            raise
        except Exception:
            self._status = 500
            logger.exception("export_stream_failed")
            self.close()
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._close_source()
        finally:
            self._on_close(self._counter(), self._status)


def streaming_response(fmt: str, body: Iterable[bytes], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


def export_filename(name: str) -> str:
    return f"{name}-{format_time_compact()}"


def format_time_compact() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


class CSVRenderer(BaseRenderer):
    """Lets DRF's content negotiation accept ``format=csv``; the views stream the body
    themselves, so this renders only what reaches it (never a data answer)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> Any:
        return JSONRenderer().render(data)


class NDJSONRenderer(CSVRenderer):
    media_type = "application/x-ndjson"
    format = "ndjson"


EXPORT_RENDERERS = (CSVRenderer, NDJSONRenderer)


def export_format(request: Request) -> str | None:
    """``csv`` or ``ndjson`` when the request asked for an export (``format=`` or Accept)."""
    renderer = getattr(request, "accepted_renderer", None)
    name = getattr(renderer, "format", None)
    return name if name in CONTENT_TYPES else None


class ExportFormatMixin:
    """For views offering ``format=csv|ndjson``: an unknown format is a 400 naming it (DRF
    alone answers 404), and errors still answer as the JSON envelope (an error body is
    never a CSV file)."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        try:
            return super().perform_content_negotiation(request, force)  # type: ignore[misc]
        except Http404:
            name = api_settings.URL_FORMAT_OVERRIDE or "format"
            value = request.query_params.get(name)
            raise ValidationError(
                {name: [f"{json_text(value, 40)} is not allowed; allowed: json, csv, ndjson."]}
            ) from None

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(response, Response) and export_format(request):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = "application/json"
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]


def format_parameter() -> OpenApiParameter:
    """The ``format`` query parameter of an operation that can answer as a file."""
    return OpenApiParameter(
        "format",
        {"type": "string", "enum": ["json", *CONTENT_TYPES]},
        OpenApiParameter.QUERY,
        required=False,
        description="json (default), or csv / ndjson: the answer as a streamed file "
        "(Content-Disposition attachment; at most MAX_EXPORT_ROWS rows, a last line says "
        "when the cap cut it).",
    )


def export_responses(json_schema: Any) -> dict[Any, Any]:
    """The 200 answer per media type: the JSON body, or the streamed file as text."""
    text = OpenApiResponse(
        response=OpenApiTypes.STR, description="The export, streamed (format=csv|ndjson)."
    )
    return {
        (200, "application/json"): json_schema,
        (200, "text/csv"): text,
        (200, "application/x-ndjson"): text,
    }


def analytics_rows(data: dict[str, Any]) -> tuple[list[str], Iterator[list[Any]]]:
    """``POST /gateway/analytics`` as one line per series point: timestamp, the group_by
    dimensions, then the metrics."""
    query = data["query"]
    groups, metrics = list(query["group_by"]), list(query["metrics"])
    header = ["timestamp", *groups, *metrics]

    def rows() -> Iterator[list[Any]]:
        for point in data["time_series"]:
            yield [
                point["timestamp"],
                *(point["groups"].get(g) for g in groups),
                *(point["metrics"].get(m) for m in metrics),
            ]

    return header, rows()
