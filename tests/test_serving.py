"""`make serve`'s server for real: gunicorn started on a free loopback port with the
project's config (budmetrics_site/gunicorn_conf.py), answering over HTTP.

- two worker processes (the ClickHouse-server model) -> /metrics totals equal the
  requests made, whichever process answered each, a killed worker's included;
- embedded chDB -> one process with threads, answering concurrent data requests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HTTP_COUNTER = "gateway_analytics_http_requests"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Production settings (not the test settings), private files under tmp_path."""
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "REDIS_URL"}}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CLICKHOUSE_EMBEDDED_PATH=str(tmp_path / "chdb"),
        CLICKHOUSE_RETENTION_DAYS="7300",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        STATIC_ROOT=str(tmp_path / "static"),
        INPROCESS_JOBS="false",
        AUDIT_WRITE_MODE="sync",
        HOST="127.0.0.1",
        PORT=str(_free_port()),
    )
    env.update(extra)
    return env


def _get(url: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Connection": "close", **headers})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(url: str, body: dict[str, Any], **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - http on loopback
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Connection": "close", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.url = f"http://127.0.0.1:{env['PORT']}"
        self.log = Path(env["CLICKHOUSE_EMBEDDED_PATH"]).parent / "gunicorn.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv
                [PYTHON, "-m", "gunicorn", "-c", "budmetrics_site/gunicorn_conf.py"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90  # a bounded wait for start-up, not an assertion
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited: {self.log.read_text()[-2000:]}")
            try:
                if _get(self.url + "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"gunicorn did not answer: {self.log.read_text()[-2000:]}")

    def workers(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def metric_total(self, route: str, status: str = "200") -> float:
        code, body = _get(self.url + "/metrics")
        assert code == 200
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if (
                    sample.name == HTTP_COUNTER + "_total"
                    and sample.labels.get("route") == route
                    and sample.labels.get("status") == status
                ):
                    total += sample.value
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def two_worker_server(tmp_path: Path) -> Iterator[Server]:
    # A ClickHouse host selects the several-processes model; /healthz never queries it.
    env = _server_env(
        tmp_path, CLICKHOUSE_HOST="127.0.0.1", CLICKHOUSE_PORT="9", WEB_WORKERS="2", WEB_THREADS="2"
    )
    server = Server(env)
    yield server
    server.stop()


def _per_process_healthz_counts(directory: Path) -> dict[str, float]:
    """What each process wrote for GET /healthz 200, read from its own file."""
    counts: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            _metric, name, labels, _help = json.loads(key)
            if (
                name == HTTP_COUNTER + "_total"
                and labels == {"method": "GET", "route": "/healthz", "status": "200"}
                and value
            ):
                counts[path.stem] = counts.get(path.stem, 0) + value
    return counts


def test_metrics_add_up_across_worker_processes(two_worker_server: Server, tmp_path: Path):
    server = two_worker_server
    prometheus_dir = tmp_path / "prometheus"
    assert len(server.workers()) == 2
    sent = 1  # the start-up probe
    # Each worker imports the app after the fork (no preload), so on a loaded machine the
    # second may still be starting while the first answers everything: keep sending
    # small batches until both have answered, bounded in time rather than in rounds.
    deadline = time.monotonic() + 90
    with ThreadPoolExecutor(max_workers=8) as pool:
        while time.monotonic() < deadline:
            statuses = list(pool.map(lambda _: _get(server.url + "/healthz")[0], range(16)))
            assert statuses == [200] * 16
            sent += 16
            if len(_per_process_healthz_counts(prometheus_dir)) >= 2:
                break
            time.sleep(0.2)
    per_process = _per_process_healthz_counts(prometheus_dir)
    assert len(per_process) >= 2, per_process  # the answers really came from two processes
    assert sum(per_process.values()) == sent
    # Every scrape, whichever process answers it, sees the total of all.
    assert [server.metric_total("/healthz") for _ in range(6)] == [sent] * 6

    # A worker that dies keeps its counts; its replacement adds to them.
    victim = server.workers()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while (victim in server.workers() or len(server.workers()) < 2) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(lambda _: _get(server.url + "/healthz")[0], range(16))) == {200}
    sent += 16
    assert server.metric_total("/healthz") == sent
    # Unmatched paths share one label instead of one per path.
    assert _get(server.url + "/no/such/path")[0] == 404
    assert _get(server.url + "/another/missing")[0] == 404
    assert server.metric_total("<unmatched>", "404") == 2


def test_embedded_chdb_serves_from_one_process_with_threads(tmp_path: Path):
    env = _server_env(tmp_path, CLICKHOUSE_HOST="", WEB_THREADS="4")
    # What `make serve` runs first, plus a little demo traffic and a key, in one process.
    setup = (
        "from django.core.management import call_command as c\n"
        "c('migrate', verbosity=0)\n"
        "c('migrate', database='clickhouse', verbosity=0)\n"
        "c('generate_traffic', rows=2000, days=2, projects=2, seed=7, verbosity=0)\n"
        "from analytics.access.models import ApiClient\n"
        "print(ApiClient.create_with_key(name='budapp', all_projects=True)[1])\n"
    )
    done = subprocess.run(  # noqa: S603 - fixed argv
        [PYTHON, "manage.py", "shell", "-c", setup],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    key = done.stdout.strip().splitlines()[-1]
    server = Server(env)
    try:
        assert len(server.workers()) == 1
        now = datetime.now(UTC).replace(microsecond=0)
        body = {
            "start_time": (now - timedelta(days=3)).isoformat(),
            "end_time": (now + timedelta(days=1)).isoformat(),
            "time_bucket": "1d",
            "metrics": ["total_requests", "p95_response_time"],
        }

        def ask(n: int) -> tuple[int, bytes]:
            return _post(
                server.url + "/gateway/analytics",
                {**body, "group_by": ["model_name"] if n % 2 else []},
                Authorization=f"Bearer {key}",
            )

        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(ask, range(12)))
        assert [code for code, _ in answers] == [200] * 12, answers[0][1][:500]
        totals = {json.loads(raw)["data"]["summary"]["total_requests"] for _, raw in answers}
        assert totals == {2000}  # every thread read the same rows from the one chDB
        assert server.metric_total("/gateway/analytics") == 12
    finally:
        server.stop()


def test_embedded_chdb_refuses_several_workers(tmp_path: Path):
    env = _server_env(tmp_path, CLICKHOUSE_HOST="", WEB_WORKERS="2")
    done = subprocess.run(  # noqa: S603 - fixed argv
        [PYTHON, "-m", "gunicorn", "-c", "budmetrics_site/gunicorn_conf.py", "--check-config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "WEB_WORKERS must be 1 with embedded chDB" in done.stderr
