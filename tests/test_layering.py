"""The import-linter contracts in pyproject.toml hold for the code, and each one means
something: adding one forbidden import to a copy of the code breaks exactly the contract
that forbids it. A contract that no import could break would guard nothing."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("analytics", "geo", "blocking", "budmetrics_site", "console")
LINT_IMPORTS = pathlib.Path(sys.executable).with_name("lint-imports")

# (contract id, module file, the forbidden import added to it)
VIOLATIONS = [
    ("query-is-domain", "analytics/query/tree.py", "import rest_framework"),
    ("query-is-domain", "analytics/query/shaper.py", "from analytics import endpoints"),
    ("query-is-domain", "analytics/query/runner.py", "from budmetrics_site import errors"),
    ("query-is-domain", "analytics/query/printer.py", "from geo import queries"),
    ("query-no-django-http", "analytics/query/runner.py", "from django.http import HttpResponse"),
    (
        "infrastructure-knows-no-app",
        "budmetrics_site/exceptions.py",
        "from analytics.query import registry",
    ),
    (
        "infrastructure-knows-no-app",
        "budmetrics_site/clickhouse/client.py",
        "from rest_framework import exceptions",
    ),
    ("views-only-through-urls", "analytics/saved_queries.py", "from analytics import views"),
    (
        "no-analytics-views-elsewhere",
        "geo/queries.py",
        "from analytics.routes_clients import views",
    ),
    (
        "routes-clients-private",
        "geo/serializers.py",
        "from analytics.routes_clients.serializers import MAX_TEXT_PARAM",
    ),
    ("no-geo-views-elsewhere", "blocking/stats.py", "from geo import views"),
    ("no-blocking-views-elsewhere", "analytics/endpoints.py", "from blocking import views"),
    (
        "views-independent",
        "analytics/dashboard_views.py",
        "from analytics.saved_query_views import SavedQueryViewSet",
    ),
    ("request-path", "geo/queries.py", "from geo import serializers"),
    ("request-path", "analytics/serializers.py", "from analytics import endpoints"),
    ("request-path", "analytics/window.py", "from analytics.routes_clients import serializers"),
    ("console-one-query-path", "console/views.py", "from analytics.query import runner"),
    ("console-one-query-path", "console/admin_charts.py", "import clickhouse_connect"),
]


def _lint_imports(cwd: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own venv's script with fixed arguments
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def code_copy(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The packages and pyproject.toml in a scratch directory, to add imports to."""
    copy = tmp_path_factory.mktemp("layering")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def _configured_contracts() -> set[str]:
    with (ROOT / "pyproject.toml").open("rb") as config:
        contracts = tomllib.load(config)["tool"]["importlinter"]["contracts"]
    return {contract["id"] for contract in contracts}


def test_every_contract_is_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(_configured_contracts())} kept, 0 broken." in result.stdout


def test_every_contract_is_exercised_below():
    assert _configured_contracts() == {contract for contract, _, _ in VIOLATIONS}


@pytest.mark.parametrize(("contract", "module", "line"), VIOLATIONS)
def test_a_forbidden_import_breaks_its_contract(
    code_copy: pathlib.Path, contract: str, module: str, line: str
):
    path = code_copy / module
    original = path.read_text()
    try:
        path.write_text(f"{original}\n{line}  # added by test_layering\n")
        result = _lint_imports(code_copy, "--contract", contract)
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout
