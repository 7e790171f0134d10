"""Scope escape: a caller limited to project P1 sees P1's rows and nothing else, whatever it
sends, on every data endpoint (directly, as a saved-query run, as a dashboard view).

Rows of P1, P2 and P3 (3, 5 and 7 in the window) carry per-project markers in every text
column and their own model, endpoint and rule ids; every answer is compared with an
independent count over the rows, every printed query of the request must open its table
read with the tenant guard bound to exactly the caller's projects, and no answer may
mention anything of P2 or P3.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics import cache as response_cache
from analytics.query.registry import ZERO_UUID
from blocking.models import BlockingRule
from tests.conftest import make_row
from tests.security.helpers import (
    QuerySpy,
    assert_error_envelope,
    assert_guarded,
    module_rows,
    text_of,
    uid,
)

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

K = (1, 2, 3)
PROJECT = {k: uid(f"project-{k}") for k in K}
MODEL = {k: uid(f"model-{k}") for k in K}
ENDPOINT = {k: uid(f"endpoint-{k}") for k in K}
RULE = {k: uid(f"rule-{k}") for k in K}
P1, P2, P3 = PROJECT[1], PROJECT[2], PROJECT[3]
IN_WINDOW = {1: 3, 2: 5, 3: 7}

START = datetime(2025, 1, 15, tzinfo=UTC)
END = datetime(2025, 1, 16, tzinfo=UTC)
WINDOW = {"start_time": "2025-01-15T00:00:00Z", "end_time": "2025-01-16T00:00:00Z"}
# Dashboards use relative windows; the clock stands just after END (300 s steps).
NOW = END + timedelta(seconds=30)


def _rows() -> list[dict[str, Any]]:
    rows = []
    for k in K:
        times = [START + timedelta(hours=12, minutes=i) for i in range(IN_WINDOW[k])]
        # Outside the request window: one inside the 7-day dashboard windows, one before.
        times += [datetime(2025, 1, 10, 8, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)]
        for i, at in enumerate(times):
            blocked = i % 2 == 0
            rows.append(
                make_row(
                    project_id=PROJECT[k],
                    model_id=MODEL[k],
                    endpoint_id=ENDPOINT[k],
                    timestamp=at,
                    client_id=f"client-p{k}x-{i % 2}",
                    client_ip=f"10.{k}.0.{i + 1}",
                    country_code=("US", "DE", "FR")[k - 1],
                    region=f"region-p{k}x",
                    city=f"city-p{k}x",
                    model_name=f"model-p{k}x",
                    path=f"/v1/p{k}x/chat",
                    user_agent=f"p{k}x-agent/1.0",
                    device_type="other",
                    browser=f"browser-p{k}x",
                    os=f"os-p{k}x",
                    status_code=500 if i % 3 == 0 else 200,
                    is_blocked=blocked,
                    block_reason=f"reason-p{k}x" if blocked else "",
                    block_rule_id=RULE[k] if blocked else ZERO_UUID,
                    total_tokens=10 * k,
                )
            )
    return rows


ROWS = _rows()


def count(
    projects: tuple[uuid.UUID, ...] = (P1,),
    start: datetime = START,
    end: datetime = END,
    where: Callable[[dict[str, Any]], bool] = lambda row: True,
) -> int:
    """The independent answer: rows of ``projects`` in ``[start, end)`` matching ``where``."""
    return sum(
        1
        for row in ROWS
        if row["project_id"] in projects and start <= row["timestamp"] < end and where(row)
    )


def markers_outside(scope: tuple[uuid.UUID, ...]) -> list[str]:
    """What an answer to a caller scoped to ``scope`` must never mention: the text markers,
    addresses and ids of every other project."""
    others = [k for k in K if PROJECT[k] not in scope]
    return [
        *(f"p{k}x" for k in others),
        *(f"10.{k}.0." for k in others),
        *(str(ids[k]) for ids in (PROJECT, MODEL, ENDPOINT, RULE) for k in others),
    ]


_traffic = module_rows(ROWS)


@pytest.fixture(autouse=True)
def _rules_and_clock(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each project has an IP rule in Postgres (blocking-stats joins them), and the
    clock stands at NOW for the dashboards' relative windows."""
    for k in K:
        BlockingRule.objects.create(
            id=RULE[k],
            name=f"rule-p{k}x",
            rule_type="ip_blocking",
            rule_config={"ip_addresses": [f"10.{k}.0.0/24"]},
            project_id=PROJECT[k],
        )
    monkeypatch.setattr(response_cache, "clock", lambda: NOW.timestamp())


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> QuerySpy:
    return QuerySpy().install(monkeypatch)


