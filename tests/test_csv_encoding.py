"""The request-log CSV encoder (orjson per row, ``csv.writer`` for rows needing escapes)
reads back, through the csv module, exactly as the generic per-cell encoder: same text,
same neutralised formulas, same numbers, nulls and booleans, across chunk boundaries."""

from __future__ import annotations

import copy
import csv
import io
from typing import Any

from analytics.requests_log.export import LINES_PER_CHUNK, csv_lines, request_log_cells

FIELDS = ["request_id", "timestamp", "path", "client_ip", "status_code", "cost", "is_bot", "tags"]
TEXTS = [
    "/v1/chat",
    "=1+1",
    "-2+3",
    "@SUM(A1)",
    "\t=tab",
    "\r=cr",
    'say "hi"',
    "back\\slash",
    "a,b",
    "line\nbreak",
    "crlf\r\nend",
    "bell\x07",
    "ünïcødé ☃ 😀",
    "",
    " =not first",
    "null",
    "],[",
]
NUMBERS = [1e-05, 1e16, -33.5, 0.1 + 0.2, 0.0, None, float("nan"), float("inf")]


def _rows(count: int) -> list[list[Any]]:
    rows = []
    for i in range(count):
        rows.append(
            [
                f"00000000-0000-4000-8000-{i:012d}",
                "2025-01-15T12:00:00.123000Z",
                TEXTS[i % len(TEXTS)],
                "203.0.113.7",
                (2**64 + 1) if i == 5 else 200 + i % 3,
                NUMBERS[i % len(NUMBERS)],
                i % 2 == 0,
                {"b": '"x"', "a": "=y"} if i % 4 == 0 else {},
            ]
        )
    return rows


def _table(chunks: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(chunks).decode(), newline="")))


def test_the_typed_encoder_reads_back_as_the_per_cell_encoder():
    rows = _rows(LINES_PER_CHUNK + 137)  # more than one chunk
    fast = _table(csv_lines(FIELDS, copy.deepcopy(rows), request_log_cells(FIELDS)))
    generic = _table(csv_lines(FIELDS, copy.deepcopy(rows)))
    assert fast[0] == FIELDS
    assert len(fast) == len(rows) + 1
    assert fast == generic
    paths = {row[2] for row in fast[1:]}
    assert {"'=1+1", "'-2+3", "'@SUM(A1)", "'\t=tab", "'\r=cr"} <= paths
    assert {"=1+1", "-2+3", "@SUM(A1)"}.isdisjoint(paths)
    assert {'say "hi"', "back\\slash", "line\nbreak", "crlf\r\nend", "bell\x07"} <= paths
    costs = {row[5] for row in fast[1:]}
    assert {"1e-05", "1e+16", "-33.5", "0.30000000000000004", "", "nan", "inf"} <= costs
    assert {row[6] for row in fast[1:]} == {"true", "false"}
    assert fast[6][4] == str(2**64 + 1)
    # A row needing no escape takes the orjson form: text quoted, integers bare.
    raw = b"".join(csv_lines(FIELDS, _rows(2), request_log_cells(FIELDS))).decode()
    assert raw.splitlines()[2] == (
        '"00000000-0000-4000-8000-000000000001","2025-01-15T12:00:00.123000Z","\'=1+1",'
        '"203.0.113.7",201,"1e+16","false","{}"'
    )
