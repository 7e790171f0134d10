"""Injection: hostile strings in every string input of every data endpoint never reach SQL
text.

For each input, the request is sent once with a benign value and once with each hostile
value. A hostile value must either be refused (4xx in the envelope, no query run) or
answered with the right rows: the rows really contain these strings, so an exact-match
filter has to find exactly the caller's row that holds it. When answered, the printed SQL
must be byte-identical to the benign request's (the value changed only bound parameters),
the value must be among the bound parameters, the tenant guard opens every table read,
and the table is intact afterwards.
"""

from __future__ import annotations

import itertools
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache

from tests.conftest import clickhouse_client, make_row
from tests.security.helpers import (
    QuerySpy,
    assert_error_envelope,
    assert_guarded,
    bound_values,
    module_rows,
    uid,
)

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1, P2 = uid("injection-1"), uid("injection-2")
START = datetime(2025, 2, 3, tzinfo=UTC)
WINDOW = {"start_time": "2025-02-03T00:00:00Z", "end_time": "2025-02-04T00:00:00Z"}

HOSTILE: dict[str, str] = {
    "quote": "'",
    "two-quotes": "''",
    "backslash": "\\",
    "escaped-quote": "\\'",
    "double-quote": '"',
    "backtick": "`",
    "drop-table": "'); DROP TABLE gateway_analytics; --",
    "or-true": "' OR '1'='1",
    "or-true-comment": "x' OR 1=1 --",
    "union": "' UNION ALL SELECT * FROM system.tables --",
    "settings": "' SETTINGS readonly=0 --",
    "placeholder": "{p:String}",
    "scope-placeholder": "{scope_project_ids:Array(UUID)}",
    "time-placeholder": "{start_time:DateTime64(3, 'UTC')}",
    "line-comment": "-- comment",
    "block-comment": "/* comment */",
    "comment-break": "*/ OR 1=1 /*",
    "newline": "line1\nline2",
    "crlf": "\r\n",
    "tab": "tab\there",
    "nul": "nul\x00byte",
    "unicode": "ünïcödé ☃ \U0001d54f 日本語",
    "bidi": "\u202e\u200bx",
    "printf": "%s %d",
    "dollar": "$1 ?",
    "heredoc": "$$ x $$",
    "semicolon": "; SELECT 1",
    "escaped-nul": "\\x00",
    "null-sentinel": "\\N",
}
BENIGN = "benign-value"
# Columns that hold the hostile strings in the rows (one row per string and project).
TEXT_COLUMNS = (
    "path",
    "client_id",
    "model_name",
    "model_provider",
    "region",
    "city",
    "browser",
    "os",
    "block_reason",
    "error_type",
    "user_agent",
)


def _rows() -> list[dict[str, Any]]:
    rows = []
    for project in (P1, P2):
        values = [BENIGN, "plain", *HOSTILE.values()]
        for i, value in enumerate(values):
            rows.append(
                make_row(
                    project_id=project,
                    timestamp=START + timedelta(hours=1, minutes=i),
                    **dict.fromkeys(TEXT_COLUMNS, value),
                    country_code="US",
                    is_blocked=i % 2 == 0,
                )
            )
    return rows


ROWS = _rows()
P1_ROWS = [r for r in ROWS if r["project_id"] == P1]


_traffic = module_rows(ROWS)


@pytest.fixture(autouse=True)
def _table_survives(django_db_blocker: Any) -> Any:
    """After every request of a test: the table is there with every row."""
    yield
    with django_db_blocker.unblock():
        assert clickhouse_client().command("EXISTS TABLE gateway_analytics") == 1
        assert int(clickhouse_client().command("SELECT count() FROM gateway_analytics")) == len(
            ROWS
        )


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> QuerySpy:
    return QuerySpy().install(monkeypatch)


@pytest.fixture
def p1_client(api_client_factory: Callable[..., Any]) -> Any:
    return api_client_factory([P1])


# --- the inputs ------------------------------------------------------------------------

_names = itertools.count()
Predicate = Callable[[dict[str, Any], str], bool]


@dataclass(frozen=True)
class Input:
    """One string input of one endpoint. ``build(value)`` gives the request params;
    ``rows(row, value)`` says which of the caller's rows the answer must count (None: the
    count is not checked); ``refused``: no hostile value can be valid here (a name from a
    fixed set), so every one must be a 4xx; ``trims``: the field strips surrounding
    whitespace (DRF CharField), so a blank-after-strip value is no filter at all."""

    endpoint: str
    build: Callable[[str], dict[str, Any]]
    rows: Predicate | None = None
    refused: bool = False
    trims: bool = False
    saved: bool = False
    benign: str = BENIGN


def _search(row: dict[str, Any], value: str) -> bool:
    return value.lower() in row["client_id"].lower()


def _regex(row: dict[str, Any], value: str) -> bool:
    return re.search(value, row["path"]) is not None


def _filter(tree: Callable[[str], Any]) -> Callable[[str], dict[str, Any]]:
    return lambda value: {"filters": tree(value)}