@pytest.fixture
def p1_client(api_client_factory: Callable[..., Any]) -> Any:
    """A real API key whose access list is P1 only."""
    return api_client_factory([P1])


# --- asking every endpoint -------------------------------------------------------------

DATA_ENDPOINTS = (
    "analytics",
    "geographical-stats",
    "top-routes",
    "client-analytics",
    "blocking-stats",
)
_names = itertools.count()


def _get_query(params: dict[str, Any]) -> dict[str, Any]:
    """GET form: lists comma-joined; a ``Repeated`` list goes as repeated keys."""
    query: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Repeated):
            query[key] = list(value.items)
        elif isinstance(value, list):
            query[key] = ",".join(str(v) for v in value)
        else:
            query[key] = str(value)
    return query


@dataclass(frozen=True)
class Repeated:
    """A GET list sent as repeated keys (``project_ids=a&project_ids=b``)."""

    items: list[str]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def ask(client: Any, endpoint: str, params: dict[str, Any], *, saved: bool = False) -> Any:
    """One request to ``endpoint`` with the window and ``params``: directly, or by saving
    the query (absolute window) and running it."""
    params = _jsonable(params)
    if saved:
        created = client.post(
            "/gateway/saved-queries",
            {
                "name": f"scope-{next(_names)}",
                "endpoint": endpoint,
                "time_window": "absolute",
                "params": {**WINDOW, **params},
            },
            format="json",
        )
        if created.status_code != 201:
            return created
        return client.post(f"/gateway/saved-queries/{created.json()['data']['id']}/run")
    if endpoint == "analytics":
        return client.post("/gateway/analytics", {**WINDOW, **params}, format="json")
    return client.get(f"/gateway/{endpoint}", {**WINDOW, **_get_query(params)})


def total_requests(response: Any) -> int:
    return int(response.json()["data"]["summary"]["total_requests"])


# --- expectations ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sees:
    """200 with exactly the P1 rows matching ``where``."""

    where: Callable[[dict[str, Any]], bool] = lambda row: True


@dataclass(frozen=True)
class Denied:
    """403 naming exactly these (foreign) projects; no query reaches ClickHouse."""

    projects: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class RejectedOrSees:
    """A 400 (strict inputs) or, today, the parameter ignored: all of P1, nothing else."""


def check(
    response: Any,
    expected: Any,
    spy: QuerySpy,
    scope: tuple[uuid.UUID, ...] = (P1,),
    sent: Any = None,
) -> None:
    """``sent``: the request's own values, which an answer may echo back."""
    if isinstance(expected, Denied):
        body = assert_error_envelope(response, 403)
        names = sorted(str(p) for p in expected.projects)
        assert body["error"]["details"]["project_ids"] == names
        for name in names:
            assert name in body["error"]["message"]
        assert spy.count == 0, spy.sql
        return
    if isinstance(expected, RejectedOrSees) and response.status_code != 200:
        assert_error_envelope(response, 400)
        assert spy.count == 0, spy.sql
        return
    where = expected.where if isinstance(expected, Sees) else (lambda row: True)
    assert response.status_code == 200, response.content[:500]
    assert total_requests(response) == count(scope, where=where)
    text = text_of(response)
    echoed = repr(sent).lower()
    for marker in markers_outside(scope):
        assert marker in echoed or marker not in text, marker
    assert_guarded(spy.queries, scope)


