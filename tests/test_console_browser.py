"""The staff traffic console in a real browser: Playwright driving Debian's Chromium
against a live server (threaded, in this process, so it shares the embedded chDB) on demo
rows. Nothing is skipped: without Chromium these tests fail (``.ci/run`` installs it)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command

from analytics.access.models import ProjectAccess
from analytics.demo.generator import project_layout
from blocking.models import BlockingRule

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"], transaction=True)

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Without the background-networking flags Chromium opens connections of its own (and
# they are refused, many at a time, on a machine without internet).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
PAGES = ["overview", "geography", "routes", "clients", "blocking", "llm"]
DEMO_PROJECTS = project_layout(42, 3).project_ids
LOOPBACK = ("127.0.0.1", "localhost")  # the live server's own address
PASSWORD = "console-test-password"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium (.ci/run)")
    profile = tempfile.mkdtemp(prefix="budmetrics-chromium-")
    # Playwright's sync API keeps an event loop on this thread; Django's ORM calls in the
    # test body are still synchronous (the documented switch for this case).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
            timezone_id="America/New_York",  # the picker defaults to the browser's zone
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def demo(clickhouse: Any) -> list[str]:
    """Demo traffic of the last 7 days for three projects (seed 42, as ``make run``)."""
    call_command("generate_traffic", rows=20_000, days=7, projects=3, seed=42, verbosity=0)
    return DEMO_PROJECTS


class Session:
    """One logged-in browser page that records every request it makes and every console
    error it sees."""

    def __init__(self, context: Any, live_server: Any) -> None:
        self.base = live_server.url
        context.clear_cookies()
        self.page = context.new_page()
        self.urls: list[str] = []
        self.data_requests: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.route("**/*", self._route)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def _route(self, route: Any) -> None:
        request = route.request
        self.urls.append(request.url)
        if urlsplit(request.url).hostname not in LOOPBACK:
            route.abort()  # recorded above; the assertion names it
            return
        if "/admin/traffic/data/" in request.url:
            endpoint = request.url.rstrip("/").rsplit("/", 1)[-1]
            self.data_requests.append((endpoint, json.loads(request.post_data or "{}")))
        route.continue_()

    def login(self, username: str) -> None:
        self.page.goto(f"{self.base}/admin/login/?next=/admin/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", PASSWORD)
        self.page.click("input[type=submit]")
        self.page.wait_for_url(f"{self.base}/admin/")

    def open(self, page: str, query: str = "range=7d") -> None:
        self.page.goto(f"{self.base}/admin/traffic/{page}/?{query}")
        self.wait_ready()

    def wait_ready(self) -> None:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_selector(
                '#console-root[data-ready="true"]', state="attached", timeout=30_000
            )
        except PlaywrightTimeout:
            pytest.fail(f"{self.page.url} never finished; console errors: {self.errors}")

    def charts(self) -> dict[str, dict[str, Any]]:
        """Every drawn chart by its card id: series count and points per series."""
        return self.page.evaluate(
            """() => Object.fromEntries(Array.from(document.querySelectorAll('.console-card'))
                .filter((s) => s.querySelector('canvas'))
                .map((s) => {
                  const chart = Chart.getChart(s.querySelector('canvas'));
                  return [s.id, {series: chart.data.datasets.length,
                                 points: chart.data.datasets.map((d) => d.data.length),
                                 labels: chart.data.labels}];
                }))"""
        )

    def totals(self, card: str) -> list[float | None]:
        """The footer row of a card's table, as numbers (None for an empty cell)."""
        return self.page.evaluate(
            """(id) => Array.from(document.querySelectorAll(`#${id} tfoot td`))
                .map((td) => td.dataset.value === undefined ? null : Number(td.dataset.value))""",
            card,
        )

    def states(self) -> dict[str, str]:
        return self.page.evaluate(
            """() => Object.fromEntries(Array.from(document.querySelectorAll('.console-card'))
                .map((s) => [s.id, s.dataset.state]))"""
        )

    def external(self) -> list[str]:
        return [u for u in self.urls if urlsplit(u).hostname not in LOOPBACK]


def make_staff(django_user_model: Any, username: str, *, permitted: bool, projects=()) -> Any:
    user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=True)
    if permitted:
        user.user_permissions.add(Permission.objects.get(codename="view_traffic_console"))
    for project in projects:
        ProjectAccess.objects.create(user=user, project_id=project)
    return user


