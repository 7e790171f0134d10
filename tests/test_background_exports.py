"""Background exports on real Postgres, chDB and Celery (eager with embedded chDB, as in
production on one process): a job completes, reports progress, downloads through a signed
link that expires, and its file is cleaned up by the periodic task; only its owner sees it."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from analytics.requests_log import jobs
from analytics.requests_log.jobs import ExportJob
from budmetrics_site.celery import BEAT_SCHEDULE, app
from tests.conftest import make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
P2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
QUERY = {"start_time": "2025-01-15T00:00:00Z", "end_time": "2025-01-16T00:00:00Z"}


@pytest.fixture
def export_dir(settings, tmp_path):
    settings.EXPORT_DIR = tmp_path / "exports"
    return settings.EXPORT_DIR


@pytest.fixture
def rows(clickhouse):
    data = [
        make_row(project_id=P1, timestamp=T0 + timedelta(seconds=i), path=f"=p{i},x")
        for i in range(250)
    ] + [make_row(project_id=P2, timestamp=T0) for _ in range(7)]
    clickhouse(data)
    return data


@pytest.fixture
def clock(monkeypatch):
    now = {"t": datetime.now(UTC).timestamp()}
    monkeypatch.setattr(jobs, "clock", lambda: now["t"])
    return now


def _get(client: Any, url: str) -> Any:
    parts = urlsplit(url)
    return client.get(parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()})


def test_an_export_completes_reports_progress_downloads_and_expires(
    api_client_factory, rows, export_dir, clock, monkeypatch
):
    owner = api_client_factory([P1])
    seen: list[int] = []
    update = ExportJob.objects.filter

    def recording_filter(*args: Any, **kwargs: Any) -> Any:
        found = update(*args, **kwargs)
        real_update = found.update

        def record(**values: Any) -> int:
            done = real_update(**values)
            job = ExportJob.objects.get(*args, **kwargs)
            seen.append((job.status, job.rows_written, job.rows_total))
            return done

        found.update = record
        return found

    monkeypatch.setattr(jobs, "PROGRESS_ROWS", 50)
    monkeypatch.setattr(ExportJob.objects, "filter", recording_filter)
    response = owner.post(
        "/gateway/exports",
        {"format": "csv", "query": {**QUERY, "fields": ["request_id", "path"]}},
        format="json",
    )
    monkeypatch.setattr(ExportJob.objects, "filter", update)
    assert response.status_code == 202, response.content
    job = response.json()["data"]
    # Progress was saved while the job ran, in steps, against the counted total.
    assert seen == [("running", n, 250) for n in (50, 100, 150, 200, 250)]
    assert job["status"] == "done"
    assert job["rows_written"] == job["rows_total"] == 250
    assert job["progress"] == 1.0

    status = _get(owner, job["status_url"])
    assert status.status_code == 200
    data = status.json()["data"]
    assert data["download_url"]
    download = _get(owner, data["download_url"])
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    text = b"".join(download.streaming_content).decode()
    table = list(csv.reader(io.StringIO(text, newline="")))
    assert table[0] == ["request_id", "path"]
    assert len(table) == 251  # only the owner's project: P2's rows are not in it
    assert {row[1] for row in table[1:]} == {f"'=p{i},x" for i in range(250)}

    # Another caller sees nothing of it, not even with the link.
    stranger = api_client_factory([P1])
    assert _get(stranger, job["status_url"]).status_code == 404
    assert _get(stranger, data["download_url"]).status_code == 404

    # The link expires; a new status read gives a new one while the file is kept.
    clock["t"] += 3601
    assert _get(owner, data["download_url"]).status_code == 410
    fresh = _get(owner, job["status_url"]).json()["data"]["download_url"]
    assert _get(owner, fresh).status_code == 200

    # After the retention the periodic task deletes the file; the job says so.
    path = export_dir / f"{job['id']}.csv"
    assert path.exists()
    clock["t"] += 24 * 3600 + 1
    entry = BEAT_SCHEDULE["cleanup-exports"]  # beat, and the in-process schedule
    assert app.tasks[entry["task"]].apply(throw=True).result == 1
    assert not path.exists()
    expired = _get(owner, job["status_url"]).json()["data"]
    assert expired["status"] == "expired"
    assert expired["download_url"] is None
    assert _get(owner, fresh).status_code == 410


def test_an_ndjson_export_is_the_streamed_export(superuser_client, rows, export_dir):
    params = {**QUERY, "fields": "request_id,timestamp,path", "order": "oldest"}
    response = superuser_client.post(
        "/gateway/exports", {"format": "ndjson", "query": params}, format="json"
    )
    assert response.status_code == 202
    job = response.json()["data"]
    download = _get(superuser_client, job["download_url"])
    background = b"".join(download.streaming_content)
    streamed = superuser_client.get("/gateway/requests", {**params, "format": "ndjson"})
    assert background == b"".join(streamed.streaming_content)
    assert len(background.splitlines()) == 257
    assert json.loads(background.splitlines()[0])["timestamp"] == "2025-01-15T12:00:00Z"


def test_an_invalid_or_foreign_export_is_refused_up_front(api_client_factory, rows, export_dir):
    reader = api_client_factory([P1])
    bad = reader.post(
        "/gateway/exports", {"format": "csv", "query": {"fields": "nope"}}, format="json"
    )
    assert bad.status_code == 400
    assert "query.fields" in bad.json()["error"]["details"]
    assert reader.post("/gateway/exports", {"format": "xlsx"}, format="json").status_code == 400
    foreign = reader.post(
        "/gateway/exports", {"format": "csv", "query": {"project_ids": str(P2)}}, format="json"
    )
    assert foreign.status_code == 403
    assert not ExportJob.objects.exists()