# Cases every data endpoint takes (lists as JSON lists, or comma-joined in GETs).
COMMON_CASES: dict[str, tuple[dict[str, Any], Any]] = {
    "default-scope": ({}, Sees()),
    "own-project": ({"project_ids": [P1]}, Sees()),
    "foreign-project": ({"project_ids": [P2]}, Denied((P2,))),
    "own-and-foreign": ({"project_ids": [P1, P3]}, Denied((P3,))),
    "two-foreign": ({"project_ids": [P3, P2]}, Denied((P2, P3))),
    "foreign-upper-case": ({"project_ids": [str(P2).upper()]}, Denied((P2,))),
    "foreign-in-braces": ({"project_ids": ["{" + str(P2) + "}"]}, Denied((P2,))),
    "foreign-as-urn": ({"project_ids": [f"urn:uuid:{P3}"]}, Denied((P3,))),
    "foreign-model": ({"model_ids": [MODEL[2]]}, Sees(lambda r: r["model_id"] == MODEL[2])),
    "foreign-endpoint": (
        {"endpoint_ids": [ENDPOINT[3]]},
        Sees(lambda r: r["endpoint_id"] == ENDPOINT[3]),
    ),
    "own-and-foreign-models": (
        {"model_ids": [MODEL[1], MODEL[2], MODEL[3]]},
        Sees(lambda r: r["model_id"] in (MODEL[1], MODEL[2], MODEL[3])),
    ),
    "own-project-foreign-endpoint": (
        {"project_ids": [P1], "endpoint_ids": [ENDPOINT[2]]},
        Sees(lambda r: r["endpoint_id"] == ENDPOINT[2]),
    ),
}

# Filter trees of POST /gateway/analytics that try to reach past the scope.
FILTER_CASES: dict[str, tuple[dict[str, Any], Any]] = {
    "ne-own": (
        {"filters": {"project_id": {"op": "ne", "value": P1}}},
        Sees(lambda r: r["project_id"] != P1),
    ),
    "ne-foreign": ({"filters": {"project_id": {"op": "ne", "value": P2}}}, Sees()),
    "not-in-own": (
        {"filters": {"project_id": {"op": "not_in", "value": [P1]}}},
        Sees(lambda r: False),
    ),
    "in-foreign-operator-form": (
        {"filters": {"project_id": {"op": "in", "value": [P2, P3]}}},
        Sees(lambda r: False),
    ),
    "not-own": ({"filters": {"not": {"project_id": P1}}}, Sees(lambda r: False)),
    "not-of-false": (
        {
            "filters": {
                "not": {"and": [{"project_id": P1}, {"status_code": {"op": "lt", "value": 0}}]}
            }
        },
        Sees(),
    ),
    "or-foreign-or-true": (
        {"filters": {"or": [{"project_id": P2}, {"status_code": {"op": "gte", "value": 0}}]}},
        Sees(),
    ),
    "or-of-foreign": (
        {"filters": {"or": [{"project_id": P2}, {"project_id": P3}]}},
        Sees(lambda r: False),
    ),
    "is-empty-true": (
        {"filters": {"project_id": {"op": "is_empty", "value": True}}},
        Sees(lambda r: False),
    ),
    "is-empty-false": ({"filters": {"project_id": {"op": "is_empty", "value": False}}}, Sees()),
    "filters-project-id-foreign": ({"filters": {"project_id": P2}}, Denied((P2,))),
    "filters-project-id-list-with-foreign": (
        {"filters": {"project_id": [P1, P3]}},
        Denied((P3,)),
    ),
    "filters-project-id-own": ({"filters": {"project_id": P1}}, Sees()),
    "filters-project-id-foreign-beside-project-ids": (
        {"project_ids": [P1], "filters": {"project_id": P2}},
        Sees(lambda r: False),
    ),
    "foreign-model-filter": ({"filters": {"model_id": MODEL[2]}}, Sees(lambda r: False)),
    "or-of-foreign-ids": (
        {"filters": {"or": [{"model_id": MODEL[2]}, {"endpoint_id": ENDPOINT[3]}]}},
        Sees(lambda r: False),
    ),
    "group-by-project": ({"group_by": ["project_id"]}, Sees()),
}

