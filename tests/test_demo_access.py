"""First run shows data: ``generate_traffic`` prints the demo project ids and
``demo_access`` prints a staff login and an API key that read them, with copy-paste API
calls that answer real numbers (run here with bash and curl against a live server)."""

from __future__ import annotations

import json
import re
import subprocess
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from analytics.demo.generator import project_layout

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"], transaction=True)


def run(command: str, **options: Any) -> str:
    out = StringIO()
    call_command(command, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def shell(script: str) -> str:
    """Runs what a user would paste into bash (our own printed commands)."""
    done = subprocess.run(["/bin/bash", "-c", script], capture_output=True, check=True, text=True)  # noqa: S603
    return done.stdout


def test_generate_traffic_prints_the_demo_projects_even_when_it_skips(clickhouse: Any) -> None:
    ids = project_layout(42, 3).project_ids
    first = run("generate_traffic", rows=3000, days=1, projects=3, seed=42)
    again = run("generate_traffic", rows=3000, days=1, projects=3, seed=42, if_empty=True)
    assert "nothing written" in again
    for out in (first, again):
        assert f"Demo projects (seed 42): {' '.join(ids)}" in out


def test_demo_access_prints_a_login_and_a_key_that_read_the_demo_projects(
    clickhouse: Any, live_server: Any
) -> None:
    run("generate_traffic", rows=3000, days=1, projects=3, seed=42)
    out = run("demo_access", base_url=live_server.url)
    ids = project_layout(42, 3).project_ids
    assert f"Demo projects: {' '.join(ids)}" in out
    password = re.search(r"user demo-staff  password (\S+)", out).group(1)
    key = re.search(r"API key \(shown only now\): (\S+)", out).group(1)

    browser = Client()
    assert browser.login(username="demo-staff", password=password)
    page = browser.get("/admin/traffic/")
    assert page.status_code == 200
    assert all(project in page.content.decode() for project in ids)  # the picker

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    routes = api.get("/gateway/top-routes")
    assert routes.json()["data"]["summary"]["total_requests"] == 3000

    # The printed commands, pasted into a shell, answer the demo project's numbers.
    lines = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    script = "set -e\n" + lines[0] + "\n" + lines[1] + "\n"
    answer = json.loads(shell(script))
    assert answer["success"] is True
    assert answer["data"]["query"]["project_scope"] == [ids[0]]
    assert answer["data"]["summary"]["total_requests"] > 0
    assert json.loads(shell(lines[2]))["success"] is True

    # Run again: a new password and a new key; the old ones stop working.
    out2 = run("demo_access", base_url=live_server.url)
    assert re.search(r"password (\S+)", out2).group(1) != password
    assert not Client().login(username="demo-staff", password=password)
    assert api.get("/gateway/top-routes").status_code == 401