def api_answer(api_client_factory: Any, endpoint: str, params: dict[str, Any], **key: Any) -> Any:
    """The API's answer to the same params, asked with an API key over HTTP."""
    client = api_client_factory(**key)
    paths = {
        "analytics": "/gateway/analytics",
        "geographical-stats": "/gateway/geographical-stats",
        "top-routes": "/gateway/top-routes",
        "client-analytics": "/gateway/client-analytics",
        "blocking-stats": "/gateway/blocking-stats",
    }
    if endpoint == "analytics":
        response = client.post(paths[endpoint], params, format="json")
    else:
        query = {k: ",".join(v) if isinstance(v, list) else v for k, v in params.items()}
        response = client.get(paths[endpoint], query)
    assert response.status_code == 200, response.content
    return response.json()["data"]


def test_every_console_page_draws_the_api_numbers(
    browser: Any, live_server: Any, demo: list[str], superuser: Any, api_client_factory: Any
) -> None:
    superuser.set_password(PASSWORD)
    superuser.save()
    # A rule the demo's blocked rows name, so rule effectiveness links to its admin page.
    session = Session(browser, live_server)
    session.login(superuser.username)
    assert session.page.locator("a", has_text="Traffic").count() >= 1  # on the admin index
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, dict[str, Any]] = {}
    for name in PAGES:
        if name == "blocking":
            rule_id = api_answer(
                api_client_factory,
                "blocking-stats",
                {**session.data_requests[-1][1], "limit": 1},
                all_projects=True,
            )["blocking_rules"][0]["rule_id"]
            BlockingRule.objects.create(
                id=uuid.UUID(rule_id),
                name="demo bot rule",
                rule_type="user_agent_blocking",
                rule_config={"patterns": ["bot"], "match_type": "substring"},
            )
        session.open(name)
        session.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        states = session.states()
        assert states, name
        assert set(states.values()) == {"ready"}, (name, states)
        drawn[name] = session.charts()
        if name == "overview":  # the table footers, read while the page is open
            footers = {c: session.totals(c) for c in drawn[name]}
        assert drawn[name], name

    requests = dict(session.data_requests)
    assert set(requests) == {
        "analytics",
        "geographical-stats",
        "top-routes",
        "client-analytics",
        "blocking-stats",
    }

    # Overview: the last analytics request is the LLM page's; find the overview's.
    overview_params = next(
        p for e, p in session.data_requests if "error_count" in p.get("metrics", [])
    )
    assert overview_params["timezone"] == "America/New_York"  # the browser's zone
    api = api_answer(api_client_factory, "analytics", overview_params, all_projects=True)
    points = len(api["time_series"])
    assert points > 24  # 7 days of auto buckets
    assert drawn["overview"]["overview-requests"]["series"] == 2
    assert drawn["overview"]["overview-requests"]["points"] == [points, points]
    assert drawn["overview"]["overview-latency"]["points"] == [points, points]
    assert drawn["overview"]["overview-cost"]["series"] == 1
    summary = api["summary"]
    assert 19_000 < summary["total_requests"] <= 20_000  # the 7-day window starts a minute later
    assert footers["overview-requests"] == [
        summary["total_requests"],
        summary["error_count"],
    ]
    assert footers["overview-latency"] == pytest.approx(
        [summary["avg_response_time"], summary["p95_response_time"]]
    )
    assert footers["overview-cost"] == pytest.approx([summary["total_cost"]])

    geo = api_answer(
        api_client_factory, "geographical-stats", requests["geographical-stats"], all_projects=True
    )
    assert drawn["geography"]["geo-countries"]["points"] == [len(geo["countries"])]
    assert drawn["geography"]["geo-cities"]["points"] == [len(geo["cities"])]

    routes = api_answer(api_client_factory, "top-routes", requests["top-routes"], all_projects=True)
    assert drawn["routes"]["routes-requests"]["labels"] == [
        f"{r['method']} {r['path']}" for r in routes["routes"]
    ]
    assert drawn["routes"]["routes-latency"]["series"] == 3

    clients = api_answer(
        api_client_factory, "client-analytics", requests["client-analytics"], all_projects=True
    )
    assert drawn["clients"]["clients-requests"]["points"] == [len(clients["clients"])] * 2

    blocking = api_answer(
        api_client_factory, "blocking-stats", requests["blocking-stats"], all_projects=True
    )
    assert drawn["blocking"]["blocking-time"]["points"] == [len(blocking["time_series"])] * 2
    assert drawn["blocking"]["blocking-reasons"]["labels"] == [
        r["block_reason"] for r in blocking["block_reasons"]
    ]

    llm_params = next(p for e, p in session.data_requests if "p95_ttft" in p.get("metrics", []))
    llm = api_answer(api_client_factory, "analytics", llm_params, all_projects=True)
    models = {tuple(p["groups"].items()) for p in llm["time_series"]}
    assert drawn["llm"]["llm-ttft"]["series"] == len(models) > 1  # one series per model

    # Re-open the pages that need a check in the page itself.
    session.open("blocking")
    link = session.page.locator("#blocking-rules a", has_text="demo bot rule")
    assert link.get_attribute("href") == f"/admin/blocking/blockingrule/{rule_id}/change/"

    session.open("geography")
    session.page.select_option("#geo-country", "US")
    session.page.wait_for_function(
        "() => document.querySelector('#geo-regions')?.dataset.state === 'ready'"
    )
    regions = session.charts()["geo-regions"]["labels"]
    assert regions
    assert all(label.endswith(", US") for label in regions)
    session.page.screenshot(path=str(SCREENSHOTS / "geography-us.png"), full_page=True)

    assert session.errors == []
    assert session.external() == []
    assert session.urls
    assert all(urlsplit(u).hostname in LOOPBACK for u in session.urls)