# Query-string forms only a GET can send.
GET_CASES: dict[str, tuple[dict[str, Any], Any]] = {
    "repeated-project-ids": (
        {"project_ids": Repeated([str(P1), str(P3)])},
        Denied((P3,)),
    ),
    "typo-project-id": ({"project_id": str(P2)}, RejectedOrSees()),
    "bracketed-project-ids": ({"project_ids[]": str(P2)}, RejectedOrSees()),
    "typo-beside-own-project": (
        {"project_ids": [P1], "project_id": str(P3)},
        RejectedOrSees(),
    ),
}


@pytest.mark.parametrize("case", list(COMMON_CASES))
@pytest.mark.parametrize("endpoint", DATA_ENDPOINTS)
def test_common_scope_escapes_directly(p1_client, spy, endpoint, case):
    params, expected = COMMON_CASES[case]
    check(ask(p1_client, endpoint, params), expected, spy, sent=params)


@pytest.mark.parametrize("case", list(COMMON_CASES))
@pytest.mark.parametrize("endpoint", DATA_ENDPOINTS)
def test_common_scope_escapes_as_saved_query_runs(p1_client, spy, endpoint, case):
    params, expected = COMMON_CASES[case]
    check(ask(p1_client, endpoint, params, saved=True), expected, spy, sent=params)


@pytest.mark.parametrize("saved", [False, True], ids=["direct", "saved-run"])
@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_filter_trees_cannot_reach_past_the_scope(p1_client, spy, case, saved):
    params, expected = FILTER_CASES[case]
    check(ask(p1_client, "analytics", params, saved=saved), expected, spy, sent=params)


@pytest.mark.parametrize("case", list(GET_CASES))
@pytest.mark.parametrize("endpoint", [e for e in DATA_ENDPOINTS if e != "analytics"])
def test_query_string_forms_cannot_reach_past_the_scope(p1_client, spy, endpoint, case):
    params, expected = GET_CASES[case]
    check(ask(p1_client, endpoint, params), expected, spy, sent=params)


def test_group_by_project_lists_only_the_callers_project(p1_client, spy):
    response = ask(p1_client, "analytics", {"group_by": ["project_id"], "time_bucket": "1d"})
    assert response.status_code == 200
    groups = {point["groups"]["project_id"] for point in response.json()["data"]["time_series"]}
    assert groups == {str(P1)}
    assert str(P2) not in text_of(response)
    assert_guarded(spy.queries, (P1,))


# --- dashboards --------------------------------------------------------------------------

DASHBOARD_WINDOWS = {
    "overview": timedelta(hours=24),
    "geography": timedelta(days=7),
    "top-routes": timedelta(days=7),
    "blocking": timedelta(hours=24),
}


@pytest.mark.parametrize("view", list(DASHBOARD_WINDOWS))
def test_dashboard_view_of_own_project_counts_only_its_rows(p1_client, spy, view):
    response = p1_client.get(f"/gateway/dashboards/{view}", {"project_id": str(P1)})
    assert response.status_code == 200, response.content[:500]
    assert total_requests(response) == count((P1,), END - DASHBOARD_WINDOWS[view], END)
    text = text_of(response)
    for marker in markers_outside((P1,)):
        assert marker not in text, marker
    assert_guarded(spy.queries, (P1,))


@pytest.mark.parametrize("view", list(DASHBOARD_WINDOWS))
@pytest.mark.parametrize("foreign", [P2, str(P3).upper(), "{" + str(P2) + "}"])
def test_dashboard_view_of_a_foreign_project_is_denied(p1_client, spy, view, foreign):
    response = p1_client.get(f"/gateway/dashboards/{view}", {"project_id": str(foreign)})
    body = assert_error_envelope(response, 403)
    denied = str(uuid.UUID(str(foreign)))
    assert denied in body["error"]["message"]
    assert spy.count == 0


@pytest.mark.parametrize("view", list(DASHBOARD_WINDOWS))
def test_dashboard_view_ignores_or_rejects_a_smuggled_project_list(p1_client, spy, view):
    response = p1_client.get(
        f"/gateway/dashboards/{view}", {"project_id": str(P1), "project_ids": str(P2)}
    )
    if response.status_code != 200:
        assert_error_envelope(response, 400)
        assert spy.count == 0
        return
    assert total_requests(response) == count((P1,), END - DASHBOARD_WINDOWS[view], END)
    assert_guarded(spy.queries, (P1,))