INPUTS: dict[str, Input] = {
    # POST /gateway/analytics: every filter form over string dimensions...
    "analytics-eq": Input("analytics", _filter(lambda v: {"path": v}), lambda r, v: r["path"] == v),
    "analytics-in": Input(
        "analytics",
        _filter(lambda v: {"model_name": [v, "no-such-model"]}),
        lambda r, v: r["model_name"] == v,
    ),
    "analytics-ne": Input(
        "analytics",
        _filter(lambda v: {"region": {"op": "ne", "value": v}}),
        lambda r, v: r["region"] != v,
    ),
    "analytics-not-in": Input(
        "analytics",
        _filter(lambda v: {"city": {"op": "not_in", "value": [v]}}),
        lambda r, v: r["city"] != v,
    ),
    "analytics-contains": Input(
        "analytics",
        _filter(lambda v: {"client_id": {"op": "contains", "value": v}}),
        lambda r, v: v in r["client_id"],
    ),
    "analytics-starts-with": Input(
        "analytics",
        _filter(lambda v: {"browser": {"op": "starts_with", "value": v}}),
        lambda r, v: r["browser"].startswith(v),
    ),
    "analytics-regex": Input(
        "analytics", _filter(lambda v: {"path": {"op": "regex", "value": v}}), _regex
    ),
    "analytics-or": Input(
        "analytics",
        _filter(lambda v: {"or": [{"os": v}, {"error_type": {"op": "in", "value": [v]}}]}),
        lambda r, v: r["os"] == v or r["error_type"] == v,
    ),
    "analytics-not": Input(
        "analytics",
        _filter(lambda v: {"not": {"block_reason": v}}),
        lambda r, v: r["block_reason"] != v,
    ),
    # ...and every name a client picks from a fixed set.
    "analytics-group-by": Input("analytics", lambda v: {"group_by": [v]}, refused=True),
    "analytics-metric": Input("analytics", lambda v: {"metrics": [v]}, refused=True),
    "analytics-order-by": Input(
        "analytics", lambda v: {"group_by": ["path"], "top_n": 2, "order_by": v}, refused=True
    ),
    "analytics-timezone": Input("analytics", lambda v: {"timezone": v}, refused=True),
    "analytics-time-bucket": Input("analytics", lambda v: {"time_bucket": v}, refused=True),
    "analytics-filter-key": Input("analytics", _filter(lambda v: {v: "x"}), refused=True),
    "analytics-filter-op": Input(
        "analytics", _filter(lambda v: {"path": {"op": v, "value": "x"}}), refused=True
    ),
    "analytics-project-ids": Input("analytics", lambda v: {"project_ids": [v]}, refused=True),
    "analytics-start-time": Input("analytics", lambda v: {"start_time": v}, refused=True),
    # GET /gateway/top-routes
    "top-routes-path": Input(
        "top-routes", lambda v: {"path": v}, lambda r, v: r["path"] == v, trims=True
    ),
    "top-routes-route": Input("top-routes", lambda v: {"route": v}, trims=True),
    "top-routes-method": Input("top-routes", lambda v: {"method": v}, refused=True),
    "top-routes-order-by": Input("top-routes", lambda v: {"order_by": v}, refused=True),
    # GET /gateway/client-analytics
    "clients-search": Input("client-analytics", lambda v: {"search": v}, _search),
    "clients-browser": Input(
        "client-analytics",
        lambda v: {"browser": v},
        lambda r, v: r["browser"].lower() == v.lower(),
        trims=True,
    ),
    "clients-os": Input(
        "client-analytics",
        lambda v: {"os": v},
        lambda r, v: r["os"].lower() == v.lower(),
        trims=True,
    ),
    "clients-device-type": Input("client-analytics", lambda v: {"device_type": v}, refused=True),
    "clients-order-by": Input("client-analytics", lambda v: {"order_by": v}, refused=True),
    # GET /gateway/geographical-stats
    "geo-country-code": Input(
        "geographical-stats",
        lambda v: {"country_code": v},
        lambda r, v: r["country_code"] == v.upper(),
        trims=True,  # two ASCII letters only: every non-blank hostile value is a 400
        benign="us",
    ),
    "geo-order-by": Input("geographical-stats", lambda v: {"order_by": v}, refused=True),
    "geo-model-ids": Input(
        "geographical-stats",
        lambda v: {"model_ids": v},
        lambda r, v: False,  # UUIDs only: every non-blank hostile value is a 400
        trims=True,
        benign=str(uid("no-such-model")),
    ),
    # GET /gateway/blocking-stats
    "blocking-time-bucket": Input("blocking-stats", lambda v: {"time_bucket": v}, refused=True),
    # An IANA zone name, as in analytics: anything else is a 400.
    "blocking-timezone": Input("blocking-stats", lambda v: {"timezone": v}, refused=True),
    "blocking-end-time": Input("blocking-stats", lambda v: {"end_time": v}, refused=True),
    # Saved-query runs carry the same values through the stored params.
    "saved-analytics-eq": Input(
        "analytics", _filter(lambda v: {"path": v}), lambda r, v: r["path"] == v, saved=True
    ),
    "saved-clients-search": Input("client-analytics", lambda v: {"search": v}, _search, saved=True),
    "saved-top-routes-path": Input(
        "top-routes", lambda v: {"path": v}, lambda r, v: r["path"] == v, trims=True, saved=True
    ),
}


def ask(client: Any, spec: Input, value: str) -> Any:
    params = spec.build(value)
    if spec.saved:
        created = client.post(
            "/gateway/saved-queries",
            {
                "name": f"injection-{next(_names)}",
                "endpoint": spec.endpoint,
                "time_window": "absolute",
                "params": {**WINDOW, **params},
            },
            format="json",
        )
        if created.status_code != 201:
            return created
        return client.post(f"/gateway/saved-queries/{created.json()['data']['id']}/run")
    if spec.endpoint == "analytics":
        return client.post("/gateway/analytics", {**WINDOW, **params}, format="json")
    return client.get(f"/gateway/{spec.endpoint}", {**WINDOW, **params})


_BENIGN_SQL: dict[str, list[str]] = {}


def benign_sql(client: Any, spy: QuerySpy, name: str) -> list[str]:
    """The SQL the benign value prints for this input (the same for every scope)."""
    if name not in _BENIGN_SQL:
        spy.clear()
        response = ask(client, INPUTS[name], INPUTS[name].benign)
        assert response.status_code == 200, response.content[:500]
        _BENIGN_SQL[name] = list(spy.sql)
        spy.clear()
        cache.delete_pattern("*")  # an ignored parameter must not make the next ask a hit
    return _BENIGN_SQL[name]


def check_value(client: Any, spy: QuerySpy, name: str, value: str) -> None:
    """One hostile value on one input: refused with no query run, or answered with the
    right rows by SQL identical to the benign request's, the value bound."""
    spec = INPUTS[name]
    baseline = None if spec.refused else benign_sql(client, spy, name)
    spy.clear()
    cache.delete_pattern("*")  # a parameter the endpoint ignores must still be answered
    response = ask(client, spec, value)
    if spec.refused or response.status_code != 200:
        assert_error_envelope(response, 400, 404)
        assert spy.count == 0, spy.sql
        return
    effective = value.strip() if spec.trims else value
    if spec.rows is not None:
        if effective:
            expected = sum(1 for row in P1_ROWS if spec.rows(row, effective))
        else:
            expected = len(P1_ROWS)  # a blank text parameter filters nothing
        summary = response.json()["data"]["summary"]
        assert summary["total_requests"] == expected
    assert_guarded(spy.queries, (P1,))
    if effective:
        assert spy.sql == baseline
        assert effective in bound_values(spy.queries) or spec.endpoint == "blocking-stats"


@pytest.mark.parametrize("name", list(INPUTS))
def test_hostile_strings_are_refused_or_bound_never_printed(p1_client, spy, name):
    """Every hostile value on this input (one test per input; the failures list names
    each value that broke the rule)."""
    failures = []
    for hostile, value in HOSTILE.items():
        try:
            check_value(p1_client, spy, name, value)
        except AssertionError as exc:
            failures.append(f"{hostile}: {str(exc)[:300]}")
    assert failures == []


@pytest.mark.parametrize(
    "name",
    [n for n, spec in INPUTS.items() if not spec.refused and "regex" not in n and "geo" not in n],
)
def test_a_value_with_quotes_and_sql_is_answered_not_refused(p1_client, spy, name):
    """Binding is the defence, not refusing punctuation: the classic payload is data."""
    spec = INPUTS[name]
    value = HOSTILE["drop-table"]
    response = ask(p1_client, spec, value)
    assert response.status_code == 200, response.content[:500]
    if spec.rows is not None:
        expected = sum(1 for row in P1_ROWS if spec.rows(row, value))
        assert response.json()["data"]["summary"]["total_requests"] == expected
    assert_guarded(spy.queries, (P1,))


@pytest.mark.parametrize("hostile", list(HOSTILE))
def test_hostile_saved_query_names_are_stored_or_refused(p1_client, spy, hostile):
    response = p1_client.post(
        "/gateway/saved-queries",
        {"name": HOSTILE[hostile], "endpoint": "top-routes", "time_window": "last_24h"},
        format="json",
    )
    if response.status_code != 201:
        assert_error_envelope(response, 400)
        return
    listed = p1_client.get("/gateway/saved-queries")
    assert listed.status_code == 200
    assert [q["name"] for q in listed.json()["data"]["results"]] == [HOSTILE[hostile]]


@pytest.mark.parametrize("hostile", list(HOSTILE))
def test_hostile_dashboard_view_names_and_projects_are_refused(p1_client, spy, hostile):
    value = HOSTILE[hostile]
    view = p1_client.get(
        "/gateway/dashboards/" + urllib.parse.quote(value, safe=""), {"project_id": str(P1)}
    )
    assert_error_envelope(view, 404)
    project = p1_client.get("/gateway/dashboards/overview", {"project_id": value})
    assert_error_envelope(project, 400)
    assert spy.count == 0