def test_project_picker_offers_only_the_users_projects(
    browser: Any, live_server: Any, demo: list[str], django_user_model: Any, api_client_factory: Any
) -> None:
    mine = demo[1]
    make_staff(django_user_model, "alice", permitted=True, projects=[mine])
    session = Session(browser, live_server)
    session.login("alice")
    session.open("overview")
    options = session.page.eval_on_selector_all(
        "#pick-project option", "os => os.map(o => o.value)"
    )
    assert options == ["", mine]
    params = session.data_requests[-1][1]
    assert "project_ids" not in params  # "All my projects": the endpoint applies her list
    api = api_answer(api_client_factory, "analytics", params, project_ids=[mine])
    assert session.totals("overview-requests") == [
        api["summary"]["total_requests"],
        api["summary"]["error_count"],
    ]
    assert 0 < api["summary"]["total_requests"] < 20_000
    # A foreign project asked through the data view directly is the endpoint's 403.
    status, body = session.page.evaluate(
        """async (project) => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            const r = await fetch('/admin/traffic/data/top-routes/', {method: 'POST',
              headers: {'Content-Type': 'application/json', 'X-CSRFToken': token},
              body: JSON.stringify({project_ids: [project]})});
            return [r.status, await r.json()];
        }""",
        demo[0],
    )
    assert status == 403
    assert demo[0] in body["error"]["message"]
    assert len(session.errors) == 1
    assert "403" in session.errors[0]
    session.errors.clear()
    # Picking the one project draws the same numbers.
    session.page.select_option("#pick-project", mine)
    session.page.wait_for_function("() => location.search.includes('project=')")
    session.wait_ready()
    assert session.data_requests[-1][1]["project_ids"] == [mine]

    # A custom range is read on the chosen zone's wall clock; an empty one says so.
    session.page.select_option("#pick-range", "custom")
    session.page.fill("#pick-start", "2020-01-01T00:00")
    session.page.fill("#pick-end", "2020-01-02T00:00")
    session.page.select_option("#pick-tz", "Asia/Kolkata")
    session.page.wait_for_function("() => location.search.includes('Kolkata')")
    session.wait_ready()
    params = session.data_requests[-1][1]
    assert (params["start_time"], params["end_time"]) == (
        "2019-12-31T18:30:00Z",
        "2020-01-01T18:30:00Z",
    )
    assert params["timezone"] == "Asia/Kolkata"
    assert session.states() == {"overview-totals": "empty"}
    # A range the endpoint refuses shows its message in the error state.
    session.page.fill("#pick-end", "2020-06-01T00:00")
    session.page.click("#pick-apply")
    session.page.wait_for_function("() => location.search.includes('2020-06-01')")
    session.wait_ready()
    assert session.states() == {"overview-totals": "error"}
    message = session.page.inner_text("#overview-totals .console-state")
    assert "at most 90 days" in message
    assert session.page.get_attribute("#overview-totals .console-state", "role") == "alert"
    assert len(session.errors) == 1  # the 400, logged by the browser
    assert "400" in session.errors[0]
    session.errors.clear()
    assert session.errors == []
    assert session.external() == []