def test_a_dashboard_warmed_for_one_project_is_not_served_for_another(
    superuser_client, p1_client, spy
):
    """The warmed entry's key holds the project scope: P1's reader never gets P2's."""
    warm = superuser_client.get("/gateway/dashboards/overview", {"project_id": str(P2)})
    assert total_requests(warm) == count((P2,), END - timedelta(hours=24), END)
    spy.clear()
    mine = p1_client.get("/gateway/dashboards/overview", {"project_id": str(P1)})
    assert mine["X-Cache"] == "MISS"
    assert total_requests(mine) == count((P1,), END - timedelta(hours=24), END)
    assert_guarded(spy.queries, (P1,))


# --- saved queries shared across scopes ---------------------------------------------------


@pytest.mark.parametrize("endpoint", DATA_ENDPOINTS)
def test_a_shared_saved_query_naming_a_foreign_project_is_denied_to_the_runner(
    superuser_client, p1_client, spy, endpoint
):
    created = superuser_client.post(
        "/gateway/saved-queries",
        {
            "name": f"shared-{endpoint}",
            "endpoint": endpoint,
            "time_window": "absolute",
            "params": {**WINDOW, "project_ids": [str(P2)]},
            "is_shared": True,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    saved_id = created.json()["data"]["id"]
    owner_run = superuser_client.post(f"/gateway/saved-queries/{saved_id}/run")
    assert total_requests(owner_run) == count((P2,))
    spy.clear()
    response = p1_client.post(f"/gateway/saved-queries/{saved_id}/run")
    check(response, Denied((P2,)), spy)


@pytest.mark.parametrize("endpoint", DATA_ENDPOINTS)
def test_a_shared_saved_query_without_projects_runs_in_the_runners_scope(
    superuser_client, p1_client, spy, endpoint
):
    created = superuser_client.post(
        "/gateway/saved-queries",
        {
            "name": f"shared-all-{endpoint}",
            "endpoint": endpoint,
            "time_window": "absolute",
            "params": WINDOW,
            "is_shared": True,
        },
        format="json",
    )
    saved_id = created.json()["data"]["id"]
    owner_run = superuser_client.post(f"/gateway/saved-queries/{saved_id}/run")
    assert total_requests(owner_run) == count(tuple(PROJECT.values()))
    spy.clear()
    check(p1_client.post(f"/gateway/saved-queries/{saved_id}/run"), Sees(), spy)


# --- other principals ---------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", DATA_ENDPOINTS)
def test_a_session_user_is_held_to_its_access_list_too(user_client_factory, spy, endpoint):
    user = user_client_factory([P1])
    check(ask(user, endpoint, {}), Sees(), spy)
    spy.clear()
    check(ask(user, endpoint, {"project_ids": [P2]}), Denied((P2,)), spy)


@pytest.mark.parametrize("endpoint", DATA_ENDPOINTS)
def test_a_two_project_caller_gets_both_and_only_both(api_client_factory, spy, endpoint):
    client = api_client_factory([P1, P2])
    check(ask(client, endpoint, {}), Sees(), spy, scope=(P1, P2))
    spy.clear()
    check(ask(client, endpoint, {"project_ids": [P2, P3]}), Denied((P3,)), spy)


@pytest.mark.parametrize("endpoint", DATA_ENDPOINTS)
def test_a_caller_without_access_rows_is_refused_saying_so(api_client_factory, spy, endpoint):
    # Issue 15: a key with no project access is a 403 that says so, not an empty 200.
    client = api_client_factory([])
    body = assert_error_envelope(ask(client, endpoint, {}), 403)
    assert body["error"]["code"] == "no_project_access"
    assert client.api_client.name in body["error"]["message"]
    assert "All projects" in body["error"]["message"]
    assert spy.count == 0, spy.sql


@pytest.mark.parametrize("endpoint", DATA_ENDPOINTS)
def test_a_superuser_naming_one_project_gets_exactly_that_project(superuser_client, spy, endpoint):
    response = ask(superuser_client, endpoint, {"project_ids": [P2]})
    assert response.status_code == 200
    assert total_requests(response) == count((P2,))
    assert_guarded(spy.queries, (P2,))