def test_staff_without_the_permission_get_an_html_403(
    browser: Any, live_server: Any, django_user_model: Any
) -> None:
    make_staff(django_user_model, "bob", permitted=False)
    session = Session(browser, live_server)
    session.login("bob")
    assert session.page.locator("a", has_text="Traffic").count() == 0  # not on the index
    response = session.page.goto(f"{live_server.url}/admin/traffic/")
    assert response.status == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "console.view_traffic_console" in session.page.content()
    session.page.screenshot(path=str(SCREENSHOTS / "forbidden.png"))
    # The data view refuses too (JSON, as the API does).
    status = session.page.evaluate(
        """async () => (await fetch('/admin/traffic/data/analytics/', {method: 'POST',
              headers: {'Content-Type': 'application/json'}, body: '{}'})).status"""
    )
    assert status == 403
    assert session.external() == []


def test_rule_and_saved_query_pages_chart_their_traffic(
    browser: Any, live_server: Any, demo: list[str], superuser: Any
) -> None:
    from analytics.endpoints import ENDPOINTS, answer
    from analytics.saved_queries import SavedQuery
    from tests.conftest import clickhouse_client

    superuser.set_password(PASSWORD)
    superuser.save()
    # The demo's busiest rule id, counted per UTC day straight from the table (the oracle).
    (rule_id,) = (
        clickhouse_client()
        .query(
            "SELECT block_rule_id FROM gateway_analytics WHERE is_blocked "
            "GROUP BY block_rule_id ORDER BY count() DESC LIMIT 1"
        )
        .result_rows[0]
    )
    per_day = dict(
        clickhouse_client()
        .query(
            "SELECT formatDateTime(toDate(timestamp, 'UTC'), '%m-%d'), count() "
            "FROM gateway_analytics WHERE block_rule_id = {r:UUID} GROUP BY 1",
            parameters={"r": rule_id},
        )
        .result_rows
    )
    BlockingRule.objects.create(
        id=rule_id,
        name="busiest demo rule",
        rule_type="user_agent_blocking",
        rule_config={"patterns": ["bot"], "match_type": "substring"},
    )
    session = Session(browser, live_server)
    session.login(superuser.username)
    session.page.goto(f"{live_server.url}/admin/blocking/blockingrule/{rule_id}/change/")
    session.page.wait_for_selector('.console-mini[data-drawn="true"]', state="attached")
    chart = session.page.evaluate(
        """() => { const c = Chart.getChart(document.querySelector('.console-mini canvas'));
                   return {labels: c.data.labels, values: c.data.datasets[0].data}; }"""
    )
    assert len(chart["labels"]) == 7
    assert chart["values"] == [per_day.get(day, 0) for day in chart["labels"]]
    assert sum(chart["values"]) > 0
    session.page.locator("fieldset", has=session.page.locator(".console-mini")).screenshot(
        path=str(SCREENSHOTS / "rule-activity.png")
    )

    saved = SavedQuery.objects.create(
        name="busiest routes",
        owner=superuser,
        endpoint="top-routes",
        params={"limit": 5},
        time_window="last_7d",
    )
    session.page.goto(f"{live_server.url}/admin/analytics/savedquery/{saved.pk}/change/")
    assert session.page.input_value("#sq-limit") == "5"
    session.page.fill("#sq-limit", "3")
    session.page.dispatch_event("#sq-limit", "change")
    assert json.loads(session.page.input_value("#id_params")) == {"limit": 3}
    session.page.click("#sq-preview")
    session.page.wait_for_selector('#saved-query-editor[data-state="ready"]', state="attached")
    labels = session.page.evaluate(
        "() => Chart.getChart(document.querySelector('.sq-result canvas')).data.labels"
    )
    expected = json.loads(answer(ENDPOINTS["top-routes"], {"limit": 3}, superuser).payload)
    assert labels == [f"{r['method']} {r['path']}" for r in expected["data"]["routes"]]
    session.page.locator(".field-params_form").screenshot(
        path=str(SCREENSHOTS / "saved-query-preview.png")
    )
    # The form follows the endpoint: analytics offers its registry metrics to pick from.
    session.page.select_option("#id_endpoint", "analytics")
    metrics = session.page.eval_on_selector_all("#sq-metrics option", "os => os.map(o => o.value)")
    assert "p95_ttft" in metrics
    assert "total_requests" in metrics
    assert session.errors == []
    assert session.external() == []
